/* context.c - building a fresh context (see context.h). The frame written
 * here is the one ox__ctx_switch pops: its layout is documented in each
 * switch_<arch>.S and must change with it. */
#include "context.h"

#include <stdint.h>
#include <string.h>

void ox__ctx_start(void); /* switch_<arch>.S */

void ox__ctx_make(ox__ctx *ctx, void *stack_lo, void *stack_hi, void (*entry)(void *), void *arg)
{
    (void)stack_lo;
    /* Aligned down to 16 bytes, without an integer-to-pointer cast. */
    char *top = (char *)stack_hi - ((uintptr_t)stack_hi & 15);
#if defined(__x86_64__)
    /* mxcsr+cw, r15, r14, r13, r12, rbx, rbp, return address: after the
     * switch pops all eight, rsp == top, 16-byte aligned for the call in
     * ox__ctx_start. */
    uint64_t *frame = (uint64_t *)(void *)top - 8;
    memset(frame, 0, 8 * sizeof *frame);
    uint32_t control[2] = {0x1F80u, 0x037Fu}; /* the ABI's initial MXCSR and x87 CW */
    memcpy(&frame[0], control, sizeof control);
    frame[3] = (uint64_t)(uintptr_t)arg;   /* r13 */
    frame[4] = (uint64_t)(uintptr_t)entry; /* r12 */
    frame[7] = (uint64_t)(uintptr_t)ox__ctx_start;
#elif defined(__aarch64__)
    uint64_t *frame = (uint64_t *)(void *)(top - 176);
    memset(frame, 0, 176);
    frame[0] = (uint64_t)(uintptr_t)entry;          /* x19 */
    frame[1] = (uint64_t)(uintptr_t)arg;            /* x20 */
    frame[11] = (uint64_t)(uintptr_t)ox__ctx_start; /* x30 */
                                                    /* fpcr 0: round to nearest, no traps (the ABI's initial state). */
#else
    /* cppcheck-suppress preprocessorErrorDirective */
#error "oxide tasks need a context switch for this architecture (src/task/switch_<arch>.S)"
#endif
    ctx->sp = frame;
}

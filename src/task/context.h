/* context.h - the context switch between a worker's scheduler and its tasks.
 *
 * A context is just a saved stack pointer: ox__ctx_switch pushes the
 * callee-saved registers (and the floating-point control words, which the
 * ABI also makes callee-saved) on the current stack, stores the stack
 * pointer in *from, loads to's and pops them back. Everything else a C
 * function may clobber across a call is the caller's to save, so nothing
 * more is needed. Hand-written per architecture (switch_x86_64.S,
 * switch_aarch64.S): ucontext's swapcontext makes a sigprocmask system
 * call on every switch.
 */
#ifndef OX_TASK_CONTEXT_H
#define OX_TASK_CONTEXT_H

#include <stddef.h>

typedef struct ox__ctx {
    void *sp;
} ox__ctx;

/* Saves the calling context in *from and resumes *to. Returns when some
 * later switch resumes *from. */
void ox__ctx_switch(ox__ctx *from, ox__ctx *to);

/* Prepares *ctx so that switching to it calls entry(arg) on the stack
 * [stack_lo, stack_hi). entry must never return (it switches away for the
 * last time instead). */
void ox__ctx_make(ox__ctx *ctx, void *stack_lo, void *stack_hi, void (*entry)(void *), void *arg);

#endif

/* thread_local.c - the `c-thread-local` peer: tls_access on a plain C11
 * `_Thread_local int`.
 *
 * The read each iteration is forced by an empty asm statement with a
 * "memory" clobber placed before it: the compiler must assume the asm
 * wrote any memory, so it reloads the thread-local every iteration and
 * cannot hoist it or fold the loop into a multiplication. The sum is kept
 * (OX_BENCH_KEEP) so the loop is not deleted. The oxide version must use
 * the same barrier at the same place:
 *
 *     for (i = 0; i < N; i++) {
 *         __asm__ __volatile__("" ::: "memory");
 *         sum += <read the thread-local through its accessor>;
 *     }
 */
#include "peer.h"

#include <stdint.h>

enum { TLS_OPS = 100000000 };

/* External linkage and a store before the loop: a static thread-local that
 * is never written is folded to its initialiser by GCC (it proves the
 * variable read-only), which would delete the reads the asm barrier is
 * there to keep. */
_Thread_local int ox_peer_tls_value;

OX_BENCH(tls_access, "tls_access", "c-thread-local")
{
    uint64_t sum = 0;
    ox_peer_tls_value = 1;
    uint64_t t0 = ox_bench_now_ns();
    for (int i = 0; i < TLS_OPS; i++) {
        __asm__ __volatile__("" ::: "memory");
        sum += (uint64_t)ox_peer_tls_value;
    }
    uint64_t ns = ox_bench_now_ns() - t0;
    OX_BENCH_KEEP(sum);
    peer_check(sum == TLS_OPS, "tls_access");
    return (double)ns / TLS_OPS;
}

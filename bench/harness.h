/* harness.h - oxide's benchmark harness. Each workload registers a
 * function that runs the workload once and returns nanoseconds per
 * operation; the harness repeats it and prints the median as
 *   workload<TAB>implementation<TAB>ns_per_op
 * The C peers (pthread, glib, c-atomic, ...) use the same harness, so the
 * same workload is timed the same way. */
#ifndef OX_BENCH_HARNESS_H
#define OX_BENCH_HARNESS_H

#include <stdint.h>

typedef struct ox_bench {
    const char *workload;
    const char *impl;
    double (*run)(void); /* one measurement: ns per operation; NAN: cannot run here */
    struct ox_bench *next;
} ox_bench;

void ox_bench_register(ox_bench *b);

#define OX_BENCH(fname, workload_name, impl_name)                                                  \
    static double fname(void);                                                                     \
    static ox_bench fname##__ox_bench = {workload_name, impl_name, fname, 0};                      \
    __attribute__((constructor)) static void fname##__ox_register(void)                            \
    {                                                                                              \
        ox_bench_register(&fname##__ox_bench);                                                     \
    }                                                                                              \
    static double fname(void)

/* Monotonic nanoseconds. */
uint64_t ox_bench_now_ns(void);

/* Keeps the compiler from deleting a computation whose result is unused. */
#define OX_BENCH_KEEP(x) __asm__ __volatile__("" : : "r"(x) : "memory")

#endif

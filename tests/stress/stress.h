/* stress.h - the frame of oxide's randomized stress programs.
 *
 * Each program runs for a given number of seconds (argv[1], default 5),
 * drawing every random choice (operation mix, thread counts, channel
 * flavors) from a seed (argv[2], or OX_STRESS_SEED, or the clock). Built
 * with CHAOS=1 the schedule is perturbed too, from OX_CHAOS_SEED. On an
 * invariant failure it prints both seeds and the replay command, then
 * aborts; on success one line "ok <program> seed=<seed> rounds=<n>".
 */
#ifndef OX_STRESS_H
#define OX_STRESS_H

#include "oxide.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t stress_seed;
static const char *stress_name;
static double stress_seconds;

/* A small PRNG, one per thread (seeded from stress_seed and a stream). */
typedef struct stress_rng {
    uint64_t s;
} stress_rng;

static inline uint64_t stress_next(stress_rng *r)
{
    r->s += 0x9e3779b97f4a7c15u; /* splitmix64 */
    uint64_t z = r->s;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static inline uint32_t stress_below(stress_rng *r, uint32_t n)
{
    return (uint32_t)(stress_next(r) % n);
}

static inline stress_rng stress_rng_for(uint64_t stream)
{
    stress_rng r = {stress_seed ^ (stream * 0xd1b54a32d192ed03u)};
    stress_next(&r);
    return r;
}

/* Prints the failure, the seed and how to replay it, then aborts. */
static _Noreturn void stress_fail_at(const char *file, int line, const char *what, const char *fmt,
                                     ...) OX_PRINTF(4, 5);

static _Noreturn void stress_fail_at(const char *file, int line, const char *what, const char *fmt,
                                     ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL %s: %s:%d: %s: ", stress_name, file, line, what);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr,
            "\n  seed %" PRIu64 "; replay: %s %.0f %" PRIu64
            " (with the same OX_CHAOS_SEED in a CHAOS=1 build)\n",
            stress_seed, stress_name, stress_seconds, stress_seed);
    fflush(NULL);
    abort();
}

#define STRESS_FAIL(...) stress_fail_at(__FILE__, __LINE__, "failed", __VA_ARGS__)

#define STRESS_CHECK(cond, ...)                                                                    \
    do {                                                                                           \
        if (!(cond))                                                                               \
            stress_fail_at(__FILE__, __LINE__, #cond, __VA_ARGS__);                                \
    } while (0)

static inline void stress_init(int argc, char **argv, const char *name)
{
    stress_name = name;
    stress_seconds = argc > 1 ? atof(argv[1]) : 5;
    const char *s = argc > 2 ? argv[2] : getenv("OX_STRESS_SEED");
    if (s != NULL && *s != '\0')
        stress_seed = strtoull(s, NULL, 10);
    else
        stress_seed = (uint64_t)ox_instant_now().ns % 1000000007u;
    fprintf(stderr, "%s: seed %" PRIu64 ", %.1f s\n", name, stress_seed, stress_seconds);
}

/* True until the program's time is up (rounds always complete). */
static inline bool stress_time_left(ox_instant start)
{
    return ox_instant_diff(ox_instant_now(), start) < (ox_nanos)(stress_seconds * 1e9);
}

static inline ox_join_handle stress_spawn(void *(*fn)(void *), void *arg)
{
    return ox_thread_spawn(fn, arg);
}

static inline void *stress_join(ox_join_handle *h)
{
    void *r = NULL;
    ox_panic_payload *p = NULL;
    int rc = ox_thread_join(h, &r, &p);
    if (rc != 0)
        STRESS_FAIL("a worker thread ended with %s (%s)", ox_strerror(rc),
                    p && p->message ? p->message : "");
    return r;
}

#endif

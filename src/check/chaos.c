/* chaos.c - seeded schedule perturbation (see chaos.h). Compiled to
 * nothing unless the build defines OX_CHAOS. */
#include "chaos.h"

#ifdef OX_CHAOS

#include "../sys/sys.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t chaos_seed;
static unsigned chaos_rate = 32;
static atomic_uint_fast64_t next_stream; /* hands each thread its stream */

static _Thread_local uint64_t rng_state;
static _Thread_local bool rng_ready;

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15u;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

static uint64_t next_random(void)
{
    /* xorshift64*: small, fast, good enough to pick between a few actions. */
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545f4914f6cdd1du;
}

static uint64_t env_number(const char *name, uint64_t fallback)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return fallback;
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (*end != '\0') {
        fprintf(stderr, "oxide chaos: %s='%s' is not a decimal number; using %" PRIu64 "\n", name,
                v, fallback);
        return fallback;
    }
    return n;
}

/* The calling thread's stream, drawn on its first chaos point. */
static void ensure_stream(void)
{
    if (!rng_ready) {
        /* Relaxed: only the uniqueness of the stream number matters. */
        uint64_t stream = atomic_fetch_add_explicit(&next_stream, 1, memory_order_relaxed);
        rng_state = splitmix64(chaos_seed + stream) | 1; /* xorshift needs non-zero */
        rng_ready = true;
    }
}

/* A forked child would inherit its forking thread's stream as it stands,
 * and the count of streams handed out: in a test that forks a child per
 * run, every child's threads would make the same draws (a point perturbed
 * in all children or in none), and successive children's forking threads
 * shifted copies of one stream. So the parent steps its stream at each
 * fork, and the child derives a seed of its own from where that stream
 * stood, and starts handing out streams anew. Both follow from the seed:
 * a replay forks the same children. (In the test binary oxide's own fork
 * handlers draw in the parent as well, so there only the child's reseed
 * is seen to matter; a process with no oxide thread yet has no such
 * draws, and there the step is what tells its children apart.) */
static void step_the_stream_before_fork(void)
{
    ensure_stream();
    (void)next_random();
}

static void reseed_the_child(void)
{
    chaos_seed = splitmix64(chaos_seed ^ rng_state);
    /* Relaxed: the child has one thread, this one. */
    atomic_store_explicit(&next_stream, 0, memory_order_relaxed);
    rng_ready = false;
}

__attribute__((constructor(101))) static void chaos_init(void)
{
    uint64_t clock_seed = splitmix64((uint64_t)ox__sys_monotonic_ns()) % 1000000000u;
    chaos_seed = env_number("OX_CHAOS_SEED", clock_seed);
    uint64_t rate = env_number("OX_CHAOS_RATE", 32);
    chaos_rate = rate == 0 ? 1 : (unsigned)rate;
    fprintf(stderr, "oxide chaos: seed %" PRIu64 " (replay with OX_CHAOS_SEED=%" PRIu64 ")\n",
            chaos_seed, chaos_seed);
    ox__sys_atfork(step_the_stream_before_fork, NULL, reseed_the_child);
}

uint64_t ox__chaos_draw(void)
{
    ensure_stream();
    return next_random();
}

void ox__chaos_point(void)
{
    uint64_t r = ox__chaos_draw();
    if (r % chaos_rate != 0)
        return;
    r >>= 16;
    /* One perturbation in 16 sleeps 1-20 us (longer in practice: the
     * kernel's timer slack), the others yield. Rarer sleeps keep spin loops,
     * which pass a point on every backoff step, from crawling. */
    if ((r & 15) == 0)
        ox__sys_sleep_until(ox__sys_monotonic_ns() + 1000 * (int64_t)(1 + (r >> 4) % 20));
    else
        ox__sys_yield();
}

#else
typedef int ox__chaos_disabled; /* ISO C wants a non-empty translation unit */
#endif

/* peer.h - helpers shared by the C peer benchmarks (pthread, glib,
 * c-thread-local). Header-only so each peer stays one translation unit
 * plus bench/harness.c.
 *
 * A "team" runs worker threads the way bench/WORKLOADS.md asks: the
 * threads are created before the timer, wait at a gate, and are released
 * together when the caller opens it (right after reading the clock); the
 * caller joins them before it reads the clock again. */
#ifndef OX_PEER_H
#define OX_PEER_H

#include "harness.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define PEER_MAX_THREADS 8

typedef struct peer_team peer_team;

typedef struct peer_member {
    peer_team *team;
    void (*fn)(void *);
    void *arg;
} peer_member;

struct peer_team {
    atomic_int gate;
    int n;
    pthread_t tid[PEER_MAX_THREADS];
    peer_member member[PEER_MAX_THREADS];
};

static inline void *peer_trampoline(void *p)
{
    peer_member *m = p;
    /* Acquire pairs with the release in peer_team_go: the worker sees
     * everything the main thread set up before opening the gate. */
    while (!atomic_load_explicit(&m->team->gate, memory_order_acquire))
        sched_yield();
    m->fn(m->arg);
    return NULL;
}

static inline void peer_die(const char *what)
{
    fprintf(stderr, "peer bench: %s failed\n", what);
    exit(1);
}

/* Start `n` threads running fn(args[i]), where args is an array of
 * elements of `stride` bytes (stride 0: every thread gets `args`). */
static inline void peer_team_start(peer_team *t, int n, void (*fn)(void *), void *args,
                                   size_t stride)
{
    if (n > PEER_MAX_THREADS)
        peer_die("peer_team_start (too many threads)");
    atomic_store_explicit(&t->gate, 0, memory_order_relaxed);
    t->n = n;
    for (int i = 0; i < n; i++) {
        t->member[i] = (peer_member){t, fn, (char *)args + stride * (size_t)i};
        if (pthread_create(&t->tid[i], NULL, peer_trampoline, &t->member[i]) != 0)
            peer_die("pthread_create");
    }
}

/* Read the clock, then release the team. Returns the start time. */
static inline uint64_t peer_team_go(peer_team *t)
{
    uint64_t t0 = ox_bench_now_ns();
    atomic_store_explicit(&t->gate, 1, memory_order_release);
    return t0;
}

static inline void peer_team_join(peer_team *t)
{
    for (int i = 0; i < t->n; i++)
        if (pthread_join(t->tid[i], NULL) != 0)
            peer_die("pthread_join");
}

/* The whole life of one team: start n threads as peer_team_start, release
 * them together, wait for all. Returns the nanoseconds from the release to
 * the last join. */
static inline uint64_t peer_team_run(int n, void (*fn)(void *), void *args, size_t stride)
{
    peer_team team;
    peer_team_start(&team, n, fn, args, stride);
    uint64_t t0 = peer_team_go(&team);
    peer_team_join(&team);
    return ox_bench_now_ns() - t0;
}

/* A result check that a workload cannot skip: abort loudly on a wrong
 * total, so a broken peer never prints a number. */
static inline void peer_check(int ok, const char *workload)
{
    if (!ok) {
        fprintf(stderr, "peer bench: %s: wrong result\n", workload);
        exit(1);
    }
}

#endif

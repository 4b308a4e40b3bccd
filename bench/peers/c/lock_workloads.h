/* lock_workloads.h - bench/WORKLOADS.md's mutex, rwlock and condvar
 * workloads, written once for every C peer, so that each runs exactly the
 * same code around its own primitives. Include it after defining:
 *   PEER_NAME                        the implementation's name, a string;
 *   static mutex, cv_mutex           two mutexes, rwlock, cv (a condvar),
 *          rwlock, cv                already initialised;
 *   PEER_MUTEX_LOCK(m), PEER_MUTEX_UNLOCK(m),
 *   PEER_READ_LOCK(l), PEER_READ_UNLOCK(l),
 *   PEER_WRITE_LOCK(l), PEER_WRITE_UNLOCK(l),
 *   PEER_COND_WAIT(c, m), PEER_COND_SIGNAL(c). */
#ifndef OX_PEER_LOCK_WORKLOADS_H
#define OX_PEER_LOCK_WORKLOADS_H

#include "peer.h"

#include <stdint.h>

/* ---- mutex ------------------------------------------------------------- */

enum { UNCONTENDED_OPS = 10000000, CONTENDED_THREADS = 4, CONTENDED_OPS = 1000000 };

static uint64_t mutex_counter;

OX_BENCH(mutex_uncontended, "mutex_uncontended", PEER_NAME)
{
    mutex_counter = 0;
    uint64_t t0 = ox_bench_now_ns();
    for (int i = 0; i < UNCONTENDED_OPS; i++) {
        PEER_MUTEX_LOCK(&mutex);
        mutex_counter++;
        PEER_MUTEX_UNLOCK(&mutex);
    }
    uint64_t ns = ox_bench_now_ns() - t0;
    peer_check(mutex_counter == UNCONTENDED_OPS, "mutex_uncontended");
    return (double)ns / UNCONTENDED_OPS;
}

static void contended_worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < CONTENDED_OPS; i++) {
        PEER_MUTEX_LOCK(&mutex);
        mutex_counter++;
        PEER_MUTEX_UNLOCK(&mutex);
    }
}

OX_BENCH(mutex_contended, "mutex_contended", PEER_NAME)
{
    mutex_counter = 0;
    uint64_t ns = peer_team_run(CONTENDED_THREADS, contended_worker, NULL, 0);
    peer_check(mutex_counter == (uint64_t)CONTENDED_THREADS * CONTENDED_OPS, "mutex_contended");
    return (double)ns / (CONTENDED_THREADS * CONTENDED_OPS);
}

/* ---- rwlock ------------------------------------------------------------ */

enum { RW_THREADS = 4, RW_OPS = 1000000, RW_WRITE_EVERY = 100 };

static uint64_t rw_value;

static void rw_worker(void *arg)
{
    (void)arg;
    uint64_t seen = 0;
    for (int i = 0; i < RW_OPS; i++) {
        if (i % RW_WRITE_EVERY == RW_WRITE_EVERY - 1) {
            PEER_WRITE_LOCK(&rwlock);
            rw_value++;
            PEER_WRITE_UNLOCK(&rwlock);
        } else {
            PEER_READ_LOCK(&rwlock);
            seen += rw_value;
            PEER_READ_UNLOCK(&rwlock);
        }
    }
    OX_BENCH_KEEP(seen);
}

OX_BENCH(rwlock_read_heavy, "rwlock_read_heavy", PEER_NAME)
{
    rw_value = 0;
    uint64_t ns = peer_team_run(RW_THREADS, rw_worker, NULL, 0);
    peer_check(rw_value == (uint64_t)RW_THREADS * (RW_OPS / RW_WRITE_EVERY), "rwlock_read_heavy");
    return (double)ns / (RW_THREADS * RW_OPS);
}

/* The read path alone: one thread, nobody else near the lock. */
OX_BENCH(rwlock_uncontended_read, "rwlock_uncontended_read", PEER_NAME)
{
    rw_value = 1;
    uint64_t seen = 0;
    uint64_t t0 = ox_bench_now_ns();
    for (int i = 0; i < UNCONTENDED_OPS; i++) {
        PEER_READ_LOCK(&rwlock);
        seen += rw_value;
        PEER_READ_UNLOCK(&rwlock);
    }
    uint64_t ns = ox_bench_now_ns() - t0;
    peer_check(seen == UNCONTENDED_OPS, "rwlock_uncontended_read");
    return (double)ns / UNCONTENDED_OPS;
}

/* ---- condvar ----------------------------------------------------------- */

enum { HANDOFFS = 100000 };

static int cv_turn;
static int cv_ids[2] = {0, 1};

/* Only the other thread can be waiting when one notifies, so one condvar
 * and signal (notify_one) suffice. */
static void pingpong_worker(void *arg)
{
    int me = *(int *)arg;
    for (int i = 0; i < HANDOFFS / 2; i++) {
        PEER_MUTEX_LOCK(&cv_mutex);
        while (cv_turn != me)
            PEER_COND_WAIT(&cv, &cv_mutex);
        cv_turn = 1 - me;
        PEER_COND_SIGNAL(&cv);
        PEER_MUTEX_UNLOCK(&cv_mutex);
    }
}

OX_BENCH(condvar_pingpong, "condvar_pingpong", PEER_NAME)
{
    cv_turn = 0;
    uint64_t ns = peer_team_run(2, pingpong_worker, cv_ids, sizeof cv_ids[0]);
    peer_check(cv_turn == 0, "condvar_pingpong");
    return (double)ns / HANDOFFS;
}

#endif

/* pthread.c - the `pthread` peer: bench/WORKLOADS.md's thread and lock
 * workloads on raw POSIX threads and glibc's default pthread_mutex_t,
 * pthread_rwlock_t (glibc default: reader-preferring) and pthread_cond_t. */
#include "peer.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* ---- threads ----------------------------------------------------------- */

enum { SPAWN_COUNT = 20000, SCOPE_COUNT = 5000, SCOPE_THREADS = 4 };

static void *empty_fn(void *arg)
{
    return arg;
}

OX_BENCH(spawn_join, "spawn_join", "pthread")
{
    uint64_t t0 = ox_bench_now_ns();
    for (int i = 0; i < SPAWN_COUNT; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, empty_fn, NULL) != 0)
            peer_die("pthread_create");
        pthread_join(t, NULL);
    }
    return (double)(ox_bench_now_ns() - t0) / SPAWN_COUNT;
}

static void *add_one(void *arg)
{
    atomic_fetch_add_explicit((atomic_ulong *)arg, 1, memory_order_relaxed);
    return NULL;
}

/* The pthread stand-in for a scope: create 4, join 4. */
OX_BENCH(scoped_spawn_join, "scoped_spawn_join", "pthread")
{
    atomic_ulong counter = 0;
    uint64_t t0 = ox_bench_now_ns();
    for (int s = 0; s < SCOPE_COUNT; s++) {
        pthread_t t[SCOPE_THREADS];
        for (int i = 0; i < SCOPE_THREADS; i++)
            if (pthread_create(&t[i], NULL, add_one, &counter) != 0)
                peer_die("pthread_create");
        for (int i = 0; i < SCOPE_THREADS; i++)
            pthread_join(t[i], NULL);
    }
    uint64_t ns = ox_bench_now_ns() - t0;
    peer_check(atomic_load(&counter) == (unsigned long)SCOPE_COUNT * SCOPE_THREADS,
               "scoped_spawn_join");
    return (double)ns / (SCOPE_COUNT * SCOPE_THREADS);
}

/* ---- mutex ------------------------------------------------------------- */

enum { UNCONTENDED_OPS = 10000000, CONTENDED_THREADS = 4, CONTENDED_OPS = 1000000 };

static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static uint64_t mutex_counter;

OX_BENCH(mutex_uncontended, "mutex_uncontended", "pthread")
{
    mutex_counter = 0;
    uint64_t t0 = ox_bench_now_ns();
    for (int i = 0; i < UNCONTENDED_OPS; i++) {
        pthread_mutex_lock(&mutex);
        mutex_counter++;
        pthread_mutex_unlock(&mutex);
    }
    uint64_t ns = ox_bench_now_ns() - t0;
    peer_check(mutex_counter == UNCONTENDED_OPS, "mutex_uncontended");
    return (double)ns / UNCONTENDED_OPS;
}

static void contended_worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < CONTENDED_OPS; i++) {
        pthread_mutex_lock(&mutex);
        mutex_counter++;
        pthread_mutex_unlock(&mutex);
    }
}

OX_BENCH(mutex_contended, "mutex_contended", "pthread")
{
    peer_team team;
    mutex_counter = 0;
    peer_team_start(&team, CONTENDED_THREADS, contended_worker, NULL, 0);
    uint64_t t0 = peer_team_go(&team);
    peer_team_join(&team);
    uint64_t ns = ox_bench_now_ns() - t0;
    peer_check(mutex_counter == (uint64_t)CONTENDED_THREADS * CONTENDED_OPS, "mutex_contended");
    return (double)ns / (CONTENDED_THREADS * CONTENDED_OPS);
}

/* ---- rwlock ------------------------------------------------------------ */

enum { RW_THREADS = 4, RW_OPS = 1000000, RW_WRITE_EVERY = 100 };

static pthread_rwlock_t rwlock = PTHREAD_RWLOCK_INITIALIZER;
static uint64_t rw_value;

static void rw_worker(void *arg)
{
    (void)arg;
    uint64_t seen = 0;
    for (int i = 0; i < RW_OPS; i++) {
        if (i % RW_WRITE_EVERY == RW_WRITE_EVERY - 1) {
            pthread_rwlock_wrlock(&rwlock);
            rw_value++;
            pthread_rwlock_unlock(&rwlock);
        } else {
            pthread_rwlock_rdlock(&rwlock);
            seen += rw_value;
            pthread_rwlock_unlock(&rwlock);
        }
    }
    OX_BENCH_KEEP(seen);
}

OX_BENCH(rwlock_read_heavy, "rwlock_read_heavy", "pthread")
{
    peer_team team;
    rw_value = 0;
    peer_team_start(&team, RW_THREADS, rw_worker, NULL, 0);
    uint64_t t0 = peer_team_go(&team);
    peer_team_join(&team);
    uint64_t ns = ox_bench_now_ns() - t0;
    peer_check(rw_value == (uint64_t)RW_THREADS * (RW_OPS / RW_WRITE_EVERY), "rwlock_read_heavy");
    return (double)ns / (RW_THREADS * RW_OPS);
}

/* ---- condvar ----------------------------------------------------------- */

enum { HANDOFFS = 100000 };

static pthread_mutex_t cv_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int cv_turn;
static int cv_ids[2] = {0, 1};

/* Only the other thread can be waiting when one notifies, so one condvar
 * and signal (notify_one) suffice. */
static void pingpong_worker(void *arg)
{
    int me = *(int *)arg;
    for (int i = 0; i < HANDOFFS / 2; i++) {
        pthread_mutex_lock(&cv_mutex);
        while (cv_turn != me)
            pthread_cond_wait(&cv, &cv_mutex);
        cv_turn = 1 - me;
        pthread_cond_signal(&cv);
        pthread_mutex_unlock(&cv_mutex);
    }
}

OX_BENCH(condvar_pingpong, "condvar_pingpong", "pthread")
{
    peer_team team;
    cv_turn = 0;
    peer_team_start(&team, 2, pingpong_worker, cv_ids, sizeof cv_ids[0]);
    uint64_t t0 = peer_team_go(&team);
    peer_team_join(&team);
    uint64_t ns = ox_bench_now_ns() - t0;
    peer_check(cv_turn == 0, "condvar_pingpong");
    return (double)ns / HANDOFFS;
}

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

/* ---- mutex, rwlock, condvar -------------------------------------------- */

#define PEER_NAME            "pthread"
#define PEER_MUTEX_LOCK(m)   pthread_mutex_lock(m)
#define PEER_MUTEX_UNLOCK(m) pthread_mutex_unlock(m)
#define PEER_READ_LOCK(l)    pthread_rwlock_rdlock(l)
#define PEER_READ_UNLOCK(l)  pthread_rwlock_unlock(l)
#define PEER_WRITE_LOCK(l)   pthread_rwlock_wrlock(l)
#define PEER_WRITE_UNLOCK(l) pthread_rwlock_unlock(l)
#define PEER_COND_WAIT(c, m) pthread_cond_wait(c, m)
#define PEER_COND_SIGNAL(c)  pthread_cond_signal(c)

static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t cv_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_rwlock_t rwlock = PTHREAD_RWLOCK_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

#include "lock_workloads.h"

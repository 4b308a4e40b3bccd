/* stress_locks - mutex and rwlock under random operation mixes.
 *
 * Invariants: mutual exclusion (a witness word each holder claims with an
 * exchange and must find unchanged when it leaves), counts conserved (the
 * counter equals the sum of every thread's increments, panicking holders
 * included), readers never see a writer or a torn pair, the lock-order
 * checker (on, report mode) finds no cycle in a consistent order, poisoning
 * shows exactly after a holder panicked. */
#include "stress.h"

#include <stdatomic.h>

enum { MAX_THREADS = 6 };

typedef struct shared {
    ox_mutex m, outer;
    ox_rwlock rw;
    _Atomic int witness;     /* 0, or the id of the thread inside m */
    long counter;            /* guarded by m */
    _Atomic int readers;     /* threads inside rw for reading */
    _Atomic int writer;      /* 1 while a writer is inside rw */
    uint64_t pair_a, pair_b; /* guarded by rw: always equal outside a write */
    _Atomic int panics;      /* holders that panicked (poisoning m) */
} shared;

typedef struct worker {
    shared *sh;
    int id;
    long ops;
    long increments;
    long writes;
    stress_rng rng;
} worker;

static void mutex_section(worker *w)
{
    shared *sh = w->sh;
    int prev = atomic_exchange_explicit(&sh->witness, w->id, memory_order_relaxed);
    STRESS_CHECK(prev == 0, "thread %d entered the mutex while %d was inside", w->id, prev);
    sh->counter++;
    w->increments++;
    if (stress_below(&w->rng, 8) == 0)
        ox_thread_yield();
    prev = atomic_exchange_explicit(&sh->witness, 0, memory_order_relaxed);
    STRESS_CHECK(prev == w->id, "thread %d left the mutex, but the witness says %d", w->id, prev);
}

static void *panic_inside(void *arg)
{
    worker *w = arg;
    int rc = ox_mutex_lock(&w->sh->m);
    STRESS_CHECK(rc == 0 || rc == OX_EPOISONED, "lock: %s", ox_strerror(rc));
    mutex_section(w);
    atomic_fetch_add_explicit(&w->sh->panics, 1, memory_order_relaxed);
    ox_panic("a holder panics on purpose");
}

static void write_section(worker *w)
{
    shared *sh = w->sh;
    STRESS_CHECK(atomic_load_explicit(&sh->readers, memory_order_relaxed) == 0,
                 "a writer is inside with readers");
    STRESS_CHECK(atomic_exchange_explicit(&sh->writer, 1, memory_order_relaxed) == 0,
                 "two writers inside");
    sh->pair_a++;
    if (stress_below(&w->rng, 8) == 0)
        ox_thread_yield();
    sh->pair_b++;
    w->writes++;
    atomic_store_explicit(&sh->writer, 0, memory_order_relaxed);
}

static void read_section(worker *w)
{
    shared *sh = w->sh;
    atomic_fetch_add_explicit(&sh->readers, 1, memory_order_relaxed);
    STRESS_CHECK(atomic_load_explicit(&sh->writer, memory_order_relaxed) == 0,
                 "a reader is inside with a writer");
    uint64_t a = sh->pair_a, b = sh->pair_b;
    STRESS_CHECK(a == b, "torn read: %llu != %llu", (unsigned long long)a, (unsigned long long)b);
    atomic_fetch_sub_explicit(&sh->readers, 1, memory_order_relaxed);
}

static void *work(void *arg)
{
    worker *w = arg;
    shared *sh = w->sh;
    for (long i = 0; i < w->ops; i++) {
        int rc;
        switch (stress_below(&w->rng, 10)) {
        case 0:
        case 1:
            rc = ox_mutex_lock(&sh->m);
            STRESS_CHECK(rc == 0 || rc == OX_EPOISONED, "lock: %s", ox_strerror(rc));
            mutex_section(w);
            ox_mutex_unlock(&sh->m);
            break;
        case 2:
            rc = ox_mutex_try_lock(&sh->m);
            if (rc == OX_EBUSY)
                break;
            STRESS_CHECK(rc == 0 || rc == OX_EPOISONED, "try_lock: %s", ox_strerror(rc));
            mutex_section(w);
            ox_mutex_unlock(&sh->m);
            break;
        case 3:
            rc = ox_mutex_lock_timeout(&sh->m, OX_MICROS(stress_below(&w->rng, 200)));
            if (rc == OX_ETIMEDOUT)
                break;
            STRESS_CHECK(rc == 0 || rc == OX_EPOISONED, "lock_timeout: %s", ox_strerror(rc));
            mutex_section(w);
            ox_mutex_unlock(&sh->m);
            break;
        case 4: /* nested, always outer before m: a consistent order */
            rc = ox_mutex_lock(&sh->outer);
            STRESS_CHECK(rc == 0, "outer: %s", ox_strerror(rc));
            rc = ox_mutex_lock(&sh->m);
            STRESS_CHECK(rc == 0 || rc == OX_EPOISONED, "lock: %s", ox_strerror(rc));
            mutex_section(w);
            ox_mutex_unlock(&sh->m);
            ox_mutex_unlock(&sh->outer);
            break;
        case 5:
            if (stress_below(&w->rng, 64) == 0) {
                ox_panic_payload *p = NULL;
                STRESS_CHECK(ox_catch_unwind(panic_inside, w, NULL, &p) == OX_EPANICKED,
                             "the panic was not caught");
                ox_panic_payload_free(p);
                STRESS_CHECK(ox_mutex_is_poisoned(&sh->m), "a panicking holder did not poison");
            } else {
                rc = ox_rwlock_write(&sh->rw);
                STRESS_CHECK(rc == 0, "write: %s", ox_strerror(rc));
                write_section(w);
                ox_rwlock_write_unlock(&sh->rw);
            }
            break;
        case 6:
            if (ox_rwlock_try_write(&sh->rw) == 0) {
                write_section(w);
                ox_rwlock_write_unlock(&sh->rw);
            }
            break;
        case 7:
            if (ox_rwlock_try_read(&sh->rw) == 0) {
                read_section(w);
                ox_rwlock_read_unlock(&sh->rw);
            }
            break;
        default:
            rc = ox_rwlock_read(&sh->rw);
            STRESS_CHECK(rc == 0, "read: %s", ox_strerror(rc));
            read_section(w);
            ox_rwlock_read_unlock(&sh->rw);
            break;
        }
    }
    return NULL;
}

static void quiet_hook(const ox_panic_payload *p)
{
    (void)p; /* the panics here are on purpose */
}

int main(int argc, char **argv)
{
    stress_init(argc, argv, "stress_locks");
    ox_panic_set_hook(quiet_hook);
    ox_lockdep_enable(OX_LOCKDEP_REPORT);
    stress_rng rng = stress_rng_for(0);
    ox_instant start = ox_instant_now();
    long rounds = 0;
    do {
        shared sh = {.m = OX_MUTEX_INIT, .outer = OX_MUTEX_INIT, .rw = OX_RWLOCK_INIT};
        int n = 2 + (int)stress_below(&rng, MAX_THREADS - 1);
        worker w[MAX_THREADS];
        ox_join_handle h[MAX_THREADS];
        for (int i = 0; i < n; i++) {
            w[i] = (worker){.sh = &sh,
                            .id = i + 1,
                            .ops = 200 + stress_below(&rng, 3000),
                            .rng = stress_rng_for((uint64_t)rounds * 16 + (uint64_t)i + 1)};
            h[i] = stress_spawn(work, &w[i]);
        }
        long increments = 0, writes = 0;
        for (int i = 0; i < n; i++) {
            stress_join(&h[i]);
            increments += w[i].increments;
            writes += w[i].writes;
        }
        int rc = ox_mutex_lock(&sh.m);
        STRESS_CHECK(rc == (atomic_load(&sh.panics) ? OX_EPOISONED : 0),
                     "poison state: %s after %d panics", ox_strerror(rc), atomic_load(&sh.panics));
        STRESS_CHECK(sh.counter == increments, "counter %ld, increments %ld", sh.counter,
                     increments);
        ox_mutex_unlock(&sh.m);
        STRESS_CHECK(sh.pair_a == (uint64_t)writes && sh.pair_b == (uint64_t)writes,
                     "pair %llu/%llu after %ld writes", (unsigned long long)sh.pair_a,
                     (unsigned long long)sh.pair_b, writes);
        rounds++;
    } while (stress_time_left(start));
    STRESS_CHECK(ox_lockdep_reports() == 0, "the lock-order checker reported a consistent order");
    printf("ok stress_locks seed=%" PRIu64 " rounds=%ld\n", stress_seed, rounds);
    return 0;
}

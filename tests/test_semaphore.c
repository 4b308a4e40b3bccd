/* Semaphore: permits are conserved and never over-issued under contention
 * (with timeouts mixed in), FIFO hand-off so a large acquire is served
 * before later small ones, timeouts hand collected permits on, close. */
#include "helpers.h"
#include "oxide.h"
#include "runner.h"

#include <stdatomic.h>
#include <stdint.h>

OX_TEST(semaphore_counts_and_try)
{
    ox_semaphore zero = {0};
    CHECK_EQ(ox_semaphore_available(&zero), 0);
    CHECK_EQ(ox_semaphore_try_acquire(&zero, 1), OX_EBUSY);
    CHECK_EQ(ox_semaphore_try_acquire(&zero, 0), 0);
    static ox_semaphore s = OX_SEMAPHORE_INIT(5);
    CHECK_EQ(ox_semaphore_available(&s), 5);
    CHECK_EQ(ox_semaphore_try_acquire(&s, 3), 0);
    CHECK_EQ(ox_semaphore_try_acquire(&s, 3), OX_EBUSY);
    CHECK_EQ(ox_semaphore_available(&s), 2);
    CHECK_EQ(ox_semaphore_acquire(&s, 2), 0);
    CHECK_EQ(ox_semaphore_acquire_timeout(&s, 1, OX_MILLIS(1)), OX_ETIMEDOUT);
    CHECK_EQ(ox_semaphore_acquire_timeout(&s, 1, -1), OX_EINVAL);
    CHECK_EQ(ox_semaphore_acquire(&s, OX_SEMAPHORE_MAX_PERMITS + 1), OX_EINVAL);
    ox_semaphore_release(&s, 5);
    CHECK_EQ(ox_semaphore_available(&s), 5);
    CHECK_EQ(ox_semaphore_init(&s, OX_SEMAPHORE_MAX_PERMITS + 1), OX_EINVAL);
    CHECK_EQ(ox_semaphore_init(&s, OX_SEMAPHORE_MAX_PERMITS), 0);
    CHECK_EQ(ox_semaphore_available(&s), OX_SEMAPHORE_MAX_PERMITS);
    CHECK_STR(ox_strerror(OX_ECLOSED), "closed: the semaphore was closed");
}

OX_TEST_OPTS(semaphore_release_overflow_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "ox_semaphore_release: semaphore")
{
    ox_semaphore s = OX_SEMAPHORE_INIT(OX_SEMAPHORE_MAX_PERMITS);
    ox_semaphore_release(&s, 1);
}

/* permits + n wrapped around for a huge n: releasing SIZE_MAX to a
 * semaphore holding 1 permit left it with 0, silently. */
OX_TEST_OPTS(semaphore_release_of_a_huge_count_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "ox_semaphore_release: semaphore")
{
    ox_semaphore s = OX_SEMAPHORE_INIT(1);
    ox_semaphore_release(&s, SIZE_MAX);
    ox_test_fail(__FILE__, __LINE__, "released SIZE_MAX: %zu permits now",
                 ox_semaphore_available(&s));
}

/* ---- conservation under contention ---- */

#define TOTAL   5
#define WORKERS 6

static struct {
    ox_semaphore sem;
    ox_test_budget budget; /* rounds per worker */
    _Atomic long in_use;   /* permits held right now, by everyone */
    _Atomic long over;     /* times in_use exceeded TOTAL */
    _Atomic long acquired; /* successful acquires, for the record */
} cons = {.sem = OX_SEMAPHORE_INIT(TOTAL)};

static void *conserve_worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u + 1;
    for (long i = 0; ox_test_budget_more(&cons.budget, i); i++) {
        seed = seed * 1103515245u + 12345u;
        size_t n = 1 + (seed >> 16) % TOTAL; /* 1..TOTAL: big ones must get through */
        int rc;
        switch ((seed >> 8) % 3) {
        case 0:
            rc = ox_semaphore_acquire(&cons.sem, n);
            break;
        case 1:
            rc = ox_semaphore_try_acquire(&cons.sem, n);
            break;
        default:
            rc = ox_semaphore_acquire_timeout(&cons.sem, n, OX_MICROS(50));
            break;
        }
        if (rc != 0) {
            CHECK(rc == OX_EBUSY || rc == OX_ETIMEDOUT);
            continue;
        }
        long now = atomic_fetch_add(&cons.in_use, (long)n) + (long)n;
        if (now > TOTAL)
            atomic_fetch_add(&cons.over, 1);
        atomic_fetch_add(&cons.acquired, 1);
        if (i % 4 == 0)
            ox_thread_yield();
        atomic_fetch_sub(&cons.in_use, (long)n);
        ox_semaphore_release(&cons.sem, n);
    }
    return NULL;
}

OX_TEST(semaphore_permits_conserved_under_contention)
{
    cons.budget = ox_test_budget_start(300, ox_test_scaled(20000));
    ox_join_handle h[WORKERS];
    for (int t = 0; t < WORKERS; t++)
        h[t] = ox_thread_spawn(conserve_worker, (void *)(uintptr_t)t);
    for (int t = 0; t < WORKERS; t++)
        ox_test_join(&h[t]);
    CHECK_EQ(atomic_load(&cons.over), 0);
    CHECK_EQ(atomic_load(&cons.in_use), 0);
    CHECK_EQ(ox_semaphore_available(&cons.sem), TOTAL);
    CHECK(atomic_load(&cons.acquired) > 0);
}

/* ---- FIFO: a big waiter is served before a later small one ---- */

typedef struct {
    ox_semaphore *sem;
    size_t n;
    ox_nanos timeout; /* < 0: no timeout */
    _Atomic int done;
    int rc;
} acq_job;

static void *acquirer(void *arg)
{
    acq_job *j = arg;
    j->rc = j->timeout < 0 ? ox_semaphore_acquire(j->sem, j->n)
                           : ox_semaphore_acquire_timeout(j->sem, j->n, j->timeout);
    atomic_store(&j->done, 1);
    return NULL;
}

OX_TEST(semaphore_fifo_big_acquire_not_overtaken)
{
    static ox_semaphore s; /* no permits */
    acq_job big = {.sem = &s, .n = 3, .timeout = -1};
    acq_job small = {.sem = &s, .n = 1, .timeout = -1};
    ox_join_handle hb = ox_thread_spawn(acquirer, &big);
    ox_test_wait_blocked_on(&s, 1);
    ox_join_handle hs = ox_thread_spawn(acquirer, &small);
    ox_test_wait_blocked_on(&s, 2);
    /* One permit: the big waiter keeps it; the small one, behind it, may not take it. */
    ox_semaphore_release(&s, 1);
    CHECK_EQ(ox_semaphore_available(&s), 0);
    CHECK_EQ(ox_semaphore_try_acquire(&s, 1), OX_EBUSY);
    ox_semaphore_release(&s, 2);
    ox_test_join(&hb);
    CHECK_EQ(big.rc, 0);
    CHECK_EQ(atomic_load(&small.done), 0); /* no permit has been left for it */
    ox_semaphore_release(&s, 1);
    ox_test_join(&hs);
    CHECK_EQ(small.rc, 0);
    CHECK_EQ(ox_semaphore_available(&s), 0);
}

/* Small acquires streaming through cannot starve a big one. */
static struct {
    ox_semaphore sem;
    _Atomic int stop;
} stream = {.sem = OX_SEMAPHORE_INIT(4)};

static void *small_streamer(void *arg)
{
    (void)arg;
    while (!atomic_load(&stream.stop)) {
        CHECK_EQ(ox_semaphore_acquire(&stream.sem, 1), 0);
        ox_semaphore_release(&stream.sem, 1);
    }
    return NULL;
}

OX_TEST(semaphore_big_acquire_not_starved)
{
    ox_join_handle h[3];
    for (int t = 0; t < 3; t++)
        h[t] = ox_thread_spawn(small_streamer, NULL);
    for (long i = 0; i < ox_test_scaled(300); i++) {
        CHECK_EQ(ox_semaphore_acquire(&stream.sem, 4), 0); /* a hang fails by timeout */
        ox_semaphore_release(&stream.sem, 4);
    }
    atomic_store(&stream.stop, 1);
    for (int t = 0; t < 3; t++)
        ox_test_join(&h[t]);
    CHECK_EQ(ox_semaphore_available(&stream.sem), 4);
}

/* A waiter that times out hands the permits it collected to the next. */
OX_TEST(semaphore_timeout_hands_collected_permits_on)
{
    static ox_semaphore s;
    /* The first must still wait when the release comes (else the permits
     * go to the second): a bound that load stretches like the rest. */
    acq_job first = {.sem = &s, .n = 5, .timeout = ox_test_bound(OX_SECS(1))};
    acq_job second = {.sem = &s, .n = 2, .timeout = -1};
    ox_join_handle h1 = ox_thread_spawn(acquirer, &first);
    ox_test_wait_blocked_on(&s, 1);
    ox_join_handle h2 = ox_thread_spawn(acquirer, &second);
    ox_test_wait_blocked_on(&s, 2);
    ox_semaphore_release(&s, 3); /* all to the first, which cannot complete */
    CHECK_EQ(ox_semaphore_available(&s), 0);
    ox_test_join(&h1);
    CHECK_EQ(first.rc, OX_ETIMEDOUT);
    ox_test_join(&h2); /* served from the first's three */
    CHECK_EQ(second.rc, 0);
    CHECK_EQ(ox_semaphore_available(&s), 1);
}

OX_TEST(semaphore_close_fails_waiters_and_returns_their_permits)
{
    static ox_semaphore s;
    acq_job a = {.sem = &s, .n = 5, .timeout = -1};
    acq_job b = {.sem = &s, .n = 1, .timeout = -1};
    ox_join_handle ha = ox_thread_spawn(acquirer, &a);
    ox_test_wait_blocked_on(&s, 1);
    ox_join_handle hb = ox_thread_spawn(acquirer, &b);
    ox_test_wait_blocked_on(&s, 2);
    ox_semaphore_release(&s, 2); /* a holds 2 of its 5 */
    CHECK(!ox_semaphore_is_closed(&s));
    ox_semaphore_close(&s);
    CHECK(ox_semaphore_is_closed(&s));
    ox_test_join(&ha);
    ox_test_join(&hb);
    CHECK_EQ(a.rc, OX_ECLOSED);
    CHECK_EQ(b.rc, OX_ECLOSED);
    CHECK_EQ(ox_semaphore_available(&s), 2);
    CHECK_EQ(ox_semaphore_try_acquire(&s, 1), OX_ECLOSED);
    CHECK_EQ(ox_semaphore_acquire(&s, 1), OX_ECLOSED);
    ox_semaphore_release(&s, 1);
    CHECK_EQ(ox_semaphore_available(&s), 3);
}

/* Waiters at a counted site (park.h: ox__wait_site.counted) are seen by
 * ox__park_may_have_waiters while they wait, and a waker that skips its
 * wake when it sees none loses no wake-up: threads and tasks. */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include "thread/park.h"

#include <stdatomic.h>
#include <stdint.h>

static const ox__wait_site counted_site = {.what = "counted test word", .counted = true};

/* The waker's half: a seq_cst change of the word, then a wake only if a
 * waiter may sleep (as the condvar's notify). */
static void bump(_Atomic uint32_t *word)
{
    atomic_fetch_add_explicit(word, 1, memory_order_seq_cst);
    if (ox__park_may_have_waiters(word))
        (void)ox__park_wake_one(word);
}

static void wait_past(_Atomic uint32_t *word, uint32_t seen)
{
    while (atomic_load_explicit(word, memory_order_relaxed) == seen)
        (void)ox__park_wait(word, seen, OX_INSTANT_NEVER, &counted_site, word);
}

/* Two sides take turns, each sleeping on a word of its own until the other
 * bumps it, with no spin: nearly every turn has a waiter counting itself
 * while its waker looks at the count. word[k] is how many turns side k has
 * been given; side 0 has the first. A skipped wake that a sleeper needed
 * hangs the test, which the runner fails by name. */
typedef struct relay {
    _Atomic uint32_t word[2];
    long turns;
} relay;

typedef struct relay_side {
    relay *r;
    int me;
} relay_side;

static void *take_turns(void *arg)
{
    const relay_side *s = arg;
    relay *r = s->r;
    for (long i = 0; i < r->turns; i++) {
        wait_past(&r->word[s->me], (uint32_t)i);
        bump(&r->word[1 - s->me]);
    }
    return NULL;
}

static relay new_relay(void)
{
    relay r = {.turns = ox_test_scaled(40000)};
    atomic_init(&r.word[0], 1);
    atomic_init(&r.word[1], 0);
    return r;
}

static void check_relay_done(relay *r)
{
    CHECK_EQ(atomic_load(&r->word[0]), r->turns + 1);
    CHECK_EQ(atomic_load(&r->word[1]), r->turns);
}

OX_TEST_OPTS(park_counted_relay_of_threads_loses_no_wake, .timeout_s = 60)
{
    relay r = new_relay();
    relay_side sides[2] = {{&r, 0}, {&r, 1}};
    ox_join_handle h = ox_test_spawn_named("side 1", take_turns, &sides[1]);
    take_turns(&sides[0]);
    ox_test_join(&h);
    check_relay_done(&r);
}

OX_TEST_OPTS(park_counted_relay_of_a_task_and_a_thread_loses_no_wake, .timeout_s = 60)
{
    ox_runtime *rt = ox_test_runtime(1);
    relay r = new_relay();
    relay_side sides[2] = {{&r, 0}, {&r, 1}};
    ox_task_handle t = ox_test_spawn_on(rt, take_turns, &sides[1]);
    take_turns(&sides[0]);
    CHECK_EQ(ox_task_join(&t, NULL, NULL), 0);
    check_relay_done(&r);
    ox_runtime_shutdown(rt);
}

OX_TEST_OPTS(park_counted_relay_of_tasks_on_two_workers_loses_no_wake, .timeout_s = 60)
{
    ox_runtime *rt = ox_test_runtime(2);
    relay r = new_relay();
    relay_side sides[2] = {{&r, 0}, {&r, 1}};
    ox_task_handle t[2] = {ox_test_spawn_on(rt, take_turns, &sides[0]),
                           ox_test_spawn_on(rt, take_turns, &sides[1])};
    for (int i = 0; i < 2; i++)
        CHECK_EQ(ox_task_join(&t[i], NULL, NULL), 0);
    check_relay_done(&r);
    ox_runtime_shutdown(rt);
}

static _Atomic uint32_t watched_word;

static void *wait_for_watched_word(void *arg)
{
    (void)arg;
    wait_past(&watched_word, 0);
    return NULL;
}

/* While a thread or a task sleeps at a counted site, its word may have
 * waiters; the answer is what lets the waker skip its wake otherwise. */
OX_TEST(park_counted_waiters_are_seen_while_they_sleep)
{
    ox_runtime *rt = ox_test_runtime(1);
    ox_join_handle thread = ox_test_spawn_named("sleeper", wait_for_watched_word, NULL);
    ox_test_wait_blocked_at(counted_site.what, 1);
    CHECK(ox__park_may_have_waiters(&watched_word));
    ox_task_handle task = ox_test_spawn_on(rt, wait_for_watched_word, NULL);
    ox_test_wait_blocked_at(counted_site.what, 2);
    CHECK(ox__park_may_have_waiters(&watched_word));
    atomic_store_explicit(&watched_word, 1, memory_order_seq_cst);
    (void)ox__park_wake_all(&watched_word);
    ox_test_join(&thread);
    CHECK_EQ(ox_task_join(&task, NULL, NULL), 0);
    ox_runtime_shutdown(rt);
}

/* watch: receivers see the latest value, never a torn one, and changes in
 * order; a sender's drop lets them see the last value, then
 * OX_EDISCONNECTED; closed() and the clone/destroy hooks. */
#include "helpers.h"
#include "oxide.h"
#include "runner.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

OX_TEST(watch_versions_borrow_and_changed)
{
    ox_watch_sender *tx;
    ox_watch_receiver *rx;
    int v = 1, got = 0;
    CHECK_EQ(ox_watch(sizeof v, &v, &tx, &rx), 0);
    bool changed = true;
    CHECK_EQ(ox_watch_has_changed(rx, &changed), 0);
    CHECK(!changed);                                     /* the initial value counts as seen */
    CHECK_EQ(ox_watch_has_changed(rx, NULL), OX_EINVAL); /* not a crash */
    CHECK_EQ(ox_watch_changed_timeout(rx, OX_MILLIS(1)), OX_ETIMEDOUT);
    CHECK_EQ(ox_watch_changed_timeout(rx, -1), OX_EINVAL);
    ox_watch_borrow(rx, &got);
    CHECK_EQ(got, 1);
    v = 2;
    CHECK_EQ(ox_watch_send(tx, &v), 0);
    v = 3;
    CHECK_EQ(ox_watch_send(tx, &v), 0);
    ox_watch_receiver *copy = ox_watch_receiver_clone(rx); /* has seen what rx saw */
    ox_watch_receiver *fresh = ox_watch_subscribe(tx);     /* has seen 3 */
    CHECK_EQ(ox_watch_has_changed(rx, &changed), 0);
    CHECK(changed);
    ox_watch_borrow(rx, &got); /* does not mark */
    CHECK_EQ(got, 3);
    CHECK_EQ(ox_watch_has_changed(rx, &changed), 0);
    CHECK(changed);
    CHECK_EQ(ox_watch_changed(rx), 0); /* two sends, one change seen */
    CHECK_EQ(ox_watch_changed_timeout(rx, OX_MILLIS(1)), OX_ETIMEDOUT);
    ox_watch_borrow_and_update(copy, &got);
    CHECK_EQ(got, 3);
    CHECK_EQ(ox_watch_has_changed(copy, &changed), 0);
    CHECK(!changed);
    CHECK_EQ(ox_watch_has_changed(fresh, &changed), 0);
    CHECK(!changed);
    int old = 0;
    v = 4;
    ox_watch_send_replace(tx, &v, &old);
    CHECK_EQ(old, 3);
    ox_watch_sender_borrow(tx, &got);
    CHECK_EQ(got, 4);
    CHECK_EQ(ox_watch_receiver_count(tx), 3);
    ox_watch_receiver_drop(copy);
    ox_watch_receiver_drop(fresh);
    ox_watch_receiver_drop(rx);
    CHECK(ox_watch_is_closed(tx));
    CHECK_EQ(ox_watch_closed(tx), 0);
    CHECK_EQ(ox_watch_send(tx, &v), OX_EDISCONNECTED);
    ox_watch_send_replace(tx, &v, NULL); /* stores all the same */
    ox_watch_sender_drop(tx);
    CHECK_EQ(ox_watch(0, &v, &tx, &rx), OX_EINVAL);
    CHECK_EQ(ox_watch(sizeof v, NULL, &tx, &rx), OX_EINVAL);
}

static void add_ten(void *value, void *arg)
{
    *(int *)value += *(int *)arg;
}

OX_TEST(watch_sender_drop_last_value_then_disconnected)
{
    ox_watch_sender *tx;
    ox_watch_receiver *rx;
    int v = 0, got = -1, ten = 10;
    CHECK_EQ(ox_watch(sizeof v, &v, &tx, &rx), 0);
    ox_watch_send_modify(tx, add_ten, &ten);
    ox_watch_sender_drop(tx);
    bool changed = false;
    CHECK_EQ(ox_watch_has_changed(rx, &changed), 0);
    CHECK(changed);
    CHECK_EQ(ox_watch_changed(rx), 0); /* the last value is still a change */
    ox_watch_borrow(rx, &got);
    CHECK_EQ(got, 10);
    CHECK_EQ(ox_watch_changed(rx), OX_EDISCONNECTED);
    CHECK_EQ(ox_watch_has_changed(rx, &changed), OX_EDISCONNECTED);
    CHECK(!changed);
    ox_watch_borrow(rx, &got); /* still readable */
    CHECK_EQ(got, 10);
    ox_watch_receiver_drop(rx);
}

OX_TEST_OPTS(watch_dropped_receiver_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "ox_watch_changed: watch receiver")
{
    ox_watch_sender *tx;
    ox_watch_receiver *rx;
    int v = 0;
    CHECK_EQ(ox_watch(sizeof v, &v, &tx, &rx), 0);
    ox_watch_receiver *rx2 = ox_watch_subscribe(tx);
    ox_watch_receiver_drop(rx2);
    (void)!ox_watch_changed(rx2);
}

/* A blocked changed() is woken by a send, and by the sender's drop. */
typedef struct {
    ox_watch_receiver *rx;
    int rc1, rc2, value;
} changed_job;

static _Atomic int woken_by_send;

static void *wait_changes(void *arg)
{
    changed_job *j = arg;
    j->rc1 = ox_watch_changed(j->rx);
    ox_watch_borrow(j->rx, &j->value);
    atomic_fetch_add(&woken_by_send, 1);
    j->rc2 = ox_watch_changed(j->rx);
    return NULL;
}

OX_TEST(watch_blocked_receivers_woken_by_send_and_by_drop)
{
    ox_watch_sender *tx;
    ox_watch_receiver *rx;
    int v = 0;
    CHECK_EQ(ox_watch(sizeof v, &v, &tx, &rx), 0);
    changed_job j[2] = {{.rx = rx}, {.rx = ox_watch_subscribe(tx)}};
    ox_join_handle h[2];
    for (int i = 0; i < 2; i++)
        h[i] = ox_thread_spawn(wait_changes, &j[i]);
    ox_test_wait_blocked_at("watch changed", 2);
    v = 5;
    CHECK_EQ(ox_watch_send(tx, &v), 0);
    /* Both wait again: each has left its first wait (else the registry
     * could still show that one, and a drop before the second wait would
     * need no wake-up), then entered its second. */
    while (atomic_load(&woken_by_send) < 2)
        ox_thread_yield();
    ox_test_wait_blocked_at("watch changed", 2);
    ox_watch_sender_drop(tx);
    for (int i = 0; i < 2; i++) {
        ox_test_join(&h[i]);
        CHECK_EQ(j[i].rc1, 0);
        CHECK_EQ(j[i].value, 5);
        CHECK_EQ(j[i].rc2, OX_EDISCONNECTED);
        ox_watch_receiver_drop(j[i].rx);
    }
}

static void *drop_receiver_later(void *arg)
{
    ox_test_wait_blocked_at("watch closed", 1);
    ox_watch_receiver_drop(arg);
    return NULL;
}

OX_TEST(watch_closed_waits_for_the_last_receiver)
{
    ox_watch_sender *tx;
    ox_watch_receiver *rx;
    int v = 0;
    CHECK_EQ(ox_watch(sizeof v, &v, &tx, &rx), 0);
    CHECK_EQ(ox_watch_closed_deadline(tx, ox_instant_after(OX_MILLIS(1))), OX_ETIMEDOUT);
    ox_join_handle h = ox_thread_spawn(drop_receiver_later, rx);
    CHECK_EQ(ox_watch_closed(tx), 0);
    CHECK(ox_watch_is_closed(tx));
    ox_test_join(&h);
    ox_watch_sender_drop(tx);
}

/* ---- many readers of a fast writer ---- */

typedef struct {
    long a, b; /* b == 3 * a: a torn read breaks it */
} pair;

#define READERS 3

static struct {
    ox_watch_sender *tx;
    long sends;
} wr;

typedef struct {
    ox_watch_receiver *rx;
    long last, torn, backwards, changes;
} reader_job;

static void *watch_reader(void *arg)
{
    reader_job *j = arg;
    j->last = 0;
    for (;;) {
        int rc = j->changes % 4 == 0 ? ox_watch_changed_timeout(j->rx, OX_MICROS(50))
                                     : ox_watch_changed(j->rx);
        if (rc == OX_EDISCONNECTED)
            break;
        if (rc == OX_ETIMEDOUT) {
            j->changes++;
            continue;
        }
        CHECK_EQ(rc, 0);
        pair p;
        ox_watch_borrow_and_update(j->rx, &p);
        if (p.b != 3 * p.a)
            j->torn++;
        if (p.a <= j->last)
            j->backwards++; /* a change must show a newer value */
        j->last = p.a;
        j->changes++;
    }
    return NULL;
}

OX_TEST(watch_readers_see_latest_untorn_then_last_value)
{
    ox_test_budget budget = ox_test_budget_start(5000, ox_test_scaled(100000));
    pair p = {0, 0};
    ox_watch_receiver *first;
    CHECK_EQ(ox_watch(sizeof p, &p, &wr.tx, &first), 0);
    reader_job jobs[READERS];
    ox_join_handle h[READERS];
    for (int i = 0; i < READERS; i++) {
        jobs[i] = (reader_job){.rx = i == 0 ? first : ox_watch_subscribe(wr.tx)};
        h[i] = ox_thread_spawn(watch_reader, &jobs[i]);
    }
    for (long i = 1; ox_test_budget_more(&budget, i - 1); i++) {
        wr.sends = i;
        p = (pair){i, 3 * i};
        CHECK_EQ(ox_watch_send(wr.tx, &p), 0);
        if (i % 128 == 0)
            ox_thread_yield();
    }
    ox_watch_sender_drop(wr.tx);
    for (int i = 0; i < READERS; i++) {
        ox_test_join(&h[i]);
        CHECK_EQ(jobs[i].torn, 0);
        CHECK_EQ(jobs[i].backwards, 0);
        CHECK_EQ(jobs[i].last, wr.sends); /* each saw the last value before the end */
        ox_watch_receiver_drop(jobs[i].rx);
    }
}

/* ---- owned values ---- */

static _Atomic long live;

static void *make_value(long v)
{
    long *p = malloc(sizeof *p);
    CHECK(p != NULL);
    *p = v;
    atomic_fetch_add(&live, 1);
    return p;
}

static void clone_value(void *dst, const void *src)
{
    *(void **)dst = make_value(**(long *const *)src);
}

static void destroy_value(void *value)
{
    free(*(void **)value);
    atomic_fetch_sub(&live, 1);
}

OX_TEST(watch_clones_and_destroys_owned_values)
{
    void *init = make_value(1);
    ox_watch_options o = {.elem_size = sizeof(void *),
                          .initial = &init,
                          .clone = clone_value,
                          .destroy = destroy_value};
    ox_watch_sender *tx;
    ox_watch_receiver *rx;
    CHECK_EQ(ox_watch_with(&o, &tx, &rx), 0);
    void *got;
    ox_watch_borrow(rx, &got); /* a clone of its own */
    CHECK_EQ(*(long *)got, 1);
    CHECK_EQ(atomic_load(&live), 2);
    destroy_value(&got);
    void *two = make_value(2);
    CHECK_EQ(ox_watch_send(tx, &two), 0); /* 1 destroyed */
    CHECK_EQ(atomic_load(&live), 1);
    void *three = make_value(3), *old = NULL;
    ox_watch_send_replace(tx, &three, &old); /* 2 handed back */
    CHECK_EQ(*(long *)old, 2);
    destroy_value(&old);
    CHECK_EQ(atomic_load(&live), 1);
    ox_watch_receiver_drop(rx);
    void *four = make_value(4);
    CHECK_EQ(ox_watch_send(tx, &four), OX_EDISCONNECTED); /* still ours */
    destroy_value(&four);
    ox_watch_sender_drop(tx); /* the last value goes with the channel */
    CHECK_EQ(atomic_load(&live), 0);
}

/* ---- a panicking modify or clone ---- */

static struct {
    ox_watch_sender *tx;
    ox_watch_receiver *rx;
    _Atomic int clones_to_fail;
} wp;

static void modify_then_panic(void *value, void *arg)
{
    (void)arg;
    *(long *)value = 42;
    ox_panic("modify gave up halfway");
}

static void clone_or_panic(void *dst, const void *src)
{
    if (atomic_fetch_sub(&wp.clones_to_fail, 1) > 0)
        ox_panic("clone failed");
    *(long *)dst = *(const long *)src;
}

static void *send_modify_panics(void *arg)
{
    (void)arg;
    ox_watch_send_modify(wp.tx, modify_then_panic, NULL);
    return NULL;
}

static void *borrow_panics(void *arg)
{
    long v;
    if (arg)
        ox_watch_sender_borrow(wp.tx, &v);
    else
        ox_watch_borrow(wp.rx, &v);
    return NULL;
}

/* modify and clone run under the channel's internal lock, and a panic in
 * them left it held: the next call on the channel hung for good. Tokio's
 * send_modify keeps the channel usable, with the changes made before the
 * panic visible and no receiver told. */
OX_TEST_OPTS(watch_panicking_modify_or_clone_leaves_the_channel_usable, .timeout_s = 10)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    long zero = 0;
    ox_watch_options o = {.elem_size = sizeof(long), .initial = &zero, .clone = clone_or_panic};
    CHECK_EQ(ox_watch_with(&o, &wp.tx, &wp.rx), 0);
    CHECK_EQ(ox_catch_unwind(send_modify_panics, NULL, NULL, NULL), OX_EPANICKED);
    bool changed = true;
    CHECK_EQ(ox_watch_has_changed(wp.rx, &changed), 0); /* hung here */
    CHECK(!changed);
    long v = 0;
    ox_watch_borrow(wp.rx, &v);
    CHECK_EQ(v, 42);
    atomic_store(&wp.clones_to_fail, 2);
    CHECK_EQ(ox_catch_unwind(borrow_panics, NULL, NULL, NULL), OX_EPANICKED);
    CHECK_EQ(ox_catch_unwind(borrow_panics, (void *)1, NULL, NULL), OX_EPANICKED);
    long one = 1;
    CHECK_EQ(ox_watch_send(wp.tx, &one), 0);
    CHECK_EQ(ox_watch_changed(wp.rx), 0);
    ox_watch_borrow_and_update(wp.rx, &v);
    CHECK_EQ(v, 1);
    ox_watch_receiver_drop(wp.rx);
    ox_watch_sender_drop(wp.tx);
}

static _Atomic int destroys_to_fail;

static void destroy_or_panic(void *value)
{
    (void)value;
    if (atomic_fetch_sub(&destroys_to_fail, 1) > 0)
        ox_panic("destroy failed");
}

static void *send_two(void *arg)
{
    (void)arg;
    long two = 2;
    (void)!ox_watch_send(wp.tx, &two);
    return NULL;
}

/* destroy of the replaced value runs under the lock too: a panic in it
 * left the lock held (the next call hung) and the new value unstored. Now
 * the send completes as the panic leaves, as in Tokio, where the old value
 * is dropped once the new one is in. */
OX_TEST_OPTS(watch_panicking_destroy_in_a_send_still_sends, .timeout_s = 10)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    long zero = 0;
    ox_watch_options o = {.elem_size = sizeof(long), .initial = &zero, .destroy = destroy_or_panic};
    CHECK_EQ(ox_watch_with(&o, &wp.tx, &wp.rx), 0);
    atomic_store(&destroys_to_fail, 1);
    CHECK_EQ(ox_catch_unwind(send_two, NULL, NULL, NULL), OX_EPANICKED);
    bool changed = false;
    CHECK_EQ(ox_watch_has_changed(wp.rx, &changed), 0); /* hung here */
    CHECK(changed);
    long v = 0;
    ox_watch_borrow_and_update(wp.rx, &v);
    CHECK_EQ(v, 2);
    ox_watch_receiver_drop(wp.rx);
    ox_watch_sender_drop(wp.tx);
}

static void *drop_watch_sender(void *tx)
{
    ox_watch_sender_drop(tx);
    return NULL;
}

/* The last handle's drop destroys the last value, then frees the channel:
 * a destroy that panicked skipped the free (LeakSanitizer: the channel, its
 * value and its handles lost). Now the memory is freed as the panic
 * leaves. Fails before the fix only where leaks are checked (asan). */
OX_TEST(watch_panicking_destroy_as_the_channel_is_freed_still_frees_it)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    long zero = 0;
    ox_watch_options o = {.elem_size = sizeof(long), .initial = &zero, .destroy = destroy_or_panic};
    ox_watch_sender *tx;
    ox_watch_receiver *rx;
    CHECK_EQ(ox_watch_with(&o, &tx, &rx), 0);
    ox_watch_receiver_drop(rx);
    atomic_store(&destroys_to_fail, 1);
    CHECK_EQ(ox_catch_unwind(drop_watch_sender, tx, NULL, NULL), OX_EPANICKED);
    CHECK_EQ(atomic_load(&destroys_to_fail), 0); /* the destroy ran, and panicked */
    /* No pointer to the channel may stay reachable for LeakSanitizer. */
    *(ox_watch_sender *volatile *)&tx = NULL;
    *(ox_watch_receiver *volatile *)&rx = NULL;
}

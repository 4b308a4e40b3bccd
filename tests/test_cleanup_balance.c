/* test_cleanup_balance.c - a user callback that oxide wraps in a cleanup of
 * its own (a thread-local's initialiser, an Arc's drop, a channel's
 * destructor) and that returns with its cleanups unbalanced aborts with a
 * clear message. Before, oxide's ox_cleanup_pop took the callback's leftover
 * entry and left its own, whose argument lay in a stack frame about to be
 * gone: a later panic would have run it on that dead frame. */
#include "oxide/arc.h"
#include "oxide/chan.h"
#include "oxide/mutex.h"
#include "oxide/panic.h"
#include "oxide/tls.h"

#include "helpers.h"

static _Atomic int ran;

static void count_cleanup(void *arg)
{
    (void)arg;
    ran++;
}

#define UNBALANCED "returned with its cleanups unbalanced"

/* ---- a thread-local's initialiser ---- */

static void init_leaving_a_cleanup(int *v)
{
    *v = 1;
    ox_cleanup_push(count_cleanup, NULL);
}
OX_THREAD_LOCAL(left_pushed, int, init_leaving_a_cleanup, NULL);

OX_TEST_OPTS(tls_init_that_leaves_a_cleanup_pushed_aborts, .expect_signal = SIGABRT,
             .expect_stderr = UNBALANCED)
{
    (void)OX_TLS_GET(left_pushed);
}

static void init_popping_one_too_many(int *v)
{
    *v = 1;
    ox_cleanup_pop(false); /* oxide's own, pushed around this call */
}
OX_THREAD_LOCAL(popped_extra, int, init_popping_one_too_many, NULL);

OX_TEST_OPTS(tls_init_that_pops_a_cleanup_it_did_not_push_aborts, .expect_signal = SIGABRT,
             .expect_stderr = UNBALANCED)
{
    /* One of the caller's own below: the extra pop must not go unseen by
     * taking this one instead. */
    ox_cleanup_push(count_cleanup, NULL);
    (void)OX_TLS_GET(popped_extra);
}

static ox_mutex init_lock = OX_MUTEX_INIT;

/* Balanced: a cleanup pushed and popped, and a lock left held for the
 * caller (a lock is not a cleanup: the check skips it). */
static void init_balanced(int *v)
{
    ox_cleanup_push(count_cleanup, NULL);
    *v = 5;
    ox_cleanup_pop(true);
    CHECK(ox_mutex_lock(&init_lock) == 0);
}
OX_THREAD_LOCAL(balanced, int, init_balanced, NULL);

OX_TEST(tls_init_with_balanced_cleanups_and_a_held_lock_is_fine)
{
    ox_cleanup_push(count_cleanup, NULL);
    CHECK(*OX_TLS_GET(balanced) == 5);
    ox_mutex_unlock(&init_lock);
    CHECK(ran == 1);
    ox_cleanup_pop(true); /* the test's own, still there */
    CHECK(ran == 2);
    CHECK_UNWOUND();
}

/* ---- an Arc's drop function ---- */

static void drop_leaving_a_cleanup(void *payload)
{
    (void)payload;
    ox_cleanup_push(count_cleanup, NULL);
}

OX_TEST_OPTS(arc_drop_that_leaves_a_cleanup_pushed_aborts, .expect_signal = SIGABRT,
             .expect_stderr = UNBALANCED)
{
    int *p = ox_arc_new(sizeof *p, drop_leaving_a_cleanup);
    ox_arc_drop(p);
}

/* ---- a channel's destructor, on the messages a last receiver drops ---- */

static void destroy_leaving_a_cleanup(void *elem)
{
    (void)elem;
    ox_cleanup_push(count_cleanup, NULL);
}

static void drop_receiver_with_one_buffered(size_t capacity)
{
    ox_channel_options o = {
        .elem_size = sizeof(int), .capacity = capacity, .destroy = destroy_leaving_a_cleanup};
    ox_sender *tx;
    ox_receiver *rx;
    CHECK(ox_channel_with(&o, &tx, &rx) == 0);
    int v = 1;
    CHECK(ox_sender_send(tx, &v) == 0);
    ox_receiver_drop(rx);
}

OX_TEST_OPTS(unbounded_channel_destructor_that_leaves_a_cleanup_aborts, .expect_signal = SIGABRT,
             .expect_stderr = UNBALANCED)
{
    drop_receiver_with_one_buffered(OX_UNBOUNDED);
}

OX_TEST_OPTS(bounded_channel_destructor_that_leaves_a_cleanup_aborts, .expect_signal = SIGABRT,
             .expect_stderr = UNBALANCED)
{
    drop_receiver_with_one_buffered(4);
}

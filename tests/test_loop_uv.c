/* A libuv loop and oxide channels, both directions (issue 14, item 3), as
 * tests/test_loop_glib.c does for GLib:
 * (a) the loop is woken by a channel (its receiver's event fd, watched
 *     with a uv_poll_t) and drains it with try_recv: every message from
 *     racing thread and task senders arrives, in each sender's order;
 * (b) the loop feeds channels from its own callbacks (a uv_idle_t that
 *     try_sends) and a task and a thread receive every value.
 * Built only where the compiler finds libuv (the Makefile's HAVE_UV). */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#ifdef OX_HAVE_UV
#include <stdint.h>
#include <uv.h>

typedef struct loop_state {
    uv_poll_t poll;
    ox_test_loop_feed feed;
} loop_state;

/* The fd watch: drain until empty (that clears the fd) or disconnected. */
static void on_readable(uv_poll_t *poll, int status, int events)
{
    CHECK_EQ(status, 0);
    CHECK(events & UV_READABLE);
    loop_state *s = poll->data;
    if (ox_test_loop_feed_drain(&s->feed) == OX_EDISCONNECTED) {
        CHECK_EQ(uv_poll_stop(poll), 0); /* the loop has nothing left: it returns */
        uv_close((uv_handle_t *)poll, NULL);
    }
}

static void uv_loop_woken_by(size_t cap)
{
    uv_loop_t loop;
    CHECK_EQ(uv_loop_init(&loop), 0);
    loop_state s;
    ox_test_loop_feed_start(&s.feed, cap, cap == 0 ? 200 : 2000,
                            ox_test_scaled(cap == 0 ? 3000 : 30000));
    CHECK_EQ(uv_poll_init(&loop, &s.poll, s.feed.fd), 0);
    s.poll.data = &s;
    CHECK_EQ(uv_poll_start(&s.poll, UV_READABLE, on_readable), 0);
    CHECK_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0); /* until on_readable sees the disconnect */
    ox_test_loop_feed_finish(&s.feed);
    CHECK_EQ(uv_loop_close(&loop), 0);
}

OX_TEST(uv_loop_woken_by_a_channel_drains_it_unbounded)
{
    uv_loop_woken_by(OX_UNBOUNDED);
}

OX_TEST(uv_loop_woken_by_a_channel_drains_it_bounded)
{
    uv_loop_woken_by(2);
}

OX_TEST(uv_loop_woken_by_a_channel_drains_it_rendezvous)
{
    uv_loop_woken_by(0);
}

/* ---- (b) the loop's callbacks feed channels ---- */

typedef struct ticker {
    uv_idle_t idle;
    ox_test_fed_pair pair;
} ticker;

/* Runs once per loop iteration. */
static void on_idle(uv_idle_t *idle)
{
    ticker *t = idle->data;
    if (!ox_test_fed_pair_feed(&t->pair))
        return;
    CHECK_EQ(uv_idle_stop(idle), 0);
    uv_close((uv_handle_t *)idle, NULL);
}

OX_TEST(uv_loop_callbacks_feed_a_task_and_a_thread)
{
    uv_loop_t loop;
    CHECK_EQ(uv_loop_init(&loop), 0);
    ticker t;
    ox_test_fed_pair_start(&t.pair, ox_test_scaled(5000));
    CHECK_EQ(uv_idle_init(&loop, &t.idle), 0);
    t.idle.data = &t;
    CHECK_EQ(uv_idle_start(&t.idle, on_idle), 0);
    CHECK_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ox_test_fed_pair_join(&t.pair);
    CHECK_EQ(uv_loop_close(&loop), 0);
}
#endif

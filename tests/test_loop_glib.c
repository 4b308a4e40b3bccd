/* A GLib main loop and oxide channels, both directions (issue 14, item 3):
 * (a) the loop is woken by a channel (its receiver's event fd, watched
 *     with g_unix_fd_add) and drains it with try_recv: every message from
 *     racing thread and task senders arrives, in each sender's order;
 * (b) the loop feeds a channel from its own callbacks (a GLib timeout
 *     that try_sends) and a task and a thread receive every value.
 * Built only where the compiler finds GLib (the Makefile's HAVE_GLIB). */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#ifdef OX_HAVE_GLIB
#include <glib-unix.h>
#include <glib.h>
#include <stdint.h>

typedef struct loop_state {
    GMainLoop *loop;
    ox_receiver *rx;
    long next[OX_TEST_FEEDERS];
    long wakes;
} loop_state;

/* The fd watch: drain until empty (that clears the fd) or disconnected. */
static gboolean on_readable(gint fd, GIOCondition cond, gpointer data)
{
    (void)fd;
    (void)cond;
    loop_state *s = data;
    s->wakes++;
    uint64_t v;
    int rc;
    while ((rc = ox_receiver_try_recv(s->rx, &v)) == 0)
        ox_test_feed_check(s->next, v);
    if (rc == OX_EDISCONNECTED) {
        g_main_loop_quit(s->loop);
        return G_SOURCE_REMOVE;
    }
    CHECK_EQ(rc, OX_EEMPTY);
    return G_SOURCE_CONTINUE;
}

static void glib_loop_woken_by(size_t cap)
{
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(ox_channel(8, cap, &tx, &rx), 0);
    GMainContext *ctx = g_main_context_new();
    loop_state s = {.loop = g_main_loop_new(ctx, FALSE), .rx = rx};
    int fd;
    CHECK_EQ(ox_receiver_event_fd(rx, &fd), 0);
    GSource *src = g_unix_fd_source_new(fd, G_IO_IN);
    g_source_set_callback(src, G_SOURCE_FUNC(on_readable), &s, NULL);
    g_source_attach(src, ctx);
    ox_test_feeders feeders;
    ox_test_feeders_start(&feeders, tx, cap == 0 ? 200 : 2000,
                          ox_test_scaled(cap == 0 ? 3000 : 30000));
    g_main_loop_run(s.loop); /* until on_readable sees the disconnect */
    CHECK(s.wakes > 0);
    ox_test_feeders_join(&feeders, s.next);
    g_source_destroy(src);
    g_source_unref(src);
    g_main_loop_unref(s.loop);
    g_main_context_unref(ctx);
    ox_receiver_drop(rx);
}

OX_TEST(glib_loop_woken_by_a_channel_drains_it_unbounded)
{
    glib_loop_woken_by(OX_UNBOUNDED);
}

OX_TEST(glib_loop_woken_by_a_channel_drains_it_bounded)
{
    glib_loop_woken_by(2);
}

OX_TEST(glib_loop_woken_by_a_channel_drains_it_rendezvous)
{
    glib_loop_woken_by(0);
}

/* ---- (b) the loop's callbacks feed channels ---- */

typedef struct ticker {
    GMainLoop *loop;
    ox_sender *to_task, *to_thread;
    long sent, total;
} ticker;

/* A GLib timeout: try_send never blocks the loop (unbounded channels). */
static gboolean on_tick(gpointer data)
{
    ticker *t = data;
    for (int burst = 0; burst < 50 && t->sent < t->total; burst++, t->sent++) {
        CHECK_EQ(ox_sender_try_send(t->to_task, &t->sent), 0);
        CHECK_EQ(ox_sender_try_send(t->to_thread, &t->sent), 0);
    }
    if (t->sent < t->total)
        return G_SOURCE_CONTINUE;
    ox_sender_drop(t->to_task); /* the receivers see the end */
    ox_sender_drop(t->to_thread);
    g_main_loop_quit(t->loop);
    return G_SOURCE_REMOVE;
}

/* Receives until disconnected; checks the values are 0, 1, 2, ... */
static void *receive_all(void *arg)
{
    ox_receiver *rx = arg;
    long v, expect = 0;
    while (ox_receiver_recv(rx, &v) == 0)
        CHECK_EQ(v, expect++);
    ox_receiver_drop(rx);
    return (void *)(intptr_t)expect;
}

OX_TEST(glib_loop_callbacks_feed_a_task_and_a_thread)
{
    ox_sender *ttx, *htx;
    ox_receiver *trx, *hrx;
    CHECK_EQ(ox_channel(sizeof(long), OX_UNBOUNDED, &ttx, &trx), 0);
    CHECK_EQ(ox_channel(sizeof(long), OX_UNBOUNDED, &htx, &hrx), 0);
    ox_runtime *rt = ox_test_runtime(1);
    ox_task_handle task = ox_test_spawn_on(rt, receive_all, trx);
    ox_join_handle thread = ox_thread_spawn(receive_all, hrx);
    GMainContext *ctx = g_main_context_new();
    ticker t = {.loop = g_main_loop_new(ctx, FALSE),
                .to_task = ttx,
                .to_thread = htx,
                .total = ox_test_scaled(5000)};
    GSource *src = g_timeout_source_new(0);
    g_source_set_callback(src, on_tick, &t, NULL);
    g_source_attach(src, ctx);
    g_main_loop_run(t.loop);
    void *got;
    CHECK_EQ(ox_task_join(&task, &got, NULL), 0);
    CHECK_EQ((intptr_t)got, t.total);
    CHECK_EQ(ox_thread_join(&thread, &got, NULL), 0);
    CHECK_EQ((intptr_t)got, t.total);
    ox_runtime_shutdown(rt);
    g_source_unref(src);
    g_main_loop_unref(t.loop);
    g_main_context_unref(ctx);
}
#endif

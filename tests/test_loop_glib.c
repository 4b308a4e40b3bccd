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
    ox_test_loop_feed feed;
} loop_state;

/* The fd watch: drain until empty (that clears the fd) or disconnected. */
static gboolean on_readable(gint fd, GIOCondition cond, gpointer data)
{
    (void)fd;
    (void)cond;
    loop_state *s = data;
    if (ox_test_loop_feed_drain(&s->feed) == OX_EDISCONNECTED) {
        g_main_loop_quit(s->loop);
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

static void glib_loop_woken_by(size_t cap)
{
    GMainContext *ctx = g_main_context_new();
    loop_state s = {.loop = g_main_loop_new(ctx, FALSE)};
    ox_test_loop_feed_start(&s.feed, cap, cap == 0 ? 200 : 2000,
                            ox_test_scaled(cap == 0 ? 3000 : 30000));
    GSource *src = g_unix_fd_source_new(s.feed.fd, G_IO_IN);
    g_source_set_callback(src, G_SOURCE_FUNC(on_readable), &s, NULL);
    g_source_attach(src, ctx);
    g_main_loop_run(s.loop); /* until on_readable sees the disconnect */
    ox_test_loop_feed_finish(&s.feed);
    g_source_destroy(src);
    g_source_unref(src);
    g_main_loop_unref(s.loop);
    g_main_context_unref(ctx);
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
    ox_test_fed_pair pair;
} ticker;

/* A GLib timeout. */
static gboolean on_tick(gpointer data)
{
    ticker *t = data;
    if (!ox_test_fed_pair_feed(&t->pair))
        return G_SOURCE_CONTINUE;
    g_main_loop_quit(t->loop);
    return G_SOURCE_REMOVE;
}

OX_TEST(glib_loop_callbacks_feed_a_task_and_a_thread)
{
    GMainContext *ctx = g_main_context_new();
    ticker t = {.loop = g_main_loop_new(ctx, FALSE)};
    ox_test_fed_pair_start(&t.pair, ox_test_scaled(5000));
    GSource *src = g_timeout_source_new(0);
    g_source_set_callback(src, on_tick, &t, NULL);
    g_source_attach(src, ctx);
    g_main_loop_run(t.loop);
    ox_test_fed_pair_join(&t.pair);
    g_source_unref(src);
    g_main_loop_unref(t.loop);
    g_main_context_unref(ctx);
}
#endif

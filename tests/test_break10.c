/* Reproducers from trying to break a task's read after a short TCP read
 * (socket.c's read_would_block: it waits for the next read event without
 * reading first) and the workers' own stashes of freed task stacks
 * (stack.c's ox__stash). */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"
#include "io/io_internal.h" /* white box: a socket's read word */

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

/* ---- the read word wraps ----
 * drained_at holds seq[READ] + 1 as loaded before a short read, and 0 for
 * "no short read". A read word at UINT32_MAX (after 2^32 - 1 read events
 * of a long-lived connection) plus one is 0 too: a task whose last read
 * was full, with data waiting, took that for a drained socket and waited
 * for an event that no data already there sends. Here the word is set
 * there by hand once the reactor has seen the data, and the read waited
 * for its deadline (OX_ETIMEDOUT) instead of taking the data. */
typedef struct wrap_job {
    ox_socket *listener;
    char got[16];
    size_t total;
    int rc;
} wrap_job;

static void *read_across_the_wrap(void *arg)
{
    wrap_job *j = arg;
    ox_socket *c;
    CHECK_EQ(ox_tcp_accept(j->listener, &c, NULL), 0);
    ox_instant deadline = ox_instant_after(OX_SECS(5));
    /* Watched from here; the sleep lets the reactor take the data's
     * event, so that no other comes. */
    CHECK_EQ(ox_socket_wait(c, OX_IO_READABLE, deadline), 0);
    CHECK_EQ(ox_task_sleep(OX_MILLIS(50)), 0);
    size_t n = 0;
    CHECK_EQ(ox_socket_read_deadline(c, j->got, 8, &n, deadline), 0); /* full: not drained */
    j->total = n;
    /* Relaxed: as 2^32 - 1 events would have left it; nothing else moves
     * it now (the peer sends nothing more). */
    atomic_store_explicit(&c->words.seq[OX__IO_READ], UINT32_MAX, memory_order_relaxed);
    j->rc = ox_socket_read_deadline(c, j->got + j->total, sizeof j->got - j->total, &n,
                                    ox_instant_after(OX_SECS(2)));
    if (j->rc == 0)
        j->total += n;
    ox_socket_close(c);
    return NULL;
}

OX_TEST_OPTS(break10_read_after_the_read_word_wraps_takes_waiting_data, .timeout_s = 20)
{
    ox_sockaddr any, addr;
    wrap_job j = {0};
    CHECK_EQ(ox_sockaddr_parse("127.0.0.1:0", &any), 0);
    CHECK_EQ(ox_tcp_listen(&any, 4, &j.listener), 0);
    CHECK_EQ(ox_socket_local_addr(j.listener, &addr), 0);
    ox_runtime *rt = ox_test_runtime(1);
    ox_task_handle h = ox_test_spawn_on(rt, read_across_the_wrap, &j);
    ox_socket *peer;
    CHECK_EQ(ox_tcp_connect(&addr, &peer), 0);
    CHECK_EQ(send(ox_socket_fd(peer), "0123456789abcdef", 16, 0), 16);
    CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
    CHECK_EQ(j.rc, 0); /* was OX_ETIMEDOUT */
    CHECK_EQ(j.total, 16u);
    CHECK(memcmp(j.got, "0123456789abcdef", 16) == 0);
    ox_socket_close(peer);
    ox_socket_close(j.listener);
    ox_runtime_shutdown(rt);
}

/* ---- the guarded budget and the workers' stashes ----
 * docs/tasks.md: cached stacks hold guarded mappings of the budget only
 * until a task that cannot reuse one (a named task) needs one; evict_cached
 * unmaps one for it. It looks in the shared cache only: stacks that ended
 * on a worker sit in that worker's stash, and with the budget used up by
 * a burst that ended there, a named task, though only it and its spawner
 * were alive, got a slab stack without a guard page. */
enum { STASH_BUDGET = 16 };

static ox_receiver *stash_burst_rx;

static void *wait_for_the_stash_burst(void *arg)
{
    (void)arg;
    long v;
    return (void *)(intptr_t)ox_receiver_recv(stash_burst_rx, &v);
}

static void *report_slab(void *arg)
{
    (void)arg;
    return (void *)(uintptr_t)ox_task_current()->slab; /* white box */
}

static void *burst_then_named(void *arg)
{
    (void)arg;
    ox_task_handle hs[STASH_BUDGET - 1]; /* with us: the whole budget */
    ox_sender *tx;
    CHECK_EQ(ox_channel(sizeof(long), 0, &tx, &stash_burst_rx), 0);
    for (int i = 0; i < STASH_BUDGET - 1; i++)
        hs[i] = ox_task_spawn(wait_for_the_stash_burst, NULL);
    ox_sender_drop(tx);
    for (int i = 0; i < STASH_BUDGET - 1; i++) /* on a worker: their stacks stay on ours */
        CHECK_EQ(ox_task_join(&hs[i], NULL, NULL), 0);
    ox_receiver_drop(stash_burst_rx);
    /* A child's end may give its stack back a moment after the join saw
     * it finish: a few tries, so that only a stack kept from us fails. */
    void *slab = (void *)1;
    for (int tries = 0; tries < 100 && slab != NULL; tries++) {
        CHECK_EQ(ox_task_sleep(OX_MILLIS(10)), 0);
        ox_task_builder b = OX_TASK_BUILDER_INIT;
        b.name = "after-the-stash";
        ox_task_handle h;
        CHECK_EQ(ox_task_builder_spawn(&b, report_slab, NULL, &h), 0);
        CHECK_EQ(ox_task_join(&h, &slab, NULL), 0);
    }
    return slab;
}

OX_TEST_OPTS(break10_a_named_task_after_a_burst_on_a_worker_has_a_guard_page, .timeout_s = 60)
{
    char budget[16];
    (void)snprintf(budget, sizeof budget, "%d", STASH_BUDGET);
    CHECK_EQ(setenv("OX_TASK_GUARDED_STACKS", budget, 1), 0); /* this process only */
    ox_runtime *rt = ox_test_runtime(2);
    ox_task_handle h = ox_test_spawn_on(rt, burst_then_named, NULL);
    void *slab = (void *)1;
    CHECK_EQ(ox_task_join(&h, &slab, NULL), 0);
    CHECK(slab == NULL); /* was a slab stack: no guard page */
    ox_runtime_shutdown(rt);
}

/* Reproducers from trying to break a task's read after a short TCP read
 * (socket.c's read_would_block: it waits for the next read event without
 * reading first) and the workers' own stashes of freed task stacks
 * (stack.c's ox__stash). */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"
#include "io/io_internal.h" /* white box: a socket's read word */

#include <stdatomic.h>
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

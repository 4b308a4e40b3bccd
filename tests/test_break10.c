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
 * until a task that cannot reuse one (of another size) needs one;
 * evict_cached unmaps one for it. It looks in the shared cache only:
 * stacks that ended on a worker sat in that worker's stash, and with the
 * budget used up by a burst that ended there, such a task, though only it
 * and its spawner were alive, got a slab stack without a guard page. */
enum { STASH_BUDGET = 16 };

static ox_receiver *stash_burst_rx;

static _Atomic long stash_burst_started;

static void *wait_for_the_stash_burst(void *arg)
{
    (void)arg;
    atomic_fetch_add(&stash_burst_started, 1);
    long v;
    return (void *)(intptr_t)ox_receiver_recv(stash_burst_rx, &v);
}

static void *report_slab(void *arg)
{
    (void)arg;
    return (void *)(uintptr_t)(ox_task_current()->stack->guard_size == 0); /* white box */
}

static void *burst_then_named(void *arg)
{
    (void)arg;
    ox_task_handle hs[STASH_BUDGET - 1]; /* with us: the whole budget */
    ox_sender *tx;
    CHECK_EQ(ox_channel(sizeof(long), 0, &tx, &stash_burst_rx), 0);
    for (int i = 0; i < STASH_BUDGET - 1; i++)
        hs[i] = ox_task_spawn(wait_for_the_stash_burst, NULL);
    ox_test_wait_count(&stash_burst_started, STASH_BUDGET - 1); /* each holds a stack */
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
        b.stack_size = 2 * OX_TASK_DEFAULT_STACK;
        ox_task_handle h;
        CHECK_EQ(ox_task_builder_spawn(&b, report_slab, NULL, &h), 0);
        CHECK_EQ(ox_task_join(&h, &slab, NULL), 0);
    }
    return slab;
}

OX_TEST_OPTS(break10_a_task_of_another_size_after_a_burst_on_a_worker_has_a_guard_page,
             .timeout_s = 60)
{
    char budget[16];
    (void)snprintf(budget, sizeof budget, "%d", STASH_BUDGET);
    CHECK_EQ(setenv("OX_TASK_GUARDED_STACKS", budget, 1), 0); /* this process only */
    /* It returned whether it got a slab stack (no guard page). */
    CHECK(ox_test_run_alone(2, burst_then_named, NULL) == NULL);
}

/* ---- short reads with two readers, and ends that come with data ----
 * After a short read a task waits for the next read event (ox__io_run):
 * sound only if every byte or end that it did not read sends an edge
 * after that read, whoever reads. Two tasks read one socket in reads of
 * random sizes while the peer sends chunks of random sizes, then shuts
 * down: every byte must arrive once (count and sum), and each reader must
 * see the end, none wait for its deadline (OX_ETIMEDOUT). */
enum { SHARE_BYTES = 1 << 20 };

typedef struct share_job {
    ox_socket *c;
    _Atomic size_t bytes;
    _Atomic uint64_t sum;
    _Atomic int ends;
} share_job;

static void *read_a_share(void *arg)
{
    share_job *j = arg;
    uint32_t x = (uint32_t)(uintptr_t)ox_task_current() | 1u;
    unsigned char buf[700];
    ox_instant deadline = ox_instant_after(OX_SECS(20));
    for (;;) {
        size_t n = 0;
        int rc =
            ox_socket_read_deadline(j->c, buf, 1 + ox_test_rand(&x) % sizeof buf, &n, deadline);
        CHECK_EQ(rc, 0); /* OX_ETIMEDOUT: a byte or the end sent no edge */
        if (n == 0)
            break;
        uint64_t s = 0;
        for (size_t i = 0; i < n; i++)
            s += buf[i];
        atomic_fetch_add(&j->bytes, n);
        atomic_fetch_add(&j->sum, s);
    }
    atomic_fetch_add(&j->ends, 1);
    return NULL;
}

OX_TEST_OPTS(break10_two_readers_of_one_socket_get_every_byte_and_the_end, .timeout_s = 120)
{
    ox_sockaddr addr;
    ox_socket *listener = ox_test_listen("127.0.0.1:0", &addr);
    ox_socket *peer;
    CHECK_EQ(ox_tcp_connect(&addr, &peer), 0);
    share_job j = {0};
    CHECK_EQ(ox_tcp_accept(listener, &j.c, NULL), 0);
    ox_runtime *rt = ox_test_runtime(2);
    ox_task_handle h[2] = {ox_test_spawn_on(rt, read_a_share, &j),
                           ox_test_spawn_on(rt, read_a_share, &j)};
    unsigned char chunk[1500];
    uint32_t x = 12345;
    uint64_t sum = 0;
    for (size_t sent = 0; sent < SHARE_BYTES;) {
        size_t len = 1 + ox_test_rand(&x) % sizeof chunk;
        if (len > SHARE_BYTES - sent)
            len = SHARE_BYTES - sent;
        for (size_t i = 0; i < len; i++) {
            chunk[i] = (unsigned char)ox_test_rand(&x);
            sum += chunk[i];
        }
        CHECK_EQ(ox_socket_write_all(peer, chunk, len), 0); /* a thread: blocks */
        sent += len;
    }
    CHECK_EQ(shutdown(ox_socket_fd(peer), SHUT_WR), 0);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(ox_task_join(&h[i], NULL, NULL), 0);
    CHECK_EQ(atomic_load(&j.ends), 2);
    CHECK_EQ(atomic_load(&j.bytes), (size_t)SHARE_BYTES);
    CHECK(atomic_load(&j.sum) == sum);
    ox_socket_close(j.c);
    ox_socket_close(peer);
    ox_socket_close(listener);
    ox_runtime_shutdown(rt);
}

/* A peer that resets the connection (close with unread data, or linger 0)
 * after its data: the reader, in short reads, must get the data then the
 * reset or the end, never wait for its deadline. */
typedef struct reset_job {
    ox_socket *c;
    size_t bytes;
    int last_rc;
} reset_job;

static void *read_until_the_reset(void *arg)
{
    reset_job *j = arg;
    ox_instant deadline = ox_instant_after(OX_SECS(20));
    /* Watched before the data comes, so that the reset's event may come
     * between two of our short reads. */
    char buf[7];
    for (;;) {
        size_t n = 0;
        j->last_rc = ox_socket_read_deadline(j->c, buf, sizeof buf, &n, deadline);
        if (j->last_rc != 0 || n == 0)
            break;
        j->bytes += n;
    }
    return NULL;
}

OX_TEST_OPTS(break10_a_reset_after_data_ends_short_reads, .timeout_s = 120)
{
    ox_sockaddr addr;
    ox_socket *listener = ox_test_listen("127.0.0.1:0", &addr);
    ox_runtime *rt = ox_test_runtime(1);
    for (int round = 0; round < 50; round++) {
        ox_socket *peer;
        CHECK_EQ(ox_tcp_connect(&addr, &peer), 0);
        reset_job j = {0};
        CHECK_EQ(ox_tcp_accept(listener, &j.c, NULL), 0);
        ox_task_handle h = ox_test_spawn_on(rt, read_until_the_reset, &j);
        int fd = ox_socket_fd(peer);
        size_t sent = 0;
        for (int k = 0; k <= round % 5; k++) {
            CHECK_EQ(send(fd, "0123456789abc", 13, 0), 13);
            sent += 13;
        }
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
        ox_socket_close(peer); /* a reset */
        CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
        CHECK(j.last_rc != OX_ETIMEDOUT);
        CHECK(j.bytes <= sent);
        ox_socket_close(j.c);
    }
    ox_socket_close(listener);
    ox_runtime_shutdown(rt);
}

/* ---- stacks freed on another runtime's workers ----
 * A task's record and stack go, at its last release, to the stash of the
 * worker that releases it, whichever runtime that worker serves; a
 * stopping worker hands its stash to the shared cache. Here tasks of a
 * long-lived runtime A and of a runtime B that lives one round are joined
 * across (so each one's record is released on the other's workers), then
 * B shuts down while A goes on spawning. A stack given to two live tasks
 * would show in the table of live stacks (and in the canaries on them);
 * one lost or freed twice, to AddressSanitizer and LeakSanitizer. */
enum { CROSS_ROUNDS = 40, CROSS_TASKS = 48, CROSS_LIVE = 1024 };

static ox_mutex cross_lock = OX_MUTEX_INIT;
static void *cross_live[CROSS_LIVE]; /* under cross_lock: stacks in use */

static void cross_enter(void *base)
{
    CHECK_EQ(ox_mutex_lock(&cross_lock), 0);
    size_t free_slot = CROSS_LIVE;
    for (size_t i = 0; i < CROSS_LIVE; i++) {
        CHECK(cross_live[i] != base); /* two live tasks on one stack */
        if (cross_live[i] == NULL && free_slot == CROSS_LIVE)
            free_slot = i;
    }
    CHECK(free_slot < CROSS_LIVE);
    cross_live[free_slot] = base;
    ox_mutex_unlock(&cross_lock);
}

static void cross_leave(void *base)
{
    CHECK_EQ(ox_mutex_lock(&cross_lock), 0);
    size_t i = 0;
    while (i < CROSS_LIVE && cross_live[i] != base)
        i++;
    CHECK(i < CROSS_LIVE);
    cross_live[i] = NULL;
    ox_mutex_unlock(&cross_lock);
}

static void *cross_member(void *arg)
{
    ox_receiver *rx = arg;
    void *base = ox_task_current()->stack->base; /* white box */
    cross_enter(base);
    volatile uintptr_t canary[32];
    uintptr_t me = (uintptr_t)&canary[0];
    for (size_t i = 0; i < 32; i++)
        canary[i] = me ^ i;
    long v;
    CHECK_EQ(ox_receiver_recv(rx, &v), OX_EDISCONNECTED); /* the round's end */
    ox_task_yield();
    for (size_t i = 0; i < 32; i++)
        CHECK(canary[i] == (me ^ i));
    cross_leave(base);
    return (void *)(uintptr_t)1;
}

typedef struct cross_joiner {
    ox_task_handle *hs;
    size_t n;
} cross_joiner;

static void *join_the_others(void *arg)
{
    cross_joiner *j = arg;
    for (size_t i = 0; i < j->n; i++) {
        void *r = NULL;
        CHECK_EQ(ox_task_join(&j->hs[i], &r, NULL), 0);
        CHECK(r == (void *)(uintptr_t)1);
    }
    return NULL;
}

OX_TEST_OPTS(break10_stacks_freed_across_runtimes_are_never_shared, .timeout_s = 120)
{
    ox_runtime *a = ox_test_runtime(2);
    static ox_task_handle of_a[CROSS_TASKS], of_b[CROSS_TASKS];
    for (int round = 0; round < CROSS_ROUNDS; round++) {
        ox_runtime *b = ox_test_runtime(2);
        ox_sender *tx;
        ox_receiver *rx;
        CHECK_EQ(ox_channel(sizeof(long), 0, &tx, &rx), 0);
        for (int i = 0; i < CROSS_TASKS; i++) {
            of_a[i] = ox_test_spawn_on(a, cross_member, rx);
            of_b[i] = ox_test_spawn_on(b, cross_member, rx);
        }
        /* B's tasks join A's and the other way round. */
        cross_joiner ja = {of_a, CROSS_TASKS}, jb = {of_b, CROSS_TASKS};
        ox_task_handle on_b = ox_test_spawn_on(b, join_the_others, &ja);
        ox_task_handle on_a = ox_test_spawn_on(a, join_the_others, &jb);
        ox_sender_drop(tx);
        CHECK_EQ(ox_task_join(&on_b, NULL, NULL), 0);
        CHECK_EQ(ox_task_join(&on_a, NULL, NULL), 0);
        ox_receiver_drop(rx);
        ox_runtime_shutdown(b); /* its workers' stashes go back */
    }
    ox_runtime_shutdown(a);
    for (size_t i = 0; i < CROSS_LIVE; i++)
        CHECK(cross_live[i] == NULL);
}

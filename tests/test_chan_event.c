/* A receiver's event fd (ox_receiver_event_fd) driven by an epoll loop:
 * readable exactly while there is something to receive, for every flavor;
 * cleared by a try_recv that finds the channel empty; and an epoll loop
 * woken by racing senders (threads and tasks) drains every message, in
 * each sender's order, with no wake-up lost (a lost one leaves the loop
 * asleep in epoll_wait: the runner's timeout fails the test by name). */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <unistd.h>

/* Readable now? (a look, no wait) */
static bool readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, 0);
    CHECK(n >= 0);
    return n == 1 && (p.revents & POLLIN);
}

/* Waits (bounded) until fd is readable. */
static void wait_readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int ms = (int)(ox_test_bound(OX_SECS(10)) / 1000000);
    CHECK_EQ(poll(&p, 1, ms), 1);
}

static void check_buffered_flavor(size_t elem, size_t cap)
{
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(ox_channel(elem, cap, &tx, &rx), 0);
    uint64_t v = 7, out = 0;
    CHECK_EQ(ox_sender_send(tx, &v), 0); /* before the fd exists */
    int fd, fd2;
    CHECK_EQ(ox_receiver_event_fd(rx, &fd), 0);
    CHECK(readable(fd)); /* what was buffered already counts */
    ox_receiver *rx2 = ox_receiver_clone(rx);
    CHECK_EQ(ox_receiver_event_fd(rx2, &fd2), 0);
    CHECK_EQ(fd, fd2); /* one per channel */
    CHECK_EQ(ox_receiver_try_recv(rx, elem ? &out : NULL), 0);
    CHECK(readable(fd)); /* only an empty try_recv clears it */
    CHECK_EQ(ox_receiver_try_recv(rx, elem ? &out : NULL), OX_EEMPTY);
    CHECK(!readable(fd));
    for (uint64_t i = 0; i < 3; i++)
        CHECK_EQ(ox_sender_send(tx, &i), 0);
    CHECK(readable(fd));
    for (uint64_t i = 0; i < 3; i++) {
        CHECK_EQ(ox_receiver_try_recv(rx2, elem ? &out : NULL), 0);
        if (elem)
            CHECK_EQ(out, i);
    }
    CHECK_EQ(ox_receiver_try_recv(rx2, elem ? &out : NULL), OX_EEMPTY);
    CHECK(!readable(fd));
    ox_sender_drop(tx); /* disconnected: readable, and stays so */
    CHECK(readable(fd));
    CHECK_EQ(ox_receiver_try_recv(rx, elem ? &out : NULL), OX_EDISCONNECTED);
    CHECK(readable(fd));
    ox_receiver_drop(rx2);
    ox_receiver_drop(rx);
}

OX_TEST(chan_event_fd_follows_what_is_buffered_every_flavor)
{
    check_buffered_flavor(8, OX_UNBOUNDED);
    check_buffered_flavor(8, 4);
    check_buffered_flavor(0, 4);            /* zero-size messages: a counter */
    check_buffered_flavor(0, OX_UNBOUNDED); /* the same, unbounded */
}

OX_TEST(chan_event_fd_is_closed_with_the_channel)
{
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(ox_channel(4, 4, &tx, &rx), 0);
    int fd;
    CHECK_EQ(ox_receiver_event_fd(rx, &fd), 0);
    CHECK_EQ(ox_receiver_event_fd(rx, NULL), OX_EINVAL);
    ox_receiver_drop(rx);
    CHECK(fcntl(fd, F_GETFD) >= 0); /* a sender still holds the channel */
    ox_sender_drop(tx);
    CHECK(fcntl(fd, F_GETFD) < 0); /* freed with it */
}

/* ---- rendezvous: readable while a sender waits ---- */

static void *send_one(void *arg)
{
    uint64_t v = 42;
    CHECK_EQ(ox_sender_send(arg, &v), 0);
    return NULL;
}

static void *select_send_one(void *arg)
{
    uint64_t v = 43;
    ox_select_op ops[] = {OX_SELECT_SEND((ox_sender *)arg, &v)};
    size_t i;
    CHECK_EQ(ox_select(ops, 1, &i), 0);
    return NULL;
}

OX_TEST(chan_event_fd_of_a_rendezvous_is_a_waiting_sender)
{
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(ox_channel(8, 0, &tx, &rx), 0);
    int fd;
    CHECK_EQ(ox_receiver_event_fd(rx, &fd), 0);
    CHECK(!readable(fd));
    uint64_t out = 0;
    for (int round = 0; round < 50; round++) {
        ox_join_handle h = ox_thread_spawn(send_one, tx);
        wait_readable(fd); /* the sender waits with its value */
        CHECK_EQ(ox_receiver_try_recv(rx, &out), 0);
        CHECK_EQ(out, 42);
        CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
        CHECK_EQ(ox_receiver_try_recv(rx, &out), OX_EEMPTY);
        CHECK(!readable(fd));
    }
    /* A select's send case waits as a sender too. */
    ox_join_handle h = ox_thread_spawn(select_send_one, tx);
    wait_readable(fd);
    CHECK_EQ(ox_receiver_try_recv(rx, &out), 0);
    CHECK_EQ(out, 43);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
    ox_sender_drop(tx);
    CHECK(readable(fd));
    CHECK_EQ(ox_receiver_try_recv(rx, &out), OX_EDISCONNECTED);
    ox_receiver_drop(rx);
}

/* ---- an epoll loop woken by racing senders ---- */

/* The loop: epoll_wait (no timeout), then try_recv until OX_EEMPTY.
 * Checks each sender's messages arrive complete and in order. */
static void run_epoll_loop(ox_receiver *rx, long next[OX_TEST_FEEDERS])
{
    int fd;
    CHECK_EQ(ox_receiver_event_fd(rx, &fd), 0);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    CHECK(ep >= 0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    CHECK_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
    long wakes = 0;
    for (;;) {
        struct epoll_event got;
        int n = epoll_wait(ep, &got, 1, -1);
        if (n < 0)
            continue; /* EINTR */
        CHECK_EQ(n, 1);
        wakes++;
        uint64_t v;
        int rc;
        while ((rc = ox_receiver_try_recv(rx, &v)) == 0)
            ox_test_feed_check(next, v);
        if (rc == OX_EDISCONNECTED)
            break;
        CHECK_EQ(rc, OX_EEMPTY);
    }
    CHECK(wakes > 0);
    close(ep);
}

static void epoll_loop_with(size_t cap)
{
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(ox_channel(8, cap, &tx, &rx), 0);
    ox_test_feeders feeders; /* two threads and two tasks feed the loop */
    ox_test_feeders_start(&feeders, tx, cap == 0 ? 200 : 2000,
                          ox_test_scaled(cap == 0 ? 5000 : 50000));
    long next[OX_TEST_FEEDERS] = {0};
    run_epoll_loop(rx, next);
    ox_test_feeders_join(&feeders, next);
    ox_receiver_drop(rx);
}

OX_TEST(chan_event_epoll_loop_drains_racing_senders_unbounded)
{
    epoll_loop_with(OX_UNBOUNDED);
}

OX_TEST(chan_event_epoll_loop_drains_racing_senders_bounded)
{
    epoll_loop_with(3);
}

OX_TEST(chan_event_epoll_loop_drains_racing_senders_rendezvous)
{
    epoll_loop_with(0);
}

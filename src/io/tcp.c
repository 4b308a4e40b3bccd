/* tcp.c - listening, accepting and connecting. */
#define _GNU_SOURCE
#include "io_internal.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

int ox_tcp_listen(const ox_sockaddr *addr, int backlog, ox_socket **out)
{
    ox_socket *s;
    int rc = ox__socket_open(addr, SOCK_STREAM, &s);
    if (rc != 0)
        return rc;
    int one = 1;
    if (setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(s->fd, (const struct sockaddr *)&addr->storage, addr->len) != 0 ||
        listen(s->fd, backlog) != 0) {
        rc = ox__io_errno();
        ox_socket_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

typedef struct accept_ctx {
    ox_sockaddr *peer;
} accept_ctx;

static ssize_t attempt_accept(int fd, void *ctx)
{
    ox_sockaddr *peer = ((accept_ctx *)ctx)->peer;
    if (peer != NULL)
        peer->len = sizeof peer->storage;
    return accept4(fd, peer ? (struct sockaddr *)&peer->storage : NULL, peer ? &peer->len : NULL,
                   SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int ox_tcp_accept_deadline(ox_socket *listener, ox_socket **out, ox_sockaddr *peer,
                           ox_instant deadline)
{
    accept_ctx ctx = {peer};
    ssize_t fd;
    int rc;
    do
        rc = ox__io_run(listener, OX__IO_READ, deadline, attempt_accept, &ctx, 0, &fd);
    /* A connection reset before we took it: take the next one (accept(2)
     * asks for this). */
    while (rc == ECONNABORTED);
    if (rc != 0)
        return rc;
    rc = ox__socket_new((int)fd, true, out);
    if (rc != 0)
        close((int)fd);
    else
        (*out)->short_read_drains = true; /* TCP (io_internal.h) */
    return rc;
}

int ox_tcp_accept(ox_socket *listener, ox_socket **out, ox_sockaddr *peer)
{
    return ox_tcp_accept_deadline(listener, out, peer, OX_INSTANT_NEVER);
}

/* A non-blocking connect in progress is done when the socket turns
 * writable; SO_ERROR then tells how it went. */
static int finish_connect(ox_socket *s, ox_instant deadline)
{
    for (;;) {
        int rc = ox__io_wait_ready(s, OX__SYS_WRITABLE, deadline);
        if (rc != 0)
            return rc;
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            return ox__io_errno();
        if (err != 0)
            return err;
        ox_sockaddr peer;
        if (ox_socket_peer_addr(s, &peer) == 0)
            return 0;
        /* ENOTCONN: still connecting (the wait returned early). */
    }
}

int ox_tcp_connect_deadline(const ox_sockaddr *addr, ox_socket **out, ox_instant deadline)
{
    ox_socket *s;
    int rc = ox__socket_open(addr, SOCK_STREAM, &s);
    if (rc != 0)
        return rc;
    if (connect(s->fd, (const struct sockaddr *)&addr->storage, addr->len) != 0) {
        rc = errno == EINPROGRESS || errno == EINTR ? finish_connect(s, deadline) : errno;
        if (rc != 0) {
            ox_socket_close(s);
            return rc;
        }
    }
    *out = s;
    return 0;
}

int ox_tcp_connect(const ox_sockaddr *addr, ox_socket **out)
{
    return ox_tcp_connect_deadline(addr, out, OX_INSTANT_NEVER);
}

int ox_tcp_set_nodelay(ox_socket *s, bool on)
{
    int value = on;
    return setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &value, sizeof value) == 0 ? 0
                                                                                  : ox__io_errno();
}

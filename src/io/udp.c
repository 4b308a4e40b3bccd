/* udp.c - datagrams. */
#define _GNU_SOURCE
#include "io_internal.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

int ox_udp_bind(const ox_sockaddr *addr, ox_socket **out)
{
    ox_socket *s;
    int rc = ox__socket_open(addr, SOCK_DGRAM, &s);
    if (rc != 0)
        return rc;
    if (bind(s->fd, (const struct sockaddr *)&addr->storage, addr->len) != 0) {
        rc = ox__io_errno();
        ox_socket_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

typedef struct datagram {
    void *data;
    size_t len;
    ox_sockaddr *addr;
} datagram;

static ssize_t attempt_send_to(int fd, void *ctx)
{
    datagram *d = ctx;
    return sendto(fd, d->data, d->len, MSG_NOSIGNAL, (const struct sockaddr *)&d->addr->storage,
                  d->addr->len);
}

static ssize_t attempt_recv_from(int fd, void *ctx)
{
    datagram *d = ctx;
    if (d->addr == NULL)
        return recv(fd, d->data, d->len, 0);
    d->addr->len = sizeof d->addr->storage;
    return recvfrom(fd, d->data, d->len, 0, (struct sockaddr *)&d->addr->storage, &d->addr->len);
}

int ox_udp_send_to_deadline(ox_socket *s, const void *buf, size_t len, const ox_sockaddr *to,
                            ox_instant deadline)
{
    if (to == NULL || to->len > sizeof to->storage)
        return OX_EINVAL;
    datagram d = {(void *)buf, len, (ox_sockaddr *)to};
    ssize_t sent;
    return ox__io_run(s, OX__IO_WRITE, deadline, attempt_send_to, &d, 0, &sent);
}

int ox_udp_send_to(ox_socket *s, const void *buf, size_t len, const ox_sockaddr *to)
{
    return ox_udp_send_to_deadline(s, buf, len, to, OX_INSTANT_NEVER);
}

int ox_udp_recv_from_deadline(ox_socket *s, void *buf, size_t len, size_t *n, ox_sockaddr *from,
                              ox_instant deadline)
{
    datagram d = {buf, len, from};
    ssize_t r = 0;
    int rc = ox__io_run(s, OX__IO_READ, deadline, attempt_recv_from, &d, 0, &r);
    *n = rc == 0 ? (size_t)r : 0;
    return rc;
}

int ox_udp_recv_from(ox_socket *s, void *buf, size_t len, size_t *n, ox_sockaddr *from)
{
    return ox_udp_recv_from_deadline(s, buf, len, n, from, OX_INSTANT_NEVER);
}

/* udp.c - datagrams. */
#define _GNU_SOURCE
#include "io_internal.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

int ox_udp_bind(const ox_sockaddr *addr, ox_socket **out)
{
    if (addr == NULL || addr->len > sizeof addr->storage ||
        (addr->storage.ss_family != AF_INET && addr->storage.ss_family != AF_INET6))
        return OX_EINVAL;
    int fd = socket(addr->storage.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ox__io_errno();
    if (bind(fd, (const struct sockaddr *)&addr->storage, addr->len) != 0) {
        int err = ox__io_errno();
        close(fd);
        return err;
    }
    int rc = ox__socket_new(fd, true, out);
    if (rc != 0)
        close(fd);
    return rc;
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
    return ox__io_run(s, OX__IO_WRITE, deadline, attempt_send_to, &d, &sent);
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
    int rc = ox__io_run(s, OX__IO_READ, deadline, attempt_recv_from, &d, &r);
    *n = rc == 0 ? (size_t)r : 0;
    return rc;
}

int ox_udp_recv_from(ox_socket *s, void *buf, size_t len, size_t *n, ox_sockaddr *from)
{
    return ox_udp_recv_from_deadline(s, buf, len, n, from, OX_INSTANT_NEVER);
}

/* oxide/io.h - sockets and file descriptors in plain blocking style, for
 * tasks and threads alike.
 *
 *   ox_sockaddr addr;
 *   ox_socket *listener, *conn;
 *   if (ox_sockaddr_parse("127.0.0.1:8080", &addr) != 0 ||
 *       ox_tcp_listen(&addr, 128, &listener) != 0) ...
 *   while (ox_tcp_accept(listener, &conn, NULL) == 0)
 *       (void)ox_task_spawn(serve, conn);   // one task per connection
 *
 * In a task (oxide/task.h) a call that would block suspends the task, not
 * its worker: the runtime's reactor (epoll) wakes it when the descriptor
 * is ready, so thousands of connections need a few worker threads. The
 * same call from a plain thread blocks the thread (poll), so one piece of
 * code serves both.
 *
 * Errors are the operating system's errno values (ECONNRESET, EPIPE,
 * EMFILE...) or oxide's codes: OX_ETIMEDOUT (the deadline passed),
 * OX_ECANCELED (the task was aborted), OX_EEOF (read_exact hit the end),
 * OX_ENOTFOUND (a name did not resolve), OX_EINVAL (bad arguments).
 * EINTR never reaches the caller, and a partial read or write is what the
 * plain calls return; read_exact and write_all loop for the rest.
 *
 * Every call that can wait has a _deadline form (OX_INSTANT_NEVER: no
 * deadline; ox_instant_after(OX_SECS(5)) for a timeout), and in a task
 * each is a cancellation point: once the task is aborted, a call that
 * would wait returns OX_ECANCELED (one that can complete at once still
 * completes).
 *
 * Ownership: an ox_socket owns its descriptor (non-blocking, close-on-
 * exec) and is freed by ox_socket_close. All calls borrow it. Closing a
 * socket while another task or thread is inside a call on it is a
 * use-after-free, as in C generally; to stop a reader, ox_socket_shutdown
 * it (the read returns 0), or abort its task. A socket is watched by the
 * runtime of the first task that waits on it; it stays usable from
 * threads and from that runtime's tasks.
 */
#ifndef OXIDE_IO_H
#define OXIDE_IO_H

#include "base.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif
OX__API_BEGIN

/* A descriptor oxide waits on: a TCP or UDP socket, or any descriptor
 * handed over with ox_socket_from_fd. Opaque. */
typedef struct ox_socket ox_socket;

/* An IPv4 or IPv6 address and port: storage holds a sockaddr_in or
 * sockaddr_in6 of len bytes (cast it to use it with the socket API). */
typedef struct ox_sockaddr {
    struct sockaddr_storage storage; /* a sockaddr_in or sockaddr_in6 */
    socklen_t len;                   /* its size in bytes */
} ox_sockaddr;

/* What ox_socket_wait and ox_fd_wait wait for (either or both). */
#define OX_IO_READABLE 1u /* data, end of stream, a peer reset or an error */
#define OX_IO_WRITABLE 2u /* room to write, a peer reset or an error */

/* ---- addresses ---- */

/* Parses "a.b.c.d:port" or "[v6]:port" (numbers only: no name lookup).
 * Returns 0 or OX_EINVAL. */
OX_MUST_USE int ox_sockaddr_parse(const char *text, ox_sockaddr *out);
/* Writes addr as text ("127.0.0.1:8080", "[::1]:8080") into buf (64 bytes
 * are always enough). Returns 0, OX_EINVAL or ENOSPC. */
OX_MUST_USE int ox_sockaddr_format(const ox_sockaddr *addr, char *buf, size_t size);
/* The port of addr (host byte order). */
unsigned ox_sockaddr_port(const ox_sockaddr *addr);
/* Looks host and service (a name or a port number) up with getaddrinfo,
 * for TCP: up to max addresses into out, their number in *count. In a task
 * the lookup runs on the blocking pool (it may take seconds) and the wait
 * for it is a cancellation point. Returns 0, OX_ENOTFOUND, EAGAIN (try
 * later), ENOMEM, OX_ECANCELED, or errno. */
OX_MUST_USE int ox_resolve(const char *host, const char *service, ox_sockaddr *out, size_t max,
                           size_t *count);

/* ---- TCP ---- */

/* A listening socket on addr (SO_REUSEADDR; port 0 picks a free port,
 * ox_socket_local_addr tells which). Returns 0 or errno. */
OX_MUST_USE int ox_tcp_listen(const ox_sockaddr *addr, int backlog, ox_socket **out);
/* The next connection; its peer's address into *peer unless NULL. Returns
 * 0, OX_ETIMEDOUT, OX_ECANCELED or errno (EMFILE: out of descriptors; the
 * connection stays queued and the listener stays usable). */
OX_MUST_USE int ox_tcp_accept(ox_socket *listener, ox_socket **out, ox_sockaddr *peer);
OX_MUST_USE int ox_tcp_accept_deadline(ox_socket *listener, ox_socket **out, ox_sockaddr *peer,
                                       ox_instant deadline);
/* Connects to addr. Returns 0, OX_ETIMEDOUT, OX_ECANCELED or errno
 * (ECONNREFUSED...). */
OX_MUST_USE int ox_tcp_connect(const ox_sockaddr *addr, ox_socket **out);
OX_MUST_USE int ox_tcp_connect_deadline(const ox_sockaddr *addr, ox_socket **out,
                                        ox_instant deadline);
/* TCP_NODELAY: send small writes at once (Nagle off). Returns 0 or errno. */
OX_MUST_USE int ox_tcp_set_nodelay(ox_socket *s, bool on);

/* ---- streams: TCP sockets and handed-over descriptors ---- */

/* Reads up to len bytes, waiting until at least one is there: *n is how
 * many, 0 at the end of the stream. Returns 0, OX_ETIMEDOUT, OX_ECANCELED
 * or errno (ECONNRESET...). */
OX_MUST_USE int ox_socket_read(ox_socket *s, void *buf, size_t len, size_t *n);
OX_MUST_USE int ox_socket_read_deadline(ox_socket *s, void *buf, size_t len, size_t *n,
                                        ox_instant deadline);
/* Reads exactly len bytes. Returns 0, OX_EEOF if the stream ended first,
 * or as ox_socket_read (the bytes read before an error are lost). */
OX_MUST_USE int ox_socket_read_exact(ox_socket *s, void *buf, size_t len);
OX_MUST_USE int ox_socket_read_exact_deadline(ox_socket *s, void *buf, size_t len,
                                              ox_instant deadline);
/* Writes up to len bytes, waiting until at least one fits: *n is how many.
 * A write to a peer that has gone returns EPIPE (never SIGPIPE). Returns
 * 0, OX_ETIMEDOUT, OX_ECANCELED or errno. */
OX_MUST_USE int ox_socket_write(ox_socket *s, const void *buf, size_t len, size_t *n);
OX_MUST_USE int ox_socket_write_deadline(ox_socket *s, const void *buf, size_t len, size_t *n,
                                         ox_instant deadline);
/* Writes all len bytes. Returns 0 or as ox_socket_write. */
OX_MUST_USE int ox_socket_write_all(ox_socket *s, const void *buf, size_t len);
OX_MUST_USE int ox_socket_write_all_deadline(ox_socket *s, const void *buf, size_t len,
                                             ox_instant deadline);
/* shutdown(2): how is SHUT_RD, SHUT_WR or SHUT_RDWR. Returns 0 or errno. */
OX_MUST_USE int ox_socket_shutdown(ox_socket *s, int how);

/* ---- UDP ---- */

/* A UDP socket bound to addr (port 0: any). Returns 0 or errno. */
OX_MUST_USE int ox_udp_bind(const ox_sockaddr *addr, ox_socket **out);
/* Sends one datagram of len bytes to to. Returns 0, OX_ETIMEDOUT,
 * OX_ECANCELED or errno (EMSGSIZE...). */
OX_MUST_USE int ox_udp_send_to(ox_socket *s, const void *buf, size_t len, const ox_sockaddr *to);
OX_MUST_USE int ox_udp_send_to_deadline(ox_socket *s, const void *buf, size_t len,
                                        const ox_sockaddr *to, ox_instant deadline);
/* Receives one datagram into buf (the rest of a longer one is dropped):
 * *n is its length; the sender's address into *from unless NULL. Returns
 * 0, OX_ETIMEDOUT, OX_ECANCELED or errno. */
OX_MUST_USE int ox_udp_recv_from(ox_socket *s, void *buf, size_t len, size_t *n, ox_sockaddr *from);
OX_MUST_USE int ox_udp_recv_from_deadline(ox_socket *s, void *buf, size_t len, size_t *n,
                                          ox_sockaddr *from, ox_instant deadline);

/* ---- any descriptor ---- */

/* Takes fd (a socket, pipe, eventfd, a library's connection) into an
 * ox_socket: it is made non-blocking and is closed by ox_socket_close.
 * A descriptor poll(2) reports always ready (a regular file, /dev/null)
 * works too, its calls simply never wait. Returns 0 or errno. */
OX_MUST_USE int ox_socket_from_fd(int fd, ox_socket **out);
/* The descriptor, for setsockopt and friends (still owned by s). */
int ox_socket_fd(const ox_socket *s);
/* Waits until s is ready for events (OX_IO_READABLE and/or _WRITABLE).
 * "Ready" may be stale by the time the caller acts: try the operation and
 * wait again on EAGAIN. Returns 0, OX_ETIMEDOUT, OX_ECANCELED or errno. */
OX_MUST_USE int ox_socket_wait(ox_socket *s, unsigned events, ox_instant deadline);
/* As ox_socket_wait for a descriptor that is not an ox_socket (it stays
 * the caller's). Costs a few more system calls per wait in a task. A
 * descriptor ready already returns 0 at once, also in an aborted task. */
OX_MUST_USE int ox_fd_wait(int fd, unsigned events, ox_instant deadline);
/* ---- files ---- */

/* pread(2) / pwrite(2) of up to len bytes at offset: *n is how many (0 at
 * the end of the file). From a task the call runs on the blocking pool
 * (ox_task_spawn_blocking), so its worker keeps running other tasks; from
 * a thread it is the plain system call. In a task it is a cancellation
 * point only before it starts (OX_ECANCELED, nothing done): once started
 * it uses buf, and returns when the system call has. Returns 0 or errno. */
OX_MUST_USE int ox_file_read_at(int fd, void *buf, size_t len, int64_t offset, size_t *n);
OX_MUST_USE int ox_file_write_at(int fd, const void *buf, size_t len, int64_t offset, size_t *n);

/* This end's / the peer's address. Returns 0 or errno. */
OX_MUST_USE int ox_socket_local_addr(const ox_socket *s, ox_sockaddr *out);
OX_MUST_USE int ox_socket_peer_addr(const ox_socket *s, ox_sockaddr *out);
/* Closes the descriptor and frees s. NULL is ignored. */
void ox_socket_close(ox_socket *s);

OX__API_END
#ifdef __cplusplus
}
#endif

#endif

/* 13_http_server.c - a small HTTP/1.1 server: answers every GET with a
 * fixed body and keeps the connection alive for the next request. One task
 * per connection, plain blocking reads and writes. Then it is its own
 * client: two connections, three requests on each, over the same socket. */
#define _GNU_SOURCE /* memmem */
#include <oxide.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const char response[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                               "Content-Length: 13\r\n\r\nHello, World!";

/* Reads one request: up to and including the empty line. Returns 0, or
 * OX_EEOF when the client closed the connection between requests. */
static int read_request(ox_socket *conn, char *buf, size_t size)
{
    size_t have = 0, n;
    while (memmem(buf, have, "\r\n\r\n", 4) == NULL) {
        if (have == size)
            return OX_EINVAL; /* too large for this server */
        int rc = ox_socket_read(conn, buf + have, size - have, &n);
        if (rc != 0)
            return rc;
        if (n == 0)
            return OX_EEOF;
        have += n;
    }
    return 0;
}

static void *serve(void *arg)
{
    ox_socket *conn = arg;
    char request[2048];
    /* Keep-alive: one response per request until the client closes. (A
     * client that sends several requests at once would need the bytes after
     * the first empty line kept: this server's clients wait for answers.) */
    while (read_request(conn, request, sizeof request) == 0)
        if (ox_socket_write_all(conn, response, sizeof response - 1) != 0)
            break;
    ox_socket_close(conn);
    return NULL;
}

static void *accept_loop(void *arg)
{
    ox_socket *listener = arg, *conn;
    while (ox_tcp_accept(listener, &conn, NULL) == 0) {
        ox_task_handle h = ox_task_spawn(serve, conn);
        ox_task_handle_drop(&h);
    }
    return NULL;
}

static void get(ox_socket *s, long conn_id, int i)
{
    static const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    char answer[sizeof response];
    if (ox_socket_write_all(s, req, sizeof req - 1) != 0 ||
        ox_socket_read_exact(s, answer, sizeof response - 1) != 0)
        ox_panic("connection %ld: request %d failed", conn_id, i);
    answer[sizeof response - 1] = '\0';
    const char *body = strstr(answer, "\r\n\r\n") + 4;
    printf("connection %ld, request %d: %.15s, body \"%s\"\n", conn_id, i, answer, body);
}

int main(void)
{
    ox_sockaddr any, addr;
    ox_socket *listener;
    if (ox_sockaddr_parse("127.0.0.1:0", &any) != 0 || ox_tcp_listen(&any, 128, &listener) != 0 ||
        ox_socket_local_addr(listener, &addr) != 0) {
        fprintf(stderr, "cannot listen on localhost\n");
        return 1;
    }
    ox_task_handle server = ox_task_spawn(accept_loop, listener);
    /* The client side runs in this thread: the same calls simply block it. */
    for (long c = 0; c < 2; c++) {
        ox_socket *s;
        if (ox_tcp_connect(&addr, &s) != 0) {
            fprintf(stderr, "cannot connect\n");
            return 1;
        }
        for (int i = 0; i < 3; i++)
            get(s, c, i);
        ox_socket_close(s);
    }
    ox_task_abort(&server);
    (void)!ox_task_join(&server, NULL, NULL);
    ox_socket_close(listener);
    return 0;
}

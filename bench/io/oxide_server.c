/* oxide_server.c - oxide's server for the I/O benchmarks (bench/io/README.md
 * says what every server does): `oxide-io-server echo|http PORT`. One task
 * per connection on the default runtime, written as blocking code. */
#define _GNU_SOURCE /* memmem */
#include <oxide.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char response[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                               "Content-Length: 13\r\n\r\nHello, World!";

static void *echo(void *arg)
{
    ox_socket *c = arg;
    char buf[4096];
    size_t n;
    while (ox_socket_read(c, buf, sizeof buf, &n) == 0 && n > 0)
        if (ox_socket_write_all(c, buf, n) != 0)
            break;
    ox_socket_close(c);
    return NULL;
}

/* Answers every complete request (up to an empty line) in what was read;
 * keeps the start of an incomplete one. */
static void *http(void *arg)
{
    ox_socket *c = arg;
    char buf[4096];
    size_t have = 0, n;
    while (ox_socket_read(c, buf + have, sizeof buf - have, &n) == 0 && n > 0) {
        have += n;
        size_t answers = 0, start = 0;
        for (char *end; (end = memmem(buf + start, have - start, "\r\n\r\n", 4)) != NULL;) {
            answers++;
            start = (size_t)(end - buf) + 4;
        }
        memmove(buf, buf + start, have - start);
        have -= start;
        if (have == sizeof buf) /* a request larger than the buffer: not ours */
            break;
        for (size_t i = 0; i < answers; i++)
            if (ox_socket_write_all(c, response, sizeof response - 1) != 0)
                goto done;
    }
done:
    ox_socket_close(c);
    return NULL;
}

/* In a task, so that accept suspends like every other wait. */
typedef struct server {
    ox_socket *listener;
    void *(*serve)(void *);
} server;

static void *accept_loop(void *arg)
{
    ox_socket *listener = ((server *)arg)->listener;
    void *(*serve)(void *) = ((server *)arg)->serve;
    for (;;) {
        ox_socket *c;
        int rc = ox_tcp_accept(listener, &c, NULL);
        if (rc != 0) { /* EMFILE and friends: report, keep serving */
            fprintf(stderr, "oxide-io-server: accept: %s\n", ox_strerror(rc));
            (void)!ox_task_sleep(OX_MILLIS(10));
            continue;
        }
        if (ox_tcp_set_nodelay(c, true) != 0)
            fprintf(stderr, "oxide-io-server: TCP_NODELAY refused\n");
        ox_task_handle h = ox_task_spawn(serve, c);
        ox_task_handle_drop(&h);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "echo") != 0 && strcmp(argv[1], "http") != 0)) {
        fprintf(stderr, "usage: %s echo|http PORT\n", argv[0]);
        return 2;
    }
    void *(*serve)(void *) = strcmp(argv[1], "echo") == 0 ? echo : http;
    char text[32];
    snprintf(text, sizeof text, "127.0.0.1:%s", argv[2]);
    ox_sockaddr addr;
    ox_socket *listener;
    int rc = ox_sockaddr_parse(text, &addr);
    if (rc == 0)
        rc = ox_tcp_listen(&addr, 1024, &listener);
    if (rc != 0) {
        fprintf(stderr, "oxide-io-server: listen on %s: %s\n", text, ox_strerror(rc));
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    server srv = {listener, serve};
    (void)!ox_task_block_on(accept_loop, &srv, NULL, NULL);
    return 1;
}

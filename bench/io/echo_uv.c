/* echo_uv.c - the `libuv` peers of the echo workloads: read what came and
 * write it back, on libuv loops (Debian's libuv1-dev).
 *
 *   echo-uv PORT [LOOPS]   LOOPS (default 1) loops, each on its own thread
 *                          with its own listening socket on 127.0.0.1:PORT
 *                          (SO_REUSEPORT: the kernel spreads connections
 *                          over them). Prints "ready" once all accept.
 *
 * Each loop reads into one buffer of its own, so an idle connection costs
 * no buffer. A write goes out with uv_try_write; what the socket does not
 * take is copied and queued with uv_write (libuv keeps the order: while
 * anything is queued, uv_try_write takes nothing). */
#define _GNU_SOURCE /* SO_REUSEPORT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

enum { MAX_LOOPS = 8, BUF = 65536 };

struct server {
    uv_loop_t loop;
    uv_tcp_t listener;
    char buf[BUF];
};

struct write_req {
    uv_write_t req;
    char data[];
};

static void check(int rc, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "echo-uv: %s: %s\n", what, uv_strerror(rc));
        exit(1);
    }
}

static void on_close(uv_handle_t *h)
{
    free(h);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)suggested;
    struct server *s = h->loop->data;
    *b = uv_buf_init(s->buf, BUF);
}

static void on_written(uv_write_t *req, int status)
{
    if (status < 0 && !uv_is_closing((uv_handle_t *)req->handle))
        uv_close((uv_handle_t *)req->handle, on_close);
    free(req);
}

static void on_read(uv_stream_t *client, ssize_t n, const uv_buf_t *b)
{
    if (n < 0) {
        uv_close((uv_handle_t *)client, on_close);
        return;
    }
    uv_buf_t out = uv_buf_init(b->base, (unsigned)n);
    int w = n > 0 ? uv_try_write(client, &out, 1) : 0;
    if (w == n)
        return;
    if (w < 0 && w != UV_EAGAIN) {
        uv_close((uv_handle_t *)client, on_close);
        return;
    }
    size_t done = w < 0 ? 0 : (size_t)w, rest = (size_t)n - done;
    struct write_req *wr = malloc(sizeof *wr + rest);
    if (!wr) {
        uv_close((uv_handle_t *)client, on_close);
        return;
    }
    memcpy(wr->data, b->base + done, rest);
    out = uv_buf_init(wr->data, (unsigned)rest);
    check(uv_write(&wr->req, client, &out, 1, on_written), "uv_write");
}

static void on_connection(uv_stream_t *listener, int status)
{
    if (status < 0)
        return;
    uv_tcp_t *client = malloc(sizeof *client);
    if (!client)
        return;
    check(uv_tcp_init(listener->loop, client), "uv_tcp_init");
    if (uv_accept(listener, (uv_stream_t *)client) != 0) {
        uv_close((uv_handle_t *)client, on_close);
        return;
    }
    uv_tcp_nodelay(client, 1);
    check(uv_read_start((uv_stream_t *)client, on_alloc, on_read), "uv_read_start");
}

static void run_loop(void *arg)
{
    struct server *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
}

int main(int argc, char **argv)
{
    int loops = argc == 3 ? atoi(argv[2]) : 1;
    if (argc < 2 || argc > 3 || loops < 1 || loops > MAX_LOOPS) {
        fprintf(stderr, "usage: echo-uv PORT [LOOPS]\n");
        return 2;
    }
    struct sockaddr_in addr;
    check(uv_ip4_addr("127.0.0.1", atoi(argv[1]), &addr), "uv_ip4_addr");
    static struct server servers[MAX_LOOPS];
    for (int i = 0; i < loops; i++) {
        struct server *s = &servers[i];
        uv_os_fd_t fd;
        int one = 1;
        check(uv_loop_init(&s->loop), "uv_loop_init");
        s->loop.data = s;
        /* libuv 1.44 has no UV_TCP_REUSEPORT: set it on the socket before
         * the bind. */
        check(uv_tcp_init_ex(&s->loop, &s->listener, AF_INET), "uv_tcp_init_ex");
        check(uv_fileno((uv_handle_t *)&s->listener, &fd), "uv_fileno");
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
            check(UV_EINVAL, "SO_REUSEPORT");
        check(uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0), "uv_tcp_bind");
        check(uv_listen((uv_stream_t *)&s->listener, SOMAXCONN, on_connection), "uv_listen");
    }
    printf("ready\n");
    fflush(stdout);
    uv_thread_t threads[MAX_LOOPS];
    for (int i = 1; i < loops; i++)
        check(uv_thread_create(&threads[i], run_loop, &servers[i]), "uv_thread_create");
    run_loop(&servers[0]);
    return 0;
}

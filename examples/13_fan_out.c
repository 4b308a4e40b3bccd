/* 13_fan_out.c - a client fan-out with a deadline: six concurrent requests
 * in a JoinSet against a local server that answers each after the delay
 * the request names. Whatever has not answered by the deadline is aborted:
 * its blocked read returns OX_ECANCELED, and it closes its connection
 * cleanly. The results are printed in request order. */
#include <oxide.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define REQUESTS 6
static const long delay_ms[REQUESTS] = {10, 3000, 20, 5000, 30, 4000};

/* The server: reads a delay in milliseconds, sleeps, answers "done". */
static void *serve(void *arg)
{
    ox_socket *conn = arg;
    char buf[32] = {0};
    size_t n;
    if (ox_socket_read(conn, buf, sizeof buf - 1, &n) == 0 && n > 0 &&
        ox_task_sleep(OX_MILLIS(atol(buf))) == 0)
        (void)!ox_socket_write_all(conn, "done", 4);
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

static ox_sockaddr server_addr;

typedef struct request {
    long id;
    int outcome; /* 0: answered; else the error that ended it */
} request;

static void *do_request(void *arg)
{
    request *r = arg;
    ox_socket *s;
    r->outcome = ox_tcp_connect(&server_addr, &s);
    if (r->outcome != 0)
        return r;
    char line[32], answer[4];
    int len = snprintf(line, sizeof line, "%ld", delay_ms[r->id]);
    r->outcome = ox_socket_write_all(s, line, (size_t)len);
    if (r->outcome == 0)
        r->outcome = ox_socket_read_exact(s, answer, sizeof answer); /* waits: cancellable */
    ox_socket_close(s); /* on every path, aborted or not */
    return r;
}

static void *fan_out(void *unused)
{
    (void)unused;
    ox_sockaddr any;
    ox_socket *listener;
    if (ox_sockaddr_parse("127.0.0.1:0", &any) != 0 || ox_tcp_listen(&any, 128, &listener) != 0 ||
        ox_socket_local_addr(listener, &server_addr) != 0)
        ox_panic("cannot listen on localhost");
    ox_task_handle server = ox_task_spawn(accept_loop, listener);

    ox_join_set *set;
    if (ox_join_set_new(&set) != 0)
        ox_panic("no memory");
    request reqs[REQUESTS];
    for (long i = 0; i < REQUESTS; i++) {
        reqs[i] = (request){.id = i, .outcome = OX_ECANCELED};
        if (ox_join_set_spawn(set, do_request, &reqs[i]) != 0)
            ox_panic("cannot spawn request %ld", i);
    }
    /* The deadline: 1 s for all of them, collected as they finish. Then
     * abort what is left (a blocked read returns OX_ECANCELED) and collect
     * those too, so that no request outlives the set. */
    ox_instant deadline = ox_instant_after(OX_SECS(1));
    int rc;
    while ((rc = ox_join_set_join_next_deadline(set, NULL, NULL, NULL, deadline)) == 0)
        ; /* each request records its own outcome */
    if (rc == OX_ETIMEDOUT) {
        ox_join_set_abort_all(set);
        while (ox_join_set_join_next(set, NULL, NULL, NULL) != OX_EEMPTY)
            ;
    }
    ox_join_set_drop(set);
    for (long i = 0; i < REQUESTS; i++)
        printf("request %ld (server delay %ld ms): %s\n", i, delay_ms[i],
               reqs[i].outcome == 0 ? "answered" : ox_strerror(reqs[i].outcome));
    ox_task_abort(&server);
    (void)!ox_task_join(&server, NULL, NULL);
    ox_socket_close(listener);
    return NULL;
}

int main(void)
{
    return ox_task_block_on(fan_out, NULL, NULL, NULL) == 0 ? 0 : 1;
}

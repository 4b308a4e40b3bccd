/* 13_echo_server.c - an echo server in blocking style (the guide's §11:
 * I/O-bound work, many connections, few threads). Each connection is a
 * task; a read that finds nothing suspends the task, not the worker, so
 * two workers serve every client at once. The program is its own client:
 * three client tasks connect to it on localhost, send lines, and check
 * what comes back. */
#include <oxide.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define CLIENTS 3

static void *serve(void *arg)
{
    ox_socket *conn = arg;
    char buf[4096];
    size_t n;
    /* n == 0: the client closed its end. */
    while (ox_socket_read(conn, buf, sizeof buf, &n) == 0 && n > 0)
        if (ox_socket_write_all(conn, buf, n) != 0)
            break;
    ox_socket_close(conn);
    return NULL;
}

static void *accept_loop(void *arg)
{
    ox_socket *listener = arg;
    ox_socket *conn;
    int rc;
    while ((rc = ox_tcp_accept(listener, &conn, NULL)) == 0) {
        ox_task_handle h = ox_task_spawn(serve, conn);
        ox_task_handle_drop(&h); /* detached: it ends when its client does */
    }
    return (void *)(intptr_t)rc; /* OX_ECANCELED once main aborts us */
}

static const ox_sockaddr *server_addr;

static void *client(void *arg)
{
    long id = (long)(intptr_t)arg;
    ox_socket *s;
    if (ox_tcp_connect(server_addr, &s) != 0)
        ox_panic("client %ld: cannot connect", id);
    long echoed = 0;
    for (int i = 0; i < 3; i++) {
        char line[64], back[64];
        int len = snprintf(line, sizeof line, "client %ld line %d\n", id, i);
        if (ox_socket_write_all(s, line, (size_t)len) != 0 ||
            ox_socket_read_exact(s, back, (size_t)len) != 0)
            ox_panic("client %ld: connection lost", id);
        echoed += memcmp(line, back, (size_t)len) == 0;
    }
    ox_socket_close(s);
    return (void *)(intptr_t)echoed;
}

static void *run(void *unused)
{
    (void)unused;
    ox_sockaddr any, addr;
    ox_socket *listener;
    /* Port 0: the system picks a free one; local_addr tells which. */
    if (ox_sockaddr_parse("127.0.0.1:0", &any) != 0 || ox_tcp_listen(&any, 128, &listener) != 0 ||
        ox_socket_local_addr(listener, &addr) != 0)
        ox_panic("cannot listen on localhost");
    server_addr = &addr;
    printf("echo server listening on localhost\n");
    ox_task_handle server = ox_task_spawn(accept_loop, listener);
    ox_task_handle clients[CLIENTS];
    for (long i = 0; i < CLIENTS; i++)
        clients[i] = ox_task_spawn(client, (void *)(intptr_t)i);
    for (long i = 0; i < CLIENTS; i++) {
        void *echoed;
        if (ox_task_join(&clients[i], &echoed, NULL) != 0)
            ox_panic("client %ld failed", i);
        printf("client %ld: %ld of 3 lines echoed intact\n", i, (long)(intptr_t)echoed);
    }
    /* Stop accepting: abort the accept loop (its accept returns
     * OX_ECANCELED), then close the listener. */
    ox_task_abort(&server);
    (void)!ox_task_join(&server, NULL, NULL);
    ox_socket_close(listener);
    printf("server stopped\n");
    return NULL;
}

int main(void)
{
    return ox_task_block_on(run, NULL, NULL, NULL) == 0 ? 0 : 1;
}

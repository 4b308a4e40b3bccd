/* 13_graceful_shutdown.c - a server that stops on Ctrl-C (SIGINT) or
 * SIGTERM without dropping work on the floor: it stops accepting, gives the
 * open connections a deadline to finish, aborts the ones still open after
 * it, and exits cleanly. The signal arrives as a channel message.
 *
 * The demo is its own client: two clients send a request, wait for the
 * answer and leave; a third sends one and then stays connected without a
 * word (an idle keep-alive connection). Then the program sends itself
 * SIGINT, as Ctrl-C would. */
#include <oxide.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

/* Each connection: echo until the client closes. Returns 1 when it ended
 * because the server aborted it. */
static void *serve(void *arg)
{
    ox_socket *conn = arg;
    char buf[512];
    size_t n;
    int rc;
    while ((rc = ox_socket_read(conn, buf, sizeof buf, &n)) == 0 && n > 0)
        if ((rc = ox_socket_write_all(conn, buf, n)) != 0)
            break;
    ox_socket_close(conn);
    return (void *)(intptr_t)(rc == OX_ECANCELED);
}

typedef struct server {
    ox_socket *listener;
    ox_join_set *connections;
} server;

/* Until aborted: each connection a task in the set. */
static void *accept_loop(void *arg)
{
    server *s = arg;
    ox_socket *conn;
    while (ox_tcp_accept(s->listener, &conn, NULL) == 0)
        if (ox_join_set_spawn(s->connections, serve, conn) != 0)
            ox_socket_close(conn);
    return NULL;
}

static ox_sockaddr server_addr;

/* A client with a request: writes it, reads the echo, closes. */
static void *busy_client(void *arg)
{
    ox_socket *s;
    char back[5];
    if (ox_tcp_connect(&server_addr, &s) != 0 || ox_socket_write_all(s, "hello", 5) != 0 ||
        ox_socket_read_exact(s, back, 5) != 0)
        ox_panic("client %ld: request failed", (long)(intptr_t)arg);
    ox_socket_close(s);
    return NULL;
}

static void *run(void *unused)
{
    (void)unused;
    int stop_signals[] = {SIGINT, SIGTERM};
    ox_receiver *signals;
    if (ox_signal_channel(stop_signals, 2, &signals) != 0)
        ox_panic("cannot listen for signals");
    ox_sockaddr any;
    server srv;
    if (ox_sockaddr_parse("127.0.0.1:0", &any) != 0 ||
        ox_tcp_listen(&any, 128, &srv.listener) != 0 ||
        ox_socket_local_addr(srv.listener, &server_addr) != 0 ||
        ox_join_set_new(&srv.connections) != 0)
        ox_panic("cannot start the server");
    ox_task_handle acceptor = ox_task_spawn(accept_loop, &srv);
    printf("server up; stop it with Ctrl-C (this demo sends itself SIGINT)\n");

    ox_task_handle clients[2];
    for (long i = 0; i < 2; i++)
        clients[i] = ox_task_spawn(busy_client, (void *)(intptr_t)i);
    for (long i = 0; i < 2; i++)
        if (ox_task_join(&clients[i], NULL, NULL) != 0)
            ox_panic("client %ld failed", i);
    printf("2 clients served\n");
    ox_socket *idle;
    char echo;
    if (ox_tcp_connect(&server_addr, &idle) != 0 || ox_socket_write_all(idle, "?", 1) != 0 ||
        ox_socket_read_exact(idle, &echo, 1) != 0) /* the server has a task for it */
        ox_panic("the idle client cannot connect");
    /* What Ctrl-C does, but sent to this thread (raise) rather than to the
     * process (kill), which hands it to the main thread: under
     * ThreadSanitizer a signal that lands on a thread asleep in an oxide
     * wait is held until that thread calls into the C library again, and
     * the main thread sleeps until run() returns (oxide/signal.h). */
    raise(SIGINT);

    int sig;
    if (ox_receiver_recv(signals, &sig) != 0)
        ox_panic("the signal channel closed");
    printf("received %s: no longer accepting\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    ox_task_abort(&acceptor);
    (void)!ox_task_join(&acceptor, NULL, NULL); /* OX_ECANCELED or 0 */
    ox_socket_close(srv.listener);

    /* Drain: connections finish on their own until the deadline; the ones
     * still open then are aborted (their blocked read returns OX_ECANCELED). */
    long finished = 0, aborted = 0;
    ox_instant deadline = ox_instant_after(OX_MILLIS(500));
    void *was_aborted;
    int rc;
    while ((rc = ox_join_set_join_next_deadline(srv.connections, &was_aborted, NULL, NULL,
                                                deadline)) == 0)
        finished++;
    if (rc == OX_ETIMEDOUT) {
        ox_join_set_abort_all(srv.connections);
        while (ox_join_set_join_next(srv.connections, &was_aborted, NULL, NULL) != OX_EEMPTY)
            aborted += (intptr_t)was_aborted;
    }
    ox_join_set_drop(srv.connections);
    printf("connections: %ld finished, %ld aborted at the deadline\n", finished, aborted);
    ox_socket_close(idle);
    ox_receiver_drop(signals);
    printf("shut down cleanly\n");
    return NULL;
}

int main(void)
{
    return ox_task_block_on(run, NULL, NULL, NULL) == 0 ? 0 : 1;
}

/* echo_uring.c - the `uring` and `uring-poll` peers of the echo workloads:
 * the epoll floor (echo_epoll.c) again, one thread, on io_uring (liburing
 * 2.3), to learn whether io_uring would pay for oxide's reactor.
 *
 *   echo-uring PORT        `uring`, completions: a multishot accept; per
 *                          connection one multishot recv into a provided
 *                          buffer ring, and a send SQE from that buffer,
 *                          which goes back to the ring when it is sent.
 *   echo-uring PORT poll   `uring-poll`, readiness, as oxide's reactor would
 *                          use it: a multishot POLL_ADD per descriptor
 *                          (POLLIN | POLLOUT, edge-like, as oxide registers
 *                          with epoll) in place of epoll_wait, then plain
 *                          accept4, read and write system calls, reading
 *                          until EAGAIN as oxide's tasks do.
 *   echo-uring probe       exits 0, printing the ring's setup flags, when
 *                          the kernel gives an io_uring with what both need;
 *                          1, saying why, when it refuses.
 *
 * Both listen on 127.0.0.1:PORT, print "ready" once they accept, and run
 * until killed. One io_uring_submit_and_wait per loop submits everything
 * the last batch of completions asked for and waits for the next. The ring
 * asks for SINGLE_ISSUER | DEFER_TASKRUN (6.1), then COOP_TASKRUN (5.19),
 * then nothing, taking the first the kernel accepts; ECHO_URING_SETUP=coop
 * or =plain starts lower, to compare them.
 *
 * Bytes are never dropped: a send that goes out short is sent on from where
 * it stopped, and a connection's received buffers wait in order, one send
 * in flight at a time. A descriptor is closed only once no request on it
 * is left in the ring (io_uring holds the file while one is), so its number
 * cannot be reused under a request. */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

enum {
    SQ_ENTRIES = 4096,
    CQ_ENTRIES = 32768, /* a multishot recv and a send per connection, 10 000 of them */
    NBUF = 16384,       /* provided buffers (a power of two, at most 32768) ... */
    BUF_SIZE = 512,     /* ... of this size: 8 MiB, touched as the ring cycles */
    BGID = 1,
};

/* user_data: what the request is, in the high half; the descriptor below. */
enum { OP_ACCEPT = 1, OP_RECV, OP_SEND, OP_POLL, OP_CANCEL };
#define UD(op, fd) ((uint64_t)(op) << 32 | (uint32_t)(fd))
#define UD_OP(ud)  ((int)((ud) >> 32))
#define UD_FD(ud)  ((int)(uint32_t)(ud))

static _Noreturn void die(const char *what, int err)
{
    fprintf(stderr, "echo-uring: %s: %s\n", what, strerror(err));
    exit(1);
}

static struct io_uring ring;
static const char *setup_name;

/* Submits what is queued and waits for at least one completion. */
static void submit_and_wait(void)
{
    int r = io_uring_submit_and_wait(&ring, 1);
    if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY)
        die("io_uring_submit_and_wait", -r);
}

/* The first setup the kernel accepts, from the cheapest down. */
static int ring_init(void)
{
    static const struct {
        const char *name;
        unsigned flags;
    } tries[] = {
        {"defer", IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN},
        {"coop", IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG},
        {"plain", 0},
    };
    const char *start = getenv("ECHO_URING_SETUP");
    int r = -EINVAL, from = 0;
    for (int i = 0; start && i < 3; i++)
        if (strcmp(start, tries[i].name) == 0)
            from = i;
    for (int i = from; i < 3; i++) {
        struct io_uring_params p = {
            .flags = tries[i].flags | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL,
            .cq_entries = CQ_ENTRIES,
        };
        r = io_uring_queue_init_params(SQ_ENTRIES, &ring, &p);
        if (r == 0) {
            setup_name = tries[i].name;
            /* Saves the ring's fdget on every io_uring_enter; optional. */
            (void)io_uring_register_ring_fd(&ring);
            return 0;
        }
        if (r != -EINVAL) /* ENOSYS, EPERM (io_uring_disabled), ENOMEM: no flag helps */
            break;
    }
    return r;
}

/* An SQE, submitting what is queued when the ring is full. */
static struct io_uring_sqe *sqe_get(void)
{
    struct io_uring_sqe *sqe;
    while (!(sqe = io_uring_get_sqe(&ring))) {
        int r = io_uring_submit(&ring);
        if (r < 0 && r != -EINTR && r != -EAGAIN)
            die("io_uring_submit", -r);
    }
    return sqe;
}

static int listen_on(const char *port)
{
    int one = 1;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, SOMAXCONN) != 0)
        die("listen", errno);
    return lfd;
}

static void nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Connection records, indexed by descriptor, grown as descriptors come. */
static void *grow(void *arr, int *cap, int fd, size_t size)
{
    if (fd < *cap)
        return arr;
    int n = fd + 1024;
    char *p = realloc(arr, (size_t)n * size);
    if (!p)
        die("realloc", ENOMEM);
    memset(p + (size_t)*cap * size, 0, (size_t)(n - *cap) * size);
    *cap = n;
    return p;
}

/* ---- uring: completions -------------------------------------------------- */

static struct io_uring_buf_ring *br;
static char *bufs;
static int buf_len[NBUF];  /* bytes received into each buffer */
static int buf_next[NBUF]; /* the next buffer of the same connection's queue */
static int held;           /* buffers out of the ring, received and not yet sent */
static int returned;       /* buffers added to the ring, not yet published */

static int setup_buffers(void)
{
    size_t size = NBUF * sizeof(struct io_uring_buf);
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    bufs = malloc((size_t)NBUF * BUF_SIZE);
    if (mem == MAP_FAILED || !bufs)
        return -ENOMEM;
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)mem, .ring_entries = NBUF, .bgid = BGID};
    int r = io_uring_register_buf_ring(&ring, &reg, 0);
    if (r != 0)
        return r;
    br = mem;
    io_uring_buf_ring_init(br);
    for (int i = 0; i < NBUF; i++)
        io_uring_buf_ring_add(br, bufs + (size_t)i * BUF_SIZE, BUF_SIZE, (unsigned short)i,
                              io_uring_buf_ring_mask(NBUF), i);
    io_uring_buf_ring_advance(br, NBUF);
    return 0;
}

/* Gives buffer bid back to the kernel; published after the batch. */
static void buf_return(int bid)
{
    io_uring_buf_ring_add(br, bufs + (size_t)bid * BUF_SIZE, BUF_SIZE, (unsigned short)bid,
                          io_uring_buf_ring_mask(NBUF), returned++);
    held--;
}

enum { RECV_OFF, RECV_ON, RECV_STARVED }; /* OFF: ended (EOF, error, cancelled) */

struct conn {
    int head, tail; /* queued buffers to send, oldest first; -1 when none */
    int off;        /* bytes of the head buffer already sent */
    unsigned char recv, send_on, dead;
};

static struct conn *conns;
static int nconns;
static int *starved; /* connections whose recv ran out of buffers */
static int nstarved, capstarved;

static void arm_accept(int lfd)
{
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, UD(OP_ACCEPT, lfd));
}

static void arm_recv(int fd)
{
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    io_uring_sqe_set_data64(sqe, UD(OP_RECV, fd));
    conns[fd].recv = RECV_ON;
}

static void send_head(int fd)
{
    struct conn *c = &conns[fd];
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_send(sqe, fd, bufs + (size_t)c->head * BUF_SIZE + c->off,
                       (size_t)(buf_len[c->head] - c->off), MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, UD(OP_SEND, fd));
    c->send_on = 1;
}

static void pop_head(struct conn *c)
{
    int bid = c->head;
    c->head = buf_next[bid];
    if (c->head < 0)
        c->tail = -1;
    c->off = 0;
    buf_return(bid);
}

/* Closes fd once nothing of it is in the ring and nothing is left to send. */
static void maybe_close(int fd)
{
    struct conn *c = &conns[fd];
    if (c->recv != RECV_OFF || c->send_on || (c->head >= 0 && !c->dead))
        return;
    while (c->head >= 0)
        pop_head(c);
    close(fd);
    *c = (struct conn){.head = -1, .tail = -1};
}

/* A send failed: drop what is queued, stop receiving, then close. */
static void cancel_recv(int fd)
{
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_cancel64(sqe, UD(OP_RECV, fd), 0);
    io_uring_sqe_set_data64(sqe, UD(OP_CANCEL, fd));
}

static void kill_conn(int fd)
{
    struct conn *c = &conns[fd];
    c->dead = 1;
    if (c->recv == RECV_ON) {
        cancel_recv(fd);
    } else if (c->recv == RECV_STARVED) {
        c->recv = RECV_OFF;
    }
    maybe_close(fd);
}

static void on_recv(int fd, const struct io_uring_cqe *cqe)
{
    struct conn *c = &conns[fd];
    if (cqe->res > 0) {
        int bid = (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        held++;
        if (c->dead) {
            buf_return(bid);
        } else {
            buf_len[bid] = cqe->res;
            buf_next[bid] = -1;
            if (c->tail >= 0)
                buf_next[c->tail] = bid;
            else
                c->head = bid;
            c->tail = bid;
            if (!c->send_on)
                send_head(fd);
        }
    }
    if (cqe->flags & IORING_CQE_F_MORE)
        return;
    /* The multishot recv ended: re-arm it when it only stopped (out of
     * buffers, or a full CQ), else the connection ends after its sends. */
    if (cqe->res == -ENOBUFS && !c->dead) {
        c->recv = RECV_STARVED;
        if (nstarved == capstarved) {
            capstarved = capstarved ? 2 * capstarved : 1024;
            starved = realloc(starved, (size_t)capstarved * sizeof *starved);
            if (!starved)
                die("realloc", ENOMEM);
        }
        starved[nstarved++] = fd;
    } else if (cqe->res > 0 && !c->dead) {
        arm_recv(fd);
    } else {
        c->recv = RECV_OFF;
        maybe_close(fd);
    }
}

static void on_send(int fd, const struct io_uring_cqe *cqe)
{
    struct conn *c = &conns[fd];
    c->send_on = 0;
    if (cqe->res <= 0) { /* 0 of a non-empty send would only repeat */
        kill_conn(fd);
        return;
    }
    c->off += cqe->res;
    if (c->off == buf_len[c->head])
        pop_head(c);
    if (c->head >= 0 && !c->dead)
        send_head(fd);
    else
        maybe_close(fd);
}

static void serve_uring(int lfd)
{
    int r = setup_buffers();
    if (r != 0)
        die("io_uring_register_buf_ring", -r);
    arm_accept(lfd);
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        /* Buffers came back: let the starved receive again. */
        if (nstarved > 0 && held < NBUF) {
            int n = nstarved;
            nstarved = 0;
            for (int i = 0; i < n; i++)
                if (conns[starved[i]].recv == RECV_STARVED)
                    arm_recv(starved[i]);
        }
        submit_and_wait();
        unsigned head, seen = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&ring, head, cqe)
        {
            int fd = UD_FD(cqe->user_data);
            seen++;
            switch (UD_OP(cqe->user_data)) {
            case OP_ACCEPT:
                if (cqe->res >= 0) {
                    conns = grow(conns, &nconns, cqe->res, sizeof *conns);
                    conns[cqe->res] = (struct conn){.head = -1, .tail = -1};
                    nodelay(cqe->res);
                    arm_recv(cqe->res);
                } else if (cqe->res != -ECONNABORTED) { /* EMFILE: go on serving */
                    fprintf(stderr, "echo-uring: accept: %s\n", strerror(-cqe->res));
                }
                if (!(cqe->flags & IORING_CQE_F_MORE))
                    arm_accept(lfd);
                break;
            case OP_RECV:
                on_recv(fd, cqe);
                break;
            case OP_SEND:
                on_send(fd, cqe);
                break;
            default: /* OP_CANCEL: the recv's own last CQE tells the end */
                /* EALREADY: the recv had a wake-up in hand and stays armed;
                 * ask again (the next submit runs that wake-up). */
                if (cqe->res == -EALREADY && conns[fd].dead && conns[fd].recv == RECV_ON)
                    cancel_recv(fd);
                break;
            }
        }
        io_uring_cq_advance(&ring, seen);
        if (returned > 0) {
            io_uring_buf_ring_advance(br, returned);
            returned = 0;
        }
    }
}

/* ---- uring-poll: readiness, then system calls ------------------------------ */

struct pconn {
    char *data; /* what a write did not take */
    size_t off, len;
    unsigned char closing; /* its poll is being removed */
};

static struct pconn *pconns;
static int npconns;

static void arm_poll(int fd, unsigned events)
{
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_poll_multishot(sqe, fd, events);
    io_uring_sqe_set_data64(sqe, UD(OP_POLL, fd));
}

static void remove_poll(int fd)
{
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_poll_remove(sqe, UD(OP_POLL, fd));
    io_uring_sqe_set_data64(sqe, UD(OP_CANCEL, fd));
}

/* Stops watching fd; it is closed when its poll's last CQE comes. */
static void pkill(int fd)
{
    struct pconn *p = &pconns[fd];
    free(p->data);
    *p = (struct pconn){.closing = 1};
    remove_poll(fd);
}

/* Writes data; keeps what the socket did not take. Returns -1 on error. */
static int send_or_keep(int fd, const char *data, size_t len)
{
    ssize_t w = write(fd, data, len);
    if (w < 0 && errno != EAGAIN)
        return -1;
    size_t done = w < 0 ? 0 : (size_t)w;
    if (done == len)
        return 0;
    struct pconn *p = &pconns[fd];
    p->data = malloc(len - done);
    if (!p->data)
        die("malloc", ENOMEM);
    memcpy(p->data, data + done, len - done);
    p->off = 0;
    p->len = len - done;
    return 0;
}

/* A readiness event on a connection. The poll is edge-like (a CQE per
 * wake-up), so read until EAGAIN, as an oxide task does before it parks.
 * A short read is not enough: wake-ups that come before the CQE is posted
 * fold into it with the first one's mask, so data and the end of file
 * that followed it can arrive as one POLLIN, and only a second read sees
 * the end. While a write is unfinished, finish it first and read nothing,
 * as echo_epoll.c does. Returns -1 to close. */
static int on_ready(int fd)
{
    static char buf[65536];
    struct pconn *p = &pconns[fd];
    if (p->data) {
        ssize_t w = write(fd, p->data + p->off, p->len - p->off);
        if (w < 0)
            return errno == EAGAIN ? 0 : -1;
        p->off += (size_t)w;
        if (p->off < p->len)
            return 0; /* the next POLLOUT wake-up goes on */
        free(p->data);
        p->data = NULL;
    }
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EAGAIN)
            return 0;
        if (r <= 0 || send_or_keep(fd, buf, (size_t)r) != 0)
            return -1;
        if (p->data)
            return 0;
    }
}

static void serve_poll(int lfd)
{
    arm_poll(lfd, POLLIN);
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        submit_and_wait();
        unsigned head, seen = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&ring, head, cqe)
        {
            int fd = UD_FD(cqe->user_data);
            int more = (cqe->flags & IORING_CQE_F_MORE) != 0;
            seen++;
            if (UD_OP(cqe->user_data) == OP_CANCEL) {
                /* EALREADY: the poll had a wake-up in hand and stays
                 * armed; ask again (the next submit runs that wake-up). */
                if (cqe->res == -EALREADY && pconns[fd].closing)
                    remove_poll(fd);
                continue;
            }
            if (fd == lfd) {
                int c;
                while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    pconns = grow(pconns, &npconns, c, sizeof *pconns);
                    pconns[c] = (struct pconn){0};
                    nodelay(c);
                    arm_poll(c, POLLIN | POLLOUT);
                }
                if (errno != EAGAIN && errno != ECONNABORTED)
                    perror("echo-uring: accept4"); /* EMFILE: go on serving */
                if (!more)
                    arm_poll(lfd, POLLIN);
                continue;
            }
            struct pconn *p = &pconns[fd];
            if (p->closing) {
                if (!more) { /* the poll is gone: nothing of fd is in the ring */
                    close(fd);
                    p->closing = 0;
                }
                continue;
            }
            if (cqe->res < 0 && !more) { /* the poll failed and ended */
                free(p->data);
                *p = (struct pconn){0};
                close(fd);
                continue;
            }
            if (on_ready(fd) != 0) {
                if (more) {
                    pkill(fd);
                } else { /* the poll has ended already */
                    free(p->data);
                    *p = (struct pconn){0};
                    close(fd);
                }
            } else if (!more) { /* it only stopped (a full CQ): watch on */
                arm_poll(fd, POLLIN | POLLOUT);
            }
        }
        io_uring_cq_advance(&ring, seen);
    }
}

int main(int argc, char **argv)
{
    int poll_mode = argc == 3 && strcmp(argv[2], "poll") == 0;
    if (argc < 2 || argc > 3 || (argc == 3 && !poll_mode)) {
        fprintf(stderr, "usage: echo-uring PORT [poll] | echo-uring probe\n");
        return 2;
    }
    int r = ring_init();
    if (r != 0)
        die("io_uring_queue_init", -r);
    if (strcmp(argv[1], "probe") == 0) {
        struct io_uring_probe *pr = io_uring_get_probe_ring(&ring);
        if (!pr || !io_uring_opcode_supported(pr, IORING_OP_RECV) ||
            !io_uring_opcode_supported(pr, IORING_OP_POLL_ADD))
            die("probe", ENOSYS);
        io_uring_free_probe(pr);
        if ((r = setup_buffers()) != 0) /* the buffer ring needs 5.19 */
            die("io_uring_register_buf_ring", -r);
        printf("io_uring setup: %s\n", setup_name);
        return 0;
    }
    int lfd = listen_on(argv[1]);
    if (poll_mode)
        serve_poll(lfd);
    else
        serve_uring(lfd);
}

/* helpers.c - see helpers.h. */
#define _GNU_SOURCE /* sched_setaffinity, CPU_SET */
#include "helpers.h"

#include "check/lockdep.h"      /* white box: ox__lockdep_bytes takes the checker's lock */
#include "task/task_internal.h" /* white box: rt->sched */
#include "panic/unwind.h"
#include "thread/park.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static FILE *captured;
static int saved_stderr = -1;

void ox_test_capture_stderr(void)
{
    fflush(stderr);
    captured = tmpfile();
    CHECK(captured != NULL);
    saved_stderr = dup(STDERR_FILENO);
    CHECK(dup2(fileno(captured), STDERR_FILENO) == STDERR_FILENO);
}

char *ox_test_stderr_text(void)
{
    fflush(stderr);
    long n = ftell(captured);
    CHECK(n >= 0);
    char *text = calloc((size_t)n + 1, 1);
    CHECK(text != NULL);
    rewind(captured);
    CHECK(fread(text, 1, (size_t)n, captured) == (size_t)n);
    fseek(captured, 0, SEEK_END);
    dup2(saved_stderr, STDERR_FILENO);
    return text;
}

ox_join_handle ox_test_spawn_named(const char *name, void *(*fn)(void *), void *arg)
{
    ox_thread_builder b = OX_THREAD_BUILDER_INIT;
    ox_thread_builder_name(&b, name);
    ox_join_handle h;
    CHECK_EQ(ox_thread_builder_spawn(&b, fn, arg, &h), 0);
    return h;
}

void ox_test_join(ox_join_handle *h)
{
    CHECK_EQ(ox_thread_join(h, NULL, NULL), 0);
}

void ox_test_run_named(const char *name, void *(*fn)(void *), void *arg)
{
    ox_join_handle h = ox_test_spawn_named(name, fn, arg);
    ox_test_join(&h);
}

void *ox_test_run_alone(size_t workers, void *(*fn)(void *), void *arg)
{
    ox_runtime *rt = ox_test_runtime(workers);
    ox_task_handle h = ox_test_spawn_on(rt, fn, arg);
    void *result = NULL;
    CHECK_EQ(ox_task_join(&h, &result, NULL), 0);
    ox_runtime_shutdown(rt);
    return result;
}

void ox_test_wait_count(_Atomic long *count, long n)
{
    /* Acquire: what the counted tasks did before they counted is seen. */
    while (atomic_load_explicit(count, memory_order_acquire) < n) {
        if (ox_task_current() != NULL)
            CHECK_EQ(ox_task_sleep(OX_MILLIS(1)), 0);
        else
            ox_thread_sleep(OX_MILLIS(1));
    }
}

ox_socket *ox_test_listen(const char *text, ox_sockaddr *addr)
{
    ox_sockaddr any;
    CHECK_EQ(ox_sockaddr_parse(text, &any), 0);
    ox_socket *l;
    CHECK_EQ(ox_tcp_listen(&any, 1024, &l), 0);
    CHECK_EQ(ox_socket_local_addr(l, addr), 0);
    CHECK(ox_sockaddr_port(addr) != 0);
    return l;
}

uint32_t ox_test_held_depth(void)
{
    uint32_t count = 0;
    (void)ox__held_entries(&count);
    return count;
}

ox_runtime *ox_test_runtime(size_t workers)
{
    ox_runtime_builder b = OX_RUNTIME_BUILDER_INIT;
    b.workers = workers;
    ox_runtime *rt;
    CHECK_EQ(ox_runtime_new(&b, &rt), 0);
    return rt;
}

ox_task_handle ox_test_spawn_on(ox_runtime *rt, void *(*fn)(void *), void *arg)
{
    return ox_test_spawn_named_on(rt, NULL, fn, arg);
}

void ox_test_check_all_idle_no_searcher(ox_runtime *rt)
{
    int64_t give_up = ox_instant_now().ns + ox_test_bound(OX_MILLIS(2000));
    uint32_t s;
    for (;;) {
        /* Relaxed: a snapshot, only compared with the final state. */
        s = atomic_load_explicit(&rt->sched, memory_order_relaxed);
        if ((s & 0xffffu) == 0 && (s >> 16) == rt->nworkers)
            return;
        if (ox_instant_now().ns > give_up)
            break;
        ox_thread_sleep(OX_MILLIS(1));
    }
    ox_test_fail(__FILE__, __LINE__, "idle runtime of %zu workers: %u searching, %u idle",
                 rt->nworkers, s & 0xffffu, s >> 16);
}

ox_task_handle ox_test_spawn_named_on(ox_runtime *rt, const char *name, void *(*fn)(void *),
                                      void *arg)
{
    ox_task_builder b = OX_TASK_BUILDER_INIT;
    b.runtime = rt;
    b.name = name;
    ox_task_handle h;
    CHECK_EQ(ox_task_builder_spawn(&b, fn, arg, &h), 0);
    return h;
}

void ox_test_run_tasks_and_threads(ox_runtime *rt, int tasks, int threads, void *(*fn)(void *))
{
    ox_task_handle *ts = calloc((size_t)tasks, sizeof *ts);
    ox_join_handle *th = calloc((size_t)threads, sizeof *th);
    CHECK(ts != NULL && th != NULL);
    for (int i = 0; i < tasks; i++)
        ts[i] = ox_test_spawn_on(rt, fn, (void *)(intptr_t)i);
    for (int i = 0; i < threads; i++)
        th[i] = ox_thread_spawn(fn, (void *)(intptr_t)i);
    for (int i = 0; i < tasks; i++)
        CHECK_EQ(ox_task_join(&ts[i], NULL, NULL), 0);
    for (int i = 0; i < threads; i++)
        ox_test_join(&th[i]);
    free(ts);
    free(th);
}

void *ox_test_abort_at_its_wait(ox_task_handle *h, const _Atomic int *arrived)
{
    while (atomic_load(arrived) == 0)
        ox_thread_yield();
    ox_thread_sleep(OX_MILLIS(2)); /* most likely blocked by now; either way it must end */
    CHECK(!ox_task_is_finished(h));
    ox_task_abort(h);
    void *r = NULL;
    CHECK_EQ(ox_task_join(h, &r, NULL), 0);
    return r;
}

struct blocked_count {
    const void *object; /* count the threads blocked on this, */
    const char *site;   /* or (object NULL) at a wait site of this name, */
    uint64_t id;        /* or (both NULL) the thread with this id (tasks count by object or site) */
    int n;
};

static void count_blocked(const ox__blocked_info *info, void *arg)
{
    struct blocked_count *c = arg;
    if (c->object != NULL ? info->object == c->object
        : c->site != NULL ? strcmp(info->site->what, c->site) == 0
                          : !info->task && info->id == c->id)
        c->n++;
}

static int wait_blocked(struct blocked_count want, int n, const _Atomic int *give_up)
{
    for (;;) {
        struct blocked_count c = want;
        ox__park_visit_blocked(count_blocked, &c, NULL);
        if (c.n >= n || (give_up != NULL && atomic_load(give_up) != 0))
            return c.n;
        ox_thread_yield();
    }
}

int ox_test_wait_blocked(const void *object, int n, const _Atomic int *give_up)
{
    CHECK(object != NULL);
    return wait_blocked((struct blocked_count){.object = object}, n, give_up);
}

void ox_test_wait_thread_blocked(ox_thread *t, const _Atomic int *give_up)
{
    wait_blocked((struct blocked_count){.id = ox_thread_id(t)}, 1, give_up);
}

void ox_test_wait_blocked_on(const void *object, int count)
{
    (void)ox_test_wait_blocked(object, count, NULL);
}

void ox_test_wait_blocked_at(const char *site, int count)
{
    wait_blocked((struct blocked_count){.site = site}, count, NULL);
}

char *ox_test_dump_blocked(int *count)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CHECK(f != NULL);
    *count = ox_dump_blocked_threads(f);
    fclose(f);
    return text;
}

void ox_test_wait_any_blocked(int n)
{
    FILE *null = fopen("/dev/null", "w");
    CHECK(null != NULL);
    ox_instant give_up = ox_instant_after(ox_test_bound(OX_SECS(10)));
    while (ox_dump_blocked_threads(null) < n) {
        CHECK(ox_instant_now().ns < give_up.ns);
        ox_thread_sleep(OX_MILLIS(1));
    }
    fclose(null);
}

void *ox_test_park_until_done(void *done)
{
    /* Acquire: pairs with the release store of whoever sets it. */
    while (!atomic_load_explicit((_Atomic int *)done, memory_order_acquire))
        ox_thread_park();
    return NULL;
}

static void count_tasks_at(const ox__lot_waiter *w, void *arg)
{
    struct blocked_count *c = arg;
    if (strcmp(w->site->what, c->site) == 0)
        c->n++;
}

void ox_test_wait_tasks_blocked_at(const char *site, int count)
{
    for (;;) {
        struct blocked_count c = {.site = site};
        int busy = 0;
        ox__park_lot_visit(count_tasks_at, &c, &busy); /* skips a busy bucket: look again */
        if (c.n >= count)
            return;
        ox_thread_yield();
    }
}

/* ---- racing feeders (helpers.h) ---- */

static void *feed_fn(void *arg)
{
    struct ox_test_feed *f = arg;
    unsigned seed = (unsigned)f->id * 2654435761u + 1;
    long i;
    for (i = 0; ox_test_budget_more(f->budget, i); i++) {
        uint64_t v = f->id << 32 | (uint64_t)i;
        CHECK_EQ(ox_sender_send(f->tx, &v), 0);
        seed = seed * 1103515245u + 12345u;
        if ((seed >> 16) % 4 == 0) /* the receiver often drains to empty */
            ox_thread_yield();
    }
    f->sent = i; /* read after the join */
    ox_sender_drop(f->tx);
    return NULL;
}

void ox_test_feeders_start(ox_test_feeders *f, ox_sender *tx, long min, long max)
{
    f->budget = ox_test_budget_start(min, max);
    for (int i = 0; i < OX_TEST_FEEDERS; i++)
        f->feed[i] = (struct ox_test_feed){
            .tx = ox_sender_clone(tx), .id = (uint64_t)i, .budget = &f->budget};
    ox_sender_drop(tx);
    f->rt = ox_test_runtime(1);
    for (int i = 0; i < 2; i++) {
        f->threads[i] = ox_thread_spawn(feed_fn, &f->feed[i]);
        f->tasks[i] = ox_test_spawn_on(f->rt, feed_fn, &f->feed[2 + i]);
    }
}

void ox_test_feeders_join(ox_test_feeders *f, const long next[OX_TEST_FEEDERS])
{
    for (int i = 0; i < 2; i++) {
        ox_test_join(&f->threads[i]);
        CHECK_EQ(ox_task_join(&f->tasks[i], NULL, NULL), 0);
    }
    ox_runtime_shutdown(f->rt);
    for (int i = 0; i < OX_TEST_FEEDERS; i++) {
        CHECK(f->feed[i].sent >= f->budget.min);
        CHECK_EQ(next[i], f->feed[i].sent); /* every message, none twice */
    }
}

void ox_test_feed_check(long next[OX_TEST_FEEDERS], uint64_t v)
{
    uint64_t id = v >> 32;
    CHECK(id < OX_TEST_FEEDERS);
    CHECK_EQ((long)(v & 0xffffffffu), next[id]);
    next[id]++;
}

/* ---- a loop woken by a channel (helpers.h) ---- */

#define LOOP_PRIMER UINT64_MAX /* no feeder's value: feeder ids are small */

static void loop_feed_start_feeders(ox_test_loop_feed *f)
{
    f->started = true;
    ox_test_feeders_start(&f->feeders, f->tx, f->min, f->max); /* takes tx */
    f->tx = NULL;
}

void ox_test_loop_feed_start(ox_test_loop_feed *f, size_t cap, long min, long max)
{
    *f = (ox_test_loop_feed){.min = min, .max = max};
    CHECK_EQ(ox_channel(sizeof(uint64_t), cap, &f->tx, &f->rx), 0);
    if (cap != 0) {
        uint64_t primer = LOOP_PRIMER;
        CHECK_EQ(ox_sender_try_send(f->tx, &primer), 0); /* before the fd exists */
    }
    CHECK_EQ(ox_receiver_event_fd(f->rx, &f->fd), 0);
    if (cap == 0)
        loop_feed_start_feeders(f); /* a rendezvous buffers nothing */
}

int ox_test_loop_feed_drain(ox_test_loop_feed *f)
{
    f->wakes++;
    uint64_t v;
    int rc;
    bool primer = false;
    while ((rc = ox_receiver_try_recv(f->rx, &v)) == 0) {
        if (v == LOOP_PRIMER) {
            CHECK(!f->started);
            primer = true;
        } else {
            ox_test_feed_check(f->next, v);
        }
    }
    if (rc != OX_EDISCONNECTED)
        CHECK_EQ(rc, OX_EEMPTY);
    if (primer) {
        /* Nobody sends yet: the empty try_recv cleared the fd for good. */
        CHECK_EQ(rc, OX_EEMPTY);
        struct pollfd p = {.fd = f->fd, .events = POLLIN};
        CHECK_EQ(poll(&p, 1, 0), 0);
        loop_feed_start_feeders(f);
    }
    return rc;
}

void ox_test_loop_feed_finish(ox_test_loop_feed *f)
{
    CHECK(f->started);
    CHECK(f->wakes > 0);
    ox_test_feeders_join(&f->feeders, f->next);
    ox_receiver_drop(f->rx);
}

/* Receives until disconnected; checks the values are 0, 1, 2, ... */
static void *receive_in_order(void *arg)
{
    ox_receiver *rx = arg;
    long v, expect = 0;
    while (ox_receiver_recv(rx, &v) == 0)
        CHECK_EQ(v, expect++);
    ox_receiver_drop(rx);
    return (void *)(intptr_t)expect;
}

void ox_test_fed_pair_start(ox_test_fed_pair *p, long total)
{
    ox_receiver *trx, *hrx;
    *p = (ox_test_fed_pair){.total = total, .rt = ox_test_runtime(1)};
    CHECK_EQ(ox_channel(sizeof(long), OX_UNBOUNDED, &p->to_task, &trx), 0);
    CHECK_EQ(ox_channel(sizeof(long), OX_UNBOUNDED, &p->to_thread, &hrx), 0);
    p->task = ox_test_spawn_on(p->rt, receive_in_order, trx);
    p->thread = ox_thread_spawn(receive_in_order, hrx);
}

bool ox_test_fed_pair_feed(ox_test_fed_pair *p)
{
    for (int burst = 0; burst < 50 && p->sent < p->total; burst++, p->sent++) {
        CHECK_EQ(ox_sender_try_send(p->to_task, &p->sent), 0);
        CHECK_EQ(ox_sender_try_send(p->to_thread, &p->sent), 0);
    }
    if (p->sent < p->total)
        return false;
    ox_sender_drop(p->to_task); /* the receivers see the end */
    ox_sender_drop(p->to_thread);
    return true;
}

void ox_test_fed_pair_join(ox_test_fed_pair *p)
{
    void *got;
    CHECK_EQ(ox_task_join(&p->task, &got, NULL), 0);
    CHECK_EQ((intptr_t)got, p->total);
    CHECK_EQ(ox_thread_join(&p->thread, &got, NULL), 0);
    CHECK_EQ((intptr_t)got, p->total);
    ox_runtime_shutdown(p->rt);
}

int ox_test_fork_stderr(void (*child)(void *arg), void *arg, char *err, size_t size)
{
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    fflush(NULL); /* the child must not flush the parent's buffered output again */
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        if (dup2(fds[1], STDERR_FILENO) < 0)
            _exit(3);
        child(arg);
        _exit(4); /* child must not return: the runner would go on twice */
    }
    close(fds[1]);
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fds[0], err + len, size - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
        if (len == size - 1) { /* keep the newer half, read on to EOF */
            size_t keep = len / 2;
            memmove(err, err + len - keep, keep);
            len = keep;
        }
    }
    err[len] = '\0';
    close(fds[0]);
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    return status;
}

void ox_test_arc_set_strong(void *payload, size_t n)
{
    atomic_store(&ox__arc_header_of(payload)->strong, (ptrdiff_t)(n - 1));
}

uint32_t ox_test_rand(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

void ox_test_spin_ns(int64_t ns)
{
    int64_t until = ox_instant_now().ns + ns;
    while (ox_instant_now().ns < until)
        continue;
}

static void *stir_the_checker(void *arg)
{
    ox_test_stirrer *s = arg;
    static const ox_lock_class cls = {"stirred", __FILE__, __LINE__};
    static int dummy;
    /* Relaxed: only a stop flag; nothing is published with it, and the
     * join in ox_test_stirrer_stop orders the rest. */
    while (atomic_load_explicit(&s->running, memory_order_relaxed)) {
        ox_lock_class_register(&dummy, &cls);
        (void)ox__lockdep_bytes();
    }
    return NULL;
}

void ox_test_stirrer_start(ox_test_stirrer *s)
{
    atomic_init(&s->running, 1);
    s->thread = ox_thread_spawn(stir_the_checker, s);
}

void ox_test_stirrer_stop(ox_test_stirrer *s)
{
    atomic_store_explicit(&s->running, 0, memory_order_relaxed);
    ox_test_join(&s->thread);
}

void ox_test_quiet_hook(const ox_panic_payload *p)
{
    (void)p;
}

void *ox_test_set_flag(void *flag)
{
    atomic_store((_Atomic int *)flag, 1);
    return NULL;
}

void *ox_test_sleep_1ms_then_set_flag(void *flag)
{
    CHECK_EQ(ox_task_sleep(OX_MILLIS(1)), 0);
    return ox_test_set_flag(flag);
}

static volatile int depth_limit = 1 << 30; /* volatile: the recursion looks finite */

void *ox_test_recurse(void *arg)
{
    volatile char buf[1024];
    buf[0] = (char)(intptr_t)arg;
    if ((intptr_t)arg < depth_limit)
        ox_test_recurse((void *)((intptr_t)arg + 1));
    return (void *)(intptr_t)buf[0];
}

/* The lowest-numbered CPU this thread may run on, other than excluded (-1:
 * none excluded); -1 if there is none. */
static int allowed_cpu_but(int excluded)
{
    cpu_set_t set;
    CHECK_EQ(sched_getaffinity(0, sizeof set, &set), 0);
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (c != excluded && CPU_ISSET(c, &set))
            return c;
    return -1;
}

int ox_test_first_allowed_cpu(void)
{
    int cpu = allowed_cpu_but(-1);
    CHECK(cpu >= 0);
    return cpu;
}

int ox_test_other_allowed_cpu(int cpu)
{
    int other = allowed_cpu_but(cpu);
    return other >= 0 ? other : cpu;
}

void *ox_test_answer(void *answerer)
{
    ox_test_answerer *a = answerer;
    ox_test_pin(0, a->cpu);
    uint64_t m[4] = {0};
    size_t size = ox_sender_elem_size(a->tx);
    while (ox_receiver_recv(a->rx, size ? m : NULL) == 0) {
        if (ox__wait_yields_skipped())
            atomic_store(&a->yields_skipped, 1);
        m[0]++;
        if (ox_sender_send(a->tx, size ? m : NULL) != 0)
            break;
    }
    ox_sender_drop(a->tx);
    ox_receiver_drop(a->rx);
    return NULL;
}

void ox_test_pin(pid_t who, int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    CHECK_EQ(sched_setaffinity(who, sizeof set, &set), 0);
}

void ox_test_rwlock_end_bias(ox_rwlock *l)
{
    if (!(atomic_load(&l->state) & OX__RW_BIASED))
        return;
    /* The first write ends the bias. Traces in the CPUs' lines, of readers
     * of an earlier lock at this address, keep it dispersed for one more
     * write, which finds them cleared. */
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(ox_rwlock_write(l), 0);
        ox_rwlock_write_unlock(l);
    }
    CHECK_EQ(atomic_load(&l->state) & (OX__RW_BIASED | OX__RW_DISPERSED), 0);
    CHECK(!ox_test_rwlock_copy(l));
}

void ox_test_rwlock_disperse(ox_rwlock *l)
{
    ox_test_rwlock_end_bias(l);
    CHECK_EQ(ox_rwlock_read(l), 0);
    CHECK_EQ(ox_rwlock_read(l), 0);
    ox_rwlock_read_unlock(l);
    ox_rwlock_read_unlock(l);
    CHECK(atomic_load(&l->state) & OX__RW_DISPERSED);
    CHECK(ox_test_rwlock_copy(l)); /* and its copy */
    CHECK_EQ(ox_test_rwlock_count(l), 0);
}

uint32_t ox_test_rwlock_count(ox_rwlock *l)
{
    return atomic_load(&l->state) & OX__RW_READERS_MASK;
}

bool ox_test_rwlock_copy(ox_rwlock *l)
{
    return atomic_load(&l->writer_notify) & (OX__RW_NOTIFY_DISPERSED | OX__RW_NOTIFY_BIASED);
}

void ox_test_rwlock_force_copy(ox_rwlock *l, bool set)
{
    if (set)
        atomic_fetch_or(&l->writer_notify, OX__RW_NOTIFY_DISPERSED);
    else
        atomic_fetch_and(&l->writer_notify, ~OX__RW_NOTIFY_DISPERSED);
}

bool ox_test_deny_membarrier(void)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_membarrier, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {(unsigned short)(sizeof f / sizeof f[0]), f};
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
           prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

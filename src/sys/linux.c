/* linux.c - futex, clocks and threads on Linux (glibc or musl).
 * Threads are pthreads: the C library must know about every thread for
 * errno, stdio locking and its own thread-locals. */
#define _GNU_SOURCE
#include "sys.h"

#include "oxide/base.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

_Static_assert(sizeof(pthread_t) <= sizeof(ox__sys_thread), "pthread_t must fit ox__sys_thread");

static struct timespec timespec_from_ns(int64_t ns)
{
    return (struct timespec){.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
}

int ox__sys_futex_wait(_Atomic uint32_t *word, uint32_t expected, int64_t deadline_ns)
{
    struct timespec ts;
    struct timespec *tsp = NULL;
    if (deadline_ns != INT64_MAX) {
        if (deadline_ns <= ox__sys_monotonic_ns())
            return OX_ETIMEDOUT;
        ts = timespec_from_ns(deadline_ns);
        tsp = &ts;
    }
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so a
     * wait that is interrupted and retried never stretches the timeout. */
    long r = syscall(SYS_futex, word, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, expected, tsp, NULL,
                     FUTEX_BITSET_MATCH_ANY);
    if (r == -1 && errno == ETIMEDOUT)
        return OX_ETIMEDOUT;
    return 0; /* woken, EAGAIN (value differed) or EINTR: the caller re-checks */
}

int ox__sys_futex_wake(_Atomic uint32_t *word, int n)
{
    long r = syscall(SYS_futex, word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, n, NULL, NULL, 0);
    return r < 0 ? 0 : (int)r;
}

int ox__sys_futex_requeue(_Atomic uint32_t *from, uint32_t expected, int wake, _Atomic uint32_t *to)
{
    /* The kernel reads the requeue limit from the timeout argument. */
    long r = syscall(SYS_futex, from, FUTEX_CMP_REQUEUE | FUTEX_PRIVATE_FLAG, wake,
                     (void *)(uintptr_t)INT_MAX, /* NOLINT(performance-no-int-to-ptr) */
                     to, expected);
    return r < 0 ? -1 : (int)r;
}

static long membarrier(int cmd)
{
    return syscall(SYS_membarrier, cmd, 0, 0);
}

bool ox__sys_fence_others_enable(void)
{
    /* The expedited command (IPIs to the CPUs running the process's
     * threads, microseconds) needs the process registered first; the other
     * (MEMBARRIER_CMD_GLOBAL) waits for an RCU grace period, milliseconds.
     * The registration outlives fork; exec starts over, and so do we. */
    return membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}

bool ox__sys_fence_others(void)
{
    return membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0;
}

int64_t ox__sys_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void ox__sys_sleep_until(int64_t deadline_ns)
{
    if (deadline_ns == INT64_MAX) {
        for (;;)
            pause();
    }
    struct timespec ts = timespec_from_ns(deadline_ns);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

void ox__sys_yield(void)
{
    sched_yield();
}

int64_t ox__sys_process_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int ox__sys_thread_start(ox__sys_thread *out, size_t stack_size, bool set_stack_size,
                         void *(*fn)(void *), void *arg)
{
    pthread_t t;
    int rc;
    if (!set_stack_size) {
        /* The default attributes: the same cost as a bare pthread_create. */
        rc = pthread_create(&t, NULL, fn, arg);
    } else {
        pthread_attr_t attr;
        rc = pthread_attr_init(&attr);
        if (rc != 0)
            return rc;
        /* As Rust: at least the minimum (so 0 means "the smallest"); the
         * size as given first, rounded up to whole pages only if refused
         * (some C libraries want pages), so that an absurd size fails at
         * pthread_create with the OS's own errno. */
        if (stack_size < (size_t)PTHREAD_STACK_MIN)
            stack_size = (size_t)PTHREAD_STACK_MIN;
        rc = pthread_attr_setstacksize(&attr, stack_size);
        if (rc == EINVAL) {
            size_t page = (size_t)sysconf(_SC_PAGESIZE);
            if (stack_size <= SIZE_MAX - page)
                rc = pthread_attr_setstacksize(&attr, (stack_size + page - 1) / page * page);
        }
        if (rc == 0)
            rc = pthread_create(&t, &attr, fn, arg);
        pthread_attr_destroy(&attr);
    }
    if (rc == 0)
        *out = (ox__sys_thread)t;
    return rc;
}

int ox__sys_thread_join(ox__sys_thread thread)
{
    return pthread_join((pthread_t)thread, NULL);
}

void ox__sys_thread_detach(ox__sys_thread thread)
{
    pthread_detach((pthread_t)thread);
}

void ox__sys_thread_set_os_name(const char *name)
{
    /* Linux keeps 15 bytes. Cut at a UTF-8 character boundary so tools do
     * not show a broken character. */
    char os_name[16];
    size_t n = strlen(name);
    if (n > 15) {
        n = 15;
        while (n > 0 && ((unsigned char)name[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(os_name, name, n);
    os_name[n] = '\0';
    pthread_setname_np(pthread_self(), os_name);
}

long ox__sys_thread_os_id(void)
{
    return syscall(SYS_gettid);
}

int ox__sys_is_main_thread(void)
{
    return syscall(SYS_gettid) == getpid();
}

/* Reads up to two whitespace-separated fields of a small file. Returns how
 * many were read. */
static int read_fields(const char *path, char *a, char *b, size_t n)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    char line[128];
    int got = 0;
    if (fgets(line, sizeof line, f)) {
        char *save = NULL;
        char *first = strtok_r(line, " \n", &save);
        char *second = first ? strtok_r(NULL, " \n", &save) : NULL;
        if (first) {
            snprintf(a, n, "%s", first);
            got = 1;
        }
        if (second) {
            snprintf(b, n, "%s", second);
            got = 2;
        }
    }
    fclose(f);
    return got;
}

/* A positive integer, or -1 ("max", garbage, or out of range). */
static long long parse_positive(const char *s)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    return (errno == 0 && end != s && *end == '\0' && v > 0) ? v : -1;
}

/* The cgroup CPU quota as a whole number of CPUs (rounded up), or 0 if none
 * is set. cgroup v2 first (cpu.max: "max 100000" or "50000 100000"), then
 * v1 (cpu.cfs_quota_us and cpu.cfs_period_us). Only the cgroup mount's root
 * is read: what a container sees as its own. */
static size_t cgroup_cpu_quota(void)
{
    char q[32] = "", p[32] = "";
    long long quota, period;
    if (read_fields("/sys/fs/cgroup/cpu.max", q, p, sizeof q) == 2) {
        quota = parse_positive(q);
        period = parse_positive(p);
    } else {
        char unused[32];
        read_fields("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", q, unused, sizeof q);
        read_fields("/sys/fs/cgroup/cpu/cpu.cfs_period_us", p, unused, sizeof p);
        quota = parse_positive(q);
        period = parse_positive(p);
    }
    if (quota <= 0 || period <= 0)
        return 0;
    return (size_t)((quota + period - 1) / period);
}

size_t ox__sys_available_parallelism(void)
{
    size_t n = 0;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = (size_t)CPU_COUNT(&set);
    if (n == 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        n = online > 0 ? (size_t)online : 1;
    }
    size_t quota = cgroup_cpu_quota();
    if (quota > 0 && quota < n)
        n = quota;
    return n;
}

void ox__sys_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
    if (pthread_atfork(prepare, parent, child) != 0)
        ox_abort("ox__sys_atfork", "cannot register fork handlers");
}

static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;
/* Always the same function (the unit layer's), stored by every thread
 * that arms before it sets its key, and read by that thread's key
 * destructor: relaxed, as each thread reads its own store or the same
 * value stored by another. */
static _Atomic(void (*)(void)) exit_fn;

static void exit_key_destructor(void *unused)
{
    (void)unused;
    atomic_load_explicit(&exit_fn, memory_order_relaxed)();
}

static void exit_key_create(void)
{
    if (pthread_key_create(&exit_key, exit_key_destructor) != 0)
        ox_abort("ox__sys_thread_exit_arm", "cannot create a pthread key");
}

void ox__sys_thread_exit_arm(void (*fn)(void))
{
    pthread_once(&exit_key_once, exit_key_create);
    atomic_store_explicit(&exit_fn, fn, memory_order_relaxed);
    pthread_setspecific(exit_key, (void *)1);
}

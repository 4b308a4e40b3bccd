/* runner.c - runs each registered test in a child process (fork + exec of
 * this binary with --one NAME) with a timeout, a few at a time, and prints
 * "N passed, N failed". The model is libuv's test runner. */
#define _GNU_SOURCE
#include "runner.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The exit status of a child whose test body returned although the test
 * expects it to exit with a status or die by a signal: no test may expect
 * it. */
#define OX_TEST_BODY_RETURNED 125

static ox_test *tests_head, **tests_tail = &tests_head;
static size_t test_count;

void ox_test_register(ox_test *t)
{
    *tests_tail = t;
    tests_tail = &t->next;
    test_count++;
}

void ox_test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s:%d: failed: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(NULL);
    _exit(1);
}

static double env_double(const char *name, double fallback)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return fallback;
    char *end;
    double d = strtod(v, &end);
    if (*end != '\0' || d <= 0) {
        fprintf(stderr, "runner: %s=%s is not a positive number\n", name, v);
        exit(2);
    }
    return d;
}

long ox_test_scaled(long n)
{
    long s = (long)((double)n * env_double("OX_TEST_SCALE", 1.0));
    return s > 0 ? s : 1;
}

int64_t ox_test_bound(int64_t ns)
{
    double scaled = (double)ns * env_double("OX_TEST_TIMEOUT_SCALE", 1.0);
    return scaled >= (double)INT64_MAX ? INT64_MAX : (int64_t)scaled;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

ox_test_budget ox_test_budget_start_s(long min, long max, double seconds)
{
    if (min > max)
        min = max;
    double budget = seconds * env_double("OX_TEST_TIMEOUT_SCALE", 1.0);
    return (ox_test_budget){.deadline = now_s() + budget, .min = min, .max = max};
}

ox_test_budget ox_test_budget_start(long min, long max)
{
    return ox_test_budget_start_s(min, max, env_double("OX_TEST_BUDGET_S", 2.0));
}

bool ox_test_budget_spent(const ox_test_budget *b)
{
    return now_s() >= b->deadline;
}

bool ox_test_budget_more(const ox_test_budget *b, long done)
{
    if (done < b->min)
        return true;
    return done < b->max && !ox_test_budget_spent(b);
}

const char *ox_test_examples_dir(void)
{
    return OX_EXAMPLES_DIR;
}

/* A growing buffer filled from a pipe. */
typedef struct {
    int fd;
    char *data;
    size_t len, cap;
} capture;

static void capture_read(capture *c)
{
    for (;;) {
        if (c->cap - c->len < 4096) {
            c->cap = c->cap ? c->cap * 2 : 8192;
            c->data = realloc(c->data, c->cap);
            if (!c->data) {
                perror("runner: realloc");
                exit(2);
            }
        }
        ssize_t n = read(c->fd, c->data + c->len, c->cap - c->len - 1);
        if (n > 0) {
            c->len += (size_t)n;
            continue;
        }
        if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
            close(c->fd);
            c->fd = -1;
        }
        break;
    }
    c->data[c->len] = '\0';
}

static void make_pipe(int fds[2])
{
    if (pipe2(fds, O_CLOEXEC) != 0) {
        perror("runner: pipe");
        exit(2);
    }
}

bool ox_test_forks_hang_here(void)
{
    if (getenv("OX_TEST_WRAPPER") == NULL)
        return false;
    printf("skipped under an emulator (OX_TEST_WRAPPER): its forks of a threaded guest hang\n");
    return true;
}

/* Execs argv, through the command in OX_TEST_WRAPPER if set (words split on
 * spaces): a cross build's tests run under an emulator that way, e.g.
 * OX_TEST_WRAPPER="qemu-aarch64 -L /usr/aarch64-linux-gnu" where the kernel
 * has no binfmt_misc entry for the target. Runs in the forked child: no
 * malloc. */
static void exec_program(char *const argv[])
{
    const char *wrapper = getenv("OX_TEST_WRAPPER");
    if (wrapper == NULL || *wrapper == '\0') {
        execv(argv[0], argv);
        return;
    }
    char words[1024];
    char *args[64];
    int n = 0;
    snprintf(words, sizeof words, "%s", wrapper);
    for (char *w = strtok(words, " "); w != NULL && n < 32; w = strtok(NULL, " "))
        args[n++] = w;
    int program = n;
    for (int i = 0; argv[i] != NULL && n < 63; i++)
        args[n++] = argv[i];
    args[n] = NULL;
    /* Under the emulator, /proc/self/exe would name the emulator itself;
     * here (still the emulated process) it names the test binary. */
    char self[4096];
    ssize_t len;
    if (strcmp(argv[0], "/proc/self/exe") == 0 &&
        (len = readlink("/proc/self/exe", self, sizeof self - 1)) > 0) {
        self[len] = '\0';
        args[program] = self;
    }
    execvp(args[0], args);
}

/* Starts argv with stdout/stderr on pipes; in its own process group so a
 * timeout kills all of it. */
static pid_t start_child(char *const argv[], capture *out, capture *err)
{
    int o[2], e[2];
    make_pipe(o);
    make_pipe(e);
    pid_t pid = fork();
    if (pid < 0) {
        perror("runner: fork");
        exit(2);
    }
    if (pid == 0) {
        setpgid(0, 0);
        dup2(o[1], 1);
        dup2(e[1], 2);
        exec_program(argv);
        perror("runner: exec");
        _exit(127);
    }
    setpgid(pid, pid);
    close(o[1]);
    close(e[1]);
    *out = (capture){.fd = o[0]};
    *err = (capture){.fd = e[0]};
    fcntl(o[0], F_SETFL, O_NONBLOCK);
    fcntl(e[0], F_SETFL, O_NONBLOCK);
    capture_read(out); /* allocates the buffers even if nothing comes */
    capture_read(err);
    return pid;
}

typedef struct {
    ox_test *test;
    pid_t pid;
    capture out, err;
    double start, deadline;
    int status;
    bool exited, timed_out, stopped;
} job;

/* Reads what the job printed, reaps it if it ended, kills it if late.
 * Returns true once it is over and both pipes are drained. */
static bool job_poll(job *j)
{
    if (j->out.fd >= 0)
        capture_read(&j->out);
    if (j->err.fd >= 0)
        capture_read(&j->err);
    if (!j->exited) {
        pid_t r = waitpid(j->pid, &j->status, WNOHANG);
        if (r == j->pid) {
            j->exited = true;
            kill(-j->pid, SIGKILL); /* stragglers holding the pipes open */
        } else if (now_s() > j->deadline) {
            kill(-j->pid, SIGKILL);
            waitpid(j->pid, &j->status, 0);
            j->exited = true;
            j->timed_out = true;
        }
    }
    return j->exited && j->out.fd < 0 && j->err.fd < 0;
}

int ox_test_run_program(char *const argv[], double timeout_s, char **out, char **err)
{
    job j = {.deadline = now_s() + timeout_s * env_double("OX_TEST_TIMEOUT_SCALE", 1.0)};
    j.pid = start_child(argv, &j.out, &j.err);
    while (!job_poll(&j)) {
        struct pollfd p[2] = {{.fd = j.out.fd, .events = POLLIN},
                              {.fd = j.err.fd, .events = POLLIN}};
        poll(p, 2, 20);
    }
    *out = j.out.data;
    *err = j.err.data;
    return j.timed_out ? -1 : j.status;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void ox_test_check_example(const char *name, int expect_status, bool any_order,
                           const char *const expected[])
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", ox_test_examples_dir(), name);
    char *argv[] = {path, NULL};
    char *out, *err;
    int status = ox_test_run_program(argv, 60, &out, &err);
    if (status == -1)
        ox_test_fail(__FILE__, __LINE__, "example %s timed out", name);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != expect_status)
        ox_test_fail(__FILE__, __LINE__, "example %s: wait status %#x, expected exit %d\n%s", name,
                     (unsigned)status, expect_status, err);

    /* Split stdout into lines, in place. */
    size_t n_got = 0, n_want = 0;
    char *got[256];
    for (char *line = strtok(out, "\n"); line && n_got < 256; line = strtok(NULL, "\n"))
        got[n_got++] = line;
    const char *want[256];
    while (expected[n_want] && n_want < 256) {
        want[n_want] = expected[n_want];
        n_want++;
    }
    if (any_order) {
        qsort(got, n_got, sizeof got[0], compare_strings);
        qsort(want, n_want, sizeof want[0], compare_strings);
    }
    for (size_t i = 0; i < n_got || i < n_want; i++) {
        const char *g = i < n_got ? got[i] : "(nothing)";
        const char *w = i < n_want ? want[i] : "(nothing)";
        if (strcmp(g, w) != 0)
            ox_test_fail(__FILE__, __LINE__,
                         "example %s, %s line %zu:\n  got:      %s\n  expected: %s", name,
                         any_order ? "sorted" : "output", i + 1, g, w);
    }
    free(out);
    free(err);
}

/* Why a finished job failed, or NULL if it passed. */
static const char *verdict(const job *j, char *buf, size_t n)
{
    const ox_test *t = j->test;
    if (j->timed_out && j->stopped) {
        snprintf(buf, n, "stopped (-x) after another test failed");
        return buf;
    }
    if (j->timed_out) {
        snprintf(buf, n, "timed out after %.0f s (deadlock?)", j->deadline - j->start);
        return buf;
    }
    if (t->expect_signal) {
        if (!WIFSIGNALED(j->status) || WTERMSIG(j->status) != t->expect_signal) {
            snprintf(buf, n, "expected to die by signal %d (%s)", t->expect_signal,
                     strsignal(t->expect_signal));
            return buf;
        }
    } else if (WIFSIGNALED(j->status)) {
        snprintf(buf, n, "killed by signal %d (%s)", WTERMSIG(j->status),
                 strsignal(WTERMSIG(j->status)));
        return buf;
    } else if (WEXITSTATUS(j->status) == OX_TEST_BODY_RETURNED && t->expect_exit != 0) {
        snprintf(buf, n, "returned instead of exiting with status %d", t->expect_exit);
        return buf;
    } else if (WEXITSTATUS(j->status) != t->expect_exit) {
        snprintf(buf, n, "exit status %d, expected %d", WEXITSTATUS(j->status), t->expect_exit);
        return buf;
    }
    if (t->expect_stderr && !strstr(j->err.data, t->expect_stderr)) {
        snprintf(buf, n, "stderr lacks \"%s\"", t->expect_stderr);
        return buf;
    }
    return NULL;
}

static bool matches(const ox_test *t, int argc, char **argv, int first)
{
    if (first >= argc)
        return true;
    for (int i = first; i < argc; i++)
        if (strstr(t->name, argv[i]))
            return true;
    return false;
}

static int run_one(const char *name)
{
    for (ox_test *t = tests_head; t; t = t->next) {
        if (strcmp(t->name, name) == 0) {
            t->fn();
            fflush(NULL);
            if (t->expect_exit != 0 || t->expect_signal != 0) {
                /* The body should have ended the process itself: returning
                 * is a failure, whatever exit status was expected. */
                fprintf(stderr, "runner: %s returned, but should have %s %d\n", name,
                        t->expect_signal ? "died by signal" : "exited with status",
                        t->expect_signal ? t->expect_signal : t->expect_exit);
                return OX_TEST_BODY_RETURNED;
            }
            return 0;
        }
    }
    fprintf(stderr, "runner: no test named %s\n", name);
    return 2;
}

int main(int argc, char **argv)
{
    int jobs = 2, first = 1;
    bool verbose = getenv("OX_TEST_VERBOSE") != NULL, stop_at_failure = false;
    for (; first < argc && argv[first][0] == '-'; first++) {
        if (strcmp(argv[first], "--one") == 0 && first + 1 < argc)
            return run_one(argv[first + 1]);
        if (strcmp(argv[first], "--list") == 0) {
            for (ox_test *t = tests_head; t; t = t->next)
                printf("%s\n", t->name);
            return 0;
        }
        if (strcmp(argv[first], "-j") == 0 && first + 1 < argc)
            jobs = atoi(argv[++first]);
        else if (strcmp(argv[first], "-v") == 0)
            verbose = true;
        else if (strcmp(argv[first], "-x") == 0)
            stop_at_failure = true;
        else {
            fprintf(stderr, "usage: %s [-j N] [-v] [-x] [--list] [--one NAME] [SUBSTRING...]\n",
                    argv[0]);
            return 2;
        }
    }
    if (jobs < 1)
        jobs = 1;
    double scale = env_double("OX_TEST_TIMEOUT_SCALE", 1.0);
    const char *label = getenv("OX_TEST_LABEL") ? getenv("OX_TEST_LABEL") : "";

    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        perror("runner: /proc/self/exe");
        return 2;
    }
    self[n] = '\0';

    job *running = calloc((size_t)jobs, sizeof *running);
    ox_test *next = tests_head;
    int passed = 0, failed = 0, active = 0;
    while (next || active) {
        for (int i = 0; i < jobs && next; i++) {
            if (running[i].test)
                continue;
            while (next && !matches(next, argc, argv, first))
                next = next->next;
            if (!next)
                break;
            job *j = &running[i];
            *j = (job){.test = next, .start = now_s()};
            j->deadline = j->start + (next->timeout_s > 0 ? next->timeout_s : 30.0) * scale;
            char *child_argv[] = {self, "--one", (char *)next->name, NULL};
            j->pid = start_child(child_argv, &j->out, &j->err);
            active++;
            next = next->next;
        }
        struct pollfd fds[64];
        nfds_t nfds = 0;
        for (int i = 0; i < jobs && nfds < 62; i++) {
            if (!running[i].test)
                continue;
            if (running[i].out.fd >= 0)
                fds[nfds++] = (struct pollfd){.fd = running[i].out.fd, .events = POLLIN};
            if (running[i].err.fd >= 0)
                fds[nfds++] = (struct pollfd){.fd = running[i].err.fd, .events = POLLIN};
        }
        poll(fds, nfds, 10);
        for (int i = 0; i < jobs; i++) {
            job *j = &running[i];
            if (!j->test || !job_poll(j))
                continue;
            char why[256];
            const char *fail = verdict(j, why, sizeof why);
            double ms = (now_s() - j->start) * 1000;
            if (fail) {
                failed++;
                if (stop_at_failure) /* -x: start no more, and end those running */
                    next = NULL;
                printf("FAIL %s%s (%s:%.0f ms) %s\n", label, j->test->name, j->test->file, ms,
                       fail);
            } else {
                passed++;
                printf("ok   %s%s (%.0f ms)\n", label, j->test->name, ms);
            }
            if (fail || verbose) {
                if (j->out.len)
                    printf("---- stdout ----\n%s", j->out.data);
                if (j->err.len)
                    printf("---- stderr ----\n%s", j->err.data);
                if (j->out.len || j->err.len)
                    printf("----------------\n");
            }
            fflush(stdout);
            free(j->out.data);
            free(j->err.data);
            j->test = NULL;
            active--;
        }
        for (int i = 0; i < jobs && stop_at_failure && failed; i++)
            if (running[i].test && !running[i].stopped) {
                running[i].stopped = true;
                running[i].deadline = 0; /* job_poll kills it */
            }
    }
    free(running);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

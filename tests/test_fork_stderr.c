/* ox_test_fork_stderr, the helper that break12 and break41 judge aborts
 * by: it must keep the end of a long stderr, survive an interrupted read,
 * and keep a child that returns from running the suite on (helper-62's
 * reproducers). */
#define _GNU_SOURCE
#include "helpers.h"
#include "runner.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

/* Writes *(size_t *)arg bytes to stderr, the last 7 "MARKER\n". */
static void write_n_bytes(void *arg)
{
    size_t n = *(size_t *)arg;
    char *b = malloc(n);
    if (b == NULL)
        _exit(9);
    memset(b, 'x', n);
    memcpy(b + n - 7, "MARKER\n", 7);
    for (size_t off = 0; off < n;) {
        ssize_t w = write(STDERR_FILENO, b + off, n - off);
        if (w <= 0)
            _exit(9);
        off += (size_t)w;
    }
    _exit(0);
}

OX_TEST(fork_stderr_keeps_the_end_of_a_long_output)
{
    /* Before: a wrap started over at 0, so 4095 bytes left "" behind. */
    size_t sizes[] = {100, 4095, 4096, 4100, 8190, 8192, 100000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char err[4096];
        int status = ox_test_fork_stderr(write_n_bytes, &sizes[i], err, sizeof err);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        CHECK_CONTAINS(err, "MARKER\n");
    }
}

static void returns_without_exiting(void *arg)
{
    (void)arg;
}

OX_TEST(fork_stderr_child_that_returns_exits_4)
{
    char err[64];
    int status = ox_test_fork_stderr(returns_without_exiting, NULL, err, sizeof err);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 4);
}

static void on_alarm(int sig)
{
    (void)sig;
}

static void writes_twice_slowly(void *arg)
{
    (void)arg;
    fprintf(stderr, "first line\n");
    usleep(300000);
    fprintf(stderr, "second line\n");
    _exit(0);
}

OX_TEST(fork_stderr_reads_on_after_an_interrupted_read)
{
    /* No SA_RESTART: the parent's read returns EINTR mid-output. Before,
     * that ended the read and the child died of SIGPIPE. */
    struct sigaction sa = {.sa_handler = on_alarm}, old;
    CHECK_EQ(sigaction(SIGALRM, &sa, &old), 0);
    struct itimerval it = {.it_value = {.tv_usec = 100000}};
    CHECK_EQ(setitimer(ITIMER_REAL, &it, NULL), 0);
    char err[256];
    int status = ox_test_fork_stderr(writes_twice_slowly, NULL, err, sizeof err);
    CHECK_EQ(sigaction(SIGALRM, &old, NULL), 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_CONTAINS(err, "first line\nsecond line\n");
}

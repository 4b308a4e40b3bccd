/* test_runner.c - the runner itself: a test that expects an exit status or
 * a signal must fail when its body simply returns. */
#include "runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Exits 3 as declared, except when the outer test below runs it with
 * OX_TEST_RUNNER_SELFTEST set: then its body returns, which must fail it. */
OX_TEST_OPTS(runner_selftest_body_exits_3, .expect_exit = 3)
{
    if (getenv("OX_TEST_RUNNER_SELFTEST") == NULL)
        exit(3);
}

/* Likewise for a signal: SIGABRT unless run by the outer test. */
OX_TEST_OPTS(runner_selftest_body_aborts, .expect_signal = SIGABRT)
{
    if (getenv("OX_TEST_RUNNER_SELFTEST") == NULL)
        abort();
}

static void run_selftest(const char *name)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    CHECK(n > 0);
    self[n] = '\0';
    CHECK_EQ(setenv("OX_TEST_RUNNER_SELFTEST", "1", 1), 0);
    char *argv[] = {self, (char *)name, NULL};
    char *out, *err;
    int status = ox_test_run_program(argv, 20, &out, &err);
    unsetenv("OX_TEST_RUNNER_SELFTEST");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 1 || !strstr(out, "0 passed, 1 failed"))
        ox_test_fail(__FILE__, __LINE__, "runner on %s: status %#x, output:\n%s%s", name,
                     (unsigned)status, out, err);
    CHECK(strstr(out, "FAIL ") != NULL);
    free(out);
    free(err);
}

OX_TEST(runner_fails_an_exit_test_whose_body_returns)
{
    run_selftest("runner_selftest_body_exits_3");
}

OX_TEST(runner_fails_a_signal_test_whose_body_returns)
{
    run_selftest("runner_selftest_body_aborts");
}

/* The channel examples print what the guide's programs print. */
#include "runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static char *run_example(const char *name, int *status)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", ox_test_examples_dir(), name);
    char *argv[] = {path, NULL};
    char *out = NULL, *err = NULL;
    *status = ox_test_run_program(argv, 20, &out, &err);
    free(err);
    return out;
}

/* The position of line in out (a whole line), or -1. */
static long line_at(const char *out, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = out; (p = strstr(p, line)) != NULL; p++) {
        if ((p == out || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return p - out;
    }
    return -1;
}

OX_TEST(example_05_channel_output)
{
    int status;
    char *out = run_example("05_channel", &status);
    CHECK(out != NULL);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    const char *p1[] = {"Got: hi", "Got: from", "Got: the", "Got: thread 1"};
    const char *p2[] = {"Got: more", "Got: messages", "Got: for", "Got: you (thread 2)"};
    long last1 = -1, last2 = -1;
    for (int i = 0; i < 4; i++) {
        long a = line_at(out, p1[i]), b = line_at(out, p2[i]);
        CHECK(a > last1); /* present, and in each producer's order */
        CHECK(b > last2);
        last1 = a;
        last2 = b;
    }
    long closed = line_at(out, "Channel closed.");
    CHECK(closed > last1 && closed > last2);
    int lines = 0;
    for (const char *p = out; *p; p++)
        lines += *p == '\n';
    CHECK_EQ(lines, 9);
    free(out);
}

OX_TEST(example_12_shutdown_output)
{
    int status;
    char *out = run_example("12_shutdown", &status);
    CHECK(out != NULL);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_STR(out, "Phase 1: shutdown messages\n"
                   "sum of squares 1..10 = 385\n"
                   "workers stopped by a shutdown message: 3\n"
                   "Phase 2: closing the job channel\n"
                   "sum of squares 1..10 = 385\n"
                   "workers stopped because the job channel closed: 3\n"
                   "All workers stopped cleanly.\n");
    free(out);
}

OX_TEST(example_12_select_signals_output)
{
    int status;
    char *out = run_example("12_select_signals", &status);
    CHECK(out != NULL);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* The two feeds drain in either order; everything after is ordered by
     * the zero-size signals. */
    long evens = line_at(out, "collector: evens drained, case switched off");
    long odds = line_at(out, "collector: odds drained, case switched off");
    long sending = line_at(out, "main: feeds drained, sending the stop signal");
    long got = line_at(out, "collector: stop signal received");
    long sum = line_at(out, "collector: 20 numbers, sum 190");
    long stopped = line_at(out, "main: collector stopped");
    CHECK(evens >= 0 && odds >= 0);
    CHECK(sending > evens && sending > odds);
    CHECK(got > sending);
    CHECK(sum > got);
    CHECK(stopped > sum);
    int lines = 0;
    for (const char *p = out; *p; p++)
        lines += *p == '\n';
    CHECK_EQ(lines, 6);
    free(out);
}

/* The guide's §5 Arc program prints what the Rust program prints: the
 * threads' lines in any order, then the count and the data. */
#include "runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

OX_TEST(example_05_arc)
{
    /* The three thread lines may come in any order (as in Rust). */
    static const char *const lines[] = {
        "Thread 0 sees data item: 10", "Thread 1 sees data item: 20", "Thread 2 sees data item: 30",
        "Original data (ref count = 1): [10, 20, 30]", NULL};
    ox_test_check_example("05_arc", 0, true, lines);
}

OX_TEST(example_05_arc_count_line_comes_last)
{
    /* The count is printed after the joins: last, and with count 1. */
    char path[4096];
    snprintf(path, sizeof path, "%s/05_arc", ox_test_examples_dir());
    char *argv[] = {path, NULL};
    char *out = NULL, *err = NULL;
    int status = ox_test_run_program(argv, 10, &out, &err);
    CHECK(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    const char *last = "Original data (ref count = 1): [10, 20, 30]\n";
    size_t n = strlen(out), m = strlen(last);
    CHECK(n >= m && strcmp(out + n - m, last) == 0);
    free(out);
    free(err);
}

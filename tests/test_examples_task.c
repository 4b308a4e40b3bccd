/* The guide's section 11 programs, in tasks: threads against tasks, a
 * JoinSet fan-out with a deadline, and the shutdown of a task tree. */
#include "runner.h"

#include <stdio.h>

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static char *run_with(const char *name, const char *arg)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", ox_test_examples_dir(), name);
    char *argv[] = {path, (char *)arg, NULL};
    char *out = NULL, *err = NULL;
    int status = ox_test_run_program(argv, 120, &out, &err);
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        ox_test_fail(__FILE__, __LINE__, "%s: status %#x\n%s", name, (unsigned)status,
                     err ? err : "");
    free(err);
    return out;
}

OX_TEST(example_11_threads_vs_tasks)
{
    char *out = run_with("11_threads_vs_tasks", "--brief");
    CHECK_STR(out, "threads: 10000 of 10000 jobs done\n"
                   "tasks:   10000 of 10000 jobs done\n");
    free(out);
}

OX_TEST(example_11_join_set_deadline)
{
    char *out = run_with("11_join_set_deadline", NULL);
    /* The five that hang are always aborted; the five that answer within
     * 80 ms of a 500 ms deadline do so unless the machine stalls for the
     * difference, which would show as a different count, not a hang. */
    CHECK(strstr(out, "aborted at the deadline: ") != NULL);
    long answered = -1, sum = -1, aborted = -1;
    CHECK_EQ(sscanf(out, "answered in time: %ld (sum of answers %ld)\naborted at the deadline: %ld",
                    &answered, &sum, &aborted),
             3);
    CHECK_EQ(answered + aborted, 10);
    CHECK(aborted >= 5);
    if (answered == 5)
        CHECK_EQ(sum, 0 + 4 + 16 + 36 + 64);
    free(out);
}

OX_TEST(example_11_task_shutdown)
{
    static const char *const lines[] = {"supervisor: shutting down",
                                        "worker 0 stopped",
                                        "worker 1 stopped",
                                        "worker 2 stopped",
                                        "supervisor: all workers stopped",
                                        "jobs served: sum 1..100 = 5050",
                                        NULL};
    ox_test_check_example("11_task_shutdown", 0, true, lines);
}

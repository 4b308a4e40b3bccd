/* The guide's Mutex and RwLock programs (section 5), the Condvar example and
 * the section-12 deadlock demo print what they should. */
#include "runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

OX_TEST(example_05_mutex)
{
    static const char *const lines[] = {"Result: 10", NULL};
    ox_test_check_example("05_mutex", 0, false, lines);
}

/* The readers' order varies, and a reader that starts after the writer has
 * queued (a slow machine: the writer waits only 50 ms) reads 15, as the
 * Rust program would on a writer-preferring lock: each reader must appear
 * once, reading 5 or 15; the writer writes 15; the final read is 15, last. */
OX_TEST(example_05_rwlock)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/05_rwlock", ox_test_examples_dir());
    char *argv[] = {path, NULL};
    char *out, *err;
    int status = ox_test_run_program(argv, 60, &out, &err);
    CHECK(status != -1);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    int seen[5] = {0}, writer = 0, lines = 0;
    const char *last = "";
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        int i, v;
        char tail;
        lines++;
        last = line;
        if (sscanf(line, "Reader %d reads: %d%c", &i, &v, &tail) == 2) {
            CHECK(i >= 0 && i < 5);
            /* Each line is printed under the lock it reports on: a reader
             * before the writer saw 5, one after it 15. The writer's 50 ms
             * head start for the readers is not counted on (load). */
            CHECK_EQ(v, writer ? 15 : 5);
            seen[i]++;
        } else if (strcmp(line, "Writer modified data to: 15") == 0) {
            writer++;
        } else {
            CHECK_STR(line, "Final value: 15");
        }
    }
    for (int i = 0; i < 5; i++)
        CHECK_EQ(seen[i], 1);
    CHECK_EQ(writer, 1);
    CHECK_EQ(lines, 7);
    CHECK_STR(last, "Final value: 15");
    free(out);
    free(err);
}

OX_TEST(example_12_condvar)
{
    /* The workers' order varies. */
    static const char *const lines[] = {"The spawned thread has started", "Worker 0 got the signal",
                                        "Worker 1 got the signal",        "Worker 2 got the signal",
                                        "All 3 workers finished",         NULL};
    ox_test_check_example("12_condvar", 0, true, lines);
}

OX_TEST(example_12_deadlock)
{
    /* The two threads' lines interleave in any order. */
    static const char *const lines[] = {
        "Opposite orders:",
        "Thread 1 holds lock A, wants lock B",
        "Thread 2 holds lock B, wants lock A",
        "Thread 1: would have deadlocked (lock B still held by the other thread after 200 ms)",
        "Thread 2: would have deadlocked (lock A still held by the other thread after 200 ms)",
        "One global order (A before B):",
        "Thread 1 took lock A, then lock B",
        "Thread 2 took lock A, then lock B",
        "Both threads finished: total = 2",
        NULL};
    ox_test_check_example("12_deadlock", 0, true, lines);
}

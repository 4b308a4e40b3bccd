/* The guide's programs for sections 1, 2, 3, 4, 6, 7 and 8 print what the
 * guide's Rust programs print (section 4 has no Rust program: ours shows
 * the rules C keeps instead of Send and Sync, and the race ThreadSanitizer
 * reports when they are broken); and the script that runs them all. */
#include "runner.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

OX_TEST(example_01_spawn)
{
    /* "Output (order may vary)". */
    static const char *const lines[] = {"Hi number 1 from the main thread!",
                                        "Hi number 2 from the main thread!",
                                        "Hi number 3 from the main thread!",
                                        "Hi number 1 from the spawned thread!",
                                        "Hi number 2 from the spawned thread!",
                                        "Hi number 3 from the spawned thread!",
                                        "Hi number 4 from the spawned thread!",
                                        "Hi number 5 from the spawned thread!",
                                        "Spawned thread finished.",
                                        NULL};
    ox_test_check_example("01_spawn", 0, true, lines);
}

OX_TEST(example_01_join_result)
{
    static const char *const lines[] = {
        "Hello from spawned thread", "Caught panic from another thread: \"Something went wrong!\"",
        NULL};
    ox_test_check_example("01_join_result", 0, false, lines);
}

OX_TEST(example_02_move)
{
    static const char *const lines[] = {"Here's a vector: [1, 2, 3]", NULL};
    ox_test_check_example("02_move", 0, false, lines);
}

OX_TEST(example_03_named)
{
    static const char *const lines[] = {"Running in thread: Some(\"my_worker_thread\")",
                                        "Thread finished.", NULL};
    ox_test_check_example("03_named", 0, false, lines);
}

OX_TEST(example_04_send_sync)
{
    static const char *const lines[] = {
        "Send: each job moves to the worker, which frees it",
        "worker: job 1 \"resize images\" done, freed",
        "worker: job 2 \"send invoices\" done, freed",
        "worker: job 3 \"rotate logs\" done, freed",
        "worker: channel closed after 3 jobs",
        "Sync: 4 threads share one counter behind a mutex, each with its own Arc",
        "total = 800000 (expected 800000), Arc references left: 1",
        NULL};
    ox_test_check_example("04_send_sync", 0, false, lines);
}

/* --racy breaks the rule on purpose. Built with ThreadSanitizer (the tsan
 * suite, where the example is built as the tests are), the run must be
 * reported as a data race in add_racy and exit with TSan's status 66;
 * elsewhere it runs to the end and its count adds up, whatever it lost. */
OX_TEST(example_04_send_sync_racy)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/04_send_sync", ox_test_examples_dir());
    char *argv[] = {path, "--racy", NULL};
    char *out = NULL, *err = NULL;
    int status = ox_test_run_program(argv, 60, &out, &err);
    CHECK(status != -1 && WIFEXITED(status));
    CHECK(strncmp(out, "Racy: 4 threads add to a plain long with no lock", 48) == 0);
#ifdef OX_TEST_BUILT_WITH_TSAN
    CHECK_EQ(WEXITSTATUS(status), 66);
    CHECK(strstr(err, "WARNING: ThreadSanitizer: data race") != NULL);
    CHECK(strstr(err, "add_racy") != NULL);
#else
    CHECK_EQ(WEXITSTATUS(status), 0);
    const char *second = strchr(out, '\n');
    CHECK(second != NULL);
    long got = -1, expected = -1, lost = -1;
    CHECK_EQ(sscanf(second + 1, "racy total = %ld (expected %ld): %ld updates lost", &got,
                    &expected, &lost),
             3);
    CHECK_EQ(expected, 800000);
    CHECK(got > 0 && got <= expected);
    CHECK_EQ(got + lost, expected);
#endif
    free(out);
    free(err);
}

OX_TEST(example_06_panics)
{
    static const char *const lines[] = {
        "Caught panic from spawned thread: \"Oops!\"",
        "Thread completed successfully: Result from potentially panicking code",
        "Thread caught a panic internally!", NULL};
    ox_test_check_example("06_panics", 0, false, lines);
}

OX_TEST(example_07_thread_local)
{
    static const char *const lines[] = {"Main thread ID: 1", "Spawned thread ID: 2",
                                        "Spawned thread ID incremented: 7",
                                        "Main thread ID after spawned thread finished: 1", NULL};
    ox_test_check_example("07_thread_local", 0, false, lines);
}

OX_TEST(example_08_scoped)
{
    /* Threads 1 and 2 run concurrently; thread 3 after thread 2. */
    static const char *const lines[] = {
        "Thread 1: data = [1, 2, 3, 4]", "Thread 2: message = Hello",
        "Thread 3: modified message = Hello from scoped thread!",
        "After scope: data = [1, 2, 3, 4], message = \"Hello from scoped thread!\"", NULL};
    ox_test_check_example("08_scoped", 0, true, lines);
}

/* ---- examples/run-all.sh (make demo) fails when an example fails ----
 * (issue 10, section 7: its status was never updated). Run from the
 * source tree's root, as make check and tests/run-suites.sh do. */

static void write_program(const char *dir, const char *name, int status)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fprintf(f, "#!/bin/sh\necho '%s says hi'\nexit %d\n", name, status);
    CHECK_EQ(fclose(f), 0);
    CHECK_EQ(chmod(path, 0755), 0);
}

static int run_all(const char *dir, char **out)
{
    /* The script and its stand-in programs are the host's: not for the
     * emulator that runs a cross build's tests (the aarch64 suite). */
    unsetenv("OX_TEST_WRAPPER");
    char *argv[] = {"/bin/sh", "examples/run-all.sh", (char *)dir, NULL};
    char *err;
    int status = ox_test_run_program(argv, 30, out, &err);
    free(err);
    CHECK(status != -1 && WIFEXITED(status));
    return WEXITSTATUS(status);
}

OX_TEST(examples_run_all_fails_when_an_example_fails)
{
    CHECK_EQ(access("examples/run-all.sh", R_OK), 0);
    char dir[] = "/tmp/oxide-run-all-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    write_program(dir, "01_fine", 0);
    write_program(dir, "02_also_fine", 0);
    char *out;
    CHECK_EQ(run_all(dir, &out), 0);
    CHECK(strstr(out, "02_also_fine says hi") != NULL);
    free(out);

    write_program(dir, "03_broken", 3);
    write_program(dir, "04_after_it", 0);
    CHECK_EQ(run_all(dir, &out), 1);
    CHECK(strstr(out, "FAIL: 03_broken exited with status 3") != NULL);
    CHECK(strstr(out, "04_after_it says hi") != NULL); /* the rest still ran */
    free(out);

    const char *names[] = {"01_fine", "02_also_fine", "03_broken", "04_after_it"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        CHECK_EQ(unlink(path), 0);
    }
    CHECK_EQ(rmdir(dir), 0);
}

/* The guide's programs for sections 1, 2, 3, 6, 7 and 8 print what the
 * guide's Rust programs print. */
#include "runner.h"

#include <stddef.h>

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

/* helpers.h - test helpers that use oxide itself (runner.h stays free of
 * it): capturing this process's stderr, and spawning named threads. */
#ifndef OX_TEST_HELPERS_H
#define OX_TEST_HELPERS_H

#include "oxide.h"
#include "runner.h"

#include <string.h>

/* Sends this process's stderr to a temporary file; ox_test_stderr_text()
 * returns what was written since (malloc'd) and restores stderr, so that
 * the test's own failure messages reach the runner. */
void ox_test_capture_stderr(void);
char *ox_test_stderr_text(void);

#define CHECK_CONTAINS(text, needle)                                                               \
    do {                                                                                           \
        if (strstr((text), (needle)) == NULL)                                                      \
            ox_test_fail(__FILE__, __LINE__, "missing \"%s\" in:\n%s", (needle), (text));          \
    } while (0)

/* Spawns fn(arg) in a thread called name; joins one and checks it
 * returned normally. */
ox_join_handle ox_test_spawn_named(const char *name, void *(*fn)(void *), void *arg);
void ox_test_join(ox_join_handle *h);

#endif

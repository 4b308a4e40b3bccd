/* helpers.c - see helpers.h. */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static FILE *captured;
static int saved_stderr = -1;

void ox_test_capture_stderr(void)
{
    fflush(stderr);
    captured = tmpfile();
    CHECK(captured != NULL);
    saved_stderr = dup(STDERR_FILENO);
    CHECK(dup2(fileno(captured), STDERR_FILENO) == STDERR_FILENO);
}

char *ox_test_stderr_text(void)
{
    fflush(stderr);
    long n = ftell(captured);
    CHECK(n >= 0);
    char *text = calloc((size_t)n + 1, 1);
    CHECK(text != NULL);
    rewind(captured);
    CHECK(fread(text, 1, (size_t)n, captured) == (size_t)n);
    fseek(captured, 0, SEEK_END);
    dup2(saved_stderr, STDERR_FILENO);
    return text;
}

ox_join_handle ox_test_spawn_named(const char *name, void *(*fn)(void *), void *arg)
{
    ox_thread_builder b = OX_THREAD_BUILDER_INIT;
    ox_thread_builder_name(&b, name);
    ox_join_handle h;
    CHECK_EQ(ox_thread_builder_spawn(&b, fn, arg, &h), 0);
    return h;
}

void ox_test_join(ox_join_handle *h)
{
    CHECK_EQ(ox_thread_join(h, NULL, NULL), 0);
}

/* The chaos build's random streams across fork (src/check/chaos.c): tests
 * that fork a child per run (break41) need each child to draw afresh, in
 * its forking thread and in the threads it creates (helper-71: a child's
 * new threads drew the same in every child, and successive children's
 * forking threads drew shifted copies of one stream). Chaos builds only. */
#define _GNU_SOURCE
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#ifdef OX_CHAOS
#include "check/chaos.h"

#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

enum { CHILDREN = 6, DRAWS = 4 };

typedef struct child_draws {
    uint64_t forking[DRAWS]; /* the thread that forked */
    uint64_t created[DRAWS]; /* a thread the child creates */
} child_draws;

static void draw(uint64_t *out)
{
    for (int i = 0; i < DRAWS; i++)
        out[i] = ox__chaos_draw();
}

static void *created_thread(void *out)
{
    draw(out);
    return NULL;
}

static child_draws draws_of_a_child(void)
{
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        child_draws d;
        draw(d.forking);
        pthread_t t;
        if (pthread_create(&t, NULL, created_thread, d.created) != 0 ||
            pthread_join(t, NULL) != 0 || write(fds[1], &d, sizeof d) != (ssize_t)sizeof d)
            _exit(1);
        _exit(0);
    }
    close(fds[1]);
    child_draws d;
    CHECK_EQ(read(fds[0], &d, sizeof d), (ssize_t)sizeof d);
    close(fds[0]);
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return d;
}

OX_TEST(chaos_forked_children_draw_streams_of_their_own)
{
    (void)ox__chaos_draw(); /* the forking thread has a stream already */
    child_draws d[CHILDREN];
    for (int c = 0; c < CHILDREN; c++)
        d[c] = draws_of_a_child();
    for (int a = 0; a < CHILDREN; a++) {
        for (int b = a + 1; b < CHILDREN; b++) {
            CHECK(d[a].forking[0] != d[b].forking[0]);
            CHECK(d[a].created[0] != d[b].created[0]);
        }
        /* Not the previous child's stream one draw on. */
        if (a > 0)
            CHECK(d[a].forking[0] != d[a - 1].forking[1]);
    }
}
#else
typedef int ox__test_chaos_needs_the_chaos_build; /* ISO C: no empty unit */
#endif

/* What a panic prints: Rust 1.95's format byte for byte (an empty line,
 * "thread '<name>' (<tid>) panicked at file:line:col:", the message), the
 * one-time note, OX_BACKTRACE's two styles, the backtrace a panic inside a
 * panic forces, and the abort messages that follow a panic block. Each case
 * runs in a forked child whose stderr goes to a file. */
#include "helpers.h"
#include "oxide.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef OX__PANIC_HAVE_COLUMN
#define COLUMN ":5" /* ox_panic is indented by four spaces below */
#else
#define COLUMN ""
#endif

/* Runs fn in a child with OX_BACKTRACE set to backtrace (NULL: unset) and
 * its stderr in a file. Returns that stderr (malloc'd); *status is the
 * child's wait status. */
static char *run_child(void (*fn)(void), const char *backtrace, int *status)
{
    FILE *f = tmpfile();
    CHECK(f != NULL);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(fileno(f), STDERR_FILENO);
        if (backtrace)
            setenv("OX_BACKTRACE", backtrace, 1);
        else
            unsetenv("OX_BACKTRACE");
        fn();
        _exit(0);
    }
    CHECK_EQ(waitpid(pid, status, 0), pid);
    long n = ftell(f);
    CHECK(n >= 0);
    char *text = calloc((size_t)n + 1, 1);
    CHECK(text != NULL);
    rewind(f);
    CHECK_EQ(fread(text, 1, (size_t)n, f), n);
    fclose(f);
    /* Under qemu-user (the aarch64 suite) the emulator reports the abort
     * on the same stderr: not the program's output. */
    char *qemu = strstr(text, "qemu: uncaught target signal");
    if (qemu != NULL && (qemu == text || qemu[-1] == '\n'))
        *qemu = '\0';
    return text;
}

/* Replaces each "(<digits>) panicked" by "(TID) panicked", storing the
 * numbers in tids (up to max) and their count in *count. */
static void mask_tids(char *text, long *tids, int max, int *count)
{
    *count = 0;
    char *out = text;
    for (const char *in = text; *in;) {
        char *end;
        if (*in == '(' && in[1] >= '0' && in[1] <= '9') {
            long tid = strtol(in + 1, &end, 10);
            if (strncmp(end, ") panicked", 10) == 0) {
                if (*count < max)
                    tids[(*count)++] = tid;
                memcpy(out, "(TID", 4);
                out += 4;
                in = end;
                continue;
            }
        }
        *out++ = *in++;
    }
    *out = '\0';
}

#define CHECK_TEXT(text, expected)                                                                 \
    do {                                                                                           \
        if (strcmp((text), (expected)) != 0)                                                       \
            ox_test_fail(__FILE__, __LINE__, "stderr:\n[%s]\nexpected:\n[%s]", (text),             \
                         (expected));                                                              \
    } while (0)

static const int thread_panic_line = __LINE__ + 4;
static void *thread_panics(void *arg)
{
    const char *name = arg;
    ox_panic("boom in '%s'", name ? name : "<unnamed>");
}

static void spawn_and_join(const char *name)
{
    ox_thread_builder b = OX_THREAD_BUILDER_INIT;
    ox_thread_builder_name(&b, name);
    ox_join_handle h;
    CHECK_EQ(ox_thread_builder_spawn(&b, thread_panics, (void *)name, &h), 0);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), OX_EPANICKED);
}

static const int main_panic_line = __LINE__ + 6;
static void three_threads_then_main(void)
{
    spawn_and_join("worker");
    spawn_and_join(NULL);
    spawn_and_join("");
    ox_panic("main gives up after %d", 3);
}

OX_TEST(panic_output_is_rusts_format_with_one_note)
{
    int status;
    char *text = run_child(three_threads_then_main, NULL, &status);
    long tids[8];
    int n;
    mask_tids(text, tids, 8, &n);
    char expected[2048];
    snprintf(expected, sizeof expected,
             "\nthread 'worker' (TID) panicked at %s:%d" COLUMN ":\nboom in 'worker'\n"
             "note: run with `OX_BACKTRACE=1` environment variable to display a backtrace\n"
             "\nthread '<unnamed>' (TID) panicked at %s:%d" COLUMN ":\nboom in '<unnamed>'\n"
             "\nthread '' (TID) panicked at %s:%d" COLUMN ":\nboom in ''\n"
             "\nthread 'main' (TID) panicked at %s:%d" COLUMN ":\nmain gives up after 3\n",
             __FILE__, thread_panic_line, __FILE__, thread_panic_line, __FILE__, thread_panic_line,
             __FILE__, main_panic_line);
    CHECK_TEXT(text, expected);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 101);
    /* The OS ids: the main thread's is the process id; the others differ. */
    CHECK_EQ(n, 4);
    for (int i = 0; i < 3; i++)
        CHECK(tids[i] > 0 && tids[i] != tids[3]);
    free(text);
}

static void *returns_its_tid_in_payload(void *arg)
{
    (void)arg;
    ox_panic("where");
}

OX_TEST(panic_payload_has_column_and_os_tid)
{
    ox_panic_payload *p;
    CHECK_EQ(ox_catch_unwind(returns_its_tid_in_payload, NULL, NULL, &p), OX_EPANICKED);
    CHECK_EQ(p->os_tid, getpid()); /* the main thread */
    CHECK_EQ(p->column, strlen(COLUMN) ? 5 : 0);
    CHECK_STR(p->file, __FILE__);
    ox_panic_payload_free(p);
}

static void catch_twice_in_main(void)
{
    CHECK_EQ(ox_catch_unwind(thread_panics, "first", NULL, NULL), OX_EPANICKED);
    CHECK_EQ(ox_catch_unwind(thread_panics, "second", NULL, NULL), OX_EPANICKED);
}

OX_TEST(panic_backtrace_short_names_frames_from_the_panic_to_main)
{
    int status;
    char *text = run_child(catch_twice_in_main, "1", &status);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* Every panic gets its backtrace, the note on =full, and no other note. */
    const char *second = strstr(text, "boom in 'second'\nstack backtrace:\n   0: ox__panic_at\n");
    CHECK(second != NULL);
    CHECK(strstr(text, "boom in 'first'\nstack backtrace:\n   0: ox__panic_at\n") != NULL);
    CHECK(strstr(text, "note: run with `OX_BACKTRACE=1`") == NULL);
    /* Rust's short shape: "   N: function", "             at file:line". */
    const char *frame = strstr(second, "\n   1: thread_panics\n             at ");
    CHECK(frame != NULL);
    /* Its "at" line ends with this file and line; the path is as the
     * compiler recorded it, relative or absolute. */
    const char *at_line = strchr(frame + 1, '\n') + 1;
    const char *at_end = strchr(at_line, '\n');
    char file_line[128];
    snprintf(file_line, sizeof file_line, "%s:%d", __FILE__, thread_panic_line);
    size_t n = strlen(file_line);
    CHECK(at_end != NULL && (size_t)(at_end - at_line) > n &&
          strncmp(at_end - n, file_line, n) == 0);
    CHECK_CONTAINS(second, "\n   3: catch_twice_in_main\n");
    /* It stops at main, then the note. */
    const char *main_frame = strstr(second, ": main\n             at ");
    CHECK(main_frame != NULL);
    const char *note = "\nnote: Some details are omitted, run with `OX_BACKTRACE=full` for a "
                       "verbose backtrace.\n";
    CHECK(strstr(main_frame, note) != NULL && strcmp(strstr(main_frame, note), note) == 0);
    free(text);
}

/* "   N:" then the address right-aligned in 18 columns, then " - ". */
static bool full_frame_shape_ok(const char *line, int index)
{
    char head[8];
    snprintf(head, sizeof head, "%4d: ", index);
    if (strncmp(line, head, 6) != 0)
        return false;
    const char *field = line + 6, *x = strstr(field, "0x");
    if (x == NULL || x - field > 16)
        return false;
    for (const char *c = field; c < x; c++)
        if (*c != ' ')
            return false;
    for (const char *c = x + 2; c < field + 18; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
            return false;
    return strncmp(field + 18, " - ", 3) == 0;
}

static void thread_panics_once(void)
{
    ox_join_handle h = ox_thread_spawn(thread_panics, "spawned");
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), OX_EPANICKED);
}

OX_TEST(panic_backtrace_short_in_a_thread_ends_at_its_function)
{
    int status;
    char *text = run_child(thread_panics_once, "1", &status);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* ox__panic_at, then the thread's function, then the note: oxide's
     * entry and the C library's frames below it are trimmed. */
    const char *trace = strstr(text, "boom in 'spawned'\nstack backtrace:\n   0: ox__panic_at\n");
    CHECK(trace != NULL);
    const char *frame = strstr(trace, "\n   1: thread_panics\n             at ");
    CHECK(frame != NULL);
    const char *after = strchr(strchr(frame + 1, '\n') + 1, '\n') + 1;
    CHECK_TEXT(after, "note: Some details are omitted, run with `OX_BACKTRACE=full` for a "
                      "verbose backtrace.\n");
    free(text);
}

static void catch_once_in_main(void)
{
    CHECK_EQ(ox_catch_unwind(thread_panics, "full", NULL, NULL), OX_EPANICKED);
}

OX_TEST(panic_backtrace_full_prints_every_frame_with_its_address)
{
    int status;
    char *text = run_child(catch_once_in_main, "full", &status);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* Rust's full shape: "   N:     0xADDR - function" (the address
     * right-aligned in 18 columns), "at" indented by 31. Frame 0 is the
     * walker itself, as in Rust; the panic's frames follow. */
    const char *trace = strstr(text, "boom in 'full'\nstack backtrace:\n");
    CHECK(trace != NULL);
    trace = strchr(strchr(trace, '\n') + 1, '\n') + 1;
    CHECK(full_frame_shape_ok(trace, 0));
    CHECK_CONTAINS(text, " - ox__panic_at\n                               at ");
    CHECK_CONTAINS(text, " - thread_panics\n                               at ");
    CHECK_CONTAINS(text, " - main\n");
    CHECK(strstr(text, "note:") == NULL);
    free(text);
}

static const int cleanup_panic_line = __LINE__ + 4;
static void panicking_cleanup(void *arg)
{
    (void)arg;
    ox_panic("second panic, from a cleanup");
}

static void *panic_with_bad_cleanup(void *arg)
{
    (void)arg;
    ox_cleanup_push(panicking_cleanup, NULL);
    ox_panic("first");
}

static void double_panic(void)
{
    (void)!ox_catch_unwind(panic_with_bad_cleanup, NULL, NULL, NULL);
}

OX_TEST(panic_while_panicking_forces_a_full_backtrace_then_aborts)
{
    int status;
    char *text = run_child(double_panic, NULL, &status);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    long tids[4];
    int n;
    mask_tids(text, tids, 4, &n);
    char head[512];
    snprintf(head, sizeof head,
             "note: run with `OX_BACKTRACE=1` environment variable to display a backtrace\n"
             "\nthread 'main' (TID) panicked at %s:%d" COLUMN ":\n"
             "second panic, from a cleanup\nstack backtrace:\n",
             __FILE__, cleanup_panic_line);
    CHECK_CONTAINS(text, head);
    CHECK(full_frame_shape_ok(strstr(text, head) + strlen(head), 0));
    CHECK(strncmp(text, "\nthread 'main' (TID) panicked at ", 33) == 0);
    const char *tail = "oxide: panicked while processing a panic (in the panic hook or an "
                       "unwind cleanup); aborting\n";
    size_t len = strlen(text);
    CHECK(len > strlen(tail) && strcmp(text + len - strlen(tail), tail) == 0);
    free(text);
}

static const int tls_panic_line = __LINE__ + 4;
static void panicking_destructor(int *v)
{
    (void)v;
    ox_panic("thread-local destructor gives up");
}
OX_THREAD_LOCAL(fragile, int, NULL, panicking_destructor);

static void *touch_fragile(void *arg)
{
    (void)arg;
    *OX_TLS_GET(fragile) = 1;
    return NULL;
}

static void tls_destructor_panics(void)
{
    ox_join_handle h = ox_thread_spawn(touch_fragile, NULL);
    (void)!ox_thread_join(&h, NULL, NULL);
}

OX_TEST(panic_in_tls_destructor_prints_the_panic_then_its_abort)
{
    int status;
    char *text = run_child(tls_destructor_panics, NULL, &status);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    long tids[4];
    int n;
    mask_tids(text, tids, 4, &n);
    char expected[1024];
    snprintf(expected, sizeof expected,
             "\nthread '<unnamed>' (TID) panicked at %s:%d" COLUMN ":\n"
             "thread-local destructor gives up\n"
             "note: run with `OX_BACKTRACE=1` environment variable to display a backtrace\n"
             "oxide: the destructor of thread-local 'fragile' panicked; aborting\n",
             __FILE__, tls_panic_line);
    CHECK_TEXT(text, expected);
    free(text);
}

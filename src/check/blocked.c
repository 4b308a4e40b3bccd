/* blocked.c - the blocked-thread diagnosis (ox_dump_blocked_threads and
 * the opt-in signal handler): the threads in the registry of park.c, then
 * the tasks in the parking lot of park_lot.c.
 *
 * Lines are formatted with snprintf into a stack buffer, then written with
 * fputs (a call) or write(2) (the signal handler, where stdio's locks could
 * deadlock against the interrupted thread). snprintf of %s/%d/%p/%llu does
 * not allocate in glibc or musl. */
#include "oxide/check.h"

#include "../panic/unwind.h"
#include "../thread/park.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { LINE_MAX_BYTES = 512 };

typedef struct sink {
    FILE *file; /* or, when NULL: */
    int fd;
    bool header_done;
} sink;

static void emit_line(const sink *out, const char *line, int n)
{
    if (n < 0)
        return;
    size_t len = (size_t)n < LINE_MAX_BYTES ? (size_t)n : LINE_MAX_BYTES - 1;
    if (out->file != NULL) {
        fwrite(line, 1, len, out->file);
        return;
    }
    for (size_t done = 0; done < len;) {
        ssize_t w = write(out->fd, line + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        done += (size_t)w;
    }
}

/* Formats into a stack buffer, then writes it (no va_list: the signal
 * handler path stays as simple as it can be). */
#define EMIT(out, ...)                                                                             \
    do {                                                                                           \
        char line_[LINE_MAX_BYTES];                                                                \
        emit_line((out), line_, snprintf(line_, sizeof line_, __VA_ARGS__));                       \
    } while (0)

static void print_one(const ox__blocked_info *b, void *ctx)
{
    const sink *out = ctx;
    EMIT(out, "  %s '%s' (id %llu) blocked on %s %p", b->task ? "task" : "thread",
         b->name ? b->name : "<unnamed>", (unsigned long long)b->id, b->site->what, b->object);
    if (b->file != NULL)
        EMIT(out, ", called at %s:%d", b->file, b->line);
    if (b->detail[0] != '\0')
        EMIT(out, " (%s)", b->detail);
    EMIT(out, "\n");
    uint32_t shown = b->held_count < OX__BLOCKED_HELD_MAX ? b->held_count : OX__BLOCKED_HELD_MAX;
    for (uint32_t i = 0; i < shown; i++) {
        const ox__blocked_lock *h = &b->held[i];
        EMIT(out, "    holding %s %p, locked at %s:%d\n", h->kind, h->object,
             h->file ? h->file : "?", h->line);
    }
    if (shown < b->held_count)
        EMIT(out, "    ... and %u older locks\n", (unsigned)(b->held_count - shown));
}

static void print_header(sink *out)
{
    if (!out->header_done)
        EMIT(out, "oxide: threads blocked in oxide:\n");
    out->header_done = true;
}

static void print_blocked(const ox__blocked_info *b, void *ctx)
{
    print_header(ctx);
    print_one(b, ctx);
}

static int dump(sink *out)
{
    int busy = 0;
    int n = ox__park_visit_blocked(print_blocked, out, &busy);
    if (n < 0 && out->file != NULL)
        return n; /* a handler on a thread that may be inside stdio: write nothing */
    print_header(out);
    if (n < 0)
        EMIT(out, "  (skipped: this thread is inside the thread registry: a signal handler "
                  "interrupted its own dump, start or exit)\n");
    else if (n == 0 && busy == 0)
        EMIT(out, "  (none)\n");
    if (busy > 0)
        EMIT(out,
             "  (%d of the tasks' wait queues stayed busy: tasks waiting there are not "
             "shown)\n",
             busy);
    return n;
}

int ox_dump_blocked_threads(FILE *out)
{
    if (out == NULL)
        ox_abort("ox_dump_blocked_threads", "NULL stream");
    sink s = {.file = out};
    int n = dump(&s);
    if (n >= 0)
        fflush(out);
    return n;
}

int ox_dump_blocked_threads_fd(int fd)
{
    int saved = errno;
    sink s = {.fd = fd};
    int n = dump(&s);
    errno = saved;
    return n;
}

static void on_dump_signal(int signo)
{
    (void)signo;
    ox_dump_blocked_threads_fd(STDERR_FILENO);
}

int ox_dump_on_signal(int signo)
{
    static int installed; /* the signal we handle, 0: none (one at a time) */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (signo == 0) {
        if (installed == 0)
            return 0;
        sa.sa_handler = SIG_DFL;
        if (sigaction(installed, &sa, NULL) != 0)
            return errno;
        installed = 0;
        return 0;
    }
    sa.sa_handler = on_dump_signal;
    if (sigaction(signo, &sa, NULL) != 0)
        return errno;
    installed = signo;
    return 0;
}

/* blocked.c - the blocked-thread diagnosis (ox_dump_blocked_threads and
 * the opt-in signal handler); the registry it walks is in park.c.
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
    EMIT(out, "  thread '%s' (id %llu) blocked on %s %p", b->name ? b->name : "<unnamed>",
         (unsigned long long)b->id, b->site->what, b->object);
    if (b->file != NULL)
        EMIT(out, ", called at %s:%d", b->file, b->line);
    EMIT(out, "\n");
    const ox__unwind_state *s = b->held;
    uint32_t depth = s != NULL ? s->depth : 0;
    for (uint32_t i = depth; i-- > 0;) {
        const ox__unwind_entry *e = &s->entries[i];
        if (e->kind != OX__ENTRY_LOCK)
            continue;
        EMIT(out, "    holding %s %p, locked at %s:%d\n", e->u.lock_ops->kind, e->object,
             e->file ? e->file : "?", e->line);
    }
}

static int dump(const sink *out, bool try_only)
{
    EMIT(out, "oxide: threads blocked in oxide:\n");
    int n = ox__park_visit_blocked(try_only, print_one, (void *)out);
    if (n < 0)
        EMIT(out, "  (skipped: the thread registry is busy; send the signal again)\n");
    else if (n == 0)
        EMIT(out, "  (none)\n");
    return n;
}

int ox_dump_blocked_threads(FILE *out)
{
    if (out == NULL)
        ox_abort("ox_dump_blocked_threads", "NULL stream");
    sink s = {.file = out};
    int n = dump(&s, false);
    fflush(out);
    return n < 0 ? 0 : n;
}

static void on_dump_signal(int signo)
{
    (void)signo;
    int saved = errno;
    sink s = {.fd = STDERR_FILENO};
    dump(&s, true);
    errno = saved;
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

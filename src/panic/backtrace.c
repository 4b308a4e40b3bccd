/* backtrace.c - the backtrace a panic prints, in Rust's shape.
 *
 * The frames come from gcc's libbacktrace when the build found it (the
 * Makefile defines OX_HAVE_LIBBACKTRACE and puts its objects into liboxide):
 * it walks the stack with the unwinder of libgcc, names every function from
 * the ELF symbol table, static ones included, and reads file:line from the
 * DWARF line tables, so a frame prints as Rust prints it. Why this library
 * rather than glibc's backtrace() or libunwind: docs/panics.md. Without it,
 * glibc's backtrace() and dladdr() give addresses and exported names only.
 */
#define _GNU_SOURCE /* dladdr, in the fallback */
#include "backtrace.h"

#include "oxide/base.h"

#include "../sys/sys.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef OX_HAVE_LIBBACKTRACE
/* libbacktrace's header sits in gcc's private include directory, which
 * clang does not search: the three functions used here, as libgcc's
 * backtrace.h declares them. */
struct backtrace_state;
typedef void (*backtrace_error_callback)(void *data, const char *msg, int errnum);
typedef int (*backtrace_full_callback)(void *data, uintptr_t pc, const char *filename, int lineno,
                                       const char *function);
typedef void (*backtrace_syminfo_callback)(void *data, uintptr_t pc, const char *symname,
                                           uintptr_t symval, uintptr_t symsize);
struct backtrace_state *backtrace_create_state(const char *filename, int threaded,
                                               backtrace_error_callback error_callback, void *data);
int backtrace_full(struct backtrace_state *state, int skip, backtrace_full_callback callback,
                   backtrace_error_callback error_callback, void *data);
int backtrace_syminfo(struct backtrace_state *state, uintptr_t addr,
                      backtrace_syminfo_callback callback, backtrace_error_callback error_callback,
                      void *data);
#else
#include <dlfcn.h>
#include <execinfo.h>
#endif

#define MAX_FRAMES 128

struct frame {
    uintptr_t pc;
    const char *function; /* NULL: unknown */
    const char *file;     /* NULL: unknown */
    int line;
};

struct frames {
    struct frame f[MAX_FRAMES];
    unsigned n;
};

/* 0: not read yet; else the style + 1. Relaxed: every thread computes the
 * same value from the same environment; nothing else is published. */
static atomic_int style_cache;

enum ox__backtrace_style ox__backtrace_style(void)
{
    int cached = atomic_load_explicit(&style_cache, memory_order_relaxed);
    if (cached != 0)
        return (enum ox__backtrace_style)(cached - 1);
    /* As Rust reads RUST_BACKTRACE: unset or "0" is off, "full" is full,
     * anything else is short. */
    const char *v = getenv("OX_BACKTRACE");
    enum ox__backtrace_style style = v == NULL || strcmp(v, "0") == 0 ? OX__BACKTRACE_OFF
                                     : strcmp(v, "full") == 0         ? OX__BACKTRACE_FULL
                                                                      : OX__BACKTRACE_SHORT;
    atomic_store_explicit(&style_cache, (int)style + 1, memory_order_relaxed);
    return style;
}

#ifdef OX_HAVE_LIBBACKTRACE
static void ignore_error(void *data, const char *msg, int errnum)
{
    /* "no debug info" and the like: the frame keeps what was found. */
    (void)data;
    (void)msg;
    (void)errnum;
}

/* Created once per process (libbacktrace has no way to free one).
 * state_phase: 0 none, 1 being created, 2 done. The release store of 2
 * publishes state to the acquire loads of the threads that waited. */
static struct backtrace_state *state;
static atomic_int state_phase;

static struct backtrace_state *get_state(void)
{
    if (atomic_load_explicit(&state_phase, memory_order_acquire) == 2)
        return state;
    int expected = 0;
    if (atomic_compare_exchange_strong_explicit(&state_phase, &expected, 1, memory_order_relaxed,
                                                memory_order_relaxed)) {
        state = backtrace_create_state(NULL, 1, ignore_error, NULL);
        atomic_store_explicit(&state_phase, 2, memory_order_release);
        return state;
    }
    while (atomic_load_explicit(&state_phase, memory_order_acquire) != 2)
        ox__sys_yield();
    return state;
}

static void on_symbol(void *data, uintptr_t pc, const char *symname, uintptr_t symval,
                      uintptr_t symsize)
{
    (void)pc;
    (void)symval;
    (void)symsize;
    *(const char **)data = symname;
}

static int on_frame(void *data, uintptr_t pc, const char *file, int line, const char *function)
{
    struct frames *fs = data;
    if (pc == UINTPTR_MAX) /* the unwinder's end-of-stack marker */
        return 0;
    if (fs->n == MAX_FRAMES)
        return 1;
    if (function == NULL) /* no debug info: the ELF symbol table then */
        backtrace_syminfo(state, pc, on_symbol, ignore_error, &function);
    fs->f[fs->n++] = (struct frame){.pc = pc, .function = function, .file = file, .line = line};
    return 0;
}

static void collect(struct frames *fs)
{
    if (get_state() != NULL)
        backtrace_full(state, 0, on_frame, ignore_error, fs);
}
#else
static void collect(struct frames *fs)
{
    void *pcs[MAX_FRAMES];
    int n = backtrace(pcs, MAX_FRAMES);
    for (int i = 0; i < n; i++) {
        Dl_info info;
        const char *name = dladdr(pcs[i], &info) != 0 ? info.dli_sname : NULL;
        fs->f[fs->n++] = (struct frame){.pc = (uintptr_t)pcs[i], .function = name};
    }
}
#endif

static void appendf(char **buf, size_t *len, const char *fmt, ...) OX_PRINTF(3, 4);

static void appendf(char **buf, size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    /* clang-analyzer 14 misreads va_start here, as in panic.c. */
    int n = vsnprintf(NULL, 0, fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
    va_end(ap);
    if (n < 0)
        return;
    char *grown = realloc(*buf, *len + (size_t)n + 1);
    if (grown == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(grown + *len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    *buf = grown;
    *len += (size_t)n;
}

static bool named(const struct frame *f, const char *name)
{
    return f->function != NULL && strcmp(f->function, name) == 0;
}

static bool is_panic_entry(const struct frame *f)
{
    return named(f, "ox__panic_at") || named(f, "ox__panic_any_at") || named(f, "ox_panic_resume");
}

/* The short style's frames, as Rust trims its own: from the function that
 * raised the panic down to main, or, in a thread or task oxide started, to
 * its function (not oxide's entry, thread.c's thread_main or task.c's
 * task_entry, nor what lies below them). */
static void short_range(const struct frames *fs, unsigned *first, unsigned *end)
{
    *first = 0;
    *end = fs->n;
    for (unsigned i = 0; i < fs->n; i++) {
        if (is_panic_entry(&fs->f[i])) {
            *first = i;
            break;
        }
    }
    for (unsigned i = *first; i < fs->n; i++) {
        if (named(&fs->f[i], "main")) {
            *end = i + 1;
            return;
        }
        if (named(&fs->f[i], "thread_main") || named(&fs->f[i], "task_entry") ||
            named(&fs->f[i], "start_thread")) {
            *end = i;
            if (i > *first && named(&fs->f[i - 1], "ox_catch_unwind"))
                *end = i - 1;
            return;
        }
    }
}

void ox__backtrace_append(char **buf, size_t *len, enum ox__backtrace_style style)
{
    appendf(buf, len, "stack backtrace:\n");
    struct frames *fs = calloc(1, sizeof *fs);
    if (fs == NULL)
        return;
    collect(fs);
    unsigned first = 0, end = fs->n;
    if (style == OX__BACKTRACE_SHORT)
        short_range(fs, &first, &end);
    for (unsigned i = first; i < end; i++) {
        const struct frame *f = &fs->f[i];
        const char *function = f->function ? f->function : "<unknown>";
        if (style == OX__BACKTRACE_FULL) {
            /* Rust: the index right-aligned in 4, the address in 18. */
            char address[24];
            snprintf(address, sizeof address, "0x%" PRIxPTR, f->pc);
            appendf(buf, len, "%4u: %18s - %s\n", i - first, address, function);
        } else {
            appendf(buf, len, "%4u: %s\n", i - first, function);
        }
        if (f->file != NULL)
            appendf(buf, len, "%s             at %s:%d\n",
                    style == OX__BACKTRACE_FULL ? "                  " : "", f->file, f->line);
    }
    if (style == OX__BACKTRACE_SHORT)
        appendf(buf, len,
                "note: Some details are omitted, run with `OX_BACKTRACE=full` for a "
                "verbose backtrace.\n");
    free(fs);
}

/* panic.c - raising panics: the payload, the hook and what it prints, the
 * double-panic rule. */
#include "oxide/panic.h"

#include "backtrace.h"
#include "unwind.h"

#include "../sys/sys.h"
#include "../unit/unit.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* NULL means the default hook. Acquire/release: a hook installed by one
 * thread is seen whole (it is a function pointer; nothing else is
 * published) by a thread that panics later. */
static _Atomic(ox_panic_hook) panic_hook;

/* Set by the first panic message printed without a backtrace: the note on
 * OX_BACKTRACE follows that one only, as Rust's FIRST_PANIC. Relaxed: only
 * the exchange's atomicity matters. */
static atomic_bool note_printed;

ox_panic_hook ox_panic_set_hook(ox_panic_hook hook)
{
    ox_panic_hook old = atomic_exchange_explicit(&panic_hook, hook, memory_order_acq_rel);
    return old ? old : ox_panic_default_hook;
}

/* "\nthread '<name>' (<tid>) panicked at <file>:<line>:<col>:\n<message>\n",
 * malloc'd (NULL when out of memory), its length in *len. */
static char *format_panic(const ox_panic_payload *p, size_t *len)
{
    const char *name = p->thread_name ? p->thread_name : "<unnamed>";
    const char *message = p->message ? p->message : "Box<dyn Any>";
    char column[16] = "";
    if (p->column > 0)
        snprintf(column, sizeof column, ":%d", p->column);
    const char *fmt = "\nthread '%s' (%ld) panicked at %s:%d%s:\n%s\n";
    int n = snprintf(NULL, 0, fmt, name, p->os_tid, p->file, p->line, column, message);
    char *text = n < 0 ? NULL : malloc((size_t)n + 1);
    if (text == NULL)
        return NULL;
    snprintf(text, (size_t)n + 1, fmt, name, p->os_tid, p->file, p->line, column, message);
    *len = (size_t)n;
    return text;
}

/* Prints the panic, then the backtrace the style asks for or the one-time
 * note, in one write: stderr is unbuffered, so glibc writes the whole text
 * at once and concurrent panics do not interleave. */
static void print_panic(const ox_panic_payload *p, enum ox__backtrace_style style)
{
    size_t len = 0;
    char *text = format_panic(p, &len);
    if (text == NULL) {
        fputs("oxide: out of memory while printing a panic\n", stderr);
        return;
    }
    if (style != OX__BACKTRACE_OFF)
        ox__backtrace_append(&text, &len, style);
    fwrite(text, 1, len, stderr);
    free(text);
    if (style == OX__BACKTRACE_OFF &&
        !atomic_exchange_explicit(&note_printed, true, memory_order_relaxed))
        fputs("note: run with `OX_BACKTRACE=1` environment variable to display a backtrace\n",
              stderr);
}

void ox_panic_default_hook(const ox_panic_payload *p)
{
    print_panic(p, ox__backtrace_style());
}

void ox_panic_payload_free(ox_panic_payload *payload)
{
    if (payload == NULL)
        return;
    /* The payload's own memory first: a drop that panics leaks nothing. */
    void (*drop)(void *) = payload->drop;
    void *value = payload->value;
    free(payload->message);
    free(payload->thread_name);
    free(payload);
    if (drop != NULL)
        drop(value);
}

void *ox_panic_payload_downcast(const ox_panic_payload *payload, const char *type)
{
    if (payload == NULL || type == NULL || payload->type == NULL ||
        strcmp(payload->type, type) != 0)
        return NULL;
    return payload->value;
}

bool ox_thread_panicking(void)
{
    return ox__unwind_current()->panicking != 0;
}

static char *copy_string(const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (c != NULL)
        memcpy(c, s, n);
    return c;
}

static _Noreturn void out_of_memory(const char *file, int line)
{
    fprintf(stderr, "oxide: out of memory while panicking at %s:%d; aborting\n", file, line);
    abort();
}

/* A panic while a panic is being processed: printed with a full backtrace,
 * as Rust forces one for a panic inside a panic, then abort. */
static _Noreturn void abort_double_panic(const ox_panic_payload *second)
{
    print_panic(second, OX__BACKTRACE_FULL);
    fputs("oxide: panicked while processing a panic (in the panic hook or an unwind cleanup); "
          "aborting\n",
          stderr);
    abort();
}

/* Fills in where and in which thread, then either aborts (a panic inside a
 * panic) or runs the hook and unwinds. Takes p. */
static _Noreturn void raise_panic(ox_panic_payload *p, const char *file, int line, int column)
{
    p->file = file;
    p->line = line;
    p->column = column;
    p->thread_name = copy_string(ox__unit_thread_name());
    p->os_tid = ox__sys_thread_os_id();
    if (ox__unwind_current()->panicking)
        abort_double_panic(p);
    ox__unwind_begin_panic();
    ox_panic_hook hook = atomic_load_explicit(&panic_hook, memory_order_acquire);
    (hook ? hook : ox_panic_default_hook)(p);
    ox__unwind_and_land(p);
}

void ox__panic_at(const char *file, int line, int column, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    /* clang-analyzer 14 misreads va_start in a _Noreturn variadic function. */
    int n = vsnprintf(NULL, 0, fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
    va_end(ap);
    char *message = n < 0 ? NULL : malloc((size_t)n + 1);
    ox_panic_payload *p = calloc(1, sizeof *p);
    if (message == NULL || p == NULL)
        out_of_memory(file, line);
    va_list again;
    va_start(again, fmt);
    vsnprintf(message, (size_t)n + 1, fmt, again);
    va_end(again);
    p->message = message;
    raise_panic(p, file, line, column);
}

void ox__panic_any_at(const char *file, int line, int column, const char *type, void *value,
                      void (*drop)(void *))
{
    if (type == NULL)
        ox_abort("ox_panic_any", "NULL type tag");
    ox_panic_payload *p = calloc(1, sizeof *p);
    if (p == NULL)
        out_of_memory(file, line);
    p->type = type;
    p->value = value;
    p->drop = drop;
    raise_panic(p, file, line, column);
}

void ox_panic_resume(ox_panic_payload *payload)
{
    if (payload == NULL)
        ox_abort("ox_panic_resume", "NULL payload");
    if (ox__unwind_current()->panicking)
        abort_double_panic(payload);
    ox__unwind_begin_panic();
    ox__unwind_and_land(payload);
}

/* panic.c - raising panics: the payload, the hook, the double-panic rule. */
#include "oxide/panic.h"

#include "unwind.h"

#include "../thread/thread_internal.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* NULL means the default hook. Acquire/release: a hook installed by one
 * thread is seen whole (it is a function pointer; nothing else is
 * published) by a thread that panics later. */
static _Atomic(ox_panic_hook) panic_hook;

ox_panic_hook ox_panic_set_hook(ox_panic_hook hook)
{
    ox_panic_hook old = atomic_exchange_explicit(&panic_hook, hook, memory_order_acq_rel);
    return old ? old : ox_panic_default_hook;
}

void ox_panic_default_hook(const ox_panic_payload *p)
{
    /* One fprintf: stderr is unbuffered, and glibc then writes the whole
     * formatted text at once, so concurrent panics do not interleave. */
    fprintf(stderr, "thread '%s' panicked at %s:%d:\n%s\n",
            p->thread_name ? p->thread_name : "<unnamed>", p->file, p->line, p->message);
}

void ox_panic_payload_free(ox_panic_payload *payload)
{
    if (payload == NULL)
        return;
    free(payload->message);
    free(payload->thread_name);
    free(payload);
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

static _Noreturn void abort_double_panic(const char *file, int line, const char *message)
{
    fprintf(stderr,
            "thread '%s' panicked at %s:%d:\n%s\n"
            "oxide: panicked while processing a panic (in the panic hook or an unwind "
            "cleanup); aborting\n",
            ox__thread_current_name_or_unnamed(), file, line, message);
    abort();
}

void ox__panic_at(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    /* clang-analyzer 14 misreads va_start in a _Noreturn variadic function. */
    int n = vsnprintf(NULL, 0, fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
    va_end(ap);
    char *message = n < 0 ? NULL : malloc((size_t)n + 1);
    if (message != NULL) {
        va_list again;
        va_start(again, fmt);
        vsnprintf(message, (size_t)n + 1, fmt, again);
        va_end(again);
    }
    if (ox__unwind_current()->panicking) {
        abort_double_panic(file, line, message ? message : fmt);
    }
    ox__unwind_current()->panicking = 1;

    ox_panic_payload *p = malloc(sizeof *p);
    if (p == NULL || message == NULL) {
        fprintf(stderr, "oxide: out of memory while panicking at %s:%d; aborting\n", file, line);
        abort();
    }
    *p = (ox_panic_payload){.message = message,
                            .file = file,
                            .line = line,
                            .thread_name = copy_string(ox__thread_current_name())};

    ox_panic_hook hook = atomic_load_explicit(&panic_hook, memory_order_acquire);
    (hook ? hook : ox_panic_default_hook)(p);
    ox__unwind_and_land(p);
}

void ox_panic_resume(ox_panic_payload *payload)
{
    if (payload == NULL)
        ox_abort("ox_panic_resume", "NULL payload");
    if (ox__unwind_current()->panicking)
        abort_double_panic(payload->file, payload->line, payload->message);
    ox__unwind_current()->panicking = 1;
    ox__unwind_and_land(payload);
}

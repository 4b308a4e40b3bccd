/* linux_signal.c - catching a signal for ox_signal_* (src/io/signal.c): the
 * handler is ours, calls the one callback, then the handler that was there
 * before (if it was a function); the previous action is kept to be put
 * back when nobody listens any more. */
#define _GNU_SOURCE
#include "sys.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#define MAX_SIGNAL 64

/* previous[sig] is written while our handler is not installed for sig,
 * then published by the release store of saved[sig] before sigaction
 * installs it; the handler reads it after an acquire load of saved[sig]
 * (a handler runs in any thread: a plain read would be a data race). */
static struct sigaction previous[MAX_SIGNAL + 1];
static _Atomic uint32_t saved[MAX_SIGNAL + 1];
static void (*_Atomic callback)(int sig);

static void on_signal(int sig, siginfo_t *info, void *uctx)
{
    int saved_errno = errno; /* write(2) in the callback may change it */
    /* Acquire: pairs with the release store in ox__sys_signal_catch. */
    void (*fn)(int) = atomic_load_explicit(&callback, memory_order_acquire);
    if (fn != NULL)
        fn(sig);
    if (sig > 0 && sig <= MAX_SIGNAL && atomic_load_explicit(&saved[sig], memory_order_acquire)) {
        const struct sigaction *prev = &previous[sig];
        if (prev->sa_flags & SA_SIGINFO) {
            if (prev->sa_sigaction != NULL)
                prev->sa_sigaction(sig, info, uctx);
        } else if (prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN) {
            prev->sa_handler(sig);
        }
    }
    errno = saved_errno;
}

int ox__sys_signal_catch(int sig, void (*fn)(int sig))
{
    if (sig <= 0 || sig > MAX_SIGNAL)
        return EINVAL;
    struct sigaction old;
    if (sigaction(sig, NULL, &old) != 0)
        return errno;
    /* Relaxed: nobody reads saved[sig] as true while we rewrite previous
     * (our handler is not installed for sig now). */
    atomic_store_explicit(&saved[sig], 0, memory_order_relaxed);
    previous[sig] = old;
    /* Release: publishes previous[sig] and fn to the handler (above). */
    atomic_store_explicit(&saved[sig], 1, memory_order_release);
    atomic_store_explicit(&callback, fn, memory_order_release);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    /* SA_RESTART: the program's own blocking calls are not cut short with
     * EINTR because someone asked for a signal. SA_ONSTACK: a thread with
     * an alternate stack (a task worker) keeps its handler off a task's
     * small stack. */
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sa.sa_sigaction = on_signal;
    return sigaction(sig, &sa, NULL) == 0 ? 0 : errno;
}

bool ox__sys_signal_restore(int sig)
{
    if (sig <= 0 || sig > MAX_SIGNAL)
        return false;
    /* Acquire: pairs with our own release store (the same thread, or the
     * registry's lock, orders it; an acquire costs nothing here). */
    if (!atomic_load_explicit(&saved[sig], memory_order_acquire))
        return false;
    const struct sigaction *prev = &previous[sig];
    (void)sigaction(sig, prev, NULL);
    return !(prev->sa_flags & SA_SIGINFO) && prev->sa_handler == SIG_DFL;
}

void ox__sys_signal_raise(int sig)
{
    (void)kill(getpid(), sig);
}

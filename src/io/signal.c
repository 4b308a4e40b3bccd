/* signal.c - signals as channel messages and Notify wake-ups
 * (oxide/signal.h).
 *
 * A signal handler may do almost nothing, so ours (on_signal) counts the
 * signal in pending[sig] and sets an eventfd, both async-signal-safe. A
 * dispatcher thread, started with the first listener, waits on the eventfd
 * and turns each count into sends and notify_one calls, under the
 * registry's lock. Listeners live in a list under that lock; a channel
 * listener whose receivers are all gone is found out by its failed send
 * and removed there. A signal nobody listens to any more gets its previous
 * action back (src/sys/linux_signal.c keeps it).
 */
#include "oxide/signal.h"

#include "oxide/mutex.h"

#include "../sys/sys.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#define MAX_SIGNAL 64

typedef struct listener {
    struct listener *next;
    uint64_t mask;     /* bit sig - 1 for each signal it wants */
    ox_sender *tx;     /* a channel listener (notify NULL) */
    ox_notify *notify; /* a Notify listener (tx NULL) */
} listener;

static ox_mutex lock = OX_MUTEX_INIT;
static listener *listeners; /* under lock */
static uint64_t caught;     /* signals our handler is installed for; under lock */
static bool started;        /* the dispatcher runs; under lock */

/* Set once, before the dispatcher starts and before any handler is
 * installed. Release/acquire: a handler may run in any thread. */
static _Atomic int wake_fd = -1;
/* Deliveries the handler counted and the dispatcher has not taken. */
static _Atomic uint32_t pending[MAX_SIGNAL + 1];

static inline uint64_t bit_of(int sig)
{
    return (uint64_t)1 << (sig - 1);
}

/* In the signal handler: async-signal-safe work only. */
static void on_signal(int sig)
{
    if (sig <= 0 || sig > MAX_SIGNAL)
        return;
    /* Release: pairs with the dispatcher's acquire exchange; the count is
     * in place before the eventfd says to look (the dispatcher clears the
     * eventfd before it looks, so a count it misses comes with a set after
     * its clear). Lock-free, hence async-signal-safe. */
    atomic_fetch_add_explicit(&pending[sig], 1, memory_order_release);
    ox__sys_event_set(atomic_load_explicit(&wake_fd, memory_order_acquire));
}

static void lock_registry(void)
{
    /* Nothing panics under this lock: it cannot be poisoned. */
    if (ox_mutex_lock(&lock) != 0)
        ox_abort("ox_signal", "the signal registry's lock is poisoned");
}

static uint64_t wanted(void)
{
    uint64_t m = 0;
    for (const listener *l = listeners; l; l = l->next)
        m |= l->mask;
    return m;
}

/* Under lock: puts back the previous action of every signal caught that
 * nobody wants now. Returns those whose previous action is the default. */
static uint64_t release_unwanted(void)
{
    uint64_t gone = caught & ~wanted(), dfl = 0;
    for (int sig = 1; sig <= MAX_SIGNAL; sig++) {
        if (gone & bit_of(sig)) {
            if (ox__sys_signal_restore(sig))
                dfl |= bit_of(sig);
            caught &= ~bit_of(sig);
        }
    }
    return dfl;
}

/* Sends n deliveries of sig to every listener of it. */
static void deliver(int sig, uint32_t n)
{
    lock_registry();
    bool anyone = false;
    for (listener **p = &listeners; *p != NULL;) {
        listener *l = *p;
        if (!(l->mask & bit_of(sig))) {
            p = &l->next;
            continue;
        }
        if (l->notify != NULL) {
            ox_notify_one(l->notify); /* one permit however many came */
            anyone = true;
            p = &l->next;
            continue;
        }
        int rc = 0;
        for (uint32_t i = 0; i < n && rc == 0; i++)
            rc = ox_sender_send(l->tx, &sig); /* unbounded: never blocks */
        if (rc == 0) {
            anyone = true;
            p = &l->next;
        } else { /* every receiver is gone */
            *p = l->next;
            ox_sender_drop(l->tx);
            free(l);
        }
    }
    uint64_t dfl = release_unwanted();
    ox_mutex_unlock(&lock);
    /* Nobody heard it: now that the previous action is back, the signal
     * does what it would have done without us (the default: end the
     * process, say). After unlocking: that may stop the process. */
    if (!anyone && (dfl & bit_of(sig)))
        ox__sys_signal_raise(sig);
}

static void *dispatch(void *arg)
{
    (void)arg;
    ox__sys_thread_set_os_name("ox-signals");
    int fd = atomic_load_explicit(&wake_fd, memory_order_acquire);
    for (;;) {
        (void)ox__sys_fd_wait(fd, OX__SYS_READABLE, INT64_MAX);
        ox__sys_event_clear(fd); /* before looking: see on_signal */
        for (int sig = 1; sig <= MAX_SIGNAL; sig++) {
            /* Relaxed first look, then an acquire exchange that pairs with
             * the handler's release increment. */
            if (atomic_load_explicit(&pending[sig], memory_order_relaxed) == 0)
                continue;
            uint32_t n = atomic_exchange_explicit(&pending[sig], 0, memory_order_acquire);
            if (n != 0)
                deliver(sig, n);
        }
    }
    return NULL;
}

/* Under lock: starts the dispatcher once. Returns 0 or errno. */
static int start_dispatcher(void)
{
    if (started)
        return 0;
    int fd;
    int rc = ox__sys_event_open(&fd);
    if (rc != 0)
        return rc;
    /* Release: see wake_fd. */
    atomic_store_explicit(&wake_fd, fd, memory_order_release);
    ox__sys_thread t;
    rc = ox__sys_thread_start(&t, 0, false, dispatch, NULL);
    if (rc != 0) {
        atomic_store_explicit(&wake_fd, -1, memory_order_relaxed);
        ox__sys_event_close(fd);
        return rc;
    }
    ox__sys_thread_detach(t);
    started = true;
    return 0;
}

static bool allowed(int sig)
{
    return sig > 0 && sig <= MAX_SIGNAL && sig != SIGKILL && sig != SIGSTOP && sig != SIGSEGV &&
           sig != SIGBUS && sig != SIGFPE && sig != SIGILL;
}

/* Registers l (taken) and catches its signals. Returns 0 or errno (then l
 * is freed, and the signals this call caught are released again). */
static int add_listener(listener *l)
{
    lock_registry();
    int rc = start_dispatcher();
    if (rc == 0) {
        l->next = listeners;
        listeners = l;
        for (int sig = 1; sig <= MAX_SIGNAL && rc == 0; sig++) {
            if ((l->mask & bit_of(sig)) && !(caught & bit_of(sig))) {
                rc = ox__sys_signal_catch(sig, on_signal);
                if (rc == 0)
                    caught |= bit_of(sig);
            }
        }
        if (rc != 0) {
            listeners = l->next;
            (void)release_unwanted();
        }
    }
    ox_mutex_unlock(&lock);
    if (rc != 0)
        free(l);
    return rc;
}

int ox_signal_channel(const int *signals, size_t n, ox_receiver **out)
{
    if (signals == NULL || n == 0 || out == NULL)
        return OX_EINVAL;
    uint64_t mask = 0;
    for (size_t i = 0; i < n; i++) {
        if (!allowed(signals[i]))
            return OX_EINVAL;
        mask |= bit_of(signals[i]);
    }
    listener *l = malloc(sizeof *l);
    if (l == NULL)
        return ENOMEM;
    ox_sender *tx;
    ox_receiver *rx;
    int rc = ox_channel(sizeof(int), OX_UNBOUNDED, &tx, &rx);
    if (rc != 0) {
        free(l);
        return rc;
    }
    *l = (listener){.mask = mask, .tx = tx};
    rc = add_listener(l);
    if (rc != 0) {
        ox_sender_drop(tx);
        ox_receiver_drop(rx);
        return rc;
    }
    *out = rx;
    return 0;
}

int ox_signal_notify(int sig, ox_notify *notify)
{
    if (!allowed(sig) || notify == NULL)
        return OX_EINVAL;
    listener *l = malloc(sizeof *l);
    if (l == NULL)
        return ENOMEM;
    *l = (listener){.mask = bit_of(sig), .notify = notify};
    return add_listener(l);
}

int ox_signal_notify_remove(int sig, ox_notify *notify)
{
    if (!allowed(sig) || notify == NULL)
        return OX_EINVAL;
    lock_registry();
    int rc = OX_EINVAL;
    for (listener **p = &listeners; *p != NULL; p = &(*p)->next) {
        listener *l = *p;
        if (l->notify == notify && (l->mask & bit_of(sig))) {
            *p = l->next;
            free(l);
            (void)release_unwanted();
            rc = 0;
            break;
        }
    }
    ox_mutex_unlock(&lock);
    return rc;
}

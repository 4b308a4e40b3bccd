/* reactor.c - readiness of file descriptors for tasks, polled by the
 * workers themselves, in the shape of Go's netpoller: no reactor thread.
 *
 * A descriptor is watched edge-triggered for both directions once (the
 * first time a task waits for it). Each event bumps the descriptor's word
 * for that direction and wakes the tasks parked on it (if any: see
 * dispatch_one), through the same parking lot every other wait uses. A task therefore loads the
 * word, tries its system call, and only on EAGAIN parks on the word "while it still holds what I
 * loaded": an event between the try and the park has moved the word, and the park returns at once.
 * No wake-up is lost and no state is kept per wait.
 *
 * Who polls: an idle worker sleeps in the poller instead of on its futex,
 * with the earliest timer as the poll's deadline, so timers and readiness
 * share the one wait (runtime.c's sleep_until_work). At most one worker
 * polls at a time (io_claimed); a busy worker takes a quick look (no
 * wait) when its own queues run dry and every 61 scheduler ticks, as Go's
 * findrunnable and Tokio's event_interval do, so a runtime whose workers
 * never idle still sees its descriptors. An idle worker that finds the
 * poller taken sleeps on its futex and sets io_wanted; the poller, leaving
 * to run a task, wakes one such worker to take its place. One that found
 * no poller at all (none is opened before the first watch) is woken when
 * the poller opens (open_reactor).
 *
 * Waking the sleeping poller (new tasks, an earlier timer, shutdown): the
 * waker sets the worker's sleep_word and then reads its polling flag; the
 * poller sets polling and then reads sleep_word before it waits. Both
 * pairs are seq_cst (each store an exchange: dekker.h), so at least one
 * side sees the other: either the poller does not wait, or the waker
 * writes the eventfd. */
#include "task_internal.h"

#include "../common/dekker.h"
#include "../sys/sys.h"

#include <limits.h>

#define EVENTS_MAX 64

static int poller_of(ox_runtime *rt)
{
    /* Acquire: pairs with the release store in open_reactor, so the waker
     * descriptor stored before it is visible too. */
    return atomic_load_explicit(&rt->io_poller, memory_order_acquire);
}

static int open_reactor(ox_runtime *rt)
{
    int rc = 0;
    bool opened = false;
    ox__spin_lock(&rt->io_open_lock);
    /* Relaxed: written only under io_open_lock, which we hold. */
    if (atomic_load_explicit(&rt->io_poller, memory_order_relaxed) < 0) {
        int poller, waker;
        rc = ox__sys_poller_open(&poller, &waker);
        if (rc == 0) {
            rt->io_waker = waker;
            atomic_store_explicit(&rt->io_poller, poller, memory_order_release);
            opened = true;
        }
    }
    ox__spin_unlock(&rt->io_open_lock);
    /* The idle workers went to their futexes with no poller to take, and
     * without asking for it (io_wanted): wake one to take it now, or a task
     * that never parks on our worker leaves nobody polling. The wake's
     * seq_cst store of sleep_word, after our release store of io_poller,
     * is what the woken worker acquires before it looks again. */
    if (opened)
        ox__runtime_wake_idle(rt);
    return rc;
}

/* rt's poller, opened by the first watch. */
static int opened_poller(ox_runtime *rt, int *poller)
{
    if (poller_of(rt) < 0) {
        int rc = open_reactor(rt);
        if (rc != 0)
            return rc;
    }
    *poller = poller_of(rt);
    return 0;
}

int ox__reactor_watch(ox_runtime *rt, int fd, ox__io_words *words)
{
    int poller, rc = opened_poller(rt, &poller);
    return rc != 0 ? rc : ox__sys_poller_add(poller, fd, words);
}

int ox__reactor_watch_once(ox_runtime *rt, int fd, unsigned events, ox__io_words *words)
{
    int poller, rc = opened_poller(rt, &poller);
    return rc != 0 ? rc : ox__sys_poller_add_once(poller, fd, events, words);
}

void ox__reactor_unwatch(ox_runtime *rt, int fd)
{
    int poller = poller_of(rt);
    if (poller >= 0)
        ox__sys_poller_del(poller, fd);
}

ox_runtime *ox__runtime_current(void)
{
    ox_task *t = ox_task_current();
    return t != NULL ? t->rt : NULL;
}

/* A task loads a word and parks on it only between ox__io_words_enter
 * and _leave. Enter raises waiters[dir] and then fences; dispatch bumps
 * the words, fences, and then reads waiters. Both fences are seq_cst, so
 * either dispatch sees the task entered (and wakes the lot), or the task's
 * load of the word, after its fence, sees the bump (and it does not park
 * on the old value). */
static void dispatch_one(ox__io_words *words, unsigned ready)
{
    static const unsigned ready_for[2] = {
        [OX__IO_READ] = OX__SYS_READABLE, [OX__IO_WRITE] = OX__SYS_WRITABLE};
    /* Relaxed: a task reads it after an acquire load of seq[READ] that
     * sees the bump below (ox__io_run). */
    if (ready & OX__SYS_READ_END)
        atomic_store_explicit(&words->read_end, true, memory_order_relaxed);
    /* Release: the read_end store above comes with the read bump. The
     * wake is ordered by the fence below. */
    for (int dir = OX__IO_READ; dir <= OX__IO_WRITE; dir++)
        if (ready & ready_for[dir])
            atomic_fetch_add_explicit(&words->seq[dir], 1, memory_order_release);
    atomic_thread_fence(memory_order_seq_cst);
    for (int dir = OX__IO_READ; dir <= OX__IO_WRITE; dir++)
        if ((ready & ready_for[dir]) &&
            atomic_load_explicit(&words->waiters[dir], memory_order_relaxed) != 0)
            ox__park_lot_wake(&words->seq[dir], INT_MAX);
    /* Either direction: bumped only for a waiter (the lot orders this bump
     * against its park, as for any word). */
    if (atomic_load_explicit(&words->waiters[OX__IO_ANY], memory_order_relaxed) != 0) {
        atomic_fetch_add_explicit(&words->seq[OX__IO_ANY], 1, memory_order_relaxed);
        ox__park_lot_wake(&words->seq[OX__IO_ANY], INT_MAX);
    }
}

static void dispatch(const ox__sys_event *events, int n)
{
    for (int i = 0; i < n; i++)
        dispatch_one(events[i].key, events[i].ready);
}

/* Takes the poller as how (LOOKING or SLEEPING), if it is free. */
static bool claim(ox_runtime *rt, uint32_t how)
{
    /* Relaxed first look, so that busy workers do not bounce the line;
     * then acquire: pairs with the release when the last poller let go. */
    uint32_t free_ = OX__POLL_FREE;
    return atomic_load_explicit(&rt->io_claimed, memory_order_relaxed) == OX__POLL_FREE &&
           atomic_compare_exchange_strong_explicit(&rt->io_claimed, &free_, how,
                                                   memory_order_acquire, memory_order_relaxed);
}

static void unclaim(ox_runtime *rt)
{
    atomic_store_explicit(&rt->io_claimed, OX__POLL_FREE, memory_order_release);
}

bool ox__reactor_poll_now(ox__worker *w)
{
    ox_runtime *rt = w->rt;
    int poller = poller_of(rt);
    if (poller < 0 || !claim(rt, OX__POLL_LOOKING))
        return false;
    ox__sys_event events[EVENTS_MAX];
    int n = ox__sys_poller_wait(poller, rt->io_waker, events, EVENTS_MAX, 0);
    unclaim(rt);
    dispatch(events, n);
    return n > 0;
}

bool ox__reactor_sleep(ox__worker *w, int64_t deadline, void (*idle_leave)(ox__worker *))
{
    ox_runtime *rt = w->rt;
    int poller = poller_of(rt);
    if (poller < 0)
        return false;
    /* A busy worker's quick look holds the poller for one system call:
     * wait it out rather than sleep on the futex with nobody polling
     * (that worker may then run a long task). Relaxed: claim() orders. */
    while (!claim(rt, OX__POLL_SLEEPING)) {
        /* Another idle worker polls: we sleep on the futex. It may leave
         * to run a task that never parks (one its own poll woke: that
         * wakes nobody), so it must wake one of us then, to take over the
         * poller. Seq_cst, both: a Dekker pair with the poller's release
         * of the claim and its exchange of io_wanted (below). */
        OX__DEKKER_STORE(&rt->io_wanted, true);
        if (atomic_load_explicit(&rt->io_claimed, memory_order_seq_cst) == OX__POLL_SLEEPING)
            return false;
        ox__sys_yield();
    }
    ox__sys_event events[EVENTS_MAX];
    int n = 0;
    /* Seq_cst, both: see the top of the file. */
    OX__DEKKER_STORE(&w->polling, true);
    if (atomic_load_explicit(&w->sleep_word, memory_order_seq_cst) == 0)
        n = ox__sys_poller_wait(poller, rt->io_waker, events, EVENTS_MAX, deadline);
    /* Seq_cst: once a waker sees false it wakes the futex instead, so this
     * store and a later futex wait's check of sleep_word are the worker's
     * half of the same pair. */
    OX__DEKKER_STORE(&w->polling, false);
    /* Seq_cst: our half of the io_wanted pair (see the claim loop). */
    OX__DEKKER_STORE(&rt->io_claimed, OX__POLL_FREE);
    /* Off the idle list before waking tasks, so that their wake-ups go to
     * the other idle workers, not to this one. */
    idle_leave(w);
    /* A worker that went to its futex because we polled takes over: we
     * may now run a task that never parks. Unless we were woken to search:
     * then we poll again if we find nothing, or, finding work, wake an
     * idle worker (runtime.c's found_work, also for work found only on the
     * last look before sleeping: runtime.c's leave_idle_list), and this wake
     * would be lost on our own search (ox__runtime_wake_idle wakes nobody
     * while one does). */
    if (!w->searching && atomic_exchange_explicit(&rt->io_wanted, false, memory_order_seq_cst))
        ox__runtime_wake_idle(rt);
    dispatch(events, n);
    return true;
}

bool ox__reactor_wake_worker(ox__worker *w)
{
    /* Seq_cst: see the top of the file (the caller stored sleep_word). */
    if (!atomic_load_explicit(&w->polling, memory_order_seq_cst))
        return false;
    ox__sys_event_set(w->rt->io_waker);
    return true;
}

void ox__reactor_close(ox_runtime *rt)
{
    int poller = poller_of(rt);
    if (poller >= 0)
        ox__sys_poller_close(poller, rt->io_waker);
}

/* timer.c - deadlines of tasks' timed waits: a binary min-heap per
 * runtime under a spin lock. Workers fire due timers when they look for
 * work and sleep no later than the earliest deadline (runtime.c).
 *
 * Firing runs ox__park_lot_expire with the heap lock held, and disarm
 * takes the same lock: once disarm returns, no expiry of that wait is
 * running, which is what the lot needs before it reuses the record. */
#include "task_internal.h"

#include <stdlib.h>

static bool earlier(const ox_task *a, const ox_task *b)
{
    return a->timer_deadline < b->timer_deadline;
}

static void place(ox_runtime *rt, size_t i, ox_task *t)
{
    rt->timers[i] = t;
    t->timer_slot = i + 1;
}

static void sift_up(ox_runtime *rt, size_t i)
{
    ox_task *t = rt->timers[i];
    while (i > 0 && earlier(t, rt->timers[(i - 1) / 2])) {
        place(rt, i, rt->timers[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    place(rt, i, t);
}

static void sift_down(ox_runtime *rt, size_t i)
{
    ox_task *t = rt->timers[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= rt->ntimers)
            break;
        if (child + 1 < rt->ntimers && earlier(rt->timers[child + 1], rt->timers[child]))
            child++;
        if (!earlier(rt->timers[child], t))
            break;
        place(rt, i, rt->timers[child]);
        i = child;
    }
    place(rt, i, t);
}

static void remove_at(ox_runtime *rt, size_t i)
{
    ox_task *t = rt->timers[i];
    t->timer_slot = 0;
    ox_task *last = rt->timers[--rt->ntimers];
    if (i == rt->ntimers)
        return;
    place(rt, i, last);
    /* last goes down if it is later than a child, else up if it is earlier
     * than its parent (sift_up does nothing once sift_down moved it). */
    sift_down(rt, i);
    sift_up(rt, i);
}

static void publish_next(ox_runtime *rt)
{
    /* Relaxed: a hint for workers deciding how long to sleep; arming an
     * earlier timer also wakes one (ox__timer_arm). */
    atomic_store_explicit(&rt->next_deadline,
                          rt->ntimers ? rt->timers[0]->timer_deadline : INT64_MAX,
                          memory_order_relaxed);
}

void ox__timer_arm(ox__lot_waiter *w, ox_instant deadline)
{
    ox_task *t = ox__task_of(w);
    ox_runtime *rt = t->rt;
    ox__spin_lock(&rt->timer_lock);
    if (rt->ntimers == rt->timers_cap) {
        size_t cap = rt->timers_cap ? rt->timers_cap * 2 : 64;
        ox_task **grown = realloc(rt->timers, cap * sizeof(ox_task *));
        if (grown == NULL)
            ox_abort("ox_task", "out of memory for %zu timers", cap);
        rt->timers = grown;
        rt->timers_cap = cap;
    }
    t->timer_deadline = deadline.ns;
    place(rt, rt->ntimers++, t);
    sift_up(rt, rt->ntimers - 1);
    bool earliest = rt->timers[0] == t;
    publish_next(rt);
    ox__spin_unlock(&rt->timer_lock);
    if (earliest)
        ox__runtime_wake_idle(rt); /* a sleeping worker may sleep too long */
}

void ox__timer_disarm(ox__lot_waiter *w)
{
    ox_task *t = ox__task_of(w);
    ox_runtime *rt = t->rt;
    ox__spin_lock(&rt->timer_lock);
    if (t->timer_slot != 0) {
        remove_at(rt, t->timer_slot - 1);
        publish_next(rt);
    }
    ox__spin_unlock(&rt->timer_lock);
}

int64_t ox__timers_fire(ox__worker *w)
{
    ox_runtime *rt = w->rt;
    /* Relaxed: a hint; the heap itself is read under the lock. */
    int64_t next = atomic_load_explicit(&rt->next_deadline, memory_order_relaxed);
    if (next == INT64_MAX)
        return next;
    int64_t now = ox_instant_now().ns;
    if (next > now)
        return next;
    /* A woken task goes to w's LIFO slot, the one there to w's queue. Not
     * past the queue's room: an overflow goes to the injector, behind
     * every task queued there (a burst of spawns), and would wait for all
     * of them to start. Those left here stay due and are fired at the
     * next call, at most OX__GLOBAL_EVERY runs away (runtime.c). But one
     * at least: a queue that is full at each of those calls (each task
     * run spawns one more) would hold them back for ever. */
    size_t room = ox__queue_room(w);
    if (room == 0)
        room = 1;
    ox__spin_lock(&rt->timer_lock);
    for (; room > 0 && rt->ntimers > 0 && rt->timers[0]->timer_deadline <= now; room--) {
        ox_task *t = rt->timers[0];
        remove_at(rt, 0);
        ox__park_lot_expire(&t->waiter, OX_ETIMEDOUT);
    }
    publish_next(rt);
    next = rt->ntimers ? rt->timers[0]->timer_deadline : INT64_MAX;
    ox__spin_unlock(&rt->timer_lock);
    return next;
}

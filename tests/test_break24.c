/* Reproducers from trying to break cdab167 (one ox__queue_steal, with a
 * cap, for the batch steal and for the every-61st look's single task). */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"
#include "task/task_internal.h" /* white box: the local queue and its steal */

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- the every-61st look takes one task, and nothing else moves ----
 * White box, on two made-up workers that no runtime runs: the queue
 * functions read only the queue (and rt, for an overflow, which none of
 * these pushes makes). The tasks are stand-in pointers, never read. With
 * most 1 the thief's own queue may be full: the steal must take just the
 * victim's head and push nothing. A steal that claimed the half and
 * returned one (the cap applied after the claim) would lose the rest; one
 * that pushed the rest to a full queue would overflow it. */
enum { FAKE_TASKS = 2 * OX__LOCAL_QUEUE };
static char fake[FAKE_TASKS];

static ox_task *fake_task(int i)
{
    return (ox_task *)(void *)&fake[i];
}

static ox__worker *fake_worker(void)
{
    size_t size = (sizeof(ox__worker) + OX__CACHE_LINE - 1) / OX__CACHE_LINE * OX__CACHE_LINE;
    ox__worker *w = aligned_alloc(OX__CACHE_LINE, size);
    CHECK(w != NULL);
    memset(w, 0, size);
    return w;
}

static uint32_t queued(const ox__worker *w)
{
    return atomic_load(&w->queue.tail) - atomic_load(&w->queue.head);
}

OX_TEST(break24_the_single_task_steal_takes_the_victim_s_head_and_only_it)
{
    ox__worker *thief = fake_worker(), *victim = fake_worker();
    for (int i = 0; i < OX__LOCAL_QUEUE; i++)
        ox__queue_push(thief, fake_task(i)); /* full: no room for a stray push */
    enum { V = 10 };
    for (int i = 0; i < V; i++)
        ox__queue_push(victim, fake_task(OX__LOCAL_QUEUE + i));
    for (int i = 0; i < V; i++) {
        CHECK(ox__queue_steal(thief, victim, 1) == fake_task(OX__LOCAL_QUEUE + i));
        CHECK_EQ(queued(victim), (uint32_t)(V - 1 - i));
        CHECK_EQ(queued(thief), (uint32_t)OX__LOCAL_QUEUE);
    }
    CHECK(ox__queue_steal(thief, victim, 1) == NULL);
    for (int i = 0; i < OX__LOCAL_QUEUE; i++) /* the thief's own, untouched, in order */
        CHECK(ox__queue_pop(thief) == fake_task(i));
    CHECK(ox__queue_pop(thief) == NULL);
    free(thief);
    free(victim);
}

/* The batch steal still takes half, rounded up, at most its cap: the first
 * to run, the rest to the thief's queue in the victim's order. */
OX_TEST(break24_the_batch_steal_takes_half_in_order_up_to_its_cap)
{
    ox__worker *thief = fake_worker(), *victim = fake_worker();
    int next = 0, taken = 0;
    for (int i = 0; i < OX__LOCAL_QUEUE; i++)
        ox__queue_push(victim, fake_task(i));
    uint32_t n = OX__LOCAL_QUEUE;
    while (n > 0) {
        uint32_t want = n - n / 2;
        CHECK(ox__queue_steal(thief, victim, OX__LOCAL_QUEUE / 2) == fake_task(next));
        next++;
        for (uint32_t i = 1; i < want; i++)
            CHECK(ox__queue_pop(thief) == fake_task(next++));
        CHECK(ox__queue_pop(thief) == NULL);
        taken += (int)want;
        n -= want;
        CHECK_EQ(queued(victim), n);
    }
    CHECK_EQ(taken, OX__LOCAL_QUEUE);
    /* A cap below the half: three of eight. */
    for (int i = 0; i < 8; i++)
        ox__queue_push(victim, fake_task(i));
    CHECK(ox__queue_steal(thief, victim, 3) == fake_task(0));
    CHECK(ox__queue_pop(thief) == fake_task(1));
    CHECK(ox__queue_pop(thief) == fake_task(2));
    CHECK(ox__queue_pop(thief) == NULL);
    CHECK_EQ(queued(victim), 5u);
    free(thief);
    free(victim);
}

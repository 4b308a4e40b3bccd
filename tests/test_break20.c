/* Reproducers from trying to break the injector's batches (6770c30,
 * 1abc9c5: a full queue's overflow goes to the injector as an array of
 * task pointers, handed out one at a time) and the idle-time trim of the
 * record pool and the stack cache after 1 ms idle (fa4bf82). */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"
#include "task/task_internal.h" /* white box: the pool, the cache, the injector */

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- a ticker faster than 1 ms must not keep a burst's memory for ever ----
 * fa4bf82 gives back the pooled records and the warm stacks' pages only
 * once a worker has been idle for 1 ms without a break, and every task it
 * runs starts the millisecond again (found_work). A runtime that is idle
 * but for a timer every few hundred microseconds (a 1 kHz loop, a light
 * steady load) then keeps its last burst's records and stack pages for
 * ever: before, the pool had a cap and the stacks gave back their pages
 * at every idle visit. One worker, so that no other worker trims for it.
 * Nothing here draws on the pool or the cache after the burst. */
enum { RECORD_BURST = 10000, STACK_BURST = 1500, TICK_US = 300 };

static void *return_at_once(void *arg)
{
    return arg;
}

static _Atomic long holding;

static void *hold_until_disconnected(void *arg)
{
    atomic_fetch_add(&holding, 1);
    int v;
    return (void *)(intptr_t)ox_receiver_recv(arg, &v);
}

/* Leaves RECORD_BURST records in the pool (finished tasks joined at the
 * end) and STACK_BURST warm stacks in the cache (tasks alive together). */
static void burst(void)
{
    static ox_task_handle hs[RECORD_BURST];
    for (int i = 0; i < RECORD_BURST; i++)
        hs[i] = ox_task_spawn(return_at_once, NULL);
    for (int i = 0; i < RECORD_BURST; i++)
        CHECK_EQ(ox_task_join(&hs[i], NULL, NULL), 0);
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(ox_channel(sizeof(int), 1, &tx, &rx), 0);
    for (int i = 0; i < STACK_BURST; i++)
        hs[i] = ox_task_spawn(hold_until_disconnected, rx);
    ox_test_wait_count(&holding, STACK_BURST); /* each holds its stack */
    ox_sender_drop(tx);
    for (int i = 0; i < STACK_BURST; i++) {
        void *r = NULL;
        CHECK_EQ(ox_task_join(&hs[i], &r, NULL), 0);
        CHECK_EQ((intptr_t)r, OX_EDISCONNECTED);
    }
    ox_receiver_drop(rx);
}

static void *burst_then_tick(void *arg)
{
    (void)arg;
    burst();
    fprintf(stderr, "after the burst: %zu records pooled, stacks trimmable: %d\n",
            ox__task_records_pooled(), ox__stack_cache_trimmable());
    /* Else the test tests nothing. */
    CHECK(ox__task_records_trimmable() && ox__stack_cache_trimmable());
    long ticks = 0, most = (long)(ox_test_bound(OX_MILLIS(2000)) / OX_MICROS(TICK_US));
    for (; ticks < most && (ox__task_records_trimmable() || ox__stack_cache_trimmable()); ticks++)
        CHECK_EQ(ox_task_sleep(OX_MICROS(TICK_US)), 0);
    fprintf(stderr, "after %ld ticks of %d us: %zu records pooled, stacks trimmable: %d\n", ticks,
            TICK_US, ox__task_records_pooled(), ox__stack_cache_trimmable());
    if (ox__task_records_trimmable() || ox__stack_cache_trimmable())
        ox_test_fail(__FILE__, __LINE__,
                     "%ld ticks of %d us, the worker idle but for them: still %zu records "
                     "pooled (%s), stacks %strimmable",
                     ticks, TICK_US, ox__task_records_pooled(),
                     ox__task_records_trimmable() ? "trimmable" : "kept",
                     ox__stack_cache_trimmable() ? "" : "not ");
    return NULL;
}

OX_TEST_OPTS(break20_a_ticker_faster_than_the_trim_delay_does_not_keep_a_burst_for_ever,
             .timeout_s = 60)
{
    ox_test_run_alone(1, burst_then_tick, NULL);
}

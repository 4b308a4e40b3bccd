/* The bottom of the held-lock record (unwind_record.h): every array of
 * entries has a slot below its first entry whose object is
 * ox__unwind_bottom, so that an unlock compares the newest entry without
 * testing the depth. These check that the bottom is there in each state a
 * record's entries can be in (none yet, inline, on the heap, a task's
 * record moved into a worker's and back) and that an unlock of a lock not
 * held, with no entry at all, still finds nothing and aborts. */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"
#include "task/task_internal.h" /* white box: the unwind record */

#include <signal.h>
#include <stdint.h>

/* Past a thread's inline entries and a task's: the heap. */
enum { DEEP = OX__UNWIND_INLINE + 4 };

static ox_mutex deep[DEEP];

static void check_bottom(int line)
{
    const ox__unwind_state *s = ox__unwind_current();
    if (s->entries[-1].object != ox__unwind_bottom)
        ox_test_fail(__FILE__, line, "no bottom below the entries (depth %u, capacity %u)",
                     s->depth, s->capacity);
}

/* Takes the DEEP mutexes and gives them back, newest first, checking the
 * bottom at each depth; suspends between steps when in a task. */
static void lock_all_and_back(bool in_task)
{
    check_bottom(__LINE__);
    for (int i = 0; i < DEEP; i++) {
        CHECK_EQ(ox_mutex_lock(&deep[i]), 0);
        check_bottom(__LINE__);
        if (in_task)
            ox_task_yield();
    }
    for (int i = DEEP - 1; i >= 0; i--) {
        ox_mutex_unlock(&deep[i]);
        check_bottom(__LINE__);
        if (in_task)
            ox_task_yield();
    }
    CHECK_EQ(ox__unwind_current()->depth, 0u);
}

static void *fresh_thread_checks(void *arg)
{
    (void)arg;
    const ox__unwind_state *s = ox__unwind_current();
    CHECK_EQ(s->capacity, 0u); /* no entry yet: the record points past the bottom itself */
    CHECK(s->entries == ox__unwind_bottom + 1);
    lock_all_and_back(false);
    lock_all_and_back(false); /* again, from the heap array */
    return NULL;
}

OX_TEST(held_bottom_below_a_thread_s_entries_from_none_to_the_heap)
{
    ox_join_handle h = ox_thread_spawn(fresh_thread_checks, NULL);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
}

static void *task_checks(void *arg)
{
    (void)arg;
    lock_all_and_back(true);
    return NULL;
}

OX_TEST(held_bottom_below_a_task_s_entries_across_switches)
{
    ox_runtime *rt = ox_test_runtime(2);
    ox_task_handle h[4];
    for (int round = 0; round < 8; round++) {
        for (int i = 0; i < 4; i++)
            CHECK_EQ(
                ox_task_builder_spawn(&(ox_task_builder){.runtime = rt}, task_checks, NULL, &h[i]),
                0);
        for (int i = 0; i < 4; i++)
            CHECK_EQ(ox_task_join(&h[i], NULL, NULL), 0);
    }
    /* The worker records went back to the threads: still a bottom here. */
    check_bottom(__LINE__);
    ox_runtime_shutdown(rt);
}

/* With no entry, an unlock reads the bottom, which is no lock's. */
static ox_mutex unheld_mutex = OX_MUTEX_INIT;
static ox_rwlock unheld_rwlock = OX_RWLOCK_INIT;

OX_TEST_OPTS(held_bottom_unlock_with_no_entry_ever_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "ox_mutex_unlock: unlocking a mutex not held by this thread")
{
    CHECK_EQ(ox__unwind_current()->capacity, 0u);
    ox_mutex_unlock(&unheld_mutex);
}

OX_TEST_OPTS(held_bottom_unlock_after_the_heap_array_emptied_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "ox_rwlock_read_unlock: unlocking an rwlock not held by this thread")
{
    lock_all_and_back(false);
    CHECK(ox__unwind_current()->capacity > OX__UNWIND_INLINE);
    ox_rwlock_read_unlock(&unheld_rwlock);
}

static void *unlock_unheld_write(void *arg)
{
    (void)arg;
    lock_all_and_back(true);
    ox_rwlock_write_unlock(&unheld_rwlock);
    return NULL;
}

OX_TEST_OPTS(held_bottom_write_unlock_in_a_task_with_no_entry_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "unlocking an rwlock not held by this thread")
{
    ox_runtime *rt = ox_test_runtime(2);
    ox_task_handle h;
    CHECK_EQ(
        ox_task_builder_spawn(&(ox_task_builder){.runtime = rt}, unlock_unheld_write, NULL, &h), 0);
    (void)!ox_task_join(&h, NULL, NULL);
}

/* Guide §12, deadlocks: two threads take two locks in opposite orders.
 * Thread 1 holds A and wants B while thread 2 holds B and wants A: with
 * plain lock() both would wait forever. Here each waits with
 * ox_mutex_lock_timeout, so the program sees the deadlock and reports it
 * ("Consider try_lock with timeouts"). Then the fix: acquire the locks in
 * one global order (A before B), and both threads finish. */
#include <oxide.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

static ox_mutex lock_a = OX_MUTEX_INIT;
static ox_mutex lock_b = OX_MUTEX_INIT;
static int shared_total; /* guarded by both locks */

static _Atomic int holding;   /* threads holding their first lock */
static _Atomic int timed_out; /* threads that gave up on their second */

static void wait_until(_Atomic int *count, int n)
{
    while (atomic_load(count) < n)
        ox_thread_yield();
}

struct order {
    int thread;
    ox_mutex *first, *second;
    const char *first_name, *second_name;
};

static void *opposite_orders(void *arg)
{
    const struct order *o = arg;
    if (ox_mutex_lock(o->first) != 0)
        ox_panic("the lock is poisoned"); /* Rust: lock().unwrap() */
    printf("Thread %d holds lock %s, wants lock %s\n", o->thread, o->first_name, o->second_name);
    fflush(stdout);
    atomic_fetch_add(&holding, 1);
    wait_until(&holding, 2); /* both now hold one lock each */
    if (ox_mutex_lock_timeout(o->second, OX_MILLIS(200)) == OX_ETIMEDOUT) {
        printf("Thread %d: would have deadlocked (lock %s still held by the other thread "
               "after 200 ms)\n",
               o->thread, o->second_name);
        fflush(stdout);
        atomic_fetch_add(&timed_out, 1);
        wait_until(&timed_out, 2); /* keep holding until the other has seen it too */
    } else {
        shared_total++; /* not reached: the other thread holds it until we give up */
        ox_mutex_unlock(o->second);
    }
    ox_mutex_unlock(o->first);
    return NULL;
}

static void *same_order(void *arg)
{
    int thread = (int)(intptr_t)arg;
    /* Every thread takes A, then B: nobody can hold B while waiting for A. */
    if (ox_mutex_lock(&lock_a) != 0)
        ox_panic("the lock is poisoned"); /* Rust: lock().unwrap() */
    if (ox_mutex_lock(&lock_b) != 0)
        ox_panic("the lock is poisoned"); /* Rust: lock().unwrap() */
    shared_total++;
    printf("Thread %d took lock A, then lock B\n", thread);
    ox_mutex_unlock(&lock_b);
    ox_mutex_unlock(&lock_a);
    return NULL;
}

int main(void)
{
    printf("Opposite orders:\n");
    static const struct order orders[2] = {{1, &lock_a, &lock_b, "A", "B"},
                                           {2, &lock_b, &lock_a, "B", "A"}};
    ox_join_handle h[2];
    for (int i = 0; i < 2; i++)
        h[i] = ox_thread_spawn(opposite_orders, (void *)&orders[i]);
    for (int i = 0; i < 2; i++)
        if (ox_thread_join(&h[i], NULL, NULL) != 0)
            ox_panic("a thread panicked"); /* Rust: join().unwrap() */

    printf("One global order (A before B):\n");
    for (int i = 0; i < 2; i++)
        h[i] = ox_thread_spawn(same_order, (void *)(intptr_t)(i + 1));
    for (int i = 0; i < 2; i++)
        if (ox_thread_join(&h[i], NULL, NULL) != 0)
            ox_panic("a thread panicked"); /* Rust: join().unwrap() */
    printf("Both threads finished: total = %d\n", shared_total);
    return 0;
}

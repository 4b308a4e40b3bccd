/* Guide §5, Mutex<T>: ten threads increment one counter under a mutex.
 *
 * Rust shares the mutex through an Arc; here main outlives every thread (it
 * joins them all), so the threads borrow main's mutex and counter. */
#include <oxide.h>
#include <stdio.h>

struct counter {
    ox_mutex lock;
    int value; /* guarded by lock */
};

static void *increment(void *arg)
{
    struct counter *counter = arg;
    /* .lock().unwrap(): a poisoned mutex means another thread panicked
     * while holding it. */
    if (ox_mutex_lock(&counter->lock) != 0)
        ox_panic("PoisonError");
    counter->value += 1;
    ox_mutex_unlock(&counter->lock); /* the guard going out of scope */
    return NULL;
}

int main(void)
{
    struct counter counter = {OX_MUTEX_INIT, 0};
    ox_join_handle handles[10];

    for (int i = 0; i < 10; i++)
        handles[i] = ox_thread_spawn(increment, &counter);

    for (int i = 0; i < 10; i++) {
        if (ox_thread_join(&handles[i], NULL, NULL) != 0)
            ox_panic("a thread panicked");
    }

    OX_MUTEX_SCOPE(&counter.lock)
    {
        printf("Result: %d\n", counter.value);
    }
    return 0;
}

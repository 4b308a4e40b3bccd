/* Built against an installed oxide through pkg-config by tests/run-suites.sh. */
#include <oxide.h>
#include <stdint.h>
#include <stdio.h>

static ox_mutex mutex = OX_MUTEX_INIT;
static ox_rwlock rwlock = OX_RWLOCK_INIT;

static void *work(void *arg)
{
    (void)arg;
    /* The lock fast paths are inlined here and record the held lock in the
     * library's thread-local record; the library's own unlock functions
     * must find it there (else they abort: "not held by this thread"). */
    if (ox_mutex_lock(&mutex) != 0)
        return NULL;
    (ox_mutex_unlock)(&mutex);
    if (ox_rwlock_read(&rwlock) != 0)
        return NULL;
    (ox_rwlock_read_unlock)(&rwlock);
    if (ox_mutex_lock_at(&mutex, __FILE__, __LINE__) != 0)
        return NULL;
    ox_mutex_unlock(&mutex);
    return (void *)(intptr_t)42;
}

int main(void)
{
    ox_thread_builder b = OX_THREAD_BUILDER_INIT;
    ox_thread_builder_name(&b, "installed");
    ox_join_handle h;
    if (ox_thread_builder_spawn(&b, work, NULL, &h) != 0)
        return 1;
    char name[32];
    snprintf(name, sizeof name, "%s", ox_thread_name(ox_join_handle_thread(&h)));
    void *result;
    if (ox_thread_join(&h, &result, NULL) != 0)
        return 1;
    printf("hello from thread '%s', result %d\n", name, (int)(intptr_t)result);
    return 0;
}

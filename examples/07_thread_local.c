/* Guide §7: thread_local! — every thread gets its own lazily initialised
 * copy. */
#include <oxide.h>
#include <stdio.h>

static void thread_id_init(unsigned *id)
{
    *id = 0; /* RefCell::new(0) */
}
OX_THREAD_LOCAL(THREAD_ID, unsigned, thread_id_init, NULL);

static void *spawned(void *arg)
{
    (void)arg;
    unsigned *id = OX_TLS_GET(THREAD_ID);
    *id = 2; /* the spawned thread sets its ID to 2 */
    printf("Spawned thread ID: %u\n", *id);

    /* Access it again in the same thread. */
    id = OX_TLS_GET(THREAD_ID);
    *id += 5;
    printf("Spawned thread ID incremented: %u\n", *id); /* will be 7 */
    return NULL;
}

int main(void)
{
    unsigned *id = OX_TLS_GET(THREAD_ID);
    *id = 1; /* the main thread sets its ID to 1 */
    printf("Main thread ID: %u\n", *id);

    ox_join_handle handle = ox_thread_spawn(spawned, NULL);
    if (ox_thread_join(&handle, NULL, NULL) != 0)
        return 1;

    /* The main thread's ID is untouched by the spawned thread. */
    printf("Main thread ID after spawned thread finished: %u\n", *OX_TLS_GET(THREAD_ID));
    return 0;
}

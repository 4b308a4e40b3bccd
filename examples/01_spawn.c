/* Guide §1: std::thread::spawn and join. Output order may vary. */
#include <oxide.h>
#include <stdio.h>

static void *spawned(void *arg)
{
    (void)arg;
    for (int i = 1; i <= 5; i++) {
        printf("Hi number %d from the spawned thread!\n", i);
        ox_thread_sleep(OX_MILLIS(1));
    }
    return NULL;
}

int main(void)
{
    ox_join_handle handle = ox_thread_spawn(spawned, NULL);

    /* Code in the main thread can continue executing. */
    for (int i = 1; i <= 3; i++) {
        printf("Hi number %d from the main thread!\n", i);
        ox_thread_sleep(OX_MILLIS(1));
    }

    /* Wait for the spawned thread to finish; without the join, returning
     * from main would end the process while it still runs. */
    if (ox_thread_join(&handle, NULL, NULL) != 0)
        ox_panic("the spawned thread panicked");
    printf("Spawned thread finished.\n");
    return 0;
}

/* Guide §1: JoinHandle::join returns the thread's result, or the payload of
 * its panic. */
#include <oxide.h>
#include <stdio.h>

static void *say_hello(void *arg)
{
    (void)arg;
    return "Hello from spawned thread"; /* Ok(T): any pointer-sized result */
}

static void *go_wrong(void *arg)
{
    (void)arg;
    ox_panic("Something went wrong!");
}

int main(void)
{
    ox_join_handle handle = ox_thread_spawn(say_hello, NULL);
    void *message;
    ox_panic_payload *e;
    if (ox_thread_join(&handle, &message, &e) == 0) {
        printf("%s\n", (const char *)message);
    } else {
        printf("Spawned thread panicked: \"%s\"\n", e->message);
        ox_panic_payload_free(e);
    }

    ox_join_handle panicking_handle = ox_thread_spawn(go_wrong, NULL);
    if (ox_thread_join(&panicking_handle, NULL, &e) == 0) {
        printf("This won't be printed.\n");
    } else {
        printf("Caught panic from another thread: \"%s\"\n", e->message);
        ox_panic_payload_free(e);
    }
    return 0;
}

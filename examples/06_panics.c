/* Guide §6: a panic ends its thread and is handed to the joiner;
 * catch_unwind catches one inside a thread. */
#include <oxide.h>
#include <stdio.h>

static void *oops(void *arg)
{
    (void)arg;
    ox_panic("Oops!");
}

static void *fine(void *arg)
{
    (void)arg;
    return "Result from potentially panicking code";
}

static void *intentional_panic(void *arg)
{
    (void)arg;
    ox_panic("Intentional panic inside catch_unwind");
}

struct code {
    void *(*fn)(void *);
};

/* The guide's second thread, run once as written and once with its
 * commented-out panic enabled. */
static void *catching_thread(void *arg)
{
    const struct code *code = arg;
    void *value;
    if (ox_catch_unwind(code->fn, NULL, &value, NULL) == 0)
        printf("Thread completed successfully: %s\n", (const char *)value);
    else
        printf("Thread caught a panic internally!\n");
    return NULL;
}

int main(void)
{
    ox_join_handle h = ox_thread_spawn(oops, NULL);
    ox_panic_payload *err;
    int result = ox_thread_join(&h, NULL, &err);
    if (result != OX_EPANICKED)
        ox_panic("expected the thread to panic");
    printf("Caught panic from spawned thread: \"%s\"\n", err->message);
    ox_panic_payload_free(err);

    static const struct code variants[] = {{fine}, {intentional_panic}};
    for (int i = 0; i < 2; i++) {
        ox_join_handle handle = ox_thread_spawn(catching_thread, (void *)&variants[i]);
        if (ox_thread_join(&handle, NULL, NULL) != 0)
            return 1;
    }
    return 0;
}

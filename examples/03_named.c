/* Guide §3: naming threads with a builder (and setting the stack size). */
#include <oxide.h>
#include <stdio.h>

static void *worker(void *arg)
{
    (void)arg;
    const char *name = ox_thread_name(ox_thread_current());
    if (name)
        printf("Running in thread: Some(\"%s\")\n", name);
    else
        printf("Running in thread: None\n");
    ox_thread_sleep(OX_SECS(1));
    return NULL;
}

int main(void)
{
    ox_thread_builder builder = OX_THREAD_BUILDER_INIT;
    ox_thread_builder_name(&builder, "my_worker_thread");
    ox_thread_builder_stack_size(&builder, 256 * 1024);

    ox_join_handle handle;
    int rc = ox_thread_builder_spawn(&builder, worker, NULL, &handle);
    if (rc != 0) {
        fprintf(stderr, "spawn failed: %s\n", ox_strerror(rc));
        return 1;
    }
    if (ox_thread_join(&handle, NULL, NULL) != 0)
        return 1;
    printf("Thread finished.\n");
    return 0;
}

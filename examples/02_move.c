/* Guide §2: moving data into a thread. C has no `move`: the convention is
 * that the spawned function takes ownership of what its argument points to
 * (here a heap vector it frees), and the spawner must not touch it after. */
#include <oxide.h>
#include <stdio.h>
#include <stdlib.h>

struct vec {
    size_t len;
    int items[];
};

static void *print_vector(void *arg)
{
    struct vec *v = arg; /* owned by this thread now */
    printf("Here's a vector: [");
    for (size_t i = 0; i < v->len; i++)
        printf(i ? ", %d" : "%d", v->items[i]);
    printf("]\n");
    free(v);
    return NULL;
}

int main(void)
{
    struct vec *v = malloc(sizeof *v + 3 * sizeof v->items[0]);
    if (v == NULL)
        return 1;
    v->len = 3;
    v->items[0] = 1;
    v->items[1] = 2;
    v->items[2] = 3;

    ox_join_handle handle = ox_thread_spawn(print_vector, v);
    v = NULL; /* moved: Rust would reject any later use at compile time */

    if (ox_thread_join(&handle, NULL, NULL) != 0)
        return 1;
    return 0;
}

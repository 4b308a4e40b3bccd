/* Guide §5: shared ownership with Arc. Each thread gets its own strong
 * reference (ox_arc_clone, Rust's Arc::clone) and gives it up when done
 * (ox_arc_drop, what Rust does when the closure's captured Arc goes out of
 * scope); after the joins only main's reference is left. The data is only
 * read, as Rust's Arc allows: mutation would need a lock. */
#include <oxide.h>
#include <stdio.h>
#include <stdlib.h>

struct vec {
    size_t len;
    int items[3];
};

/* What Rust's `move` closure captures: i and the cloned Arc. */
struct capture {
    size_t i;
    const struct vec *data; /* one strong reference, owned by the thread */
};

static void *show_item(void *arg)
{
    struct capture *c = arg; /* owned by this thread now */
    printf("Thread %zu sees data item: %d\n", c->i, c->data->items[c->i]);
    ox_arc_drop((void *)c->data); /* the clone goes out of scope */
    free(c);
    return NULL;
}

int main(void)
{
    struct vec *data = ox_arc_new(sizeof *data, NULL); /* Arc::new(vec![10, 20, 30]) */
    *data = (struct vec){3, {10, 20, 30}};             /* still unique: no one else sees it */
    ox_join_handle handles[3];

    for (size_t i = 0; i < 3; i++) {
        struct capture *c = malloc(sizeof *c);
        if (c == NULL)
            return 1;
        c->i = i;
        c->data = ox_arc_clone(data); /* increment the atomic reference count */
        handles[i] = ox_thread_spawn(show_item, c);
    }

    for (size_t i = 0; i < 3; i++)
        if (ox_thread_join(&handles[i], NULL, NULL) != 0)
            return 1;

    printf("Original data (ref count = %zu): [", ox_arc_strong_count(data));
    for (size_t i = 0; i < data->len; i++)
        printf(i ? ", %d" : "%d", data->items[i]);
    printf("]\n");
    ox_arc_drop(data);
    return 0;
}

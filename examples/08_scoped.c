/* Guide §8: scoped threads borrow the caller's stack; every one is joined
 * before ox_thread_scope returns. */
#include <oxide.h>
#include <stdio.h>
#include <string.h>

struct borrowed {
    int data[4];
    size_t data_len;
    char message[64];
};

static void print_data(const char *who, const struct borrowed *b)
{
    printf("%s: data = [", who);
    for (size_t i = 0; i < b->data_len; i++)
        printf(i ? ", %d" : "%d", b->data[i]);
    printf("]\n");
}

static void *thread1(void *arg) /* borrows data mutably */
{
    struct borrowed *b = arg;
    b->data[b->data_len++] = 4;
    print_data("Thread 1", b);
    return NULL;
}

static void *thread2(void *arg) /* borrows message immutably */
{
    const struct borrowed *b = arg;
    printf("Thread 2: message = %s\n", b->message);
    return NULL;
}

static void *thread3(void *arg) /* borrows message mutably */
{
    char *message = arg;
    strcat(message, " from scoped thread!");
    printf("Thread 3: modified message = %s\n", message);
    return NULL;
}

static void body(ox_scope *s, void *arg)
{
    struct borrowed *b = arg;
    ox_scope_spawn(s, thread1, b);
    ox_scoped_handle reader = ox_scope_spawn(s, thread2, b);

    /* Rust's borrow checker forbids thread 2's shared borrow of message to
     * overlap thread 3's mutable one; C does not check, so end the shared
     * borrow first by joining thread 2. */
    if (ox_scoped_join(&reader, NULL, NULL) != 0)
        ox_panic("thread 2 panicked");
    ox_scope_spawn(s, thread3, b->message);
    /* The scope waits for all spawned threads here. */
}

int main(void)
{
    struct borrowed b = {.data = {1, 2, 3}, .data_len = 3, .message = "Hello"};
    ox_thread_scope(body, &b);
    printf("After scope: data = [");
    for (size_t i = 0; i < b.data_len; i++)
        printf(i ? ", %d" : "%d", b.data[i]);
    printf("], message = \"%s\"\n", b.message);
    return 0;
}

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

/* Formats data as Rust's {:?} does: [1, 2, 3]. */
static const char *format_data(const struct borrowed *b, char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "[");
    for (size_t i = 0; i < b->data_len && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ", %d" : "%d", b->data[i]);
    if (used < size)
        (void)snprintf(buf + used, size - used, "]"); /* truncation is fine for a demo */
    return buf;
}

static void *thread1(void *arg) /* borrows data mutably */
{
    struct borrowed *b = arg;
    b->data[b->data_len++] = 4;
    char buf[64];
    /* One printf per line: the threads print concurrently. */
    printf("Thread 1: data = %s\n", format_data(b, buf, sizeof buf));
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
    (void)ox_scope_spawn(s, thread1, b); /* not joined by hand: the scope joins it */
    ox_scoped_handle reader = ox_scope_spawn(s, thread2, b);

    /* Rust's borrow checker forbids thread 2's shared borrow of message to
     * overlap thread 3's mutable one; C does not check, so end the shared
     * borrow first by joining thread 2. */
    if (ox_scoped_join(&reader, NULL, NULL) != 0)
        ox_panic("thread 2 panicked");
    (void)ox_scope_spawn(s, thread3, b->message);
    /* The scope waits for all spawned threads here. */
}

int main(void)
{
    struct borrowed b = {.data = {1, 2, 3}, .data_len = 3, .message = "Hello"};
    ox_thread_scope(body, &b);
    char buf[64];
    printf("After scope: data = %s, message = \"%s\"\n", format_data(&b, buf, sizeof buf),
           b.message);
    return 0;
}

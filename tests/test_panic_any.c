/* Typed panic payloads (Rust's panic_any): the value, its type tag and its
 * destructor come back whole from join, catch_unwind and scope; downcast
 * tests the tag; resume passes the payload on unchanged; the destructor runs
 * exactly once, when the payload is freed. */
#include "helpers.h"
#include "oxide.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct parse_error {
    int line;
    const char *what;
};

static _Atomic int drops;

static void drop_parse_error(void *p)
{
    atomic_fetch_add(&drops, 1);
    free(p);
}

static void *panics_with_error(void *arg)
{
    struct parse_error *e = malloc(sizeof *e);
    CHECK(e != NULL);
    *e = (struct parse_error){.line = (int)(intptr_t)arg, .what = "unexpected token"};
    ox_panic_any(struct parse_error, e, drop_parse_error);
}

/* The payload is typed, tagged, carries the value, and drops it once. */
static void check_and_free(ox_panic_payload *p, int line)
{
    CHECK(p->message == NULL);
    CHECK_STR(p->type, "struct parse_error");
    struct parse_error *e = ox_panic_downcast_ref(p, struct parse_error);
    CHECK(e != NULL && e == p->value);
    CHECK_EQ(e->line, line);
    CHECK_STR(e->what, "unexpected token");
    CHECK(ox_panic_downcast_ref(p, int) == NULL); /* another type */
    int before = atomic_load(&drops);
    ox_panic_payload_free(p);
    CHECK_EQ(atomic_load(&drops), before + 1);
}

OX_TEST(panic_any_is_handed_back_whole_by_catch_unwind)
{
    ox_panic_payload *p;
    CHECK_EQ(ox_catch_unwind(panics_with_error, (void *)12, NULL, &p), OX_EPANICKED);
    CHECK_EQ(atomic_load(&drops), 0); /* not dropped while someone holds it */
    check_and_free(p, 12);
    /* Caught and freed in one go: dropped once too. */
    CHECK_EQ(ox_catch_unwind(panics_with_error, (void *)13, NULL, NULL), OX_EPANICKED);
    CHECK_EQ(atomic_load(&drops), 2);
}

OX_TEST(panic_any_is_handed_back_whole_by_join)
{
    ox_join_handle h = ox_thread_spawn(panics_with_error, (void *)7);
    ox_panic_payload *p;
    CHECK_EQ(ox_thread_join(&h, NULL, &p), OX_EPANICKED);
    CHECK(p->thread_name == NULL);
    check_and_free(p, 7);
    CHECK_EQ(atomic_load(&drops), 1);
}

OX_TEST(panic_any_of_a_detached_thread_is_dropped_once)
{
    ox_join_handle h = ox_thread_spawn(panics_with_error, (void *)8);
    ox_join_handle_drop(&h);
    /* Nobody collects it: the thread's record frees it when the thread is
     * gone. A leak fails by the runner's timeout. */
    while (atomic_load(&drops) == 0)
        ox_thread_sleep(OX_MILLIS(1));
    ox_thread_sleep(OX_MILLIS(20));
    CHECK_EQ(atomic_load(&drops), 1);
}

static void *resumes(void *arg)
{
    ox_panic_resume(arg);
}

OX_TEST(panic_any_resume_passes_it_on_unchanged)
{
    ox_panic_payload *p, *again;
    CHECK_EQ(ox_catch_unwind(panics_with_error, (void *)3, NULL, &p), OX_EPANICKED);
    void *value = p->value;
    CHECK_EQ(ox_catch_unwind(resumes, p, NULL, &again), OX_EPANICKED);
    CHECK(again == p && again->value == value);
    CHECK_EQ(atomic_load(&drops), 0);
    check_and_free(again, 3);
}

static void scope_body_panics(ox_scope *s, void *arg)
{
    (void)s;
    panics_with_error(arg);
}

static void *scope_with_panicking_body(void *arg)
{
    ox_thread_scope(scope_body_panics, arg);
    return NULL;
}

static void scope_joins_by_hand(ox_scope *s, void *arg)
{
    ox_scoped_handle h = ox_scope_spawn(s, panics_with_error, arg);
    ox_panic_payload *p;
    CHECK_EQ(ox_scoped_join(&h, NULL, &p), OX_EPANICKED);
    check_and_free(p, (int)(intptr_t)arg);
}

OX_TEST(panic_any_is_handed_back_whole_by_scope)
{
    ox_panic_payload *p;
    CHECK_EQ(ox_catch_unwind(scope_with_panicking_body, (void *)21, NULL, &p), OX_EPANICKED);
    check_and_free(p, 21);
    ox_thread_scope(scope_joins_by_hand, (void *)22);
    CHECK_EQ(atomic_load(&drops), 2);
}

static void *panics_with_untyped_drop(void *arg)
{
    ox_panic_any(int, arg, NULL);
}

OX_TEST(panic_any_default_hook_prints_box_dyn_any)
{
    static int forty_two = 42;
    ox_test_capture_stderr();
    ox_panic_payload *p;
    CHECK_EQ(ox_catch_unwind(panics_with_untyped_drop, &forty_two, NULL, &p), OX_EPANICKED);
    char *text = ox_test_stderr_text();
    CHECK_CONTAINS(text, "panicked at " __FILE__);
    CHECK_CONTAINS(text, ":\nBox<dyn Any>\nnote: run with `OX_BACKTRACE=1`");
    free(text);
    CHECK(*ox_panic_downcast_ref(p, int) == 42);
    CHECK(ox_panic_downcast_ref(p, struct parse_error) == NULL);
    ox_panic_payload_free(p); /* NULL drop: nothing to run */
}

static void *panics_with_message(void *arg)
{
    (void)arg;
    ox_panic("just words");
}

OX_TEST(panic_any_message_payload_is_not_typed)
{
    ox_panic_payload *p;
    CHECK_EQ(ox_catch_unwind(panics_with_message, NULL, NULL, &p), OX_EPANICKED);
    CHECK_STR(p->message, "just words");
    CHECK(p->type == NULL && p->value == NULL && p->drop == NULL);
    CHECK(ox_panic_downcast_ref(p, int) == NULL);
    CHECK(ox_panic_payload_downcast(p, "char") == NULL);
    ox_panic_payload_free(p);
}

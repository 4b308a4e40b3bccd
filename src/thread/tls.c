/* tls.c - the slow path of thread-locals: first use, and destruction at
 * thread exit. The fast path is inline in oxide/tls.h. */
#include "oxide/tls.h"

#include "oxide/panic.h"

#include "../panic/unwind.h"
#include "thread_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* This thread's live thread-locals, newest first: destroyed in that order. */
static _Thread_local ox__tls_node *live;

struct init_call {
    const ox__tls_key *key;
    unsigned char *state;
    void *value;
};

/* The initialiser panicked: leave the slot as if never touched, so that the
 * next access runs it again (Rust's lazy thread-locals do the same). */
static void init_panicked(void *p)
{
    struct init_call *c = p;
    memset(c->value, 0, c->key->size);
    *c->state = OX__TLS_UNINIT;
}

int ox__tls_access(const ox__tls_key *key, unsigned char *state, void *value, ox__tls_node *node,
                   void **out)
{
    switch (*state) {
    case OX__TLS_ALIVE:
        *out = value;
        return 0;
    case OX__TLS_UNINIT:
        ox__unit_exit_arm();
        *state = OX__TLS_INITIALISING;
        struct init_call call = {key, state, value};
        ox_cleanup_push(init_panicked, &call);
        key->init(value);
        ox__cleanup_pop_own(init_panicked, &call, false);
        *state = OX__TLS_ALIVE;
        *node = (ox__tls_node){.next = live, .key = key, .state = state, .value = value};
        live = node;
        *out = value;
        return 0;
    case OX__TLS_INITIALISING:
        ox_abort("OX_TLS_GET", "thread-local '%s' accessed by its own initialiser", key->name);
    default:
        *out = NULL;
        return OX_EDESTROYED;
    }
}

void ox__tls_access_failed(const ox__tls_key *key)
{
    ox_abort("OX_TLS_GET",
             "thread-local '%s' accessed during or after its destruction in "
             "thread '%s'",
             key->name, ox__unit_thread_name_or_unnamed());
}

static void *run_destructor(void *p)
{
    ox__tls_node *node = p;
    node->key->destroy(node->value);
    return NULL;
}

/* The thread-locals' part of a thread's end (unit.h). */
static void run_destructors(bool check_locks)
{
    (void)check_locks;
    /* A destructor may initialise further thread-locals; they are pushed on
     * `live` and destroyed by this same loop. */
    while (live) {
        ox__tls_node *node = live;
        live = node->next;
        *node->state = OX__TLS_DESTROYING;
        if (ox_catch_unwind(run_destructor, node, NULL, NULL) != 0) {
            /* As Rust: a panic escaping a thread-local destructor aborts. */
            fprintf(stderr, "oxide: the destructor of thread-local '%s' panicked; aborting\n",
                    node->key->name);
            abort();
        }
        *node->state = OX__TLS_DESTROYED;
    }
}

/* Before main, as every part's registration (unit.h). */
__attribute__((constructor(101))) static void register_run_destructors(void)
{
    ox__unit_exit_register(OX__UNIT_EXIT_TLS, run_destructors);
}

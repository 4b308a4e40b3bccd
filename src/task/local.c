/* local.c - task-locals (Tokio's task_local!): per-task values with lazy
 * initialisation and destructors.
 *
 * A task's locals are a list of small allocations, one per key it touched,
 * newest first; a lookup walks it (a task uses few). They are destroyed in
 * the task itself, newest first, after its function returns (or panics):
 * a destructor may block, and may touch other task-locals. */
#include "task_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct ox__task_local {
    struct ox__task_local *next;
    const ox__task_local_key *key;
    enum { LOCAL_ALIVE, LOCAL_DESTROYING } state;
    _Alignas(max_align_t) unsigned char value[];
} local;

void *ox__task_local_get(const ox__task_local_key *key)
{
    ox_task *t = ox_task_current();
    if (t == NULL)
        ox_abort("OX_TASK_LOCAL_GET", "task-local '%s' used outside a task", key->name);
    for (local *l = t->locals; l != NULL; l = l->next) {
        if (l->key == key) {
            if (l->state == LOCAL_DESTROYING)
                ox_abort("OX_TASK_LOCAL_GET", "task-local '%s' used by its own destructor",
                         key->name);
            return l->value;
        }
    }
    local *l = calloc(1, sizeof *l + key->size);
    if (l == NULL)
        ox_abort("OX_TASK_LOCAL_GET", "out of memory for task-local '%s'", key->name);
    l->key = key;
    if (key->init != NULL) {
        /* If init panics, the value is not linked: the next access runs
         * init again, as for thread-locals. */
        ox_cleanup_push(free, l);
        key->init(l->value);
        ox__cleanup_pop_own(free, l, false);
    }
    l->next = t->locals;
    t->locals = l;
    return l->value;
}

void ox__task_locals_destroy(ox_task *t)
{
    /* One at a time from the head: a destructor may create new locals,
     * which are then destroyed in turn. */
    while (t->locals != NULL) {
        local *l = t->locals;
        l->state = LOCAL_DESTROYING;
        if (l->key->destroy != NULL)
            l->key->destroy(l->value);
        /* Unlink after: l stays findable (and reported) while it dies. */
        local **p = &t->locals;
        while (*p != l)
            p = &(*p)->next;
        *p = l->next;
        free(l);
    }
}

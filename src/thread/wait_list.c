/* wait_list.c - the waiter list's lock and operations; see wait_list.h. */
#include "wait_list.h"

static const ox__wait_site wait_list_site = {.what = "wait list lock"};
/* Waiting for the unpark of a claimer that already chose us is never
 * cancelled: the hand-off is under way and its token must be taken. */
static const ox__wait_site claim_site = {.what = "wait list hand-off"};

OX_COLD void ox__wait_list_lock_slow(ox__wait_list *l)
{
    /* The holder only moves a few pointers: spin a little first. */
    ox__backoff b = {0};
    while (!ox__backoff_is_completed(&b)) {
        uint32_t expected = OX__WAIT_UNLOCKED;
        /* Acquire: pairs with the release in ox__wait_list_unlock. */
        if (atomic_load_explicit(&l->lock, memory_order_relaxed) == OX__WAIT_UNLOCKED &&
            atomic_compare_exchange_strong_explicit(&l->lock, &expected, OX__WAIT_LOCKED,
                                                    memory_order_acquire, memory_order_relaxed))
            return;
        ox__backoff_snooze_lock(&b);
    }
    /* Once we may have slept we never set LOCKED: another sleeper may be
     * left, and the unlock must wake it. Acquire: as above. */
    while (atomic_exchange_explicit(&l->lock, OX__WAIT_CONTENDED, memory_order_acquire) !=
           OX__WAIT_UNLOCKED)
        ox__park_wait(&l->lock, OX__WAIT_CONTENDED, OX_INSTANT_NEVER, &wait_list_site, l);
}

void ox__wait_list_unlock_on_unwind(void *list)
{
    ox__wait_list_unlock(list);
}

void ox__wait_list_push(ox__wait_list *l, ox__wait_node *n)
{
    n->next = NULL;
    n->prev = l->tail;
    if (l->tail)
        l->tail->next = n;
    else
        l->head = n;
    l->tail = n;
    n->linked = true;
}

void ox__wait_list_remove(ox__wait_list *l, ox__wait_node *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->next = n->prev = NULL;
    n->linked = false;
}

ox__wait_node *ox__wait_list_pop(ox__wait_list *l)
{
    ox__wait_node *n = l->head;
    if (n)
        ox__wait_list_remove(l, n);
    return n;
}

ox__wait_node *ox__wait_list_take_all(ox__wait_list *l)
{
    ox__wait_node *chain = l->head;
    for (ox__wait_node *n = chain; n; n = n->next)
        n->linked = false; /* next stays: it is the wake chain */
    l->head = l->tail = NULL;
    return chain;
}

void ox__wait_wake_chain(ox__wait_node *chain)
{
    while (chain) {
        /* Read next first: after the unpark the node's owner may return
         * and its stack frame, the node with it, be gone. */
        ox__wait_node *next = chain->next;
        ox__parker_unpark(&chain->parker);
        chain = next;
    }
}

int ox__wait_node_sleep(ox__wait_node *n, ox_instant deadline, const ox__wait_site *site,
                        const void *object)
{
    /* Only a claimer unparks the node's parker, so a consumed token means
     * claimed; its acquire makes what the claimer wrote under the lock (the
     * primitive's hand-over) visible. */
    return ox__parker_park(&n->parker, deadline, site, object);
}

void ox__wait_node_await_claim(ox__wait_node *n, const ox__wait_site *site, const void *object)
{
    (void)site;
    /* The claimer's unpark follows its unlock at once. */
    while (ox__parker_park(&n->parker, OX_INSTANT_NEVER, &claim_site, object) != 0)
        ;
}

int ox__wait_list_wait_locked(ox__wait_list *lock, ox__wait_list *list, ox_instant deadline,
                              const ox__wait_site *site, const void *object)
{
    if (site->cancellable && ox__park_cancelled())
        return OX_ECANCELED; /* an aborted task does not start a wait */
    ox__wait_node node;
    ox__wait_node_init(&node);
    ox__wait_list_push(list, &node);
    ox__wait_list_unlock(lock);
    int rc = ox__wait_node_sleep(&node, deadline, site, object);
    ox__wait_list_lock(lock);
    if (rc == 0)
        return 0;
    if (node.linked) {
        ox__wait_list_remove(list, &node);
        return rc;
    }
    /* Claimed as the wait ended: take the wake-up (and its token). */
    ox__wait_list_unlock(lock);
    ox__wait_node_await_claim(&node, site, object);
    ox__wait_list_lock(lock);
    return 0;
}

int ox__wait_list_wait_for(ox__wait_list *lock, ox__wait_list *list, ox_instant deadline,
                           const ox__wait_site *site, const void *object, int (*poll)(void *arg),
                           void *arg)
{
    int gave_up = 0;
    ox__wait_list_lock(lock);
    for (;;) {
        int rc = poll(arg);
        /* After a wait that ended unclaimed, one more look decides. */
        if (rc != OX_EEMPTY || gave_up) {
            ox__wait_list_unlock(lock);
            return rc == OX_EEMPTY ? gave_up : rc;
        }
        gave_up = ox__wait_list_wait_locked(lock, list, deadline, site, object);
    }
}

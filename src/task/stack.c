/* stack.c - task stacks: a guarded mapping per task, with the task record
 * at its top, recycled through a small cache; and the overflow report.
 *
 *   base                 base+guard                          base+total
 *   | guard (PROT_NONE) | stack, growing down ...  | ox_task | name |
 *
 * A recycled stack keeps the pages its last task touched, so the cache is
 * bounded (STACK_CACHE): spawning in a loop maps nothing, and a burst of a
 * million tasks does not keep a million stacks afterwards.
 * Two kernel mappings per stack (the guard splits the region): with
 * vm.max_map_count at 65530, that caps guarded tasks near 32 000. */
#include "sanitizer.h"
#include "task_internal.h"

#include <stdlib.h>
#include <string.h>

#define STACK_CACHE 256

static struct {
    ox__spin lock;
    ox_task *head; /* cached records, linked through next; all of default size */
    size_t count;
} cache;

static size_t record_size(size_t name_len)
{
    return (sizeof(ox_task) + name_len + 1 + 63) & ~(size_t)63;
}

ox_task *ox__task_alloc(size_t stack_size, size_t name_len)
{
    if (stack_size == OX_TASK_DEFAULT_STACK && name_len == 0) {
        ox__spin_lock(&cache.lock);
        ox_task *t = cache.head;
        if (t != NULL) {
            cache.head = t->next;
            cache.count--;
        }
        ox__spin_unlock(&cache.lock);
        if (t != NULL) {
            char *lo = (char *)t->stack_base + t->guard_size;
            ox__san_stack_reuse(lo, (size_t)((char *)t - lo));
            return t;
        }
    }
    size_t rec = record_size(name_len);
    void *base;
    size_t total;
    if (ox__sys_stack_map(stack_size + rec, &base, &total) != 0)
        return NULL;
    ox_task *t = (ox_task *)((char *)base + total - rec);
    memset(t, 0, sizeof *t);
    t->stack_base = base;
    t->stack_total = total;
    t->guard_size = ox__sys_page_size();
    return t;
}

void ox__task_free(ox_task *t)
{
    /* A panic nobody joined goes with the record. Relaxed: we are the last
     * owner (ox__task_release's acquire). */
    ox_panic_payload_free(atomic_exchange_explicit(&t->panic, NULL, memory_order_relaxed));
    if (t->blocking) {
        free(t); /* blocking.c: a record without a stack */
        return;
    }
    ox__unwind_free(&t->unwind);
    size_t usable = t->stack_total - t->guard_size - record_size(0);
    bool plain = t->name == NULL && usable >= OX_TASK_DEFAULT_STACK &&
                 usable < OX_TASK_DEFAULT_STACK + ox__sys_page_size();
    if (plain) {
        void *base = t->stack_base;
        size_t total = t->stack_total, guard = t->guard_size;
        memset(t, 0, sizeof *t);
        t->stack_base = base;
        t->stack_total = total;
        t->guard_size = guard;
        ox__spin_lock(&cache.lock);
        bool kept = cache.count < STACK_CACHE;
        if (kept) {
            t->next = cache.head;
            cache.head = t;
            cache.count++;
        }
        ox__spin_unlock(&cache.lock);
        if (kept)
            return;
    }
    ox__sys_stack_unmap(t->stack_base, t->stack_total);
}

/* Called in the fault handler: is addr in the guard page of the task this
 * thread runs? Reads only this thread's worker and its task record. */
static const char *guard_owner(const void *addr)
{
    ox__worker *w = ox__worker_current();
    if (w == NULL || w->current == NULL)
        return NULL;
    const ox_task *t = w->current;
    const char *lo = t->stack_base;
    /* A frame may skip a little past the guard page's bottom edge too. */
    if ((const char *)addr >= lo - (ptrdiff_t)64 * 1024 && (const char *)addr < lo + t->guard_size)
        return t->name ? t->name : "<unnamed>";
    return NULL;
}

void ox__stack_guard_install(void)
{
    ox__sys_guard_handler_install(guard_owner);
}

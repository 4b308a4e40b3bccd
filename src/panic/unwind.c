/* unwind.c - the per-thread unwind record (see unwind.h), catch frames and
 * user cleanups. */
#include "unwind.h"

#include "oxide/panic.h"

#include "../sys/sys.h"
#include "../thread/park.h"
#include "../unit/unit.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ox__catch_frame {
    jmp_buf env;
    ox__catch_frame *prev;
    /* The payload handed from a panic to this frame. In the frame, which
     * lives on the catching stack and so travels with a task that moves
     * to another worker between the setjmp and the panic; a thread-local
     * would be read through an address the compiler may have computed
     * before the setjmp, on the old worker. Volatile: it changes between
     * setjmp and longjmp, and is read after. */
    ox_panic_payload *volatile landing;
};

/* Whether s's entries are a heap array (its slot 0, the bottom, is
 * entries[-1]). */
static bool entries_on_heap(ox__unwind_state *s)
{
    return s->entries != ox__unwind_inline(s) && s->entries != ox__unwind_bottom + 1;
}

static void free_entries(ox__unwind_state *s)
{
    if (entries_on_heap(s))
        free(s->entries - 1);
}

void ox__unwind_grow(void)
{
    ox__unwind_state *s = ox__unwind_current();
    if (s->capacity == 0) { /* the thread's first entry; slot 0 is the bottom from the start */
        s->entries = ox__unwind_inline(s);
        s->capacity = OX__UNWIND_INLINE;
        return;
    }
    ox__unit_exit_arm(); /* so a thread oxide did not start frees it too */
    uint32_t capacity = s->capacity * 2;
    ox__unwind_entry *grown = malloc((1 + (size_t)capacity) * sizeof *grown);
    if (grown == NULL)
        ox_abort("ox__held_push", "out of memory for the held-lock record (%u entries)",
                 s->capacity);
    grown[0] = (ox__unwind_entry){.object = ox__unwind_bottom};
    memcpy(grown + 1, s->entries, s->depth * sizeof *grown);
    free_entries(s);
    s->entries = &grown[1];
    s->capacity = capacity;
}

static void remove_at(ox__unwind_state *s, uint32_t i)
{
    memmove(&s->entries[i], &s->entries[i + 1], (s->depth - i - 1) * sizeof s->entries[0]);
    s->depth--;
}

/* The panic barrier: an entry that a panic pushes on top of the record as
 * it starts (ox__unwind_begin_panic) and removes as it lands. What lies
 * below it was taken before the panic; what lies above, during it (by the
 * hook or a cleanup). A cleanup's entry (NULL object) that never runs:
 * ox_cleanup_pop skips it and the unwind does not pop it. */
static void panic_barrier(void *arg)
{
    (void)arg;
    ox_abort("ox_cleanup_pop", "internal error: the panic barrier ran as a cleanup");
}

static bool is_barrier(const ox__unwind_entry *e)
{
    return e->object == NULL && e->u.cleanup == panic_barrier;
}

/* The barrier's index in s, which holds one (only while panicking). Usually
 * the top entry: only what the hook or a cleanup left lies above it. */
static uint32_t barrier_index(const ox__unwind_state *s)
{
    uint32_t i = s->depth;
    while (!is_barrier(&s->entries[--i]))
        ;
    return i;
}

bool ox__unwind_remove_slow(ox__unwind_state *s, const void *object)
{
    bool taken_before_the_panic = false;
    for (uint32_t i = s->depth; i-- > 0;) {
        const ox__unwind_entry *e = &s->entries[i];
        if (e->object == object) {
            /* Taken before a panic and unlocked by hand in its hook or a
             * cleanup: poisoned, as Rust poisons a guard dropped while
             * panicking (not one taken during the panic: that sits above
             * the barrier). */
            if (taken_before_the_panic && e->u.lock_ops->poison != NULL)
                e->u.lock_ops->poison(e->object);
            remove_at(s, i);
            return true;
        }
        taken_before_the_panic = taken_before_the_panic || is_barrier(e);
    }
    return false;
}

const ox__unwind_entry *ox__held_find(const void *lock)
{
    ox__unwind_state *s = ox__unwind_current();
    for (uint32_t i = s->depth; i-- > 0;) {
        if (s->entries[i].object == lock)
            return &s->entries[i];
    }
    return NULL;
}

bool ox__held_take(const void *lock, ox__held_place *place)
{
    ox__unwind_state *s = &ox__unwind;
    for (uint32_t i = s->depth; i-- > 0;) {
        if (s->entries[i].object == lock) {
            *place = (ox__held_place){.index = i, .level = s->entries[i].level};
            remove_at(s, i);
            return true;
        }
    }
    return false;
}

void ox__held_put_back(ox__held_place place)
{
    ox__unwind_state *s = &ox__unwind;
    ox__unwind_entry e = s->entries[s->depth - 1];
    /* The entries above place were pushed after the lock first was, so
     * their levels are at least its level: the record stays sorted. */
    memmove(&s->entries[place.index + 1], &s->entries[place.index],
            (s->depth - 1 - place.index) * sizeof e);
    e.level = place.level;
    s->entries[place.index] = e;
}

void ox__lock_before_block(const void *lock, const ox__lock_ops *ops, const char *file, int line)
{
    const ox__unwind_entry *held = ox__held_find(lock);
    if (held != NULL)
        ox_abort(ops->kind,
                 "thread '%s' would deadlock: it waits at %s:%d for %s %p, which it already "
                 "holds (locked at %s:%d)",
                 ox__unit_thread_name_or_unnamed(), file ? file : "?", line, held->u.lock_ops->kind,
                 lock, held->file ? held->file : "?", held->line);
    ox__park_note_lock_site(lock, file, line);
    /* Relaxed: see ox__lockdep_on in src/check/lockdep.h. */
    if (OX_UNLIKELY(atomic_load_explicit(&ox__lockdep_on, memory_order_relaxed)))
        ox__unit_lock_before_block(lock, ops, file, line);
}

const ox__unwind_entry *ox__held_entries(uint32_t *count)
{
    const ox__unwind_state *s = ox__unwind_current();
    *count = s->depth;
    return s->entries;
}

/* Pushes a cleanup's entry: a user's, or the panic barrier. */
static void push_cleanup(void (*fn)(void *), void *arg)
{
    ox__unwind_state *s = ox__unwind_current();
    if (s->depth == s->capacity)
        ox__unwind_grow();
    s->entries[s->depth++] =
        (ox__unwind_entry){.object = NULL, .u.cleanup = fn, .arg = arg, .level = s->level};
}

void ox_cleanup_push(void (*fn)(void *), void *arg)
{
    if (fn == NULL)
        ox_abort("ox_cleanup_push", "NULL cleanup function");
    push_cleanup(fn, arg);
}

/* The index of s's newest cleanup (locks and the barrier are skipped), or
 * s->depth if it has none. */
static uint32_t newest_cleanup(const ox__unwind_state *s)
{
    for (uint32_t i = s->depth; i-- > 0;)
        if (!ox__entry_is_lock(&s->entries[i]) && !is_barrier(&s->entries[i]))
            return i;
    return s->depth;
}

static void pop_cleanup_at(ox__unwind_state *s, uint32_t i, bool run)
{
    ox__unwind_entry e = s->entries[i];
    remove_at(s, i);
    if (run)
        e.u.cleanup(e.arg);
}

void ox_cleanup_pop(bool run)
{
    ox__unwind_state *s = ox__unwind_current();
    uint32_t i = newest_cleanup(s);
    if (i == s->depth)
        ox_abort("ox_cleanup_pop", "no cleanup is pushed in this thread");
    pop_cleanup_at(s, i, run);
}

void ox__cleanup_pop_own(void (*fn)(void *), void *arg, bool run)
{
    ox__unwind_state *s = ox__unwind_current();
    uint32_t i = newest_cleanup(s);
    if (i == s->depth || s->entries[i].u.cleanup != fn || s->entries[i].arg != arg)
        ox_abort("ox_cleanup_pop",
                 "a callback that oxide ran (an initialiser, destructor, drop, clone or "
                 "modify function) returned with its cleanups unbalanced: it left one "
                 "pushed, or popped one it had not pushed");
    pop_cleanup_at(s, i, run);
}

static void *free_payload(void *payload)
{
    ox_panic_payload_free(payload);
    return NULL;
}

void ox__panic_payload_hand(ox_panic_payload *payload, ox_panic_payload **want)
{
    if (want != NULL)
        *want = payload;
    else
        ox_panic_payload_free(payload);
}

void ox__panic_payload_free_or_abort(ox_panic_payload *payload, const char *who, const char *what)
{
    ox_panic_payload *escaped; /* left as it is: the process aborts */
    if (ox_catch_unwind(free_payload, payload, NULL, &escaped) == OX_EPANICKED)
        ox_abort(who, "%s", what);
}

int ox_catch_unwind(void *(*fn)(void *), void *arg, void **result, ox_panic_payload **payload)
{
    if (fn == NULL)
        ox_abort("ox_catch_unwind", "NULL function");
    ox__unwind_state *s = ox__unwind_current();
    if (s->level == UINT16_MAX)
        ox_abort("ox_catch_unwind", "more than %u nested catch frames", UINT16_MAX);
    /* Not zeroed as a whole: the jmp_buf is most of it, and setjmp fills
     * it (zeroing it was a third of a task spawn's catch). */
    ox__catch_frame frame;
    frame.prev = s->catch_top;
    frame.landing = NULL;
    if (setjmp(frame.env) != 0) {
        /* Landed: ox__unwind_and_land already released this region's
         * entries and popped the frame. */
        ox__panic_payload_hand(frame.landing, payload);
        return OX_EPANICKED;
    }
    s->catch_top = &frame;
    s->level++;
    void *r = fn(arg);
    s = ox__unwind_current(); /* fn may have blocked: a task may have moved */
    /* Returned normally. Entries fn left behind (a lock it still holds)
     * now belong to the enclosing region: keep levels sorted. */
    for (uint32_t i = s->depth; i-- > 0 && s->entries[i].level == s->level;)
        s->entries[i].level--;
    s->level--;
    s->catch_top = frame.prev;
    if (result != NULL)
        *result = r;
    return 0;
}

void ox__unwind_begin_panic(void)
{
    ox__unwind_current()->panicking = 1;
    push_cleanup(panic_barrier, NULL);
}

/* Releases a lock's entry for the unwind: poisoned if taken before the
 * panic (and the kind poisons), not if taken during it (Rust: a guard made
 * while panicking does not poison). */
static void release_unwound(const ox__unwind_entry *e, bool taken_before_the_panic)
{
    const ox__lock_ops *ops = e->u.lock_ops;
    if (taken_before_the_panic && ops->poison != NULL)
        ops->poison(e->object);
    ops->release(e->object, e->tag);
}

void ox__unwind_and_land(ox_panic_payload *payload)
{
    ox__unwind_state *s = ox__unwind_current();
    /* Newest first: what the hook or a cleanup left above the barrier, then
     * the region's entries below it, with the barrier kept on top of them.
     * So a cleanup's unlock by hand of a lock taken before the panic finds
     * the barrier above the lock's entry (the unlock fast paths look only at
     * the top entry, and ox__unwind_remove_slow poisons it), and the locks a
     * cleanup takes go above the barrier. Each entry leaves the record
     * before it runs, so a cleanup may itself lock and unlock. */
    for (;;) {
        uint32_t barrier = barrier_index(s);
        ox__unwind_entry e;
        bool taken_before_the_panic = barrier + 1 == s->depth;
        if (!taken_before_the_panic) {
            e = s->entries[--s->depth];
        } else if (barrier > 0 && s->entries[barrier - 1].level >= s->level) {
            e = s->entries[barrier - 1];
            remove_at(s, barrier - 1);
        } else {
            break;
        }
        if (ox__entry_is_lock(&e))
            release_unwound(&e, taken_before_the_panic);
        else
            e.u.cleanup(e.arg);
        s = ox__unwind_current(); /* a cleanup may block: a task may move */
    }
    s->depth--; /* the barrier */
    s->panicking = 0;
    ox__catch_frame *frame = s->catch_top;
    if (frame == NULL) {
        ox__panic_payload_free_or_abort(payload, "panic",
                                        "the drop of the panic payload that reached the top "
                                        "of the thread panicked");
        if (ox__sys_is_main_thread() && !ox__unit_process_exiting()) {
            fflush(NULL);
            exit(101);
        }
        fprintf(stderr, "oxide: a panic reached the top of a thread that has no catch point "
                        "(a thread oxide did not start, or a thread-local destructor); "
                        "aborting\n");
        abort();
    }
    s->catch_top = frame->prev;
    s->level--;
    frame->landing = payload;
    longjmp(frame->env, 1);
}

/* Leaves s empty: its header only, field by field. The inline entries
 * keep their old bytes: they are read only below depth, and clearing them
 * cost a task spawn and join 8% of its time. */
static void empty_header(ox__unwind_state *s)
{
    s->entries = ox__unwind_bottom + 1;
    s->depth = 0;
    s->capacity = 0;
    s->level = 0;
    s->panicking = 0;
    s->catch_top = NULL;
}

/* Moves the record in *from (the live one or a saved one) to *to, which
 * must be free, and leaves *from empty. Entries in inline storage are
 * copied (only those in use); a grown array moves by pointer. */
static void move_record(ox__unwind_state *to, ox__unwind_state *from)
{
    /* Field by field: the inline array is copied only as far as it is in
     * use, as this runs twice per task switch. */
    to->entries = from->entries;
    to->depth = from->depth;
    to->capacity = from->capacity;
    to->level = from->level;
    to->panicking = from->panicking;
    to->catch_top = from->catch_top;
    if (from->entries == ox__unwind_inline(from)) {
        memcpy(ox__unwind_inline(to), from->entries, from->depth * sizeof from->entries[0]);
        to->entries = ox__unwind_inline(to);
    }
    empty_header(from);
}

void ox__unwind_switch(ox__unwind_state *save_live_to, ox__unwind_state *load_from)
{
    ox__unwind_state *live = ox__unwind_current();
    move_record(save_live_to, live);
    move_record(live, load_from);
}

void ox__unwind_free(ox__unwind_state *s)
{
    free_entries(s);
    empty_header(s);
}

/* The held record's part of a thread's end (unit.h): frees what the
 * record allocated. With check_locks, first aborts if the thread still
 * holds an oxide lock (it would stay locked forever); not at process exit,
 * where exiting with a lock held is legal. */
static void release_record(bool check_locks)
{
    ox__unwind_state *s = ox__unwind_current();
    for (uint32_t i = 0; check_locks && i < s->depth; i++) {
        const ox__unwind_entry *e = &s->entries[i];
        if (ox__entry_is_lock(e))
            ox_abort("thread exit",
                     "thread '%s' exits holding %s %p (locked at %s:%d): it would stay locked "
                     "forever",
                     ox__unit_thread_name_or_unnamed(), e->u.lock_ops->kind, e->object,
                     e->file ? e->file : "?", e->line);
    }
    /* Cleanups still pushed at exit are simply forgotten, like
     * pthread_cleanup_push records of a returning thread. */
    free_entries(s);
    s->entries = ox__unwind_bottom + 1;
    s->depth = 0;
    s->capacity = 0;
}

/* Before main, as every part's registration (unit.h). */
__attribute__((constructor(101))) static void register_release_record(void)
{
    ox__unit_exit_register(OX__UNIT_EXIT_RECORD, release_record);
}

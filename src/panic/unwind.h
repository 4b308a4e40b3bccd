/* unwind.h - the per-thread unwind record: held oxide locks and user
 * cleanups, in one stack, in the order they were taken or registered.
 *
 * Every oxide lock pushes an entry when acquired and removes it when
 * released. A panic walks the stack from the top down to its catch point,
 * releasing (and poisoning, where the lock kind poisons) each lock and running
 * each user cleanup - exact reverse order. The same record tells an unlock
 * whether the caller holds the lock (misuse aborts), lets a lock detect
 * self-deadlock on its slow path, and feeds the lock-order checker.
 *
 * Entries carry the catch level (number of active ox_catch_unwind frames)
 * at which they were pushed; a panic unwinds the entries whose level is at
 * least that of the frame it lands in. Locks may be released in any order,
 * so entries are removed from the middle when needed; levels stay sorted
 * because a frame that returns normally folds its leftover entries into the
 * enclosing level.
 *
 * A panic pushes a barrier entry (a cleanup's entry that never runs) on
 * top of the record as it starts, and removes it as it lands: the locks
 * below it were taken before the panic, those above it during the panic,
 * by the hook or a cleanup. The unwind poisons only the former, and so
 * does an unlock by hand in the hook or a cleanup, which leaves the fast
 * path because the barrier is on top (ox__unwind_remove_slow), as Rust
 * poisons a guard dropped while panicking unless it was made then.
 */
#ifndef OX_UNWIND_H
#define OX_UNWIND_H

#include "oxide/base.h"

/* The record's layout and its hot entry points, ox__held_push,
 * ox__held_push_try and ox__held_remove, live in the private public header
 * oxide/unwind_record.h so that the lock fast paths inline into the caller;
 * the lock-order checker's hook is declared there too. */
#include "oxide/unwind_record.h"

/* The entry for lock if the calling thread holds it, else NULL. O(depth):
 * for slow paths (self-deadlock detection) and diagnostics. */
const ox__unwind_entry *ox__held_find(const void *lock);

/* Where a lock's entry sat in the record, for a wait that lets the lock go
 * and takes it back (a condvar wait). */
typedef struct ox__held_place {
    uint32_t index;
    uint16_t level;
} ox__held_place;

/* Removes lock's entry and returns where it was; false if the calling
 * thread does not hold lock. */
bool ox__held_take(const void *lock, ox__held_place *place);

/* Moves the newest entry (the lock just pushed again by ox__held_push) back
 * to place, with its old catch level: a lock re-taken inside a deeper
 * ox_catch_unwind still belongs to the level that first took it, so a panic
 * there neither releases nor poisons it (Rust: the guard is owned by the
 * outer frame). Nothing else may have been pushed or removed since
 * ox__held_take. */
void ox__held_put_back(ox__held_place place);

/* Every lock's slow path calls this before it blocks. If the calling thread
 * already holds the lock it would wait forever: aborts naming the lock and
 * both sites (Rust leaves this to deadlock or panic). The lock-order checker
 * hooks in here too, so a potential deadlock is reported before it
 * happens. file may be NULL. */
void ox__lock_before_block(const void *lock, const ox__lock_ops *ops, const char *file, int line);

/* The calling thread's held entries, bottom first (for the lock-order
 * checker and diagnostics). */
const ox__unwind_entry *ox__held_entries(uint32_t *count);

/* ox_cleanup_pop for oxide's own cleanup around a user callback (a
 * thread-local's initialiser, a channel's destructor...): checks that the
 * newest cleanup is still (fn, arg), the one pushed before the call, and
 * aborts if not. A callback that left a cleanup pushed, or popped one more
 * than it pushed, would otherwise make the plain pop take the wrong entry
 * and leave ours, whose arg is often on a stack frame about to be gone. */
void ox__cleanup_pop_own(void (*fn)(void *), void *arg, bool run);

/* Frees payload where a panic from its drop function has nowhere to go:
 * the drop runs under a catch frame, not panicking, and a panic that
 * escapes it (after the hook has printed it) aborts with
 * "oxide: WHO: WHAT". As Rust's runtime aborts when the drop of the panic
 * payload of main, or of a scoped thread nobody joined, panics. */
struct ox_panic_payload;
void ox__panic_payload_free_or_abort(struct ox_panic_payload *payload, const char *who,
                                     const char *what);

/* Hands payload (may be NULL) to the out parameter want of a join or of
 * ox_catch_unwind, or frees it when want is NULL: then a drop that panics
 * is an ordinary panic in the caller, as a Rust caller's drop of the Err.
 * A join calls this last, once its handle and the record's reference are
 * given up. */
void ox__panic_payload_hand(struct ox_panic_payload *payload, struct ox_panic_payload **want);

/* ---- used by the task runtime ----
 * A task's record is its own: a worker moves the live (thread-local)
 * record out to save_live_to and the task's in from load_from when it
 * starts running a task, and the other way round when the task stops. */
void ox__unwind_switch(ox__unwind_state *save_live_to, ox__unwind_state *load_from);
/* Frees what a saved record allocated (a finished task's) and empties it;
 * the inline entries keep their old bytes (never read at depth 0). */
void ox__unwind_free(ox__unwind_state *s);

/* ---- used by panic.c ---- */

/* Marks the calling thread as panicking and pushes the panic barrier:
 * before the panic hook runs. */
void ox__unwind_begin_panic(void);

/* Releases and runs the entries of the region being unwound, then jumps to
 * the innermost catch frame with payload (taken). With no catch frame: exits
 * the process with code 101 in the main thread, aborts elsewhere. */
_Noreturn void ox__unwind_and_land(struct ox_panic_payload *payload);

#endif

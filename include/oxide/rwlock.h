/* oxide/rwlock.h - ox_rwlock: many readers or one writer, with poisoning,
 * as Rust's std::sync::RwLock, plus a downgrade from write to read as
 * parking_lot has.
 *
 * 8 bytes, valid when zero-initialised (or OX_RWLOCK_INIT).
 *
 * Writer-preferring: once a writer waits, new readers wait behind it, so a
 * stream of overlapping readers cannot starve a writer. As a consequence a
 * thread that already holds a read lock and asks for another one while a
 * writer waits would deadlock; oxide detects that (the thread holds the lock
 * it would wait for) and aborts with a message, as it does for a thread
 * write-locking a lock it holds in any mode.
 *
 * Poisoning: a panic that unwinds through a write lock releases and poisons
 * it; one that unwinds through a read lock only releases it (readers cannot
 * have broken the data). Every lock function then returns OX_EPOISONED with
 * the lock held, until ox_rwlock_clear_poison().
 *
 * Unlocking: ox_rwlock_read_unlock / ox_rwlock_write_unlock say the mode and
 * abort if the calling thread does not hold the lock in that mode;
 * ox_rwlock_unlock releases whichever mode the thread holds (the most recent
 * acquisition, if it holds several read locks). All abort if the thread does
 * not hold the lock.
 *
 * The lock functions are macros that record the call site; real functions of
 * the same names exist too.
 */
#ifndef OXIDE_RWLOCK_H
#define OXIDE_RWLOCK_H

#include "base.h"

#include <stdatomic.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ox_rwlock {
    _Atomic uint32_t state;         /* readers, writer, waiting and poison bits: rwlock.c */
    _Atomic uint32_t writer_notify; /* futex word writers sleep on */
} ox_rwlock;

#define OX_RWLOCK_INIT                                                                             \
    {                                                                                              \
        0, 0                                                                                       \
    }

void ox_rwlock_init(ox_rwlock *l);
/* Aborts if l is locked in any mode. Frees nothing. */
void ox_rwlock_destroy(ox_rwlock *l);

/* Shared access. Blocks while a writer holds or waits for the lock. Returns
 * 0 or OX_EPOISONED (held either way). */
#define ox_rwlock_read(l) ox_rwlock_read_at((l), __FILE__, __LINE__)
int ox_rwlock_read_at(ox_rwlock *l, const char *file, int line);
int(ox_rwlock_read)(ox_rwlock *l);

/* Exclusive access. Blocks while anyone holds the lock. 0 or OX_EPOISONED. */
#define ox_rwlock_write(l) ox_rwlock_write_at((l), __FILE__, __LINE__)
int ox_rwlock_write_at(ox_rwlock *l, const char *file, int line);
int(ox_rwlock_write)(ox_rwlock *l);

/* Non-blocking forms: 0 / OX_EPOISONED (held) or OX_EBUSY (not held). */
#define ox_rwlock_try_read(l)  ox_rwlock_try_read_at((l), __FILE__, __LINE__)
#define ox_rwlock_try_write(l) ox_rwlock_try_write_at((l), __FILE__, __LINE__)
int ox_rwlock_try_read_at(ox_rwlock *l, const char *file, int line);
int ox_rwlock_try_write_at(ox_rwlock *l, const char *file, int line);
int(ox_rwlock_try_read)(ox_rwlock *l);
int(ox_rwlock_try_write)(ox_rwlock *l);

/* Timed forms: as above, or OX_ETIMEDOUT (not held) once the timeout or the
 * deadline (CLOCK_MONOTONIC) passes. A negative timeout returns OX_EINVAL
 * without trying; a huge one waits forever. */
#define ox_rwlock_read_timeout(l, t)   ox_rwlock_read_timeout_at((l), (t), __FILE__, __LINE__)
#define ox_rwlock_write_timeout(l, t)  ox_rwlock_write_timeout_at((l), (t), __FILE__, __LINE__)
#define ox_rwlock_read_deadline(l, d)  ox_rwlock_read_deadline_at((l), (d), __FILE__, __LINE__)
#define ox_rwlock_write_deadline(l, d) ox_rwlock_write_deadline_at((l), (d), __FILE__, __LINE__)
int ox_rwlock_read_timeout_at(ox_rwlock *l, ox_nanos timeout, const char *file, int line);
int ox_rwlock_write_timeout_at(ox_rwlock *l, ox_nanos timeout, const char *file, int line);
int ox_rwlock_read_deadline_at(ox_rwlock *l, ox_instant deadline, const char *file, int line);
int ox_rwlock_write_deadline_at(ox_rwlock *l, ox_instant deadline, const char *file, int line);
int(ox_rwlock_read_timeout)(ox_rwlock *l, ox_nanos timeout);
int(ox_rwlock_write_timeout)(ox_rwlock *l, ox_nanos timeout);
int(ox_rwlock_read_deadline)(ox_rwlock *l, ox_instant deadline);
int(ox_rwlock_write_deadline)(ox_rwlock *l, ox_instant deadline);

/* Releases a read lock / the write lock / whichever this thread holds. */
void ox_rwlock_read_unlock(ox_rwlock *l);
void ox_rwlock_write_unlock(ox_rwlock *l);
void ox_rwlock_unlock(ox_rwlock *l);

/* Turns the calling thread's write lock into a read lock without letting
 * any writer in between, and wakes the readers waiting (unless a writer is
 * waiting too: then they stay behind it). Aborts if the thread does not hold
 * l for writing. */
void ox_rwlock_downgrade(ox_rwlock *l);

bool ox_rwlock_is_poisoned(const ox_rwlock *l);
void ox_rwlock_clear_poison(ox_rwlock *l);

#ifdef __cplusplus
}
#endif
#endif

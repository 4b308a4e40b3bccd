/* oxide/sync.h - Rust's std::sync primitives: Mutex, RwLock, Condvar, Once,
 * OnceLock, LazyLock and Barrier (Arc is in arc.h, channels in chan.h). */
#ifndef OXIDE_SYNC_H
#define OXIDE_SYNC_H

#include "barrier.h" /* IWYU pragma: export */
#include "condvar.h" /* IWYU pragma: export */
#include "mutex.h"   /* IWYU pragma: export */
#include "once.h"    /* IWYU pragma: export */
#include "rwlock.h"  /* IWYU pragma: export */

#endif

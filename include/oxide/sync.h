/* oxide/sync.h - Rust's std::sync primitives: Mutex, RwLock, Condvar, Once,
 * OnceLock, LazyLock and Barrier, and Tokio's Semaphore and Notify (Arc is in
 * arc.h, channels in chan.h, watch and broadcast in watch.h and broadcast.h). */
#ifndef OXIDE_SYNC_H
#define OXIDE_SYNC_H

#include "barrier.h"   /* IWYU pragma: export */
#include "condvar.h"   /* IWYU pragma: export */
#include "mutex.h"     /* IWYU pragma: export */
#include "notify.h"    /* IWYU pragma: export */
#include "once.h"      /* IWYU pragma: export */
#include "rwlock.h"    /* IWYU pragma: export */
#include "semaphore.h" /* IWYU pragma: export */

#endif

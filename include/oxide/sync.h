/* oxide/sync.h - the locks of Rust's std::sync: Mutex, RwLock, Condvar.
 * (Once, OnceLock and Barrier will be added here: once.h, barrier.h.) */
#ifndef OXIDE_SYNC_H
#define OXIDE_SYNC_H

#include "condvar.h" /* IWYU pragma: export */
#include "mutex.h"   /* IWYU pragma: export */
#include "rwlock.h"  /* IWYU pragma: export */

#endif

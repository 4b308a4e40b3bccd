/* oxide: Rust's std::thread and std::sync for C11. Include this one header. */
#ifndef OXIDE_H
#define OXIDE_H

#include "oxide/version.h"   /* IWYU pragma: export */
#include "oxide/base.h"      /* IWYU pragma: export */
#include "oxide/check.h"     /* IWYU pragma: export */
#include "oxide/panic.h"     /* IWYU pragma: export */
#include "oxide/thread.h"    /* IWYU pragma: export */
#include "oxide/tls.h"       /* IWYU pragma: export */
#include "oxide/sync.h"      /* IWYU pragma: export */
#include "oxide/arc.h"       /* IWYU pragma: export */
#include "oxide/chan.h"      /* IWYU pragma: export */
#include "oxide/broadcast.h" /* IWYU pragma: export */
#include "oxide/watch.h"     /* IWYU pragma: export */
#include "oxide/task.h"      /* IWYU pragma: export */
#include "oxide/io.h"        /* IWYU pragma: export */
#include "oxide/signal.h"    /* IWYU pragma: export */

#endif

/* error.c - naming error codes, and the one way oxide reports misuse. */
#include "oxide/base.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *ox_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
    case OX_EPOISONED:
        return "poisoned: a thread panicked while holding the lock";
    case OX_EDISCONNECTED:
        return "disconnected: the other side of the channel is gone";
    case OX_ETIMEDOUT:
        return "timed out";
    case OX_EEMPTY:
        return "empty: nothing to receive";
    case OX_EFULL:
        return "full: no room to send";
    case OX_EBUSY:
        return "busy: the operation would block";
    case OX_EPANICKED:
        return "panicked";
    case OX_EINVAL:
        return "invalid argument";
    case OX_EDEADLK:
        return "resource deadlock avoided";
    case OX_EDESTROYED:
        return "thread-local accessed during or after its destruction";
    case OX_ENAMETOOLONG:
        return "thread name too long";
    case OX_EALREADY:
        return "already initialised";
    case OX_ECANCELED:
        return "task aborted";
    case OX_ECLOSED:
        return "closed: the semaphore was closed";
    case OX_ELAGGED:
        return "lagged: the receiver fell behind and missed messages";
    case OX_EEOF:
        return "unexpected end of file: the stream ended early";
    case OX_ENOTFOUND:
        return "name not found: the host or service does not resolve";
    default:
        /* errno values: glibc and musl return static strings for known codes. */
        return code > 0 && code < 10000 ? strerror(code) : "unknown oxide error code";
    }
}

void ox_abort(const char *function, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "oxide: %s: ", function);
    /* clang-analyzer 14 misreads va_start in a _Noreturn variadic function. */
    vfprintf(stderr, fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    abort();
}

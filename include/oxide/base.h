/* oxide/base.h - error codes, time and the attributes every module shares.
 *
 * Fallible oxide functions return int: 0 on success, one of the OX_E* codes
 * below, or an errno value when the operating system refused. The OX_E* codes
 * start at 10000 so that they never collide with errno values;
 * ox_strerror() names both kinds.
 */
#ifndef OXIDE_BASE_H
#define OXIDE_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- C and C++ ----
 * The headers compile as C11 and as C++17/20 (g++, clang++). C gets the
 * inline fast paths, which use C11 atomics and _Thread_local; C++ gets the
 * same API through the library's out-of-line functions, so a C++ program
 * never touches an atomic field. A struct's atomic fields are plain fields
 * of the same size and alignment in C++ (tests/cxx/ checks that the layouts
 * agree), which also makes the static initialisers (OX_MUTEX_INIT ...)
 * constant expressions in both languages. */
#ifdef __cplusplus
#define OX__ATOMIC(T)        alignas(sizeof(T)) T
#define OX__ALIGNAS(n)       alignas(n)
#define OX__NORETURN         [[noreturn]]
#define OX__THREAD_LOCAL     thread_local
#define OX__COMPOUND(T, ...) (T{__VA_ARGS__})
#define OX__ZEROED(T)        (T{})
#else
#define OX__ATOMIC(T)        _Atomic T
#define OX__ALIGNAS(n)       _Alignas(n)
#define OX__NORETURN         _Noreturn
#define OX__THREAD_LOCAL     _Thread_local
#define OX__COMPOUND(T, ...) ((T){__VA_ARGS__})
#define OX__ZEROED(T)        ((T){0})
#endif

/* Compiler hints, empty where the compiler has none: OX_PRINTF checks a
 * printf-style format (its argument indexes), OX_LIKELY / OX_UNLIKELY say
 * which way a branch usually goes, OX_COLD marks a rarely called function,
 * OX_NORETURN one that never returns. */
#if defined(__GNUC__) || defined(__clang__)
#define OX_PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#define OX_LIKELY(x)                    __builtin_expect(!!(x), 1)
#define OX_UNLIKELY(x)                  __builtin_expect(!!(x), 0)
#define OX_COLD                         __attribute__((cold, noinline))
/* Besides OX__NORETURN, for analysers (cppcheck) that only read the attribute. */
#define OX_NORETURN __attribute__((noreturn))
#else
#define OX_NORETURN
#define OX_PRINTF(fmt_index, first_arg)
#define OX_LIKELY(x)   (x)
#define OX_UNLIKELY(x) (x)
#define OX_COLD
#endif

/* The thread-locals that every lock touches (the held-lock record, the
 * current thread) use the initial-exec TLS model: a direct thread-pointer
 * access, in the library and in the programs that inline the fast paths,
 * instead of a __tls_get_addr call per lock. The cost: such a library must
 * be loaded at program start (linked, or LD_PRELOAD), because dlopen() of a
 * library with initial-exec TLS fails ("cannot allocate memory in static
 * TLS block") once the static TLS space is used up, and the record alone is
 * larger than glibc's reserve. A library built with DLOPEN_SAFE=1 (which
 * defines OX_DLOPEN_SAFE, and so must its users: its oxide.pc and CMake
 * package say so) uses the general model instead and may be dlopen'ed;
 * each lock then pays a call, and the task runtime is not offered. */
#if defined(OX_DLOPEN_SAFE) || !(defined(__GNUC__) || defined(__clang__))
#define OX__TLS_FAST
#else
#define OX__TLS_FAST __attribute__((tls_model("initial-exec")))
#endif

/* OX_MUST_USE marks a function whose result must not be dropped: a lock's
 * OX_EPOISONED, a send that failed and left the value with the caller, a
 * join's panic, a new reference that would leak (Rust's #[must_use] on
 * Result and on Arc::downgrade / Weak::upgrade). The compiler warns when a
 * call's result is ignored. To ignore one on purpose, say so: (void)!call
 * (gcc does not accept a plain (void) cast for this attribute in C; C++'s
 * [[nodiscard]] and clang accept either). */
#if defined(__cplusplus) && __cplusplus >= 201703L
#define OX_MUST_USE [[nodiscard]]
#elif defined(__GNUC__) || defined(__clang__)
#define OX_MUST_USE __attribute__((warn_unused_result))
#else
#define OX_MUST_USE
#endif

/* Every public header puts its declarations between OX__API_BEGIN and
 * OX__API_END: liboxide is built with -fvisibility=hidden, so what a public
 * header declares is exported and nothing else is (abi/liboxide.map,
 * checked against abi/liboxide.symbols by make check). */
#if defined(__GNUC__) || defined(__clang__)
#define OX__API_BEGIN _Pragma("GCC visibility push(default)")
#define OX__API_END   _Pragma("GCC visibility pop")
#else
#define OX__API_BEGIN
#define OX__API_END
#endif

OX__API_BEGIN

enum {
    OX_EPOISONED = 10000, /* acquired, but a panic poisoned it (Rust: PoisonError) */
    OX_EDISCONNECTED,     /* the other side of a channel is gone */
    OX_ETIMEDOUT,         /* the timeout or deadline passed first */
    OX_EEMPTY,            /* nothing to receive right now */
    OX_EFULL,             /* no room to send right now */
    OX_EBUSY,             /* a try_ operation would have blocked */
    OX_EPANICKED,         /* the thread or closure panicked; a payload is handed over */
    OX_EINVAL,            /* an argument is out of range (e.g. a zero stack size) */
    OX_EDEADLK,           /* the call would wait for itself (a thread joining itself) */
    OX_EDESTROYED,        /* a thread-local accessed during or after its destruction */
    OX_ENAMETOOLONG,      /* a thread name longer than OX_THREAD_NAME_MAX */
    OX_EALREADY,          /* a OnceLock already holds a value */
    OX_ECANCELED,         /* the task was aborted (a cancellation point) */
    OX_ECLOSED,           /* the semaphore was closed (Tokio: AcquireError) */
    OX_ELAGGED,           /* a broadcast receiver fell behind; messages were skipped */
    OX_EEOF,              /* the stream ended before the bytes asked for (read_exact) */
    OX_ENOTFOUND,         /* a host or service name that does not resolve */
};

/* A printable description of an oxide code or errno value. Never NULL;
 * the string is static. */
const char *ox_strerror(int code);

#ifdef OX_CHAOS
/* The chaos build's perturbation (src/check/chaos.h), which the inline
 * fast paths call between two steps that a rival could slip between. */
void ox__chaos_point(void);
#endif

/* Prints "<function>: <message>" to stderr and aborts. Used for misuse that
 * Rust rejects at compile time (joining twice, unlocking a lock not held). */
OX__NORETURN void ox_abort(const char *function, const char *fmt, ...) OX_PRINTF(2, 3) OX_NORETURN;

/* ---- time ----
 * Durations are signed 64-bit nanoseconds (about 292 years); a negative
 * timeout is an error (OX_EINVAL), a huge one saturates to "never".
 * Instants are points on CLOCK_MONOTONIC, kept in a struct so that a
 * duration cannot be passed where a deadline is expected. */
typedef int64_t ox_nanos;

/* A duration of n nanoseconds, microseconds, milliseconds, seconds. */
#define OX_NANOS(n)  ((ox_nanos)(n))
#define OX_MICROS(n) ((ox_nanos)(n)*1000)
#define OX_MILLIS(n) ((ox_nanos)(n)*1000000)
#define OX_SECS(n)   ((ox_nanos)(n)*1000000000)

/* A point in time on CLOCK_MONOTONIC (ox_instant_now, ox_instant_after). */
typedef struct ox_instant {
    int64_t ns; /* nanoseconds on CLOCK_MONOTONIC */
} ox_instant;

/* The deadline that never comes. */
#define OX_INSTANT_NEVER OX__COMPOUND(ox_instant, INT64_MAX)

/* Now, on the monotonic clock. */
ox_instant ox_instant_now(void);

/* now + d, saturating at OX_INSTANT_NEVER. d must be >= 0. */
ox_instant ox_instant_after(ox_nanos d);

/* b - a in nanoseconds (may be negative). */
static inline ox_nanos ox_instant_diff(ox_instant b, ox_instant a)
{
    return b.ns - a.ns;
}

OX__API_END

#ifdef __cplusplus
}
#endif
#endif

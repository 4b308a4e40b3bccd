/* oxide/tls.h - thread-locals with lazy initialisation and destructors
 * (Rust's thread_local!).
 *
 *   static void counter_init(int *v) { *v = 1; }
 *   OX_THREAD_LOCAL(counter, int, counter_init, NULL);
 *   ...
 *   int *c = OX_TLS_GET(counter);   // initialised on first use in each thread
 *
 * Semantics:
 *   - The value starts zeroed; init (may be NULL) runs on the first access in
 *     each thread. If init panics, the panic goes on and the thread-local
 *     stays uninitialised (zeroed again): the next access runs init again,
 *     as in Rust. The destructor (may be NULL) runs when that thread exits,
 *     in reverse order of initialisation, whether the thread returned or
 *     panicked. A destructor may use other thread-locals; one first touched
 *     during destruction is initialised and destroyed in turn.
 *   - Accessing a thread-local while its destructor runs, or after, is
 *     reported: OX_TLS_TRY_GET returns OX_EDESTROYED, OX_TLS_GET aborts with
 *     a message naming the variable. It never hands out a dangling value.
 *   - Threads oxide did not start run their destructors at pthread exit.
 *   - The main thread runs its destructors when the process exits through
 *     exit() or a return from main (Rust skips them: rust-lang/rust#28129).
 *     If another thread calls exit(), that thread's destructors run and the
 *     main thread's do not (it may still be using them).
 *   - ox_thread_current() works inside a destructor and names the exiting
 *     thread (rust-lang/rust#116933).
 */
#ifndef OXIDE_TLS_H
#define OXIDE_TLS_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif
OX__API_BEGIN

/* The life of one thread-local in one thread. */
enum ox__tls_state {
    OX__TLS_UNINIT = 0,
    OX__TLS_INITIALISING,
    OX__TLS_ALIVE,
    OX__TLS_DESTROYING,
    OX__TLS_DESTROYED,
};

/* A thread's registration of one initialised thread-local, linked into that
 * thread's destructor list. Lives inside the thread-local itself, so
 * registration never allocates. */
typedef struct ox__tls_node {
    struct ox__tls_node *next;
    const struct ox__tls_key *key;
    unsigned char *state;
    void *value;
} ox__tls_node;

/* What is the same for every thread: one per declaration. */
typedef struct ox__tls_key {
    const char *name;
    size_t size; /* of the value: zeroed again when init panics */
    void (*init)(void *value);
    void (*destroy)(void *value);
} ox__tls_key;

/* Slow path of the accessors: first use in this thread, or after
 * destruction. Returns 0 and the value, or OX_EDESTROYED. */
int ox__tls_access(const ox__tls_key *key, unsigned char *state, void *value, ox__tls_node *node,
                   void **out);
OX__NORETURN void ox__tls_access_failed(const ox__tls_key *key);

/* Declares a thread-local `name` of type `type`, private to the translation
 * unit (share it through a function). init and destroy take a `type *` and
 * may be NULL. Follow the macro with a semicolon. */
#define OX_THREAD_LOCAL(name, type, init, destroy)                                                 \
    static OX__THREAD_LOCAL struct {                                                               \
        unsigned char state;                                                                       \
        ox__tls_node node;                                                                         \
        type value;                                                                                \
    } name##__ox_slot;                                                                             \
    static void name##__ox_init(void *v)                                                           \
    {                                                                                              \
        void (*fn)(type *) = (init);                                                               \
        if (fn)                                                                                    \
            fn((type *)v);                                                                         \
    }                                                                                              \
    static void name##__ox_destroy(void *v)                                                        \
    {                                                                                              \
        void (*fn)(type *) = (destroy);                                                            \
        if (fn)                                                                                    \
            fn((type *)v);                                                                         \
    }                                                                                              \
    static const ox__tls_key name##__ox_key = {#name, sizeof(type), name##__ox_init,               \
                                               name##__ox_destroy};                                \
    OX_MUST_USE static inline int name##__ox_try_get(type **out)                                   \
    {                                                                                              \
        if (OX_LIKELY(name##__ox_slot.state == OX__TLS_ALIVE)) {                                   \
            *out = &name##__ox_slot.value;                                                         \
            return 0;                                                                              \
        }                                                                                          \
        void *v = NULL;                                                                            \
        int rc = ox__tls_access(&name##__ox_key, &name##__ox_slot.state, &name##__ox_slot.value,   \
                                &name##__ox_slot.node, &v);                                        \
        *out = (type *)v;                                                                          \
        return rc;                                                                                 \
    }                                                                                              \
    static inline type *name##__ox_get(void)                                                       \
    {                                                                                              \
        type *v;                                                                                   \
        if (OX_UNLIKELY(name##__ox_try_get(&v) != 0))                                              \
            ox__tls_access_failed(&name##__ox_key);                                                \
        return v;                                                                                  \
    }                                                                                              \
    static inline int name##__ox_try_get(type **out)

/* The calling thread's instance of `name`, initialised if this is the first
 * use. Aborts if it is being or has been destroyed. */
#define OX_TLS_GET(name) (name##__ox_get())

/* As OX_TLS_GET, but returns 0 and stores the pointer in *out, or returns
 * OX_EDESTROYED and stores NULL. */
#define OX_TLS_TRY_GET(name, out) (name##__ox_try_get(out))

OX__API_END

#ifdef __cplusplus
}
#endif
#endif

/* The size, alignment and field offsets of oxide's public structs, as the C
 * compiler sees them (layout.c) and as the C++ compiler sees them
 * (test_cxx.cpp): in C++ the atomic fields are plain fields (oxide/base.h),
 * and this is what proves the two layouts agree. */
#ifndef OX_TEST_CXX_LAYOUT_H
#define OX_TEST_CXX_LAYOUT_H

#include <oxide.h>

#include <stddef.h>

/* X(type) for a whole struct, F(type, field) for a field's offset. */
#define OX_TEST_LAYOUT(X, F)                                                                       \
    X(ox_instant)                                                                                  \
    X(ox_panic_payload)                                                                            \
    X(ox_join_handle)                                                                              \
    X(ox_thread_builder)                                                                           \
    X(ox_scoped_handle)                                                                            \
    X(ox_mutex)                                                                                    \
    F(ox_mutex, flags)                                                                             \
    X(ox_rwlock)                                                                                   \
    F(ox_rwlock, writer_notify)                                                                    \
    X(ox_condvar)                                                                                  \
    X(ox_once)                                                                                     \
    X(ox_once_state)                                                                               \
    X(ox_once_lock)                                                                                \
    F(ox_once_lock, value)                                                                         \
    X(ox_lazy_lock)                                                                                \
    F(ox_lazy_lock, init)                                                                          \
    F(ox_lazy_lock, arg)                                                                           \
    X(ox_barrier)                                                                                  \
    F(ox_barrier, n)                                                                               \
    X(ox_channel_options)                                                                          \
    F(ox_channel_options, destroy)                                                                 \
    X(ox_select_op)                                                                                \
    F(ox_select_op, buf)                                                                           \
    X(ox_lock_class)                                                                               \
    X(ox_semaphore)                                                                                \
    F(ox_semaphore, waiters)                                                                       \
    X(ox_notify)                                                                                   \
    F(ox_notify, waiters)                                                                          \
    X(ox_notified)                                                                                 \
    F(ox_notified, generation)                                                                     \
    X(ox_broadcast_options)                                                                        \
    F(ox_broadcast_options, destroy)                                                               \
    X(ox_watch_options)                                                                            \
    F(ox_watch_options, destroy)

#ifdef __cplusplus
extern "C" {
#endif
/* Filled in by layout.c: sizeof and alignof of each X, offsetof of each F,
 * in the order above; then a 0. */
extern const size_t ox_test_c_layout[];
#ifdef __cplusplus
}
#endif

#endif

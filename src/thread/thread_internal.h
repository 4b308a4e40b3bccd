/* thread_internal.h - the thread record shared by thread.c, scope.c, tls.c
 * and the panic machinery. */
#ifndef OX_THREAD_INTERNAL_H
#define OX_THREAD_INTERNAL_H

#include "oxide/thread.h"

#include "../sys/sys.h"
#include "../unit/unit.h" /* the calling thread's name: ox__unit_thread_name */
#include "park.h"

#include <stdatomic.h>

/* One per thread, shared by the thread itself, its join handle (or scope)
 * and any ox_thread_clone() owners; retired when the last reference goes.
 * A retired record is not freed but kept for the next thread (thread.c), so
 * that a stale handle (a copy of one already joined, a scoped handle kept
 * past its scope) still points at a record and its generation tells it is
 * stale. */
struct ox_thread {
    _Atomic uint32_t refs;
    /* Bumped when the record is retired; handles remember the value they
     * were made with. Relaxed: a check for misuse, ordering nothing. */
    _Atomic uint32_t generation;
    /* How the join handle was given up (HANDLE_*), so that a copy used
     * later is caught while the record is still alive. Relaxed, as above. */
    _Atomic uint32_t handle_spent;
    ox__parker parker;
    uint64_t id;
    char *name; /* NULL, or a malloc'd copy ("main" for the main thread) */

    /* Filled by the thread before it ends; read by the joiner after the OS
     * join, which orders the two. */
    int outcome; /* 0 or OX_EPANICKED */
    void *result;
    ox_panic_payload *panic;
    _Atomic uint32_t finished; /* 1 once the function has returned: is_finished */
    /* Owners of the outcome, Rust's Packet: the thread until its function
     * has returned, and the join handle until it joins or is dropped (not
     * ox_thread_clone's references, as Rust's Thread does not own it).
     * The last to let go of a payload nobody joined drops it. */
    _Atomic uint32_t outcome_owners;

    ox__sys_thread os;
    void *(*fn)(void *);
    void *arg;

    /* Scoped threads only. */
    struct ox_thread *scope_next;
    _Atomic uint32_t join_claimed; /* 1 once someone has joined or is joining */
    _Atomic uint32_t scope_ended;  /* 1 once its scope has returned (relaxed) */
};

enum { OX__HANDLE_LIVE, OX__HANDLE_JOINED, OX__HANDLE_DROPPED };

/* Starts a thread as described by builder. Returns 0 and the new record
 * with two references (the thread's and the caller's), or an error code. */
int ox__thread_start(const ox_thread_builder *builder, void *(*fn)(void *), void *arg,
                     ox_thread **out);

/* Panics as Rust's spawn does when the OS refuses a thread (rc: its errno). */
_Noreturn void ox__thread_spawn_failed(int rc);

/* A handle for t remembering its record's generation, and whether a handle
 * with that generation is stale (its record was retired and maybe reused). */
ox_join_handle ox__thread_handle(ox_thread *t);
bool ox__thread_handle_is_stale(ox_thread *t, uint32_t generation);

/* Gives up the caller's share of t's outcome (outcome_owners): the
 * thread's at its end, the join handle's when dropped, a scope's for a
 * thread it joins at its end. The last owner drops a panic's payload that
 * nobody joined, and aborts with "oxide: WHO: ..." if that drop panics. */
void ox__thread_release_outcome(ox_thread *t, const char *who);

/* Waits for t's OS thread and collects its outcome: as ox_thread_join,
 * but the payload of a panic is always handed out in *payload (else it is
 * left alone): the caller hands it on with ox__panic_payload_hand once its
 * handle is spent, since the payload's drop may panic. */
int ox__thread_collect(ox_thread *t, void **result, ox_panic_payload **payload);

#endif

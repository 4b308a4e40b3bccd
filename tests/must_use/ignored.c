/* Every call below drops a result marked OX_MUST_USE, one per line marked
 * "warns"; check.sh compiles this file (never links or runs it) and fails unless the
 * compiler warns on exactly those lines. The (void)! lines show how to
 * ignore a result on purpose, and must not warn. */
#include <oxide.h>

void ignore_everything(ox_mutex *m, ox_rwlock *l, ox_condvar *cv, ox_join_handle *h,
                       ox_scoped_handle *sh, ox_sender *tx, ox_receiver *rx, void *arc, ox_weak *w,
                       ox_once_lock *cell, ox_barrier *b, ox_select_op *ops);

static void *nothing(void *arg)
{
    return arg;
}

static bool never(void *arg)
{
    (void)arg;
    return false;
}

void ignore_everything(ox_mutex *m, ox_rwlock *l, ox_condvar *cv, ox_join_handle *h,
                       ox_scoped_handle *sh, ox_sender *tx, ox_receiver *rx, void *arc, ox_weak *w,
                       ox_once_lock *cell, ox_barrier *b, ox_select_op *ops)
{
    int v = 0;
    size_t i;
    ox_thread_builder builder = OX_THREAD_BUILDER_INIT;
    ox_mutex_lock(m);                                     /* warns */
    (ox_mutex_lock)(m);                                   /* warns */
    ox_mutex_try_lock(m);                                 /* warns */
    ox_mutex_lock_timeout(m, 1);                          /* warns */
    ox_mutex_lock_deadline(m, OX_INSTANT_NEVER);          /* warns */
    ox_rwlock_read(l);                                    /* warns */
    ox_rwlock_write(l);                                   /* warns */
    ox_rwlock_try_read(l);                                /* warns */
    ox_rwlock_try_write(l);                               /* warns */
    ox_rwlock_read_timeout(l, 1);                         /* warns */
    ox_rwlock_write_deadline(l, OX_INSTANT_NEVER);        /* warns */
    ox_condvar_wait(cv, m);                               /* warns */
    ox_condvar_wait_timeout(cv, m, 1);                    /* warns */
    ox_condvar_wait_deadline(cv, m, OX_INSTANT_NEVER);    /* warns */
    ox_condvar_wait_while(cv, m, never, NULL);            /* warns */
    ox_thread_join(h, NULL, NULL);                        /* warns */
    ox_scoped_join(sh, NULL, NULL);                       /* warns */
    ox_thread_builder_spawn(&builder, nothing, NULL, h);  /* warns */
    ox_thread_clone(ox_thread_current());                 /* warns */
    ox_catch_unwind(nothing, NULL, NULL, NULL);           /* warns */
    ox_channel(sizeof v, 1, &tx, &rx);                    /* warns */
    ox_sender_send(tx, &v);                               /* warns */
    ox_sender_try_send(tx, &v);                           /* warns */
    ox_sender_send_timeout(tx, &v, 1);                    /* warns */
    ox_receiver_recv(rx, &v);                             /* warns */
    ox_receiver_try_recv(rx, &v);                         /* warns */
    ox_receiver_recv_deadline(rx, &v, OX_INSTANT_NEVER);  /* warns */
    ox_sender_clone(tx);                                  /* warns */
    ox_receiver_clone(rx);                                /* warns */
    ox_select(ops, 1, &i);                                /* warns */
    ox_select_try(ops, 1, &i);                            /* warns */
    ox_arc_new(8, NULL);                                  /* warns */
    ox_arc_clone(arc);                                    /* warns */
    (ox_arc_clone)(arc);                                  /* warns */
    ox_arc_downgrade(arc);                                /* warns */
    ox_weak_upgrade(w);                                   /* warns */
    ox_weak_clone(w);                                     /* warns */
    ox_once_lock_set(cell, arc);                          /* warns */
    ox_once_lock_take(cell);                              /* warns */
    ox_barrier_init(b, 2);                                /* warns */
    ox_condvar_wait_timeout_while(cv, m, 1, never, NULL); /* warns */
    OX_SEND(tx, &v);                                      /* warns */
    OX_RECV(rx, &v);                                      /* warns */
    ox_arc_try_unwrap(arc, &v, sizeof v);                 /* warns */
    ox_arc_into_inner(arc, &v, sizeof v);                 /* warns */
    ox_weak_new();                                        /* warns */
    (void)!ox_mutex_lock(m);
    (void)!ox_thread_join(h, NULL, NULL);
    (void)!ox_sender_send(tx, &v);
}

void ignore_tokio_set(ox_semaphore *s, ox_notify *n, ox_notified *t, ox_broadcast_sender *btx,
                      ox_broadcast_receiver *brx, ox_watch_sender *wtx, ox_watch_receiver *wrx);

void ignore_tokio_set(ox_semaphore *s, ox_notify *n, ox_notified *t, ox_broadcast_sender *btx,
                      ox_broadcast_receiver *brx, ox_watch_sender *wtx, ox_watch_receiver *wrx)
{
    int v = 0;
    bool changed;
    ox_semaphore_init(s, 1);                                     /* warns */
    ox_semaphore_acquire(s, 1);                                  /* warns */
    ox_semaphore_acquire_timeout(s, 1, 1);                       /* warns */
    ox_semaphore_acquire_deadline(s, 1, OX_INSTANT_NEVER);       /* warns */
    ox_semaphore_try_acquire(s, 1);                              /* warns */
    ox_notify_wait(n);                                           /* warns */
    ox_notify_wait_timeout(n, 1);                                /* warns */
    ox_notify_wait_deadline(n, OX_INSTANT_NEVER);                /* warns */
    ox_notify_try_wait(n);                                       /* warns */
    ox_notified_wait(t);                                         /* warns */
    ox_notified_wait_timeout(t, 1);                              /* warns */
    ox_notified_wait_deadline(t, OX_INSTANT_NEVER);              /* warns */
    ox_broadcast(sizeof v, 1, &btx, &brx);                       /* warns */
    ox_broadcast_with(NULL, &btx, &brx);                         /* warns */
    ox_broadcast_sender_clone(btx);                              /* warns */
    ox_broadcast_subscribe(btx);                                 /* warns */
    ox_broadcast_resubscribe(brx);                               /* warns */
    ox_broadcast_send(btx, &v);                                  /* warns */
    ox_broadcast_recv(brx, &v, NULL);                            /* warns */
    ox_broadcast_try_recv(brx, &v, NULL);                        /* warns */
    ox_broadcast_recv_timeout(brx, &v, NULL, 1);                 /* warns */
    ox_broadcast_recv_deadline(brx, &v, NULL, OX_INSTANT_NEVER); /* warns */
    ox_watch(sizeof v, &v, &wtx, &wrx);                          /* warns */
    ox_watch_with(NULL, &wtx, &wrx);                             /* warns */
    ox_watch_subscribe(wtx);                                     /* warns */
    ox_watch_receiver_clone(wrx);                                /* warns */
    ox_watch_send(wtx, &v);                                      /* warns */
    ox_watch_changed(wrx);                                       /* warns */
    ox_watch_changed_timeout(wrx, 1);                            /* warns */
    ox_watch_changed_deadline(wrx, OX_INSTANT_NEVER);            /* warns */
    ox_watch_has_changed(wrx, &changed);                         /* warns */
    ox_watch_closed(wtx);                                        /* warns */
    ox_watch_closed_deadline(wtx, OX_INSTANT_NEVER);             /* warns */
    (void)!ox_semaphore_acquire(s, 1);
    (void)!ox_broadcast_send(btx, &v);
}

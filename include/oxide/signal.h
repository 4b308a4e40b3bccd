/* oxide/signal.h - signals as channel messages or Notify wake-ups, for a
 * graceful shutdown (Tokio's tokio::signal, Go's signal.Notify):
 *
 *   int stop[] = {SIGINT, SIGTERM};
 *   ox_receiver *signals;
 *   if (ox_signal_channel(stop, 2, &signals) != 0) ...
 *   int sig;
 *   ox_receiver_recv(signals, &sig);     // a thread or a task waits here
 *   // stop accepting, drain connections with a deadline, exit
 *
 * Or with a Notify (one permit, however many signals came):
 *
 *   static ox_notify shutdown = OX_NOTIFY_INIT;
 *   ox_signal_notify(SIGTERM, &shutdown);
 *   ox_notify_wait(&shutdown);
 *
 * How. oxide installs its own handler (sigaction, SA_RESTART) for each
 * signal somebody listens to. The handler only counts the signal and sets
 * an eventfd, which is async-signal-safe; a dispatcher thread that oxide
 * starts with the first listener ("ox-signals") turns each count into
 * sends and notify_one calls. So delivery is asynchronous: a raise()
 * returns before the message is in the channel; receive it to wait for it.
 *
 * The default action is replaced. Once a program listens to SIGINT, Ctrl-C
 * no longer ends it: the listener decides. A handler that was installed
 * before (a function, not SIG_DFL or SIG_IGN) is still called, after
 * oxide's. When every listener of a signal is gone (its receivers dropped,
 * its Notify removed), the previous action is put back: at once for
 * ox_signal_notify_remove; for a dropped receiver when the signal next
 * arrives, and that signal is then raised again so that it does what it
 * would have done without oxide (SIGINT's default: the process ends).
 *
 * Counting. Every delivery the handler sees is a message (three raise()
 * calls, three messages). The kernel itself merges a standard signal that
 * is sent again while still pending, before any handler ran: such
 * repeats arrive as one.
 *
 * Not allowed: SIGKILL and SIGSTOP (nobody can catch them) and the fault
 * signals SIGSEGV, SIGBUS, SIGFPE and SIGILL (a handler that returns from
 * a real fault runs into it again): OX_EINVAL.
 *
 * After fork() the child keeps the handlers but not the dispatcher thread:
 * signals sent to the child reach no listener there.
 *
 * Under ThreadSanitizer, TSan holds a signal that arrives while its thread
 * runs (or sleeps in a raw system call, as oxide's waits do) until that
 * thread next calls into the C library. A process-directed signal (kill,
 * Ctrl-C) goes to the main thread first; if that thread sleeps in an oxide
 * wait until the signal's listener is done, the handler never runs. Tests
 * built with TSan send the signal to a running thread with raise() or
 * pthread_kill() instead.
 */
#ifndef OXIDE_SIGNAL_H
#define OXIDE_SIGNAL_H

#include "base.h"
#include "chan.h"
#include "notify.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif
OX__API_BEGIN

/* Creates a channel that receives the signals listed in signals (n of them,
 * borrowed: copied): each delivery of one is a message of type int, the
 * signal's number, in an unbounded channel. The receiver (*out) is the
 * caller's; dropping it stops the listening (see above). Several channels
 * and Notifies may listen to the same signal: each gets every delivery.
 * Returns 0; OX_EINVAL (signals or out NULL, n 0, a signal out of range or
 * not allowed); ENOMEM; or errno (the eventfd, the dispatcher thread, or
 * sigaction failed). */
OX_MUST_USE int ox_signal_channel(const int *signals, size_t n, ox_receiver **out);

/* Calls ox_notify_one(notify) on each delivery of sig (so a wait after the
 * signal still returns: the permit is stored). notify is borrowed and must
 * stay valid until ox_signal_notify_remove. Returns 0, OX_EINVAL, ENOMEM or
 * errno as ox_signal_channel. */
OX_MUST_USE int ox_signal_notify(int sig, ox_notify *notify);

/* Stops notifying notify of sig (one registration of it). When it returns,
 * the dispatcher is not inside a notify on it and will not start one: the
 * Notify may be freed. If nobody else listens to sig, its previous action
 * is put back at once. Returns 0, or OX_EINVAL if notify was not listening
 * to sig. */
int ox_signal_notify_remove(int sig, ox_notify *notify);

OX__API_END

#ifdef __cplusplus
}
#endif
#endif

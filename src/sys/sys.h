/* sys.h - the only interface to the operating system. Everything above
 * src/sys/ goes through these functions; one implementation file per
 * platform (linux.c today). */
#ifndef OX_SYS_H
#define OX_SYS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- futex: wait until *word != expected, or until woken ----
 * deadline_ns is an absolute CLOCK_MONOTONIC time; INT64_MAX waits forever.
 * Returns 0 when woken, when *word already differed, or on a signal (callers
 * re-check their condition in a loop); OX_ETIMEDOUT once the deadline passed. */
int ox__sys_futex_wait(_Atomic uint32_t *word, uint32_t expected, int64_t deadline_ns);
/* Wakes up to n waiters (INT32_MAX: all). Returns how many were woken. */
int ox__sys_futex_wake(_Atomic uint32_t *word, int n);
/* If *from == expected: wakes up to wake waiters of from and moves the rest
 * onto to. Returns the number woken + moved, or -1 if *from differed. */
int ox__sys_futex_requeue(_Atomic uint32_t *from, uint32_t expected, int wake,
                          _Atomic uint32_t *to);

/* ---- the process-wide fence (Linux: membarrier) ----
 * ox__sys_fence_others makes every other thread of the process that is
 * running pass a full memory barrier before it returns (one that is not
 * running has passed one when it was switched out). A thread can then use
 * plain loads and stores where it would need a fence, as long as the other
 * side of the pairing calls this (a mutex's unlock, src/sync/mutex.c). It
 * interrupts the CPUs that run the process: 1 us with none, about 50 us
 * with one on a 2-vCPU VM (docs/bench.md, session 25).
 * ox__sys_fence_others_enable is called once at start-up and returns false
 * if the OS cannot (an old kernel, a seccomp filter); then nothing may rely
 * on ox__sys_fence_others. That can still fail later (a seccomp filter
 * installed after start-up): it returns false, having fenced nothing. */
bool ox__sys_fence_others_enable(void);
bool ox__sys_fence_others(void);

/* ---- clocks ---- */
int64_t ox__sys_monotonic_ns(void);
/* Sleeps until the deadline (absolute CLOCK_MONOTONIC), resuming after
 * signals. */
void ox__sys_sleep_until(int64_t deadline_ns);
void ox__sys_yield(void);
/* CPU time used by all the process's threads (CLOCK_PROCESS_CPUTIME_ID). */
int64_t ox__sys_process_cpu_ns(void);

/* Registers fork handlers (pthread_atfork): prepare runs in the forking
 * thread before the fork, parent and child after it in each process.
 * Aborts if the OS refuses (out of memory at start-up). */
void ox__sys_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void));

/* ---- threads ---- */
typedef uintptr_t ox__sys_thread;

/* Starts fn(arg), with the platform's default stack unless set_stack_size
 * (then stack_size, raised to the platform minimum). Returns 0 or an errno
 * value. */
int ox__sys_thread_start(ox__sys_thread *out, size_t stack_size, bool set_stack_size,
                         void *(*fn)(void *), void *arg);
/* Waits for the thread to end and reclaims it. Returns 0 or an errno value. */
int ox__sys_thread_join(ox__sys_thread thread);
void ox__sys_thread_detach(ox__sys_thread thread);
/* Gives the calling thread its OS-visible name, cut to what the OS allows. */
void ox__sys_thread_set_os_name(const char *name);
/* The calling thread's id as the OS shows it (Linux: gettid), as Rust's
 * panic message prints it. */
long ox__sys_thread_os_id(void);
/* True in the process's initial thread. */
int ox__sys_is_main_thread(void);
size_t ox__sys_available_parallelism(void);

/* Registers fn to run when a thread that called ox__sys_thread_exit_arm()
 * exits through the OS's thread exit (threads oxide did not start). */
void ox__sys_thread_exit_arm(void (*fn)(void));

/* ---- task stacks (linux_stack.c) ---- */
size_t ox__sys_page_size(void);
/* Maps a stack of at least usable bytes above a guard page. Pages are
 * committed on first touch. Returns 0 or an errno value. */
int ox__sys_stack_map(size_t usable, void **base, size_t *total);
/* As ox__sys_stack_map for n stacks of the same size (each total bytes),
 * in one mapping: bases[0..*made) are theirs. Returns 0, or the errno value
 * that stopped it short of n (*made may still be above 0). */
int ox__sys_stack_map_many(size_t usable, size_t n, void **bases, size_t *total, size_t *made);
void ox__sys_stack_unmap(void *base, size_t total);
/* Gives the pages of [lo, lo + len) (page-aligned, in a stack mapping)
 * back to the system but keeps the mapping: a later touch finds each page
 * as it was or zeroed. */
void ox__sys_stack_release(void *lo, size_t len);
/* Installs the SIGSEGV/SIGBUS handler that reports a stack overflow:
 * owner(addr) names the task whose guard page addr is in, or NULL (then
 * the fault goes to the previous handler). Call once. */
void ox__sys_guard_handler_install(const char *(*owner)(const void *addr));
/* An alternate signal stack for the calling thread, so that the handler
 * can run when the faulting stack is full. */
int ox__sys_alt_stack_enable(void **stack);
void ox__sys_alt_stack_disable(void *stack);

/* ---- readiness (linux_poll.c: epoll, eventfd, poll) ---- */
#define OX__SYS_READABLE 1u /* data, EOF, a peer's shutdown, an error or a hang-up */
#define OX__SYS_WRITABLE 2u /* room, an error or a hang-up */
/* With READABLE: an end of the data as it came (a peer's shutdown, an
 * error, a hang-up) or urgent data, after which a short read no longer
 * shows that the socket is drained (ox__io_run). Reported by the poller
 * only, never asked for. */
#define OX__SYS_READ_END 4u

/* One readiness event: key as registered, ready a mask of the above. */
typedef struct ox__sys_event {
    void *key;
    unsigned ready;
} ox__sys_event;

/* A poller and the waker that interrupts its wait: an event flag
 * (ox__sys_event_set makes the poller's current or next wait return).
 * Returns 0 or errno. */
int ox__sys_poller_open(int *poller, int *waker);
void ox__sys_poller_close(int poller, int waker);
/* Watches fd for both directions, edge-triggered: an event each time fd
 * becomes readable or writable after having been found not to be. */
int ox__sys_poller_add(int poller, int fd, void *key);
/* Watches fd once for events (level: reported at once if already ready);
 * ox__sys_poller_del must follow. */
int ox__sys_poller_add_once(int poller, int fd, unsigned events, void *key);
void ox__sys_poller_del(int poller, int fd);
/* Waits until an event, a wake or the deadline (INT64_MAX: none; at or
 * before now: does not wait). Returns how many events were stored in out
 * (the waker's are consumed, not returned). */
int ox__sys_poller_wait(int poller, int waker, ox__sys_event *out, int max, int64_t deadline_ns);
/* Blocks the calling thread until fd is ready for events or the deadline
 * passes: returns 0 (ready), OX_ETIMEDOUT, or poll's errno (ENOMEM).
 * Signals are retried. */
int ox__sys_fd_wait(int fd, unsigned events, int64_t deadline_ns);

/* ---- event flags (linux_event.c: an eventfd, non-blocking) ----
 * Readable while set. set is async-signal-safe. */
int ox__sys_event_open(int *fd);
void ox__sys_event_set(int fd);
void ox__sys_event_clear(int fd);
void ox__sys_event_close(int fd);

/* ---- signals (linux_signal.c) ---- */
/* Installs oxide's handler for sig: it calls fn(sig) (which must be
 * async-signal-safe), then the handler installed before, if that was a
 * function. fn is one callback for every signal caught. Returns 0 or
 * errno (EINVAL: a signal that cannot be caught). */
int ox__sys_signal_catch(int sig, void (*fn)(int sig));
/* Puts back the action sig had before ox__sys_signal_catch. Returns true
 * if that was the default action (SIG_DFL). */
bool ox__sys_signal_restore(int sig);
/* Sends sig to this process. */
void ox__sys_signal_raise(int sig);

#endif

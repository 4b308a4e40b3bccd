/* linux_stack.c - memory for task stacks, and the fault handler that
 * turns a hit on a stack's guard page into a message naming the task.
 *
 * A stack is one anonymous mapping: the lowest page is PROT_NONE (the
 * guard), the rest is readable and writable. MAP_NORESERVE and the kernel's
 * demand paging commit only the pages a task touches, so a 256 KiB stack
 * costs one or two pages until it is used deeply. */
#define _GNU_SOURCE
#include "sys.h"

#include "oxide/base.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

size_t ox__sys_page_size(void)
{
    static _Atomic size_t page;
    /* Relaxed: every thread computes the same value (the workers map
     * stacks as their tasks start). */
    size_t p = atomic_load_explicit(&page, memory_order_relaxed);
    if (p == 0) {
        p = (size_t)sysconf(_SC_PAGESIZE);
        atomic_store_explicit(&page, p, memory_order_relaxed);
    }
    return p;
}

int ox__sys_stack_map(size_t usable, void **base, size_t *total)
{
    size_t made = 0;
    int rc = ox__sys_stack_map_many(usable, 1, base, total, &made);
    return made == 1 ? 0 : rc;
}

int ox__sys_stack_map_many(size_t usable, size_t n, void **bases, size_t *total, size_t *made)
{
    size_t page = ox__sys_page_size();
    usable = (usable + page - 1) / page * page;
    size_t size = usable + page;
    *made = 0;
    if (n == 0 || n > SIZE_MAX / size)
        return EINVAL;
    /* One mapping for all: each guard page splits it, so each stack is
     * still two kernel mappings and munmaps on its own. */
    char *p = mmap(NULL, n * size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (p == MAP_FAILED)
        return errno;
    int rc = 0;
    for (; *made < n; (*made)++) {
        char *b = p + *made * size;
        if (mprotect(b, page, PROT_NONE) != 0) { /* out of mappings, say */
            rc = errno;
            munmap(b, (n - *made) * size);
            break;
        }
        bases[*made] = b;
    }
    *total = size;
    return rc;
}

void ox__sys_stack_unmap(void *base, size_t total)
{
    munmap(base, total);
}

void ox__sys_stack_release(void *lo, size_t len)
{
    /* MADV_FREE: the kernel takes the pages only when it needs memory, and
     * a page written before that is simply kept. Linux before 4.5 lacks it
     * (EINVAL): drop the pages at once instead. */
    if (len != 0 && madvise(lo, len, MADV_FREE) != 0)
        (void)madvise(lo, len, MADV_DONTNEED);
}

/* ---- the guard-page fault handler ---- */

#define ALT_STACK_SIZE ((size_t)64 * 1024)

static const char *(*guard_owner)(const void *addr);
static struct sigaction previous_segv, previous_bus;

static void write_all(const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(2, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void on_fault(int sig, siginfo_t *info, void *uctx)
{
    const char *name = guard_owner ? guard_owner(info->si_addr) : NULL;
    if (name != NULL) {
        /* Async-signal-safe: only write(2) and abort(). */
        static const char head[] = "\ntask '";
        static const char tail[] = "' has overflowed its stack\n"
                                   "fatal runtime error: stack overflow, aborting\n";
        write_all(head, sizeof head - 1);
        write_all(name, strlen(name));
        write_all(tail, sizeof tail - 1);
        abort();
    }
    /* Not a task's guard: whoever handled it before us (a sanitizer, the
     * program), else the default action when the access is retried. */
    const struct sigaction *prev = sig == SIGSEGV ? &previous_segv : &previous_bus;
    if (prev->sa_flags & SA_SIGINFO) {
        prev->sa_sigaction(sig, info, uctx);
    } else if (prev->sa_handler != SIG_IGN && prev->sa_handler != SIG_DFL) {
        prev->sa_handler(sig);
    } else {
        signal(sig, SIG_DFL); /* the faulting access runs again and kills us */
    }
}

void ox__sys_guard_handler_install(const char *(*owner)(const void *addr))
{
    guard_owner = owner;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &previous_segv);
    sigaction(SIGBUS, &sa, &previous_bus);
}

int ox__sys_alt_stack_enable(void **out)
{
    size_t size = ALT_STACK_SIZE;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return errno;
    stack_t ss = {.ss_sp = p, .ss_size = size, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) {
        int rc = errno;
        munmap(p, size);
        return rc;
    }
    *out = p;
    return 0;
}

void ox__sys_alt_stack_disable(void *stack)
{
    stack_t ss = {.ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    munmap(stack, ALT_STACK_SIZE);
}

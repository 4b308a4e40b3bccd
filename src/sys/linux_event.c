/* linux_event.c - an eventfd used as a flag another loop can poll: set by
 * a signal handler (src/io/signal.c) or a channel's sender (a receiver's
 * event fd, src/chan/event.c), cleared by whoever drains it. */
#include "sys.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

int ox__sys_event_open(int *fd)
{
    int e = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (e < 0)
        return errno;
    *fd = e;
    return 0;
}

void ox__sys_event_set(int fd)
{
    uint64_t one = 1;
    /* EAGAIN (the counter is full) still leaves it readable: enough. */
    (void)!write(fd, &one, sizeof one);
}

void ox__sys_event_clear(int fd)
{
    uint64_t count;
    /* EAGAIN: it was not set. */
    (void)!read(fd, &count, sizeof count);
}

void ox__sys_event_close(int fd)
{
    (void)close(fd);
}

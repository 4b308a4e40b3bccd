/* time.c - instants on the monotonic clock. */
#include "oxide/base.h"

#include "../sys/sys.h"

ox_instant ox_instant_now(void)
{
    return (ox_instant){ox__sys_monotonic_ns()};
}

ox_instant ox_instant_after(ox_nanos d)
{
    int64_t now = ox__sys_monotonic_ns();
    if (d < 0)
        return (ox_instant){now};
    if (d >= INT64_MAX - now)
        return OX_INSTANT_NEVER;
    return (ox_instant){now + d};
}

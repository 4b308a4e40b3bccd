/* Built against an installed oxide by tests/install/check.sh, also
 * statically. Takes two mutexes in both orders, one order after the other
 * (so nothing deadlocks). With OX_LOCKDEP=1 in the environment, and no call
 * to any checker function here, the lock-order checker must be linked in
 * and switched on by the environment alone, and report the cycle. */
#include <oxide.h>
#include <stdio.h>

static ox_mutex a = OX_MUTEX_INIT;
static ox_mutex b = OX_MUTEX_INIT;

static int lock_pair(ox_mutex *first, ox_mutex *second)
{
    if (ox_mutex_lock(first) != 0 || ox_mutex_lock(second) != 0)
        return 1;
    ox_mutex_unlock(second);
    ox_mutex_unlock(first);
    return 0;
}

int main(void)
{
    if (lock_pair(&a, &b) != 0 || lock_pair(&b, &a) != 0)
        return 1;
    printf("both orders taken\n");
    return 0;
}

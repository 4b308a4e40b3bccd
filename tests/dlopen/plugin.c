/* A plugin that uses oxide's inline lock fast paths (tests/dlopen/check.sh). */
#include <oxide.h>

int plugin_run(void);

int plugin_run(void)
{
    static ox_mutex m = OX_MUTEX_INIT;
    static ox_rwlock l = OX_RWLOCK_INIT;
    if (ox_mutex_lock(&m) != 0 || ox_rwlock_read(&l) != 0)
        return 1;
    ox_rwlock_read_unlock(&l);
    ox_mutex_unlock(&m);
    return 42;
}

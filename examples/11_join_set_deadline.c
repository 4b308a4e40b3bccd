/* 11_join_set_deadline.c - a fan-out with a deadline (the guide's Next
 * Steps: JoinSet, cancellation). Ten "requests" run as tasks in a JoinSet:
 * the even ones answer after i * 10 ms, the odd ones hang (a server that
 * never replies). Whatever has not answered within 500 ms is aborted: its
 * wait returns OX_ECANCELED and it gives up cleanly. Results are collected
 * in the order they finish. */
#include <oxide.h>
#include <stdint.h>
#include <stdio.h>

#define REQUESTS 10

static void *request(void *arg)
{
    long i = (long)(intptr_t)arg;
    /* The simulated network wait: a cancellation point. */
    ox_nanos wait = i % 2 == 0 ? OX_MILLIS(10 * i) : OX_SECS(3600);
    if (ox_task_sleep(wait) == OX_ECANCELED)
        return (void *)(intptr_t)-i; /* aborted: a negative answer says so */
    return (void *)(intptr_t)(i * i);
}

static void *fan_out(void *unused)
{
    (void)unused;
    ox_join_set *set;
    if (ox_join_set_new(&set) != 0)
        ox_panic("no memory");
    for (long i = 0; i < REQUESTS; i++)
        if (ox_join_set_spawn(set, request, (void *)(intptr_t)i) != 0)
            ox_panic("cannot spawn request %ld", i);
    /* The deadline: let the fast ones answer, then abort the rest. */
    if (ox_task_sleep(OX_MILLIS(500)) != 0)
        ox_panic("the fan-out itself was aborted");
    ox_join_set_abort_all(set);
    long answered = 0, aborted = 0, sum = 0;
    void *r;
    int rc;
    while ((rc = ox_join_set_join_next(set, &r, NULL, NULL)) != OX_EEMPTY) {
        long v = (long)(intptr_t)r;
        if (rc == OX_ECANCELED || v < 0) {
            aborted++;
        } else {
            answered++;
            sum += v;
        }
    }
    ox_join_set_drop(set);
    printf("answered in time: %ld (sum of answers %ld)\n", answered, sum);
    printf("aborted at the deadline: %ld\n", aborted);
    return NULL;
}

int main(void)
{
    if (ox_task_block_on(fan_out, NULL, NULL, NULL) != 0)
        return 1;
    return 0;
}

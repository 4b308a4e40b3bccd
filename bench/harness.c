/* harness.c - runs registered benchmarks; see harness.h.
 * Usage: oxide-bench [SUBSTRING | =NAME | --list | --impls]
 * OX_BENCH_ROUNDS sets the repetitions (default 3; the median is printed).
 * OX_BENCH_IMPL, when set, runs that implementation only (bench/run.sh
 * runs each in a process of its own); --impls lists them.
 * A workload whose run returns NAN could not run here (it says why on
 * stderr) and prints no line. */
#include "harness.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static ox_bench *head, **tail = &head;

void ox_bench_register(ox_bench *b)
{
    *tail = b;
    tail = &b->next;
}

uint64_t ox_bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* glibc takes non-atomic shortcuts in a process that never created a
 * thread; every implementation is measured with one extra thread alive. */
static void *idle_thread(void *arg)
{
    (void)arg;
    pause();
    return NULL;
}

/* "=name" selects one workload exactly (bench/run.sh runs each workload in
 * a fresh process that way); anything else is a substring. */
static bool wanted(const char *workload, const char *filter)
{
    return filter[0] == '=' ? strcmp(workload, filter + 1) == 0 : strstr(workload, filter) != NULL;
}

int main(int argc, char **argv)
{
    const char *filter = argc > 1 ? argv[1] : "";
    bool list_workloads = strcmp(filter, "--list") == 0,
         list_impls = strcmp(filter, "--impls") == 0;
    if (list_workloads || list_impls) {
        /* Each name once, in registration order. */
        for (ox_bench *b = head; b; b = b->next) {
            const char *name = list_impls ? b->impl : b->workload;
            bool seen = false;
            for (ox_bench *a = head; a != b; a = a->next)
                seen = seen || strcmp(list_impls ? a->impl : a->workload, name) == 0;
            if (!seen)
                printf("%s\n", name);
        }
        return 0;
    }
    const char *impl = getenv("OX_BENCH_IMPL");
    const char *r = getenv("OX_BENCH_ROUNDS");
    int rounds = r ? atoi(r) : 3;
    if (rounds < 1 || rounds > 100)
        rounds = 3;
    pthread_t idle;
    if (pthread_create(&idle, NULL, idle_thread, NULL) != 0) {
        perror("oxide-bench: pthread_create");
        return 1;
    }
    pthread_detach(idle);
    double samples[100];
    for (ox_bench *b = head; b; b = b->next) {
        if (!wanted(b->workload, filter) || (impl && *impl && strcmp(impl, b->impl) != 0))
            continue;
        bool ran = true;
        for (int i = 0; i < rounds && ran; i++)
            ran = !isnan(samples[i] = b->run());
        if (!ran)
            continue; /* the workload cannot run here and said why on stderr */
        qsort(samples, (size_t)rounds, sizeof samples[0], compare_double);
        printf("%s\t%s\t%.1f\n", b->workload, b->impl, samples[rounds / 2]);
        fflush(stdout);
    }
    return 0;
}

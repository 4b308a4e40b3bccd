/* The guide's sections 9 and 10 program, which measures what threads,
 * locks, channels and tasks cost: it prints every measurement, each a
 * positive number of nanoseconds, and the closing comparison. The values
 * themselves depend on the machine and are not checked. */
#include "runner.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* The number after label on its line ("  label:   12.3 ns"), or -1. */
static double value_of(const char *out, const char *label)
{
    const char *p = strstr(out, label);
    if (p == NULL || (p != out && p[-1] != ' '))
        return -1;
    double v;
    char unit[3];
    if (sscanf(p + strlen(label), ": %lf %2s", &v, unit) != 2 || strcmp(unit, "ns") != 0)
        return -1;
    return v;
}

OX_TEST_OPTS(example_10_costs, .timeout_s = 120)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/10_costs", ox_test_examples_dir());
    char *argv[] = {path, NULL};
    char *out = NULL, *err = NULL;
    int status = ox_test_run_program(argv, 100, &out, &err);
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        ox_test_fail(__FILE__, __LINE__, "status %#x\n%s", (unsigned)status, err ? err : "");
    CHECK(strncmp(out, "What each operation costs on this machine (ns, best of 5 runs):\n", 64) ==
          0);
    static const char *const labels[] = {"thread spawn + join",
                                         "mutex lock + unlock, uncontended",
                                         "channel send + recv, no waiting",
                                         "thread context switch (park/unpark)",
                                         "task spawn + join (one worker)",
                                         "task switch (yield, one worker)"};
    for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++) {
        double v = value_of(out, labels[i]);
        if (!(v > 0 && isfinite(v)))
            ox_test_fail(__FILE__, __LINE__, "no positive value for \"%s\" in:\n%s", labels[i],
                         out);
    }
    const char *last = strstr(out, "A thread spawn costs as much as ");
    CHECK(last != NULL);
    double spawns = -1, switches = -1;
    CHECK_EQ(sscanf(last,
                    "A thread spawn costs as much as %lf task spawns; a thread switch, as "
                    "%lf task switches.",
                    &spawns, &switches),
             2);
    CHECK(spawns >= 0 && switches >= 0);
    free(out);
    free(err);
}

/* The set-up a new user follows (issue 10, section 7): README's one
 * install command takes tests/packages.txt, which names every package the
 * suites need; .ci/run installs the same list; README lists the suites
 * that tests/run-suites.sh really runs and names make check as the quick
 * loop. Run from the source tree's root, as make check and
 * tests/run-suites.sh do. */
#include "runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        ox_test_fail(__FILE__, __LINE__, "cannot open %s (run from the source root)", path);
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap);
    CHECK(text != NULL);
    size_t n;
    while ((n = fread(text + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len + 1 == cap) {
            cap *= 2;
            text = realloc(text, cap);
            CHECK(text != NULL);
        }
    }
    fclose(f);
    text[len] = '\0';
    return text;
}

/* True if the list has `name` as a line of its own. */
static bool lists(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += n) {
        bool starts = p == list || p[-1] == '\n';
        bool ends = p[n] == '\n' || p[n] == '\0';
        if (starts && ends)
            return true;
    }
    return false;
}

OX_TEST(setup_one_command_installs_every_package_the_suites_need)
{
    char *readme = slurp("README.md");
    char *packages = slurp("tests/packages.txt");
    char *ci = slurp(".ci/run");
    if (strstr(readme, "sudo apt-get install -y $(grep -v '^#' tests/packages.txt)") == NULL)
        ox_test_fail(__FILE__, __LINE__, "README's set-up command does not install the list");
    CHECK(strstr(ci, "grep -v '^#' tests/packages.txt") != NULL);
    /* What each suite or target runs, by the Debian package providing it. */
    static const char *const needed[] = {
        "build-essential",       /* gcc, g++ (C++ check), make */
        "clang",                 /* clang suites, tsan, fuzz, clang++ */
        "libclang-rt-14-dev",    /* clang's TSan and libFuzzer runtimes */
        "pkg-config",            /* install suite */
        "cmake",                 /* install suite: the CMake package */
        "clang-format",          /* make lint */
        "clang-tidy",            /* make lint */
        "cppcheck",              /* make lint */
        "gcc-aarch64-linux-gnu", /* aarch64 suite */
        "libc6-dev-arm64-cross", /* aarch64 suite */
        "qemu-user",             /* aarch64 suite: qemu-aarch64 */
    };
    for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++)
        if (!lists(packages, needed[i]))
            ox_test_fail(__FILE__, __LINE__, "tests/packages.txt does not list %s", needed[i]);
    free(readme);
    free(packages);
    free(ci);
}

OX_TEST(setup_readme_lists_the_suites_make_test_runs)
{
    char *readme = slurp("README.md");
    char *script = slurp("tests/run-suites.sh");
    const char *key = "SUITES=${SUITES:-";
    char *start = strstr(script, key);
    CHECK(start != NULL);
    start += strlen(key);
    char *end = strchr(start, '}');
    CHECK(end != NULL);
    *end = '\0';
    int suites = 0;
    for (char *save = NULL, *s = strtok_r(start, " ", &save); s; s = strtok_r(NULL, " ", &save)) {
        char quoted[64];
        snprintf(quoted, sizeof quoted, "`%s`", s);
        if (strstr(readme, quoted) == NULL)
            ox_test_fail(__FILE__, __LINE__, "README does not list the suite %s", quoted);
        suites++;
    }
    CHECK(suites >= 5);
    CHECK(strstr(readme, "`make check`") != NULL);
    CHECK(strstr(readme, "quick loop") != NULL);
    free(readme);
    free(script);
}

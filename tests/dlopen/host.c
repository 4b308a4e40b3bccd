/* Loads tests/dlopen/plugin.so with dlopen() after start-up, as a program
 * loads a plugin, and runs it; the plugin brings liboxide.so with it. */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    void *plugin = dlopen(argv[1], RTLD_NOW);
    if (plugin == NULL) {
        printf("dlopen failed: %s\n", dlerror());
        return 1;
    }
    int (*run)(void) = (int (*)(void))dlsym(plugin, "plugin_run");
    if (run == NULL)
        return 1;
    int got = run();
    printf("plugin_run: %d\n", got);
    return got == 42 ? 0 : 1;
}

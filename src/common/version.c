/* version.c - the library's own version (see oxide/version.h). */
#include "oxide/version.h"

unsigned ox_version(void)
{
    return OX_VERSION_HEX;
}

const char *ox_version_string(void)
{
    return OX_VERSION_STRING;
}

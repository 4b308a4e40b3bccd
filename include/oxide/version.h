/* oxide/version.h - the version of the headers and of the library.
 *
 * oxide follows semantic versioning: the major version changes when the ABI
 * or the API breaks, and names the shared library (liboxide.so.MAJOR, its
 * SONAME); the minor version adds API; the patch version fixes.
 * CHANGELOG.md says what changed in each. While the major version is 0,
 * a minor version may break the API too (liboxide.so.0 then still names it:
 * rebuild against the new headers).
 */
#ifndef OXIDE_VERSION_H
#define OXIDE_VERSION_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif
OX__API_BEGIN

/* The version of these headers (the Makefile reads them from here). */
#define OX_VERSION_MAJOR 0
#define OX_VERSION_MINOR 1
#define OX_VERSION_PATCH 0

/* One number that compares in version order: 0xMMmmpp. */
#define OX_VERSION_HEX ((OX_VERSION_MAJOR << 16) | (OX_VERSION_MINOR << 8) | OX_VERSION_PATCH)

#define OX__STR2(x) #x
#define OX__STR(x)  OX__STR2(x)
/* "MAJOR.MINOR.PATCH" */
#define OX_VERSION_STRING                                                                          \
    OX__STR(OX_VERSION_MAJOR) "." OX__STR(OX_VERSION_MINOR) "." OX__STR(OX_VERSION_PATCH)

/* The version of the library the program runs with (which may be newer than
 * the headers it was compiled with: compare with OX_VERSION_HEX). */
unsigned ox_version(void);

/* The same as "MAJOR.MINOR.PATCH"; a static string. */
const char *ox_version_string(void);

OX__API_END

#ifdef __cplusplus
}
#endif
#endif

/* cache_line.h - the line size that keeps hot words apart: the _Alignas of
 * fields that different threads write, and the allocations that hold them
 * (malloc and calloc align to 16 only, which would undo the _Alignas). */
#ifndef OX_COMMON_CACHE_LINE_H
#define OX_COMMON_CACHE_LINE_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define OX__CACHE_LINE 64

/* bytes rounded up to whole cache lines. */
static inline size_t ox__cache_lines(size_t bytes)
{
    return (bytes + OX__CACHE_LINE - 1) & ~(size_t)(OX__CACHE_LINE - 1);
}

/* At least bytes on whole cache lines of their own (free() them), or NULL
 * (out of memory, or a size that would wrap). Not zeroed. */
static inline void *ox__alloc_lines(size_t bytes)
{
    if (bytes > SIZE_MAX - OX__CACHE_LINE)
        return NULL;
    return aligned_alloc(OX__CACHE_LINE, ox__cache_lines(bytes));
}

#endif

/* oxide/wait_list.h - PRIVATE: the FIFO list of blocked waiters that the
 * semaphore and Notify embed, in a public header only so that their structs
 * can be declared (and statically initialised) in the open. Nothing here is
 * API: the names are ox__-prefixed and the layout changes with the library
 * version. The protocol is in src/thread/wait_list.h.
 */
#ifndef OXIDE_WAIT_LIST_H
#define OXIDE_WAIT_LIST_H

#include "base.h"

#include <stdint.h>
#ifndef __cplusplus
#include <stdatomic.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif
OX__API_BEGIN

struct ox__wait_node;

typedef struct ox__wait_list {
    OX__ATOMIC(uint32_t) lock;         /* guards the list: src/thread/wait_list.h */
    struct ox__wait_node *head, *tail; /* oldest first; the nodes live on waiters' stacks */
} ox__wait_list;

/* clang-format off */
#define OX__WAIT_LIST_INIT {0, NULL, NULL}
/* clang-format on */

OX__API_END

#ifdef __cplusplus
}
#endif
#endif

/* lock_chan.h - what the channels guarded by one lock (broadcast.c,
 * watch.c) share: their handles.
 *
 * A handle is a small allocation whose magic number says which kind of
 * handle it is (a broadcast sender, a watch receiver...) or that it was
 * dropped. Every call checks it first, so that a NULL, a dropped or a
 * foreign handle aborts with the function's name instead of corrupting the
 * channel. A dropped handle is not freed but kept in its channel's
 * graveyard, still marked dropped, until the channel is freed: a use after
 * the drop reads the mark rather than freed memory. The next clone or
 * subscribe reuses it.
 *
 * The graveyard, like everything else of the channel, is guarded by the
 * channel's lock.
 */
#ifndef OX_LOCK_CHAN_H
#define OX_LOCK_CHAN_H

#include "oxide/base.h"

#include <stdint.h>

typedef struct ox__lchan_handle {
    uint32_t magic;
    void *chan;
    union {            /* receivers only */
        uint64_t next; /* broadcast: the next message to read */
        uint64_t seen; /* watch: the version last marked seen */
    };
    struct ox__lchan_handle *next_dead; /* in the channel's graveyard once dropped */
} ox__lchan_handle;

/* One kind of handle: its live magic, the dropped magic of its channel
 * type (distinct per type, so that a dropped watch handle passed to a
 * broadcast call is "not a broadcast receiver"), and its name in messages. */
typedef struct ox__lchan_kind {
    uint32_t magic, dead_magic;
    const char *name;
} ox__lchan_kind;

OX_COLD _Noreturn void ox__lchan_bad_handle(const ox__lchan_handle *h, const ox__lchan_kind *kind,
                                            const char *function) OX_NORETURN;

/* The channel of h, after checking that h is a live handle of that kind
 * (else aborts, naming function). Inline: it runs on every call. */
static inline void *ox__lchan_of(const ox__lchan_handle *h, const ox__lchan_kind *kind,
                                 const char *function)
{
    if (OX_UNLIKELY(!h || h->magic != kind->magic))
        ox__lchan_bad_handle(h, kind, function);
    return h->chan;
}

/* Under the channel's lock: a handle of that magic on chan, its next (or
 * seen) set to pos, from the graveyard or else newly allocated (aborts,
 * naming function, when out of memory). */
ox__lchan_handle *ox__lchan_handle_new(ox__lchan_handle **graveyard, void *chan, uint32_t magic,
                                       uint64_t pos, const char *function);

/* Under the channel's lock: marks h dropped and keeps it in the graveyard. */
void ox__lchan_bury(ox__lchan_handle **graveyard, ox__lchan_handle *h, uint32_t dead_magic);

/* With the channel: frees every handle of the graveyard. */
void ox__lchan_free_graveyard(ox__lchan_handle *graveyard);

#endif

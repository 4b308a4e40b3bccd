/* lock_chan.c - the handles of the lock-guarded channels: see lock_chan.h. */
#include "lock_chan.h"

#include <stdlib.h>

OX_COLD _Noreturn void ox__lchan_bad_handle(const ox__lchan_handle *h, const ox__lchan_kind *kind,
                                            const char *function)
{
    if (!h)
        ox_abort(function, "NULL %s", kind->name);
    if (h->magic == kind->dead_magic)
        ox_abort(function, "%s %p was already dropped", kind->name, (const void *)h);
    ox_abort(function, "%p is not a %s (or was freed with its channel)", (const void *)h,
             kind->name);
}

ox__lchan_handle *ox__lchan_handle_new(ox__lchan_handle **graveyard, void *chan, uint32_t magic,
                                       uint64_t pos, const char *function)
{
    ox__lchan_handle *h = *graveyard;
    if (h)
        *graveyard = h->next_dead;
    else if ((h = malloc(sizeof *h)) == NULL)
        ox_abort(function, "out of memory");
    *h = (ox__lchan_handle){.magic = magic, .chan = chan, .next = pos}; /* next: or seen */
    return h;
}

void ox__lchan_bury(ox__lchan_handle **graveyard, ox__lchan_handle *h, uint32_t dead_magic)
{
    h->magic = dead_magic;
    h->next_dead = *graveyard;
    *graveyard = h;
}

void ox__lchan_free_graveyard(ox__lchan_handle *graveyard)
{
    for (ox__lchan_handle *h = graveyard, *next; h; h = next) {
        next = h->next_dead;
        free(h);
    }
}

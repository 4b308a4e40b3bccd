/* dekker.h - the store half of a store-then-load pair.
 *
 * In a Dekker pair each side stores its own flag and then loads the
 * other's, and at least one side must see the other's store (oxide's
 * sleepers and their wakers, a waiter and its aborter, a dumper and the
 * record it reads). C11 gives that with a seq_cst store followed by a
 * seq_cst load. The store is written as an exchange all the same:
 * qemu-user on an x86-64 host translates aarch64's stlr-then-ldar without
 * a barrier between them, so the load passes the store (a store-buffering
 * litmus test saw both loads miss in 18% of rounds there; never on x86-64
 * itself). An exchange is a locked instruction on the host, the test suite
 * runs on qemu, and on x86-64 it compiles to the same xchg as the store. */
#ifndef OX_DEKKER_H
#define OX_DEKKER_H

#include <stdatomic.h>

#define OX__DEKKER_STORE(object, value)                                                            \
    ((void)atomic_exchange_explicit((object), (value), memory_order_seq_cst))

#endif

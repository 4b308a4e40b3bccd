/* lockdep.c - the lock-order checker (described in include/oxide/check.h).
 *
 * Two directed graphs:
 *   the class graph     nodes are lock classes (a registered class's static
 *                       key, or an unregistered lock's own address); an edge
 *                       H -> L means "a thread acquired (or waited for) a
 *                       lock of class L while holding one of class H";
 *   the instance graph  the same for two locks of one class, with the locks'
 *                       addresses as nodes (same-class nesting: see check.h).
 * A new edge u -> v closes a cycle iff v already reaches u; a depth-first
 * search from v tells, and its parent links give the cycle to print. Each
 * edge keeps the sites of its first sighting, which is what the report
 * shows. The search only runs for a new edge: a program that keeps
 * re-taking the same locks in the same order pays a hash lookup per held
 * lock.
 *
 * Retiring a lock (ox_lock_class_forget, or destroying an oxide lock while
 * the checker is on) removes its nodes with every edge into and out of
 * them, and their slots go on free lists for the next new lock, so the
 * memory follows the locks alive, not all the locks ever seen. No deadlock
 * can go through a lock that no longer exists, so forgetting its edges
 * misses nothing (the kernel's lockdep zaps a freed class the same way).
 *
 * All of it sits behind one private futex lock that goes through park.h
 * directly, never through an oxide lock (which would recurse into the
 * checker). The checker allocates with malloc while holding it.
 */
#include "lockdep.h"

#include "oxide/check.h"

#include "../panic/unwind.h"
#include "../sys/sys.h"
#include "../thread/park.h"
#include "../unit/unit.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

atomic_bool ox__lockdep_on;

/* The mode the checker is in; written under graph_word, read relaxed. */
static _Atomic int lockdep_mode;
static _Atomic unsigned reports;

/* ---- the checker's own lock ----
 * 0 unlocked, 1 locked, 2 locked with (possible) waiters: the classic
 * three-state futex mutex. */
static _Atomic uint32_t graph_word;
static const ox__wait_site graph_wait_site = {.what = "the lock-order checker's graph"};

static void graph_lock(void)
{
    uint32_t unlocked = 0;
    /* Acquire: pairs with the release in graph_unlock; the graph written by
     * the previous holder is visible. */
    if (atomic_compare_exchange_strong_explicit(&graph_word, &unlocked, 1, memory_order_acquire,
                                                memory_order_relaxed))
        return;
    while (atomic_exchange_explicit(&graph_word, 2, memory_order_acquire) != 0)
        ox__park_wait(&graph_word, 2, OX_INSTANT_NEVER, &graph_wait_site, &graph_word);
}

static void graph_unlock(void)
{
    /* Release: publishes the graph to the next holder's acquire. */
    if (atomic_exchange_explicit(&graph_word, 0, memory_order_release) == 2)
        ox__park_wake_one(&graph_word);
}

/* The graph lock is never held across fork (docs/threads.md): taken by the
 * forking thread before, released in both processes after. In the child
 * nobody else exists to wait for it, so a plain reset is the release. */
static void graph_before_fork(void)
{
    graph_lock();
}

static void graph_after_fork_parent(void)
{
    graph_unlock();
}

static void graph_after_fork_child(void)
{
    /* Relaxed: the child has one thread. */
    atomic_store_explicit(&graph_word, 0, memory_order_relaxed);
}

/* ---- a pointer-keyed hash map (open addressing, linear probing) ---- */
#define MAP_EMPTY     ((uint64_t)0)
#define MAP_TOMBSTONE ((uint64_t)1)

typedef struct map_slot {
    uint64_t key; /* MAP_EMPTY, MAP_TOMBSTONE, or a key (never 0 or 1) */
    uint64_t value;
    const void *ptr; /* the pointer value of class_of (no int-to-pointer casts) */
} map_slot;

typedef struct ptr_map {
    map_slot *slots;
    size_t cap;  /* a power of two, or 0 */
    size_t used; /* live keys + tombstones */
    size_t live; /* live keys */
} ptr_map;

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL)
        ox_abort("lockdep", "out of memory for the lock-order graph");
    return p;
}

static size_t hash64(uint64_t k)
{
    /* splitmix64's finaliser: addresses differ in their low bits by small
     * strides; this spreads them. */
    k ^= k >> 30;
    k *= 0xbf58476d1ce4e5b9u;
    k ^= k >> 27;
    k *= 0x94d049bb133111ebu;
    k ^= k >> 31;
    return (size_t)k;
}

static map_slot *map_lookup(const ptr_map *m, uint64_t key)
{
    if (m->cap == 0)
        return NULL;
    for (size_t i = hash64(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (m->slots[i].key == key)
            return &m->slots[i];
        if (m->slots[i].key == MAP_EMPTY)
            return NULL;
    }
}

static void map_put(ptr_map *m, uint64_t key, uint64_t value, const void *ptr);

/* Rehashes into a table sized for the live keys (tombstones are dropped),
 * so a map whose keys come and go does not grow with the churn. */
static void map_grow(ptr_map *m)
{
    ptr_map old = *m;
    m->cap = 64;
    while ((old.live + 1) * 2 > m->cap)
        m->cap *= 2;
    m->slots = xcalloc(m->cap, sizeof *m->slots);
    m->used = 0;
    m->live = 0;
    for (size_t i = 0; i < old.cap; i++) {
        if (old.slots[i].key > MAP_TOMBSTONE)
            map_put(m, old.slots[i].key, old.slots[i].value, old.slots[i].ptr);
    }
    free(old.slots);
}

static void map_put(ptr_map *m, uint64_t key, uint64_t value, const void *ptr)
{
    map_slot *s = map_lookup(m, key);
    if (s != NULL) {
        s->value = value;
        s->ptr = ptr;
        return;
    }
    if ((m->used + 1) * 4 > m->cap * 3)
        map_grow(m);
    size_t i = hash64(key) & (m->cap - 1);
    while (m->slots[i].key > MAP_TOMBSTONE)
        i = (i + 1) & (m->cap - 1);
    if (m->slots[i].key == MAP_EMPTY)
        m->used++;
    m->live++;
    m->slots[i] = (map_slot){key, value, ptr};
}

static void map_del(ptr_map *m, uint64_t key)
{
    map_slot *s = map_lookup(m, key);
    if (s != NULL) {
        s->key = MAP_TOMBSTONE;
        m->live--;
    }
}

/* ---- the graphs ---- */
#define NO_EDGE          UINT32_MAX
#define THREAD_NAME_KEPT 48

typedef struct node {
    const void *key;
    const ox_lock_class *cls; /* NULL: an unregistered lock, key is its address */
    uint32_t first_out;       /* newest outgoing edge, or NO_EDGE; free: next free node */
    uint32_t first_in;        /* newest incoming edge, or NO_EDGE */
    uint32_t mark;            /* == search_mark: visited by the current search */
    uint32_t parent_edge;     /* the edge the current search reached it by */
} node;

/* Each edge is on two doubly linked lists, its from-node's out-list and its
 * to-node's in-list, so that retiring a node unlinks its edges in O(degree).
 * A free edge's next_out links the free list. */
typedef struct edge {
    uint32_t from, to;
    uint32_t next_out, prev_out, next_in, prev_in;
    const void *from_lock, *to_lock; /* the instances of the first sighting */
    const char *from_kind, *to_kind;
    const char *from_file, *to_file; /* where from was taken; where to was taken */
    int from_line, to_line;
    bool waited; /* seen before blocking (the thread waited for to) */
    bool task;   /* the edge was seen in a task: thread_id and thread are its */
    uint64_t thread_id;
    char thread[THREAD_NAME_KEPT];
} edge;

typedef struct graph {
    const char *what; /* for the report */
    ptr_map node_of;  /* key -> node index */
    ptr_map edge_of;  /* (from << 32 | to) + 2 -> edge index */
    node *nodes;
    size_t n_nodes, cap_nodes; /* slots handed out (live or free), allocated */
    uint32_t free_nodes;       /* free list through first_out, or NO_EDGE */
    edge *edges;
    size_t n_edges, cap_edges;
    uint32_t free_edges; /* free list through next_out, or NO_EDGE */
} graph;

static graph class_graph = {.what = "lock classes", .free_nodes = NO_EDGE, .free_edges = NO_EDGE};
static graph instance_graph = {
    .what = "locks of one class", .free_nodes = NO_EDGE, .free_edges = NO_EDGE};
static ptr_map class_of; /* lock address -> its registered ox_lock_class */
static uint32_t search_mark;
static uint32_t *search_stack;
static size_t search_cap;

static void *grow_array(void *p, size_t *cap, size_t size)
{
    size_t n = *cap ? *cap * 2 : 64;
    void *q = realloc(p, n * size);
    if (q == NULL)
        ox_abort("lockdep", "out of memory for the lock-order graph");
    *cap = n;
    return q;
}

static uint32_t node_get(graph *g, const void *key, const ox_lock_class *cls)
{
    map_slot *s = map_lookup(&g->node_of, (uint64_t)(uintptr_t)key);
    if (s != NULL)
        return (uint32_t)s->value;
    uint32_t i = g->free_nodes;
    if (i != NO_EDGE) {
        g->free_nodes = g->nodes[i].first_out;
    } else {
        if (g->n_nodes == g->cap_nodes)
            g->nodes = grow_array(g->nodes, &g->cap_nodes, sizeof *g->nodes);
        i = (uint32_t)g->n_nodes++;
    }
    g->nodes[i] = (node){.key = key, .cls = cls, .first_out = NO_EDGE, .first_in = NO_EDGE};
    map_put(&g->node_of, (uint64_t)(uintptr_t)key, i, NULL);
    return i;
}

static uint64_t edge_key(uint32_t from, uint32_t to)
{
    return ((uint64_t)from << 32 | to) + 2; /* never MAP_EMPTY or MAP_TOMBSTONE */
}

/* Unlinks edge i from both of its lists and puts it on the free list. */
static void edge_remove(graph *g, uint32_t i)
{
    edge *e = &g->edges[i];
    if (e->prev_out != NO_EDGE)
        g->edges[e->prev_out].next_out = e->next_out;
    else
        g->nodes[e->from].first_out = e->next_out;
    if (e->next_out != NO_EDGE)
        g->edges[e->next_out].prev_out = e->prev_out;
    if (e->prev_in != NO_EDGE)
        g->edges[e->prev_in].next_in = e->next_in;
    else
        g->nodes[e->to].first_in = e->next_in;
    if (e->next_in != NO_EDGE)
        g->edges[e->next_in].prev_in = e->prev_in;
    map_del(&g->edge_of, edge_key(e->from, e->to));
    e->next_out = g->free_edges;
    g->free_edges = i;
}

/* Retires the node keyed by key, if any: its edges, its index entry and
 * its slot are freed for reuse. */
static void node_forget(graph *g, const void *key)
{
    map_slot *s = map_lookup(&g->node_of, (uint64_t)(uintptr_t)key);
    if (s == NULL)
        return;
    uint32_t n = (uint32_t)s->value;
    map_del(&g->node_of, (uint64_t)(uintptr_t)key);
    while (g->nodes[n].first_out != NO_EDGE)
        edge_remove(g, g->nodes[n].first_out);
    while (g->nodes[n].first_in != NO_EDGE)
        edge_remove(g, g->nodes[n].first_in);
    g->nodes[n] = (node){.first_out = g->free_nodes, .first_in = NO_EDGE};
    g->free_nodes = n;
}

/* Is there a path from 'from' to 'to'? If so, the nodes on it have their
 * parent_edge set for this search (to's parent chain leads back to from). */
static bool reaches(graph *g, uint32_t from, uint32_t to)
{
    if (++search_mark == 0) { /* wrapped: clear the stale marks */
        for (size_t i = 0; i < g->n_nodes; i++)
            g->nodes[i].mark = 0;
        search_mark = 1;
    }
    size_t top = 0;
    if (search_cap == 0)
        search_stack = grow_array(search_stack, &search_cap, sizeof *search_stack);
    search_stack[top++] = from;
    g->nodes[from].mark = search_mark;
    while (top > 0) {
        uint32_t n = search_stack[--top];
        if (n == to)
            return true;
        for (uint32_t e = g->nodes[n].first_out; e != NO_EDGE; e = g->edges[e].next_out) {
            uint32_t m = g->edges[e].to;
            if (g->nodes[m].mark == search_mark)
                continue;
            g->nodes[m].mark = search_mark;
            g->nodes[m].parent_edge = e;
            if (top == search_cap)
                search_stack = grow_array(search_stack, &search_cap, sizeof *search_stack);
            search_stack[top++] = m;
        }
    }
    return false;
}

/* ---- the report ---- */

/* Who is acquiring: the running task, not the worker thread that runs it
 * (a task moves between workers; its name and id are what the user
 * knows), else the thread: ox__unit_current(). */

static void describe_lock(FILE *out, const graph *g, uint32_t n, const void *lock, const char *kind)
{
    const node *nd = &g->nodes[n];
    fprintf(out, "%s %p", kind ? kind : "lock", lock);
    if (nd->cls != NULL)
        fprintf(out, " '%s' (class of %s:%d)", nd->cls->name, nd->cls->file, nd->cls->line);
}

static void print_edge(FILE *out, const graph *g, const edge *e, int index)
{
    fprintf(out, "  #%d %s '%s' (id %llu) %s ", index, e->task ? "task" : "thread", e->thread,
            (unsigned long long)e->thread_id, e->waited ? "waited for" : "acquired");
    describe_lock(out, g, e->to, e->to_lock, e->to_kind);
    fprintf(out, "\n       at %s:%d\n     while holding ", e->to_file ? e->to_file : "?",
            e->to_line);
    describe_lock(out, g, e->from, e->from_lock, e->from_kind);
    fprintf(out, "\n       acquired at %s:%d\n", e->from_file ? e->from_file : "?", e->from_line);
}

/* Prints the cycle closed by edge index closing (from u to v; v reaches u
 * through the parent links of the last search). */
static void report_cycle(graph *g, uint32_t closing)
{
    uint32_t u = g->edges[closing].from, v = g->edges[closing].to;
    size_t len = 1;
    for (uint32_t n = u; n != v; n = g->edges[g->nodes[n].parent_edge].from)
        len++;
    uint32_t *path = xcalloc(len, sizeof *path);
    size_t i = len;
    for (uint32_t n = u; n != v; n = g->edges[g->nodes[n].parent_edge].from)
        path[--i] = g->nodes[n].parent_edge;
    path[0] = closing;

    fflush(stdout);
    fprintf(stderr,
            "oxide lockdep: possible deadlock: the lock order has a cycle through %zu %s\n"
            "  (each lock below is taken while the one before it is held; if the threads run\n"
            "   these steps at the same time, each waits for the next forever)\n",
            len, g->what);
    for (size_t k = 0; k < len; k++)
        print_edge(stderr, g, &g->edges[path[k]], (int)k + 1);
    fflush(stderr);
    free(path);
}

/* Adds the edge from -> to to g unless it exists. Returns true if it is new
 * and closes a cycle (reported here). */
static bool add_edge(graph *g, uint32_t from, uint32_t to, const ox__unwind_entry *held,
                     const void *lock, const ox__lock_ops *ops, const char *file, int line,
                     bool waited)
{
    uint64_t key = edge_key(from, to);
    if (map_lookup(&g->edge_of, key) != NULL)
        return false;
    uint32_t i = g->free_edges;
    if (i != NO_EDGE) {
        g->free_edges = g->edges[i].next_out;
    } else {
        if (g->n_edges == g->cap_edges)
            g->edges = grow_array(g->edges, &g->cap_edges, sizeof *g->edges);
        i = (uint32_t)g->n_edges++;
    }
    edge *e = &g->edges[i];
    *e = (edge){.from = from,
                .to = to,
                .next_out = g->nodes[from].first_out,
                .prev_out = NO_EDGE,
                .next_in = g->nodes[to].first_in,
                .prev_in = NO_EDGE,
                .from_lock = held->object,
                .to_lock = lock,
                .from_kind = held->u.lock_ops->kind,
                .to_kind = ops->kind,
                .from_file = held->file,
                .from_line = held->line,
                .to_file = file,
                .to_line = line,
                .waited = waited};
    ox__unit_who who = ox__unit_current();
    e->task = who.task;
    e->thread_id = who.id;
    snprintf(e->thread, sizeof e->thread, "%s", who.name);
    if (e->next_out != NO_EDGE)
        g->edges[e->next_out].prev_out = i;
    g->nodes[from].first_out = i;
    if (e->next_in != NO_EDGE)
        g->edges[e->next_in].prev_in = i;
    g->nodes[to].first_in = i;
    map_put(&g->edge_of, key, i, NULL);
    if (!reaches(g, to, from))
        return false;
    report_cycle(g, i);
    return true;
}

/* ---- the per-thread cache of pairs already recorded ----
 * A program re-takes the same locks in the same order millions of times;
 * once the edge for (held lock, new lock) is in the graph, looking it up
 * again under the graph lock is wasted work (an edge goes away only when a
 * lock is retired, which bumps the generation below). Each
 * thread remembers the pairs it recorded, tagged with the class generation
 * (bumped by every register and forget, which change what a lock address
 * means), in a small direct-mapped table. A stale generation read relaxed
 * can only make the thread skip an edge it recorded under the previous
 * meaning of an address: a missed edge, never a false report. */
#define PAIR_CACHE 64

typedef struct pair_entry {
    const void *held, *lock;
    uint64_t generation;
} pair_entry;

static _Atomic uint64_t class_generation = 1;
static _Thread_local pair_entry pair_cache[PAIR_CACHE];

/* This thread's cache, its address computed afresh: add_edges may wait
 * for the graph lock between two uses, and a task that waits may resume
 * on another worker, where an address the compiler kept from before the
 * wait is the old worker's cache (unit.h: ox__unit_task_get says why).
 * Out of line is not enough: clang sees that the function returns the
 * constant &pair_cache and computes it in the caller, once, before the
 * wait (aarch64: one mrs; x86-64 position-independent code, as in
 * liboxide.so: one __tls_get_addr). The asm hides what the pointer is,
 * so the caller must use the value returned. */
__attribute__((noinline)) static pair_entry *pair_cache_get(void)
{
    pair_entry *cache = pair_cache;
    __asm__ volatile("" : "+r"(cache) : : "memory");
    return cache;
}

static pair_entry *pair_slot(pair_entry *cache, const void *held, const void *lock)
{
    size_t h = hash64((uint64_t)(uintptr_t)held * 31 + (uint64_t)(uintptr_t)lock);
    return &cache[h & (PAIR_CACHE - 1)];
}

static bool pairs_all_cached(const ox__unwind_entry *held, uint32_t depth, const void *lock,
                             uint64_t generation)
{
    pair_entry *cache = pair_cache_get();
    for (uint32_t i = 0; i < depth; i++) {
        const ox__unwind_entry *h = &held[i];
        if (!ox__entry_is_lock(h) || h->object == lock)
            continue;
        const pair_entry *e = pair_slot(cache, h->object, lock);
        if (e->held != h->object || e->lock != lock || e->generation != generation)
            return false;
    }
    return true;
}

uint64_t ox__lockdep_generation(void)
{
    return atomic_load_explicit(&class_generation, memory_order_relaxed);
}

uint64_t ox__lockdep_pair_cached(const void *held, const void *lock)
{
    const pair_entry *e = pair_slot(pair_cache_get(), held, lock);
    return e->held == held && e->lock == lock ? e->generation : 0;
}

static const ox_lock_class *class_lookup(const void *lock)
{
    const map_slot *s = map_lookup(&class_of, (uint64_t)(uintptr_t)lock);
    return s ? (const ox_lock_class *)s->ptr : NULL;
}

/* Records the edges into lock from every other lock the calling thread
 * holds. top: how many entries of the held record to look at (the lock
 * itself is excluded by address, so a recursive read lock adds nothing). */
static void add_edges(const void *lock, const ox__lock_ops *ops, const char *file, int line,
                      bool waited)
{
    uint32_t depth;
    const ox__unwind_entry *held = ox__held_entries(&depth);
    uint64_t generation = atomic_load_explicit(&class_generation, memory_order_relaxed);
    if (pairs_all_cached(held, depth, lock, generation))
        return;
    bool cycle = false;
    graph_lock();
    if (atomic_load_explicit(&reports, memory_order_relaxed) != 0) {
        graph_unlock(); /* another thread reported while we came here */
        return;
    }
    /* A task that waited for the graph lock may have resumed on another
     * worker: the record read above was the old worker's live record (the
     * entries of whatever runs there now). Read ours again; its contents
     * are what they were (nothing was pushed while we waited). */
    held = ox__held_entries(&depth);
    pair_entry *cache = pair_cache_get();
    const ox_lock_class *cls = class_lookup(lock);
    const void *key = cls ? (const void *)cls : lock;
    uint32_t to = node_get(&class_graph, key, cls);
    for (uint32_t i = 0; i < depth && !cycle; i++) {
        const ox__unwind_entry *h = &held[i];
        if (!ox__entry_is_lock(h) || h->object == lock)
            continue;
        const ox_lock_class *hcls = class_lookup(h->object);
        const void *hkey = hcls ? (const void *)hcls : h->object;
        if (hkey == key) {
            /* Same class: order the two instances instead. */
            uint32_t a = node_get(&instance_graph, h->object, hcls);
            uint32_t b = node_get(&instance_graph, lock, cls);
            cycle = add_edge(&instance_graph, a, b, h, lock, ops, file, line, waited);
        } else {
            uint32_t from = node_get(&class_graph, hkey, hcls);
            cycle = add_edge(&class_graph, from, to, h, lock, ops, file, line, waited);
        }
        if (!cycle)
            *pair_slot(cache, h->object, lock) = (pair_entry){h->object, lock, generation};
    }
    int mode = atomic_load_explicit(&lockdep_mode, memory_order_relaxed);
    if (cycle) {
        atomic_store_explicit(&reports, 1, memory_order_relaxed);
        /* Off after the first report, as the kernel's lockdep. */
        atomic_store_explicit(&lockdep_mode, OX_LOCKDEP_OFF, memory_order_relaxed);
        atomic_store_explicit(&ox__lockdep_on, false, memory_order_relaxed);
    }
    graph_unlock();
    if (cycle && mode == OX_LOCKDEP_ABORT)
        ox_abort("lockdep", "aborting at the first lock-order cycle (OX_LOCKDEP=abort)");
}

/* The checker's entry points, which the unit layer calls through
 * (ox__lock_checker in unit.h): registered before main. */
static void acquired(const void *lock, const ox__lock_ops *ops, const char *file, int line)
{
    uint32_t depth;
    ox__held_entries(&depth);
    if (depth < 2)
        return; /* nothing else held: no edge (the common case, kept cheap) */
    add_edges(lock, ops, file, line, false);
}

static void before_block(const void *lock, const ox__lock_ops *ops, const char *file, int line)
{
    uint32_t depth;
    ox__held_entries(&depth);
    if (depth < 1)
        return;
    add_edges(lock, ops, file, line, true);
}

static const ox__lock_checker checker = {.acquired = acquired, .before_block = before_block};

void ox__lockdep_blocks_forever(const char *what, const void *object)
{
    uint32_t depth;
    const ox__unwind_entry *held = ox__held_entries(&depth);
    fflush(stdout);
    ox__unit_who who = ox__unit_current();
    fprintf(stderr, "oxide lockdep: %s '%s' (id %llu) blocks forever: %s %p\n",
            who.task ? "task" : "thread", who.name, (unsigned long long)who.id, what, object);
    for (uint32_t i = depth; i-- > 0;)
        if (ox__entry_is_lock(&held[i]))
            fprintf(stderr, "     while holding %s %p\n       acquired at %s:%d\n",
                    held[i].u.lock_ops->kind, held[i].object, held[i].file ? held[i].file : "?",
                    held[i].line);
    fflush(stderr);
    if (atomic_load_explicit(&lockdep_mode, memory_order_relaxed) == OX_LOCKDEP_ABORT)
        ox_abort("lockdep", "aborting: a thread would block forever (OX_LOCKDEP=abort)");
}

/* ---- public ---- */

int ox_lockdep_enable(ox_lockdep_mode mode)
{
    if (mode != OX_LOCKDEP_OFF && mode != OX_LOCKDEP_REPORT && mode != OX_LOCKDEP_ABORT)
        return OX_EINVAL;
    graph_lock();
    atomic_store_explicit(&lockdep_mode, (int)mode, memory_order_relaxed);
    atomic_store_explicit(&ox__lockdep_on, mode != OX_LOCKDEP_OFF, memory_order_relaxed);
    graph_unlock();
    return 0;
}

ox_lockdep_mode ox_lockdep_mode_get(void)
{
    return (ox_lockdep_mode)atomic_load_explicit(&lockdep_mode, memory_order_relaxed);
}

unsigned ox_lockdep_reports(void)
{
    return atomic_load_explicit(&reports, memory_order_relaxed);
}

void ox_lock_class_register(const void *lock, const ox_lock_class *cls)
{
    if (lock == NULL || cls == NULL)
        ox_abort("ox_lock_class_register", "NULL %s", lock == NULL ? "lock" : "class");
    if (!atomic_load_explicit(&ox__lockdep_on, memory_order_relaxed))
        return;
    graph_lock();
    map_put(&class_of, (uint64_t)(uintptr_t)lock, 0, cls);
    atomic_fetch_add_explicit(&class_generation, 1, memory_order_relaxed);
    graph_unlock();
}

void ox_lock_class_forget(const void *lock)
{
    if (!atomic_load_explicit(&ox__lockdep_on, memory_order_relaxed))
        return;
    graph_lock();
    map_del(&class_of, (uint64_t)(uintptr_t)lock);
    /* The lock is gone: its nodes (its own class if it had none registered,
     * its instance node) go with their edges, and the next lock at this
     * address starts afresh. A registered class's node stays: other locks
     * of the class still stand for it. */
    node_forget(&class_graph, lock);
    node_forget(&instance_graph, lock);
    atomic_fetch_add_explicit(&class_generation, 1, memory_order_relaxed);
    graph_unlock();
}

static size_t graph_bytes(const graph *g)
{
    return g->cap_nodes * sizeof(node) + g->cap_edges * sizeof(edge) +
           (g->node_of.cap + g->edge_of.cap) * sizeof(map_slot);
}

size_t ox__lockdep_bytes(void)
{
    graph_lock();
    size_t n = graph_bytes(&class_graph) + graph_bytes(&instance_graph) +
               class_of.cap * sizeof(map_slot) + search_cap * sizeof *search_stack;
    graph_unlock();
    return n;
}

/* OX_DUMP_SIGNAL=USR1 | USR2 | <number> (ox_dump_on_signal). Read here
 * rather than in blocked.c: this file is always linked (the held record
 * refers to it), blocked.o only when something calls into it. */
static void dump_signal_from_env(void)
{
    const char *v = getenv("OX_DUMP_SIGNAL");
    if (v == NULL || *v == '\0')
        return;
    const char *name = strncmp(v, "SIG", 3) == 0 ? v + 3 : v;
    int signo = 0;
    if (strcmp(name, "USR1") == 0)
        signo = SIGUSR1;
    else if (strcmp(name, "USR2") == 0)
        signo = SIGUSR2;
    else {
        char *end;
        long n = strtol(v, &end, 10);
        if (*end == '\0' && n > 0 && n < 65)
            signo = (int)n;
    }
    int rc = signo ? ox_dump_on_signal(signo) : EINVAL;
    if (rc != 0)
        fprintf(stderr,
                "oxide: OX_DUMP_SIGNAL='%s' is not USR1, USR2 or a signal number that can be "
                "caught (%s); no dump on signal\n",
                v, strerror(rc));
}

/* OX_LOCKDEP (and OX_DUMP_SIGNAL), read before main and before
 * constructors of the default priority, so locks they register are seen.
 * After park.c's (101): see registry_fork_handlers there for the order. */
__attribute__((constructor(102))) static void check_from_env(void)
{
    ox__unit_lock_checker_set(&checker);
    ox__sys_atfork(graph_before_fork, graph_after_fork_parent, graph_after_fork_child);
    dump_signal_from_env();
    const char *v = getenv("OX_LOCKDEP");
    if (v == NULL || *v == '\0' || strcmp(v, "0") == 0 || strcmp(v, "off") == 0)
        return;
    if (strcmp(v, "1") == 0 || strcmp(v, "on") == 0 || strcmp(v, "report") == 0)
        ox_lockdep_enable(OX_LOCKDEP_REPORT);
    else if (strcmp(v, "abort") == 0)
        ox_lockdep_enable(OX_LOCKDEP_ABORT);
    else
        fprintf(stderr,
                "oxide: OX_LOCKDEP='%s' is not one of 0, off, 1, on, report, abort; the "
                "lock-order checker stays off\n",
                v);
}

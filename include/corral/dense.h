/*
 * dense.h — a pool of same-sized objects packed side by side in blocks of
 * their own, for the per-waiter state that one thread walks for a whole
 * herd: the herd nodes (cache.c) and the herd slots (serve.c).
 *
 * Why not the waiters' stacks or malloc: on the bench VM (Firecracker) the
 * first access to a page nobody touched for a few hundred milliseconds
 * costs ~12 µs (the host tracks guest memory), so a walk over 1,000 stacks
 * costs ~12 ms where the same objects packed a few to a page cost a
 * fraction of that; and on any machine they are fewer cache and TLB misses.
 *
 * Blocks are carved up once and never given back: a pool holds at most as
 * many objects as were ever in use at once (a herd slot is 1.75 KiB: 10,000
 * waiters at once leave 17.5 MiB; /metrics' herd_memory_bytes counts the
 * blocks of every pool). Thread-safe (one mutex). Under
 * AddressSanitizer a free object is poisoned but for its link word, so a
 * use after dense_put is reported as one after free() would be.
 */
#ifndef CORRAL_DENSE_H
#define CORRAL_DENSE_H

#include <pthread.h>
#include <stddef.h>

struct dense_pool {
	pthread_mutex_t lock;
	size_t size;              /* of one object, a multiple of 64 */
	void *free;               /* lock: free objects, linked through their first word */
};

/* Objects of at most DENSE_BLOCK bytes (checked at compile time). */
#define DENSE_BLOCK (64 * 1024)
#define DENSE_POOL_INIT(type) \
	{ PTHREAD_MUTEX_INITIALIZER, \
	  (sizeof(type) + 63) / 64 * 64 + 0 * sizeof(struct { \
		_Static_assert(sizeof(type) <= DENSE_BLOCK, "too big for a dense block"); \
		int x; }), \
	  NULL }

/* An object (64-byte aligned, contents undefined), or NULL when out of
 * memory. */
void *dense_get(struct dense_pool *p);
void dense_put(struct dense_pool *p, void *obj);

#endif

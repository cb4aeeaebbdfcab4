/*
 * cache.h — the shared in-memory store: a table of key heads, each holding
 * the stored variants of one URL, an LRU list and the memory bound.
 *
 * A key head is Servo's per-key shared state: a phase (READY, or
 * PENDING_STORE while a fetch for the key has not yet published its response
 * head), the count of such fetches, and a condvar that every state change on
 * the key broadcasts. The coalescing state machine that uses it is in
 * serve.c; the fetch that feeds it in fetch.c. This file owns the locks:
 *
 *   table lock   the hash table, every head's `users` and `hnext`, the LRU
 *                list, memory accounting, entry.stored/head/lru_*
 *   head->lock   phase, fetches, the variant list (changed only with
 *                the table lock held too, so either lock suffices to read it)
 *   entry->lock  the entry's body and readers (entry.h)
 *
 * Lock order: table -> head -> entry. None is held across network I/O.
 *
 * Lifetime: a head lives while it has users (requests and fetches that took
 * it with cache_head_get) or stored variants. The table holds one reference
 * on each stored entry; eviction unlinks an entry and drops that reference,
 * so an entry being read stays until its last reader lets go.
 *
 * Hit-for-miss: a response that may not be stored leaves a marker entry
 * (entry.hfm) among the key's variants for HFM_TTL_S seconds: requests that
 * find it go upstream in parallel (passed, no coalescing, no extra thread);
 * a storable answer to one of them lifts the marker (cache_forget_hfm), so
 * the next request fetches and stores again (Varnish's hit-for-miss lifetime).
 */
#ifndef CORRAL_CACHE_H
#define CORRAL_CACHE_H

#include <pthread.h>
#include <stdint.h>
#include "corral/entry.h"
#include "corral/http.h"

struct policy_want;

#define HFM_TTL_S 120

enum key_phase {
	KEY_READY,          /* the cache may be read for this key */
	KEY_PENDING_STORE,  /* a fetch is on its way to publishing a head */
};

/* A request waiting on a PENDING_STORE key, on the key's list so that the
 * fetch can send its response head the moment the entry is published
 * (serve.c). The nodes come from a pool of their own (dense.h), not from
 * the waiters' stacks: the fetch writes every claimed waiter's state, and
 * on the bench VM the first access to a page left alone for half a second
 * costs ~12 µs, so a herd's 1,000 stack pages were 13 ms before its first
 * head went out; 64 nodes share a page. */
enum herd_state { HERD_WAITING, HERD_CLAIMED, HERD_DONE };
struct herd_waiter {
	struct herd_waiter *prev, *next;   /* head's lock */
	enum herd_state state;             /* head's lock */
	void *arg;                         /* serve.c's state of the request */
	/* Set by the waiter when it joins (immutable then), and read by the
	 * fetch's thread at publish in place of the waiter's own memory: */
	const struct http_headers *req;    /* the request's headers (Vary) */
	int fd;                            /* the client's socket */
	uint32_t head_kind;                /* deliver_head_kind() */
};

struct keyhead {
	char *key;                 /* normalised URL; immutable */
	uint64_t hash;             /* immutable */
	struct keyhead *hnext;     /* table lock */
	int users;                 /* table lock */

	pthread_mutex_t lock;
	pthread_cond_t changed;    /* broadcast on every publish and failure */
	enum key_phase phase;      /* lock */
	int fetches;               /* lock: fetches that have not published yet */
	struct entry *variants;    /* lock + table lock to change, either to read */
	struct herd_waiter *herd;  /* lock: waiters the next publish claims */
	unsigned failures;         /* lock: fetches of the key that failed
	                              (cache_fail), for waiters to tell */
	int fail_status;           /* lock: the last failed fetch's answer (502,
	                              504, 403) and why, for the requests that */
	char *fail_why;            /* waited for it (serve.c), or NULL when that
	                              failure is not shared (cache_fail) */
};

/* What a fetch tells the request that started it. Protected by the head's
 * lock; `done` goes 0 -> 1 once, with a broadcast on head->changed. */
struct fetch_outcome {
	int done;
	struct entry *entry;       /* a reference for the starter, or NULL: failed */
	const char *not_stored;    /* why the entry is not stored, NULL: stored */
	int revalidated;           /* the fetch asked with a stored variant's
	                              validators: 1 the origin said 304 (the body
	                              is the stored one), 2 it sent a new response */
	struct entry *stale;       /* failed: the stored variant that answers
	                              instead (stale-if-error), a reference with the
	                              starter's reader attached; or NULL */
	int stale_status;          /* then: the origin's 5xx, or the failure's
	                              502/504 */
	int status;                /* failed: 502, 504 or 403 */
	char why[384];             /* failed: a sentence for the error body */
};

int cache_init(void);
/* How many buckets the table of heads has now (it grows: cache.c). */
size_t cache_buckets(void);
/* [cache] memory, at start and on reload; evicts down to it. */
void cache_set_limits(uint64_t memory, uint64_t max_object);
uint64_t cache_max_object(void);
/* The rules policy_storable stores by: max_object, and the heuristic
 * freshness of config `c`. */
struct policy_store_rules;
struct config;
void cache_store_rules(const struct config *c, struct policy_store_rules *out);

/* Find or create the head for `key` and count the caller as a user.
 * NULL when out of memory. */
struct keyhead *cache_head_get(const char *key);
/* Count one more use of a head the caller already uses. */
void cache_head_hold(struct keyhead *h);
/* Stop using `h`. `used` (or NULL) is the stored entry the caller served:
 * it moves to the front of the LRU list. */
void cache_head_put(struct keyhead *h, struct entry *used);

/* The variant of h that fits request headers `req` and may answer it at
 * `now` (seconds): fresh, and what the request's directives `want` allow
 * (policy_acceptable; NULL: fresh is enough). Or NULL. Hit-for-miss markers
 * count while fresh whatever the request asks. Caller holds h->lock. No
 * reference is taken: attach a reader (or take a reference) before
 * unlocking. */
struct entry *cache_lookup(struct keyhead *h, const struct http_headers *req,
                           const struct policy_want *want, int64_t now);

/* The stored variant of h that fits `req`, fresh or not, with its whole
 * body; or NULL. A fetch revalidates it when it has a validator (RFC 9111
 * 4.3.1), and its request may be answered with it stale when the fetch
 * fails and its stale-if-error allows (RFC 5861). Caller holds h->lock; no
 * reference taken. */
struct entry *cache_lookup_stale(struct keyhead *h, const struct http_headers *req);

/* This request will fetch for h: PENDING_STORE, one more fetch pending.
 * Caller holds h->lock. */
void cache_begin_fetch(struct keyhead *h);

/* A fetch publishes its response head: stored (not_stored == NULL) or not
 * (a hit-for-miss marker goes in, `e` goes transit). Counts the fetch done,
 * puts the key back to READY when no other fetch is pending, attaches
 * `starter` (if not NULL) to `e`, fills `out`, and wakes every waiter. */
void cache_publish(struct keyhead *h, struct entry *e, const char *not_stored,
                   struct entry_reader *starter, struct fetch_outcome *out,
                   struct herd_waiter **claimed);

/* A waiter joins h's herd list (HERD_WAITING, `arg` its caller's state):
 * NULL when out of memory (it then waits off the list and finds the entry
 * when woken). It leaves the list while still HERD_WAITING
 * (cache_herd_leave), or gives its node back once HERD_DONE
 * (cache_herd_forget); caller holds h->lock for all three. The herd states
 * move only here, in cache_publish and in cache_herd_done. */
struct herd_waiter *cache_herd_join(struct keyhead *h, void *arg, const struct http_headers *req,
                                    int fd, uint32_t head_kind);
void cache_herd_leave(struct keyhead *h, struct herd_waiter *w);
void cache_herd_forget(struct herd_waiter *w);

/* With `claimed` not NULL and waiters on h's list, cache_publish claims them
 * (HERD_CLAIMED: their sessions are the caller's until cache_herd_done) and
 * returns them in *claimed instead of waking anyone; the caller sends their
 * heads (serve_herd_heads) and then calls cache_herd_done, which marks them
 * HERD_DONE and does what cache_publish left: the fetch counted done, READY,
 * everyone woken. */
void cache_herd_done(struct keyhead *h, struct herd_waiter *claimed, struct fetch_outcome *out);

/* A fetch failed before a response head: counts it done and wakes the
 * waiters. With `shared` (a failure another try now would meet again: a
 * timeout, a refused or unresolvable or unverifiable destination), every
 * waiter answers with this status and why; otherwise (a reset, a closed
 * connection) the first to see the key READY fetches next and the others
 * keep waiting for that try. */
void cache_fail(struct keyhead *h, int status, const char *why, int shared,
                struct fetch_outcome *out);

/* A request passed because of h's hit-for-miss marker got an answer that
 * may be stored: take the marker out, so that the next request fetches and
 * stores. */
void cache_forget_hfm(struct keyhead *h);

/* Take every stored variant of `key` out (hit-for-miss markers too): a
 * successful unsafe request changed the resource (RFC 9111 4.4). A fetch
 * in flight for the key still publishes what it gets. Returns how many
 * entries went. */
int cache_invalidate(const char *key);

/* `n` more body bytes arrived in stored entry `e`: charge them, keep the
 * store under its bound. Returns 1 while `e` is stored, 0 once it is not
 * (evicted, or grown past max_object: it is then transit). */
int cache_grow(struct entry *e, size_t n);

/* Take `e` out of the store (a fetch that broke off): the next request
 * fetches anew. */
void cache_unstore(struct entry *e);

#endif

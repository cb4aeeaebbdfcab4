/*
 * cache.c — the store: key heads in a hash table, stored entries on an LRU
 * list, memory accounting and eviction (see cache.h for the locks).
 *
 * Eviction runs where memory grows (publish, body growth, a smaller bound on
 * reload) with the table lock held: victims are taken from the LRU tail,
 * unlinked from their key's variants under that key's lock, and released
 * after the table lock is dropped. A victim still being fetched becomes
 * transit, so its fetch keeps feeding its readers in bounded memory.
 */
#include "corral/cache.h"
#include "corral/config.h"
#include "corral/dense.h"
#include "corral/policy.h"
#include "corral/stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The table starts with 2^16 buckets and doubles whenever it holds more
 * than two heads per bucket, so a chain stays short however many small
 * objects `memory` holds (2^16 buckets were fixed before: a million heads
 * made every lookup walk 16 of them under the table lock). A doubling
 * rehashes every head under the table lock, which requests wait for: once
 * per doubling, as the table reaches each size. It never shrinks. */
#define BUCKETS_INITIAL (1u << 16)
#define HEADS_PER_BUCKET 2
#define ENTRY_OVERHEAD 512 /* charged per entry besides its headers and body */

static struct {
	pthread_mutex_t lock;
	/* everything below: protected by lock */
	struct keyhead **buckets;
	size_t nbuckets;                     /* a power of two */
	size_t heads;                        /* in the buckets */
	size_t grow_at;                      /* heads past which to double */
	struct entry *lru_first, *lru_last; /* most recently used first */
	uint64_t memory, limit, max_object;
	uint64_t objects;
} table = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Entries unlinked under the table lock, to be released once it is dropped
 * (chained through entry.victim_next: any number of them). */
struct victims {
	struct entry *first;
};

static uint64_t hash_key(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

int cache_init(void)
{
	table.buckets = calloc(BUCKETS_INITIAL, sizeof *table.buckets);
	table.nbuckets = BUCKETS_INITIAL;
	table.grow_at = BUCKETS_INITIAL * HEADS_PER_BUCKET;
	return table.buckets ? 0 : -1;
}

static struct keyhead **bucket_of(uint64_t hash)
{
	return &table.buckets[hash & (table.nbuckets - 1)];
}

/* Double the buckets when they hold more than HEADS_PER_BUCKET heads each.
 * Out of memory: the chains stay as they are until another bucketful of
 * heads has come (not an allocation tried under the lock for every new
 * head). Table lock held. */
static void buckets_maybe_grow(void)
{
	if (table.heads <= table.grow_at)
		return;
	size_t n = table.nbuckets * 2;
	struct keyhead **b = calloc(n, sizeof *b);
	if (b == NULL) {
		table.grow_at += table.nbuckets;
		return;
	}
	for (size_t i = 0; i < table.nbuckets; i++) {
		struct keyhead *h = table.buckets[i], *next;
		for (; h; h = next) {
			next = h->hnext;
			h->hnext = b[h->hash & (n - 1)];
			b[h->hash & (n - 1)] = h;
		}
	}
	free(table.buckets);
	table.buckets = b;
	table.nbuckets = n;
	table.grow_at = n * HEADS_PER_BUCKET;
}

size_t cache_buckets(void)
{
	pthread_mutex_lock(&table.lock);
	size_t n = table.nbuckets;
	pthread_mutex_unlock(&table.lock);
	return n;
}

static void head_free(struct keyhead *h)
{
	pthread_mutex_destroy(&h->lock);
	pthread_cond_destroy(&h->changed);
	free(h->fail_why);
	free(h->key);
	free(h);
}

/* ---- LRU and accounting: table lock held ---------------------------- */

static void lru_unlink(struct entry *e)
{
	if (e->lru_prev)
		e->lru_prev->lru_next = e->lru_next;
	else
		table.lru_first = e->lru_next;
	if (e->lru_next)
		e->lru_next->lru_prev = e->lru_prev;
	else
		table.lru_last = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
}

static void lru_push_front(struct entry *e)
{
	e->lru_prev = NULL;
	e->lru_next = table.lru_first;
	if (table.lru_first)
		table.lru_first->lru_prev = e;
	else
		table.lru_last = e;
	table.lru_first = e;
}

static void charge(struct entry *e, int64_t n)
{
	e->charged += (uint64_t)n;
	table.memory += (uint64_t)n;
	stats_add(STAT_cache_memory_bytes, n);
}

/* What a stored entry costs besides its body: its head twice (parsed and
 * serialised), its Vary values and its key's head (charged to each variant:
 * an over-count when a key has several, never an under-count). */
static uint64_t head_size(const struct entry *e, const struct keyhead *h)
{
	uint64_t n = ENTRY_OVERHEAD + sizeof *h + strlen(h->key) + e->wire_head_len;
	if (e->vary)
		n += strlen(e->vary);
	for (int i = 0; i < e->headers.n; i++)
		n += strlen(e->headers.v[i].name) + strlen(e->headers.v[i].value) + 4;
	for (int i = 0; i < e->vary_req.n; i++)
		n += strlen(e->vary_req.v[i].name) + strlen(e->vary_req.v[i].value) + 4;
	return n;
}

/* Take stored entry e out of the table and its key's variants. The caller
 * holds the table lock and e->head's lock; the table's reference moves to
 * `out`. */
static void unlink_locked(struct entry *e, struct victims *out)
{
	struct keyhead *h = e->head;
	for (struct entry **pp = &h->variants; *pp; pp = &(*pp)->variant_next)
		if (*pp == e) {
			*pp = e->variant_next;
			break;
		}
	e->variant_next = NULL;
	lru_unlink(e);
	table.memory -= e->charged;
	stats_add(STAT_cache_memory_bytes, -(int64_t)e->charged);
	e->charged = 0;
	e->stored = 0;
	e->head = NULL;
	table.objects--;
	stats_add(STAT_cache_objects, -1);
	e->victim_next = out->first;
	out->first = e;
}

static void head_maybe_free(struct keyhead *h);

/* Unlink stored entry e under its key's lock, then free the key's head if
 * that was all it held. Table lock held, no head lock. */
static void unstore_locked(struct entry *e, struct victims *out)
{
	struct keyhead *h = e->head;
	pthread_mutex_lock(&h->lock);
	unlink_locked(e, out);
	pthread_mutex_unlock(&h->lock);
	head_maybe_free(h);
}

/* Evict from the LRU tail until memory fits, sparing `keep` (the entry
 * growing now). Table lock held, no head lock. */
static void evict_locked(struct entry *keep, struct victims *out)
{
	struct entry *e = table.lru_last;
	while (table.memory > table.limit && e) {
		struct entry *prev = e->lru_prev;
		if (e != keep) {
			unstore_locked(e, out);
			stats_inc(STAT_cache_evictions_total);
		}
		e = prev;
	}
}

/* Drop the table's references taken by unlink_locked. No lock held. */
static void release(struct victims *v)
{
	while (v->first) {
		struct entry *e = v->first;
		v->first = e->victim_next;
		e->victim_next = NULL;
		entry_make_transit(e);
		entry_unref(&e);
	}
}

/* ---- heads ------------------------------------------------------------ */

/* Free h if nobody uses it and it stores nothing. Table lock held. */
static void head_maybe_free(struct keyhead *h)
{
	if (h->users > 0 || h->variants != NULL)
		return;
	struct keyhead **pp = bucket_of(h->hash);
	for (; *pp; pp = &(*pp)->hnext)
		if (*pp == h) {
			*pp = h->hnext;
			table.heads--;
			break;
		}
	head_free(h);
}

struct keyhead *cache_head_get(const char *key)
{
	uint64_t hash = hash_key(key);
	struct keyhead *fresh = NULL;
	for (;;) {
		pthread_mutex_lock(&table.lock);
		struct keyhead *h = *bucket_of(hash);
		for (; h; h = h->hnext)
			if (h->hash == hash && strcmp(h->key, key) == 0)
				break;
		if (h == NULL && fresh != NULL) {
			h = fresh;
			fresh = NULL;
			h->hnext = *bucket_of(hash);
			*bucket_of(hash) = h;
			table.heads++;
			buckets_maybe_grow();
		}
		if (h)
			h->users++;
		pthread_mutex_unlock(&table.lock);
		if (h) {
			if (fresh)
				head_free(fresh);
			return h;
		}
		/* allocate outside the lock, then look again */
		fresh = calloc(1, sizeof *fresh);
		if (fresh == NULL || (fresh->key = strdup(key)) == NULL) {
			free(fresh);
			return NULL;
		}
		fresh->hash = hash;
		fresh->phase = KEY_READY;
		pthread_mutex_init(&fresh->lock, NULL);
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* waits survive clock steps */
		pthread_cond_init(&fresh->changed, &ca);
		pthread_condattr_destroy(&ca);
	}
}

void cache_head_hold(struct keyhead *h)
{
	pthread_mutex_lock(&table.lock);
	h->users++;
	pthread_mutex_unlock(&table.lock);
}

void cache_head_put(struct keyhead *h, struct entry *used)
{
	pthread_mutex_lock(&table.lock);
	if (used && used->stored && used != table.lru_first) {
		lru_unlink(used);
		lru_push_front(used);
	}
	h->users--;
	head_maybe_free(h);
	pthread_mutex_unlock(&table.lock);
}

struct entry *cache_lookup(struct keyhead *h, const struct http_headers *req,
                           const struct policy_want *want, int64_t now)
{
	for (struct entry *e = h->variants; e; e = e->variant_next) {
		int64_t age = entry_age(e, now);
		if (e->hfm ? !policy_fresh(e->freshness_lifetime, age)
		           : !policy_acceptable(want, &e->headers, e->freshness_lifetime, age))
			continue;
		if (e->hfm || policy_vary_match(e->vary, &e->vary_req, req))
			return e;
	}
	return NULL;
}

struct entry *cache_lookup_stale(struct keyhead *h, const struct http_headers *req)
{
	for (struct entry *e = h->variants; e; e = e->variant_next) {
		if (e->hfm || !policy_vary_match(e->vary, &e->vary_req, req))
			continue;
		enum entry_state st;
		entry_bytes(e, &st);
		return st == ENTRY_COMPLETE ? e : NULL;
	}
	return NULL;
}

/* Does stored variant `old` answer the same requests as `e`? */
static int same_variant(const struct entry *old, const struct entry *e)
{
	if (e->hfm_error && !old->hfm)
		return 0; /* an error marker keeps the copies a stale-if-error may want */
	if (old->hfm || e->hfm)
		return 1;
	const char *v1 = old->vary, *v2 = e->vary;
	if ((v1 == NULL) != (v2 == NULL) || (v1 && strcasecmp(v1, v2) != 0))
		return 1; /* a different Vary: the new response supersedes */
	return policy_vary_match(v1, &old->vary_req, &e->vary_req);
}

/* Store e under h, replacing the variants it supersedes. Table and head
 * locks held. Takes a reference for the table. */
static void store_locked(struct keyhead *h, struct entry *e, struct victims *out)
{
	struct entry *old = h->variants;
	while (old) {
		struct entry *next = old->variant_next;
		if (same_variant(old, e))
			unlink_locked(old, out);
		old = next;
	}
	entry_ref(e);
	e->head = h;
	e->stored = 1;
	e->variant_next = h->variants;
	h->variants = e;
	lru_push_front(e);
	uint64_t body;
	enum entry_state st;
	body = entry_bytes(e, &st);
	charge(e, (int64_t)(head_size(e, h) + body));
	table.objects++;
	stats_add(STAT_cache_objects, 1);
}

/* The key's state machine, READY <-> PENDING_STORE, moves only here and in
 * cache_begin_fetch, and only key_fetch_done wakes the key's waiters. */
void cache_begin_fetch(struct keyhead *h)
{
	h->phase = KEY_PENDING_STORE;
	h->fetches++;
}

/* One fetch of h has its outcome in `out` (h->lock held): count it done,
 * READY again when no other is pending, and wake everyone waiting on h. */
static void key_fetch_done(struct keyhead *h, struct fetch_outcome *out)
{
	if (--h->fetches == 0)
		h->phase = KEY_READY;
	out->done = 1;
	pthread_cond_broadcast(&h->changed);
}

void cache_publish(struct keyhead *h, struct entry *e, const char *not_stored,
                   struct entry_reader *starter, struct fetch_outcome *out,
                   struct herd_waiter **claimed)
{
	struct victims v = { .first = NULL };
	struct entry *marker = NULL;
	if (not_stored) {
		/* allocated before locking; stored in the table's name */
		marker = entry_new();
		if (marker) {
			marker->hfm = 1;
			marker->hfm_error = e->status == 500 || e->status == 502 ||
			                    e->status == 503 || e->status == 504;
			marker->request_time = marker->response_time = e->response_time;
			marker->date_value = marker->age_value = -1;
			marker->freshness_lifetime = HFM_TTL_S;
			entry_finish(marker, ENTRY_COMPLETE);
		}
		entry_make_transit(e);
	}
	pthread_mutex_lock(&table.lock);
	pthread_mutex_lock(&h->lock);
	if (not_stored == NULL) {
		store_locked(h, e, &v);
		stats_inc(STAT_cache_stored_total);
	} else {
		if (marker)
			store_locked(h, marker, &v);
		stats_inc(STAT_cache_not_stored_total);
	}
	if (starter)
		entry_attach(e, starter); /* from byte 0: cannot fail */
	entry_ref(e);
	out->entry = e;
	out->not_stored = not_stored;
	if (claimed && h->herd && not_stored == NULL) {
		/* the waiters' heads go out first (cache_herd_done wakes) */
		*claimed = h->herd;
		h->herd = NULL;
		for (struct herd_waiter *w = *claimed; w; w = w->next)
			w->state = HERD_CLAIMED;
	} else {
		if (claimed)
			*claimed = NULL;
		key_fetch_done(h, out);
	}
	pthread_mutex_unlock(&h->lock);
	evict_locked(e, &v);
	pthread_mutex_unlock(&table.lock);
	entry_unref(&marker);
	release(&v);
}

/* Herd nodes (cache.h), packed in a pool of their own. */
static struct dense_pool herd_nodes = DENSE_POOL_INIT(struct herd_waiter);

void cache_herd_forget(struct herd_waiter *w)
{
	dense_put(&herd_nodes, w);
}

/* The herd list is linked by hand, not a <sys/queue.h> LIST like an
 * entry's readers: cache_publish detaches it whole and its waiters are
 * walked afterwards, where a LIST's first element would still point back
 * into the head. */
struct herd_waiter *cache_herd_join(struct keyhead *h, void *arg, const struct http_headers *req,
                                    int fd, uint32_t head_kind)
{
	struct herd_waiter *w = dense_get(&herd_nodes);
	if (w == NULL)
		return NULL;
	w->state = HERD_WAITING;
	w->arg = arg;
	w->req = req;
	w->fd = fd;
	w->head_kind = head_kind;
	w->prev = NULL;
	w->next = h->herd;
	if (h->herd)
		h->herd->prev = w;
	h->herd = w;
	return w;
}

void cache_herd_leave(struct keyhead *h, struct herd_waiter *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		h->herd = w->next;
	if (w->next)
		w->next->prev = w->prev;
	cache_herd_forget(w);
}

void cache_herd_done(struct keyhead *h, struct herd_waiter *claimed, struct fetch_outcome *out)
{
	pthread_mutex_lock(&h->lock);
	for (struct herd_waiter *w = claimed; w; w = w->next)
		w->state = HERD_DONE;
	key_fetch_done(h, out);
	pthread_mutex_unlock(&h->lock);
}

void cache_fail(struct keyhead *h, int status, const char *why, int shared,
                struct fetch_outcome *out)
{
	char *copy = shared ? strdup(why) : NULL; /* NULL: a waiter tries again */
	pthread_mutex_lock(&h->lock);
	h->failures++;
	char *old = h->fail_why;
	h->fail_why = copy;
	h->fail_status = status;
	out->entry = NULL;
	out->status = status;
	snprintf(out->why, sizeof out->why, "%s", why);
	key_fetch_done(h, out);
	pthread_mutex_unlock(&h->lock);
	free(old);
}

void cache_forget_hfm(struct keyhead *h)
{
	struct victims v = { .first = NULL };
	pthread_mutex_lock(&table.lock);
	pthread_mutex_lock(&h->lock);
	for (struct entry *e = h->variants, *next; e; e = next) {
		next = e->variant_next;
		if (e->hfm)
			unlink_locked(e, &v);
	}
	pthread_mutex_unlock(&h->lock);
	pthread_mutex_unlock(&table.lock);
	release(&v);
}

int cache_invalidate(const char *key)
{
	struct victims v = { .first = NULL };
	uint64_t hash = hash_key(key);
	int n = 0;
	pthread_mutex_lock(&table.lock);
	struct keyhead *h = *bucket_of(hash);
	for (; h; h = h->hnext)
		if (h->hash == hash && strcmp(h->key, key) == 0)
			break;
	if (h) {
		pthread_mutex_lock(&h->lock);
		while (h->variants) {
			unlink_locked(h->variants, &v);
			n++;
		}
		pthread_mutex_unlock(&h->lock);
		head_maybe_free(h);
	}
	pthread_mutex_unlock(&table.lock);
	release(&v);
	return n;
}

int cache_grow(struct entry *e, size_t n)
{
	struct victims v = { .first = NULL };
	int stored;
	pthread_mutex_lock(&table.lock);
	if (e->stored) {
		charge(e, (int64_t)n);
		if (e->charged > table.max_object) {
			/* grew past max_object (no Content-Length): stop storing */
			unstore_locked(e, &v);
		} else {
			evict_locked(e, &v);
		}
	}
	stored = e->stored;
	pthread_mutex_unlock(&table.lock);
	release(&v);
	return stored;
}

void cache_unstore(struct entry *e)
{
	struct victims v = { .first = NULL };
	pthread_mutex_lock(&table.lock);
	if (e->stored)
		unstore_locked(e, &v);
	pthread_mutex_unlock(&table.lock);
	release(&v);
}

void cache_set_limits(uint64_t memory, uint64_t max_object)
{
	struct victims v = { .first = NULL };
	pthread_mutex_lock(&table.lock);
	table.limit = memory;
	table.max_object = max_object;
	evict_locked(NULL, &v);
	pthread_mutex_unlock(&table.lock);
	release(&v);
}

void cache_store_rules(const struct config *c, struct policy_store_rules *out)
{
	out->max_object = cache_max_object();
	out->heuristic_percent = c->heuristic_percent;
	out->heuristic_max = c->heuristic_max_ms / 1000;
	out->per_client_xff = c->forwarded_for == FORWARDED_FOR_ON ||
	                      c->forwarded_for == FORWARDED_FOR_TRUNCATE;
}

uint64_t cache_max_object(void)
{
	pthread_mutex_lock(&table.lock);
	uint64_t m = table.max_object;
	pthread_mutex_unlock(&table.lock);
	return m;
}

/*
 * serve.c — the coalescing state machine (DESIGN.md, "the one fetch per
 * key"), run on the worker that holds the client's session.
 *
 *   1. take the key's head (cache_head_get: table lock only to find it);
 *   2. under the head's lock, look for a fresh variant: found -> attach a
 *      reader and deliver (a hit, complete or still streaming); a
 *      hit-for-miss marker -> pass upstream (a storable answer lifts the
 *      marker); nothing and no fetch pending ->
 *      PENDING_STORE, count a fetch, start it as a pool job, and wait for
 *      its outcome;
 *   3. a fetch pending -> wait on the key's condvar (bounded by
 *      coalesce_timeout), then look again: the published entry makes every
 *      waiter a reader; a hit-for-miss marker sends them upstream in
 *      parallel; a failed fetch leaves the key READY and empty, so the first
 *      waiter to look starts the next try while the others wait for it;
 *   4. a waiter out of time goes upstream itself.
 * Requests the cache may not answer (methods, Range, no-cache, bodies) pass.
 */
#include "corral/serve.h"
#include "corral/cache.h"
#include "corral/conditional.h"
#include "corral/config.h"
#include "corral/deliver.h"
#include "corral/dense.h"
#include "corral/exchange.h"
#include "corral/fetch.h"
#include "corral/forward.h"
#include "corral/invalidate.h"
#include "corral/log.h"
#include "corral/policy.h"
#include "corral/range.h"
#include "corral/session.h"
#include "corral/stats.h"
#include "corral/upstream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEY_MAX 8192

enum verdict {
	V_HIT,        /* a stored fresh variant */
	V_COALESCED,  /* waited for another request's fetch, read its entry */
	V_HERD,       /* the same, and the fetch sent this request's head */
	V_FETCH,      /* this request starts the fetch */
	V_PASS_HFM,   /* hit-for-miss: go upstream without coalescing */
	V_PASS_HEAD,  /* HEAD without a stored GET: forward it */
	V_TIMEOUT,    /* waited coalesce_timeout: go upstream */
	V_NOT_STORED, /* only-if-cached and nothing stored to answer with: 504 */
	V_STALE,      /* the fetch it waited for failed; a stale stored copy may
	                 answer (stale-if-error) */
	V_SWR,        /* a stale stored copy answers while it is revalidated
	                 (stale-while-revalidate); *validate set: this request
	                 starts that revalidation, in the background */
	V_FAILED,     /* the fetch it waited for failed: its error answers */
};

static void pass(struct exchange *x, const char *cache_status)
{
	stats_inc(STAT_cache_passes_total);
	x->cache_status = cache_status;
	forward_run(x);
}

/* Cache-Status for a request that waited for another's fetch of e: a
 * revalidation's (RFC 9211 fwd=stale) or a miss's. */
static const char *collapsed_status(const struct entry *e)
{
	return e->revalidated ? "corral; fwd=stale; collapsed; stored"
	                      : "corral; fwd=miss; collapsed; stored";
}

/* only-if-cached, and the cache has nothing that may answer: a 504, and
 * nothing goes upstream (RFC 9111 5.2.1.7; Squid logs it TCP_MISS/504). */
static void not_stored(struct exchange *x)
{
	stats_inc(STAT_cache_misses_total);
	x->result = "TCP_MISS";
	x->hierarchy = "HIER_NONE";
	x->cache_status = "corral; fwd=miss; detail=only-if-cached";
	exchange_error(x, 504, "only-if-cached: no stored response that may answer this request");
}

/* A waiter on the key's herd list (cache.h): what the fetch's thread writes
 * for it at publish (`e`, a reference with `rd` attached, and `d`, its head
 * sent) and what the pump walks for every piece after that (`park`, `rd`).
 * Packed in a pool (dense.h), not on the waiter's stack, where the fetch
 * and the pump would touch a page of each of 1,000 stacks. The waiter's
 * session is the fetch's from HERD_CLAIMED to HERD_DONE, and the waiter
 * reads e and d after seeing HERD_DONE under the head's lock. */
struct herd_slot {
	struct parked_reader park;      /* the fetch parks rd here (deliver_park_now) */
	struct entry_reader rd;
	struct entry *e;
	struct delivery d;
	struct exchange *x;             /* the waiter's (read at publish for the
	                                   first head of its kind) */
};
static struct dense_pool herd_slots = DENSE_POOL_INIT(struct herd_slot);

/* One claimed waiter in serve_herd_heads: what is written for it while the
 * heads go out (an array of these spans a few pages; the waiters' own
 * memory is only read until every head is out). */
struct herd_sending {
	const struct herd_waiter *w;
	int kind;                      /* deliver_herd_send's, or one of: */
#define HERD_NOT_ANSWERED (-2)         /* e does not fit its request (Vary) */
#define HERD_HEAD_LATER (-1)           /* no head sent yet (too many kinds:
                                          deliver_head_now in step 3) */
	ssize_t sent;
};

void serve_herd_heads(struct keyhead *h, struct entry *e, struct herd_waiter *claimed)
{
	const char *status = collapsed_status(e);
	size_t n = 0, i;
	for (struct herd_waiter *w = claimed; w; w = w->next)
		n++;
	struct herd_sending *at = malloc(n * sizeof *at);
	if (at == NULL)
		return; /* no head from here: woken, the waiters find e themselves */
	/* 1. which waiters e answers (their Vary), under the head's lock */
	time_t now = time(NULL);
	pthread_mutex_lock(&h->lock);
	i = 0;
	for (struct herd_waiter *w = claimed; w; w = w->next, i++) {
		at[i].w = w;
		/* (the fetch they waited for answers whatever their
		 * Cache-Control asks: policy_want) */
		at[i].kind = cache_lookup(h, w->req, NULL, now) == e ? HERD_HEAD_LATER
		                                                    : HERD_NOT_ANSWERED;
	}
	pthread_mutex_unlock(&h->lock);
	/* 2. their heads */
	struct herd_heads hh;
	deliver_herd_begin(&hh, e, status);
	for (i = 0; i < n; i++) {
		const struct herd_waiter *w = at[i].w;
		struct herd_slot *hs = w->arg; /* not read: &hs->x is an address */
		if (at[i].kind != HERD_NOT_ANSWERED)
			at[i].kind = deliver_herd_send(&hh, w->head_kind, w->fd, &hs->x, &at[i].sent);
	}
	/* 3. each one's reader attached (a stored entry, before its first
	 * byte: cannot fail), its delivery, and its reader parked */
	for (i = 0; i < n; i++) {
		struct herd_slot *hs = at[i].w->arg;
		if (at[i].kind == HERD_NOT_ANSWERED)
			continue;
		int attached = entry_attach(e, &hs->rd) == 0;
		if (!attached && at[i].kind == HERD_HEAD_LATER)
			continue; /* nothing sent: it looks again when woken */
		entry_ref(e);
		hs->e = e;
		if (at[i].kind == HERD_HEAD_LATER)
			deliver_head_now(hs->x, e, status, &hs->d);
		else
			deliver_herd_sent(&hh, at[i].kind, at[i].sent, &hs->d);
		if (!attached)
			hs->d.failed = 1; /* its head is out: cut it short, visibly */
		deliver_park_now(at[i].w->fd, e, &hs->rd, &hs->d, &hs->park);
		stats_inc(STAT_cache_herd_heads_total);
	}
	free(at);
}

/* The stored variant of h for r, stale, that may answer now because the
 * origin fails (its stale-if-error, or the request's: RFC 5861), with rd
 * attached (under the head's lock, while it is stored: a revalidation that
 * publishes later would make it transit) and a reference taken; or NULL. */
static struct entry *stand_in(struct keyhead *h, const struct request *r,
                              const struct policy_want *want, struct entry_reader *rd)
{
	struct entry *st = cache_lookup_stale(h, &r->headers);
	if (st == NULL || !entry_may_stand_in(st, time(NULL), want->stale_if_error) ||
	    entry_attach(st, rd) != 0)
		return NULL;
	entry_ref(st);
	return st;
}

/* Steps 2 and 3: decide under the head's lock. On V_HIT, V_COALESCED,
 * V_STALE and V_SWR, *found is a referenced entry with `rd` attached; on V_HERD one with
 * (*slot)->rd attached and its head sent by the fetch; on V_FETCH the key
 * is PENDING_STORE with this request's fetch counted; on V_FAILED the
 * failed fetch's status and why are in *fail_status and fail_why. *slot: on V_HERD,
 * the herd slot taken when the request first joined a herd, for the caller
 * to give back; otherwise NULL. */
static enum verdict decide(struct exchange *x, struct keyhead *h, struct entry_reader *rd,
                           struct entry **found, struct herd_slot **slot,
                           const struct policy_want *want, int only_stored, int refresh,
                           struct entry **validate, int *fail_status, char *fail_why,
                           size_t fail_len)
{
	/* refresh: the stored copy found first, which must not answer (a
	 * reference, so that no other entry can take its address) */
	struct entry *stale = NULL;
	const struct request *r = &x->req;
	int is_head = strcmp(r->method, "HEAD") == 0;
	int conditional = conditional_present(&r->headers);
	struct timespec deadline = mono_deadline(x->cfg->coalesce_timeout_ms);
	int waited = 0, in_herd = 0;
	unsigned failures_before = 0; /* h->failures when it began to wait */
	enum verdict v;
	struct herd_waiter *w = NULL; /* our node while in_herd */

	*slot = NULL;
	pthread_mutex_lock(&h->lock);
	for (;;) {
		if (in_herd && w->state == HERD_CLAIMED) {
			/* the fetch is sending our head: no timeout now */
			pthread_cond_wait(&h->changed, &h->lock);
			continue;
		}
		if (in_herd && w->state == HERD_DONE) {
			cache_herd_forget(w); /* off the list */
			in_herd = 0;
			if ((*slot)->e) {
				*found = (*slot)->e;
				v = V_HERD;
				break;
			}
		}
		struct entry *e = cache_lookup(h, &r->headers, want, time(NULL));
		if (refresh && e && !e->hfm && !waited && stale == NULL) {
			stale = e;
			entry_ref(stale);
		}
		if (e && e == stale)
			e = NULL; /* a reload: a fetch under way, or our own */
		if (e && e->hfm) {
			/* the origin answered 5xx lately (an error marker left
			 * the stale copies in place): one that may stand in
			 * answers, as after a failed fetch */
			if (e->hfm_error && !is_head && !refresh &&
			    (*found = stand_in(h, r, want, rd)) != NULL) {
				v = V_STALE;
				break;
			}
			v = only_stored ? V_NOT_STORED : is_head ? V_PASS_HEAD : V_PASS_HFM;
			break;
		}
		if (e) {
			/* Attach without the head's lock: the entry's lock is
			 * busy while a body streams to many readers, and a herd
			 * of waiters queued on the head's lock behind one that
			 * waited for it (seen: first bytes a second late). */
			if (in_herd) {
				/* off the list first: a publish must not claim
				 * (and attach) us while we attach */
				cache_herd_leave(h, w);
				in_herd = 0;
			}
			entry_ref(e);
			pthread_mutex_unlock(&h->lock);
			if (entry_attach(e, rd) == 0) {
				*found = e;
				v = waited ? V_COALESCED : V_HIT;
				goto unlocked; /* a hit takes the head's lock once */
			}
			entry_unref(&e); /* dropped its first bytes: not for us */
			pthread_mutex_lock(&h->lock);
		}
		if (!refresh && !only_stored && want->max_age < 0 && want->min_fresh < 0) {
			/* stale-while-revalidate (RFC 5861): the stale copy now,
			 * and a revalidation under way (or started: V_SWR with
			 * *validate), rather than a wait for the origin. Not over
			 * a client's max-age / min-fresh, nor for a reload. */
			struct entry *st = cache_lookup_stale(h, &r->headers);
			/* attached here, under the head's lock, while st is still
			 * stored (a whole body: its lock is not busy): the
			 * revalidation, once it publishes, unlinks it, and a
			 * reader attached after that would find its body going */
			if (st && entry_may_serve_while_revalidating(st, time(NULL)) &&
			    entry_attach(st, rd) == 0) {
				entry_ref(st);
				*found = st;
				if (h->phase != KEY_PENDING_STORE) {
					cache_begin_fetch(h);
					entry_ref(st);
					*validate = st;
				}
				v = V_SWR;
				break;
			}
		}
		if (h->phase == KEY_PENDING_STORE) {
			if (!waited) {
				waited = 1;
				failures_before = h->failures;
				stats_inc(STAT_cache_waiters);
				exchange_will_block();
			}
			if (!in_herd && !conditional) {
				/* (a request with preconditions is answered on
				 * its own thread: its head may be a 304) */
				if (*slot == NULL && (*slot = dense_get(&herd_slots)) != NULL)
					(*slot)->x = x;
				w = NULL;
				if (*slot) {
					(*slot)->e = NULL;
					w = cache_herd_join(h, *slot, &r->headers, x->s->fd,
					                    deliver_head_kind(x));
				}
				in_herd = w != NULL; /* else (out of memory) found when woken */
			}
			int rc = pthread_cond_timedwait(&h->changed, &h->lock, &deadline);
			if (rc == ETIMEDOUT && h->phase == KEY_PENDING_STORE &&
			    (!in_herd || w->state == HERD_WAITING)) {
				v = only_stored ? V_NOT_STORED : V_TIMEOUT;
				break;
			}
			continue;
		}
		int failed = waited && h->failures != failures_before;
		if (failed && h->fail_status != 403 && !is_head && !refresh &&
		    (*found = stand_in(h, r, want, rd)) != NULL) {
			/* the fetch it waited for failed: a stale copy that may
			 * stand in answers now, rather than a fetch of its own
			 * that would likely fail the same way (each waiter in
			 * turn: a herd would wait a timeout apiece) */
			v = V_STALE;
			break;
		}
		if (failed && h->fail_why) {
			/* it waited for that try: its outcome is the answer.
			 * Trying again, one waiter after the other, made a herd
			 * on a dead origin wait a timeout apiece */
			snprintf(fail_why, fail_len, "%s", h->fail_why);
			*fail_status = h->fail_status;
			v = V_FAILED;
			break;
		}
		if (only_stored) {
			v = V_NOT_STORED; /* no fetch for it: only-if-cached */
			break;
		}
		if (is_head) {
			v = V_PASS_HEAD;
			break;
		}
		cache_begin_fetch(h);
		/* a stored variant it may revalidate: stale, or the one a
		 * reload came to replace */
		if ((*validate = cache_lookup_stale(h, &r->headers)) != NULL)
			entry_ref(*validate);
		v = V_FETCH;
		break;
	}
	if (in_herd)
		cache_herd_leave(h, w); /* still HERD_WAITING: the loop handles the rest */
	pthread_mutex_unlock(&h->lock);
unlocked:
	entry_unref(&stale);
	if (waited)
		stats_add(STAT_cache_waiters, -1);
	if (v != V_HERD && *slot) {
		/* never claimed, or claimed and done with (HERD_DONE): back
		 * now, not after a pass upstream that may take minutes */
		dense_put(&herd_slots, *slot);
		*slot = NULL;
	}
	return v;
}

/* A request passed for a hit-for-miss marker got its answer: if that may be
 * stored after all, lift the marker so the next request fetches and stores. */
static void lift_hfm_if_storable(struct exchange *x, int status,
                                 const struct http_headers *h, int64_t content_length)
{
	const char *why;
	int64_t now = time(NULL);
	if (strcmp(x->req.method, "GET") != 0)
		return;
	struct policy_store_rules rules;
	cache_store_rules(x->cfg, &rules);
	int64_t lifetime = policy_storable(&x->req.headers, x->req.url, status, h, content_length,
	                                   &rules, now, &why);
	if (lifetime > 0 && !policy_stale_on_arrival(h, lifetime, now))
		cache_forget_hfm(x->on_response_head_arg);
}

static void serve_stored(struct exchange *x, struct entry *e, struct entry_reader *rd,
                         const char *result, const char *cache_status, int range);

/* Answer x with a 304 for stored entry e, detaching rd, when its
 * If-None-Match / If-Modified-Since say the client's copy is current.
 * Returns 1 when it did, else 0 (rd still attached). */
static int not_modified(struct exchange *x, struct entry *e, struct entry_reader *rd,
                        const char *cache_status)
{
	if (!conditional_present(&x->req.headers) ||
	    conditional_status(&x->req.headers, e) != 304)
		return 0;
	stats_inc(STAT_cache_conditional_total);
	conditional_reply(x, e, rd, cache_status);
	return 1;
}

/* This request caused the fetch: wait for its outcome (no timeout — the
 * fetch has the upstream timeouts), then read the entry like everyone. */
static void serve_fetch(struct exchange *x, struct keyhead *h, struct entry_reader *rd,
                        struct entry **found, struct entry **used, int refresh,
                        struct entry *validate, const struct policy_want *want)
{
	struct fetch_outcome out = { .done = 0 };
	/* a stored copy still fresh that the request's max-age / min-fresh
	 * refused (decided now: it may go stale while the fetch runs) */
	int refused_fresh = validate && policy_fresh(validate->freshness_lifetime,
	                                             entry_age(validate, time(NULL)));
	exchange_will_block();
	fetch_start(x, h, rd, &out, validate, refresh, want->stale_if_error);
	pthread_mutex_lock(&h->lock);
	while (!out.done)
		pthread_cond_wait(&h->changed, &h->lock);
	pthread_mutex_unlock(&h->lock);

	/* RFC 9211's fwd: a reload's fetch is "request", and so is one for
	 * a request whose max-age / min-fresh refused a fresh stored copy; a
	 * stored variant's revalidation is "stale"; Squid's log names for the
	 * same */
	const char *fwd = refresh || refused_fresh ? "request" : out.revalidated ? "stale" : "miss";
	x->result = refresh ? "TCP_CLIENT_REFRESH_MISS"
	            : out.revalidated == 1 ? "TCP_REFRESH_UNMODIFIED"
	            : out.revalidated == 2 ? "TCP_REFRESH_MODIFIED" : "TCP_MISS";
	x->hierarchy = upstream_hierarchy(x->cfg);
	if (out.entry == NULL && out.stale) {
		/* the fetch failed; the stored copy stands in (the fetch
		 * attached rd to it): RFC 9211's fwd-status says what came */
		char cs[128];
		snprintf(cs, sizeof cs, "corral; fwd=stale; fwd-status=%d; detail=stale-if-error",
		         out.stale_status);
		log_info("%s: answered with the stored copy, stale (stale-if-error): %s",
		         x->req.url, out.why);
		stats_inc(STAT_cache_stale_if_error_total);
		serve_stored(x, out.stale, rd, "TCP_REFRESH_FAIL_OLD", cs, 0);
		x->hierarchy = upstream_hierarchy(x->cfg); /* it did go to the origin */
		entry_unref(&out.stale);
		return;
	}
	if (out.entry == NULL) {
		x->hierarchy = "HIER_NONE";
		if (out.status == 403)
			x->result = "TCP_DENIED"; /* the destination filter said no */
		exchange_error(x, out.status, out.why);
		return;
	}
	char status[96];
	if (out.not_stored)
		snprintf(status, sizeof status, "corral; fwd=%s; detail=%s", fwd, out.not_stored);
	else
		snprintf(status, sizeof status, "corral; fwd=%s; stored", fwd);
	/* (a response not stored is not the cache's to answer preconditions
	 * with, RFC 9111 4.3.2) */
	if (out.not_stored || !not_modified(x, out.entry, rd, status))
		deliver(x, out.entry, rd, status, 1);
	if (!out.not_stored)
		*used = out.entry;
	*found = out.entry; /* the caller drops the reference after using `used` */
}

/* A stored entry found (hit) or handed over (coalesced): nothing went
 * upstream for this request. Its preconditions first; then, with `range`
 * (serve_range), its Range (range.h), else the whole response. */
static void serve_stored(struct exchange *x, struct entry *e, struct entry_reader *rd,
                         const char *result, const char *cache_status, int range)
{
	x->result = result;
	x->hierarchy = "HIER_NONE";
	if (not_modified(x, e, rd, cache_status))
		x->result = "TCP_IMS_HIT"; /* the client's copy is current: Squid's name */
	else if (!range || range_reply(x, e, rd, cache_status) != 0)
		deliver(x, e, rd, cache_status, 0);
	x->upstream[0] = '\0';
}

/* A hit's Cache-Status: stale when the request's max-stale took it. */
static const char *hit_status(const struct entry *e, const struct policy_want *want)
{
	return want->max_stale < 0 || policy_fresh(e->freshness_lifetime, entry_age(e, time(NULL)))
	       ? "corral; hit" : "corral; hit; detail=max-stale";
}

/* A GET with Range (POLICY_RANGE): answered from a stored variant whose
 * whole body is there (range.h: a 206, a 416, or all of it), after its
 * preconditions; otherwise passed with its Range, or for only-if-cached a
 * 504. Never a fetch of its own, nor a wait for another's: a range of a
 * body still arriving goes to the origin, as a miss's does. Gives h back. */
static void serve_range(struct exchange *x, struct keyhead *h, const struct policy_want *want)
{
	struct entry_reader rd;
	struct entry *e;
	enum entry_state st = ENTRY_STREAMING;
	pthread_mutex_lock(&h->lock);
	e = cache_lookup(h, &x->req.headers, want, time(NULL));
	if (e && e->hfm)
		e = NULL;
	if (e)
		entry_ref(e);
	pthread_mutex_unlock(&h->lock);
	if (e && entry_attach(e, &rd) == 0) {
		entry_bytes(e, &st);
		if (st != ENTRY_COMPLETE)
			entry_detach(e, &rd);
	}
	if (st != ENTRY_COMPLETE) {
		cache_head_put(h, NULL);
		entry_unref(&e);
		if (want->only_if_cached)
			not_stored(x);
		else
			pass(x, "corral; fwd=request");
		return;
	}
	stats_inc(STAT_cache_hits_total);
	serve_stored(x, e, &rd, "TCP_MEM_HIT", hit_status(e, want), 1);
	cache_head_put(h, e);
	entry_unref(&e);
}

void cache_serve(struct exchange *x)
{
	struct request *r = &x->req;
	char key[KEY_MAX];

	if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0) {
		if (!invalidate_method_is_safe(r->method))
			x->on_response_head = invalidate_after_unsafe;
		pass(x, "corral; fwd=method");
		return;
	}
	struct policy_want want;
	enum policy_lookup use = policy_request(r->method, &r->headers, &want);
	if (r->has_body)
		use = POLICY_PASS;
	int is_head = strcmp(r->method, "HEAD") == 0;
	if (use == POLICY_PASS || (use == POLICY_REFRESH && is_head)) {
		pass(x, "corral; fwd=request");
		return;
	}
	if (use == POLICY_UNANSWERABLE) {
		not_stored(x);
		return;
	}
	struct keyhead *h = NULL;
	if (url_normalise(&x->url, key, sizeof key) < 0 || (h = cache_head_get(key)) == NULL) {
		pass(x, "corral; fwd=miss; detail=key");
		return;
	}
	if (use == POLICY_RANGE) {
		serve_range(x, h, &want);
		return;
	}

	struct entry_reader rd;
	struct entry *e = NULL, *used = NULL;
	struct herd_slot *hs;
	int refresh = use == POLICY_REFRESH;
	struct entry *validate = NULL;
	int fail_status = 0;
	char fail_why[384];
	switch (decide(x, h, &rd, &e, &hs, &want, use == POLICY_ONLY_STORED, refresh, &validate,
	               &fail_status, fail_why, sizeof fail_why)) {
	case V_HIT:
		stats_inc(STAT_cache_hits_total);
		serve_stored(x, e, &rd, "TCP_MEM_HIT", hit_status(e, &want), 0);
		used = e;
		break;
	case V_COALESCED:
		stats_inc(STAT_cache_coalesced_total);
		serve_stored(x, e, &rd, "TCP_CF_HIT", collapsed_status(e), 0);
		used = e;
		break;
	case V_HERD:
		stats_inc(STAT_cache_coalesced_total);
		x->result = "TCP_CF_HIT";
		x->hierarchy = "HIER_NONE";
		deliver_rest(x, e, &hs->rd, &hs->d, &hs->park);
		x->upstream[0] = '\0';
		used = e;
		break;
	case V_FETCH:
		stats_inc(STAT_cache_misses_total);
		serve_fetch(x, h, &rd, &e, &used, refresh, validate, &want);
		break;
	case V_PASS_HFM:
		/* straight upstream, in parallel with the others; a storable
		 * answer lifts the marker (forward.c) */
		x->on_response_head = lift_hfm_if_storable;
		x->on_response_head_arg = h;
		pass(x, "corral; fwd=miss; detail=uncacheable");
		break;
	case V_PASS_HEAD:
		pass(x, "corral; fwd=miss");
		break;
	case V_TIMEOUT:
		stats_inc(STAT_cache_coalesce_timeouts_total);
		pass(x, "corral; fwd=miss; detail=coalesce-timeout");
		break;
	case V_NOT_STORED:
		not_stored(x);
		break;
	case V_FAILED:
		x->result = fail_status == 403 ? "TCP_DENIED" : "TCP_MISS";
		x->hierarchy = "HIER_NONE";
		exchange_error(x, fail_status, fail_why);
		break;
	case V_STALE:
		/* the stored copy, stale, as its stale-if-error allows a waiter
		 * whose fetch failed (Squid's TCP_REFRESH_FAIL_OLD) */
		stats_inc(STAT_cache_stale_if_error_total);
		serve_stored(x, e, &rd, "TCP_REFRESH_FAIL_OLD",
		             "corral; hit; detail=stale-if-error", 0);
		break;
	case V_SWR:
		/* the stored copy, stale, as its stale-while-revalidate allows
		 * while it is revalidated */
		stats_inc(STAT_cache_stale_while_revalidate_total);
		if (validate) /* the revalidation, which nobody waits for */
			fetch_start(x, h, NULL, NULL, validate, 0, -1);
		serve_stored(x, e, &rd, "TCP_MEM_HIT",
		             "corral; hit; detail=stale-while-revalidate", 0);
		used = e;
		break;
	}
	cache_head_put(h, used);
	entry_unref(&e);
	entry_unref(&validate);
	if (hs)
		dense_put(&herd_slots, hs); /* V_HERD: detached and released */
}

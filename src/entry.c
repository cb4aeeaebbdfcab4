/*
 * entry.c — cache entries: head, growing body, readers (see entry.h for the
 * lifecycle and the locking rules).
 */
#include "corral/entry.h"
#include "corral/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>

struct entry *entry_new(void)
{
	struct entry *e = calloc(1, sizeof *e);
	if (e == NULL)
		return NULL;
	e->magic = ENTRY_MAGIC;
	atomic_init(&e->refs, 1);
	e->content_length = -1;
	headers_init(&e->headers);
	headers_init(&e->vary_req);
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->grown, NULL);
	e->state = ENTRY_STREAMING;
	return e;
}

void entry_ref(struct entry *e)
{
	if (e->magic != ENTRY_MAGIC)
		abort();
	atomic_fetch_add(&e->refs, 1);
}

void entry_unref(struct entry **ep)
{
	struct entry *e = *ep;
	*ep = NULL;
	if (e == NULL)
		return;
	if (e->magic != ENTRY_MAGIC)
		abort();
	if (atomic_fetch_sub(&e->refs, 1) != 1)
		return;
	struct chunk *c = e->first;
	while (c) {
		struct chunk *n = c->next;
		free(c);
		c = n;
	}
	headers_free(&e->headers);
	headers_free(&e->vary_req);
	free(e->vary);
	free(e->wire_head);
	pthread_mutex_destroy(&e->lock);
	pthread_cond_destroy(&e->grown);
	e->magic = 0;
	free(e);
}

static void release_parked(struct entry_parked *p);
static void pump(struct entry *e, int end);

/* Free leading chunks that every reader has moved past. Caller holds lock. */
static void do_transit_free(struct entry *e)
{
	int freed = 0;
	while (e->first && e->first != e->last) {
		struct chunk *c = e->first;
		struct entry_reader *r;
		LIST_FOREACH(r, &e->readers, link)
			if (r->cur == NULL || r->cur == c || r->hold == c)
				goto out;
		e->first = c->next;
		e->dropped += c->len;
		e->held -= c->len;
		free(c);
		freed = 1;
	}
out:
	if (freed)
		pthread_cond_broadcast(&e->grown);
}

int entry_append(struct entry *e, const char *data, size_t len)
{
	struct chunk *c = malloc(sizeof *c + len);
	if (c == NULL)
		return -2;
	c->next = NULL;
	c->len = len;
	memcpy(c->data, data, len);
	pthread_mutex_lock(&e->lock);
	/* The last chunk is never freed (a reader may still hold it), so when it
	 * is the only one held, waiting would never end: append. */
	while (e->transit && e->nreaders > 0 && e->held > TRANSIT_MAX &&
	       e->first != e->last)
		pthread_cond_wait(&e->grown, &e->lock);
	if (e->transit && e->nreaders == 0) {
		pthread_mutex_unlock(&e->lock);
		free(c);
		return -1;
	}
	if (e->last)
		e->last->next = c;
	else
		e->first = c;
	e->last = c;
	e->bytes += len;
	e->held += len;
	pthread_cond_broadcast(&e->grown);
	pthread_mutex_unlock(&e->lock);
	return 0;
}

void entry_finish(struct entry *e, enum entry_state final)
{
	pthread_mutex_lock(&e->lock);
	if (e->state == ENTRY_STREAMING)
		e->state = final;
	final = e->state;
	pthread_cond_broadcast(&e->grown);
	if (final == ENTRY_FAILED) {
		while (!LIST_EMPTY(&e->parked)) /* they end their responses cut short */
			release_parked(LIST_FIRST(&e->parked));
	}
	pthread_mutex_unlock(&e->lock);
	if (final == ENTRY_COMPLETE)
		pump(e, 1); /* the last bytes and the body's end, then release */
}

void entry_make_transit(struct entry *e)
{
	pthread_mutex_lock(&e->lock);
	e->transit = 1;
	do_transit_free(e);
	pthread_cond_broadcast(&e->grown);
	pthread_mutex_unlock(&e->lock);
}

int entry_attach(struct entry *e, struct entry_reader *r)
{
	memset(r, 0, sizeof *r);
	pthread_mutex_lock(&e->lock);
	if (e->dropped > 0) {
		pthread_mutex_unlock(&e->lock);
		return -1;
	}
	r->attached = 1;
	LIST_INSERT_HEAD(&e->readers, r, link);
	e->nreaders++;
	pthread_mutex_unlock(&e->lock);
	return 0;
}

void entry_detach(struct entry *e, struct entry_reader *r)
{
	pthread_mutex_lock(&e->lock);
	if (!r->attached) {
		pthread_mutex_unlock(&e->lock);
		return;
	}
	r->attached = 0;
	/* O(1): a herd of 1,000 readers leaving one by one walked the list
	 * for 6 % of the herd's CPU */
	LIST_REMOVE(r, link);
	e->nreaders--;
	if (e->transit) {
		/* the fetch may be waiting for readers to move on (or go) */
		do_transit_free(e);
		pthread_cond_broadcast(&e->grown);
	}
	pthread_mutex_unlock(&e->lock);
}

const char *entry_read(struct entry *e, struct entry_reader *r, size_t *len,
                       enum entry_state *state)
{
	struct iovec v;
	if (entry_read_iov(e, r, &v, 1, state) == 0)
		return NULL;
	*len = v.iov_len;
	return v.iov_base;
}

uint64_t entry_bytes(struct entry *e, enum entry_state *state)
{
	pthread_mutex_lock(&e->lock);
	uint64_t b = e->bytes;
	if (state)
		*state = e->state;
	pthread_mutex_unlock(&e->lock);
	return b;
}

/* Move r onto its next unread byte; returns whether there is one. Caller
 * holds lock. */
static int has_unread(struct entry *e, struct entry_reader *r)
{
	if (r->cur == NULL) {
		if (e->first) {
			r->cur = e->first;
			r->off = 0;
		}
	} else if (r->off == r->cur->len && r->cur->next) {
		r->cur = r->cur->next;
		r->off = 0;
	}
	return r->cur && r->off < r->cur->len;
}

/* Hand out r's unread bytes from r->cur to the last chunk (at most `max`
 * chunks), keeping them (r->hold) until the next hand-out. Caller holds
 * lock, and has_unread(e, r) was true. */
static int hand_out(struct entry_reader *r, struct iovec *iov, int max)
{
	int n = 0;
	r->hold = r->cur;
	for (;;) {
		iov[n].iov_base = r->cur->data + r->off;
		iov[n].iov_len = r->cur->len - r->off;
		r->pos += iov[n].iov_len;
		r->off = r->cur->len;
		n++;
		if (n == max || r->cur->next == NULL)
			break;
		r->cur = r->cur->next;
		r->off = 0;
	}
	return n;
}

static int read_iov(struct entry *e, struct entry_reader *r, struct iovec *iov, int max,
                    enum entry_state *state, int wait)
{
	pthread_mutex_lock(&e->lock);
	if (r->hold) {
		r->hold = NULL; /* what the last call handed out has been written */
		if (e->transit)
			do_transit_free(e);
	}
	while (!has_unread(e, r)) {
		if (e->state != ENTRY_STREAMING || !wait) {
			*state = e->state; /* read once, under the lock */
			pthread_mutex_unlock(&e->lock);
			return *state != ENTRY_STREAMING ? 0 : -1;
		}
		pthread_cond_wait(&e->grown, &e->lock);
	}
	if (e->transit)
		do_transit_free(e);
	int n = hand_out(r, iov, max);
	pthread_mutex_unlock(&e->lock);
	return n;
}

int entry_read_iov(struct entry *e, struct entry_reader *r, struct iovec *iov, int max,
                   enum entry_state *state)
{
	return read_iov(e, r, iov, max, state, 1);
}

int entry_try_read_iov(struct entry *e, struct entry_reader *r, struct iovec *iov, int max,
                       enum entry_state *state)
{
	return read_iov(e, r, iov, max, state, 0);
}

/* Caller holds e->lock. */
static int park_locked(struct entry *e, struct entry_parked *p)
{
	if (e->state != ENTRY_STREAMING || has_unread(e, p->r))
		return 0;
	pthread_cond_init(&p->wake, NULL);
	p->released = 0;
	LIST_INSERT_HEAD(&e->parked, p, link);
	return 1;
}

/* Caller holds e->lock and parked p. */
static void wait_released(struct entry *e, struct entry_parked *p)
{
	while (!p->released)
		pthread_cond_wait(&p->wake, &e->lock);
	pthread_mutex_unlock(&e->lock);
	/* the releaser signalled under the lock we have just taken and
	 * dropped: nobody uses p->wake now */
	pthread_cond_destroy(&p->wake);
}

int entry_park(struct entry *e, struct entry_parked *p)
{
	pthread_mutex_lock(&e->lock);
	if (!park_locked(e, p)) {
		pthread_mutex_unlock(&e->lock);
		return 0;
	}
	wait_released(e, p);
	return 1;
}

int entry_park_start(struct entry *e, struct entry_parked *p)
{
	pthread_mutex_lock(&e->lock);
	int parked = park_locked(e, p);
	pthread_mutex_unlock(&e->lock);
	return parked;
}

void entry_park_wait(struct entry *e, struct entry_parked *p)
{
	pthread_mutex_lock(&e->lock);
	wait_released(e, p);
}

/* Take p off its entry's parked list and wake its owner. Caller holds
 * the entry's lock. */
static void release_parked(struct entry_parked *p)
{
	LIST_REMOVE(p, link);
	p->released = 1;
	pthread_cond_signal(&p->wake);
}

/* Hand every parked reader its new bytes and call its writer (`end`: they
 * are the last); release those handed back, those with more than one
 * hand-out's worth of chunks to catch up on, or all of them when `end`.
 *
 * The list stays in place while the writers run with no lock: readers that
 * park meanwhile go in front of `first` (the next pump's), and only this
 * thread takes readers off it (the links from `first` on are ours).
 * A reader written for whole keeps r->hold on what it was handed until its
 * next hand-out: in transit, freeing lags one pump behind. The passes touch
 * each parked struct twice, not three times: over 1,000 readers (in herd
 * slots, serve.c, or on their owners' stacks) every pass costs cache misses (a third pass that relinked the list cost
 * 2.5% of a herd's CPU), so each pass prefetches the readers ahead of it.
 * The second pass has a whole send per reader to bring the next one's
 * lines in: with that, the pump's own share of a herd's CPU samples fell
 * from 4.7 to 3.4 %, and corrald's CPU per herd by 4-8 %.
 *
 * A hand-out is at most ENTRY_PARK_IOV chunks. A reader left with more
 * (an origin sending many small chunks in one read) is released to catch
 * up on its own thread, and is not told `end` before its last bytes: a
 * parked reader is never left behind, which would hold a transit fetch
 * (waiting in entry_append for readers) waiting for its own next pump. */
static void pump(struct entry *e, int end)
{
	struct entry_parked *first, *p, *next, *handed_back = NULL;
	pthread_mutex_lock(&e->lock);
	first = LIST_FIRST(&e->parked);
	for (p = first; p; p = next) {
		/* the next reader's line comes in with this one's reader's
		 * (see entry_parked) */
		next = LIST_NEXT(p, link);
		if (next)
			__builtin_prefetch(next, 1);
		p->nv = has_unread(e, p->r) ? hand_out(p->r, p->v, ENTRY_PARK_IOV) : 0;
		p->more = p->nv > 0 && p->r->cur->next != NULL;
	}
	pthread_mutex_unlock(&e->lock);
	if (first == NULL)
		return;
	for (p = first; p; p = next) {
		/* While this reader's send runs, the next one's lines come in:
		 * its writer's fields (the line after its entry_parked) and the
		 * pieces it was handed, and the entry_parked after it, whose
		 * lines come in during the next send. */
		next = LIST_NEXT(p, link);
		if (next) {
			__builtin_prefetch(LIST_NEXT(next, link), 1);
			__builtin_prefetch(next + 1, 1);
			__builtin_prefetch(next->v, 1);
		}
		int handed_back_now = (p->nv > 0 || end) &&
		                      p->write(p, p->v, p->nv, end && !p->more) != 0;
		if (handed_back_now || p->more) {
			p->handed_back_next = handed_back;
			handed_back = p;
		}
	}
	pthread_mutex_lock(&e->lock);
	/* their owners finish the write (from r->hold) and read on */
	for (p = handed_back; p; p = p->handed_back_next)
		release_parked(p);
	if (end) {
		/* no reader parks on a final entry: these are all from `first` */
		while (!LIST_EMPTY(&e->parked))
			release_parked(LIST_FIRST(&e->parked));
	}
	if (e->transit)
		do_transit_free(e);
	pthread_mutex_unlock(&e->lock);
}

void entry_pump(struct entry *e)
{
	pump(e, 0);
}

int entry_serialise_head(struct entry *e)
{
	size_t len = strlen(e->reason) + 32;
	for (int i = 0; i < e->headers.n; i++)
		len += strlen(e->headers.v[i].name) + strlen(e->headers.v[i].value) + 4;
	char *p = malloc(len);
	if (p == NULL)
		return -1;
	size_t n = (size_t)snprintf(p, len, "HTTP/1.1 %d %s\r\n", e->status, e->reason);
	for (int i = 0; i < e->headers.n; i++) {
		const struct http_header *h = &e->headers.v[i];
		if (strcasecmp(h->name, "Age") == 0)
			continue; /* the deliverer sends the current age */
		size_t nl = strlen(h->name), vl = strlen(h->value);
		memcpy(p + n, h->name, nl);
		memcpy(p + n + nl, ": ", 2);
		memcpy(p + n + nl + 2, h->value, vl);
		memcpy(p + n + nl + 2 + vl, "\r\n", 2);
		n += nl + vl + 4;
	}
	e->wire_head = p;
	e->wire_head_len = n;
	return 0;
}

int64_t entry_age(const struct entry *e, int64_t now)
{
	return policy_age(e->date_value, e->age_value, e->request_time, e->response_time, now);
}

int entry_may_stand_in(const struct entry *e, int64_t now, int64_t request_n)
{
	return policy_stale_if_error(&e->headers, e->freshness_lifetime, entry_age(e, now),
	                             request_n);
}

int entry_may_serve_while_revalidating(const struct entry *e, int64_t now)
{
	return policy_stale_while_revalidate(&e->headers, e->freshness_lifetime,
	                                     entry_age(e, now));
}

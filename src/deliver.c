/*
 * deliver.c — an entry to a client (see deliver.h).
 *
 * The body is read chunk by chunk with entry_try_read_iov. A reader caught
 * up with a body still arriving parks (entry_park): the fetch's thread then
 * writes each new piece for it, with MSG_DONTWAIT, and hands it back when
 * the client's socket is full. A reader never polls, writes happen with no
 * lock held, and a slow client slows only itself.
 */
#include "corral/deliver.h"
#include "corral/exchange.h"
#include "corral/io.h"
#include "corral/log.h"
#include "corral/policy.h"
#include "corral/session.h"
#include "corral/stats.h"
#include "corral/strbuf.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <time.h>

#define DELIVER_IOV 64 /* body chunks per write */

/* The variable end of e's head for this request: Age, Cache-Status, the
 * framing, Via, Connection. Written to `buf` (size `len`); returns its length
 * and sets *chunked, *no_body and *state (the entry's state now). Copies,
 * not snprintf (strbuf.h): this runs on every hit. */
static size_t head_tail(struct exchange *x, struct entry *e, const char *cache_status,
                        int own_fetch, char *buf, size_t len, int *chunked, int *no_body,
                        enum entry_state *state)
{
	const struct request *r = &x->req;
	uint64_t have = entry_bytes(e, state);
	int64_t age = entry_age(e, time(NULL));
	struct strbuf b = strbuf_on(buf, len);

	*chunked = 0;
	*no_body = strcmp(r->method, "HEAD") == 0 || e->status < 200 ||
	           e->status == 204 || e->status == 304;
	strbuf_str(&b, "Age: ");
	strbuf_u64(&b, (uint64_t)(age < 0 ? 0 : age), 0, ' ');
	strbuf_str(&b, "\r\nCache-Status: ");
	strbuf_str(&b, cache_status);
	strbuf_str(&b, "\r\n");
	if (e->status != 204 && e->status != 304 && e->status >= 200) {
		if (e->content_length >= 0 || (*state == ENTRY_COMPLETE && !own_fetch)) {
			strbuf_str(&b, "Content-Length: ");
			strbuf_u64(&b, e->content_length >= 0 ? (uint64_t)e->content_length : have,
			           0, ' ');
			strbuf_str(&b, "\r\n");
		} else if (*no_body) {
			; /* HEAD while the length is unknown: say nothing */
		} else if (r->http_major == 1 && r->http_minor >= 1) {
			*chunked = 1;
		} else {
			x->close_after = 1; /* close-delimited for HTTP/1.0 */
		}
	}
	size_t n = strbuf_len(&b);
	return n + exchange_head_end(x, buf + n, *chunked);
}

void deliver_log_fields(struct exchange *x, const struct entry *e, const char *cache_status)
{
	x->cache_status = cache_status;
	struct strbuf b = strbuf_on_cstr(x->upstream, sizeof x->upstream);
	strbuf_str(&b, e->upstream);
	strbuf_cstr(&b);
	exchange_set_mime(x, headers_get(&e->headers, "Content-Type"));
	x->status = e->status;
	x->via_http10 = e->http10;
}

/* x's log fields and d: the head for e. */
static void prepare(struct exchange *x, struct entry *e, const char *cache_status,
                    int own_fetch, struct delivery *d)
{
	/* d->tail: Age (<= 20 digits), Cache-Status (< 100: serve.c's
	 * strings), a Content-Length (<= 20 digits) and their names fit in 256 */
	deliver_log_fields(x, e, cache_status);
	d->tail_len = head_tail(x, e, cache_status, own_fetch, d->tail,
	                        sizeof d->tail - EXCHANGE_HEAD_END_MAX, &d->chunked,
	                        &d->no_body, &d->st);
	d->head_sent = 0;
	d->failed = 0;
	d->parked = 0;
	d->herd = 0;
}

/* The part of the head not yet sent, as iovecs in v[0..1]; returns how many. */
static int head_left(struct entry *e, struct delivery *d, struct iovec *v)
{
	size_t skip = d->head_sent;
	int n = 0;
	if (skip < e->wire_head_len) {
		v[n].iov_base = e->wire_head + skip;
		v[n++].iov_len = e->wire_head_len - skip;
		skip = 0;
	} else {
		skip -= e->wire_head_len;
	}
	if (skip < d->tail_len) {
		v[n].iov_base = d->tail + skip;
		v[n++].iov_len = d->tail_len - skip;
	}
	return n;
}

/* Frame v (as one chunk when chunked) into out[]; returns the count.
 * size_line holds the chunk's size line. v may be out + 1 (pump_write):
 * no piece is written before it is read. */
static int frame(struct iovec *v, int n, int chunked, char size_line[20], struct iovec *out)
{
	int m = 0;
	if (chunked) {
		size_t data = 0;
		for (int i = 0; i < n; i++)
			data += v[i].iov_len;
		int k = snprintf(size_line, 20, "%zx\r\n", data);
		out[m++] = (struct iovec){ size_line, (size_t)k };
	}
	for (int i = 0; i < n; i++)
		if (v[i].iov_len > 0)
			out[m++] = v[i];
	if (chunked)
		out[m++] = (struct iovec){ "\r\n", 2 };
	return m;
}

static int pump_write(struct entry_parked *p, struct iovec *v, int n, int end)
{
	struct parked_reader *pr = (struct parked_reader *)p;
	/* v is pr->rest + 1 (p->v): framed into rest, the pieces stay where
	 * they are (a hand-out has no empty piece), the size line goes in
	 * front. No pieces, no chunk: a chunk of size 0 ends the body. */
	pr->restv = pr->rest;
	pr->nrest = n > 0 ? frame(v, n, pr->chunked, pr->size_line, pr->rest) : 0;
	if (end && pr->chunked)
		pr->restv[pr->nrest++] = (struct iovec){ "0\r\n\r\n", 5 };
	pr->ended = end;
	ssize_t k = io_send_now(pr->fd, &pr->restv, &pr->nrest);
	if (k < 0) {
		pr->failed = 1;
		pr->nrest = 0;
		return 1;
	}
	pr->bytes += (uint64_t)k;
	stats_add(STAT_bytes_to_clients_total, k); /* live, for long streams */
	if (pr->nrest > 0) {
		/* the socket is full: the owner writes what is left */
		stats_inc(STAT_cache_pump_handbacks_total);
		return 1;
	}
	if (k > 0)
		stats_inc(STAT_cache_pumped_writes_total);
	return 0;
}

static void parked_init(struct parked_reader *pr, int fd, struct entry_reader *r,
                        const struct delivery *d)
{
	pr->p.r = r;
	pr->p.write = pump_write;
	pr->p.v = pr->rest + 1;
	pr->fd = fd;
	pr->chunked = d->chunked;
	pr->restv = pr->rest;
	pr->failed = pr->ended = pr->nrest = 0;
	pr->bytes = 0;
}

/* The body as it grows, then detach. Caught up with a streaming entry, the
 * reader parks (in pr) and the fetch's thread writes for it (entry_park);
 * d->parked: the fetch parked it already (deliver_park_now), and this
 * thread waits for the release first. */
static void body(struct exchange *x, struct entry *e, struct entry_reader *r, struct delivery *d,
                 struct parked_reader *pr)
{
	struct iovec v[DELIVER_IOV];
	struct iovec cv[2 + DELIVER_IOV];
	enum entry_state st;
	int failed = d->failed, nv;
	if (d->parked) {
		/* written for by the fetch's thread since publish */
		entry_park_wait(e, &pr->p);
		stats_add(STAT_cache_readers_parked, -1);
		d->parked = 0;
	} else {
		parked_init(pr, x->s->fd, r, d);
	}
	if (failed || d->no_body)
		goto done;
	for (;;) {
		if (pr->nrest > 0) {
			/* handed back mid-write: finish it first */
			failed = exchange_writev(x, pr->restv, pr->nrest) < 0;
			pr->nrest = 0;
		}
		if (failed || pr->failed) {
			failed = 1; /* the client went away: only this reader stops */
			break;
		}
		nv = entry_try_read_iov(e, r, v, DELIVER_IOV, &st);
		if (nv < 0) {
			stats_inc(STAT_cache_readers_parked);
			entry_park(e, &pr->p);
			stats_add(STAT_cache_readers_parked, -1);
			continue;
		}
		if (nv == 0) {
			if (st == ENTRY_FAILED) {
				/* cut short: the client must see it */
				failed = 1;
			} else if (d->chunked && !pr->ended &&
			           exchange_write(x, "0\r\n\r\n", 5) < 0) {
				failed = 1;
			}
			break;
		}
		/* all the chunks in one write (and, chunked, one chunk: one
		 * write per chunk made a chunked herd twice as slow) */
		char size_line[20];
		int nc = frame(v, nv, d->chunked, size_line, cv);
		failed = exchange_writev(x, cv, nc) < 0;
	}
done:
	x->bytes_out += pr->bytes; /* the stat counted them as they went */
	if (failed)
		x->close_after = 1;
	entry_detach(e, r);
}

void deliver(struct exchange *x, struct entry *e, struct entry_reader *r,
             const char *cache_status, int own_fetch)
{
	struct delivery d;
	struct iovec v[2 + DELIVER_IOV];
	prepare(x, e, cache_status, own_fetch, &d);
	int nv = head_left(e, &d, v);
	if (d.st != ENTRY_COMPLETE && !d.no_body)
		exchange_will_block(); /* the rest of the body is still arriving */
	if (d.st == ENTRY_COMPLETE && !d.no_body && !d.chunked) {
		/* a complete entry: the head and the body go out together */
		nv += entry_try_read_iov(e, r, v + nv, DELIVER_IOV, &d.st);
	}
	d.failed = exchange_writev(x, v, nv) < 0;
	struct parked_reader pr; /* 2 KiB: not zeroed on every hit */
	body(x, e, r, &d, &pr);
}

/* What io_send_now did with d's head: n bytes, or -1 (failed). */
static void head_sent(struct delivery *d, ssize_t n)
{
	if (n < 0) {
		d->failed = 1; /* the client went away */
		return;
	}
	d->head_sent = (size_t)n;
	stats_add(STAT_bytes_to_clients_total, n);
}

void deliver_head_now(struct exchange *x, struct entry *e, const char *cache_status,
                      struct delivery *d)
{
	struct iovec v[2], *at = v;
	prepare(x, e, cache_status, 0, d);
	int nv = head_left(e, d, v);
	head_sent(d, io_send_now(x->s->fd, &at, &nv));
	x->bytes_out += d->head_sent;
}

void deliver_herd_begin(struct herd_heads *hh, struct entry *e, const char *cache_status)
{
	hh->e = e;
	hh->cache_status = cache_status;
	hh->n = 0;
}

uint32_t deliver_head_kind(const struct exchange *x)
{
	/* head_tail's and exchange_head_end's inputs from the request */
	const struct request *r = &x->req;
	return (uint32_t)(strcmp(r->method, "HEAD") == 0) | (uint32_t)(r->keep_alive != 0) << 1 |
	       (uint32_t)(x->close_after != 0) << 2 | (uint32_t)(x->cfg->via != 0) << 3 |
	       (uint32_t)(r->http_major & 0xff) << 8 | (uint32_t)(r->http_minor & 0xff) << 16;
}

int deliver_herd_send(struct herd_heads *hh, uint32_t kind, int fd, struct exchange *const *xp,
                      ssize_t *sent)
{
	int k = 0;
	while (k < hh->n && hh->kinds[k].kind != kind)
		k++;
	struct herd_kind *hk = &hh->kinds[k];
	if (k == hh->n) {
		if (k == DELIVER_HERD_KINDS)
			return -1;
		hh->n++;
		hk->kind = kind;
		prepare(*xp, hh->e, hh->cache_status, 0, &hk->d);
		hk->close_after = (*xp)->close_after;
	}
	struct iovec v[2], *at = v;
	int nv = head_left(hh->e, &hk->d, v);
	*sent = io_send_now(fd, &at, &nv);
	return k;
}

void deliver_herd_sent(struct herd_heads *hh, int index, ssize_t sent, struct delivery *d)
{
	const struct herd_kind *hk = &hh->kinds[index];
	*d = hk->d; /* the tail that went out, Age and all */
	d->herd = 1;
	d->close_after = hk->close_after;
	d->cache_status = hh->cache_status;
	head_sent(d, sent);
}

void deliver_park_now(int fd, struct entry *e, struct entry_reader *r, struct delivery *d,
                      struct parked_reader *pr)
{
	d->parked = 0;
	if (d->failed || d->no_body || d->st != ENTRY_STREAMING ||
	    d->head_sent < e->wire_head_len + d->tail_len)
		return; /* its own thread finishes the head, or there is no body */
	parked_init(pr, fd, r, d);
	stats_inc(STAT_cache_readers_parked);
	if (entry_park_start(e, &pr->p))
		d->parked = 1;
	else
		stats_add(STAT_cache_readers_parked, -1);
}

void deliver_rest(struct exchange *x, struct entry *e, struct entry_reader *r,
                  struct delivery *d, struct parked_reader *pr)
{
	struct iovec v[2];
	if (d->herd) {
		/* what deliver_herd_sent left for x's own thread */
		deliver_log_fields(x, e, d->cache_status);
		x->close_after = d->close_after;
		x->bytes_out += d->head_sent;
	}
	int nv = head_left(e, d, v);
	if (d->st != ENTRY_COMPLETE && !d->no_body)
		exchange_will_block();
	if (!d->failed && nv > 0)
		d->failed = exchange_writev(x, v, nv) < 0;
	body(x, e, r, d, pr);
}

/*
 * deliver.c — an entry to a client (see deliver.h).
 *
 * The body is read chunk by chunk with entry_read, which waits on the
 * entry's condvar while the fetch is still appending: a reader streams as the
 * bytes arrive and never polls. The writes happen with no lock held, so a
 * slow client slows only itself.
 */
#include "corral/deliver.h"
#include "corral/exchange.h"
#include "corral/log.h"
#include "corral/policy.h"
#include "corral/session.h"
#include "corral/stats.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#define DELIVER_IOV 64 /* body chunks per write */

/* The variable end of e's head for this request: Age, Cache-Status, the
 * framing, Via, Connection. Written to `buf` (size `len`); returns its length
 * and sets *chunked, *no_body and *state (the entry's state now). */
static size_t head_tail(struct exchange *x, struct entry *e, const char *cache_status,
                        int own_fetch, char *buf, size_t len, int *chunked, int *no_body,
                        enum entry_state *state)
{
	const struct request *r = &x->req;
	uint64_t have = entry_bytes(e, state);
	int64_t age = policy_age(e->date_value, e->age_value, e->request_time,
	                         e->response_time, time(NULL));
	int n;

	*chunked = 0;
	*no_body = strcmp(r->method, "HEAD") == 0 || e->status < 200 ||
	           e->status == 204 || e->status == 304;
	n = snprintf(buf, len, "Age: %lld\r\nCache-Status: %s\r\n", (long long)age,
	             cache_status);
	if (e->status != 204 && e->status != 304 && e->status >= 200) {
		if (e->content_length >= 0)
			n += snprintf(buf + n, len - (size_t)n, "Content-Length: %lld\r\n",
			              (long long)e->content_length);
		else if (*state == ENTRY_COMPLETE && !own_fetch)
			n += snprintf(buf + n, len - (size_t)n, "Content-Length: %llu\r\n",
			              (unsigned long long)have);
		else if (*no_body)
			; /* HEAD while the length is unknown: say nothing */
		else if (r->http_major == 1 && r->http_minor >= 1)
			*chunked = 1;
		else
			x->close_after = 1; /* close-delimited for HTTP/1.0 */
	}
	return (size_t)n + exchange_head_end(x, buf + n, *chunked);
}

/* x's log fields and d: the head for e. */
static void prepare(struct exchange *x, struct entry *e, const char *cache_status,
                    int own_fetch, struct delivery *d)
{
	/* d->tail: Age (<= 20 digits), Cache-Status (< 100: serve.c's
	 * strings), a Content-Length (<= 20 digits) and their names fit in 256 */
	x->cache_status = cache_status;
	snprintf(x->upstream, sizeof x->upstream, "%s", e->upstream);
	exchange_set_mime(x, headers_get(&e->headers, "Content-Type"));
	x->status = e->status;
	d->tail_len = head_tail(x, e, cache_status, own_fetch, d->tail,
	                        sizeof d->tail - EXCHANGE_HEAD_END_MAX, &d->chunked,
	                        &d->no_body, &d->st);
	d->head_sent = 0;
	d->failed = 0;
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

/* The body as it grows, then detach. */
static void body(struct exchange *x, struct entry *e, struct entry_reader *r, struct delivery *d)
{
	struct iovec v[DELIVER_IOV];
	enum entry_state st;
	int failed = d->failed, nv;
	if (failed || d->no_body)
		goto done;
	for (;;) {
		nv = entry_read_iov(e, r, v, DELIVER_IOV, &st);
		if (nv == 0) {
			if (st == ENTRY_FAILED) {
				/* cut short: the client must see it */
				failed = 1;
			} else if (d->chunked && exchange_write(x, "0\r\n\r\n", 5) < 0) {
				failed = 1;
			}
			break;
		}
		if (d->chunked) {
			/* every chunk framed, all in one writev (one write per
			 * chunk made a chunked herd twice as slow) */
			char sizes[DELIVER_IOV][20];
			struct iovec cv[3 * DELIVER_IOV];
			int nc = 0;
			for (int i = 0; i < nv; i++) {
				if (v[i].iov_len == 0)
					continue; /* a 0 size line would end the body */
				int m = snprintf(sizes[i], sizeof sizes[i], "%zx\r\n", v[i].iov_len);
				cv[nc++] = (struct iovec){ sizes[i], (size_t)m };
				cv[nc++] = v[i];
				cv[nc++] = (struct iovec){ "\r\n", 2 };
			}
			failed = exchange_writev(x, cv, nc) < 0;
		} else {
			failed = exchange_writev(x, v, nv) < 0;
		}
		if (failed)
			break; /* the client went away: only this reader stops */
	}
done:
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
		/* a complete entry: the head and the body go out together
		 * (entry_read_iov does not wait on a complete entry) */
		nv += entry_read_iov(e, r, v + nv, DELIVER_IOV, &d.st);
	}
	d.failed = exchange_writev(x, v, nv) < 0;
	body(x, e, r, &d);
}

void deliver_head_now(struct exchange *x, struct entry *e, const char *cache_status,
                      struct delivery *d)
{
	struct iovec v[2];
	prepare(x, e, cache_status, 0, d);
	struct msghdr m = { .msg_iov = v, .msg_iovlen = (size_t)head_left(e, d, v) };
	ssize_t n = sendmsg(x->s->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n > 0) {
		d->head_sent = (size_t)n;
		x->bytes_out += (uint64_t)n;
		stats_add(STAT_bytes_to_clients_total, n);
	} else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
		d->failed = 1; /* the client went away */
	}
}

void deliver_rest(struct exchange *x, struct entry *e, struct entry_reader *r,
                  struct delivery *d)
{
	struct iovec v[2];
	int nv = head_left(e, d, v);
	if (d->st != ENTRY_COMPLETE && !d->no_body)
		exchange_will_block();
	if (!d->failed && nv > 0)
		d->failed = exchange_writev(x, v, nv) < 0;
	body(x, e, r, d);
}

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
#include "corral/stats.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <time.h>

/* The response head for e. Returns whether the body is chunked. */
static int build_head(struct exchange *x, struct entry *e, const char *cache_status,
                      int own_fetch, struct evbuffer *out, int *no_body,
                      enum entry_state *state)
{
	const struct request *r = &x->req;
	enum entry_state st;
	uint64_t have = entry_bytes(e, &st);
	*state = st;
	int64_t age = policy_age(e->date_value, e->age_value, e->request_time,
	                         e->response_time, time(NULL));
	int chunked = 0;

	*no_body = strcmp(r->method, "HEAD") == 0 || e->status < 200 ||
	           e->status == 204 || e->status == 304;
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", e->status, e->reason);
	for (int i = 0; i < e->headers.n; i++) {
		if (strcasecmp(e->headers.v[i].name, "Age") == 0)
			continue;
		evbuffer_add_printf(out, "%s: %s\r\n", e->headers.v[i].name, e->headers.v[i].value);
	}
	evbuffer_add_printf(out, "Age: %lld\r\n", (long long)age);
	evbuffer_add_printf(out, "Cache-Status: %s\r\n", cache_status);
	if (e->status != 204 && e->status != 304 && e->status >= 200) {
		if (e->content_length >= 0)
			evbuffer_add_printf(out, "Content-Length: %lld\r\n",
			                    (long long)e->content_length);
		else if (st == ENTRY_COMPLETE && !own_fetch)
			evbuffer_add_printf(out, "Content-Length: %llu\r\n",
			                    (unsigned long long)have);
		else if (*no_body)
			; /* HEAD while the length is unknown: say nothing */
		else if (r->http_major == 1 && r->http_minor >= 1)
			chunked = 1;
		else
			x->close_after = 1; /* close-delimited for HTTP/1.0 */
	}
	exchange_end_head(x, out, chunked);
	return chunked;
}

void deliver(struct exchange *x, struct entry *e, struct entry_reader *r,
             const char *cache_status, int own_fetch)
{
	struct evbuffer *out = evbuffer_new();
	int no_body = 0, chunked = 0, failed = 0;

	x->cache_status = cache_status;
	snprintf(x->upstream, sizeof x->upstream, "%s", e->upstream);
	exchange_set_mime(x, headers_get(&e->headers, "Content-Type"));
	x->status = e->status;
	if (out == NULL) {
		x->close_after = 1;
		goto done;
	}
	enum entry_state st0;
	chunked = build_head(x, e, cache_status, own_fetch, out, &no_body, &st0);
	struct iovec v[2] = {
		{ .iov_base = evbuffer_pullup(out, -1), .iov_len = evbuffer_get_length(out) },
		{ .iov_base = NULL, .iov_len = 0 },
	};
	if (st0 == ENTRY_COMPLETE && !no_body && !chunked) {
		/* a complete entry: the head and the first chunk in one write
		 * (entry_read does not wait on a complete entry) */
		size_t n = 0;
		enum entry_state st;
		const char *p = entry_read(e, r, &n, &st);
		v[1].iov_base = (void *)p;
		v[1].iov_len = p ? n : 0;
	}
	failed = exchange_writev(x, v, 2) < 0;
	evbuffer_free(out);
	if (failed || no_body)
		goto done;
	for (;;) {
		size_t n;
		enum entry_state st;
		const char *p = entry_read(e, r, &n, &st);
		if (p == NULL) {
			if (st == ENTRY_FAILED) {
				/* cut short: the client must see it */
				failed = 1;
			} else if (chunked && exchange_write(x, "0\r\n\r\n", 5) < 0) {
				failed = 1;
			}
			break;
		}
		if (exchange_write_body(x, p, n, chunked) < 0) {
			failed = 1; /* the client went away: only this reader stops */
			break;
		}
	}
done:
	if (failed)
		x->close_after = 1;
	entry_detach(e, r);
}

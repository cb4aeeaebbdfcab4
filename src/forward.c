/*
 * forward.c — the pass-through path: one libcurl transfer run on the worker
 * that holds the client's session, in plain sequential code.
 *
 * Request: the client's method, target (as-is) and end-to-end headers in
 * their order; hop-by-hop headers dropped; curl's own additions suppressed
 * (Accept, Expect); the body streamed from the client socket by curl's read
 * callback as curl asks for it (Content-Length kept, chunked when the length
 * is unknown). Response: the head is read as raw lines by the header callback
 * and re-emitted when complete — status, reason, headers in order with
 * repeats, hop-by-hop removed, Via added, framing redone: Content-Length kept,
 * else chunked for HTTP/1.1 clients, else close-delimited. The body is written
 * to the client from the write callback, so memory stays at curl's buffer
 * size whatever the length. A failure before the head is an error answer
 * (502/504/403); after it, the response is cut short visibly (connection
 * closed, no last chunk).
 */
#include "corral/forward.h"
#include "corral/io.h"
#include "corral/config.h"
#include "corral/exchange.h"
#include "corral/log.h"
#include "corral/policy.h"
#include "corral/session.h"
#include "corral/stats.h"
#include "corral/resphead.h"
#include "corral/upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct fwd {
	struct exchange *x;
	struct resphead head;       /* the response head being read */
	int head_sent;              /* the final head went to the client */
	int no_body;                /* HEAD, 1xx, 204, 304 */
	int chunked_out;            /* we chunk the body to the client */
	int client_failed;          /* writing to or reading from the client failed */
	int body_too_large;         /* a chunked upload crossed max_request_body
	                             * (client_failed is set too) */
	char bad_framing[320];      /* why the final head was refused, for the 502 */
	const struct upstream_ctx *u;
};

static size_t read_body(char *buf, size_t size, size_t n, void *ud)
{
	struct fwd *f = ud;
	struct exchange *x = f->x;
	ssize_t got = request_read_body(&x->req, buf, size * n);
	if (got < 0) {
		f->client_failed = 1;
		return CURL_READFUNC_ABORT;
	}
	if (x->cfg->max_request_body && x->req.body_read > x->cfg->max_request_body) {
		/* only a chunked body gets here (a Content-Length was checked up
		 * front). The bytes that crossed the limit are not handed to curl,
		 * and the abort means no last chunk: the origin may have had the head
		 * and part of the body, never a complete request. */
		f->client_failed = 1;
		f->body_too_large = 1;
		return CURL_READFUNC_ABORT;
	}
	return (size_t)got;
}

/* Send the final response head to the client. Returns 0 or -1. */
static int send_head(struct fwd *f)
{
	struct exchange *x = f->x;
	const struct request *r = &x->req;
	struct evbuffer *out = evbuffer_new();
	if (out == NULL)
		return -1;
	const struct http_headers *hh = &f->head.headers;
	int status = f->head.status;
	const char *te = headers_get(hh, "Transfer-Encoding");
	const char *cl = te ? NULL : headers_get(hh, "Content-Length");
	const char *ctype = headers_get(hh, "Content-Type");
	exchange_set_mime(x, ctype);
	if (x->on_response_head)
		x->on_response_head(x, status, hh, cl ? strtoll(cl, NULL, 10) : -1);

	f->no_body = strcmp(r->method, "HEAD") == 0 || status < 200 ||
	             status == 204 || status == 304;
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", status, f->head.reason);
	struct http_hop hop;
	http_hop_init(&hop, hh); /* at most the max: resphead_framing_error */
	for (int i = 0; i < hh->n; i++) {
		const char *name = hh->v[i].name;
		if (http_hop_has(&hop, name))
			continue;
		if (strcasecmp(name, "Content-Length") == 0)
			continue; /* one, below: repeats agree (resphead_framing_error) */
		evbuffer_add_printf(out, "%s: %s\r\n", name, hh->v[i].value);
	}
	if (cl && status != 204) /* RFC 9110 8.6: never in a 204 */
		evbuffer_add_printf(out, "Content-Length: %lld\r\n", strtoll(cl, NULL, 10));
	if (!headers_get(hh, "Date")) { /* RFC 9110 6.6.1: a proxy with a clock adds it */
		char date[POLICY_DATE_LEN];
		policy_format_date(time(NULL), date);
		evbuffer_add_printf(out, "Date: %s\r\n", date);
	}
	if (x->cache_status)
		evbuffer_add_printf(out, "Cache-Status: %s\r\n", x->cache_status);
	if (!f->no_body && cl == NULL) {
		if (r->http_major == 1 && r->http_minor >= 1) {
			f->chunked_out = 1;
		} else {
			x->close_after = 1; /* close-delimited for HTTP/1.0 */
		}
	}
	char end[EXCHANGE_HEAD_END_MAX];
	x->via_http10 = f->head.http10;
	evbuffer_add(out, end, exchange_head_end(x, end, f->chunked_out));
	size_t len = evbuffer_get_length(out);
	x->req.sent_continue = 1; /* no 100 after this: it would be body */
	int rc = exchange_write(x, evbuffer_pullup(out, -1), len);
	evbuffer_free(out);
	x->status = status;
	f->head_sent = 1;
	return rc;
}

/* A 1xx head to the client with its end-to-end fields (a 103's Link is the
 * point of it). Returns 0 or -1. */
static int send_interim(struct exchange *x, const struct resphead *h)
{
	struct http_hop hop;
	if (h->bad || http_hop_init(&hop, &h->headers) < 0)
		return 0; /* one the final head's checks would refuse: dropped */
	struct evbuffer *out = evbuffer_new();
	if (out == NULL)
		return -1;
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", h->status, h->reason);
	for (int i = 0; i < h->headers.n; i++)
		if (!http_hop_has(&hop, h->headers.v[i].name))
			evbuffer_add_printf(out, "%s: %s\r\n", h->headers.v[i].name,
			                    h->headers.v[i].value);
	evbuffer_add(out, "\r\n", 2);
	size_t len = evbuffer_get_length(out);
	int rc = exchange_write(x, evbuffer_pullup(out, -1), len);
	evbuffer_free(out);
	return rc;
}

static size_t on_header(char *buf, size_t size, size_t n, void *ud)
{
	struct fwd *f = ud;
	size_t len = size * n;
	switch (resphead_line(&f->head, buf, len)) {
	case RESPHEAD_MORE:
	case RESPHEAD_TRAILER:
		return len;
	case RESPHEAD_NOMEM:
		return 0;
	case RESPHEAD_INTERIM: {
		/* pass 1xx on to HTTP/1.1 clients, except 100 (we answered Expect
		 * ourselves) and 101 (no upgrades) */
		const struct request *r = &f->x->req;
		int status = f->head.status;
		if (status == 101) {
			snprintf(f->bad_framing, sizeof f->bad_framing, "%s", RESPHEAD_NO_UPGRADE);
			return 0;
		}
		if (status != 100 && r->http_minor >= 1 &&
		    send_interim(f->x, &f->head) < 0) {
			f->client_failed = 1;
			return 0;
		}
		return len;
	}
	case RESPHEAD_FINAL:
		if (resphead_framing_error(&f->head, f->bad_framing, sizeof f->bad_framing) ||
		    upstream_parent_refused(f->u, f->head.status, f->bad_framing,
		                            sizeof f->bad_framing))
			return 0;
		if (send_head(f) < 0) {
			f->client_failed = 1;
			return 0;
		}
		return len;
	}
	return 0;
}

static size_t on_body(char *buf, size_t size, size_t n, void *ud)
{
	struct fwd *f = ud;
	size_t len = size * n;
	if (!f->head_sent || f->no_body || len == 0)
		return len;
	struct exchange *x = f->x;
	if (exchange_write_body(x, buf, len, f->chunked_out) < 0) {
		f->client_failed = 1;
		return 0;
	}
	return len;
}

void forward_run(struct exchange *x)
{
	exchange_will_block();
	struct request *r = &x->req;
	struct fwd f = { .x = x };
	struct upstream_ctx u;
	resphead_init(&f.head);
	if (x->result == NULL)
		x->result = "TCP_MISS";
	x->hierarchy = upstream_hierarchy(x->cfg);

	CURL *h = upstream_easy(x->cfg, &u);
	f.u = &u;
	struct curl_slist *hdrs = NULL;
	struct upstream_forwarding fw;
	upstream_forwarding_init(&fw, x->cfg, r->http_minor, x->s->peer_text);
	if (h == NULL ||
	    upstream_request_headers(r->method, &r->headers, r->has_body, &fw, 0, &hdrs) < 0) {
		if (h)
			curl_easy_cleanup(h);
		exchange_error(x, 500, "out of memory");
		resphead_free(&f.head);
		return;
	}
	curl_easy_setopt(h, CURLOPT_URL, r->url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	if (strcmp(r->method, "HEAD") == 0)
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	else if (strcmp(r->method, "GET") != 0 || r->has_body)
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
	if (r->has_body) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, read_body);
		curl_easy_setopt(h, CURLOPT_READDATA, &f);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE,
		                 (curl_off_t)(r->chunked ? -1 : r->content_length));
	}
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &f);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &f);

	stats_inc(STAT_upstream_requests_total);
	CURLcode rc = curl_easy_perform(h);

	char *ip = NULL;
	if (curl_easy_getinfo(h, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip && *ip)
		snprintf(x->upstream, sizeof x->upstream, "%s", ip);

	if (rc == CURLE_OK && f.head_sent) {
		if (f.chunked_out && exchange_write(x, "0\r\n\r\n", 5) < 0)
			x->close_after = 1;
	} else if (f.head_sent) {
		/* cut short after the head: the client must see it, so close
		 * without the last chunk */
		x->close_after = 1;
		if (!f.client_failed) {
			stats_inc(STAT_upstream_truncated_total);
			log_warn("%s: upstream response cut short: %s", r->url,
			         u.errbuf[0] ? u.errbuf : curl_easy_strerror(rc));
		}
	} else if (f.body_too_large) {
		stats_inc(STAT_requests_too_large_total);
		exchange_error(x, 413, "the request body is larger than max_request_body");
	} else if (f.client_failed) {
		x->close_after = 1;
		x->status = 0;
		x->result = "TCP_MISS_ABORTED";
	} else if (f.bad_framing[0]) {
		stats_inc(STAT_upstream_errors_total);
		exchange_error(x, 502, f.bad_framing);
	} else {
		char why[512];
		int status = upstream_failure(h, rc, &u, x->url.host, x->url.port, why, sizeof why);
		x->hierarchy = "HIER_NONE";
		x->upstream[0] = '\0';
		if (status == 403) {
			stats_inc(STAT_requests_destination_denied_total);
			x->result = "TCP_DENIED";
		} else {
			stats_inc(status == 504 ? STAT_upstream_timeouts_total : STAT_upstream_errors_total);
		}
		exchange_error(x, status, why);
	}
	if (!r->message_complete)
		x->close_after = 1;
	curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	resphead_free(&f.head);
}

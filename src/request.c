/*
 * request.c — reading one client request (see request.h).
 *
 * The parser is paused at the end of each message (on_message_complete
 * returns HPE_PAUSED), so bytes of a pipelined next request stay unparsed in
 * the session's buffer for the next request_init. A CONNECT request stops the
 * parser too (HPE_PAUSED_UPGRADE): what follows its head is tunnel data.
 */
#include "corral/request.h"
#include "corral/io.h"
#include "corral/log.h"
#include "corral/session.h"
#include "corral/strbuf.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define READ_CHUNK 65536
#define READ_TIMEOUT (-2)   /* read_more: nothing arrived in time */

static struct request *req_of(llhttp_t *p)
{
	return p->data;
}

static int fail(struct request *r, int status, const char *why)
{
	r->error_status = status;
	r->error_text = why;
	return -1;
}

static int count_head(struct request *r, size_t n)
{
	r->head_bytes += n;
	if (r->head_bytes > r->cfg->max_request_header)
		return fail(r, 431, "the request head is larger than max_request_header");
	return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
	struct request *r = req_of(p);
	if (r->url_len + len > r->cfg->max_url)
		return fail(r, 414, "the request target is longer than max_url");
	if (r->url_len + len + 1 > r->url_cap) {
		size_t cap = (r->url_len + len + 1) * 2;
		char *u = realloc(r->url, cap);
		if (u == NULL)
			return fail(r, 500, "out of memory");
		r->url = u;
		r->url_cap = cap;
	}
	memcpy(r->url + r->url_len, at, len);
	r->url_len += len;
	r->url[r->url_len] = '\0';
	return count_head(r, len);
}

static int flush_header(struct request *r)
{
	size_t nlen = evbuffer_get_length(r->field);
	if (nlen == 0)
		return 0;
	size_t vlen = evbuffer_get_length(r->value);
	const char *n = (const char *)evbuffer_pullup(r->field, -1);
	const char *v = vlen ? (const char *)evbuffer_pullup(r->value, -1) : "";
	if (headers_add(&r->headers, n, nlen, v, vlen) < 0)
		return fail(r, 500, "out of memory");
	evbuffer_drain(r->field, nlen);
	evbuffer_drain(r->value, vlen);
	return 0;
}

/* Trailer fields of a chunked body come through these callbacks too, after
 * the head: they are dropped (RFC 9112 7.1.2 lets a recipient that removes
 * the chunked coding discard them; corral re-frames the body). Taken as
 * fields, they were added to the request's headers when the body had come
 * with the head (one write), and sent upstream as headers. */
static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
	struct request *r = req_of(p);
	if (r->headers_complete)
		return 0;
	if (r->in_value) {
		if (flush_header(r) < 0)
			return -1;
		r->in_value = 0;
	}
	/* ": " and CRLF once per field, however many reads its name took */
	size_t framing = evbuffer_get_length(r->field) == 0 ? 4 : 0;
	evbuffer_add(r->field, at, len);
	return count_head(r, len + framing);
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
	struct request *r = req_of(p);
	if (r->headers_complete)
		return 0;
	r->in_value = 1;
	evbuffer_add(r->value, at, len);
	return count_head(r, len);
}

/* A Host value: uri-host [ ":" port ], nothing that could make it name
 * another authority or break a line (RFC 9112 3.2, RFC 3986 3.2.2). */
static int host_valid(const char *v)
{
	/* empty: allowed when the target has no authority */
	for (; *v; v++) {
		unsigned char c = (unsigned char)*v;
		if (c <= ' ' || c >= 0x7f)
			return 0;
		switch (c) { /* (on every request: no strchr per character) */
		case '@': case '/': case '?': case '#': case '\\': case '"':
		case '<': case '>': case '{': case '}': case '|': case '^': case '`':
			return 0;
		}
	}
	return 1;
}

/* What llhttp leaves to us once the head is in (-1 with the answer set). */
static int check_head(struct request *r)
{
	const struct http_headers *h = &r->headers;
	struct http_hop hop;
	if (http_hop_init(&hop, h) < 0)
		return fail(r, 400, "more than 32 Connection options");
	/* RFC 9112 3.2: one Host, valid, and one at all in HTTP/1.1 */
	int hosts = 0;
	for (int i = 0; i < h->n; i++) {
		if ((h->v[i].name[0] | 0x20) != 'h' || strcasecmp(h->v[i].name, "Host") != 0)
			continue;
		if (++hosts > 1)
			return fail(r, 400, "more than one Host header");
		if (!host_valid(h->v[i].value))
			return fail(r, 400, "the Host header is not a valid host[:port]");
	}
	if (hosts == 0 && r->http_major == 1 && r->http_minor >= 1)
		return fail(r, 400, "an HTTP/1.1 request without a Host header");
	/* llhttp refuses a body whose last coding is not chunked; one before
	 * it (gzip, chunked) corral would pass on undecoded (RFC 9112 6.1:
	 * 501 for a transfer coding not understood) */
	if (r->chunked) {
		for (int i = 0; i < h->n; i++) {
			if (strcasecmp(h->v[i].name, "Transfer-Encoding") != 0)
				continue;
			const char *p = h->v[i].value, *tok;
			size_t n;
			while ((p = http_list_next(p, &tok, &n)) != NULL)
				if (n != 7 || strncasecmp(tok, "chunked", 7) != 0)
					return fail(r, 501, "a transfer coding other than chunked");
		}
		/* RFC 9112 6.1: HTTP/1.0 with Transfer-Encoding: the framing is
		 * faulty; serve it, then close */
		if (r->http_major == 1 && r->http_minor == 0)
			r->keep_alive = 0;
	}
	/* RFC 9110 9.3.2: content in a HEAD has no defined meaning, and
	 * libcurl cannot send it as HEAD (an upload makes it a PUT) */
	if (r->has_body && strcmp(r->method, "HEAD") == 0)
		return fail(r, 400, "a HEAD request with content");
	return 0;
}

static int on_headers_complete(llhttp_t *p)
{
	struct request *r = req_of(p);
	if (flush_header(r) < 0)
		return -1;
	r->headers_complete = 1;
	/* a copy, not snprintf: ~560 instructions of every 1 KiB hit's ~14,800 */
	struct strbuf m = strbuf_on_cstr(r->method, sizeof r->method);
	strbuf_str(&m, llhttp_method_name((llhttp_method_t)llhttp_get_method(p)));
	strbuf_cstr(&m);
	r->http_major = llhttp_get_http_major(p);
	r->http_minor = llhttp_get_http_minor(p);
	r->keep_alive = llhttp_should_keep_alive(p);
	r->chunked = (p->flags & F_CHUNKED) != 0;
	r->content_length = (p->flags & F_CONTENT_LENGTH) ? (int64_t)p->content_length : -1;
	r->has_body = r->chunked || r->content_length > 0;
	const char *expect = headers_get(&r->headers, "Expect");
	/* an HTTP/1.0 client cannot take a 100 (RFC 9110 10.1.1): ignore it */
	r->expect_continue = expect && strcasecmp(expect, "100-continue") == 0 &&
	                     (r->http_major > 1 || r->http_minor > 0);
	return check_head(r);
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
	struct request *r = req_of(p);
	return evbuffer_add(r->body, at, len) == 0 ? 0 : fail(r, 500, "out of memory");
}

static int on_message_complete(llhttp_t *p)
{
	struct request *r = req_of(p);
	r->message_complete = 1;
	return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

void request_init(struct request *r, struct session *s, const struct config *c)
{
	memset(r, 0, sizeof *r);
	r->s = s;
	r->cfg = c;
	r->content_length = -1;
	headers_init(&r->headers);
	r->field = evbuffer_new();
	r->value = evbuffer_new();
	r->body = evbuffer_new();
	llhttp_init(&r->parser, HTTP_REQUEST, &settings);
	r->parser.data = r;
}

void request_free(struct request *r)
{
	headers_free(&r->headers);
	free(r->url);
	if (r->field)
		evbuffer_free(r->field);
	if (r->value)
		evbuffer_free(r->value);
	if (r->body)
		evbuffer_free(r->body);
	r->url = NULL;
	r->field = r->value = r->body = NULL;
}

/* Feed what the session has buffered to the parser. Returns 0 or -1. */
static int parse_buffered(struct request *r)
{
	struct evbuffer *in = r->s->in;
	size_t len = evbuffer_get_length(in);
	if (len == 0 || r->message_complete)
		return 0;
	const char *data = (const char *)evbuffer_pullup(in, -1);
	enum llhttp_errno e = llhttp_execute(&r->parser, data, len);
	size_t used = len;
	if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
		used = (size_t)(llhttp_get_error_pos(&r->parser) - data);
		r->message_complete = 1;
	} else if (e != HPE_OK) {
		if (r->error_status == 0) {
			r->error_status = 400;
			r->error_text = llhttp_get_error_reason(&r->parser);
		}
		return -1;
	}
	evbuffer_drain(in, used);
	return 0;
}

/* Read more from the client into the session buffer, waiting at most
 * timeout_ms. Returns bytes read, 0 on EOF, -1 on error, READ_TIMEOUT when
 * nothing came in time. */
static int read_more(struct request *r, int64_t timeout_ms, size_t most)
{
	for (;;) {
		int w = io_wait(r->s->fd, POLLIN, timeout_ms);
		if (w == 0)
			return READ_TIMEOUT;
		if (w < 0)
			return -1;
		int n = evbuffer_read(r->s->in, r->s->fd, (int)most);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			continue;
		return n;
	}
}

enum request_read_result request_read_head(struct request *r)
{
	int64_t deadline = mono_ms() + r->cfg->header_timeout_ms;
	int got_any = evbuffer_get_length(r->s->in) > 0;
	for (;;) {
		if (parse_buffered(r) < 0)
			return REQUEST_ERROR;
		if (r->headers_complete)
			return REQUEST_OK;
		int64_t left = deadline - mono_ms();
		if (left <= 0) {
			r->error_status = got_any ? 408 : 0;
			r->error_text = "the request head did not arrive within header_timeout";
			return got_any ? REQUEST_ERROR : REQUEST_CLOSED;
		}
		int n = read_more(r, left, READ_CHUNK);
		if (n == READ_TIMEOUT)
			continue;   /* the deadline check above answers 408 (or closes) */
		if (n <= 0) {
			if (!got_any)
				return REQUEST_CLOSED;
			r->error_status = 0; /* the client went away mid-head */
			return REQUEST_ERROR;
		}
		got_any = 1;
	}
}

ssize_t request_read_body(struct request *r, char *buf, size_t len)
{
	for (;;) {
		size_t have = evbuffer_get_length(r->body);
		if (have > 0) {
			int n = evbuffer_remove(r->body, buf, len);
			if (n > 0) {
				r->body_read += (uint64_t)n;
				r->sent_continue = 1; /* the client sends without it */
			}
			return n;
		}
		if (r->message_complete)
			return 0;
		if (r->expect_continue && !r->sent_continue) {
			static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
			r->sent_continue = 1;
			if (io_write_all(r->s->fd, cont, sizeof cont - 1, r->cfg->client_timeout_ms) < 0)
				return -1;
		}
		if (evbuffer_get_length(r->s->in) == 0 &&
		    read_more(r, r->cfg->client_timeout_ms, len < READ_CHUNK ? READ_CHUNK : len) <= 0)
			return -1;
		if (parse_buffered(r) < 0)
			return -1;
	}
}

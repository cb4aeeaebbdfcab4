/*
 * exchange.c — serving the requests of one connection on a worker thread.
 *
 * Per request: take a config reference, read the head, decide, answer, write
 * one access log line, drop the reference. Decisions, in order: client not
 * allowed (403), CONNECT (tunnel), target not absolute-form (400: this is a
 * proxy), limits (413), Max-Forwards: 0 on TRACE/OPTIONS (answered here),
 * else forward. The connection is kept only when the request was read whole,
 * both sides want keep-alive and the daemon is not stopping.
 */
#include "corral/exchange.h"
#include "corral/auth.h"
#include "corral/config.h"
#include "corral/forward.h"
#include "corral/io.h"
#include "corral/linger.h"
#include "corral/log.h"
#include "corral/serve.h"
#include "corral/session.h"
#include "corral/stats.h"
#include "corral/strbuf.h"
#include "corral/tunnel.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>

int exchange_write(struct exchange *x, const void *buf, size_t len)
{
	if (io_write_all(x->s->fd, buf, len, x->cfg->client_timeout_ms) < 0)
		return -1;
	x->bytes_out += len;
	stats_add(STAT_bytes_to_clients_total, (int64_t)len);
	return 0;
}

int exchange_writev(struct exchange *x, struct iovec *v, int n)
{
	size_t len = 0;
	for (int i = 0; i < n; i++)
		len += v[i].iov_len;
	if (io_writev_all(x->s->fd, v, n, x->cfg->client_timeout_ms) < 0)
		return -1;
	x->bytes_out += len;
	stats_add(STAT_bytes_to_clients_total, (int64_t)len);
	return 0;
}

int exchange_write_body(struct exchange *x, const void *buf, size_t len, int chunked)
{
	if (!chunked)
		return exchange_write(x, buf, len);
	char pre[24];
	int m = snprintf(pre, sizeof pre, "%zx\r\n", len);
	struct iovec v[3] = {
		{ .iov_base = pre, .iov_len = (size_t)m },
		{ .iov_base = (void *)buf, .iov_len = len },
		{ .iov_base = "\r\n", .iov_len = 2 },
	};
	if (io_writev_all(x->s->fd, v, 3, x->cfg->client_timeout_ms) < 0)
		return -1;
	x->bytes_out += (uint64_t)m + len + 2;
	stats_add(STAT_bytes_to_clients_total, (int64_t)(m + len + 2));
	return 0;
}

/* Append the literal `s` at *n in buf (the caller sized buf for them all). */
#define PUT(s) (memcpy(buf + n, s, sizeof s - 1), n += sizeof s - 1)

size_t exchange_head_end(struct exchange *x, char buf[EXCHANGE_HEAD_END_MAX], int chunked)
{
	const struct request *r = &x->req;
	size_t n = 0;
	if (chunked)
		PUT("Transfer-Encoding: chunked\r\n");
	if (x->cfg->via && x->via_http10)
		PUT("Via: 1.0 corral\r\n");
	else if (x->cfg->via)
		PUT("Via: 1.1 corral\r\n");
	if (!r->keep_alive || session_stopping())
		x->close_after = 1;
	if (x->close_after)
		PUT("Connection: close\r\n");
	else if (r->http_minor == 0)
		PUT("Connection: keep-alive\r\n");
	PUT("\r\n");
	return n;
}
#undef PUT

void exchange_set_mime(struct exchange *x, const char *ctype)
{
	/* the media type alone, as Squid logs it (copied: on every hit) */
	size_t n = ctype ? strcspn(ctype, " ;\t") : 0;
	if (n == 0) {
		ctype = "-";
		n = 1;
	}
	struct strbuf b = strbuf_on_cstr(x->mime, sizeof x->mime);
	strbuf_mem(&b, ctype, n);
	strbuf_cstr(&b);
}

int exchange_reply(struct exchange *x, int status, const char *extra,
                   const char *ctype, const char *body, size_t len)
{
	char head[2048], type[256] = "";
	if (!x->req.keep_alive || session_stopping())
		x->close_after = 1;
	if (ctype)
		snprintf(type, sizeof type, "Content-Type: %s\r\n", ctype);
	int n = snprintf(head, sizeof head,
	                 "HTTP/1.1 %d %s\r\n%s%sContent-Length: %zu\r\n%s%s\r\n",
	                 status, http_reason(status), extra ? extra : "", type, len,
	                 x->cfg->via ? "Via: 1.1 corral\r\n" : "",
	                 x->close_after ? "Connection: close\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof head)
		return -1;
	x->status = status;
	exchange_set_mime(x, ctype);
	if (exchange_write(x, head, (size_t)n) < 0)
		return -1;
	if (strcmp(x->req.method, "HEAD") != 0 && len > 0 && exchange_write(x, body, len) < 0)
		return -1;
	return 0;
}

void exchange_error(struct exchange *x, int status, const char *why)
{
	char body[1024];
	int n = snprintf(body, sizeof body, "%d %s\n%s\n", status, http_reason(status), why);
	if (n < 0 || (size_t)n >= sizeof body)
		n = (int)strlen(body);
	x->close_after = 1;
	if (x->result == NULL)
		x->result = "NONE_NONE";
	if (x->hierarchy == NULL)
		x->hierarchy = "HIER_NONE";
	log_info("%s %s %s: %d %s", x->s->peer_text, x->req.method[0] ? x->req.method : "-",
	         x->req.url ? x->req.url : "-", status, why);
	exchange_reply(x, status, NULL, "text/plain; charset=utf-8", body, (size_t)n);
}

/* Left out of a TRACE echo besides the hop-by-hop fields: credentials
 * (RFC 9110 9.3.8: TRACE should exclude sensitive fields). */
static int trace_hides(const struct http_hop *hop, const char *name)
{
	return http_hop_has(hop, name) || strcasecmp(name, "Authorization") == 0 ||
	       strcasecmp(name, "Cookie") == 0;
}

/* TRACE or OPTIONS with Max-Forwards: 0 — this hop answers. */
static void answer_locally(struct exchange *x)
{
	const struct request *r = &x->req;
	x->result = "TCP_MISS";
	x->hierarchy = "HIER_NONE";
	if (strcmp(r->method, "OPTIONS") == 0) {
		exchange_reply(x, 200,
		               "Allow: GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE, CONNECT\r\n",
		               "text/plain", "", 0);
		return;
	}
	struct evbuffer *b = evbuffer_new();
	evbuffer_add_printf(b, "%s %s HTTP/%d.%d\r\n", r->method, r->url, r->http_major,
	                    r->http_minor);
	struct http_hop hop;
	http_hop_init(&hop, &r->headers); /* checked when the head was read */
	for (int i = 0; i < r->headers.n; i++)
		if (!trace_hides(&hop, r->headers.v[i].name))
			evbuffer_add_printf(b, "%s: %s\r\n", r->headers.v[i].name,
			                    r->headers.v[i].value);
	evbuffer_add(b, "\r\n", 2);
	size_t len = evbuffer_get_length(b);
	exchange_reply(x, 200, NULL, "message/http", (const char *)evbuffer_pullup(b, -1), len);
	evbuffer_free(b);
}

/* 407: [proxy] auth_file is set and the request has no credentials that
 * match it (RFC 9110 11.7.1). Closed after, like every answer of corral's
 * own: a browser asks its user and sends the request again. */
static void require_credentials(struct exchange *x)
{
	static const char body[] = "407 Proxy Authentication Required\n"
	                           "this proxy needs a user name and password\n";
	char challenge[256];
	snprintf(challenge, sizeof challenge,
	         "Proxy-Authenticate: Basic realm=\"%s\", charset=\"UTF-8\"\r\n",
	         x->cfg->auth_realm);
	stats_inc(STAT_requests_unauthenticated_total);
	x->result = "TCP_DENIED";
	x->hierarchy = "HIER_NONE";
	x->close_after = 1;
	exchange_reply(x, 407, challenge, "text/plain; charset=utf-8", body, sizeof body - 1);
}

static void dispatch(struct exchange *x)
{
	struct request *r = &x->req;
	if (x->s->denied) {
		stats_inc(STAT_requests_denied_total);
		x->result = "TCP_DENIED";
		exchange_error(x, 403, "your address is not allowed to use this proxy");
		return;
	}
	if (x->cfg->auth &&
	    (x->user = auth_check(x->cfg->auth, headers_get(&r->headers,
	                                                     "Proxy-Authorization"))) == NULL) {
		require_credentials(x);
		return;
	}
	if (strcmp(r->method, "CONNECT") == 0) {
		tunnel_run(x);
		return;
	}
	if (r->url[0] == '/' || r->url[0] == '*') {
		stats_inc(STAT_requests_bad_total);
		exchange_error(x, 400, "this is a proxy: send the absolute URL as the request "
		               "target (GET http://host/path HTTP/1.1), or set it as your HTTP proxy");
		return;
	}
	if (url_parse(r->url, &x->url) < 0) {
		stats_inc(STAT_requests_bad_total);
		exchange_error(x, 400, "the request target is not an http:// or https:// URL "
		               "this proxy can fetch");
		return;
	}
	if (!config_port_allowed(&x->cfg->http_ports, x->url.port)) {
		/* Squid's Safe_ports: a request body must not become another
		 * protocol's commands (SMTP on 25, ...) */
		char why[96];
		snprintf(why, sizeof why, "requests to port %d are not allowed (http_ports)",
		         x->url.port);
		stats_inc(STAT_requests_destination_denied_total);
		x->result = "TCP_DENIED";
		exchange_error(x, 403, why);
		return;
	}
	if (x->cfg->max_request_body && r->content_length > 0 &&
	    (uint64_t)r->content_length > x->cfg->max_request_body) {
		stats_inc(STAT_requests_too_large_total);
		exchange_error(x, 413, "the request body is larger than max_request_body");
		return;
	}
	/* Max-Forwards is 1*DIGIT: answered here when it is all zeros; any
	 * value that is not digits counts as absent (forwarded) */
	const char *mf = headers_get(&r->headers, "Max-Forwards");
	if (mf && (strcmp(r->method, "TRACE") == 0 || strcmp(r->method, "OPTIONS") == 0) &&
	    mf[0] != '\0' && strspn(mf, "0") == strlen(mf)) {
		answer_locally(x);
		return;
	}
	cache_serve(x);
}

static void log_exchange(struct exchange *x)
{
	char version[16] = "";
	struct access_record rec = {
		.start_ms = x->start_ms,
		.elapsed_ms = mono_ms() - x->start_mono,
		.client = x->s->peer_text,
		.user = x->user,
		.result = x->result ? x->result : "NONE_NONE",
		.status = x->status,
		.bytes = x->bytes_out,
		.method = x->req.method[0] ? x->req.method : "NONE",
		.url = x->req.url ? x->req.url : "-",
		.hierarchy = x->hierarchy ? x->hierarchy : "HIER_NONE",
		.upstream = x->upstream,
		.mime = x->mime,
		.http_version = version,
	};
	if (log_access_combined()) { /* the Squid format has none of these */
		snprintf(version, sizeof version, "HTTP/%d.%d", x->req.http_major,
		         x->req.http_minor);
		rec.referer = headers_get(&x->req.headers, "Referer");
		rec.user_agent = headers_get(&x->req.headers, "User-Agent");
	}
	log_access(&rec);
}

/* Closing a socket with request bytes unread makes the kernel reset the
 * connection, and a client still sending its body then loses the answer it
 * was given (a 407, a 413) before it reads it. So, as Apache and nginx do
 * (lingering close): stop writing, read and drop what still comes until the
 * client closes, for at most LINGER_CLOSE_MS and LINGER_CLOSE_BYTES, then
 * close. The daemon stopping ends it at once (checked every
 * LINGER_CLOSE_SLICE_MS): the answer is out, and a stop must not wait. */
#define LINGER_CLOSE_MS 2000
#define LINGER_CLOSE_SLICE_MS 100
#define LINGER_CLOSE_BYTES (8u << 20)

static void close_after_the_rest(struct session *s)
{
	char buf[16384];
	size_t dropped = evbuffer_get_length(s->in);
	int64_t deadline = mono_ms() + LINGER_CLOSE_MS;
	shutdown(s->fd, SHUT_WR);
	while (dropped < LINGER_CLOSE_BYTES && !session_stopping()) {
		int64_t left = deadline - mono_ms();
		if (left <= 0)
			break;
		int ready = io_wait(s->fd, POLLIN,
		                    left < LINGER_CLOSE_SLICE_MS ? left : LINGER_CLOSE_SLICE_MS);
		if (ready < 0)
			break;
		if (ready == 0)
			continue;
		ssize_t n = recv(s->fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			break;
		if (n > 0)
			dropped += (size_t)n;
	}
	session_close(s);
}

/* Serve requests on s, and on the lingering sessions this worker takes up
 * after it, until one is closed, handed off or parked. */
static void serve_sessions(struct session *s)
{
	for (;;) {
		struct exchange x = { .s = s };
		x.cfg = config_get();
		x.start_ms = log_now_ms();
		x.start_mono = mono_ms();
		request_init(&x.req, s, x.cfg);
		enum request_read_result rr = request_read_head(&x.req);
		if (rr == REQUEST_CLOSED) {
			request_free(&x.req);
			config_put(x.cfg);
			session_close(s);
			return;
		}
		stats_inc(STAT_requests_total);
		s->nrequests++;
		if (rr == REQUEST_ERROR) {
			if (x.req.error_status) {
				int st = x.req.error_status;
				stats_inc(st == 408 ? STAT_client_timeouts_total
				          : st == 413 || st == 414 || st == 431
				          ? STAT_requests_too_large_total
				          : STAT_requests_bad_total);
				exchange_error(&x, x.req.error_status, x.req.error_text
				               ? x.req.error_text : "malformed request");
				log_exchange(&x);
			}
			x.close_after = 1;
		} else {
			dispatch(&x);
			if (x.handed_off) {
				request_free(&x.req);
				config_put(x.cfg);
				return;
			}
			log_exchange(&x);
		}
		int keep = !x.close_after && x.req.keep_alive && x.req.message_complete &&
		           !session_stopping();
		/* answered before the whole request was read */
		int unread = !keep && x.status != 0 && !x.req.message_complete;
		int64_t linger_ms = x.cfg->keepalive_linger_ms;
		request_free(&x.req);
		config_put(x.cfg);
		if (!keep) {
			if (unread)
				close_after_the_rest(s);
			else
				session_close(s);
			return;
		}
		/* Linger: a client on a busy keep-alive connection usually sends
		 * its next request within a round trip; waiting for it on the
		 * worker costs one wake-up, handing the session to the waiter and
		 * back costs two thread switches. The worker goes on with
		 * whichever lingering session is ready first (linger.h). */
		if (evbuffer_get_length(s->in) > 0)
			continue;
		if (session_stopping() || linger_ms <= 0) {
			session_park(s);
			return;
		}
		s = linger_wait(s, linger_ms);
		if (s == NULL)
			return;
	}
}

void exchange_will_block(void)
{
	linger_release();
}

void exchange_run(void *arg)
{
	serve_sessions(arg);
	linger_release();
}

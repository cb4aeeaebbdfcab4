/*
 * exchange.h — one request and its response, served by one worker thread in
 * plain sequential code: read the request, decide, forward or answer, log.
 *
 * exchange_run() is the pool job for a session that has become readable: it
 * serves requests on that connection while bytes are already buffered
 * (pipelining), then parks the session back in the waiter, closes it, or
 * hands it to a tunnel.
 */
#ifndef CORRAL_EXCHANGE_H
#define CORRAL_EXCHANGE_H

#include <stdint.h>
#include "corral/http.h"
#include "corral/request.h"

struct session;

struct exchange {
	struct session *s;
	struct config *cfg;       /* a reference, for this request */
	struct request req;
	struct url url;           /* parsed target (absolute-form) */
	int64_t start_ms, start_mono;
	/* what happened, for the access log */
	int status;
	uint64_t bytes_out;       /* head and body bytes written to the client */
	const char *result;       /* Squid result code */
	const char *user;         /* the authenticated user ([proxy] auth_file;
	                             in cfg->auth), or NULL */
	const char *hierarchy;    /* HIER_DIRECT / HIER_NONE */
	char upstream[64];        /* upstream address */
	char mime[128];
	const char *cache_status;  /* Cache-Status value to send, or NULL */
	/* forward_run calls this (when set) with the final response head, so
	 * that whoever passed the request can learn from the answer */
	void (*on_response_head)(struct exchange *x, int status,
	                         const struct http_headers *h, int64_t content_length);
	void *on_response_head_arg;
	int close_after;          /* close the connection after this response */
	int via_http10;           /* the response it relays came as HTTP/1.0: its
	                             Via says 1.0 (RFC 9110 7.6.3) */
	int handed_off;           /* the session now belongs to a tunnel */
};

void exchange_run(void *session);

/* The worker is about to block on something other than its client (an
 * upstream, a fetch, a body still arriving): another worker takes up the
 * lingering sessions meanwhile (linger.h). Cheap when called again. */
void exchange_will_block(void);

/* Write to the client, counting bytes. Returns 0 or -1 (client gone). */
int exchange_write(struct exchange *x, const void *buf, size_t len);

/* Several buffers in one write (io_writev_all consumes `v`). Returns 0 or -1. */
struct iovec;
int exchange_writev(struct exchange *x, struct iovec *v, int n);

/* Body bytes to the client, chunk-framed when `chunked`. Returns 0 or -1. */
int exchange_write_body(struct exchange *x, const void *buf, size_t len, int chunked);

/* The end of a response head, written to buf: Transfer-Encoding when
 * `chunked`, Via, the Connection header (deciding close_after), the blank
 * line. Returns its length. Shared by every path that relays or delivers a
 * response. */
#define EXCHANGE_HEAD_END_MAX 128
size_t exchange_head_end(struct exchange *x, char buf[EXCHANGE_HEAD_END_MAX], int chunked);

/* Record a Content-Type for the access log: the media type alone, or "-". */
void exchange_set_mime(struct exchange *x, const char *ctype);

/* A response made by corral itself; `extra` holds header lines ending in
 * CRLF, or NULL. The connection closes after it when close_after is set. */
int exchange_reply(struct exchange *x, int status, const char *extra,
                   const char *ctype, const char *body, size_t len);

/* An error answer: text/plain body "STATUS REASON\n<why>\n", logged and
 * counted; the connection closes after it. */
void exchange_error(struct exchange *x, int status, const char *why);

#endif

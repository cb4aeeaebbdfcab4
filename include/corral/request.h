/*
 * request.h — reading one client request with llhttp (strict mode).
 *
 * request_read_head() reads until the head is complete and leaves any body
 * bytes and pipelined requests in the session's buffer. The body is then
 * pulled by request_read_body() as the consumer (libcurl's read callback)
 * wants it: streamed, never buffered whole. Limits from the config become
 * statuses: 414 (max_url), 431 (max_request_header), 400 (malformed), 408
 * (a head begun but not complete within header_timeout; a connection that
 * sent nothing at all is closed without an answer).
 */
#ifndef CORRAL_REQUEST_H
#define CORRAL_REQUEST_H

#include <stdint.h>
#include <sys/types.h>
#include <llhttp.h>
#include <event2/buffer.h>

#include "corral/config-t.h"
#include "corral/http.h"

struct session;

struct request {
	llhttp_t parser;
	struct session *s;
	const struct config *cfg;
	char method[24];
	char *url;                /* the request target as sent */
	size_t url_len, url_cap;
	int http_major, http_minor;
	struct http_headers headers;
	int64_t content_length;   /* -1 when none */
	int chunked;              /* the body is chunked */
	int has_body;             /* Content-Length > 0 or chunked */
	int expect_continue;      /* Expect: 100-continue */
	int sent_continue;        /* a 100 is no longer to be sent: sent, or a
	                             body byte came (RFC 9110 10.1.1), or the
	                             final head went out (forward.c): a 1xx
	                             after it would land inside the body */
	int keep_alive;           /* as the client asked (llhttp) */
	int headers_complete;
	int message_complete;
	uint64_t body_read;       /* body bytes handed to the consumer */
	int error_status;         /* 400, 414, 431... when reading failed */
	const char *error_text;
	/* parse state */
	size_t head_bytes;
	int in_value;
	struct evbuffer *field, *value;
	struct evbuffer *body;    /* decoded body bytes not yet consumed */
};

enum request_read_result {
	REQUEST_OK = 0,       /* head complete */
	REQUEST_CLOSED = -1,  /* peer closed or timed out before sending anything */
	REQUEST_ERROR = -2,   /* answer r->error_status (or just close when 0) */
};

void request_init(struct request *r, struct session *s, const struct config *c);
void request_free(struct request *r);
enum request_read_result request_read_head(struct request *r);

/* Up to len bytes of decoded body. 0 at its end, -1 on error or timeout.
 * Sends "100 Continue" first when the client asked for it. */
ssize_t request_read_body(struct request *r, char *buf, size_t len);

#endif

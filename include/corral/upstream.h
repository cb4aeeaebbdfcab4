/*
 * upstream.h — libcurl set up the way a proxy needs it.
 *
 * One curl share object holds the connection cache, the DNS cache and TLS
 * sessions for every transfer, so transfers on any worker reuse upstream
 * connections. upstream_easy() makes a handle with corral's common options:
 * timeouts, parent proxy (or none: the environment's http_proxy is ignored),
 * no redirects, no content decoding, no signals, and the destination filter
 * (loopback and link-local refused unless [upstream] allow_loopback).
 */
#ifndef CORRAL_UPSTREAM_H
#define CORRAL_UPSTREAM_H

#include <curl/curl.h>
#include <stdint.h>
#include "corral/config-t.h"
#include "corral/http.h"

/* Per-transfer facts the common options report back. Owned by the thread
 * running the transfer; no lock. */
struct upstream_ctx {
	int allow_loopback;
	int dest_denied;                 /* the filter refused the address */
	int stalled;                     /* no progress for [upstream] timeout */
	int64_t stall_ms;                /* that timeout */
	int64_t last_progress_ms;        /* monotonic time bytes last moved */
	curl_off_t last_dl, last_ul;     /* byte counts seen then */
	int after_body;                  /* the body is in: bytes that still come
	                                    (a chunked body's trailers) are not
	                                    progress, the stall timer runs (fetch.c,
	                                    as libcurl's own decoding does for a pass) */
	/* called after every pass of libcurl's transfer loop (from its
	 * progress callback), i.e. once the body bytes of one read have all
	 * been handed to the write callback; NULL: none */
	void (*after_read)(void *arg);
	void *after_read_arg;
	char errbuf[CURL_ERROR_SIZE];
	const char *parent;              /* the config's parent_host ("" when
	                                    none): the transport errors are the
	                                    parent's */
};

int upstream_init(void);

CURL *upstream_easy(const struct config *c, struct upstream_ctx *u);

/* Append "name: value" to a header list made by upstream_request_headers
 * (a value of any length). Returns the list, or NULL when out of memory (the
 * list is then freed). */
struct curl_slist *upstream_header_append(struct curl_slist *l, const char *name,
                                          const char *value);

/* What corral adds to a request it sends on as a hop: Via and
 * X-Forwarded-For. Made once per request, from the running config, the
 * protocol the request came in and the client's address. */
struct upstream_forwarding {
	const char *via;                  /* "1.0 corral" or "1.1 corral" by the
	                                     request's protocol (RFC 9110 7.6.3's
	                                     received-protocol), or NULL when
	                                     [proxy] via is off */
	enum forwarded_for forwarded_for; /* [proxy] forwarded_for */
	char client[64];                  /* the client's address (session.h's
	                                     peer_text) */
};
void upstream_forwarding_init(struct upstream_forwarding *fw, const struct config *c,
                              int http_minor, const char *client);

/* The request headers to send upstream for `method` with the client's
 * `headers`: end-to-end headers in their order; hop-by-hop, Host (curl sends
 * it from the URL), Expect and — when the body is re-framed — Content-Length
 * left out; Max-Forwards decremented on TRACE/OPTIONS; Via and
 * X-Forwarded-For as `fw` says (the client's X-Forwarded-For lines, unless
 * transparent, become one line at the end); curl's own Accept/Expect
 * suppressed. A cache fetch
 * (`for_cache`) serves other clients too, so the client's conditional
 * headers (If-*) are left out. Returns 0 with *out set (to be freed with
 * curl_slist_free_all), or -1 when out of memory. */
int upstream_request_headers(const char *method, const struct http_headers *headers,
                             int has_body, const struct upstream_forwarding *fw,
                             int for_cache, struct curl_slist **out);

/* Restart the no-progress clock, e.g. after the transfer was held back on
 * purpose (a paused fetch is not a stalled origin). */
void upstream_touch(struct upstream_ctx *u);

/* How the access log names the way a request went: FIRSTUP_PARENT with a
 * parent (as Squid logs it), else HIER_DIRECT. */
const char *upstream_hierarchy(const struct config *c);

/* A parent's 407 is not for the client, who cannot give the parent
 * credentials through corral: true (and `why` says so) when the head of
 * this status came from the parent's refusal. */
int upstream_parent_refused(const struct upstream_ctx *u, int status, char *why, size_t len);

/* The status (403, 502 or 504) and a sentence saying why, for a transfer that
 * failed before a response head arrived. Errors of the connection itself
 * (refused, reset, timeouts) name the parent when there is one. */
int upstream_failure(CURL *h, CURLcode rc, const struct upstream_ctx *u,
                     const char *host, int port, char *why, size_t whylen);

#endif

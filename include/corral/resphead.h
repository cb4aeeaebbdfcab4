/*
 * resphead.h — an upstream response head, assembled from the header lines
 * libcurl hands to a CURLOPT_HEADERFUNCTION callback.
 *
 * Used by the pass-through forwarder and by the cache's fetch: both see the
 * same status, reason and headers (in order, repeats kept, obsolete line
 * folding joined). Interim (1xx) heads are reported so the caller can relay
 * or drop them; the final head ends with RESPHEAD_FINAL. Owned by the one
 * thread running the transfer; no lock.
 */
#ifndef CORRAL_RESPHEAD_H
#define CORRAL_RESPHEAD_H

#include <stddef.h>
#include "corral/http.h"

/* Why a 101 from the origin is a 502: corral asks for no upgrade (it drops
 * Upgrade from requests) and relays none. */
#define RESPHEAD_NO_UPGRADE "the origin switched protocols (101), which corral did not ask " \
                            "for and does not relay"

/* The largest response head corral takes (Squid's reply_header_max_size):
 * past it the head is refused with a 502, and nothing more of it is kept. */
#define RESPHEAD_MAX (64 * 1024)

struct resphead {
	struct http_headers headers;
	int status;
	int http10;        /* the status line said HTTP/1.0 */
	char reason[128];  /* control characters made spaces */
	int in_head;   /* a status line was seen, the blank line not yet */
	int final;     /* the final (non-1xx) head is complete */
	size_t bytes;  /* of the head being read */
	const char *bad; /* why the head cannot be passed on, or NULL (a
	                    static string, for resphead_framing_error) */
};

enum resphead_event {
	RESPHEAD_MORE,    /* keep feeding lines */
	RESPHEAD_INTERIM, /* a 1xx head is complete (status, reason set) */
	RESPHEAD_FINAL,   /* the final head is complete */
	RESPHEAD_TRAILER, /* a line after the final head (trailers): ignore */
	RESPHEAD_NOMEM,
};

void resphead_init(struct resphead *h);
void resphead_free(struct resphead *h);

/* Feed one header line as libcurl delivers it (with its CRLF). */
enum resphead_event resphead_line(struct resphead *h, const char *buf, size_t len);

/* Whether the final head is one corral can pass on: NULL, or why not
 * (written to why[0..len)), for a 502. Refused: a head over RESPHEAD_MAX; a
 * field name that is not a token, or has whitespace before its colon
 * (RFC 9112 5.1: libcurl reads "Content-Length :" as no length at all, so
 * a client reading it as one would frame the body differently);
 * Content-Length values that are not 1*DIGIT or that disagree (RFC 9112
 * 6.3: libcurl would read by the last, a stored entry would say the
 * first); a transfer coding other than chunked (corral sends no TE, so an
 * origin must not use one, RFC 9112 6.1; relaying it with the coding
 * dropped would hand clients, and the cache, bytes that mean something
 * else); more than HTTP_CONNECTION_OPTIONS_MAX Connection options. Control
 * characters in values (a bare CR could end a line for some client) are
 * made spaces as the head is read (RFC 9112 2.2). */
const char *resphead_framing_error(const struct resphead *h, char *why, size_t len);

/* Append the end-to-end headers of `h` to `out`: hop-by-hop headers and the
 * framing (Content-Length, Transfer-Encoding) left out — the sender redoes
 * framing. Returns 0 or -1 (out of memory). */
int resphead_end_to_end(const struct resphead *h, struct http_headers *out);

#endif

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

struct resphead {
	struct http_headers headers;
	int status;
	char reason[128];
	int in_head;   /* a status line was seen, the blank line not yet */
	int final;     /* the final (non-1xx) head is complete */
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

/* Whether the final head's framing is one corral can pass on: NULL, or
 * why not (written to why[0..len)), for a 502. Refused: Content-Length
 * values that disagree (RFC 9112 6.3: libcurl would read by the last, a
 * stored entry would say the first), and a transfer coding other than
 * chunked (corral sends no TE, so an origin must not use one, RFC 9112
 * 6.1; relaying it with the coding dropped would hand clients, and the
 * cache, bytes that mean something else). */
const char *resphead_framing_error(const struct resphead *h, char *why, size_t len);

/* Append the end-to-end headers of `h` to `out`: hop-by-hop headers and the
 * framing (Content-Length, Transfer-Encoding) left out — the sender redoes
 * framing. Returns 0 or -1 (out of memory). */
int resphead_end_to_end(const struct resphead *h, struct http_headers *out);

#endif

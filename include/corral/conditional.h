/*
 * conditional.h — a client's If-None-Match / If-Modified-Since evaluated
 * against a stored response, so that a browser revalidating its own copy of
 * a cached object gets a 304 from corral instead of the whole body (RFC 9111
 * 4.3.2). If-Match and If-Unmodified-Since are not a cache's to evaluate
 * (4.3.2): a request with them is answered as without them.
 */
#ifndef CORRAL_CONDITIONAL_H
#define CORRAL_CONDITIONAL_H

#include "corral/http.h"

struct exchange;
struct entry;
struct entry_reader;

/* Whether the request carries If-None-Match or If-Modified-Since. */
int conditional_present(const struct http_headers *req);

/* 304 when the client's copy is current, else 0 (answer as usual): for a
 * stored 200, If-None-Match against its ETag (weak comparison, RFC 9110
 * 8.8.3.2), else If-Modified-Since against its Last-Modified, Date or time
 * received (RFC 9111 4.3.2); an invalid date is ignored. */
int conditional_status(const struct http_headers *req, const struct entry *e);

/* Answer x with a 304 for entry e instead of e itself, and detach reader r:
 * the stored Cache-Control, Content-Location, Date, ETag, Expires,
 * Last-Modified and Vary (RFC 9110 15.4.5), Age and Cache-Status; no body.
 * Sets x's status and log fields. */
void conditional_reply(struct exchange *x, struct entry *e, struct entry_reader *r,
                       const char *cache_status);

#endif

/*
 * conditional.h — a client's preconditions (If-Match, If-Unmodified-Since,
 * If-None-Match, If-Modified-Since) evaluated against a stored response,
 * so that a browser revalidating its own copy of a cached object gets a
 * 304 from corral instead of the whole body (RFC 9110 13.2, RFC 9111 4.3.2).
 */
#ifndef CORRAL_CONDITIONAL_H
#define CORRAL_CONDITIONAL_H

#include "corral/http.h"

struct exchange;
struct entry;
struct entry_reader;

/* Whether the request carries any of the four preconditions. */
int conditional_present(const struct http_headers *req);

/* What the preconditions of a GET or HEAD ask for, evaluated in RFC 9110
 * 13.2.2's order against e's ETag and Last-Modified: 0 (answer as usual),
 * 304 (the client's copy is current) or 412 (a precondition failed). Only
 * for a stored 2xx response (13.2.1); an invalid date is ignored. */
int conditional_status(const struct http_headers *req, const struct entry *e);

/* Answer x with `status` (304 or 412) for entry e instead of e itself, and
 * detach reader r. A 304 carries the stored Cache-Control, Content-Location,
 * Date, ETag, Expires, Last-Modified and Vary (RFC 9110 15.4.5), Age and
 * Cache-Status; it has no body. Sets x's status and log fields. */
void conditional_reply(struct exchange *x, struct entry *e, struct entry_reader *r, int status,
                       const char *cache_status);

#endif

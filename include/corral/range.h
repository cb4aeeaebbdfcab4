/*
 * range.h — byte ranges of stored responses (RFC 9110 14).
 *
 * A GET with Range is answered from a stored response when the cache holds
 * the whole body (a hit): one satisfiable range gets a 206 with its slice,
 * one that starts past the end a 416, and what corral does not serve as a
 * range (several ranges, another unit, bad syntax, a stored status other
 * than 200, an If-Range that does not match) the whole response, as RFC
 * 9110 14.2 lets a server ignore Range. A miss passes with its Range, as
 * Squid's does (range_offset_limit 0): nothing is fetched or stored for it.
 */
#ifndef CORRAL_RANGE_H
#define CORRAL_RANGE_H

#include <stdint.h>
#include "corral/entry.h"
#include "corral/exchange.h"
#include "corral/http.h"

enum range_kind {
	RANGE_WHOLE,          /* serve the whole response */
	RANGE_PART,           /* one range: first..last (inclusive) */
	RANGE_UNSATISFIABLE,  /* 416 */
};

/* What Range value `value` asks of a body of `length` bytes: one
 * "bytes=first-last", "bytes=first-" or "bytes=-suffix" that overlaps the
 * body is RANGE_PART with *first and *last set (last clamped to the end);
 * one that does not, RANGE_UNSATISFIABLE; anything else RANGE_WHOLE. */
enum range_kind range_parse(const char *value, uint64_t length, uint64_t *first,
                            uint64_t *last);

/* Does If-Range value `if_range` name stored response `resp` (RFC 9110
 * 13.1.5)? An entity tag must equal its strong ETag; a date must equal its
 * Last-Modified, which must be a strong validator (60 s or more before its
 * Date, RFC 9110 8.8.2.2). */
int range_if_range_matches(const char *if_range, const struct http_headers *resp);

/* Answer x from whole stored entry e (reader r attached, detached here)
 * for its Range: a 206, a 416 or the whole response, by range_parse and
 * If-Range. Returns 0 when it answered, or 1 when the whole response is
 * the answer (r still attached: the caller delivers it). */
int range_reply(struct exchange *x, struct entry *e, struct entry_reader *r,
                const char *cache_status);

#endif

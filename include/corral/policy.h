/*
 * policy.h — what RFC 9111 decides, as pure functions of (request, stored
 * response, now). No shared state, no locks, no I/O: the cache machinery
 * calls these and never re-derives a rule itself. Times are seconds since
 * the epoch.
 */
#ifndef CORRAL_POLICY_H
#define CORRAL_POLICY_H

#include <stdint.h>
#include "corral/http.h"

/* Cache-Control directives that matter here, parsed from every
 * Cache-Control header of a message. -1 = absent. */
struct cache_control {
	int no_store, no_cache, private_, public_, must_revalidate, proxy_revalidate;
	int only_if_cached;
	int64_t max_age, s_maxage;
	int64_t stale_if_error;   /* RFC 5861, seconds; -1 none */
	int64_t stale_while_revalidate; /* RFC 5861, seconds; -1 none */
	int64_t min_fresh;        /* a request's, seconds */
	int64_t max_stale;        /* a request's, seconds; POLICY_AGE_MAX
	                             when it has no value (any staleness) */
};

void policy_parse_cache_control(const struct http_headers *h, struct cache_control *cc);

/* Parse an HTTP-date (IMF-fixdate, RFC 850, asctime). -1 when invalid:
 * anything but GMT, or more after the date, is invalid (RFC 9110 5.6.7), and
 * an invalid Expires means already expired (RFC 9111 5.3). */
int64_t policy_parse_date(const char *s);

/* t as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), for the Date a
 * response without one gets (RFC 9110 6.6.1). */
#define POLICY_DATE_LEN 32 /* 29 and the NUL; gcc wants room for what it cannot rule out */
void policy_format_date(int64_t t, char out[POLICY_DATE_LEN]);

/* The largest age corral computes or sends: RFC 9111 1.2.2's 2^31 for a
 * value too big to represent or a calculation that would overflow. */
#define POLICY_AGE_MAX 2147483648LL

enum policy_lookup {
	POLICY_LOOKUP,      /* may be answered from the cache / coalesced */
	POLICY_PASS,        /* go upstream, do not store (method, Range, no-store) */
	POLICY_REFRESH,     /* a reload (no-cache, max-age=0, Pragma: no-cache): not
	                       answered from what is stored; its fetch stores anew */
	POLICY_ONLY_STORED, /* only-if-cached: a stored response (or the fetch under
	                       way for one), else 504; never a fetch of its own */
	POLICY_UNANSWERABLE,/* only-if-cached with what would pass (no-cache, ...):
	                       nothing may answer it, 504 (RFC 9111 5.2.1.7) */
	POLICY_RANGE,       /* a GET with Range: from a stored response with its
	                       whole body (range.h), else passed with its Range
	                       (only-if-cached: 504); never fetched for or coalesced */
};

/* What a request's Cache-Control asks of a stored response (RFC 9111
 * 5.2.1.1-3): max-age=N, no older than N seconds; min-fresh=N, still fresh
 * N seconds from now; max-stale[=N], stale by at most N seconds (no value:
 * any), unless the response forbids it. -1 = not asked. (They choose
 * among stored copies: a request that waits on a herd for a fetch takes
 * the fetch's answer whatever they say, as forwarding it would.) */
struct policy_want {
	int64_t max_age, min_fresh, max_stale;
	int64_t stale_if_error;   /* the request's (RFC 5861 4): -1 none */
	int only_if_cached;
};

/* May this request use the cache (and coalesce)? GET or HEAD, no Range (a
 * GET's is POLICY_RANGE, a HEAD's passes), no request no-store; no-cache /
 * max-age=0 / Pragma: no-cache refresh;
 * only-if-cached never does (other methods than GET and HEAD pass all the
 * same: only-if-cached is about responses the cache could have). *want:
 * the request's freshness directives. */
enum policy_lookup policy_request(const char *method, const struct http_headers *req,
                                  struct policy_want *want);

/* May a stored response (fields resp, its lifetime and age) answer a
 * request that wants `want`? NULL: it must be fresh, nothing more. */
int policy_acceptable(const struct policy_want *want, const struct http_headers *resp,
                      int64_t lifetime, int64_t age);

/* What the store is told to hold ([cache] in the config). */
struct policy_store_rules {
	uint64_t max_object;      /* bytes */
	int heuristic_percent;    /* heuristic freshness: this % of the time
	                             since Last-Modified; 0 none */
	int64_t heuristic_max;    /* seconds: the most a heuristic gives */
	int per_client_xff;       /* the request's X-Forwarded-For goes upstream
	                             with the client's address in it ([proxy]
	                             forwarded_for on or truncate) */
};

/* May a shared cache store this response to request `target` (its URL)
 * with fields `req`? Returns the freshness lifetime in seconds (> 0) when
 * it may, else 0 and *why says why not ("no-store", "private", "no-cache",
 * "set-cookie", "vary-star", "vary-forwarded-for", "authorization",
 * "no-explicit-freshness", "status", "too-large"). A Vary naming
 * X-Forwarded-For is as Vary: * when rules->per_client_xff: the origin saw a
 * value that depends on the client's address, which no request shows. The lifetime is explicit (s-maxage, max-age,
 * Expires), or without any of them heuristic (RFC 9111 4.2.2): a share of
 * the time since Last-Modified, as Squid's refresh_pattern does, and not
 * for a URL with a query (Squid's default too). */
int64_t policy_storable(const struct http_headers *req, const char *target, int status,
                        const struct http_headers *resp, int64_t content_length,
                        const struct policy_store_rules *rules, int64_t now,
                        const char **why);

/* Is a response with this freshness lifetime already stale as it arrives
 * at `now`, by its Age or its Date? (Storing it would serve nothing.) */
int policy_stale_on_arrival(const struct http_headers *resp, int64_t lifetime, int64_t now);

/* May a stored response with fields `resp`, lifetime and age be served
 * stale because its fetch failed (RFC 5861 stale-if-error=N: while age is
 * at most lifetime + N), by its own stale-if-error or by the request's
 * (`request_n`, -1 none: RFC 5861 4)? Never with no-cache,
 * must-revalidate, proxy-revalidate or s-maxage, which ask a shared cache
 * to validate first (RFC 9111 4.2.4, 5.2.2.10). */
int policy_stale_if_error(const struct http_headers *resp, int64_t lifetime, int64_t age,
                          int64_t request_n);

/* May a stored response with fields `resp`, lifetime and age be served
 * stale while the cache revalidates it (RFC 5861 stale-while-revalidate=N:
 * while age is at most lifetime + N)? Never with no-cache,
 * must-revalidate, proxy-revalidate or s-maxage, as policy_stale_if_error. */
int policy_stale_while_revalidate(const struct http_headers *resp, int64_t lifetime,
                                  int64_t age);

/* Current age of a stored response (RFC 9111 4.2.3). */
int64_t policy_age(int64_t date_value, int64_t age_value, int64_t request_time,
                   int64_t response_time, int64_t now);

/* Is a stored response of this age and lifetime fresh? */
int policy_fresh(int64_t freshness_lifetime, int64_t age);

/* Does `req` match a variant stored with Vary header `vary` and the stored
 * request's values `vary_req` (RFC 9111 4.1)? The values compared are those
 * that go upstream: a field hop-by-hop in `req` (named in its Connection, or
 * one of the fixed set) is as if absent, since a proxy removes it; and
 * vary_req holds only the fields the stored response's request sent on
 * (fetch.c). Otherwise a client could store the origin's answer to a request
 * without the field under its value. */
int policy_vary_match(const char *vary, const struct http_headers *vary_req,
                      const struct http_headers *req);

#endif

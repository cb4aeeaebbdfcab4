/*
 * fetch.h — the cache's upstream fetch: one libcurl transfer for one key,
 * run as a pool job of its own so that no client can slow it.
 *
 * The fetch reads the response head, builds the entry, asks policy whether
 * it may be stored and publishes it on the key (cache_publish), then appends
 * the body chunk by chunk as it arrives. Every client — the one that caused
 * the fetch too — reads the entry; the fetch never writes to a client.
 */
#ifndef CORRAL_FETCH_H
#define CORRAL_FETCH_H

#include "corral/cache.h"

struct exchange;

/* Revalidation (RFC 9111 4.3): with `validate` (a stored variant of the key
 * with a whole body, cache_lookup_stale) that has an ETag or Last-Modified
 * (the fetch then takes its own reference), the request carries
 * If-None-Match / If-Modified-Since from it. Unless `refresh` (a reload), it
 * may stand in when the fetch fails: no answer, or an origin's 500, 502, 503
 * or 504 at a moment its stale-if-error, or the starter's (`request_sie`,
 * the request's own directive, -1 none: RFC 5861 4), still allows. Then
 * out->stale is it, with `starter` attached to it, and the failure counts
 * as one (cache_fail); else the 5xx is a response like any other.
 * A 304 makes a new entry of that variant's head updated with the 304's
 * fields (4.3.4) and its body, published and stored like any response; any
 * other answer is a response like any other. out->revalidated says which. */

/* Start fetching x's request (a GET) for key `h`, which the caller set
 * PENDING_STORE with this fetch counted. `starter` is attached to the entry
 * when it is published and `out` filled (under h->lock, with a broadcast on
 * h->changed); the caller waits for out->done. The fetch takes its own use of
 * `h`. Returns 0, or -1 when it could not start (`out` is then filled as a
 * failure and the count given back). With `starter` and `out` NULL, a
 * background fetch (stale-while-revalidate, serve.c): nobody waits for it,
 * and its outcome is its own. */
int fetch_start(struct exchange *x, struct keyhead *h, struct entry_reader *starter,
                struct fetch_outcome *out, struct entry *validate, int refresh,
                int64_t request_sie);

#endif

/*
 * deliver.h — writing a cache entry to a client: one code path for hits,
 * streaming hits, coalesced waiters and the request that caused the fetch.
 */
#ifndef CORRAL_DELIVER_H
#define CORRAL_DELIVER_H

#include "corral/entry.h"

struct exchange;

/* Send entry `e` to x's client through reader `r` (attached): the stored
 * head with Age, Cache-Status `cache_status` and Via, framing redone
 * (Content-Length when the origin sent one or, except for `own_fetch`, when
 * the body is already complete; else chunked, else close), then the body as
 * it grows. `own_fetch`: x caused the fetch, so its framing follows the
 * origin's exactly as a pass-through would, whatever the timing. An entry that FAILED ends the response visibly truncated (no last
 * chunk; the connection closes). Sets x's status, bytes and log fields.
 * Detaches r before returning. */
void deliver(struct exchange *x, struct entry *e, struct entry_reader *r,
             const char *cache_status, int own_fetch);

#endif

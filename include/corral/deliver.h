/*
 * deliver.h — writing a cache entry to a client: one code path for hits,
 * streaming hits, coalesced waiters and the request that caused the fetch.
 */
#ifndef CORRAL_DELIVER_H
#define CORRAL_DELIVER_H

#include "corral/entry.h"
#include "corral/exchange.h"

#include <stddef.h>

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

/* A head prepared for one request and entry, and how much of it is out. */
struct delivery {
	char tail[256 + EXCHANGE_HEAD_END_MAX]; /* Age ... end of head */
	size_t tail_len;
	size_t head_sent;       /* bytes of e->wire_head + tail written */
	int chunked, no_body, failed;
	enum entry_state st;    /* the entry's state when the head was made */
};

/* deliver() in two halves, for a coalesced waiter whose head the fetch sends
 * at publish while the waiter still sleeps: deliver_head_now prepares x's
 * head for e (x is not the caller's: its session is lent, see serve.c) and
 * writes what the socket takes without waiting; deliver_rest, on x's own
 * worker, writes the rest of the head, then the body, and detaches r. */
void deliver_head_now(struct exchange *x, struct entry *e, const char *cache_status,
                      struct delivery *d);
void deliver_rest(struct exchange *x, struct entry *e, struct entry_reader *r,
                  struct delivery *d);

#endif

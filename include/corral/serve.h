/*
 * serve.h — a request through the cache: hit, coalesce onto a fetch under
 * way, start a fetch, or pass upstream. The coalescing state machine of
 * DESIGN.md ("the one fetch per key") lives behind this one call.
 */
#ifndef CORRAL_SERVE_H
#define CORRAL_SERVE_H

struct exchange;
struct entry;
struct keyhead;
struct herd_waiter;

/* Serve x's request (absolute-form http/https, already checked) through the
 * cache. On return x's status, bytes, close_after and log fields are set. */
void cache_serve(struct exchange *x);

/* At publish, on the fetch's thread: send each claimed waiter (cache.h) its
 * response head for e at once, before any of them wakes — a thousand heads
 * from one thread take a few ms, where waking a thousand threads first took
 * 7 ms before the first head and 20 ms before the last. Waiters e does not
 * answer (Vary) are left to look for themselves. */
void serve_herd_heads(struct keyhead *h, struct entry *e, struct herd_waiter *claimed);

#endif

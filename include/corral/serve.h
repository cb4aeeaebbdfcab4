/*
 * serve.h — a request through the cache: hit, coalesce onto a fetch under
 * way, start a fetch, or pass upstream. The coalescing state machine of
 * DESIGN.md ("the one fetch per key") lives behind this one call.
 */
#ifndef CORRAL_SERVE_H
#define CORRAL_SERVE_H

struct exchange;

/* Serve x's request (absolute-form http/https, already checked) through the
 * cache. On return x's status, bytes, close_after and log fields are set. */
void cache_serve(struct exchange *x);

#endif

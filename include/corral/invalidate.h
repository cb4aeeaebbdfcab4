/*
 * invalidate.h — a successful unsafe request takes what the cache holds for
 * the resource it changed (RFC 9111 4.4).
 */
#ifndef CORRAL_INVALIDATE_H
#define CORRAL_INVALIDATE_H

#include <stdint.h>
#include "corral/http.h"

struct exchange;

/* Whether `method` is safe (RFC 9110 9.2.1: GET, HEAD, OPTIONS, TRACE);
 * every other method, known or not, may change the target. */
int invalidate_method_is_safe(const char *method);

/* The exchange's on_response_head hook for an unsafe request passed
 * upstream: on a 2xx or 3xx answer, drop the stored variants of the target
 * URI, and of the Location and Content-Location URIs when they have the
 * target's origin (scheme, host and port; relative references resolve
 * against the target) — as Squid does; never another origin's. */
void invalidate_after_unsafe(struct exchange *x, int status, const struct http_headers *h,
                             int64_t content_length);

#endif

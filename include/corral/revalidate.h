/*
 * revalidate.h — a stored response confirmed by the origin (RFC 9111 4.3):
 * the validators a fetch sends for it, and the entry a 304 makes of it.
 */
#ifndef CORRAL_REVALIDATE_H
#define CORRAL_REVALIDATE_H

#include <stdint.h>
#include <curl/curl.h>
#include "corral/entry.h"
#include "corral/resphead.h"

/* Append If-None-Match (its ETag) and If-Modified-Since (its Last-Modified)
 * for `stored` to a fetch's header list. Returns the list, or NULL (out of
 * memory: the list is freed). */
struct curl_slist *revalidate_headers(struct curl_slist *l, const struct entry *stored);

/* May this 304 update `stored` (RFC 9111 4.3.4)? When it has an ETag, that
 * must be stored's by weak comparison (RFC 9110 8.8.3.2: W/ aside; strictly
 * a strong tag in the 304 names only a strong stored one, but nginx answers
 * with "a" for the W/"a" it gave a gzipped 200). Without one, its
 * Last-Modified, if both have one, must be the same date. A 304 naming another representation updates
 * nothing: the fetch asks again without validators (fetch.c). */
int revalidate_matches(const struct entry *stored, const struct resphead *not_modified);

/* A new entry for a 304 that confirmed `stored` (RFC 9111 4.3.4): its status
 * and fields, each field the 304 sends replacing the stored ones of that
 * name (but the framing), a Date of the 304's or `response_time`, the same
 * Vary and length; head serialised, no body yet (the caller appends the
 * stored one). NULL when out of memory. */
struct entry *revalidate_entry(const struct entry *stored, const struct resphead *not_modified,
                               int64_t request_time, int64_t response_time);

#endif

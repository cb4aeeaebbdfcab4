/*
 * revalidate.c — revalidating a stored response (see revalidate.h).
 *
 * The 304's fields replace the stored ones name by name: a name the 304
 * sends is dropped from the stored list and the 304's lines for it are added
 * at the end. Content-Length and the hop-by-hop fields never come from a 304
 * (resphead_end_to_end leaves them out): the body is the stored one.
 */
#include "corral/revalidate.h"
#include "corral/policy.h"
#include "corral/upstream.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct curl_slist *revalidate_headers(struct curl_slist *l, const struct entry *stored)
{
	const char *etag = headers_get(&stored->headers, "ETag");
	const char *lm = headers_get(&stored->headers, "Last-Modified");
	if (etag && (l = upstream_header_append(l, "If-None-Match", etag)) == NULL)
		return NULL;
	if (lm && (l = upstream_header_append(l, "If-Modified-Since", lm)) == NULL)
		return NULL;
	return l;
}

/* The opaque tag of an entity tag: without its "W/" */
static const char *opaque_tag(const char *etag)
{
	return strncmp(etag, "W/", 2) == 0 ? etag + 2 : etag;
}

int revalidate_matches(const struct entry *stored, const struct resphead *not_modified)
{
	const char *etag = headers_get(&not_modified->headers, "ETag");
	const char *was = headers_get(&stored->headers, "ETag");
	if (etag) /* weak comparison: nginx weakens a gzipped 200's tag
	             (W/"a") but sends its 304 with the strong one ("a") */
		return was != NULL && strcmp(opaque_tag(etag), opaque_tag(was)) == 0;
	const char *lm = headers_get(&not_modified->headers, "Last-Modified");
	const char *was_lm = headers_get(&stored->headers, "Last-Modified");
	if (lm == NULL || was_lm == NULL)
		return 1;
	int64_t a = policy_parse_date(lm), b = policy_parse_date(was_lm);
	return a >= 0 && a == b;
}

/* e's fields: the stored ones the 304 does not send, then the 304's, then
 * a Date of `now` if the 304 has none. The old Date and Age were the old
 * response's: never kept. */
static int merge_fields(struct entry *e, const struct entry *stored,
                        const struct http_headers *fresh, int64_t now)
{
	for (int i = 0; i < stored->headers.n; i++) {
		const struct http_header *h = &stored->headers.v[i];
		if (headers_get(fresh, h->name) || strcasecmp(h->name, "Age") == 0 ||
		    strcasecmp(h->name, "Date") == 0)
			continue;
		if (headers_add(&e->headers, h->name, strlen(h->name), h->value,
		                strlen(h->value)) < 0)
			return -1;
	}
	if (headers_copy(&e->headers, fresh) < 0)
		return -1;
	if (headers_get(fresh, "Date"))
		return 0;
	char date[POLICY_DATE_LEN];
	policy_format_date(now, date);
	return headers_add(&e->headers, "Date", 4, date, strlen(date));
}

struct entry *revalidate_entry(const struct entry *stored, const struct resphead *not_modified,
                               int64_t request_time, int64_t response_time)
{
	struct http_headers fresh;
	headers_init(&fresh);
	struct entry *e = entry_new();
	if (e == NULL || resphead_end_to_end(not_modified, &fresh) < 0)
		goto fail;
	e->status = stored->status;
	e->http10 = stored->http10;
	e->revalidated = 1;
	memcpy(e->reason, stored->reason, sizeof e->reason);
	e->request_time = request_time;
	e->response_time = response_time;
	e->content_length = stored->content_length;
	memcpy(e->upstream, stored->upstream, sizeof e->upstream);
	if (merge_fields(e, stored, &fresh, response_time) < 0)
		goto fail;
	if (stored->vary && (e->vary = strdup(stored->vary)) == NULL)
		goto fail;
	if (headers_copy(&e->vary_req, &stored->vary_req) < 0 || entry_serialise_head(e) < 0)
		goto fail;
	const char *date = headers_get(&e->headers, "Date");
	const char *age = headers_get(&fresh, "Age");
	e->date_value = date ? policy_parse_date(date) : -1;
	e->age_value = age ? strtoll(age, NULL, 10) : -1;
	headers_free(&fresh);
	return e;
fail:
	headers_free(&fresh);
	entry_unref(&e);
	return NULL;
}

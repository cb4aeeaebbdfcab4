/*
 * conditional.c — preconditions against a stored response (see
 * conditional.h).
 *
 * Entity tags are compared weakly, as RFC 9110 13.1.2 says for
 * If-None-Match (the W/ prefix ignored). A tag may hold commas, so the lists
 * are scanned quote to quote, not split on commas.
 */
#include "corral/conditional.h"
#include "corral/deliver.h"
#include "corral/entry.h"
#include "corral/exchange.h"
#include "corral/policy.h"
#include "corral/stats.h"
#include "corral/strbuf.h"

#include <string.h>
#include <strings.h>
#include <time.h>

int conditional_present(const struct http_headers *req)
{
	/* on every hit: one pass looking at three characters of each name */
	for (int i = 0; i < req->n; i++) {
		const char *n = req->v[i].name;
		if ((n[0] | 0x20) == 'i' && (n[1] | 0x20) == 'f' && n[2] == '-' &&
		    (strcasecmp(n, "If-None-Match") == 0 || strcasecmp(n, "If-Modified-Since") == 0))
			return 1;
	}
	return 0;
}

/* One entity tag of an ETag field: its opaque part, quotes included (a W/
 * before it is skipped: the comparison is weak). */
struct etag {
	const char *tag;
	size_t len;
};

/* The next entity tag (or "*", as a tag of length 0) of a list at *p,
 * moving *p past it. Returns 1, 0 at the end, -1 on a malformed list. */
static int next_etag(const char **p, struct etag *t)
{
	const char *s = *p;
	while (*s == ' ' || *s == '\t' || *s == ',')
		s++;
	if (*s == '\0')
		return 0;
	if (*s == '*') {
		*t = (struct etag){ s, 0 };
		*p = s + 1;
		return 1;
	}
	if (strncmp(s, "W/", 2) == 0)
		s += 2;
	if (*s != '"')
		return -1;
	const char *end = strchr(s + 1, '"');
	if (end == NULL)
		return -1;
	t->tag = s;
	t->len = (size_t)(end + 1 - s);
	*p = end + 1;
	return 1;
}

/* Does a tag of `list` match the stored ETag `stored`, weakly (equal
 * ignoring W/)? "*" matches any stored response. */
static int list_matches(const char *list, const char *stored)
{
	struct etag mine = { NULL, 0 }, t;
	const char *sp = stored;
	int have_mine = stored && next_etag(&sp, &mine) == 1 && mine.len > 0;
	const char *p = list;
	int rc;
	while ((rc = next_etag(&p, &t)) == 1) {
		if (t.len == 0)
			return 1; /* "*" */
		if (have_mine && t.len == mine.len && memcmp(t.tag, mine.tag, t.len) == 0)
			return 1;
	}
	return 0;
}

/* When e's representation last changed, for If-Modified-Since (RFC 9111
 * 4.3.2): its Last-Modified, else its Date, else when it was received. */
static int64_t last_modified(const struct entry *e)
{
	const char *lm = headers_get(&e->headers, "Last-Modified");
	int64_t t = lm ? policy_parse_date(lm) : -1;
	if (t < 0)
		t = e->date_value >= 0 ? e->date_value : e->response_time;
	return t;
}

int conditional_status(const struct http_headers *req, const struct entry *e)
{
	/* RFC 9111 4.3.2: for a stored 200 (206s are not stored); If-Match
	 * and If-Unmodified-Since are not a cache's to evaluate (they pass
	 * with a request that goes upstream) */
	if (e->status != 200)
		return 0;
	const char *inm = headers_get(req, "If-None-Match");
	if (inm)
		return list_matches(inm, headers_get(&e->headers, "ETag")) ? 304 : 0;
	const char *ims = headers_get(req, "If-Modified-Since");
	if (ims) {
		int64_t since = policy_parse_date(ims);
		if (since >= 0 && last_modified(e) <= since)
			return 304;
	}
	return 0;
}

void conditional_reply(struct exchange *x, struct entry *e, struct entry_reader *r,
                       const char *cache_status)
{
	static const char *const kept[] = { "Cache-Control", "Content-Location", "Date", "ETag",
	                                    "Expires", "Last-Modified", "Vary" };
	entry_detach(e, r);
	deliver_log_fields(x, e, cache_status);
	char head[4096 + EXCHANGE_HEAD_END_MAX];
	struct strbuf b = strbuf_on(head, sizeof head - EXCHANGE_HEAD_END_MAX);
	strbuf_str(&b, "HTTP/1.1 304 Not Modified\r\n");
	for (int i = 0; i < e->headers.n; i++) {
		const struct http_header *h = &e->headers.v[i];
		for (size_t k = 0; k < sizeof kept / sizeof kept[0]; k++) {
			if (strcasecmp(h->name, kept[k]) == 0) {
				strbuf_str(&b, h->name);
				strbuf_str(&b, ": ");
				strbuf_str(&b, h->value);
				strbuf_str(&b, "\r\n");
			}
		}
	}
	int64_t age = entry_age(e, time(NULL));
	strbuf_str(&b, "Age: ");
	strbuf_u64(&b, (uint64_t)(age < 0 ? 0 : age), 0, ' ');
	strbuf_str(&b, "\r\nCache-Status: ");
	strbuf_str(&b, cache_status);
	strbuf_str(&b, "\r\n");
	if (b.cut) {
		exchange_error(x, 500, "the stored response's headers do not fit a 304");
		return;
	}
	size_t n = strbuf_len(&b);
	n += exchange_head_end(x, head + n, 0);
	x->status = 304;
	exchange_set_mime(x, NULL); /* no body */
	if (exchange_write(x, head, n) < 0)
		x->close_after = 1;
}

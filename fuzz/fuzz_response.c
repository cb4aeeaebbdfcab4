/*
 * fuzz_response.c — an origin's response head, as a fetch reads and judges
 * it.
 *
 * The input is split into lines at each LF (the LF kept), and the lines
 * are fed to resphead_line as libcurl's header callback hands them over
 * (fetch.c, forward.c), interim heads included, until the final head. Then
 * what the fetch and the forwarder derive from a head: whether it may be
 * passed on (resphead_framing_error), its end-to-end fields, and the cache's
 * judgement of it (Cache-Control, storable and for how long, stale on
 * arrival, stale-if-error / stale-while-revalidate, its age, Vary against a
 * request, If-Range against it).
 *
 * Checked for any input: a head passed on has a status in 200..599 (an
 * interim one 100..199), and no CR, LF or NUL in what it carries, and no
 * framing or hop-by-hop field; a storable response has a positive
 * lifetime, and a reason (why) only when it is not storable.
 */
#include <string.h>

#include "corral/http.h"
#include "corral/policy.h"
#include "corral/range.h"
#include "corral/resphead.h"
#include "fuzz.h"

static int clean(const char *s)
{
	return strpbrk(s, "\r\n") == NULL;
}

static void judge(const struct resphead *h)
{
	char why[256];
	if (resphead_framing_error(h, why, sizeof why) != NULL)
		return; /* a 502: nothing of it is passed on or stored */
	FUZZ_CHECK(h->status >= 200 && h->status <= 599);
	struct http_headers out;
	headers_init(&out);
	if (resphead_end_to_end(h, &out) == 0) {
		struct http_hop hop;
		FUZZ_CHECK(http_hop_init(&hop, &h->headers) == 0);
		for (int i = 0; i < out.n; i++) {
			FUZZ_CHECK(clean(out.v[i].name) && clean(out.v[i].value));
			FUZZ_CHECK(!http_hop_has(&hop, out.v[i].name));
			FUZZ_CHECK(strcasecmp(out.v[i].name, "Content-Length") != 0 &&
			           strcasecmp(out.v[i].name, "Transfer-Encoding") != 0);
		}
	}
	headers_free(&out);

	struct cache_control cc;
	policy_parse_cache_control(&h->headers, &cc);
	struct http_headers req;
	headers_init(&req);
	headers_add(&req, "Accept-Encoding", 15, "gzip", 4);
	const struct policy_store_rules rules = { 64 << 20, 10, 86400 };
	const int64_t now = 1764633600; /* 2025-12-02 */
	const char *cl = headers_get(&h->headers, "Content-Length");
	int64_t length = cl ? strtoll(cl, NULL, 10) : -1;
	const char *not_stored = NULL;
	int64_t lifetime = policy_storable(&req, "http://example.com/a", h->status, &h->headers,
	                                   length, &rules, now, &not_stored);
	FUZZ_CHECK(lifetime >= 0);
	FUZZ_CHECK((lifetime > 0) == (not_stored == NULL));
	if (lifetime > 0) {
		policy_stale_on_arrival(&h->headers, lifetime, now);
		const char *date = headers_get(&h->headers, "Date");
		const char *age = headers_get(&h->headers, "Age");
		int64_t date_value = date ? policy_parse_date(date) : now;
		int64_t age_value = age ? strtoll(age, NULL, 10) : 0;
		int64_t a = policy_age(date_value, age_value, now - 1, now, now + 30);
		policy_fresh(lifetime, a);
		policy_stale_if_error(&h->headers, lifetime, a, -1);
		policy_stale_while_revalidate(&h->headers, lifetime, a);
		const char *vary = headers_get(&h->headers, "Vary");
		if (vary)
			policy_vary_match(vary, &req, &req);
		const char *etag = headers_get(&h->headers, "ETag");
		if (etag)
			range_if_range_matches(etag, &h->headers);
		const char *lm = headers_get(&h->headers, "Last-Modified");
		if (lm)
			range_if_range_matches(lm, &h->headers);
	}
	headers_free(&req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct resphead h;
	resphead_init(&h);
	const char *p = (const char *)data, *end = p + size;
	while (p < end) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		size_t len = lf ? (size_t)(lf - p) + 1 : (size_t)(end - p);
		enum resphead_event ev = resphead_line(&h, p, len);
		p += len;
		if (ev == RESPHEAD_NOMEM)
			break;
		if (ev == RESPHEAD_INTERIM)
			FUZZ_CHECK(h.status >= 100 && h.status <= 199);
		if (ev == RESPHEAD_FINAL) {
			judge(&h);
			break;
		}
	}
	resphead_free(&h);
	return 0;
}

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
 * interim one 100..199), and no CR or LF in what it carries, and no
 * framing or hop-by-hop field; a storable response has a positive
 * lifetime, and a reason (why) only when it is not storable.
 *
 * And against a model of what libcurl 7.88 makes of the same bytes (it
 * reads the head before corral sees the lines, and frames the body by what
 * it read): where libcurl takes the input as a response and corral passes
 * the head on, both must end the head at the same byte, read the same
 * status, and frame the body alike (chunked, or the same Content-Length).
 * The model is approximate, written from libcurl's behaviour; a review's
 * harness with it found the response splitting of 2026-12-02 (a line
 * starting HTTP/ inside a head).
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

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
	const struct policy_store_rules rules = { 64 << 20, 10, 86400, 1 };
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

/* libcurl's view of a response (the model): the final head is
 * [*head, *end) and its status *status; 0 when libcurl would refuse it. */
struct curl_view {
	const char *head, *end;
	int status;
	long long length;   /* the last Content-Length's number, or -1 */
	int chunked;        /* a Transfer-Encoding line names chunked */
};

static int curl_reads(const char *p, const char *end, struct curl_view *v)
{
	const char *hs = p;
	for (;;) {
		/* a status line: HTTP/, a space, three digits and no fourth */
		if (end - hs < 5 || strncmp(hs, "HTTP/", 5) != 0)
			return 0; /* HTTP/0.9, which libcurl refuses */
		const char *lf = memchr(hs, '\n', (size_t)(end - hs));
		if (lf == NULL)
			return 0;
		const char *sp = memchr(hs, ' ', (size_t)(lf - hs));
		if (!sp || lf - sp < 4 || !isdigit((unsigned char)sp[1]) ||
		    !isdigit((unsigned char)sp[2]) || !isdigit((unsigned char)sp[3]) ||
		    isdigit((unsigned char)sp[4]))
			return 0;
		v->status = (sp[1] - '0') * 100 + (sp[2] - '0') * 10 + (sp[3] - '0');
		if (v->status < 100)
			return 0;
		v->head = hs;
		v->end = NULL;
		for (const char *q = lf + 1; q < end;) {
			const char *l2 = memchr(q, '\n', (size_t)(end - q));
			if (l2 == NULL)
				return 0;
			size_t n = (size_t)(l2 - q);
			if (n && q[n - 1] == '\r')
				n--;
			if (n == 0) {
				v->end = l2 + 1;
				break;
			}
			if (q[0] != ' ' && q[0] != '\t' && !memchr(q, ':', n))
				return 0; /* "Header without colon" */
			q = l2 + 1;
		}
		if (v->end == NULL)
			return 0;
		if (v->status >= 200 || v->status == 101)
			break;
		hs = v->end; /* an interim head: the next one */
	}
	v->length = -1;
	v->chunked = 0;
	for (const char *l = (const char *)memchr(v->head, '\n', (size_t)(v->end - v->head)) + 1;
	     l < v->end;) {
		const char *l2 = memchr(l, '\n', (size_t)(v->end - l));
		static char line[RESPHEAD_MAX + 1024];
		size_t n = (size_t)(l2 - l);
		if (n >= sizeof line)
			n = sizeof line - 1;
		memcpy(line, l, n);
		line[n] = '\0';
		if (strncasecmp(line, "Content-Length:", 15) == 0) {
			char *num = line + 15, *e;
			num += strspn(num, " \t");
			long long x = strtoll(num, &e, 10); /* trailing bytes ignored */
			if (e == num || *num == '-')
				return 0; /* "Invalid Content-Length" */
			v->length = x;
		}
		if (strncasecmp(line, "Transfer-Encoding:", 18) == 0) {
			for (char *c = line; *c; c++)
				if ((unsigned char)*c < ' ')
					*c = ' ';
			if (http_list_has(line + 18, "chunked"))
				v->chunked = 1;
		}
		l = l2 + 1;
	}
	return 1;
}

/* Where corral passes on a head libcurl also read: the same head, the
 * same status, the same framing. */
static void same_as_curl(const struct resphead *h, const char *corral_end,
                         const struct curl_view *v)
{
	FUZZ_CHECK(corral_end == v->end);
	FUZZ_CHECK(h->status == v->status);
	if (headers_get(&h->headers, "Transfer-Encoding") != NULL)
		return; /* chunked (resphead_framing_error refuses the rest) */
	const char *cl = headers_get(&h->headers, "Content-Length");
	long long length = cl ? strtoll(cl, NULL, 10) : -1;
	FUZZ_CHECK(!v->chunked);
	FUZZ_CHECK(length == v->length);
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
		if (ev == RESPHEAD_INTERIM && h.status == 101)
			break; /* the fetch and the forwarder stop here: a 502 */
		if (ev == RESPHEAD_FINAL) {
			judge(&h);
			struct curl_view v;
			char why[256];
			if (!memchr(data, '\0', size) &&
			    curl_reads((const char *)data, (const char *)data + size, &v) &&
			    resphead_framing_error(&h, why, sizeof why) == NULL)
				same_as_curl(&h, p, &v);
			break;
		}
	}
	resphead_free(&h);
	return 0;
}

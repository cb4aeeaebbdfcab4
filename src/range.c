/*
 * range.c — byte ranges of stored responses (see range.h).
 *
 * The slice is read as a whole body is, chunk by chunk through the reader
 * (entry_try_read_iov), and the parts of the chunks that fall in the range
 * are written as they come: nothing is copied, and a range late in a large
 * body costs a walk over the chunks before it. The head is the stored one
 * with a 206 status line, then Content-Range and the usual Age,
 * Cache-Status and Content-Length.
 */
#include "corral/range.h"
#include "corral/deliver.h"
#include "corral/policy.h"
#include "corral/strbuf.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <time.h>

#define RANGE_IOV 64 /* chunks per read, as deliver.c's */

/* The digits at *p as a number (saturating at INT64_MAX: a last-pos past
 * any body is still valid), advancing *p; -1 when there are none. */
static int64_t digits(const char **p)
{
	const char *s = *p;
	int64_t v = 0;
	if (!isdigit((unsigned char)*s))
		return -1;
	for (; isdigit((unsigned char)*s); s++)
		v = v > (INT64_MAX - 9) / 10 ? INT64_MAX : v * 10 + (*s - '0');
	*p = s;
	return v;
}

static const char *skip_ows(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

enum range_kind range_parse(const char *value, uint64_t length, uint64_t *first,
                            uint64_t *last)
{
	const char *p = skip_ows(value);
	if (strncasecmp(p, "bytes=", 6) != 0)
		return RANGE_WHOLE; /* another unit */
	p = skip_ows(p + 6);
	int64_t a = -1, b = -1;
	if (*p == '-') {
		p++;
		if ((b = digits(&p)) < 0)
			return RANGE_WHOLE;
	} else {
		if ((a = digits(&p)) < 0 || *p != '-')
			return RANGE_WHOLE;
		p++;
		if (isdigit((unsigned char)*p))
			b = digits(&p);
		if (b >= 0 && b < a)
			return RANGE_WHOLE; /* invalid (RFC 9110 14.1.1) */
	}
	if (*skip_ows(p) != '\0')
		return RANGE_WHOLE; /* several ranges (served whole), or junk */
	if (a < 0) {
		/* the last b bytes */
		if (b == 0 || length == 0)
			return RANGE_UNSATISFIABLE;
		*first = (uint64_t)b >= length ? 0 : length - (uint64_t)b;
		*last = length - 1;
		return RANGE_PART;
	}
	if ((uint64_t)a >= length)
		return RANGE_UNSATISFIABLE;
	*first = (uint64_t)a;
	*last = b < 0 || (uint64_t)b >= length ? length - 1 : (uint64_t)b;
	return RANGE_PART;
}

/* s without the whitespace at its end: its length */
static size_t trimmed_len(const char *s)
{
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	return n;
}

int range_if_range_matches(const char *if_range, const struct http_headers *resp)
{
	if_range = skip_ows(if_range);
	if (*if_range == '"' || strncmp(if_range, "W/", 2) == 0) {
		/* an entity tag: strong comparison (weak ones never match) */
		const char *etag = headers_get(resp, "ETag");
		if (etag == NULL || *if_range != '"')
			return 0;
		etag = skip_ows(etag);
		size_t n = trimmed_len(if_range);
		return *etag == '"' && n == trimmed_len(etag) && memcmp(if_range, etag, n) == 0;
	}
	const char *lm = headers_get(resp, "Last-Modified"), *d = headers_get(resp, "Date");
	int64_t since = policy_parse_date(if_range);
	int64_t modified = lm ? policy_parse_date(lm) : -1;
	int64_t date = d ? policy_parse_date(d) : -1;
	/* an intermediate cache may take a stored Last-Modified for a strong
	 * validator when the stored Date is 60 s or more after it (RFC 9110
	 * 8.8.2.2: a second, and the 60 s against two clocks) */
	return since >= 0 && since == modified && date >= 0 && date - modified >= 60;
}

/* The 416: what the body's length is, and nothing of it. */
static void unsatisfiable(struct exchange *x, uint64_t length, const char *cache_status)
{
	char extra[256], body[128];
	snprintf(extra, sizeof extra, "Content-Range: bytes */%llu\r\nCache-Status: %s\r\n",
	         (unsigned long long)length, cache_status);
	int n = snprintf(body, sizeof body,
	                 "range not satisfiable: the response has %llu bytes\n",
	                 (unsigned long long)length);
	if (exchange_reply(x, 416, extra, "text/plain", body, (size_t)n) < 0)
		x->close_after = 1;
}

/* The 206's head for bytes first..last of e's `length`, and then the bytes.
 * Returns -1 when the client went away. */
static int partial(struct exchange *x, struct entry *e, struct entry_reader *r, uint64_t first,
                   uint64_t last, uint64_t length, const char *cache_status)
{
	static char status_line[] = "HTTP/1.1 206 Partial Content\r\n";
	/* the stored head without its status line */
	const char *fields = memchr(e->wire_head, '\n', e->wire_head_len);
	size_t skip = fields ? (size_t)(fields + 1 - e->wire_head) : e->wire_head_len;
	char tail[512 + EXCHANGE_HEAD_END_MAX];
	struct strbuf b = strbuf_on(tail, sizeof tail - EXCHANGE_HEAD_END_MAX);
	int64_t age = entry_age(e, time(NULL));
	strbuf_str(&b, "Content-Range: bytes ");
	strbuf_u64(&b, first, 0, ' ');
	strbuf_str(&b, "-");
	strbuf_u64(&b, last, 0, ' ');
	strbuf_str(&b, "/");
	strbuf_u64(&b, length, 0, ' ');
	strbuf_str(&b, "\r\nAge: ");
	strbuf_u64(&b, (uint64_t)(age < 0 ? 0 : age), 0, ' ');
	strbuf_str(&b, "\r\nCache-Status: ");
	strbuf_str(&b, cache_status);
	strbuf_str(&b, "\r\nContent-Length: ");
	strbuf_u64(&b, last - first + 1, 0, ' ');
	strbuf_str(&b, "\r\n");
	size_t n = strbuf_len(&b); /* (serve.c's statuses: it fits) */
	n += exchange_head_end(x, tail + n, 0);
	struct iovec head[3] = {
		{ status_line, sizeof status_line - 1 },
		{ e->wire_head + skip, e->wire_head_len - skip },
		{ tail, n },
	};
	if (exchange_writev(x, head, 3) < 0)
		return -1;
	if (strcmp(x->req.method, "HEAD") == 0)
		return 0;
	struct iovec in[RANGE_IOV], out[RANGE_IOV];
	enum entry_state st;
	uint64_t pos = 0;
	while (pos <= last) {
		int k = entry_try_read_iov(e, r, in, RANGE_IOV, &st);
		if (k <= 0)
			return -1; /* shorter than it said: the client must see it */
		int m = 0;
		for (int i = 0; i < k; i++) {
			uint64_t from = pos, to = pos + in[i].iov_len; /* [from, to) */
			pos = to;
			if (to <= first || from > last)
				continue;
			uint64_t a = first > from ? first - from : 0;
			uint64_t z = (last + 1 < to ? last + 1 : to) - from;
			out[m++] = (struct iovec){ (char *)in[i].iov_base + a, (size_t)(z - a) };
		}
		if (m > 0 && exchange_writev(x, out, m) < 0)
			return -1;
	}
	return 0;
}

int range_reply(struct exchange *x, struct entry *e, struct entry_reader *r,
                const char *cache_status)
{
	const struct http_headers *req = &x->req.headers;
	const char *value = headers_get(req, "Range"), *if_range = headers_get(req, "If-Range");
	enum entry_state st;
	uint64_t length = entry_bytes(e, &st), first = 0, last = 0;
	enum range_kind kind = RANGE_WHOLE;
	if (value && st == ENTRY_COMPLETE && e->status == 200 &&
	    (if_range == NULL || range_if_range_matches(if_range, &e->headers)))
		kind = range_parse(value, length, &first, &last);
	if (kind == RANGE_WHOLE)
		return 1;
	deliver_log_fields(x, e, cache_status);
	if (kind == RANGE_UNSATISFIABLE) {
		entry_detach(e, r);
		unsatisfiable(x, length, cache_status);
		return 0;
	}
	x->status = 206;
	if (partial(x, e, r, first, last, length, cache_status) < 0)
		x->close_after = 1;
	entry_detach(e, r);
	return 0;
}

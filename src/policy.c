/*
 * policy.c — RFC 9111 decisions as pure functions (see policy.h).
 *
 * Choices where the RFC leaves room, in the spirit of Squid and Varnish:
 * responses with explicit freshness are stored, and those with a
 * Last-Modified get heuristic freshness (a share of the time since, capped;
 * none for a URL with a query, as Squid's default refresh_pattern); a
 * response that sets a cookie is not stored (it is meant for one
 * client); a request with Authorization is answered from the cache only when
 * the response said public, s-maxage or must-revalidate (RFC 9111 3.5).
 */
#include "corral/policy.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static int64_t parse_delta(const char *s, size_t n)
{
	if (n == 0)
		return -1;
	if (*s == '"' && n >= 2 && s[n - 1] == '"') {
		s++;
		n -= 2;
	}
	int64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		if (v < INT_MAX)
			v = v * 10 + (s[i] - '0');
	}
	return v > INT_MAX ? INT_MAX : v; /* delta-seconds saturate (RFC 9111 1.2.2) */
}

void policy_parse_cache_control(const struct http_headers *h, struct cache_control *cc)
{
	memset(cc, 0, sizeof *cc);
	cc->max_age = cc->s_maxage = cc->stale_if_error = cc->min_fresh = cc->max_stale = -1;
	cc->stale_while_revalidate = -1;
	for (int i = 0; i < h->n; i++) {
		if (strcasecmp(h->v[i].name, "Cache-Control") != 0)
			continue;
		const char *p = h->v[i].value;
		while (*p) {
			while (*p == ' ' || *p == '\t' || *p == ',')
				p++;
			const char *name = p;
			while (*p && *p != '=' && *p != ',' && *p != ' ' && *p != '\t')
				p++;
			size_t nlen = (size_t)(p - name);
			const char *val = NULL;
			size_t vlen = 0;
			while (*p == ' ' || *p == '\t')
				p++;
			if (*p == '=') {
				p++;
				val = p;
				if (*p == '"') {
					const char *q = strchr(p + 1, '"');
					p = q ? q + 1 : p + strlen(p);
				} else {
					while (*p && *p != ',' && *p != ' ' && *p != '\t')
						p++;
				}
				vlen = (size_t)(p - val);
			}
			while (*p && *p != ',')
				p++;
#define IS(d) (nlen == sizeof(d) - 1 && strncasecmp(name, d, nlen) == 0)
			if (IS("no-store"))
				cc->no_store = 1;
			else if (IS("no-cache"))
				cc->no_cache = 1;
			else if (IS("private"))
				cc->private_ = 1;
			else if (IS("public"))
				cc->public_ = 1;
			else if (IS("must-revalidate"))
				cc->must_revalidate = 1;
			else if (IS("proxy-revalidate"))
				cc->proxy_revalidate = 1;
			else if (IS("only-if-cached"))
				cc->only_if_cached = 1;
			/* a repeated one: the first counts (RFC 9111 4.2.1) */
			else if (IS("max-age") && val && cc->max_age < 0) {
				int64_t v = parse_delta(val, vlen);
				cc->max_age = v < 0 ? 0 : v; /* invalid means stale */
			} else if (IS("s-maxage") && val && cc->s_maxage < 0) {
				int64_t v = parse_delta(val, vlen);
				cc->s_maxage = v < 0 ? 0 : v;
			} else if (IS("stale-if-error") && val && cc->stale_if_error < 0) {
				cc->stale_if_error = parse_delta(val, vlen); /* invalid: -1, none */
			} else if (IS("stale-while-revalidate") && val &&
			           cc->stale_while_revalidate < 0) {
				cc->stale_while_revalidate = parse_delta(val, vlen); /* invalid: none */
			} else if (IS("min-fresh") && val && cc->min_fresh < 0) {
				cc->min_fresh = parse_delta(val, vlen); /* invalid: ignored */
			} else if (IS("max-stale") && cc->max_stale < 0) {
				/* no value: any staleness; an invalid one: none */
				cc->max_stale = val ? parse_delta(val, vlen) : POLICY_AGE_MAX;
			}
#undef IS
		}
	}
}

static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                               "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

static int month_of(const char *m)
{
	for (int i = 0; i < 12; i++)
		if (strncmp(m, months[i], 3) == 0)
			return i;
	return -1;
}

int64_t policy_parse_date(const char *s)
{
	struct tm tm;
	char mon[4] = "", wk[16] = "";
	int d, y, H, M, S;
	int end = -1; /* where the date ended: sscanf counts conversions only,
	               * so "... +0100" would pass for "... GMT" without it */
	memset(&tm, 0, sizeof tm);
	if (sscanf(s, "%15[A-Za-z], %d %3s %d %d:%d:%d GMT%n", wk, &d, mon, &y, &H, &M, &S,
	           &end) == 7 && end > 0) {
		/* IMF-fixdate */
	} else if ((end = -1, sscanf(s, "%15[A-Za-z], %d-%3s-%d %d:%d:%d GMT%n", wk, &d, mon, &y,
	                              &H, &M, &S, &end) == 7) && end > 0) {
		if (y < 100) /* RFC 850's two-digit year; some senders write four */
			y += y < 70 ? 2000 : 1900;
	} else if ((end = -1, sscanf(s, "%15s %3s %d %d:%d:%d %d%n", wk, mon, &d, &H, &M, &S, &y,
	                              &end) == 7) && end > 0) {
		/* asctime */
	} else {
		return -1;
	}
	s += strspn(s + end, " \t") + (size_t)end;
	if (*s != '\0')
		return -1;
	int m = month_of(mon);
	if (m < 0 || d < 1 || d > 31 || H > 23 || M > 59 || S > 60 || y < 1970)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = m;
	tm.tm_mday = d;
	tm.tm_hour = H;
	tm.tm_min = M;
	tm.tm_sec = S;
	return (int64_t)timegm(&tm);
}

void policy_format_date(int64_t t, char out[POLICY_DATE_LEN])
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	snprintf(out, POLICY_DATE_LEN, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7],
	         tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
	         tm.tm_sec);
}

enum policy_lookup policy_request(const char *method, const struct http_headers *req,
                                  struct policy_want *want)
{
	want->max_age = want->min_fresh = want->max_stale = want->stale_if_error = -1;
	want->only_if_cached = 0;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return POLICY_PASS;
	struct cache_control cc;
	policy_parse_cache_control(req, &cc);
	want->max_age = cc.max_age;
	want->min_fresh = cc.min_fresh;
	want->max_stale = cc.max_stale;
	want->only_if_cached = cc.only_if_cached;
	want->stale_if_error = cc.stale_if_error;
	const char *pragma = headers_get(req, "Pragma");
	int range = headers_get(req, "Range") != NULL;
	int pass = (range && strcmp(method, "HEAD") == 0) || cc.no_store;
	int reload = cc.no_cache || cc.max_age == 0 ||
	             (pragma && !headers_get(req, "Cache-Control") && http_list_has(pragma, "no-cache"));
	if (range && !pass && !reload)
		return POLICY_RANGE;
	if (cc.only_if_cached)
		return pass || reload || range ? POLICY_UNANSWERABLE : POLICY_ONLY_STORED;
	return pass || range ? POLICY_PASS : reload ? POLICY_REFRESH : POLICY_LOOKUP;
}

static int status_storable(int status)
{
	switch (status) {
	case 200: case 203: case 204: case 300: case 301: case 308:
	case 404: case 405: case 410: case 414: case 501:
		return 1;
	default:
		return 0;
	}
}

/* RFC 9111 4.2.2's heuristic lifetime of a response with no explicit
 * one: `percent` of the time from its Last-Modified to its Date (else
 * now), at most `max`; 0 without a valid Last-Modified before it. */
static int64_t heuristic_lifetime(const struct http_headers *resp, int percent, int64_t max,
                                  int64_t now)
{
	const char *lm = headers_get(resp, "Last-Modified"), *d = headers_get(resp, "Date");
	int64_t modified = lm ? policy_parse_date(lm) : -1;
	int64_t date = d ? policy_parse_date(d) : -1;
	if (date < 0)
		date = now;
	if (modified < 0 || modified >= date)
		return 0;
	/* dates are at most ~2^35 s, percents at most INT_MAX: no overflow */
	int64_t lifetime = (date - modified) / 100 * percent + (date - modified) % 100 * percent / 100;
	return lifetime > max ? max : lifetime;
}

int64_t policy_storable(const struct http_headers *req, const char *target, int status,
                        const struct http_headers *resp, int64_t content_length,
                        const struct policy_store_rules *rules, int64_t now,
                        const char **why)
{
	struct cache_control cc;
	policy_parse_cache_control(resp, &cc);
	*why = NULL;
	if (!status_storable(status))
		*why = "status";
	else if (cc.no_store)
		*why = "no-store";
	else if (cc.private_)
		*why = "private";
	else if (cc.no_cache)
		*why = "no-cache";
	else if (headers_get(resp, "Set-Cookie"))
		*why = "set-cookie";
	else if (headers_list_has(resp, "Vary", "*"))
		*why = "vary-star";
	else if (rules->per_client_xff && headers_list_has(resp, "Vary", "X-Forwarded-For"))
		*why = "vary-forwarded-for";
	else if (headers_get(req, "Authorization") && !cc.public_ && cc.s_maxage < 0 &&
	         !cc.must_revalidate)
		*why = "authorization";
	else if (content_length >= 0 && (uint64_t)content_length > rules->max_object)
		*why = "too-large";
	if (*why)
		return 0;
	int64_t lifetime = -1;
	if (cc.s_maxage >= 0) {
		lifetime = cc.s_maxage;
	} else if (cc.max_age >= 0) {
		lifetime = cc.max_age;
	} else if (headers_get(resp, "Expires")) {
		int64_t exp = policy_parse_date(headers_get(resp, "Expires"));
		const char *d = headers_get(resp, "Date");
		int64_t date = d ? policy_parse_date(d) : -1;
		if (date < 0)
			date = now;
		lifetime = exp < 0 ? 0 : exp - date;
	} else if (rules->heuristic_percent > 0 && strchr(target, '?') == NULL) {
		lifetime = heuristic_lifetime(resp, rules->heuristic_percent, rules->heuristic_max,
		                              now);
	}
	if (lifetime <= 0) {
		*why = "no-explicit-freshness";
		return 0;
	}
	return lifetime;
}

/* May a shared cache ever serve a response with these directives stale?
 * Not with no-cache, must-revalidate or proxy-revalidate, nor s-maxage,
 * which carries proxy-revalidate for a shared cache (RFC 9111 4.2.4,
 * 5.2.2.10). */
static int may_serve_stale(const struct cache_control *cc)
{
	return !cc->no_cache && !cc->must_revalidate && !cc->proxy_revalidate && cc->s_maxage < 0;
}

/* Is a response of this lifetime and age stale by at most n seconds (n
 * from a directive: -1, absent, allows nothing)? */
static int stale_within(int64_t lifetime, int64_t age, int64_t n)
{
	return n >= 0 && age - lifetime <= n;
}

int policy_stale_if_error(const struct http_headers *resp, int64_t lifetime, int64_t age,
                          int64_t request_n)
{
	struct cache_control cc;
	policy_parse_cache_control(resp, &cc);
	return may_serve_stale(&cc) && (stale_within(lifetime, age, cc.stale_if_error) ||
	                                stale_within(lifetime, age, request_n));
}

int policy_stale_while_revalidate(const struct http_headers *resp, int64_t lifetime,
                                  int64_t age)
{
	struct cache_control cc;
	policy_parse_cache_control(resp, &cc);
	return may_serve_stale(&cc) && stale_within(lifetime, age, cc.stale_while_revalidate);
}

int policy_acceptable(const struct policy_want *want, const struct http_headers *resp,
                      int64_t lifetime, int64_t age)
{
	int fresh = policy_fresh(lifetime, age);
	if (want == NULL || (want->max_age < 0 && want->min_fresh < 0 && want->max_stale < 0))
		return fresh;
	if (want->max_age >= 0 && age > want->max_age)
		return 0;
	if (want->min_fresh >= 0)
		/* fresh for N more seconds: at ages age .. age + N - 1 */
		return fresh && lifetime - age >= want->min_fresh;
	if (fresh || want->max_stale < 0)
		return fresh;
	struct cache_control cc;
	policy_parse_cache_control(resp, &cc);
	return may_serve_stale(&cc) && stale_within(lifetime, age, want->max_stale);
}

int policy_stale_on_arrival(const struct http_headers *resp, int64_t lifetime, int64_t now)
{
	const char *d = headers_get(resp, "Date"), *a = headers_get(resp, "Age");
	int64_t age = policy_age(d ? policy_parse_date(d) : -1, a ? strtoll(a, NULL, 10) : -1,
	                         now, now, now);
	return !policy_fresh(lifetime, age);
}

int64_t policy_age(int64_t date_value, int64_t age_value, int64_t request_time,
                   int64_t response_time, int64_t now)
{
	int64_t apparent = date_value >= 0 ? response_time - date_value : 0;
	if (apparent < 0)
		apparent = 0;
	int64_t delay = response_time - request_time;
	if (delay < 0)
		delay = 0;
	/* every term is at most POLICY_AGE_MAX, so no sum overflows */
	if (age_value > POLICY_AGE_MAX)
		age_value = POLICY_AGE_MAX;
	if (delay > POLICY_AGE_MAX)
		delay = POLICY_AGE_MAX;
	if (apparent > POLICY_AGE_MAX)
		apparent = POLICY_AGE_MAX;
	int64_t corrected_age = (age_value > 0 ? age_value : 0) + delay;
	int64_t initial = apparent > corrected_age ? apparent : corrected_age;
	int64_t resident = now - response_time;
	if (resident < 0)
		resident = 0;
	if (resident > POLICY_AGE_MAX)
		resident = POLICY_AGE_MAX;
	int64_t age = initial + resident;
	return age > POLICY_AGE_MAX ? POLICY_AGE_MAX : age;
}

int policy_fresh(int64_t freshness_lifetime, int64_t age)
{
	return freshness_lifetime > age;
}

/* Every field line of one name in a header list, read byte by byte as one
 * combined value (lines joined by ",", RFC 9110 5.3) and normalised as RFC
 * 9111 4.1 allows: whitespace next to a comma or at either end dropped, any
 * other run of whitespace read as one space. */
struct field_cursor {
	const struct http_headers *h;
	const char *name;
	int i;          /* the line being read */
	const char *p;  /* its next byte; NULL when no line is left */
	int prev;       /* the byte produced last, -1 before the first */
};

static void cursor_line(struct field_cursor *c, int from)
{
	for (c->i = from; c->i < c->h->n; c->i++)
		if (strcasecmp(c->h->v[c->i].name, c->name) == 0) {
			c->p = c->h->v[c->i].value;
			return;
		}
	c->p = NULL;
}

/* The next byte of the normalised value, or -1 at its end. */
static int cursor_next(struct field_cursor *c)
{
	while (c->p) {
		const char *q = c->p;
		if (*q == '\0') {
			cursor_line(c, c->i + 1);
			if (c->p)
				return c->prev = ',';
			break;
		}
		if (*q == ' ' || *q == '\t') {
			while (*q == ' ' || *q == '\t')
				q++;
			c->p = q;
			if (*q != ',' && *q != '\0' && c->prev != ',' && c->prev != -1)
				return c->prev = ' ';
			continue;
		}
		c->p++;
		return c->prev = (unsigned char)*q;
	}
	return -1;
}

/* Do a and b carry the same value for `name` (both absent included)? With
 * b_absent, b's is taken as absent whatever it has. */
static int field_equal(const struct http_headers *a, const struct http_headers *b,
                       const char *name, int b_absent)
{
	struct field_cursor ca = { .h = a, .name = name, .prev = -1 };
	struct field_cursor cb = { .h = b, .name = name, .prev = -1 };
	cursor_line(&ca, 0);
	cursor_line(&cb, 0);
	if (b_absent)
		cb.p = NULL;
	if ((ca.p == NULL) != (cb.p == NULL))
		return 0;
	for (;;) {
		int x = cursor_next(&ca), y = cursor_next(&cb);
		if (x != y)
			return 0;
		if (x < 0)
			return 1;
	}
}

int policy_vary_match(const char *vary, const struct http_headers *vary_req,
                      const struct http_headers *req)
{
	if (vary == NULL)
		return 1;
	struct http_hop hop;
	if (http_hop_init(&hop, req) < 0)
		return 0; /* request.c refuses such a request */
	const char *p = vary, *start;
	size_t n;
	while ((p = http_list_next(p, &start, &n)) != NULL) {
		if (n == 1 && *start == '*')
			return 0;
		char name[128];
		if (n >= sizeof name)
			return 0;
		memcpy(name, start, n);
		name[n] = '\0';
		if (!field_equal(vary_req, req, name, http_hop_has(&hop, name)))
			return 0;
	}
	return 1;
}

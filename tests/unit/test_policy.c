/*
 * test_policy.c — unit tests for policy.c, the RFC 9111 rules as pure
 * functions: Cache-Control and HTTP-date parsing, which requests may use the
 * cache, which responses may be stored and for how long (every reason not
 * to), the age calculation of RFC 9111 4.2.3, freshness, and Vary matching
 * (RFC 9111 4.1: all lines of a field combined, whitespace normalised).
 *
 * Prints one line per failed check and then "policy: N passed, M failed";
 * exits non-zero when anything failed.
 */
#include "corral/policy.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* ---- helpers ----------------------------------------------------------- */

/* Replace h's fields with the NULL-ended list of "Name: value" lines. */
static void
set_headers(struct http_headers *h, ...)
{
	va_list ap;
	const char *line;

	headers_free(h);
	va_start(ap, h);
	while ((line = va_arg(ap, const char *)) != NULL) {
		const char *colon = strchr(line, ':');
		if (colon == NULL)
			abort();
		const char *v = colon + 1;
		if (headers_add(h, line, (size_t)(colon - line), v, strlen(v)) < 0)
			abort();
	}
	va_end(ap);
}
#define H(h, ...) set_headers(h, __VA_ARGS__, (const char *)NULL)

static struct http_headers req, resp, stored;

/* Cache-Control of the NULL-ended lines. */
static struct cache_control
cc_of(const char *first, ...)
{
	struct cache_control cc;
	va_list ap;
	const char *v;

	headers_free(&resp);
	va_start(ap, first);
	for (v = first; v != NULL; v = va_arg(ap, const char *))
		if (headers_add(&resp, "Cache-Control", 13, v, strlen(v)) < 0)
			abort();
	va_end(ap);
	policy_parse_cache_control(&resp, &cc);
	return cc;
}
#define CC(...) cc_of(__VA_ARGS__, (const char *)NULL)

static int
cc_is_empty(const struct cache_control *cc)
{
	return !cc->no_store && !cc->no_cache && !cc->private_ && !cc->public_ &&
	       !cc->must_revalidate && !cc->proxy_revalidate && !cc->only_if_cached &&
	       cc->max_age == -1 && cc->s_maxage == -1;
}

/* ---- Cache-Control ----------------------------------------------------- */

static void
test_cache_control(void)
{
	struct cache_control cc;

	/* none at all */
	H(&resp, "Content-Type: text/html", "Pragma: no-cache");
	policy_parse_cache_control(&resp, &cc);
	CHECK(cc_is_empty(&cc));
	H(&resp, "Cache-Control: ");
	policy_parse_cache_control(&resp, &cc);
	CHECK(cc_is_empty(&cc));
	cc = CC(" , ,, ");
	CHECK(cc_is_empty(&cc));

	/* each directive */
	cc = CC("no-store");
	CHECK_INT(cc.no_store, 1);
	CHECK_INT(cc.no_cache, 0);
	cc = CC("no-cache");
	CHECK_INT(cc.no_cache, 1);
	CHECK_INT(cc.no_store, 0);
	cc = CC("private");
	CHECK_INT(cc.private_, 1);
	cc = CC("public");
	CHECK_INT(cc.public_, 1);
	cc = CC("must-revalidate");
	CHECK_INT(cc.must_revalidate, 1);
	cc = CC("proxy-revalidate");
	CHECK_INT(cc.proxy_revalidate, 1);
	cc = CC("only-if-cached");
	CHECK_INT(cc.only_if_cached, 1);
	cc = CC("max-age=60");
	CHECK_INT(cc.max_age, 60);
	CHECK_INT(cc.s_maxage, -1);
	cc = CC("s-maxage=30");
	CHECK_INT(cc.s_maxage, 30);
	CHECK_INT(cc.max_age, -1);

	/* all in one line */
	cc = CC("public, max-age=60, s-maxage=30, must-revalidate, proxy-revalidate, "
	        "no-cache, no-store, private, only-if-cached");
	CHECK(cc.public_ && cc.no_cache && cc.no_store && cc.private_ &&
	      cc.must_revalidate && cc.proxy_revalidate && cc.only_if_cached);
	CHECK_INT(cc.max_age, 60);
	CHECK_INT(cc.s_maxage, 30);

	/* spread over several Cache-Control lines, other fields between */
	H(&resp, "Cache-Control: public", "Content-Length: 5", "Cache-Control: max-age=60",
	  "cache-control: s-maxage=7, no-cache");
	policy_parse_cache_control(&resp, &cc);
	CHECK_INT(cc.public_, 1);
	CHECK_INT(cc.max_age, 60);
	CHECK_INT(cc.s_maxage, 7);
	CHECK_INT(cc.no_cache, 1);
	CHECK_INT(cc.no_store, 0);

	/* zero is a value, not absence */
	cc = CC("max-age=0");
	CHECK_INT(cc.max_age, 0);
	cc = CC("s-maxage=0");
	CHECK_INT(cc.s_maxage, 0);
	cc = CC("max-age=000120");
	CHECK_INT(cc.max_age, 120);

	/* invalid values mean stale (0); no value at all is ignored */
	cc = CC("max-age=abc");
	CHECK_INT(cc.max_age, 0);
	cc = CC("max-age=-5");
	CHECK_INT(cc.max_age, 0);
	cc = CC("max-age=1.5");
	CHECK_INT(cc.max_age, 0);
	cc = CC("max-age=");
	CHECK_INT(cc.max_age, 0);
	cc = CC("max-age");
	CHECK_INT(cc.max_age, -1);
	cc = CC("s-maxage=x1");
	CHECK_INT(cc.s_maxage, 0);
	/* too big saturates (RFC 9111 1.2.2) */
	cc = CC("max-age=99999999999999999999999");
	CHECK_INT(cc.max_age, INT_MAX);
	cc = CC("max-age=2147483648");
	CHECK_INT(cc.max_age, INT_MAX);
	cc = CC("max-age=2147483647");
	CHECK_INT(cc.max_age, INT_MAX);
	cc = CC("max-age=86400");
	CHECK_INT(cc.max_age, 86400);

	/* a repeated directive: the first counts (RFC 9111 4.2.1), across lines too */
	cc = CC("max-age=60, max-age=3600");
	CHECK_INT(cc.max_age, 60);
	cc = CC("max-age=60", "max-age=3600");
	CHECK_INT(cc.max_age, 60);
	cc = CC("max-age=bad, max-age=3600");
	CHECK_INT(cc.max_age, 0);
	cc = CC("s-maxage=5, s-maxage=500");
	CHECK_INT(cc.s_maxage, 5);

	/* quoted values */
	cc = CC("max-age=\"60\"");
	CHECK_INT(cc.max_age, 60);
	cc = CC("s-maxage=\"15\", public");
	CHECK_INT(cc.s_maxage, 15);
	CHECK_INT(cc.public_, 1);
	cc = CC("private=\"Set-Cookie, X-Secret\", max-age=5");
	CHECK_INT(cc.private_, 1);
	CHECK_INT(cc.max_age, 5);
	cc = CC("private=x");
	CHECK_INT(cc.private_, 1);
	cc = CC("no-cache=\"Set-Cookie\"");
	CHECK_INT(cc.no_cache, 1);
	CHECK_INT(cc.no_store, 0);
	cc = CC("no-cache=\"Set-Cookie, Set-Cookie2\", max-age=9");
	CHECK_INT(cc.no_cache, 1);
	CHECK_INT(cc.max_age, 9);
	/* a directive inside a quoted value is not a directive */
	cc = CC("ext=\"a, no-store, max-age=1\", max-age=3");
	CHECK_INT(cc.no_store, 0);
	CHECK_INT(cc.max_age, 3);
	cc = CC("community=\"UCI\"");
	CHECK(cc_is_empty(&cc));
	/* an unterminated quote swallows the rest, harmlessly */
	cc = CC("ext=\"open, no-store");
	CHECK_INT(cc.no_store, 0);

	/* spaces and tabs around the commas */
	cc = CC("  max-age=10 ,   public  ,no-store");
	CHECK_INT(cc.max_age, 10);
	CHECK_INT(cc.public_, 1);
	CHECK_INT(cc.no_store, 1);
	cc = CC("public,\tmax-age=20\t,\tno-store\t, private");
	CHECK_INT(cc.public_, 1);
	CHECK_INT(cc.max_age, 20);
	CHECK_INT(cc.no_store, 1);
	CHECK_INT(cc.private_, 1);
	cc = CC("max-age=30,public");
	CHECK_INT(cc.max_age, 30);
	CHECK_INT(cc.public_, 1);

	/* directive names are case-insensitive, and so is the field name */
	cc = CC("MAX-AGE=10, No-Store, PUBLIC, S-MaxAge=4, Private, NO-CACHE");
	CHECK_INT(cc.max_age, 10);
	CHECK_INT(cc.s_maxage, 4);
	CHECK(cc.no_store && cc.public_ && cc.private_ && cc.no_cache);
	H(&resp, "CACHE-CONTROL: no-store");
	policy_parse_cache_control(&resp, &cc);
	CHECK_INT(cc.no_store, 1);

	/* unknown directives, with and without values, are skipped */
	cc = CC("foo, bar=baz, max-age=7, x-y=\"z\", stale-while-revalidate=30, immutable");
	CHECK_INT(cc.max_age, 7);
	cc.max_age = -1;
	CHECK(cc_is_empty(&cc));
	/* prefixes and extensions of known names are not them */
	cc = CC("no-stored, no-store-x, publicity, max-ages=5, xmax-age=5, privately");
	CHECK(cc_is_empty(&cc));

	/* the result starts clean each time */
	cc.no_store = 1;
	cc.max_age = 99;
	H(&resp, "X: y");
	policy_parse_cache_control(&resp, &cc);
	CHECK(cc_is_empty(&cc));
}

/* ---- HTTP-date --------------------------------------------------------- */

static void
test_dates(void)
{
	/* the three formats of RFC 9110 5.6.7, all the same instant */
	CHECK_INT(policy_parse_date("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
	CHECK_INT(policy_parse_date("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777);
	CHECK_INT(policy_parse_date("Sun Nov  6 08:49:37 1994"), 784111777);
	CHECK_INT(policy_parse_date("Sun Nov 6 08:49:37 1994"), 784111777);
	CHECK_INT(policy_parse_date("Sun Nov 06 08:49:37 1994"), 784111777);

	/* years */
	CHECK_INT(policy_parse_date("Thu, 01 Jan 1970 00:00:00 GMT"), 0);
	CHECK_INT(policy_parse_date("Sun, 09 Sep 2001 01:46:40 GMT"), 1000000000);
	CHECK_INT(policy_parse_date("Tue, 19 Jan 2038 03:14:08 GMT"), 2147483648LL);
	CHECK_INT(policy_parse_date("Fri, 01 Jan 2100 00:00:00 GMT"), 4102444800LL);
	CHECK_INT(policy_parse_date("Tue, 29 Feb 2000 12:00:00 GMT"), 951825600);
	CHECK_INT(policy_parse_date("Thu, 29 Feb 2024 00:00:00 GMT"), 1709164800);
	CHECK_INT(policy_parse_date("Thu Feb 29 00:00:00 2024"), 1709164800);
	CHECK_INT(policy_parse_date("Wed, 31 Dec 1969 23:59:59 GMT"), -1); /* before the epoch */
	CHECK_INT(policy_parse_date("Wed Dec 31 23:59:59 1969"), -1);
	/* RFC 850's two-digit years: 70-99 are 19xx, 00-69 are 20xx */
	CHECK_INT(policy_parse_date("Thursday, 01-Jan-70 00:00:00 GMT"), 0);
	CHECK_INT(policy_parse_date("Sunday, 09-Sep-01 01:46:40 GMT"), 1000000000);
	CHECK_INT(policy_parse_date("Tuesday, 19-Jan-38 03:14:08 GMT"), 2147483648LL);
	CHECK_INT(policy_parse_date("Tuesday, 31-Dec-69 23:59:59 GMT"), 3155759999LL);
	/* a four-digit year in the RFC 850 form (the cookie style) is that year,
	 * not 1900 + it: "in the past" must not become year 3881 */
	CHECK_INT(policy_parse_date("Thursday, 19-Nov-1981 08:52:00 GMT"), 375007920);
	CHECK_INT(policy_parse_date("Thu, 19-Nov-1981 08:52:00 GMT"), 375007920);
	CHECK_INT(policy_parse_date("Sunday, 06-Nov-1994 08:49:37 GMT"), 784111777);
	/* IMF-fixdate has four digits: a two-digit one is not 19xx */
	CHECK_INT(policy_parse_date("Sun, 06 Nov 94 08:49:37 GMT"), -1);

	/* a leap second reads as the next second */
	CHECK_INT(policy_parse_date("Wed, 31 Dec 2008 23:59:60 GMT"), 1230768000);
	CHECK_INT(policy_parse_date("Thu, 01 Jan 2009 00:00:00 GMT"), 1230768000);
	CHECK_INT(policy_parse_date("Wednesday, 31-Dec-08 23:59:60 GMT"), 1230768000);
	CHECK_INT(policy_parse_date("Wed Dec 31 23:59:60 2008"), 1230768000);

	/* bounds of each field */
	CHECK_INT(policy_parse_date("Sun, 06 Nov 1994 23:59:59 GMT"), 784166399);
	CHECK_INT(policy_parse_date("Sun, 06 Nov 1994 24:00:00 GMT"), -1);
	CHECK_INT(policy_parse_date("Sun, 06 Nov 1994 08:60:00 GMT"), -1);
	CHECK_INT(policy_parse_date("Sun, 06 Nov 1994 08:49:61 GMT"), -1);
	CHECK_INT(policy_parse_date("Sun, 00 Nov 1994 08:49:37 GMT"), -1);
	CHECK_INT(policy_parse_date("Sun, 32 Nov 1994 08:49:37 GMT"), -1);
	CHECK_INT(policy_parse_date("Sun, 06 Foo 1994 08:49:37 GMT"), -1);
	CHECK_INT(policy_parse_date("Sun, 06 nov 1994 08:49:37 GMT"), -1); /* case-sensitive */
	CHECK_INT(policy_parse_date("Sun, 06 NOV 1994 08:49:37 GMT"), -1);
	for (int m = 0; m < 12; m++) {
		static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
		                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
		static const int days[] = { 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334 };
		char s[64];
		snprintf(s, sizeof s, "Mon, 01 %s 2001 00:00:00 GMT", mon[m]);
		check(policy_parse_date(s) == 978307200LL + days[m] * 86400LL, __FILE__,
		      __LINE__, "%s: %lld", s, (long long)policy_parse_date(s));
	}

	/* not dates */
	CHECK_INT(policy_parse_date(""), -1);
	CHECK_INT(policy_parse_date("0"), -1);
	CHECK_INT(policy_parse_date("-1"), -1);
	CHECK_INT(policy_parse_date("garbage"), -1);
	CHECK_INT(policy_parse_date("784111777"), -1);
	CHECK_INT(policy_parse_date("Sun, 06 Nov 1994"), -1);
	CHECK_INT(policy_parse_date("Sun, 06 Nov 1994 08:49 GMT"), -1);
	CHECK_INT(policy_parse_date("06 Nov 1994 08:49:37 GMT"), -1);
	CHECK_INT(policy_parse_date("1994-11-06T08:49:37Z"), -1);
	CHECK_INT(policy_parse_date("Sun, "), -1);
	CHECK_INT(policy_parse_date("Sunday, 06-Nov- 08:49:37 GMT"), -1);
	CHECK_INT(policy_parse_date("Sun Nov  6 08:49:37"), -1);
	CHECK_INT(policy_parse_date("Sun Nov  6 1994"), -1);
	CHECK_INT(policy_parse_date("SundaySundaySundaySunday, 06 Nov 1994 08:49:37 GMT"), -1);

	/* only GMT, and nothing after the date but spaces: sscanf's count of
	 * conversions passed "+0100" for "GMT" */
	CHECK_INT(policy_parse_date("Thu, 01 Jan 2099 00:00:00 +0100"), -1);
	CHECK_INT(policy_parse_date("Thu, 01 Jan 2099 00:00:00 UTC"), -1);
	CHECK_INT(policy_parse_date("Thu, 01 Jan 2099 00:00:00"), -1);
	CHECK_INT(policy_parse_date("Sun, 06 Nov 1994 08:49:37 GMTx"), -1);
	CHECK_INT(policy_parse_date("Sun, 06 Nov 1994 08:49:37 GMT garbage"), -1);
	CHECK_INT(policy_parse_date("Sunday, 06-Nov-94 08:49:37 EST"), -1);
	CHECK_INT(policy_parse_date("Sun Nov  6 08:49:37 1994 GMT"), -1);
	CHECK_INT(policy_parse_date("Sun, 06 Nov 1994 08:49:37 GMT  "), 784111777);
	CHECK_INT(policy_parse_date("Sun Nov  6 08:49:37 1994 "), 784111777);

	/* the Date corral adds: IMF-fixdate, and it reads back */
	char d[POLICY_DATE_LEN];
	policy_format_date(784111777, d);
	CHECK_STR(d, "Sun, 06 Nov 1994 08:49:37 GMT");
	policy_format_date(0, d);
	CHECK_STR(d, "Thu, 01 Jan 1970 00:00:00 GMT");
	policy_format_date(1709164800, d);
	CHECK_STR(d, "Thu, 29 Feb 2024 00:00:00 GMT");
	for (int64_t t = 0; t < 4102444800LL; t += 86400LL * 397 + 3671) {
		policy_format_date(t, d);
		check(policy_parse_date(d) == t, __FILE__, __LINE__, "%lld -> %s -> %lld",
		      (long long)t, d, (long long)policy_parse_date(d));
	}
}

/* ---- requests ---------------------------------------------------------- */

static struct policy_want want;

/* policy_request, its wants in `want` */
static enum policy_lookup
request_of(const char *method, const struct http_headers *h)
{
	return policy_request(method, h, &want);
}

/* A request's max-age / min-fresh / max-stale against a stored response
 * with lifetime 100 (RFC 9111 5.2.1.1-3). */
static void
test_want(void)
{
	H(&resp, "Cache-Control: max-age=100");

	H(&req, "Accept: */*");
	request_of("GET", &req);
	CHECK_INT(want.max_age, -1);
	CHECK_INT(want.min_fresh, -1);
	CHECK_INT(want.max_stale, -1);
	CHECK_INT(policy_acceptable(&want, &resp, 100, 99), 1);
	CHECK_INT(policy_acceptable(&want, &resp, 100, 100), 0);
	CHECK_INT(policy_acceptable(NULL, &resp, 100, 99), 1);
	CHECK_INT(policy_acceptable(NULL, &resp, 100, 100), 0);

	/* max-age=N: no older than N */
	H(&req, "Cache-Control: max-age=30");
	CHECK_INT(request_of("GET", &req), POLICY_LOOKUP);
	CHECK_INT(want.max_age, 30);
	CHECK_INT(policy_acceptable(&want, &resp, 100, 30), 1);
	CHECK_INT(policy_acceptable(&want, &resp, 100, 31), 0);

	/* min-fresh=N: fresh N seconds from now */
	H(&req, "Cache-Control: min-fresh=20");
	request_of("GET", &req);
	CHECK_INT(want.min_fresh, 20);
	CHECK_INT(policy_acceptable(&want, &resp, 100, 80), 1);
	CHECK_INT(policy_acceptable(&want, &resp, 100, 81), 0);
	H(&req, "Cache-Control: min-fresh=x"); /* invalid: ignored */
	request_of("GET", &req);
	CHECK_INT(want.min_fresh, -1);

	/* max-stale=N: stale by at most N; without a value, any */
	H(&req, "Cache-Control: max-stale=50");
	request_of("GET", &req);
	CHECK_INT(want.max_stale, 50);
	CHECK_INT(policy_acceptable(&want, &resp, 100, 150), 1);
	CHECK_INT(policy_acceptable(&want, &resp, 100, 151), 0);
	H(&req, "Cache-Control: max-stale");
	request_of("GET", &req);
	CHECK_INT(want.max_stale, POLICY_AGE_MAX);
	CHECK_INT(policy_acceptable(&want, &resp, 100, 100000000), 1);
	H(&req, "Cache-Control: max-stale=soon"); /* invalid: none */
	request_of("GET", &req);
	CHECK_INT(want.max_stale, -1);
	CHECK_INT(policy_acceptable(&want, &resp, 100, 101), 0);
	/* ... unless the response forbids serving it stale */
	H(&req, "Cache-Control: max-stale");
	request_of("GET", &req);
	H(&resp, "Cache-Control: max-age=100, must-revalidate");
	CHECK_INT(policy_acceptable(&want, &resp, 100, 101), 0);
	CHECK_INT(policy_acceptable(&want, &resp, 100, 99), 1);
	H(&resp, "Cache-Control: max-age=100, proxy-revalidate");
	CHECK_INT(policy_acceptable(&want, &resp, 100, 101), 0);
	H(&resp, "Cache-Control: s-maxage=100"); /* carries proxy-revalidate */
	CHECK_INT(policy_acceptable(&want, &resp, 100, 101), 0);
	H(&resp, "Cache-Control: max-age=100, no-cache=\"Set-Cookie\"");
	CHECK_INT(policy_acceptable(&want, &resp, 100, 101), 0);
	H(&resp, "Expires: Thu, 01 Jan 1970 00:01:40 GMT");
	CHECK_INT(policy_acceptable(&want, &resp, 100, 101), 1);

	/* together: max-age bounds what max-stale allows */
	H(&resp, "Cache-Control: max-age=100");
	H(&req, "Cache-Control: max-age=120, max-stale");
	request_of("GET", &req);
	CHECK_INT(policy_acceptable(&want, &resp, 100, 120), 1);
	CHECK_INT(policy_acceptable(&want, &resp, 100, 121), 0);
	/* the first of a repeated directive counts */
	H(&req, "Cache-Control: min-fresh=5, min-fresh=50", "Cache-Control: max-stale=1, max-stale");
	request_of("GET", &req);
	CHECK_INT(want.min_fresh, 5);
	CHECK_INT(want.max_stale, 1);
}

static void
test_request(void)
{
	H(&req, "Host: example.com", "Accept: */*");
	CHECK_INT(request_of("GET", &req), POLICY_LOOKUP);
	CHECK_INT(request_of("HEAD", &req), POLICY_LOOKUP);
	CHECK_INT(request_of("POST", &req), POLICY_PASS);
	CHECK_INT(request_of("PUT", &req), POLICY_PASS);
	CHECK_INT(request_of("DELETE", &req), POLICY_PASS);
	CHECK_INT(request_of("OPTIONS", &req), POLICY_PASS);
	CHECK_INT(request_of("PATCH", &req), POLICY_PASS);
	CHECK_INT(request_of("get", &req), POLICY_PASS); /* methods are case-sensitive */

	/* only-if-cached: the cache or a 504, never the origin */
	H(&req, "Cache-Control: only-if-cached");
	CHECK_INT(request_of("GET", &req), POLICY_ONLY_STORED);
	CHECK_INT(request_of("HEAD", &req), POLICY_ONLY_STORED);
	CHECK_INT(request_of("POST", &req), POLICY_PASS);
	H(&req, "Cache-Control: max-stale, only-if-cached");
	CHECK_INT(request_of("GET", &req), POLICY_ONLY_STORED);
	H(&req, "Cache-Control: only-if-cached, no-cache");
	CHECK_INT(request_of("GET", &req), POLICY_UNANSWERABLE);
	H(&req, "Cache-Control: only-if-cached", "Range: bytes=0-1");
	CHECK_INT(request_of("GET", &req), POLICY_RANGE); /* a stored body's range, or 504 */
	CHECK_INT(want.only_if_cached, 1);
	CHECK_INT(request_of("HEAD", &req), POLICY_UNANSWERABLE);
	H(&req, "Cache-Control: only-if-cached, no-cache", "Range: bytes=0-1");
	CHECK_INT(request_of("GET", &req), POLICY_UNANSWERABLE);
	H(&req, "Cache-Control: max-age=0, only-if-cached");
	CHECK_INT(request_of("GET", &req), POLICY_UNANSWERABLE);
	CHECK_INT(request_of("GETX", &req), POLICY_PASS);
	CHECK_INT(request_of("", &req), POLICY_PASS);
	headers_free(&req);
	CHECK_INT(request_of("GET", &req), POLICY_LOOKUP);

	/* Range: a GET's from a whole stored body (range.h), a HEAD's passes,
	 * and a reload's or a no-store's passes */
	H(&req, "Range: bytes=0-99");
	CHECK_INT(request_of("GET", &req), POLICY_RANGE);
	CHECK_INT(want.only_if_cached, 0);
	H(&req, "range: bytes=100-");
	CHECK_INT(request_of("HEAD", &req), POLICY_PASS);
	H(&req, "Range: bytes=0-99", "Cache-Control: no-cache");
	CHECK_INT(request_of("GET", &req), POLICY_PASS);
	H(&req, "Range: bytes=0-99", "Cache-Control: no-store");
	CHECK_INT(request_of("GET", &req), POLICY_PASS);
	H(&req, "Range: bytes=0-99", "Cache-Control: max-stale");
	CHECK_INT(request_of("GET", &req), POLICY_RANGE);

	/* request Cache-Control */
	H(&req, "Cache-Control: no-store");
	CHECK_INT(request_of("GET", &req), POLICY_PASS);
	/* a reload: not answered from the store, and its fetch stores anew */
	H(&req, "Cache-Control: no-cache");
	CHECK_INT(request_of("GET", &req), POLICY_REFRESH);
	H(&req, "Cache-Control: max-age=0");
	CHECK_INT(request_of("GET", &req), POLICY_REFRESH);
	H(&req, "Cache-Control: max-stale=10, MAX-AGE=0");
	CHECK_INT(request_of("GET", &req), POLICY_REFRESH);
	H(&req, "Cache-Control: no-cache, no-store"); /* no-store wins: pass */
	CHECK_INT(request_of("GET", &req), POLICY_PASS);
	H(&req, "Cache-Control: no-cache", "Range: bytes=0-1");
	CHECK_INT(request_of("GET", &req), POLICY_PASS);
	H(&req, "Cache-Control: max-age=10");
	CHECK_INT(request_of("GET", &req), POLICY_LOOKUP);
	H(&req, "Cache-Control: max-age=x"); /* invalid: treated as 0 */
	CHECK_INT(request_of("GET", &req), POLICY_REFRESH);
	H(&req, "Cache-Control: max-stale, min-fresh=5");
	CHECK_INT(request_of("GET", &req), POLICY_LOOKUP);
	H(&req, "Cache-Control: max-stale, min-fresh=5, only-if-cached");
	CHECK_INT(request_of("GET", &req), POLICY_ONLY_STORED);
	H(&req, "Cache-Control: public", "Cache-Control: no-cache");
	CHECK_INT(request_of("GET", &req), POLICY_REFRESH);
	H(&req, "Cache-Control: no-store");
	CHECK_INT(request_of("POST", &req), POLICY_PASS);

	/* Pragma: no-cache counts only without Cache-Control (RFC 9111 5.4) */
	H(&req, "Pragma: no-cache");
	CHECK_INT(request_of("GET", &req), POLICY_REFRESH);
	H(&req, "pragma: No-Cache");
	CHECK_INT(request_of("GET", &req), POLICY_REFRESH);
	H(&req, "Pragma: foo, no-cache");
	CHECK_INT(request_of("GET", &req), POLICY_REFRESH);
	H(&req, "Pragma: foo");
	CHECK_INT(request_of("GET", &req), POLICY_LOOKUP);
	H(&req, "Pragma: no-cache", "Cache-Control: max-age=10");
	CHECK_INT(request_of("GET", &req), POLICY_LOOKUP);
	H(&req, "Cache-Control: max-age=10", "Pragma: no-cache");
	CHECK_INT(request_of("GET", &req), POLICY_LOOKUP);
	H(&req, "Cache-Control: x-unknown", "Pragma: no-cache");
	CHECK_INT(request_of("GET", &req), POLICY_LOOKUP);
}

/* ---- storable, and for how long --------------------------------------- */

#define NOW 1000000000LL /* Sun, 09 Sep 2001 01:46:40 GMT */
#define MAXOBJ 1000

/* no heuristic freshness unless a test turns it on */
static struct policy_store_rules rules = { MAXOBJ, 0, 86400, 0 };
static const char *target = "http://example.com/a";

static int64_t
storable(int status, int64_t content_length, const char **why)
{
	return policy_storable(&req, target, status, &resp, content_length, &rules, NOW, why);
}

#define CHECK_STORE(status, len, lifetime) do { \
	const char *why_ = "unset"; \
	int64_t l_ = storable(status, len, &why_); \
	check(l_ == (lifetime) && why_ == NULL, __FILE__, __LINE__, \
	      "want lifetime %lld, got %lld (why %s)", (long long)(lifetime), \
	      (long long)l_, why_ ? why_ : "NULL"); \
} while (0)
#define CHECK_NO_STORE(status, len, reason) do { \
	const char *why_ = NULL; \
	int64_t l_ = storable(status, len, &why_); \
	check(l_ == 0 && why_ != NULL && strcmp(why_, reason) == 0, __FILE__, __LINE__, \
	      "want not stored for %s, got lifetime %lld why %s", reason, \
	      (long long)l_, why_ ? why_ : "NULL"); \
} while (0)

static void
test_storable(void)
{
	headers_free(&req);
	H(&resp, "Cache-Control: max-age=60");
	CHECK_STORE(200, 100, 60);
	CHECK_STORE(200, -1, 60); /* length unknown */
	CHECK_STORE(200, 0, 60);

	/* status: those cacheable by default; others not (yet) */
	static const int ok[] = { 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501 };
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		const char *why = "unset";
		check(storable(ok[i], 10, &why) == 60 && why == NULL, __FILE__, __LINE__,
		      "status %d not stored", ok[i]);
	}
	static const int no[] = { 100, 101, 201, 202, 206, 302, 303, 304, 307, 400, 401,
	                          403, 500, 502, 503, 504, 0, 999 };
	for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
		const char *why = NULL;
		int64_t l = storable(no[i], 10, &why);
		check(l == 0 && why && strcmp(why, "status") == 0, __FILE__, __LINE__,
		      "status %d: lifetime %lld why %s", no[i], (long long)l, why ? why : "NULL");
	}

	/* stale on arrival: by its Age, or by a Date older than its lifetime
	 * (NOW is Sun, 09 Sep 2001 01:46:40 GMT) */
	H(&resp, "Cache-Control: max-age=60", "Age: 100");
	CHECK(policy_stale_on_arrival(&resp, 60, NOW));
	H(&resp, "Cache-Control: max-age=60", "Age: 59");
	CHECK(!policy_stale_on_arrival(&resp, 60, NOW));
	H(&resp, "Cache-Control: max-age=60", "Date: Sun, 09 Sep 2001 01:44:40 GMT");
	CHECK(policy_stale_on_arrival(&resp, 60, NOW));
	H(&resp, "Cache-Control: max-age=60", "Date: Sun, 09 Sep 2001 01:46:00 GMT");
	CHECK(!policy_stale_on_arrival(&resp, 60, NOW));
	H(&resp, "Cache-Control: max-age=60");
	CHECK(!policy_stale_on_arrival(&resp, 60, NOW));

	/* each reason */
	H(&resp, "Cache-Control: max-age=60, no-store");
	CHECK_NO_STORE(200, 10, "no-store");
	H(&resp, "Cache-Control: max-age=60", "Cache-Control: no-store");
	CHECK_NO_STORE(200, 10, "no-store");
	H(&resp, "Cache-Control: private, max-age=60");
	CHECK_NO_STORE(200, 10, "private");
	H(&resp, "Cache-Control: private=\"Set-Cookie\", max-age=60");
	CHECK_NO_STORE(200, 10, "private");
	H(&resp, "Cache-Control: s-maxage=60, no-cache");
	CHECK_NO_STORE(200, 10, "no-cache");
	H(&resp, "Cache-Control: no-cache=\"Set-Cookie\", max-age=60");
	CHECK_NO_STORE(200, 10, "no-cache");
	H(&resp, "Cache-Control: max-age=60", "Set-Cookie: a=b");
	CHECK_NO_STORE(200, 10, "set-cookie");
	H(&resp, "Cache-Control: public, max-age=60", "set-cookie: a=b");
	CHECK_NO_STORE(200, 10, "set-cookie");
	H(&resp, "Cache-Control: max-age=60", "Vary: *");
	CHECK_NO_STORE(200, 10, "vary-star");
	H(&resp, "Cache-Control: max-age=60", "Vary: Accept-Encoding, *");
	CHECK_NO_STORE(200, 10, "vary-star");
	/* a "*" on a later Vary line counts too */
	H(&resp, "Cache-Control: max-age=60", "Vary: Accept-Encoding", "vary: *");
	CHECK_NO_STORE(200, 10, "vary-star");
	H(&resp, "Cache-Control: max-age=60", "Vary: Accept-Encoding", "Vary: Accept");
	CHECK_STORE(200, 10, 60);
	H(&resp, "Cache-Control: max-age=60", "Vary: Accept-Encoding");
	CHECK_STORE(200, 10, 60);
	/* X-Forwarded-For with the client's address in it (forwarded_for on
	 * or truncate): no request shows the value the origin saw */
	H(&resp, "Cache-Control: max-age=60", "Vary: Accept, x-forwarded-for");
	CHECK_STORE(200, 10, 60);
	rules.per_client_xff = 1;
	CHECK_NO_STORE(200, 10, "vary-forwarded-for");
	rules.per_client_xff = 0;

	/* a request with Authorization (RFC 9111 3.5) */
	H(&req, "Authorization: Basic dXNlcjpwYXNz");
	H(&resp, "Cache-Control: max-age=60");
	CHECK_NO_STORE(200, 10, "authorization");
	H(&resp, "Expires: Sun, 09 Sep 2001 02:46:40 GMT");
	CHECK_NO_STORE(200, 10, "authorization");
	H(&resp, "Cache-Control: public, max-age=60");
	CHECK_STORE(200, 10, 60);
	H(&resp, "Cache-Control: s-maxage=30");
	CHECK_STORE(200, 10, 30);
	H(&resp, "Cache-Control: must-revalidate, max-age=60");
	CHECK_STORE(200, 10, 60);
	H(&resp, "Cache-Control: proxy-revalidate, max-age=60");
	CHECK_NO_STORE(200, 10, "authorization");
	/* public lets it be stored, but it still needs a lifetime */
	H(&resp, "Cache-Control: public");
	CHECK_NO_STORE(200, 10, "no-explicit-freshness");
	/* and private still wins over public */
	H(&resp, "Cache-Control: public, private, max-age=60");
	CHECK_NO_STORE(200, 10, "private");
	H(&req, "authorization: Bearer x");
	H(&resp, "Cache-Control: max-age=60");
	CHECK_NO_STORE(200, 10, "authorization");
	H(&req, "Proxy-Authorization: Basic x"); /* not the origin's */
	CHECK_STORE(200, 10, 60);
	headers_free(&req);

	/* too large: only a known length above the limit */
	H(&resp, "Cache-Control: max-age=60");
	CHECK_NO_STORE(200, MAXOBJ + 1, "too-large");
	CHECK_NO_STORE(200, INT64_MAX, "too-large");
	CHECK_STORE(200, MAXOBJ, 60);
	CHECK_STORE(200, -1, 60);

	/* the first reason found, in a fixed order */
	H(&resp, "Cache-Control: no-store, private, no-cache", "Set-Cookie: a", "Vary: *");
	CHECK_NO_STORE(206, MAXOBJ + 1, "status");
	CHECK_NO_STORE(200, MAXOBJ + 1, "no-store");
	H(&resp, "Cache-Control: private, no-cache", "Set-Cookie: a", "Vary: *");
	CHECK_NO_STORE(200, MAXOBJ + 1, "private");
	H(&resp, "Cache-Control: no-cache", "Set-Cookie: a", "Vary: *");
	CHECK_NO_STORE(200, MAXOBJ + 1, "no-cache");
	H(&resp, "Set-Cookie: a", "Vary: *");
	CHECK_NO_STORE(200, MAXOBJ + 1, "set-cookie");
	H(&req, "Authorization: x");
	H(&resp, "Vary: *");
	CHECK_NO_STORE(200, MAXOBJ + 1, "vary-star");
	H(&resp, "Cache-Control: max-age=5");
	CHECK_NO_STORE(200, MAXOBJ + 1, "authorization");
	headers_free(&req);
	CHECK_NO_STORE(200, MAXOBJ + 1, "too-large");
	H(&resp, "X: y");
	CHECK_NO_STORE(200, MAXOBJ, "no-explicit-freshness");

	/* no explicit freshness, and no heuristic (rules.heuristic_percent 0) */
	H(&resp, "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT");
	CHECK_NO_STORE(200, 10, "no-explicit-freshness");
	headers_free(&resp);
	CHECK_NO_STORE(200, 10, "no-explicit-freshness");
	H(&resp, "Cache-Control: max-age=0");
	CHECK_NO_STORE(200, 10, "no-explicit-freshness");
	H(&resp, "Cache-Control: max-age=junk");
	CHECK_NO_STORE(200, 10, "no-explicit-freshness");
	H(&resp, "Cache-Control: must-revalidate");
	CHECK_NO_STORE(200, 10, "no-explicit-freshness");

	/* lifetime: s-maxage over max-age over Expires - Date */
	H(&resp, "Cache-Control: max-age=60, s-maxage=30",
	  "Date: Sun, 09 Sep 2001 01:46:40 GMT", "Expires: Sun, 09 Sep 2001 02:46:40 GMT");
	CHECK_STORE(200, 10, 30);
	H(&resp, "Cache-Control: s-maxage=30, max-age=60");
	CHECK_STORE(200, 10, 30);
	H(&resp, "Cache-Control: s-maxage=120", "Cache-Control: max-age=60");
	CHECK_STORE(200, 10, 120);
	H(&resp, "Cache-Control: max-age=60", "Date: Sun, 09 Sep 2001 01:46:40 GMT",
	  "Expires: Sun, 09 Sep 2001 02:46:40 GMT");
	CHECK_STORE(200, 10, 60);
	/* s-maxage=0 overrides max-age: stale for a shared cache */
	H(&resp, "Cache-Control: max-age=60, s-maxage=0");
	CHECK_NO_STORE(200, 10, "no-explicit-freshness");
	/* max-age=0 overrides Expires */
	H(&resp, "Cache-Control: max-age=0", "Expires: Sun, 09 Sep 2001 02:46:40 GMT");
	CHECK_NO_STORE(200, 10, "no-explicit-freshness");
	/* Expires - Date, whatever now is */
	H(&resp, "Date: Sun, 09 Sep 2001 00:46:40 GMT", "Expires: Sun, 09 Sep 2001 01:46:40 GMT");
	CHECK_STORE(200, 10, 3600);
	H(&resp, "Expires: Sun, 09 Sep 2001 02:46:40 GMT", "Date: Sun, 09 Sep 2001 02:16:40 GMT");
	CHECK_STORE(200, 10, 1800);
	/* Expires in any of the three formats */
	H(&resp, "Date: Sun, 09 Sep 2001 01:46:40 GMT", "Expires: Sunday, 09-Sep-01 01:56:40 GMT");
	CHECK_STORE(200, 10, 600);
	H(&resp, "Date: Sun, 09 Sep 2001 01:46:40 GMT", "Expires: Sun Sep  9 01:56:40 2001");
	CHECK_STORE(200, 10, 600);
	/* without a Date (or with a bad one), now stands in */
	H(&resp, "Expires: Sun, 09 Sep 2001 02:46:40 GMT");
	CHECK_STORE(200, 10, 3600);
	H(&resp, "Date: yesterday", "Expires: Sun, 09 Sep 2001 02:46:40 GMT");
	CHECK_STORE(200, 10, 3600);
	/* Expires in the past, at Date, or invalid ("0" is the classic): stale */
	H(&resp, "Expires: Sun, 09 Sep 2001 00:46:40 GMT");
	CHECK_NO_STORE(200, 10, "no-explicit-freshness");
	H(&resp, "Date: Sun, 09 Sep 2001 01:46:40 GMT", "Expires: Sun, 09 Sep 2001 01:46:40 GMT");
	CHECK_NO_STORE(200, 10, "no-explicit-freshness");
	H(&resp, "Date: Sun, 09 Sep 2001 01:46:40 GMT", "Expires: Sun, 09 Sep 2001 01:46:39 GMT");
	CHECK_NO_STORE(200, 10, "no-explicit-freshness");
	H(&resp, "Expires: 0");
	CHECK_NO_STORE(200, 10, "no-explicit-freshness");
	H(&resp, "Expires: -1");
	CHECK_NO_STORE(200, 10, "no-explicit-freshness");
	H(&resp, "Expires: Thu, 19-Nov-1981 08:52:00 GMT"); /* long past, not year 3881 */
	CHECK_NO_STORE(200, 10, "no-explicit-freshness");
	/* an Expires in the past relative to Date, though after now: Date counts */
	H(&resp, "Date: Sun, 09 Sep 2001 03:46:40 GMT", "Expires: Sun, 09 Sep 2001 02:46:40 GMT");
	CHECK_NO_STORE(200, 10, "no-explicit-freshness");
	/* an Expires with max-age=0... already covered; with a bad max-age: stale */
	H(&resp, "Cache-Control: max-age=soon", "Expires: Sun, 09 Sep 2001 02:46:40 GMT");
	CHECK_NO_STORE(200, 10, "no-explicit-freshness");
	/* large lifetimes */
	H(&resp, "Cache-Control: max-age=31536000");
	CHECK_STORE(200, 10, 31536000);
	H(&resp, "Cache-Control: max-age=99999999999");
	CHECK_STORE(200, 10, INT_MAX);
}

/* ---- age and freshness ------------------------------------------------- */

/* RFC 9111 4.2.2: with no explicit lifetime, a share of the time since
 * Last-Modified (to Date, else now), capped; never for a URL with a query,
 * nor over an explicit lifetime, even an invalid or zero one. */
static void
test_heuristic(void)
{
	const char *why;
	rules.heuristic_percent = 10;
	rules.heuristic_max = 86400;
	headers_free(&req);
	/* modified 13,600 s before Date: 1,360 s; 10,000 s: 1,000 s */
	H(&resp, "Date: Sun, 09 Sep 2001 01:46:40 GMT", "Last-Modified: Sat, 08 Sep 2001 22:00:00 GMT");
	CHECK_STORE(200, 10, 1360); /* 13,600 s before */
	H(&resp, "Date: Sun, 09 Sep 2001 01:46:40 GMT", "Last-Modified: Sat, 08 Sep 2001 23:00:00 GMT");
	CHECK_STORE(200, 10, 1000);
	/* without Date, now (NOW is Date's time) */
	H(&resp, "Last-Modified: Sat, 08 Sep 2001 23:00:00 GMT");
	CHECK_STORE(200, 10, 1000);
	/* capped */
	H(&resp, "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT");
	CHECK_STORE(200, 10, 86400);
	rules.heuristic_percent = 20;
	H(&resp, "Last-Modified: Sat, 08 Sep 2001 23:00:00 GMT");
	CHECK_STORE(200, 10, 2000);
	/* a few seconds old: less than one, not stored */
	H(&resp, "Date: Sun, 09 Sep 2001 01:46:40 GMT", "Last-Modified: Sun, 09 Sep 2001 01:46:38 GMT");
	CHECK_NO_STORE(200, 10, "no-explicit-freshness");
	/* Last-Modified at or after Date, or invalid: none */
	H(&resp, "Date: Sun, 09 Sep 2001 01:46:40 GMT", "Last-Modified: Sun, 09 Sep 2001 01:46:40 GMT");
	CHECK_NO_STORE(200, 10, "no-explicit-freshness");
	H(&resp, "Date: Sun, 09 Sep 2001 01:46:40 GMT", "Last-Modified: Mon, 10 Sep 2001 01:46:40 GMT");
	CHECK_NO_STORE(200, 10, "no-explicit-freshness");
	H(&resp, "Last-Modified: last week");
	CHECK_NO_STORE(200, 10, "no-explicit-freshness");
	/* an explicit lifetime, even stale or invalid, rules it out */
	H(&resp, "Last-Modified: Sat, 08 Sep 2001 23:00:00 GMT", "Cache-Control: max-age=0");
	CHECK_NO_STORE(200, 10, "no-explicit-freshness");
	H(&resp, "Last-Modified: Sat, 08 Sep 2001 23:00:00 GMT", "Cache-Control: max-age=x");
	CHECK_NO_STORE(200, 10, "no-explicit-freshness");
	H(&resp, "Last-Modified: Sat, 08 Sep 2001 23:00:00 GMT", "Expires: 0");
	CHECK_NO_STORE(200, 10, "no-explicit-freshness");
	H(&resp, "Last-Modified: Sat, 08 Sep 2001 23:00:00 GMT", "Cache-Control: s-maxage=0, max-age=60");
	CHECK_NO_STORE(200, 10, "no-explicit-freshness");
	/* other directives leave it: must-revalidate, public */
	H(&resp, "Last-Modified: Sat, 08 Sep 2001 23:00:00 GMT", "Cache-Control: must-revalidate");
	CHECK_STORE(200, 10, 2000);
	/* what may not be stored stays so */
	H(&resp, "Last-Modified: Sat, 08 Sep 2001 23:00:00 GMT", "Cache-Control: private");
	CHECK_NO_STORE(200, 10, "private");
	CHECK_NO_STORE(302, 10, "status");
	H(&req, "Authorization: Basic eDp5");
	H(&resp, "Last-Modified: Sat, 08 Sep 2001 23:00:00 GMT");
	CHECK_NO_STORE(200, 10, "authorization");
	headers_free(&req);
	/* a query: no heuristic */
	target = "http://example.com/a?b=1";
	CHECK_NO_STORE(200, 10, "no-explicit-freshness");
	H(&resp, "Last-Modified: Sat, 08 Sep 2001 23:00:00 GMT", "Cache-Control: max-age=60");
	CHECK_STORE(200, 10, 60);
	target = "http://example.com/a";
	/* turned off */
	rules.heuristic_percent = 0;
	H(&resp, "Last-Modified: Sat, 08 Sep 2001 23:00:00 GMT");
	CHECK_NO_STORE(200, 10, "no-explicit-freshness");
	(void)why;
}

static void
test_stale_if_error(void)
{
	struct http_headers h;
	headers_init(&h);
	H(&h, "Cache-Control: max-age=60, stale-if-error=30");
	CHECK(policy_stale_if_error(&h, 60, 59, -1));
	CHECK(policy_stale_if_error(&h, 60, 90, -1));        /* lifetime + 30 */
	CHECK(!policy_stale_if_error(&h, 60, 91, -1));
	H(&h, "Cache-Control: max-age=60, stale-if-error=\"30\"");
	CHECK(policy_stale_if_error(&h, 60, 90, -1));
	H(&h, "Cache-Control: max-age=60");
	CHECK(!policy_stale_if_error(&h, 60, 61, -1));      /* no permission */
	H(&h, "Cache-Control: max-age=60, stale-if-error=x");
	CHECK(!policy_stale_if_error(&h, 60, 61, -1));      /* invalid: none */
	/* what asks for validation first wins (RFC 9111 4.2.4) */
	H(&h, "Cache-Control: max-age=60, stale-if-error=30, must-revalidate");
	CHECK(!policy_stale_if_error(&h, 60, 61, -1));
	H(&h, "Cache-Control: max-age=60, stale-if-error=30", "Cache-Control: proxy-revalidate");
	CHECK(!policy_stale_if_error(&h, 60, 61, -1));
	H(&h, "Cache-Control: no-cache, stale-if-error=30");
	CHECK(!policy_stale_if_error(&h, 0, 1, -1));
	H(&h, "Cache-Control: s-maxage=60, stale-if-error=30");
	CHECK(!policy_stale_if_error(&h, 60, 61, -1));

	/* the request's stale-if-error (RFC 5861 4): its own window, under the
	 * same rules; either directive may allow */
	H(&h, "Cache-Control: max-age=60");
	CHECK(policy_stale_if_error(&h, 60, 90, 30));
	CHECK(!policy_stale_if_error(&h, 60, 91, 30));
	CHECK(policy_stale_if_error(&h, 60, 60, 0));
	CHECK(!policy_stale_if_error(&h, 60, 61, 0));
	H(&h, "Cache-Control: max-age=60, stale-if-error=10");
	CHECK(policy_stale_if_error(&h, 60, 90, 30));   /* the request's is longer */
	CHECK(policy_stale_if_error(&h, 60, 70, 0));    /* the response's is */
	H(&h, "Cache-Control: max-age=60, must-revalidate");
	CHECK(!policy_stale_if_error(&h, 60, 61, 30));
	H(&h, "Cache-Control: s-maxage=60");
	CHECK(!policy_stale_if_error(&h, 60, 61, 30));

	/* stale-while-revalidate, by the same rules, and each its own */
	H(&h, "Cache-Control: max-age=60, stale-while-revalidate=30");
	CHECK(policy_stale_while_revalidate(&h, 60, 61));
	CHECK(policy_stale_while_revalidate(&h, 60, 90));
	CHECK(!policy_stale_while_revalidate(&h, 60, 91));
	CHECK(!policy_stale_if_error(&h, 60, 61, -1));
	H(&h, "Cache-Control: max-age=60, stale-if-error=30");
	CHECK(!policy_stale_while_revalidate(&h, 60, 61));
	H(&h, "Cache-Control: max-age=60, stale-while-revalidate=\"30\"");
	CHECK(policy_stale_while_revalidate(&h, 60, 90));
	H(&h, "Cache-Control: max-age=60, stale-while-revalidate=soon");
	CHECK(!policy_stale_while_revalidate(&h, 60, 61));
	H(&h, "Cache-Control: max-age=60, stale-while-revalidate=30, must-revalidate");
	CHECK(!policy_stale_while_revalidate(&h, 60, 61));
	H(&h, "Cache-Control: max-age=60, stale-while-revalidate=30, proxy-revalidate");
	CHECK(!policy_stale_while_revalidate(&h, 60, 61));
	H(&h, "Cache-Control: s-maxage=60, stale-while-revalidate=30");
	CHECK(!policy_stale_while_revalidate(&h, 60, 61));
	H(&h, "Cache-Control: no-cache, stale-while-revalidate=30");
	CHECK(!policy_stale_while_revalidate(&h, 0, 1));
	headers_free(&h);
}

static void
test_age(void)
{
	/* args: date_value, age_value, request_time, response_time, now */

	/* no time passed anywhere */
	CHECK_INT(policy_age(1000, -1, 1000, 1000, 1000), 0);
	CHECK_INT(policy_age(1000, 0, 1000, 1000, 1000), 0);

	/* apparent_age = response_time - date_value */
	CHECK_INT(policy_age(1000, -1, 1010, 1010, 1010), 10);
	/* resident_time = now - response_time, added on */
	CHECK_INT(policy_age(1000, -1, 1010, 1010, 1100), 100);

	/* the Age header: corrected_age_value = age_value + response_delay */
	CHECK_INT(policy_age(1000, 100, 1000, 1000, 1000), 100);
	CHECK_INT(policy_age(1000, 100, 995, 1000, 1000), 105);
	CHECK_INT(policy_age(1000, 100, 995, 1000, 1100), 205);
	/* corrected_initial_age = max(apparent_age, corrected_age_value) */
	CHECK_INT(policy_age(900, 10, 1000, 1000, 1000), 100);  /* apparent wins */
	CHECK_INT(policy_age(990, 50, 1000, 1000, 1000), 50);   /* Age wins */
	CHECK_INT(policy_age(990, 5, 998, 1000, 1000), 10);     /* apparent 10 > 5 + 2 */
	CHECK_INT(policy_age(990, 9, 998, 1000, 1000), 11);     /* 9 + 2 > apparent 10 */

	/* response_delay alone (Date equal to the response time, no Age) */
	CHECK_INT(policy_age(1020, -1, 1000, 1020, 1020), 20);
	CHECK_INT(policy_age(1020, 0, 1000, 1020, 1030), 30);

	/* RFC 9111 4.2.3 all together: date 1000, Age 30, asked at 1040,
	 * answered at 1050 (apparent 50; corrected Age 30 + 10 = 40), now 1200 */
	CHECK_INT(policy_age(1000, 30, 1040, 1050, 1200), 200);
	/* the same with a larger Age: 80 + 10 = 90 > 50 */
	CHECK_INT(policy_age(1000, 80, 1040, 1050, 1200), 240);

	/* the origin's clock is ahead: apparent_age is negative, so 0 */
	CHECK_INT(policy_age(5000, -1, 1000, 1000, 1000), 0);
	CHECK_INT(policy_age(5000, -1, 990, 1000, 1060), 70);   /* delay 10 + resident 60 */
	CHECK_INT(policy_age(5000, 20, 990, 1000, 1060), 90);   /* 20 + 10 + 60 */
	/* no (valid) Date at all */
	CHECK_INT(policy_age(-1, -1, 1000, 1000, 1500), 500);
	CHECK_INT(policy_age(-1, 40, 1000, 1001, 1001), 41);
	/* RFC 9111 1.2.2: an Age too big, or a sum that would overflow, is 2^31 */
	CHECK_INT(policy_age(-1, INT64_MAX, 999, 1000, 1000), POLICY_AGE_MAX);
	CHECK_INT(policy_age(-1, INT64_MAX, 0, 1000, 5000), POLICY_AGE_MAX);
	CHECK_INT(policy_age(-1, 2147483647, 990, 1000, 1100), POLICY_AGE_MAX);
	CHECK_INT(policy_age(-1, 2147483600, 1000, 1000, 1010), 2147483610);
	/* our own clock stepped back: neither delay nor residence goes negative */
	CHECK_INT(policy_age(1000, -1, 1010, 1000, 1000), 0);
	CHECK_INT(policy_age(1000, -1, 1000, 1000, 900), 0);
	CHECK_INT(policy_age(1000, 5, 1000, 1000, 900), 5);

	/* realistic epoch values */
	CHECK_INT(policy_age(NOW - 3, 7, NOW - 1, NOW, NOW + 60), 68);
}

static void
test_fresh(void)
{
	CHECK(policy_fresh(60, 0));
	CHECK(policy_fresh(60, 59));
	CHECK(!policy_fresh(60, 60));
	CHECK(!policy_fresh(60, 61));
	CHECK(!policy_fresh(0, 0));
	CHECK(policy_fresh(1, 0));
	CHECK(policy_fresh(INT_MAX, INT_MAX - 1));
	CHECK(!policy_fresh(INT_MAX, 4102444800LL));
	/* age and lifetime from the other functions */
	H(&resp, "Cache-Control: max-age=100", "Age: 30");
	const char *why;
	int64_t life = policy_storable(&req, target, 200, &resp, -1, &rules, NOW, &why);
	CHECK_INT(life, 100);
	CHECK(policy_fresh(life, policy_age(-1, 30, NOW, NOW, NOW + 69)));
	CHECK(!policy_fresh(life, policy_age(-1, 30, NOW, NOW, NOW + 70)));
}

/* ---- Vary -------------------------------------------------------------- */

#define MATCH(vary) policy_vary_match(vary, &stored, &req)

static void
test_vary(void)
{
	/* no Vary: any request matches */
	H(&stored, "Accept-Encoding: gzip");
	H(&req, "Accept-Encoding: br");
	CHECK(MATCH(NULL));
	headers_free(&stored);
	CHECK(MATCH(NULL));
	/* an empty Vary names nothing */
	CHECK(MATCH(""));
	CHECK(MATCH(" , ,"));

	/* one name */
	H(&stored, "Accept-Encoding: gzip");
	H(&req, "Accept-Encoding: gzip");
	CHECK(MATCH("Accept-Encoding"));
	H(&req, "Accept-Encoding: br");
	CHECK(!MATCH("Accept-Encoding"));
	/* other request fields do not matter */
	H(&req, "Host: a", "Accept-Encoding: gzip", "Accept-Language: fr", "Cookie: c");
	CHECK(MATCH("Accept-Encoding"));
	/* values are compared as they are: case counts */
	H(&req, "Accept-Encoding: GZIP");
	CHECK(!MATCH("Accept-Encoding"));

	/* several names, in one or several forms of list */
	H(&stored, "Accept-Encoding: gzip", "Accept-Language: en", "User-Agent: x/1");
	H(&req, "User-Agent: x/1", "Accept-Language: en", "Accept-Encoding: gzip");
	CHECK(MATCH("Accept-Encoding, Accept-Language"));
	CHECK(MATCH("Accept-Encoding,Accept-Language,User-Agent"));
	CHECK(MATCH("  Accept-Encoding ,\tAccept-Language , , User-Agent  "));
	H(&req, "User-Agent: x/2", "Accept-Language: en", "Accept-Encoding: gzip");
	CHECK(MATCH("Accept-Encoding, Accept-Language"));
	CHECK(!MATCH("Accept-Encoding, Accept-Language, User-Agent"));
	CHECK(!MATCH("User-Agent, Accept-Encoding"));
	H(&req, "User-Agent: x/1", "Accept-Language: de", "Accept-Encoding: gzip");
	CHECK(!MATCH("Accept-Encoding, Accept-Language"));

	/* missing on both sides matches; on one side does not */
	H(&stored, "Accept-Encoding: gzip");
	H(&req, "Accept-Encoding: gzip");
	CHECK(MATCH("Accept-Encoding, Accept-Language"));
	CHECK(MATCH("X-Nobody-Sends-This"));
	H(&req, "Accept-Encoding: gzip", "Accept-Language: en");
	CHECK(!MATCH("Accept-Encoding, Accept-Language"));
	H(&stored, "Accept-Encoding: gzip", "Accept-Language: en");
	H(&req, "Accept-Encoding: gzip");
	CHECK(!MATCH("Accept-Encoding, Accept-Language"));
	/* present but empty is not missing */
	H(&stored, "Accept-Language: ");
	H(&req, "Accept-Language: ");
	CHECK(MATCH("Accept-Language"));
	headers_free(&req);
	CHECK(!MATCH("Accept-Language"));

	/* a field hop-by-hop in the request (named in its Connection, or one
	 * of the fixed set) is not sent upstream: it counts as absent, so a
	 * stored "absent" matches it and a stored value does not (else a
	 * client could store the answer to a request without the field under
	 * its value: RFC 9111 4.1 compares the requests as forwarded) */
	headers_free(&stored);
	H(&req, "User-Agent: x/1", "Connection: keep-alive, user-agent");
	CHECK(MATCH("User-Agent"));
	H(&stored, "User-Agent: x/1");
	CHECK(!MATCH("User-Agent"));
	H(&req, "User-Agent: x/1", "Connection: close");
	CHECK(MATCH("User-Agent"));
	headers_free(&stored);
	H(&req, "TE: trailers");
	CHECK(MATCH("TE"));

	/* header names are case-insensitive: in Vary, stored, request */
	H(&stored, "accept-encoding: gzip");
	H(&req, "ACCEPT-ENCODING: gzip");
	CHECK(MATCH("Accept-Encoding"));
	CHECK(MATCH("accept-encoding"));
	CHECK(MATCH("ACCEPT-encoding"));
	H(&req, "ACCEPT-ENCODING: br");
	CHECK(!MATCH("accept-ENCODING"));

	/* whitespace is normalised: around commas and at the ends dropped, any
	 * other run is one space (RFC 9111 4.1) */
	H(&stored, "Accept-Encoding: gzip,deflate");
	H(&req, "Accept-Encoding: gzip, deflate");
	CHECK(MATCH("Accept-Encoding"));
	H(&req, "Accept-Encoding: gzip  ,\t deflate");
	CHECK(MATCH("Accept-Encoding"));
	H(&req, "Accept-Encoding:   gzip,deflate   ");
	CHECK(MATCH("Accept-Encoding"));
	H(&req, "Accept-Encoding: gzip,deflate,br");
	CHECK(!MATCH("Accept-Encoding"));
	H(&req, "Accept-Encoding: gzip");
	CHECK(!MATCH("Accept-Encoding"));
	H(&stored, "User-Agent: Mozilla/5.0 (X11; Linux)");
	H(&req, "User-Agent: Mozilla/5.0  (X11;\tLinux)");
	CHECK(MATCH("User-Agent"));
	H(&req, "User-Agent: Mozilla/5.0 \t (X11;   Linux)");
	CHECK(MATCH("User-Agent"));
	/* but whitespace between two words is not nothing */
	H(&req, "User-Agent: Mozilla/5.0(X11;Linux)");
	CHECK(!MATCH("User-Agent"));
	H(&stored, "X: ab");
	H(&req, "X: a b");
	CHECK(!MATCH("X"));
	H(&stored, "X: a b");
	H(&req, "X: a,b");
	CHECK(!MATCH("X"));

	/* several lines of one field are one combined value (RFC 9110 5.3) */
	H(&stored, "Accept-Language: en, fr");
	H(&req, "Accept-Language: en", "Accept-Language: fr");
	CHECK(MATCH("Accept-Language"));
	H(&req, "Accept-Language: en", "Host: h", "accept-language:  fr ");
	CHECK(MATCH("Accept-Language"));
	H(&stored, "Accept-Language: en", "Accept-Language: fr");
	H(&req, "Accept-Language: en,fr");
	CHECK(MATCH("Accept-Language"));
	H(&req, "Accept-Language: en", "Accept-Language: fr");
	CHECK(MATCH("Accept-Language"));
	/* the first line alone is not the value: a second line that differs... */
	H(&req, "Accept-Language: en", "Accept-Language: de");
	CHECK(!MATCH("Accept-Language"));
	/* ...or one more, or one fewer, is another variant */
	H(&req, "Accept-Language: en", "Accept-Language: fr", "Accept-Language: de");
	CHECK(!MATCH("Accept-Language"));
	H(&req, "Accept-Language: en");
	CHECK(!MATCH("Accept-Language"));
	H(&stored, "Accept-Language: en");
	H(&req, "Accept-Language: en", "Accept-Language: fr");
	CHECK(!MATCH("Accept-Language"));
	/* order matters (it may in general) */
	H(&stored, "Accept-Language: fr, en");
	H(&req, "Accept-Language: en", "Accept-Language: fr");
	CHECK(!MATCH("Accept-Language"));
	/* with several Vary names, each combined on its own */
	H(&stored, "A: 1", "B: x", "A: 2", "B: y");
	H(&req, "B: x, y", "A: 1, 2");
	CHECK(MATCH("A, B"));
	H(&req, "B: x, y", "A: 1");
	CHECK(!MATCH("A, B"));

	/* "*" never matches */
	H(&stored, "Accept: */*");
	H(&req, "Accept: */*");
	CHECK(!MATCH("*"));
	CHECK(!MATCH("Accept, *"));
	CHECK(!MATCH(" * "));
	CHECK(MATCH("Accept"));

	/* a name too long to be real does not match */
	char vary[300];
	memset(vary, 'X', 200);
	vary[200] = '\0';
	headers_free(&stored);
	headers_free(&req);
	CHECK(!MATCH(vary));
}

int
main(void)
{
	headers_init(&req);
	headers_init(&resp);
	headers_init(&stored);
	test_cache_control();
	test_dates();
	test_request();
	test_want();
	test_heuristic();
	test_storable();
	test_age();
	test_stale_if_error();
	test_fresh();
	test_vary();
	headers_free(&req);
	headers_free(&resp);
	headers_free(&stored);
	return check_summary("policy");
}

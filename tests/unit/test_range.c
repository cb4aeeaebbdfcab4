/*
 * test_range.c — unit tests for range.c's pure parts: which Range values
 * get a slice, a 416 or the whole body (RFC 9110 14.1.1, 14.2), and when an
 * If-Range names the stored response (13.1.5). The 206 and 416 themselves
 * are checked end to end in tests/integration/test_cache.py.
 *
 * Prints one line per failed check and then "range: N passed, M failed";
 * exits non-zero when anything failed.
 */
#include "corral/range.h"

#include <stdarg.h>
#include <stdlib.h>

#include "check.h"

/* range_parse of `value` for a body of `length`: the kind, and first/last
 * when it is RANGE_PART */
static void
expect(const char *value, uint64_t length, enum range_kind kind, uint64_t first, uint64_t last,
       int line)
{
	uint64_t a = 77, z = 77;
	enum range_kind k = range_parse(value, length, &a, &z);
	check(k == kind, __FILE__, line, "'%s' of %llu: kind %d, want %d", value,
	      (unsigned long long)length, (int)k, (int)kind);
	if (k == RANGE_PART && kind == RANGE_PART)
		check(a == first && z == last, __FILE__, line, "'%s' of %llu: %llu-%llu, want %llu-%llu",
		      value, (unsigned long long)length, (unsigned long long)a,
		      (unsigned long long)z, (unsigned long long)first, (unsigned long long)last);
}
#define PART(v, len, a, z) expect(v, len, RANGE_PART, a, z, __LINE__)
#define WHOLE(v, len) expect(v, len, RANGE_WHOLE, 0, 0, __LINE__)
#define NONE(v, len) expect(v, len, RANGE_UNSATISFIABLE, 0, 0, __LINE__)

static void
test_parse(void)
{
	PART("bytes=0-9", 100, 0, 9);
	PART("bytes=0-0", 100, 0, 0);
	PART("bytes=90-", 100, 90, 99);
	PART("bytes=90-1000", 100, 90, 99);
	PART("bytes=99-99", 100, 99, 99);
	PART("bytes=-10", 100, 90, 99);
	PART("bytes=-100", 100, 0, 99);
	PART("bytes=-1000", 100, 0, 99);
	PART("BYTES=1-2", 100, 1, 2);          /* the unit is case-insensitive */
	PART(" bytes=1-2 ", 100, 1, 2);        /* whitespace around the value */
	PART("bytes=0-99999999999999999999999", 100, 0, 99); /* saturates */
	PART("bytes=0-", 1, 0, 0);
	/* past the end, or nothing to give: 416 */
	NONE("bytes=100-", 100);
	NONE("bytes=100-200", 100);
	NONE("bytes=99999999999999999999999-", 100);
	NONE("bytes=-0", 100);
	NONE("bytes=0-", 0);
	NONE("bytes=-5", 0);
	/* what is not served as a range: the whole body */
	WHOLE("bytes=5-1", 100);               /* last before first: invalid */
	WHOLE("bytes=0-1,5-6", 100);           /* several ranges */
	WHOLE("bytes=0-1,", 100);
	WHOLE("items=0-1", 100);               /* another unit */
	WHOLE("bytes 0-1", 100);
	WHOLE("bytes = 0-1", 100);
	WHOLE("bytes=", 100);
	WHOLE("bytes=-", 100);
	WHOLE("bytes=a-1", 100);
	WHOLE("bytes=1-b", 100);
	WHOLE("bytes=1", 100);
	WHOLE("bytes=--1", 100);
	WHOLE("bytes=+1-2", 100);
	WHOLE("bytes=1-2 3", 100);
	WHOLE("", 100);
}

static struct http_headers resp;

/* Replace resp's fields with the NULL-ended "Name: value" lines. */
static void
set(const char *first, ...)
{
	va_list ap;
	headers_free(&resp);
	va_start(ap, first);
	for (const char *l = first; l; l = va_arg(ap, const char *)) {
		const char *colon = strchr(l, ':');
		if (colon == NULL || headers_add(&resp, l, (size_t)(colon - l), colon + 2,
		                                 strlen(colon + 2)) < 0)
			abort();
	}
	va_end(ap);
}
#define SET(...) set(__VA_ARGS__, (const char *)NULL)

static void
test_if_range(void)
{
	SET("ETag: \"v1\"", "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT",
	    "Date: Mon, 07 Nov 1994 08:49:37 GMT");
	CHECK(range_if_range_matches("\"v1\"", &resp));
	CHECK(range_if_range_matches(" \"v1\" ", &resp));
	CHECK(!range_if_range_matches("\"v2\"", &resp));
	CHECK(!range_if_range_matches("\"v1", &resp));
	CHECK(!range_if_range_matches("W/\"v1\"", &resp)); /* weak: never */
	CHECK(range_if_range_matches("Sun, 06 Nov 1994 08:49:37 GMT", &resp));
	CHECK(!range_if_range_matches("Sun, 06 Nov 1994 08:49:38 GMT", &resp));
	CHECK(!range_if_range_matches("yesterday", &resp));
	/* a weak stored ETag never matches */
	SET("ETag: W/\"v1\"");
	CHECK(!range_if_range_matches("\"v1\"", &resp));
	CHECK(!range_if_range_matches("W/\"v1\"", &resp));
	/* a stored Last-Modified is a strong validator only 60 s or more
	 * before the stored Date (RFC 9110 8.8.2.2) */
	SET("Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT", "Date: Sun, 06 Nov 1994 08:49:37 GMT");
	CHECK(!range_if_range_matches("Sun, 06 Nov 1994 08:49:37 GMT", &resp));
	SET("Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT", "Date: Sun, 06 Nov 1994 08:50:36 GMT");
	CHECK(!range_if_range_matches("Sun, 06 Nov 1994 08:49:37 GMT", &resp));
	SET("Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT", "Date: Sun, 06 Nov 1994 08:50:37 GMT");
	CHECK(range_if_range_matches("Sun, 06 Nov 1994 08:49:37 GMT", &resp));
	SET("Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT");
	CHECK(!range_if_range_matches("Sun, 06 Nov 1994 08:49:37 GMT", &resp));
	/* nothing to compare with */
	SET("X: y");
	CHECK(!range_if_range_matches("\"v1\"", &resp));
	CHECK(!range_if_range_matches("Sun, 06 Nov 1994 08:49:37 GMT", &resp));
	headers_free(&resp);
}

int main(void)
{
	test_parse();
	test_if_range();
	return check_summary("range");
}

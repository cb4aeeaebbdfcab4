/*
 * test_chunked.c — unit tests for chunked.c, an origin's chunked framing
 * decoded as it arrives: the data comes out whole however the framing is
 * split across reads, the end is known exactly when its last byte arrives,
 * chunk extensions (with the spaces RFC 9112 allows, which llhttp 8.1
 * refuses) and trailers stay out of the data, bytes after the end are
 * ignored, and bad framing (or a consumer that stops) is an error.
 *
 * Prints one line per failed check and then "chunked: N passed, M failed";
 * exits non-zero when anything failed.
 */
#include "corral/chunked.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* What the decoder handed over. */
struct sink {
	char data[4096];
	size_t len;
	int calls;
	int stop_after;      /* return -1 on this call (1-based), 0: never */
};

static int take(void *arg, const char *p, size_t n)
{
	struct sink *s = arg;
	s->calls++;
	if (s->stop_after && s->calls == s->stop_after)
		return -1;
	if (s->len + n > sizeof s->data)
		abort();
	memcpy(s->data + s->len, p, n);
	s->len += n;
	return 0;
}

static const char WIRE[] =
	"5\r\nhello\r\n"
	"7;name=value;flag\r\n, world\r\n"
	"00A ; a = \"b c\"\r\n0123456789\r\n"
	"3 \r\nabc\r\n"
	"1\n!\n"                              /* bare LFs, as libcurl took them */
	"2\r\n?!\r\r\n"                         /* and CRs before the LF */
	"0\r\n"
	"X-Checksum: abc\r\n"
	"X-Other: 1\r\n"
	"\r\n";
static const char DATA[] = "hello, world0123456789abc!?!";

/* WIRE fed in pieces of `step` bytes: the data whole, the end only with the
 * last byte. */
static void test_any_split(void)
{
	size_t wire = sizeof WIRE - 1;
	for (size_t step = 1; step <= wire; step++) {
		struct chunked c;
		struct sink s = { .len = 0 };
		chunked_init(&c, take, &s);
		int early = 0;
		for (size_t at = 0; at < wire; at += step) {
			size_t n = wire - at < step ? wire - at : step;
			if (!check(chunked_feed(&c, WIRE + at, n) == 0, __FILE__, __LINE__,
			           "step %zu: refused at %zu", step, at))
				break;
			if (at + n < wire && chunked_done(&c))
				early = 1;
		}
		if (!check(!early, __FILE__, __LINE__, "step %zu: the end before its last byte", step))
			continue;
		check(chunked_done(&c), __FILE__, __LINE__, "step %zu: no end", step);
		check(s.len == sizeof DATA - 1 && memcmp(s.data, DATA, s.len) == 0,
		      __FILE__, __LINE__, "step %zu: data '%.*s'", step, (int)s.len, s.data);
	}
}

/* After the end, nothing more is data, not even a whole chunk. */
static void test_after_the_end(void)
{
	struct chunked c;
	struct sink s = { .len = 0 };
	chunked_init(&c, take, &s);
	const char wire[] = "3\r\nabc\r\n0\r\n\r\n3\r\nxyz\r\n";
	CHECK_INT(chunked_feed(&c, wire, sizeof wire - 1), 0);
	CHECK(chunked_done(&c));
	CHECK_INT(chunked_feed(&c, "HTTP/1.1 200 OK\r\n", 17), 0);
	CHECK_INT(s.len, 3);
	CHECK(memcmp(s.data, "abc", 3) == 0);
}

/* An empty body: the last chunk alone (with bare LFs too). */
static void test_empty(void)
{
	struct chunked lf;
	chunked_init(&lf, take, NULL);
	CHECK_INT(chunked_feed(&lf, "0\n\n", 3), 0);
	CHECK(chunked_done(&lf));

	struct chunked c;
	struct sink s = { .len = 0 };
	chunked_init(&c, take, &s);
	CHECK_INT(chunked_feed(&c, "0\r\n", 3), 0);
	CHECK(!chunked_done(&c));
	CHECK_INT(chunked_feed(&c, "\r\n", 2), 0);
	CHECK(chunked_done(&c));
	CHECK_INT(s.calls, 0);
}

/* Framing no origin may send: an error, and the end never comes. */
static void test_malformed(void)
{
	static const char *const bad[] = {
		"zz\r\nhello\r\n0\r\n\r\n",              /* not hex */
		"5\r\nhelloXX0\r\n\r\n",                 /* no CRLF after the data */
		"5\r\nhello15\r\nabcde\r\n0\r\n\r\n",     /* the same, a size in its place */
		"10000000000000000\r\n",                 /* 2^64: a size that overflows */
		"-5\r\nhello\r\n",                       /* a sign */
		";a=b\r\nhello\r\n",                     /* no size */
		"5\r\nhello\r\n0\r\n\rX",                 /* CR then not LF at the end */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct chunked c;
		struct sink s = { .len = 0 };
		chunked_init(&c, take, &s);
		int rc = chunked_feed(&c, bad[i], strlen(bad[i]));
		check(rc == -1, __FILE__, __LINE__, "'%s' accepted", bad[i]);
		CHECK(!chunked_done(&c));
		CHECK(c.error != NULL);
		CHECK_INT(chunked_feed(&c, "0\r\n\r\n", 5), -1); /* stays refused */
	}
}

/* The consumer says stop: the feed fails, and so does the next one. */
static void test_consumer_stops(void)
{
	struct chunked c;
	struct sink s = { .stop_after = 2 };
	chunked_init(&c, take, &s);
	CHECK_INT(chunked_feed(&c, "3\r\nabc\r\n", 8), 0);
	CHECK_INT(chunked_feed(&c, "3\r\ndef\r\n0\r\n\r\n", 13), -1);
	CHECK(c.error == NULL);
	CHECK(!chunked_done(&c));
	CHECK_INT(chunked_feed(&c, "3\r\nghi\r\n", 8), -1);
	CHECK_INT(s.len, 3);
}

/* Trailers up to CHUNKED_TRAILERS_MAX are taken, one byte more is an
 * error, whether it comes in one feed or byte by byte. */
static void test_trailers_max(void)
{
	static char wire[CHUNKED_TRAILERS_MAX + 64];
	for (int over = 0; over <= 1; over++) {
		size_t n = 0;
		n += (size_t)sprintf(wire, "3\r\nabc\r\n0\r\n");
		size_t trailers = CHUNKED_TRAILERS_MAX - 1 + (size_t)over; /* + the empty line's CR */
		memcpy(wire + n, "X-T: ", 5);
		memset(wire + n + 5, 'a', trailers - 7);
		memcpy(wire + n + trailers - 2, "\r\n", 2);
		n += trailers;
		memcpy(wire + n, "\r\n", 2);
		n += 2;
		for (size_t step = 1; step <= n; step = step == 1 ? n : n + 1) {
			struct chunked c;
			struct sink s = { .len = 0 };
			chunked_init(&c, take, &s);
			int rc = 0;
			for (size_t i = 0; i < n && rc == 0; i += step)
				rc = chunked_feed(&c, wire + i, i + step <= n ? step : n - i);
			CHECK_INT(rc, over ? -1 : 0);
			CHECK(chunked_done(&c) == !over);
			CHECK(over ? c.error != NULL : c.error == NULL);
			CHECK_INT(s.len, 3);
		}
	}
}

int main(void)
{
	test_any_split();
	test_after_the_end();
	test_empty();
	test_malformed();
	test_consumer_stops();
	test_trailers_max();
	return check_summary("chunked");
}

/*
 * test_strbuf.c — unit tests for strbuf.h, the string builder of the hot
 * paths: copies and numbers land in order, numbers are padded as asked
 * (the access log's "%6lld" and "%03d"), and what does not fit is dropped
 * with `cut` set, never written past the end.
 *
 * Prints one line per failed check and then "strbuf: N passed, M failed";
 * exits non-zero when anything failed.
 */
#include "corral/strbuf.h"

#include <stdio.h>
#include <string.h>

#include "check.h"

/* The string built so far, NUL-terminated in a copy. */
static const char *built(const struct strbuf *b)
{
	static char out[256];
	size_t n = strbuf_len(b);
	memcpy(out, b->start, n);
	out[n] = '\0';
	return out;
}

static void test_builds(void)
{
	char buf[64];
	struct strbuf b = strbuf_on(buf, sizeof buf);
	strbuf_str(&b, "Age: ");
	strbuf_u64(&b, 0, 0, ' ');
	strbuf_char(&b, ' ');
	strbuf_u64(&b, 18446744073709551615u, 0, ' ');
	strbuf_mem(&b, "|xyz", 2);
	CHECK_STR(built(&b), "Age: 0 18446744073709551615|x");
	CHECK_INT(b.cut, 0);

	b = strbuf_on(buf, sizeof buf);
	strbuf_u64(&b, 42, 6, ' ');
	strbuf_char(&b, '/');
	strbuf_u64(&b, 7, 3, '0');
	strbuf_char(&b, '/');
	strbuf_u64(&b, 1234567, 3, '0'); /* wider than asked: all digits */
	CHECK_STR(built(&b), "    42/007/1234567");
	for (int width = 0; width < 8; width++) {
		char want[16], got[16];
		snprintf(want, sizeof want, "%*d", width, 305);
		b = strbuf_on(got, sizeof got);
		strbuf_u64(&b, 305, width, ' ');
		got[strbuf_len(&b)] = '\0';
		CHECK_STR(got, want);
	}
}

static void test_cut(void)
{
	char buf[8] = "########";
	struct strbuf b = strbuf_on(buf, 5);
	strbuf_str(&b, "abc");
	CHECK_INT(b.cut, 0);
	strbuf_u64(&b, 123, 0, ' ');
	CHECK_INT(b.cut, 1);
	CHECK_INT(strbuf_len(&b), 5);
	strbuf_char(&b, 'z');
	strbuf_str(&b, "more");
	CHECK_INT(strbuf_len(&b), 5);
	CHECK(memcmp(buf, "abc12###", 8) == 0); /* nothing past the end */

	b = strbuf_on(buf, 0);
	strbuf_char(&b, 'a');
	CHECK_INT(b.cut, 1);
	CHECK_INT(strbuf_len(&b), 0);
}

/* A C string: the NUL always fits, even when the text was cut. */
static void test_cstr(void)
{
	char buf[6] = "######";
	struct strbuf b = strbuf_on_cstr(buf, sizeof buf);
	strbuf_str(&b, "ab");
	CHECK_INT(strbuf_cstr(&b), 2);
	CHECK_STR(buf, "ab");
	strbuf_str(&b, "cdefgh");
	CHECK_INT(b.cut, 1);
	CHECK_INT(strbuf_cstr(&b), 5);
	CHECK_STR(buf, "abcde");
}

int main(void)
{
	test_builds();
	test_cstr();
	test_cut();
	return check_summary("strbuf");
}

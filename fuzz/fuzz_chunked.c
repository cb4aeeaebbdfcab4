/*
 * fuzz_chunked.c — an origin's chunked framing, decoded as it arrives
 * (chunked.c, used by the cache's fetch).
 *
 * The first input byte picks how the rest is cut into pieces (as reads
 * from the origin cut it); the rest is the framing. It is decoded twice:
 * whole, and in those pieces.
 *
 * Checked for any input: both decodings agree, in the data handed over,
 * whether they failed, and whether the body ended; a failure says why; the
 * data is never more than the framing.
 */
#include <string.h>

#include "corral/chunked.h"
#include "fuzz.h"

struct sink {
	char *p;
	size_t len, cap;
};

static int collect(void *arg, const char *p, size_t n)
{
	struct sink *s = arg;
	if (s->len + n > s->cap) {
		s->cap = (s->len + n) * 2;
		s->p = realloc(s->p, s->cap);
		FUZZ_CHECK(s->p != NULL);
	}
	memcpy(s->p + s->len, p, n);
	s->len += n;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	size_t step = (size_t)data[0] % 17 + 1;
	const char *framing = (const char *)data + 1;
	size_t len = size - 1;

	struct sink whole = { 0 }, pieces = { 0 };
	struct chunked a, b;
	chunked_init(&a, collect, &whole);
	chunked_init(&b, collect, &pieces);
	int ra = chunked_feed(&a, framing, len);
	int rb = 0;
	for (size_t at = 0; at < len && rb == 0; at += step)
		rb = chunked_feed(&b, framing + at, len - at < step ? len - at : step);

	FUZZ_CHECK(ra == rb);
	FUZZ_CHECK(ra == 0 || a.error != NULL);
	FUZZ_CHECK(chunked_done(&a) == chunked_done(&b));
	FUZZ_CHECK(whole.len == pieces.len && whole.len <= len);
	FUZZ_CHECK(whole.len == 0 || memcmp(whole.p, pieces.p, whole.len) == 0);
	free(whole.p);
	free(pieces.p);
	return 0;
}

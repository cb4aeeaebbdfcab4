/*
 * test_cache.c — unit tests for cache.c's table of key heads: it grows. A
 * head is found again by its key while it is used, however many others are
 * added meanwhile; the buckets double when there are more than two heads
 * per bucket (2^16 to begin with); a head nobody uses and that stores
 * nothing goes away, and its key then gets a fresh one.
 *
 * Prints one line per failed check and then "cache: N passed, M failed";
 * exits non-zero when anything failed.
 */
#include "corral/cache.h"

#include <stdio.h>
#include <stdlib.h>

#include "check.h"

#define HEADS 300000 /* past 2 x 2^17 heads: two doublings */

static void key_of(int i, char *out, size_t len)
{
	snprintf(out, len, "http://host-%d.example/path/%d", i % 977, i);
}

static void test_growth(void)
{
	char key[96];
	struct keyhead **heads = calloc(HEADS, sizeof *heads);
	CHECK(heads != NULL);
	CHECK_INT(cache_buckets(), 1 << 16);
	int missing = 0, same = 0;
	for (int i = 0; i < HEADS; i++) {
		key_of(i, key, sizeof key);
		heads[i] = cache_head_get(key);
		missing += heads[i] == NULL;
	}
	CHECK_INT(missing, 0);
	CHECK_INT(cache_buckets(), 1 << 18);
	/* every key finds its own head again after the rehashes */
	for (int i = 0; i < HEADS; i++) {
		key_of(i, key, sizeof key);
		struct keyhead *h = cache_head_get(key);
		same += h == heads[i];
		cache_head_put(h, NULL);
	}
	CHECK_INT(same, HEADS);
	for (int i = 0; i < HEADS; i++)
		cache_head_put(heads[i], NULL);
	/* unused and storing nothing: gone, and a key gets a new head that is
	 * found again while it is used */
	key_of(7, key, sizeof key);
	struct keyhead *a = cache_head_get(key), *b = cache_head_get(key);
	CHECK(a != NULL && a == b);
	cache_head_put(a, NULL);
	cache_head_put(b, NULL);
	CHECK_INT(cache_buckets(), 1 << 18); /* never shrinks */
	free(heads);
}

int main(void)
{
	if (cache_init() != 0) {
		fprintf(stderr, "cache_init failed\n");
		return 1;
	}
	test_growth();
	return check_summary("cache");
}

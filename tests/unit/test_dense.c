/*
 * test_dense.c — unit tests for dense.c, the pool that packs same-sized
 * objects side by side: objects are 64-byte aligned and rounded up to 64
 * bytes, a fresh block hands them out in address order one object apart
 * (that is the point: a herd's worth shares a few pages), a returned object
 * comes back next, no two live objects overlap, and threads may take and
 * give back at once.
 *
 * Prints one line per failed check and then "dense: N passed, M failed";
 * exits non-zero when anything failed.
 */
#include "corral/dense.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"

struct odd {
	char bytes[100]; /* rounded up to 128 */
};

static void test_packed(void)
{
	static struct dense_pool pool = DENSE_POOL_INIT(struct odd);
	CHECK_INT(pool.size, 128);
	char *objs[600];
	for (int i = 0; i < 600; i++) {
		objs[i] = dense_get(&pool);
		if (!CHECK(objs[i] != NULL))
			return;
		CHECK_INT((uintptr_t)objs[i] % 64, 0);
		memset(objs[i], i & 0xff, pool.size); /* all of it is ours */
	}
	/* a 64 KiB block holds 512: the first 512 are one block, in order */
	int in_order = 0;
	for (int i = 1; i < 512; i++)
		in_order += objs[i] == objs[i - 1] + 128;
	CHECK_INT(in_order, 511);
	/* nobody's bytes were overwritten by another's */
	int intact = 0;
	for (int i = 0; i < 600; i++) {
		int ok = 1;
		for (size_t k = 0; k < pool.size; k++)
			ok &= (unsigned char)objs[i][k] == (unsigned char)(i & 0xff);
		intact += ok;
	}
	CHECK_INT(intact, 600);
	/* given back, an object is the next one out */
	dense_put(&pool, objs[7]);
	CHECK(dense_get(&pool) == objs[7]);
	for (int i = 0; i < 600; i++)
		dense_put(&pool, objs[i]);
}

static struct dense_pool shared = DENSE_POOL_INIT(uint64_t);

/* Each thread takes 200 objects, marks them its own, checks the marks
 * survived the other threads' work, and gives them back; 50 rounds. */
static void *churn(void *arg)
{
	uint64_t me = (uint64_t)(uintptr_t)arg, *objs[200];
	int bad = 0;
	for (int round = 0; round < 50; round++) {
		for (int i = 0; i < 200; i++) {
			objs[i] = dense_get(&shared);
			if (objs[i] == NULL)
				return (void *)1;
			*objs[i] = me << 32 | (uint64_t)i;
		}
		for (int i = 0; i < 200; i++)
			bad += *objs[i] != (me << 32 | (uint64_t)i);
		for (int i = 0; i < 200; i++)
			dense_put(&shared, objs[i]);
	}
	return (void *)(uintptr_t)bad;
}

static void test_threads(void)
{
	pthread_t th[4];
	for (uintptr_t i = 0; i < 4; i++)
		CHECK_INT(pthread_create(&th[i], NULL, churn, (void *)(i + 1)), 0);
	for (int i = 0; i < 4; i++) {
		void *bad;
		pthread_join(th[i], &bad);
		CHECK_INT((uintptr_t)bad, 0);
	}
}

int main(void)
{
	test_packed();
	test_threads();
	return check_summary("dense");
}

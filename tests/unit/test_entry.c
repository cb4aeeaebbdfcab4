/*
 * test_entry.c — unit tests for entry.c: the growing chunk list and its
 * readers, the two final states, transit (chunks freed behind the slowest
 * reader, the fetch held back TRANSIT_MAX ahead of it, attach refused once
 * the start is gone, append refused once nobody reads), reference counts,
 * and threads: one writer streaming to eight readers, some attaching at
 * forced points mid-way, every reader getting every byte; parked readers
 * written for by the writer's thread (entry_pump), some handed back
 * mid-write, every one getting every byte once and the end once.
 *
 * Interleavings are forced with a test-side lock and condvar (`sync`) and
 * every wait has a deadline: a hang is reported as a failure, not waited out.
 * Run under ASan (no leak: the last unref frees) and TSan.
 *
 * Prints one line per failed check and then "entry: N passed, M failed";
 * exits non-zero when anything failed.
 */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include "corral/entry.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sched.h>
#include <time.h>

#include "check.h"

#define DEADLINE_S 60 /* generous: TSan is slow */

/* ---- helpers ----------------------------------------------------------- */

/* The byte at body offset k: a pattern no shifted or reordered copy matches. */
static unsigned char
pattern(uint64_t k)
{
	return (unsigned char)((k * 131u) ^ (k >> 9) ^ (k >> 17) ^ 0x5a);
}

static void
fill(char *buf, uint64_t off, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)pattern(off + i);
}

static uint64_t
fnv(uint64_t h, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= 1099511628211ull;
	}
	return h;
}
#define FNV_INIT 1469598103934665603ull

/* Chunk i's length in the threaded tests: 1 to 2039 bytes. */
static size_t
chunk_len(int i)
{
	return 1 + ((unsigned)i * 7919u) % 2039u;
}

struct sample {
	uint64_t bytes, held, dropped;
	int nreaders;
	enum entry_state state;
};

/* The entry's counters, read under its lock. */
static struct sample
sample(struct entry *e)
{
	struct sample s;

	pthread_mutex_lock(&e->lock);
	s.bytes = e->bytes;
	s.held = e->held;
	s.dropped = e->dropped;
	s.nreaders = e->nreaders;
	s.state = e->state;
	pthread_mutex_unlock(&e->lock);
	return s;
}

/* Read one block and check it is `want` (NULL: the end, in state `end`).
 * Only called when data or the end is there: it must not block. */
#define CHECK_READ(e, r, want) check_read(__FILE__, __LINE__, e, r, want, ENTRY_STREAMING)
#define CHECK_END(e, r, end) check_read(__FILE__, __LINE__, e, r, NULL, end)
static void
check_read(const char *file, int line, struct entry *e, struct entry_reader *r,
           const char *want, enum entry_state end)
{
	size_t len = 12345;
	enum entry_state st = ENTRY_STREAMING;
	const char *p = entry_read(e, r, &len, &st);

	if (want == NULL) {
		check(p == NULL, file, line, "expected the end, read %zu bytes", len);
		check(st == end, file, line, "end state %d, want %d", (int)st, (int)end);
		return;
	}
	if (!check(p != NULL, file, line, "expected '%s', read the end (%d)", want, (int)st))
		return;
	check(len == strlen(want) && memcmp(p, want, len) == 0, file, line,
	      "read '%.*s', want '%s'", (int)len, p, want);
}

static void
append_str(struct entry *e, const char *s)
{
	CHECK_INT(entry_append(e, s, strlen(s)), 0);
}

/* The test's own rendezvous: one lock, one condvar, counters below. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t changed;
} sync_ = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER };

static struct timespec
deadline_in(int seconds)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += seconds;
	return ts;
}

/* Wait (sync_.lock held) until *v >= want; 0, or -1 at the deadline. */
static int
wait_at_least(const long *v, long want)
{
	struct timespec ts = deadline_in(DEADLINE_S);

	while (*v < want)
		if (pthread_cond_timedwait(&sync_.changed, &sync_.lock, &ts) == ETIMEDOUT)
			return *v >= want ? 0 : -1;
	return 0;
}

static void
set_and_wake(long *v, long value)
{
	pthread_mutex_lock(&sync_.lock);
	*v = value;
	pthread_cond_broadcast(&sync_.changed);
	pthread_mutex_unlock(&sync_.lock);
}

/* A hang cannot be recovered from: report it and stop. */
static void
hung(const char *file, int line, const char *what)
{
	check(0, file, line, "deadline passed waiting for %s", what);
	check_summary("entry");
	_Exit(1);
}
#define WAIT_AT_LEAST(v, want, what) do { \
	if (wait_at_least(v, want) < 0) \
		hung(__FILE__, __LINE__, what); \
} while (0)

/* ---- single thread ----------------------------------------------------- */

static void
test_order(void)
{
	struct entry *e = entry_new();
	struct entry_reader r;
	struct sample s;
	enum entry_state st;

	if (!CHECK(e != NULL))
		return;
	CHECK_INT(e->magic, ENTRY_MAGIC);
	CHECK_INT(e->content_length, -1);
	CHECK_INT(entry_bytes(e, &st), 0);
	CHECK_INT(st, ENTRY_STREAMING);
	CHECK_INT(entry_bytes(e, NULL), 0);

	CHECK_INT(entry_attach(e, &r), 0);
	CHECK_INT(r.pos, 0);
	append_str(e, "hello");
	append_str(e, ", ");
	CHECK_READ(e, &r, "hello");
	CHECK_READ(e, &r, ", ");
	append_str(e, "world");
	append_str(e, "!");
	CHECK_INT(entry_bytes(e, &st), 13);
	CHECK_INT(st, ENTRY_STREAMING);
	CHECK_READ(e, &r, "world");
	CHECK_READ(e, &r, "!");
	CHECK_INT(r.pos, 13);
	entry_finish(e, ENTRY_COMPLETE);
	CHECK_END(e, &r, ENTRY_COMPLETE);
	CHECK_END(e, &r, ENTRY_COMPLETE); /* the end stays the end */
	CHECK_INT(r.pos, 13);

	/* a final state is final */
	entry_finish(e, ENTRY_FAILED);
	CHECK_INT(entry_bytes(e, &st), 13);
	CHECK_INT(st, ENTRY_COMPLETE);

	s = sample(e);
	CHECK_INT(s.held, 13);
	CHECK_INT(s.dropped, 0);
	CHECK_INT(s.nreaders, 1);
	entry_detach(e, &r);
	CHECK_INT(sample(e).nreaders, 0);
	entry_detach(e, &r); /* not attached: harmless */
	CHECK_INT(sample(e).nreaders, 0);
	entry_unref(&e);
	CHECK(e == NULL);
}

static void
test_failed(void)
{
	struct entry *e = entry_new();
	struct entry_reader r, late;
	enum entry_state st;

	CHECK_INT(entry_attach(e, &r), 0);
	append_str(e, "abc");
	append_str(e, "def");
	CHECK_READ(e, &r, "abc");
	entry_finish(e, ENTRY_FAILED);
	/* what arrived before the failure is still read, then the failure */
	CHECK_READ(e, &r, "def");
	CHECK_END(e, &r, ENTRY_FAILED);
	CHECK_INT(r.pos, 6);
	entry_finish(e, ENTRY_COMPLETE);
	CHECK_INT(entry_bytes(e, &st), 6);
	CHECK_INT(st, ENTRY_FAILED);

	/* a reader attached after the failure sees the bytes, then the failure */
	CHECK_INT(entry_attach(e, &late), 0);
	CHECK_READ(e, &late, "abc");
	CHECK_READ(e, &late, "def");
	CHECK_END(e, &late, ENTRY_FAILED);
	entry_detach(e, &late);
	entry_detach(e, &r);
	entry_unref(&e);

	/* failed with no body at all */
	e = entry_new();
	CHECK_INT(entry_attach(e, &r), 0);
	entry_finish(e, ENTRY_FAILED);
	CHECK_END(e, &r, ENTRY_FAILED);
	CHECK_INT(r.pos, 0);
	entry_detach(e, &r);
	entry_unref(&e);

	/* complete with no body at all */
	e = entry_new();
	entry_finish(e, ENTRY_COMPLETE);
	CHECK_INT(entry_attach(e, &r), 0);
	CHECK_END(e, &r, ENTRY_COMPLETE);
	entry_detach(e, &r);
	entry_unref(&e);
}

static void
test_late_readers(void)
{
	struct entry *e = entry_new();
	struct entry_reader a, b, c;

	CHECK_INT(entry_attach(e, &a), 0);
	append_str(e, "one");
	append_str(e, "two");
	CHECK_READ(e, &a, "one");
	CHECK_READ(e, &a, "two");

	/* b comes after a has read everything: it starts at byte 0 */
	CHECK_INT(entry_attach(e, &b), 0);
	CHECK_INT(sample(e).nreaders, 2);
	CHECK_READ(e, &b, "one");
	append_str(e, "three");
	CHECK_READ(e, &a, "three");
	CHECK_READ(e, &b, "two");
	CHECK_READ(e, &b, "three");
	entry_finish(e, ENTRY_COMPLETE);

	/* c comes after the end: the whole body, then the end */
	CHECK_INT(entry_attach(e, &c), 0);
	CHECK_READ(e, &c, "one");
	CHECK_READ(e, &c, "two");
	CHECK_READ(e, &c, "three");
	CHECK_END(e, &c, ENTRY_COMPLETE);
	CHECK_END(e, &a, ENTRY_COMPLETE);
	CHECK_END(e, &b, ENTRY_COMPLETE);
	CHECK_INT(a.pos, 11);
	CHECK_INT(b.pos, 11);
	CHECK_INT(c.pos, 11);

	/* stored (not transit): nothing was ever freed */
	CHECK_INT(sample(e).held, 11);
	CHECK_INT(sample(e).dropped, 0);
	entry_detach(e, &b);
	entry_detach(e, &a);
	entry_detach(e, &c);
	CHECK_INT(sample(e).held, 11);
	entry_unref(&e);
}

static void
test_transit(void)
{
	struct entry *e = entry_new();
	struct entry_reader a, b, late;
	struct sample s;
	char c10[11], c20[21], c30[31], c40[41];

	memset(c10, 'a', 10); c10[10] = '\0';
	memset(c20, 'b', 20); c20[20] = '\0';
	memset(c30, 'c', 30); c30[30] = '\0';
	memset(c40, 'd', 40); c40[40] = '\0';

	CHECK_INT(entry_attach(e, &a), 0);
	CHECK_INT(entry_attach(e, &b), 0);
	append_str(e, c10);
	append_str(e, c20);
	append_str(e, c30);
	CHECK_READ(e, &a, c10);
	CHECK_READ(e, &a, c20); /* a holds c20 now; b has not started */

	/* becoming transit frees nothing a reader has not passed */
	entry_make_transit(e);
	s = sample(e);
	CHECK_INT(s.held, 60);
	CHECK_INT(s.dropped, 0);
	/* the start is still there: a reader may still attach */
	CHECK_INT(entry_attach(e, &late), 0);
	entry_detach(e, &late);

	/* b passes c10: every reader has, so it goes */
	CHECK_READ(e, &b, c10);
	s = sample(e);
	CHECK_INT(s.held, 60); /* b still holds c10's bytes until its next read */
	CHECK_READ(e, &b, c20);
	s = sample(e);
	CHECK_INT(s.held, 50);
	CHECK_INT(s.dropped, 10);
	CHECK_INT(s.bytes, 60);

	/* once bytes are gone the start is gone: attach fails */
	CHECK_INT(entry_attach(e, &late), -1);
	CHECK_INT(sample(e).nreaders, 2);

	/* a passes c20, but b holds it: nothing more goes */
	CHECK_READ(e, &a, c30);
	CHECK_INT(sample(e).held, 50);
	/* b moves on to the last chunk: c20 goes, the last one stays */
	CHECK_READ(e, &b, c30);
	s = sample(e);
	CHECK_INT(s.held, 30);
	CHECK_INT(s.dropped, 30);

	append_str(e, c40);
	CHECK_INT(sample(e).held, 70);
	CHECK_READ(e, &a, c40);
	CHECK_INT(sample(e).held, 70); /* b is still on c30 */

	/* b leaves mid-stream: what only it held goes with it */
	entry_detach(e, &b);
	s = sample(e);
	CHECK_INT(s.held, 40);
	CHECK_INT(s.dropped, 60);
	CHECK_INT(s.nreaders, 1);
	CHECK_INT(s.bytes, 100);

	entry_finish(e, ENTRY_COMPLETE);
	CHECK_END(e, &a, ENTRY_COMPLETE);
	CHECK_INT(a.pos, 100);
	entry_detach(e, &a);
	entry_unref(&e); /* the last chunk is freed here (ASan) */

	/* transit with no reader at all frees everything but the last chunk */
	e = entry_new();
	append_str(e, c10);
	append_str(e, c20);
	append_str(e, c30);
	entry_make_transit(e);
	s = sample(e);
	CHECK_INT(s.held, 30);
	CHECK_INT(s.dropped, 30);
	CHECK_INT(entry_attach(e, &late), -1);
	entry_unref(&e);
}

/* entry_read_iov hands out several chunks at once and keeps them until the
 * next call, even in transit. */
static void
test_read_iov(void)
{
	struct entry *e = entry_new();
	struct entry_reader a, b;
	struct iovec v[2];
	enum entry_state st;
	int n;

	CHECK_INT(entry_attach(e, &a), 0);
	CHECK_INT(entry_attach(e, &b), 0);
	append_str(e, "one");
	append_str(e, "two");
	append_str(e, "three");
	n = entry_read_iov(e, &a, v, 2, &st);
	CHECK_INT(n, 2);
	CHECK(v[0].iov_len == 3 && memcmp(v[0].iov_base, "one", 3) == 0);
	CHECK(v[1].iov_len == 3 && memcmp(v[1].iov_base, "two", 3) == 0);
	CHECK_INT(a.pos, 6);
	/* b takes everything in one go */
	struct iovec w[8];
	n = entry_read_iov(e, &b, w, 8, &st);
	CHECK_INT(n, 3);
	CHECK(w[2].iov_len == 5 && memcmp(w[2].iov_base, "three", 5) == 0);
	CHECK_INT(b.pos, 11);

	/* transit: a's batch (one, two) stays while a may still be writing it */
	entry_make_transit(e);
	CHECK_INT(sample(e).held, 11);
	n = entry_read_iov(e, &a, v, 2, &st);
	CHECK_INT(n, 1);
	CHECK(v[0].iov_len == 5 && memcmp(v[0].iov_base, "three", 5) == 0);
	/* a moved on, but b's batch (one, two, three) is still b's */
	CHECK_INT(sample(e).held, 11);

	entry_finish(e, ENTRY_COMPLETE);
	CHECK_INT(entry_read_iov(e, &b, w, 8, &st), 0);
	CHECK_INT(st, ENTRY_COMPLETE);
	/* b is done with its batch: one and two go, the last chunk stays */
	CHECK_INT(sample(e).held, 5);
	CHECK_INT(sample(e).dropped, 6);
	CHECK_INT(entry_read_iov(e, &a, v, 2, &st), 0);
	CHECK_INT(st, ENTRY_COMPLETE);
	entry_detach(e, &a);
	entry_detach(e, &b);
	entry_unref(&e);
}

static void
test_serialise_head(void)
{
	struct entry *e = entry_new();
	e->status = 200;
	snprintf(e->reason, sizeof e->reason, "OK");
	headers_add(&e->headers, "Content-Type", 12, "text/plain", 10);
	headers_add(&e->headers, "Age", 3, "30", 2);
	headers_add(&e->headers, "Set-Cookie", 10, "a=1", 3);
	headers_add(&e->headers, "Set-Cookie", 10, "b=2", 3);
	CHECK_INT(entry_serialise_head(e), 0);
	static const char want[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	                           "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n";
	CHECK_INT(e->wire_head_len, sizeof want - 1);
	CHECK(memcmp(e->wire_head, want, sizeof want - 1) == 0);
	entry_unref(&e);
}

static void
test_append_no_readers(void)
{
	struct entry *e = entry_new();
	struct entry_reader r;

	/* a stored entry keeps taking bytes with nobody reading */
	append_str(e, "kept");
	CHECK_INT(entry_bytes(e, NULL), 4);

	/* transit with nobody reading: stop fetching */
	entry_make_transit(e);
	CHECK_INT(entry_append(e, "lost", 4), -1);
	CHECK_INT(entry_bytes(e, NULL), 4);
	CHECK_INT(sample(e).held, 4);

	/* the start is still there (nothing was dropped): a reader may attach,
	 * and while it is attached appends are taken */
	CHECK_INT(entry_attach(e, &r), 0);
	CHECK_INT(entry_append(e, "more", 4), 0);
	CHECK_READ(e, &r, "kept");
	CHECK_READ(e, &r, "more");
	entry_detach(e, &r);
	CHECK_INT(entry_append(e, "gone", 4), -1);
	CHECK_INT(entry_bytes(e, NULL), 8);
	entry_unref(&e);
}

/* A single chunk bigger than TRANSIT_MAX, read, then one more append: the
 * writer must not wait for a free that can only follow its own append. */
static long big_appended;

static void *
big_writer(void *arg)
{
	struct entry *e = arg;
	int rc = entry_append(e, "tail", 4);

	set_and_wake(&big_appended, rc == 0 ? 1 : 2);
	return NULL;
}

static void
test_transit_big_chunk(void)
{
	struct entry *e = entry_new();
	struct entry_reader r;
	size_t big = TRANSIT_MAX * 2, len;
	char *buf = malloc(big);
	enum entry_state st;
	pthread_t th;
	const char *p;
	struct timespec ts;

	if (!CHECK(buf != NULL))
		return;
	fill(buf, 0, big);
	CHECK_INT(entry_attach(e, &r), 0);
	entry_make_transit(e);
	CHECK_INT(entry_append(e, buf, big), 0);
	p = entry_read(e, &r, &len, &st);
	CHECK(p != NULL && len == big && memcmp(p, buf, big) == 0);

	big_appended = 0;
	CHECK_INT(pthread_create(&th, NULL, big_writer, e), 0);
	pthread_mutex_lock(&sync_.lock);
	ts = deadline_in(5); /* what this checks is a hang: 5 s will do */
	while (big_appended == 0 &&
	       pthread_cond_timedwait(&sync_.changed, &sync_.lock, &ts) != ETIMEDOUT)
		;
	long done = big_appended;
	pthread_mutex_unlock(&sync_.lock);
	check(done == 1, __FILE__, __LINE__,
	      "append after a chunk > TRANSIT_MAX: %s", done == 0 ? "hangs" : "refused");
	if (done == 0)
		entry_detach(e, &r); /* releases the stuck writer (it returns -1) */
	CHECK_INT(pthread_join(th, NULL), 0);
	if (done == 1) {
		CHECK_INT(sample(e).held, big + 4);
		CHECK_READ(e, &r, "tail");
		/* the big chunk is passed and goes */
		CHECK_INT(sample(e).held, 4);
		CHECK_INT(sample(e).dropped, big);
		entry_detach(e, &r);
	}
	free(buf);
	entry_unref(&e);
}

static void
test_refs(void)
{
	struct entry *e = entry_new(), *a, *b;

	CHECK_INT(atomic_load(&e->refs), 1);
	entry_ref(e);
	entry_ref(e);
	CHECK_INT(atomic_load(&e->refs), 3);
	a = b = e;
	entry_unref(&a);
	CHECK(a == NULL);
	CHECK_INT(atomic_load(&e->refs), 2);
	entry_unref(&b);
	CHECK(b == NULL);
	CHECK_INT(atomic_load(&e->refs), 1);
	CHECK_INT(e->magic, ENTRY_MAGIC);

	/* everything an entry owns goes with its last reference (ASan/LSan) */
	CHECK_INT(headers_add(&e->headers, "Content-Type", 12, "text/plain", 10), 0);
	CHECK_INT(headers_add(&e->vary_req, "Accept", 6, "*/*", 3), 0);
	append_str(e, "body");
	append_str(e, "more body");
	entry_unref(&e);
	CHECK(e == NULL);
	entry_unref(&e); /* NULL: nothing */
	CHECK(e == NULL);
}

/* ---- threads: one writer, eight readers ------------------------------- */

#define N_CHUNKS 10000
#define N_READERS 8
#define N_LATE 4 /* readers 4..7 attach mid-way */

struct reader_arg {
	struct entry *e;
	struct entry_reader r;
	int late;              /* attach once the writer reached chunk `at` */
	int at;
	uint64_t total, sum, bad_bytes, first_bad;
	enum entry_state end;
	uint64_t max_held;     /* transit tests: the most held seen after a read */
	int attach_rc;
};

static struct {
	long chunks;           /* chunks appended so far */
	long attached;         /* late readers attached so far */
	long held_over;        /* the writer saw held > TRANSIT_MAX */
	long slow_go;          /* the slow reader may go on */
	long writer_done;
} prog; /* protected by sync_.lock */

static void
read_all(struct reader_arg *a, int slow)
{
	size_t len;
	const char *p;
	enum entry_state st;

	a->sum = FNV_INIT;
	while ((p = entry_read(a->e, &a->r, &len, &st)) != NULL) {
		for (size_t i = 0; i < len; i++)
			if ((unsigned char)p[i] != pattern(a->total + i) && a->bad_bytes++ == 0)
				a->first_bad = a->total + i;
		a->sum = fnv(a->sum, p, len);
		a->total += len;
		if (slow) {
			struct sample s = sample(a->e);
			if (s.held > a->max_held)
				a->max_held = s.held;
		}
	}
	a->end = st;
}

static void *
reader_main(void *arg)
{
	struct reader_arg *a = arg;

	if (a->late) {
		pthread_mutex_lock(&sync_.lock);
		WAIT_AT_LEAST(&prog.chunks, a->at, "the writer to reach a late reader's point");
		pthread_mutex_unlock(&sync_.lock);
		a->attach_rc = entry_attach(a->e, &a->r);
		pthread_mutex_lock(&sync_.lock);
		prog.attached++;
		pthread_cond_broadcast(&sync_.changed);
		pthread_mutex_unlock(&sync_.lock);
		if (a->attach_rc != 0)
			return NULL;
	}
	read_all(a, 0);
	entry_detach(a->e, &a->r);
	return NULL;
}

struct writer_arg {
	struct entry *e;
	int late_points[N_LATE]; /* wait for late reader k before chunk late_points[k] */
	uint64_t total, sum;
	uint64_t max_over;       /* transit: the most held beyond TRANSIT_MAX + chunk */
	uint64_t max_held;
	int failed_appends;
	int transit;
};

static void *
writer_main(void *arg)
{
	struct writer_arg *w = arg;
	char buf[4096];
	int k = 0;

	w->sum = FNV_INIT;
	for (int i = 0; i < N_CHUNKS; i++) {
		if (k < N_LATE && i == w->late_points[k]) {
			/* a late reader attaches exactly here, mid-body */
			pthread_mutex_lock(&sync_.lock);
			WAIT_AT_LEAST(&prog.attached, k + 1, "a late reader to attach");
			pthread_mutex_unlock(&sync_.lock);
			k++;
		}
		size_t len = chunk_len(i);
		fill(buf, w->total, len);
		if (entry_append(w->e, buf, len) != 0) {
			w->failed_appends++;
			break;
		}
		w->sum = fnv(w->sum, buf, len);
		w->total += len;
		struct sample s = sample(w->e);
		if (s.held > w->max_held)
			w->max_held = s.held;
		if (w->transit && s.held > TRANSIT_MAX + len &&
		    s.held - TRANSIT_MAX - len > w->max_over)
			w->max_over = s.held - TRANSIT_MAX - len;
		pthread_mutex_lock(&sync_.lock);
		prog.chunks = i + 1;
		if (s.held > TRANSIT_MAX)
			prog.held_over = 1;
		pthread_cond_broadcast(&sync_.changed);
		pthread_mutex_unlock(&sync_.lock);
	}
	entry_finish(w->e, ENTRY_COMPLETE);
	set_and_wake(&prog.writer_done, 1);
	return NULL;
}

static void
check_reader(const char *file, int line, int i, const struct reader_arg *a,
             const struct writer_arg *w)
{
	check(a->bad_bytes == 0, file, line, "reader %d: %llu wrong bytes, first at %llu", i,
	      (unsigned long long)a->bad_bytes, (unsigned long long)a->first_bad);
	check(a->total == w->total, file, line, "reader %d: %llu bytes of %llu", i,
	      (unsigned long long)a->total, (unsigned long long)w->total);
	check(a->sum == w->sum, file, line, "reader %d: checksum differs", i);
	check(a->r.pos == w->total, file, line, "reader %d: pos %llu", i,
	      (unsigned long long)a->r.pos);
	check(a->end == ENTRY_COMPLETE, file, line, "reader %d: ended in state %d", i,
	      (int)a->end);
}

static void
test_threads_stored(void)
{
	struct entry *e = entry_new();
	struct reader_arg ra[N_READERS];
	struct writer_arg w;
	pthread_t rt[N_READERS], wt;
	uint64_t expect = 0;

	memset(&prog, 0, sizeof prog);
	memset(ra, 0, sizeof ra);
	memset(&w, 0, sizeof w);
	w.e = e;
	for (int i = 0; i < N_CHUNKS; i++)
		expect += chunk_len(i);
	for (int k = 0; k < N_LATE; k++)
		w.late_points[k] = (k + 1) * N_CHUNKS / (N_LATE + 1);
	for (int i = 0; i < N_READERS; i++) {
		ra[i].e = e;
		entry_ref(e); /* each reader holds one, as in the cache */
		if (i >= N_READERS - N_LATE) {
			ra[i].late = 1;
			ra[i].at = w.late_points[i - (N_READERS - N_LATE)];
		} else {
			CHECK_INT(entry_attach(e, &ra[i].r), 0);
		}
	}
	entry_ref(e); /* the writer's */
	for (int i = 0; i < N_READERS; i++)
		CHECK_INT(pthread_create(&rt[i], NULL, reader_main, &ra[i]), 0);
	CHECK_INT(pthread_create(&wt, NULL, writer_main, &w), 0);
	CHECK_INT(pthread_join(wt, NULL), 0);
	entry_unref(&w.e);
	for (int i = 0; i < N_READERS; i++) {
		CHECK_INT(pthread_join(rt[i], NULL), 0);
		CHECK_INT(ra[i].attach_rc, 0);
		check_reader(__FILE__, __LINE__, i, &ra[i], &w);
		entry_unref(&ra[i].e);
	}
	CHECK_INT(w.total, expect);
	CHECK_INT(w.failed_appends, 0);
	CHECK_INT(prog.attached, N_LATE);
	struct sample s = sample(e);
	CHECK_INT(s.bytes, expect);
	CHECK_INT(s.held, expect); /* stored: all of it kept */
	CHECK_INT(s.dropped, 0);
	CHECK_INT(s.nreaders, 0);
	CHECK_INT(atomic_load(&e->refs), 1);

	/* one more reader, after it all: the same bytes */
	struct reader_arg after;
	memset(&after, 0, sizeof after);
	after.e = e;
	CHECK_INT(entry_attach(e, &after.r), 0);
	read_all(&after, 0);
	entry_detach(e, &after.r);
	check_reader(__FILE__, __LINE__, -1, &after, &w);
	entry_unref(&e);
}

/* ---- threads: transit backpressure ------------------------------------ */

/* Attached from the start, reads nothing until the writer has been held
 * back (held > TRANSIT_MAX: its next append waits), then reads it all. */
static void *
slow_reader_main(void *arg)
{
	struct reader_arg *a = arg;

	pthread_mutex_lock(&sync_.lock);
	WAIT_AT_LEAST(&prog.held_over, 1, "the writer to get TRANSIT_MAX ahead");
	pthread_mutex_unlock(&sync_.lock);
	read_all(a, 1);
	entry_detach(a->e, &a->r);
	return NULL;
}

static void
test_threads_transit(void)
{
	struct entry *e = entry_new();
	struct reader_arg a;
	struct writer_arg w;
	pthread_t rt, wt;

	memset(&prog, 0, sizeof prog);
	memset(&a, 0, sizeof a);
	memset(&w, 0, sizeof w);
	w.e = a.e = e;
	w.transit = 1;
	for (int k = 0; k < N_LATE; k++)
		w.late_points[k] = -1;
	entry_make_transit(e);
	CHECK_INT(entry_attach(e, &a.r), 0);
	CHECK_INT(pthread_create(&rt, NULL, slow_reader_main, &a), 0);
	CHECK_INT(pthread_create(&wt, NULL, writer_main, &w), 0);
	CHECK_INT(pthread_join(wt, NULL), 0);
	CHECK_INT(pthread_join(rt, NULL), 0);

	CHECK_INT(w.failed_appends, 0);
	CHECK_INT(prog.held_over, 1);
	check(w.max_over == 0, __FILE__, __LINE__,
	      "held went %llu bytes beyond TRANSIT_MAX + one chunk",
	      (unsigned long long)w.max_over);
	check(w.max_held <= TRANSIT_MAX + 2039, __FILE__, __LINE__,
	      "writer saw %llu bytes held", (unsigned long long)w.max_held);
	check(a.max_held <= TRANSIT_MAX + 2039, __FILE__, __LINE__,
	      "reader saw %llu bytes held", (unsigned long long)a.max_held);
	check_reader(__FILE__, __LINE__, 0, &a, &w);
	struct sample s = sample(e);
	CHECK(s.dropped > 0);
	CHECK_INT(s.dropped + s.held, w.total);
	CHECK(s.held <= 2039); /* only the last chunk is left */
	entry_unref(&e);
}

/* ---- threads: a reader leaving mid-stream frees a waiting writer ------- */

/* Reads one chunk, then holds it until told to leave. */
static void *
stuck_reader_main(void *arg)
{
	struct reader_arg *a = arg;
	size_t len;
	enum entry_state st;

	if (entry_read(a->e, &a->r, &len, &st) != NULL)
		a->total = len;
	pthread_mutex_lock(&sync_.lock);
	WAIT_AT_LEAST(&prog.slow_go, 1, "leave to detach");
	pthread_mutex_unlock(&sync_.lock);
	entry_detach(a->e, &a->r);
	return NULL;
}

static void *
fast_reader_main(void *arg)
{
	struct reader_arg *a = arg;

	read_all(a, 0);
	entry_detach(a->e, &a->r);
	return NULL;
}

static void
test_threads_detach(void)
{
	struct entry *e = entry_new();
	struct reader_arg stuck, fast;
	struct writer_arg w;
	pthread_t st, ft, wt;
	struct entry_reader again;

	memset(&prog, 0, sizeof prog);
	memset(&stuck, 0, sizeof stuck);
	memset(&fast, 0, sizeof fast);
	memset(&w, 0, sizeof w);
	w.e = stuck.e = fast.e = e;
	w.transit = 1;
	for (int k = 0; k < N_LATE; k++)
		w.late_points[k] = -1;
	entry_make_transit(e);
	CHECK_INT(entry_attach(e, &stuck.r), 0);
	CHECK_INT(entry_attach(e, &fast.r), 0);
	CHECK_INT(pthread_create(&st, NULL, stuck_reader_main, &stuck), 0);
	CHECK_INT(pthread_create(&ft, NULL, fast_reader_main, &fast), 0);
	CHECK_INT(pthread_create(&wt, NULL, writer_main, &w), 0);

	/* the stuck reader holds the writer back: it gets TRANSIT_MAX ahead,
	 * then its next append waits for as long as the reader stays */
	pthread_mutex_lock(&sync_.lock);
	WAIT_AT_LEAST(&prog.held_over, 1, "the writer to get TRANSIT_MAX ahead");
	long at = prog.chunks;
	CHECK(prog.writer_done == 0);
	pthread_mutex_unlock(&sync_.lock);
	CHECK(at < N_CHUNKS);
	CHECK_INT(sample(e).dropped, 0); /* the stuck reader has chunk 0 */

	/* the reader leaves: the writer goes on to the end */
	set_and_wake(&prog.slow_go, 1);
	pthread_mutex_lock(&sync_.lock);
	WAIT_AT_LEAST(&prog.writer_done, 1, "the writer to finish after the detach");
	pthread_mutex_unlock(&sync_.lock);
	CHECK_INT(pthread_join(wt, NULL), 0);
	CHECK_INT(pthread_join(st, NULL), 0);
	CHECK_INT(pthread_join(ft, NULL), 0);

	CHECK_INT(stuck.total, chunk_len(0));
	CHECK_INT(w.failed_appends, 0);
	CHECK_INT(prog.chunks, N_CHUNKS);
	check_reader(__FILE__, __LINE__, 1, &fast, &w);
	CHECK_INT(w.max_over, 0);
	/* the start is gone: a newcomer must fetch for itself */
	CHECK_INT(entry_attach(e, &again), -1);
	struct sample s = sample(e);
	CHECK_INT(s.nreaders, 0);
	CHECK_INT(s.dropped + s.held, w.total);
	entry_unref(&e);
}

/* A lone reader that never reads, then leaves: the waiting writer is
 * released and told to stop (-1). */
static void *
writer_until_refused(void *arg)
{
	struct writer_arg *w = arg;
	char buf[2039];

	memset(buf, 'x', sizeof buf);
	for (;;) {
		if (entry_append(w->e, buf, sizeof buf) != 0) {
			w->failed_appends++;
			break;
		}
		w->total += sizeof buf;
		struct sample s = sample(w->e);
		if (s.held > w->max_held)
			w->max_held = s.held;
		if (s.held > TRANSIT_MAX)
			set_and_wake(&prog.held_over, 1);
	}
	set_and_wake(&prog.writer_done, 1);
	return NULL;
}

static void
test_threads_last_reader_leaves(void)
{
	struct entry *e = entry_new();
	struct entry_reader r;
	struct writer_arg w;
	pthread_t wt;

	memset(&prog, 0, sizeof prog);
	memset(&w, 0, sizeof w);
	w.e = e;
	entry_make_transit(e);
	CHECK_INT(entry_attach(e, &r), 0);
	CHECK_INT(pthread_create(&wt, NULL, writer_until_refused, &w), 0);
	pthread_mutex_lock(&sync_.lock);
	WAIT_AT_LEAST(&prog.held_over, 1, "the writer to get TRANSIT_MAX ahead");
	pthread_mutex_unlock(&sync_.lock);
	entry_detach(e, &r);
	pthread_mutex_lock(&sync_.lock);
	WAIT_AT_LEAST(&prog.writer_done, 1, "the writer to be refused after the detach");
	pthread_mutex_unlock(&sync_.lock);
	CHECK_INT(pthread_join(wt, NULL), 0);
	CHECK_INT(w.failed_appends, 1);
	CHECK(w.max_held <= TRANSIT_MAX + 2039);
	CHECK(w.total > TRANSIT_MAX);
	CHECK_INT(entry_bytes(e, NULL), w.total);
	entry_unref(&e);
}

/* ---- threads: references taken and dropped concurrently --------------- */

#define N_REF_THREADS 8
#define N_REF_ROUNDS 20000

static void *
ref_main(void *arg)
{
	struct entry *e = arg;

	for (int i = 0; i < N_REF_ROUNDS; i++) {
		struct entry *mine = e;
		entry_ref(mine);
		entry_unref(&mine);
	}
	return NULL;
}

static void
test_threads_refs(void)
{
	struct entry *e = entry_new();
	pthread_t th[N_REF_THREADS];

	append_str(e, "something to free");
	for (int i = 0; i < N_REF_THREADS; i++)
		CHECK_INT(pthread_create(&th[i], NULL, ref_main, e), 0);
	for (int i = 0; i < N_REF_THREADS; i++)
		CHECK_INT(pthread_join(th[i], NULL), 0);
	CHECK_INT(atomic_load(&e->refs), 1);
	CHECK_INT(e->magic, ENTRY_MAGIC);
	entry_unref(&e);
}

/* ---- threads: parked readers, written for by the writer's thread ------ */

#define N_PARKED 4
#define N_PARK_CHUNKS 300

/* A parked reader whose "socket" is a checksum: its writer takes all it is
 * given, except on every `every`-th call, when it takes only part of the
 * first piece and hands the reader back with the rest, as a full socket
 * buffer would. */
struct park_reader {
	struct entry_parked p;   /* first: the writer's argument is &p */
	struct entry *e;
	struct entry_reader r;
	int every;               /* hand back on every every-th call, 0: never */
	int hand_back_end;       /* hand back the call that says `end`, untaken */
	int parked_first;        /* parked by another thread: wait for the release first */
	struct iovec v[ENTRY_PARK_IOV];  /* p.v: where the pump hands out */
	struct iovec rest[ENTRY_PARK_IOV];
	int nrest;
	/* written by the writer's thread while parked, by the owner after */
	uint64_t total, sum, bad_bytes, first_bad;
	long calls, handbacks, pumped_bytes, ends;
	int end_in_rest;         /* the end was handed back with the rest */
	long end_writes;         /* the response's end "written", by either side */
	uint64_t end_at;         /* total when it was */
	enum entry_state end;
};

/* The response's end goes out: it must be once, after every byte. */
static void
park_end(struct park_reader *a)
{
	a->end_writes++;
	a->end_at = a->total;
}

static void
park_take(struct park_reader *a, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] != pattern(a->total + i) && a->bad_bytes++ == 0)
			a->first_bad = a->total + i;
	a->sum = fnv(a->sum, p, n);
	a->total += n;
}

static int
park_write(struct entry_parked *p, struct iovec *v, int n, int end)
{
	struct park_reader *a = (struct park_reader *)p;
	a->calls++;
	a->ends += end;
	int i = 0;
	if (end && a->hand_back_end) {
		/* nothing fits: all of it, and the end, left to the owner */
		for (a->nrest = 0; a->nrest < n; a->nrest++)
			a->rest[a->nrest] = v[a->nrest];
		a->end_in_rest = 1;
		a->handbacks++;
		return 1;
	}
	if (a->every && a->calls % a->every == 0 && n > 0) {
		/* half of the first piece, then hand back */
		size_t half = v[0].iov_len / 2;
		park_take(a, v[0].iov_base, half);
		a->pumped_bytes += (long)half;
		a->rest[0].iov_base = (char *)v[0].iov_base + half;
		a->rest[0].iov_len = v[0].iov_len - half;
		a->nrest = 1;
		for (i = 1; i < n; i++)
			a->rest[a->nrest++] = v[i];
		a->handbacks++;
		return 1;
	}
	for (; i < n; i++) {
		park_take(a, v[i].iov_base, v[i].iov_len);
		a->pumped_bytes += (long)v[i].iov_len;
	}
	if (end)
		park_end(a);
	return 0;
}

/* deliver.c's loop: read what is there, park when caught up, finish what
 * was handed back. */
static void *
park_reader_main(void *arg)
{
	struct park_reader *a = arg;
	struct iovec v[ENTRY_PARK_IOV];
	enum entry_state st;
	int nv;

	a->sum = FNV_INIT;
	if (a->parked_first)
		entry_park_wait(a->e, &a->p);
	for (;;) {
		for (int i = 0; i < a->nrest; i++)
			park_take(a, a->rest[i].iov_base, a->rest[i].iov_len);
		a->nrest = 0;
		if (a->end_in_rest) {
			park_end(a);
			a->end_in_rest = 0;
		}
		nv = entry_try_read_iov(a->e, &a->r, v, ENTRY_PARK_IOV, &st);
		if (nv < 0) {
			entry_park(a->e, &a->p);
			continue;
		}
		if (nv == 0)
			break;
		for (int i = 0; i < nv; i++)
			park_take(a, v[i].iov_base, v[i].iov_len);
	}
	a->end = st;
	if (st == ENTRY_COMPLETE && a->end_writes == 0)
		park_end(a); /* the owner ends the response itself */
	entry_detach(a->e, &a->r);
	return NULL;
}

/* Attach a to e (written for by park_write: hand back on every `every`-th
 * call, and the `end` call when hand_back_end) and start its owner thread. */
static void
start_park_reader(struct park_reader *a, struct entry *e, int every, int hand_back_end,
                  pthread_t *th)
{
	memset(a, 0, sizeof *a);
	a->e = e;
	a->p.r = &a->r;
	a->p.write = park_write;
	a->p.v = a->v;
	a->every = every;
	a->hand_back_end = hand_back_end;
	CHECK_INT(entry_attach(e, &a->r), 0);
	CHECK_INT(pthread_create(th, NULL, park_reader_main, a), 0);
}

/* pthread_join, but a reader that never ends is a failure, not a hang. */
static void
join_or_fail(pthread_t t, const char *what)
{
	struct timespec end = deadline_in(DEADLINE_S);
	if (pthread_timedjoin_np(t, NULL, &end) != 0)
		hung(__FILE__, __LINE__, what);
}

/* Readers parked on e now, under its lock. */
static int
parked_count(struct entry *e)
{
	int n = 0;
	pthread_mutex_lock(&e->lock);
	struct entry_parked *p;
	LIST_FOREACH(p, &e->parked, link)
		n++;
	pthread_mutex_unlock(&e->lock);
	return n;
}

/* Until `n` readers are parked (a hang is a failure). */
static void
wait_parked(struct entry *e, int n)
{
	struct timespec end = deadline_in(DEADLINE_S), now;
	while (parked_count(e) < n) {
		clock_gettime(CLOCK_REALTIME, &now);
		if (now.tv_sec > end.tv_sec)
			hung(__FILE__, __LINE__, "the readers to park");
		sched_yield();
	}
}

/* Every reader parks before each append, so that the writer's thread
 * writes every chunk for every reader but where a reader was handed back:
 * all bytes arrive once and in order, the end is written once with the
 * last call, and a transit entry still frees what the readers passed. */
static void
test_threads_park(int transit)
{
	struct entry *e = entry_new();
	struct park_reader a[N_PARKED];
	pthread_t th[N_PARKED];
	char buf[2039];
	uint64_t total = 0, sum = FNV_INIT, max_held = 0;

	if (transit)
		entry_make_transit(e);
	for (int i = 0; i < N_PARKED; i++) /* reader 0 is never handed back */
		start_park_reader(&a[i], e, i == 0 ? 0 : 3 + i * 4, 0, &th[i]);
	for (int c = 0; c < N_PARK_CHUNKS; c++) {
		wait_parked(e, N_PARKED);
		size_t len = chunk_len(c);
		fill(buf, total, len);
		CHECK_INT(entry_append(e, buf, len), 0);
		sum = fnv(sum, buf, len);
		total += len;
		entry_pump(e);
		struct sample s = sample(e);
		if (s.held > max_held)
			max_held = s.held;
	}
	wait_parked(e, N_PARKED);
	entry_finish(e, ENTRY_COMPLETE);
	for (int i = 0; i < N_PARKED; i++)
		join_or_fail(th[i], "a parked reader to end");

	for (int i = 0; i < N_PARKED; i++) {
		struct park_reader *r = &a[i];
		check(r->bad_bytes == 0, __FILE__, __LINE__, "reader %d: %llu wrong bytes, first at %llu",
		      i, (unsigned long long)r->bad_bytes, (unsigned long long)r->first_bad);
		check(r->total == total && r->sum == sum, __FILE__, __LINE__,
		      "reader %d: %llu bytes of %llu", i, (unsigned long long)r->total,
		      (unsigned long long)total);
		CHECK_INT(r->end, ENTRY_COMPLETE);
		CHECK_INT(r->ends, 1); /* the last call, and only it, said `end` */
		CHECK_INT(r->end_writes, 1);
		CHECK_INT(r->end_at, total);
		/* one call per chunk plus the last: each chunk was appended with
		 * the reader parked and caught up */
		CHECK_INT(r->calls, N_PARK_CHUNKS + 1);
		if (r->every == 0) {
			CHECK_INT(r->handbacks, 0);
			CHECK_INT(r->pumped_bytes, (long)total);
		} else {
			/* the last call has no bytes: never a hand-back */
			CHECK_INT(r->handbacks, N_PARK_CHUNKS / r->every);
			CHECK(r->pumped_bytes < (long)total);
		}
	}
	struct sample s = sample(e);
	CHECK_INT(s.nreaders, 0);
	CHECK(LIST_EMPTY(&e->parked));
	if (transit) {
		/* freed behind the readers as they went: one chunk or two held */
		check(max_held <= 2 * 2039, __FILE__, __LINE__, "held %llu in transit",
		      (unsigned long long)max_held);
		CHECK_INT(s.dropped + s.held, total);
	} else {
		CHECK_INT(s.dropped, 0);
		CHECK_INT(s.held, total);
	}
	entry_unref(&e);
}

/* A reader parked by another thread (entry_park_start, as the fetch does
 * at publish) before any byte: every byte is written for it by the pump,
 * its owner wakes only at the end. entry_park_start parks nothing when the
 * reader has bytes to read or the entry is final. */
static void
test_threads_park_start(void)
{
	struct entry *e = entry_new();
	struct park_reader a, late;
	pthread_t th;
	char buf[1500];
	uint64_t total = 0;

	memset(&a, 0, sizeof a);
	a.e = e;
	a.p.r = &a.r;
	a.p.write = park_write;
	a.p.v = a.v;
	a.parked_first = 1;
	CHECK_INT(entry_attach(e, &a.r), 0);
	CHECK_INT(entry_park_start(e, &a.p), 1);
	CHECK_INT(parked_count(e), 1);
	CHECK_INT(pthread_create(&th, NULL, park_reader_main, &a), 0);
	for (int c = 0; c < 20; c++) {
		fill(buf, total, sizeof buf);
		CHECK_INT(entry_append(e, buf, sizeof buf), 0);
		total += sizeof buf;
		entry_pump(e);
		CHECK_INT(parked_count(e), 1); /* never handed back: still parked */
	}

	/* a reader with bytes to read is not parked */
	memset(&late, 0, sizeof late);
	late.p.r = &late.r;
	late.p.write = park_write;
	late.p.v = late.v;
	CHECK_INT(entry_attach(e, &late.r), 0);
	CHECK_INT(entry_park_start(e, &late.p), 0);
	CHECK_INT(parked_count(e), 1);

	entry_finish(e, ENTRY_COMPLETE);
	join_or_fail(th, "the reader parked by another thread to end");
	CHECK_INT(a.total, total);
	CHECK_INT(a.bad_bytes, 0);
	CHECK_INT(a.pumped_bytes, (long)total); /* all of it by the pump */
	CHECK_INT(a.calls, 21);
	CHECK_INT(a.ends, 1);
	CHECK_INT(a.end_writes, 1);
	CHECK_INT(a.end, ENTRY_COMPLETE);

	/* nor on a final entry, even with nothing left to read */
	enum entry_state st;
	struct iovec v[ENTRY_PARK_IOV];
	while (entry_try_read_iov(e, &late.r, v, ENTRY_PARK_IOV, &st) > 0)
		;
	CHECK_INT(entry_park_start(e, &late.p), 0);
	entry_detach(e, &late.r);
	entry_unref(&e);
}

/* A parked reader is released, not written for, when the entry fails. */
static void
test_threads_park_failed(void)
{
	struct entry *e = entry_new();
	struct park_reader a;
	pthread_t th;
	char buf[100];

	start_park_reader(&a, e, 0, 0, &th);
	wait_parked(e, 1);
	fill(buf, 0, sizeof buf);
	CHECK_INT(entry_append(e, buf, sizeof buf), 0);
	entry_pump(e);
	wait_parked(e, 1);
	fill(buf, sizeof buf, 10);
	CHECK_INT(entry_append(e, buf, 10), 0); /* appended, never pumped */
	entry_finish(e, ENTRY_FAILED);
	join_or_fail(th, "the parked reader to be released");
	CHECK_INT(a.calls, 1);
	CHECK_INT(a.ends, 0);
	CHECK_INT(a.end, ENTRY_FAILED);
	CHECK_INT(a.bad_bytes, 0);
	CHECK_INT(a.total, sizeof buf + 10); /* the owner read the last 10 itself */
	CHECK_INT(a.pumped_bytes, (long)sizeof buf);
	entry_unref(&e);
}

/* An origin sending many small chunks in one read: a hand-out is at most
 * ENTRY_PARK_IOV chunks, and a reader left with more is released to catch
 * up itself, never told `end` before its last bytes (nor left parked
 * behind: in transit, that would hold the fetch waiting for its own pump). */
static void
test_threads_park_many_chunks(int transit)
{
	int n = 3 * ENTRY_PARK_IOV + 5;
	char buf[64];
	pthread_t th;

	for (int finish_at_once = 0; finish_at_once < 2; finish_at_once++) {
		struct entry *e = entry_new();
		struct park_reader a;
		uint64_t total = 0;

		if (transit)
			entry_make_transit(e);
		start_park_reader(&a, e, 0, 0, &th);
		wait_parked(e, 1);
		for (int c = 0; c < n; c++) { /* all in one "read": one pump */
			fill(buf, total, sizeof buf);
			CHECK_INT(entry_append(e, buf, sizeof buf), 0);
			total += sizeof buf;
		}
		if (!finish_at_once) {
			entry_pump(e);
			CHECK_INT(a.calls, 1);
			CHECK_INT(a.pumped_bytes, ENTRY_PARK_IOV * (long)sizeof buf);
			CHECK_INT(a.ends, 0);
			/* released with the rest to read itself, it parks again
			 * once caught up */
			wait_parked(e, 1);
		}
		/* finish at once: the last pump has more than one hand-out */
		entry_finish(e, ENTRY_COMPLETE);
		join_or_fail(th, "the reader to end");
		CHECK_INT(a.calls, finish_at_once ? 1 : 2);
		CHECK_INT(a.ends, finish_at_once ? 0 : 1);
		check(a.bad_bytes == 0 && a.total == total, __FILE__, __LINE__,
		      "%llu bytes of %llu, %llu wrong", (unsigned long long)a.total,
		      (unsigned long long)total, (unsigned long long)a.bad_bytes);
		CHECK_INT(a.end, ENTRY_COMPLETE);
		CHECK_INT(a.end_writes, 1);
		CHECK_INT(a.end_at, total);
		entry_unref(&e);
	}
}

/* The last call (`end`) handed back untaken: the owner writes the rest and
 * the end, once. */
static void
test_threads_park_end_handed_back(void)
{
	struct entry *e = entry_new();
	struct park_reader a;
	pthread_t th;
	char buf[100];

	start_park_reader(&a, e, 0, 1, &th);
	wait_parked(e, 1);
	fill(buf, 0, sizeof buf);
	CHECK_INT(entry_append(e, buf, sizeof buf), 0); /* appended, not pumped */
	entry_finish(e, ENTRY_COMPLETE);
	join_or_fail(th, "the reader to end");
	CHECK_INT(a.calls, 1);
	CHECK_INT(a.ends, 1);
	CHECK_INT(a.handbacks, 1);
	CHECK_INT(a.pumped_bytes, 0);
	CHECK_INT(a.total, sizeof buf);
	CHECK_INT(a.bad_bytes, 0);
	CHECK_INT(a.end_writes, 1);
	CHECK_INT(a.end_at, sizeof buf);
	entry_unref(&e);
}

int
main(void)
{
	test_order();
	test_failed();
	test_late_readers();
	test_transit();
	test_read_iov();
	test_serialise_head();
	test_append_no_readers();
	test_transit_big_chunk();
	test_refs();
	test_threads_stored();
	test_threads_transit();
	test_threads_detach();
	test_threads_last_reader_leaves();
	test_threads_refs();
	test_threads_park(0);
	test_threads_park(1);
	test_threads_park_failed();
	test_threads_park_start();
	test_threads_park_many_chunks(0);
	test_threads_park_many_chunks(1);
	test_threads_park_end_handed_back();
	return check_summary("entry");
}

/*
 * fuzz_request.c — a client's bytes, as a worker reads and uses them, read
 * twice: whole, and cut into reads of a few bytes.
 *
 * Input: byte 0 picks max_url and max_request_header (small ones too, so
 * that 414 and 431 are reached), byte 1 the size of the reads in the
 * second pass (1..32 bytes: `evbuffer_read` is wrapped at link time,
 * -Wl,--wrap=evbuffer_read, to cap each read), the rest is what a client
 * sent on one connection. The connection's other end is shut for writing
 * after it (reads find the end; a 100 Continue still goes out). The
 * requests are read the way exchange.c's serve_sessions reads them:
 * request_read_head, then what a worker derives from a head (the target as
 * a URL and its cache key, policy_request, the Range against a few body
 * lengths, the hop-by-hop set, the header list sent upstream), then the
 * body to its end, then the next pipelined request (none after CONNECT,
 * whose bytes a tunnel would carry).
 *
 * Checked for any input: a head that was read has a method, a target no
 * longer than max_url, and field names and values with no CR or LF; a cache
 * key normalises to itself; a range lies inside the body; no line of the
 * upstream header list has CR or LF (no header injection); an error carries
 * a status corral answers with (or none: just close); and the two passes
 * read the same requests (method, target, version, framing, every field,
 * the body) up to the first error of either, and fail alike. The last
 * check found chunked trailers being added to the headers when they came
 * in the head's read, and 431 depending on how a field's name was cut
 * (a review's harness, 2026-12-02).
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <event2/buffer.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "corral/config.h"
#include "corral/http.h"
#include "corral/policy.h"
#include "corral/range.h"
#include "corral/request.h"
#include "corral/session.h"
#include "corral/upstream.h"
#include "fuzz.h"

/* the most one evbuffer_read takes (SIZE_MAX: as asked) */
static size_t read_cap = (size_t)-1;

int __real_evbuffer_read(struct evbuffer *b, evutil_socket_t fd, int howmuch);
int __wrap_evbuffer_read(struct evbuffer *b, evutil_socket_t fd, int howmuch);
int __wrap_evbuffer_read(struct evbuffer *b, evutil_socket_t fd, int howmuch)
{
	if (howmuch < 0 || (size_t)howmuch > read_cap)
		howmuch = (int)read_cap;
	return __real_evbuffer_read(b, fd, howmuch);
}

/* What a pass read, as text: one line per request, '|' between items. */
struct transcript {
	char *p;
	size_t len, cap;
};

static void put_raw(struct transcript *t, const char *s, size_t n)
{
	if (t->len + n + 2 > t->cap) {
		t->cap = (t->len + n + 2) * 2;
		t->p = realloc(t->p, t->cap);
		FUZZ_CHECK(t->p != NULL);
	}
	memcpy(t->p + t->len, s, n);
	t->len += n;
	t->p[t->len] = '\0';
}

static void put(struct transcript *t, const char *s, size_t n)
{
	put_raw(t, s, n);
	put_raw(t, "|", 1);
}

static void puts_(struct transcript *t, const char *s)
{
	put(t, s, strlen(s));
}

static int clean(const char *s)
{
	return strpbrk(s, "\r\n") == NULL;
}

static void check_key(const char *target)
{
	struct url u, again;
	char key[16384], key2[16384];
	if (url_parse(target, &u) < 0)
		return;
	int n = url_normalise(&u, key, sizeof key);
	if (n < 0)
		return;
	FUZZ_CHECK((size_t)n == strlen(key));
	FUZZ_CHECK(url_parse(key, &again) == 0);
	FUZZ_CHECK(url_normalise(&again, key2, sizeof key2) == n);
	FUZZ_CHECK(strcmp(key, key2) == 0);
}

static void check_range(const char *value)
{
	static const uint64_t lengths[] = { 0, 1, 100, 1ull << 40, UINT64_MAX };
	for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
		uint64_t first = 0, last = 0;
		if (range_parse(value, lengths[i], &first, &last) == RANGE_PART)
			FUZZ_CHECK(first <= last && last < lengths[i]);
	}
}

static void check_upstream_headers(const struct request *r, int for_cache)
{
	static const enum forwarded_for modes[] = { FORWARDED_FOR_ON, FORWARDED_FOR_TRANSPARENT };
	struct upstream_forwarding fw = { "1.1 corral", modes[for_cache], "192.0.2.1" };
	struct curl_slist *list = NULL;
	if (upstream_request_headers(r->method, &r->headers, r->has_body, &fw, for_cache,
	                             &list) < 0)
		return;
	for (const struct curl_slist *l = list; l; l = l->next)
		FUZZ_CHECK(clean(l->data));
	curl_slist_free_all(list);
}

/* One request read as a worker reads it, noted in t. Returns whether the
 * connection would go on to a next request. */
static int one_request(struct session *s, const struct config *cfg, struct transcript *t)
{
	struct request r;
	char note[96];
	request_init(&r, s, cfg);
	enum request_read_result rr = request_read_head(&r);
	put_raw(t, "\n", 1);
	int more = 0;
	if (rr == REQUEST_ERROR) {
		int st = r.error_status;
		FUZZ_CHECK(st == 0 || st == 400 || st == 408 || st == 413 || st == 414 ||
		           st == 431 || st == 500 || st == 501);
		puts_(t, "ERR");
	} else if (rr == REQUEST_CLOSED) {
		puts_(t, "closed");
	} else {
		FUZZ_CHECK(r.method[0] != '\0');
		FUZZ_CHECK(r.url != NULL && strlen(r.url) <= cfg->max_url);
		puts_(t, r.method);
		puts_(t, r.url);
		snprintf(note, sizeof note, "%d.%d ka=%d cl=%lld ch=%d", r.http_major, r.http_minor,
		         r.keep_alive, (long long)r.content_length, r.chunked);
		puts_(t, note);
		for (int i = 0; i < r.headers.n; i++) {
			FUZZ_CHECK(clean(r.headers.v[i].name) && clean(r.headers.v[i].value));
			puts_(t, r.headers.v[i].name);
			puts_(t, r.headers.v[i].value);
		}
		check_key(r.url);
		struct policy_want want;
		policy_request(r.method, &r.headers, &want);
		const char *range = headers_get(&r.headers, "Range");
		if (range)
			check_range(range);
		struct http_hop hop;
		http_hop_init(&hop, &r.headers);
		check_upstream_headers(&r, 0);
		check_upstream_headers(&r, 1);
		char buf[4096];
		ssize_t n;
		while ((n = request_read_body(&r, buf, sizeof buf)) > 0)
			for (ssize_t i = 0; i < n; i++) { /* in hex: no '\n' or '|' */
				char hex[3];
				snprintf(hex, sizeof hex, "%02x", (unsigned char)buf[i]);
				put_raw(t, hex, 2);
			}
		/* a bad body already buffered fails the head's read, arriving
		 * later the body's: both fail the request */
		puts_(t, n < 0 ? "ERR" : "end");
		more = n == 0 && r.keep_alive && r.message_complete &&
		       strcmp(r.method, "CONNECT") != 0;
	}
	request_free(&r);
	return more;
}

static void read_all(const uint8_t *data, size_t size, const struct config *cfg,
                     struct transcript *t)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		abort();
	if (size > 0 && write(sv[1], data, size) != (ssize_t)size)
		abort();
	shutdown(sv[1], SHUT_WR);
	struct sockaddr_in peer = { .sin_family = AF_INET };
	struct session *s = session_new(sv[0], (struct sockaddr *)&peer, sizeof peer);
	FUZZ_CHECK(s != NULL);
	for (int i = 0; i < 16 && one_request(s, cfg, t); i++)
		;
	session_close(s);
	close(sv[1]);
}

/* The transcripts up to the first request either pass failed. */
static int same_until_error(const struct transcript *a, const struct transcript *b)
{
	const char *x = a->p ? a->p : "", *y = b->p ? b->p : "";
	const char *xend = x + a->len, *yend = y + b->len;
	for (;;) {
		const char *xe = x < xend ? memchr(x + 1, '\n', (size_t)(xend - x - 1)) : NULL;
		const char *ye = y < yend ? memchr(y + 1, '\n', (size_t)(yend - y - 1)) : NULL;
		size_t xl = (size_t)((xe ? xe : xend) - x), yl = (size_t)((ye ? ye : yend) - y);
		int xerr = memmem(x, xl, "ERR|", 4) != NULL, yerr = memmem(y, yl, "ERR|", 4) != NULL;
		if (xerr || yerr)
			return xerr == yerr;
		if (xl != yl || memcmp(x, y, xl) != 0)
			return 0;
		if (!xe || !ye)
			return (xe == NULL) == (ye == NULL);
		x = xe;
		y = ye;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config base;
	static int ready;
	if (!ready) {
		signal(SIGPIPE, SIG_IGN);
		config_defaults(&base);
		ready = 1;
	}
	if (size < 2)
		return 0;
	static const size_t urls[] = { 8192, 16, 40, 200 }, heads[] = { 65536, 40, 100, 400 };
	struct config cfg = base;
	cfg.max_url = urls[data[0] & 3];
	cfg.max_request_header = heads[(data[0] >> 2) & 3];
	size_t cap = data[1] % 32 + 1;
	struct transcript whole = { 0 }, pieces = { 0 };
	read_cap = (size_t)-1;
	read_all(data + 2, size - 2, &cfg, &whole);
	read_cap = cap;
	read_all(data + 2, size - 2, &cfg, &pieces);
	read_cap = (size_t)-1;
	if (!same_until_error(&whole, &pieces)) {
		fprintf(stderr, "reads of %zu bytes, max_url %zu, max_request_header %zu\n"
		        "whole:  %s\npieces: %s\n", cap, cfg.max_url, cfg.max_request_header,
		        whole.p ? whole.p : "", pieces.p ? pieces.p : "");
		FUZZ_CHECK(!"the requests read depend on how the bytes were cut");
	}
	free(whole.p);
	free(pieces.p);
	return 0;
}

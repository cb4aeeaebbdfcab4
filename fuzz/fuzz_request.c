/*
 * fuzz_request.c — a client's bytes, as a worker reads and uses them.
 *
 * The input is what a client sent on one connection: it goes into a
 * session's buffer, the connection's other end is closed (so a read finds
 * the end at once, and the 100 Continue write fails as it would against a
 * client that left), and the requests in it are read the way
 * exchange.c's serve_sessions reads them: request_read_head, then what the
 * worker derives from a head (the target as a URL and its cache key,
 * policy_request, the Range against a few body lengths, the hop-by-hop
 * set, the header list sent upstream), then the body to its end, then the
 * next pipelined request.
 *
 * Checked for any input: a head that was read has a method, a target no
 * longer than max_url, and field names and values with no CR, LF or NUL;
 * a cache key normalises to itself; a range lies inside the body; no line
 * of the upstream header list has CR or LF (no header injection); and an
 * error carries a status corral answers with (or none: just close).
 */
#include <curl/curl.h>
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

/* One request read as a worker reads it. Returns whether the connection
 * would go on to a next request. */
static int one_request(struct session *s, const struct config *cfg)
{
	struct request r;
	request_init(&r, s, cfg);
	enum request_read_result rr = request_read_head(&r);
	int more = 0;
	if (rr == REQUEST_ERROR) {
		int st = r.error_status;
		FUZZ_CHECK(st == 0 || st == 400 || st == 408 || st == 413 || st == 414 ||
		           st == 431 || st == 500 || st == 501);
	} else if (rr == REQUEST_OK) {
		FUZZ_CHECK(r.method[0] != '\0');
		FUZZ_CHECK(r.url != NULL && strlen(r.url) <= cfg->max_url);
		for (int i = 0; i < r.headers.n; i++)
			FUZZ_CHECK(clean(r.headers.v[i].name) && clean(r.headers.v[i].value));
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
			;
		more = n == 0 && r.keep_alive && r.message_complete;
	}
	request_free(&r);
	return more;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config cfg;
	static int ready;
	if (!ready) {
		signal(SIGPIPE, SIG_IGN);
		config_defaults(&cfg);
		ready = 1;
	}
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		abort();
	close(sv[1]);
	struct sockaddr_in peer = { .sin_family = AF_INET };
	struct session *s = session_new(sv[0], (struct sockaddr *)&peer, sizeof peer);
	FUZZ_CHECK(s != NULL);
	evbuffer_add(s->in, data, size);
	for (int i = 0; i < 16 && one_request(s, &cfg); i++)
		;
	session_close(s);
	return 0;
}

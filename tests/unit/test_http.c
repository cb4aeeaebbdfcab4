/*
 * test_http.c — unit tests for http.c (header lists, list tokens, hop-by-hop
 * rules, reason phrases, absolute and authority-form URLs, the normalised URL)
 * and for the request reader (request.c) fed through a socketpair: heads,
 * bodies, pipelining, CONNECT, Expect: 100-continue, the limits (414, 431),
 * malformed and ambiguous framing (400), a client gone mid-head and the
 * header timeout (408).
 *
 * Prints one line per failed check and then "http: N passed, M failed";
 * exits non-zero when anything failed.
 */
#include "corral/config.h"
#include "corral/http.h"
#include "corral/request.h"
#include "corral/session.h"

#include <arpa/inet.h>
#include <linux/sockios.h>
#include <pthread.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <time.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"

/* ---- header lists ---------------------------------------------------------- */

static int
add(struct http_headers *h, const char *name, const char *value)
{
	return headers_add(h, name, strlen(name), value, strlen(value));
}

static void
test_headers(void)
{
	struct http_headers h;
	char name[32], value[32];

	headers_init(&h);
	CHECK_INT(h.n, 0);
	CHECK_NULL(headers_get(&h, "Host"));

	CHECK_INT(add(&h, "Host", "example.com"), 0);
	CHECK_INT(add(&h, "Accept", " \t text/html \t "), 0);
	CHECK_INT(add(&h, "X-Empty", ""), 0);
	CHECK_INT(add(&h, "X-Blank", "  \t "), 0);
	CHECK_INT(add(&h, "Cookie", "a=1"), 0);
	CHECK_INT(add(&h, "cookie", "b=2"), 0);
	CHECK_INT(add(&h, "X-Inner", "a  b\tc"), 0);
	CHECK_INT(h.n, 7);

	/* names kept as written, values trimmed of OWS at both ends only */
	CHECK_STR(h.v[0].name, "Host");
	CHECK_STR(h.v[1].value, "text/html");
	CHECK_STR(h.v[2].value, "");
	CHECK_STR(h.v[3].value, "");
	CHECK_STR(h.v[5].name, "cookie");
	CHECK_STR(h.v[6].value, "a  b\tc");

	/* lookup is case-insensitive and gives the first of repeats */
	CHECK_STR(headers_get(&h, "host"), "example.com");
	CHECK_STR(headers_get(&h, "HOST"), "example.com");
	CHECK_STR(headers_get(&h, "COOKIE"), "a=1");
	CHECK_STR(headers_get(&h, "x-empty"), "");
	CHECK_NULL(headers_get(&h, "Hos"));
	CHECK_NULL(headers_get(&h, "Host "));
	CHECK_NULL(headers_get(&h, "X-Missing"));

	/* lengths, not NULs, bound name and value */
	CHECK_INT(headers_add(&h, "X-Cut: junk", 5, "value; junk", 5), 0);
	CHECK_STR(h.v[h.n - 1].name, "X-Cut");
	CHECK_STR(h.v[h.n - 1].value, "value");

	headers_free(&h);
	CHECK_INT(h.n, 0);
	CHECK(h.v == NULL);
	CHECK_NULL(headers_get(&h, "Host"));

	/* growth keeps order */
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof name, "X-H%d", i);
		snprintf(value, sizeof value, "%d", i);
		CHECK_INT(add(&h, name, value), 0);
	}
	CHECK_INT(h.n, 100);
	int in_order = 1;
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof name, "X-H%d", i);
		snprintf(value, sizeof value, "%d", i);
		if (strcmp(h.v[i].name, name) != 0 || strcmp(h.v[i].value, value) != 0)
			in_order = 0;
	}
	CHECK(in_order);
	CHECK_STR(headers_get(&h, "x-h99"), "99");
	headers_free(&h);
	/* free on an empty list, and twice, is harmless */
	headers_free(&h);
	CHECK_INT(h.n, 0);
}

static void
test_list_next(void)
{
	const char *p, *tok;
	size_t n;

	CHECK_NULL(http_list_next("", &tok, &n));
	CHECK_NULL(http_list_next(" ,\t, ", &tok, &n));
	p = http_list_next("Accept-Encoding", &tok, &n);
	CHECK(p != NULL && n == 15 && strncmp(tok, "Accept-Encoding", n) == 0);
	CHECK_NULL(http_list_next(p, &tok, &n));
	/* separators: commas, spaces, tabs, empty items */
	p = http_list_next(" a ,, b\t,c,", &tok, &n);
	CHECK(p != NULL && n == 1 && *tok == 'a');
	p = http_list_next(p, &tok, &n);
	CHECK(p != NULL && n == 1 && *tok == 'b');
	p = http_list_next(p, &tok, &n);
	CHECK(p != NULL && n == 1 && *tok == 'c');
	CHECK_NULL(http_list_next(p, &tok, &n));
}

static void
test_join(void)
{
	struct http_headers h;
	char *j;

	headers_init(&h);
	CHECK_NULL(headers_join(&h, "Vary"));
	CHECK_INT(add(&h, "Vary", "Accept-Encoding"), 0);
	CHECK_INT(add(&h, "Content-Type", "text/plain"), 0);
	j = headers_join(&h, "vary");
	CHECK_STR(j, "Accept-Encoding");
	free(j);
	CHECK_INT(add(&h, "VARY", "Accept-Language, Cookie"), 0);
	j = headers_join(&h, "Vary");
	CHECK_STR(j, "Accept-Encoding, Accept-Language, Cookie");
	free(j);
	CHECK_NULL(headers_join(&h, "Age"));
	headers_free(&h);
}

static void
test_list_has(void)
{
	CHECK(http_list_has("close", "close"));
	CHECK(http_list_has("Close", "close"));
	CHECK(http_list_has("keep-alive, Upgrade", "upgrade"));
	CHECK(http_list_has("a,b,c", "b"));
	CHECK(http_list_has(" a , b , c ", "c"));
	CHECK(http_list_has("a,\tb\t,c", "b"));
	CHECK(http_list_has(",,x,,", "x"));
	CHECK(!http_list_has("", "close"));
	CHECK(!http_list_has("closed", "close"));
	CHECK(!http_list_has("close", "closed"));
	CHECK(!http_list_has("keep-alive", "alive"));
	CHECK(!http_list_has("no-cache=\"x\"", "no-cache"));
	CHECK(!http_list_has("a b", "a"));

	/* over every line of a header */
	struct http_headers h;
	headers_init(&h);
	CHECK(!headers_list_has(&h, "Transfer-Encoding", "chunked"));
	headers_add(&h, "Transfer-Encoding", 17, "gzip", 4);
	headers_add(&h, "Vary", 4, "chunked", 7);
	CHECK(!headers_list_has(&h, "Transfer-Encoding", "chunked"));
	headers_add(&h, "transfer-encoding", 17, "x, CHUNKED", 10);
	CHECK(headers_list_has(&h, "Transfer-Encoding", "chunked"));
	CHECK(!headers_list_has(&h, "Transfer-Encoding", "x, chunked"));
	headers_free(&h);
	CHECK(http_list_has("no-store, no-cache", "no-cache"));
	CHECK(http_list_has("*", "*"));
}

/* http_hop_init + http_hop_has, as the filters use them */
static int is_hop(const struct http_headers *h, const char *name)
{
	struct http_hop hop;
	if (http_hop_init(&hop, h) < 0)
		return -1;
	return http_hop_has(&hop, name);
}

static void
test_hop_by_hop(void)
{
	static const char *const fixed[] = {
		"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization",
		"Proxy-Authenticate", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
		"connection", "KEEP-ALIVE", "te", "transfer-encoding", "proxy-authorization",
	};
	static const char *const end_to_end[] = {
		"Host", "Content-Length", "Content-Type", "Trailers", "Via", "Authorization",
		"Cache-Control", "X-Foo", "Cookie", "Connections", "Proxy",
	};
	struct http_headers h;

	headers_init(&h);
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
		check(is_hop(&h, fixed[i]), __FILE__, __LINE__,
		      "%s is hop-by-hop", fixed[i]);
	for (size_t i = 0; i < sizeof end_to_end / sizeof end_to_end[0]; i++)
		check(!is_hop(&h, end_to_end[i]), __FILE__, __LINE__,
		      "%s is end-to-end without Connection", end_to_end[i]);

	/* headers named by Connection, in any case, in any of its repeats */
	add(&h, "Host", "example.com");
	add(&h, "Connection", "close, X-Foo");
	add(&h, "X-Foo", "1");
	add(&h, "connection", " x-bar ,  Cookie");
	CHECK(is_hop(&h, "X-Foo"));
	CHECK(is_hop(&h, "x-foo"));
	CHECK(is_hop(&h, "X-Bar"));
	CHECK(is_hop(&h, "cookie"));
	CHECK(!is_hop(&h, "Host"));
	CHECK(!is_hop(&h, "X-Fo"));
	CHECK(!is_hop(&h, "X-Foo-Bar"));
	CHECK(!is_hop(&h, "Content-Length"));
	/* a token named in another header does not count */
	headers_free(&h);
	add(&h, "X-Connection", "X-Foo");
	add(&h, "Vary", "X-Foo");
	CHECK(!is_hop(&h, "X-Foo"));
	headers_free(&h);

	/* at most HTTP_CONNECTION_OPTIONS_MAX options, over any number of lines */
	struct http_hop hop;
	for (int i = 0; i < HTTP_CONNECTION_OPTIONS_MAX; i++) {
		char name[16];
		snprintf(name, sizeof name, "x-%d", i);
		add(&h, "Connection", name);
	}
	CHECK_INT(http_hop_init(&hop, &h), 0);
	CHECK(http_hop_has(&hop, "X-0") && http_hop_has(&hop, "x-31") && !http_hop_has(&hop, "x-32"));
	add(&h, "Connection", "x-32");
	CHECK_INT(http_hop_init(&hop, &h), -1);
	headers_free(&h);
	add(&h, "Connection", "a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q, r, s, t, u, v, "
	    "w, x, y, z, aa, bb, cc, dd, ee, ff, gg");
	CHECK_INT(http_hop_init(&hop, &h), -1);
	headers_free(&h);
}

static void
test_reason(void)
{
	CHECK_STR(http_reason(100), "Continue");
	CHECK_STR(http_reason(200), "OK");
	CHECK_STR(http_reason(204), "No Content");
	CHECK_STR(http_reason(304), "Not Modified");
	CHECK_STR(http_reason(400), "Bad Request");
	CHECK_STR(http_reason(403), "Forbidden");
	CHECK_STR(http_reason(404), "Not Found");
	CHECK_STR(http_reason(408), "Request Timeout");
	CHECK_STR(http_reason(413), "Content Too Large");
	CHECK_STR(http_reason(414), "URI Too Long");
	CHECK_STR(http_reason(431), "Request Header Fields Too Large");
	CHECK_STR(http_reason(500), "Internal Server Error");
	CHECK_STR(http_reason(502), "Bad Gateway");
	CHECK_STR(http_reason(503), "Service Unavailable");
	CHECK_STR(http_reason(504), "Gateway Timeout");
	/* every status corral answers by itself has a phrase */
	static const int own[] = { 200, 400, 403, 408, 411, 413, 414, 431, 500, 501, 502,
	                           503, 504 };
	for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
		check(http_reason(own[i])[0] != '\0', __FILE__, __LINE__,
		      "no reason phrase for %d", own[i]);
	CHECK_STR(http_reason(0), "");
	CHECK_STR(http_reason(-1), "");
	CHECK_STR(http_reason(299), "");
	CHECK_STR(http_reason(999), "");
}

/* ---- URLs --------------------------------------------------------------------- */

struct url_case {
	const char *in;
	const char *scheme, *host;
	int port, port_given;
	const char *path;
	const char *normal;   /* url_normalise */
};

static const struct url_case good_urls[] = {
	{ "http://example.com/", "http", "example.com", 80, 0, "/", "http://example.com/" },
	{ "http://example.com", "http", "example.com", 80, 0, "", "http://example.com/" },
	{ "https://example.com/a/b?c=d&e", "https", "example.com", 443, 0, "/a/b?c=d&e",
	  "https://example.com/a/b?c=d&e" },
	/* scheme and host case folded, path case kept */
	{ "HTTP://Example.COM/Path/To?Q=Upper", "http", "example.com", 80, 0, "/Path/To?Q=Upper",
	  "http://example.com/Path/To?Q=Upper" },
	{ "HttpS://WWW.EXAMPLE.ORG", "https", "www.example.org", 443, 0, "",
	  "https://www.example.org/" },
	/* ports: explicit, default given explicitly (dropped when normalised), other
	 * scheme's default, leading zeros, the extremes, empty */
	{ "http://example.com:8080/x", "http", "example.com", 8080, 1, "/x",
	  "http://example.com:8080/x" },
	{ "http://example.com:80/x", "http", "example.com", 80, 1, "/x", "http://example.com/x" },
	{ "https://example.com:443/", "https", "example.com", 443, 1, "/", "https://example.com/" },
	{ "https://example.com:80/", "https", "example.com", 80, 1, "/", "https://example.com:80/" },
	{ "http://example.com:443/", "http", "example.com", 443, 1, "/", "http://example.com:443/" },
	{ "http://example.com:0080/", "http", "example.com", 80, 1, "/", "http://example.com/" },
	{ "http://example.com:1/", "http", "example.com", 1, 1, "/", "http://example.com:1/" },
	{ "http://example.com:65535/", "http", "example.com", 65535, 1, "/",
	  "http://example.com:65535/" },
	{ "http://example.com:/x", "http", "example.com", 80, 0, "/x", "http://example.com/x" },
	/* query or fragment straight after the authority */
	{ "http://example.com?q=1", "http", "example.com", 80, 0, "?q=1",
	  "http://example.com/?q=1" },
	{ "http://example.com:81?q", "http", "example.com", 81, 1, "?q",
	  "http://example.com:81/?q" },
	/* a fragment stays in the path as sent but is not part of the cache key */
	{ "http://example.com/p?q#frag", "http", "example.com", 80, 0, "/p?q#frag",
	  "http://example.com/p?q" },
	{ "http://example.com#top", "http", "example.com", 80, 0, "#top",
	  "http://example.com/" },
	/* IPv4 and IPv6 literals; IPv6 stored without brackets, lower case */
	{ "http://127.0.0.1:8080/", "http", "127.0.0.1", 8080, 1, "/", "http://127.0.0.1:8080/" },
	{ "http://[::1]/", "http", "::1", 80, 0, "/", "http://[::1]/" },
	{ "http://[::1]:8080/x?y", "http", "::1", 8080, 1, "/x?y", "http://[::1]:8080/x?y" },
	{ "https://[2001:DB8::A]:443/", "https", "2001:db8::a", 443, 1, "/",
	  "https://[2001:db8::a]/" },
	{ "http://[::ffff:192.0.2.1]", "http", "::ffff:192.0.2.1", 80, 0, "",
	  "http://[::ffff:192.0.2.1]/" },
	/* host names: digits, hyphens, underscores, a trailing dot */
	{ "http://a-b_c.d9.example./", "http", "a-b_c.d9.example.", 80, 0, "/",
	  "http://a-b_c.d9.example./" },
	/* '@' after the authority is part of the path, not userinfo */
	{ "http://example.com/a@b", "http", "example.com", 80, 0, "/a@b",
	  "http://example.com/a@b" },
	{ "http://example.com/?u=x@y:z", "http", "example.com", 80, 0, "/?u=x@y:z",
	  "http://example.com/?u=x@y:z" },
};

static const char *const bad_urls[] = {
	"", "/", "/path", "*", "example.com/", "example.com:80",
	"ftp://example.com/", "ws://example.com/", "file:///etc/passwd", "httpx://h/",
	"http:/example.com/", "http:example.com", "http//example.com/", " http://example.com/",
	"http://", "http:///", "http:///path", "http://?q", "http://:80/",
	/* userinfo is refused */
	"http://user@example.com/", "http://user:pass@example.com/", "http://@example.com/",
	"http://a@b@example.com/",
	/* bad ports */
	"http://example.com:0/", "http://example.com:65536/", "http://example.com:99999/",
	"http://example.com:123456789012345678901234567890/", "http://example.com:8a/",
	"http://example.com:-1/", "http://example.com:+80/", "http://example.com: 80/",
	"http://example.com:80:80/",
	/* bad hosts */
	"http://exa mple.com/", "http://exa\tmple.com/", "http://ex!ample.com/",
	"http://example.com\\/", "http://<script>/", "http://a:b:c/",
	/* bad IPv6 literals */
	"http://[::1/", "http://[::1]x/", "http://[::1]a:80/", "http://[]/", "http://[]:80/",
	"http://::1/", "http://[::1]]/",
};

static void
test_url_parse(void)
{
	struct url u;
	char out[512];

	for (size_t i = 0; i < sizeof good_urls / sizeof good_urls[0]; i++) {
		const struct url_case *t = &good_urls[i];
		memset(&u, 0x5a, sizeof u);
		if (!check(url_parse(t->in, &u) == 0, __FILE__, __LINE__,
		           "url_parse('%s') refused", t->in))
			continue;
		check(strcmp(u.scheme, t->scheme) == 0, __FILE__, __LINE__,
		      "'%s': scheme '%s' != '%s'", t->in, u.scheme, t->scheme);
		check(strcmp(u.host, t->host) == 0, __FILE__, __LINE__,
		      "'%s': host '%s' != '%s'", t->in, u.host, t->host);
		check(u.port == t->port, __FILE__, __LINE__, "'%s': port %d != %d",
		      t->in, u.port, t->port);
		check(u.port_given == t->port_given, __FILE__, __LINE__,
		      "'%s': port_given %d != %d", t->in, u.port_given, t->port_given);
		check(strcmp(u.path, t->path) == 0, __FILE__, __LINE__,
		      "'%s': path '%s' != '%s'", t->in, u.path, t->path);
		check(u.path >= t->in && u.path <= t->in + strlen(t->in), __FILE__, __LINE__,
		      "'%s': path does not point into the string", t->in);
		int n = url_normalise(&u, out, sizeof out);
		check(n == (int)strlen(t->normal) && strcmp(out, t->normal) == 0, __FILE__,
		      __LINE__, "url_normalise('%s') = %d '%s', want '%s'", t->in, n,
		      n < 0 ? "" : out, t->normal);
	}
	for (size_t i = 0; i < sizeof bad_urls / sizeof bad_urls[0]; i++)
		check(url_parse(bad_urls[i], &u) < 0, __FILE__, __LINE__,
		      "url_parse('%s') accepted (host '%s')", bad_urls[i], u.host);

	/* the host buffer's bound: 255 characters fit, 256 do not */
	char big[400], host[300];
	memset(host, 'a', 255);
	host[255] = '\0';
	snprintf(big, sizeof big, "http://%s/x", host);
	if (CHECK(url_parse(big, &u) == 0)) {
		CHECK_INT(strlen(u.host), 255);
		CHECK_STR(u.path, "/x");
	}
	memset(host, 'a', 256);
	host[256] = '\0';
	snprintf(big, sizeof big, "http://%s/x", host);
	CHECK(url_parse(big, &u) < 0);
	snprintf(big, sizeof big, "http://[%.*s]/x", 256, host);
	CHECK(url_parse(big, &u) < 0);
}

static void
test_url_normalise_bounds(void)
{
	struct url u;
	char out[64];
	const char *in = "http://example.com:8080/abc";
	const char *want = "http://example.com:8080/abc";
	size_t len = strlen(want);

	if (!CHECK(url_parse(in, &u) == 0))
		return;
	/* exactly enough room (with the NUL) and one byte short */
	CHECK_INT(url_normalise(&u, out, len + 1), (int)len);
	CHECK_STR(out, want);
	CHECK_INT(url_normalise(&u, out, len), -1);
	CHECK_INT(url_normalise(&u, out, 1), -1);
	/* "?q" becomes "/?q": the room counts the added slash */
	if (CHECK(url_parse("http://h?q", &u) == 0)) {
		CHECK_INT(url_normalise(&u, out, sizeof "http://h/?q"), (int)strlen("http://h/?q"));
		CHECK_STR(out, "http://h/?q");
		CHECK_INT(url_normalise(&u, out, strlen("http://h/?q")), -1);
	}
}

static void
test_url_authority(void)
{
	char host[256];
	int port;

	CHECK_INT(url_parse_authority("example.com:443", host, sizeof host, &port), 0);
	CHECK_STR(host, "example.com");
	CHECK_INT(port, 443);
	CHECK_INT(url_parse_authority("Example.COM:8443", host, sizeof host, &port), 0);
	CHECK_STR(host, "example.com");
	CHECK_INT(port, 8443);
	CHECK_INT(url_parse_authority("[::1]:443", host, sizeof host, &port), 0);
	CHECK_STR(host, "::1");
	CHECK_INT(port, 443);
	CHECK_INT(url_parse_authority("[2001:DB8::1]:22", host, sizeof host, &port), 0);
	CHECK_STR(host, "2001:db8::1");
	CHECK_INT(port, 22);
	CHECK_INT(url_parse_authority("192.0.2.1:65535", host, sizeof host, &port), 0);
	CHECK_STR(host, "192.0.2.1");
	CHECK_INT(port, 65535);

	static const char *const bad[] = {
		"", "example.com", "example.com:", ":443", "example.com:0",
		"example.com:65536", "example.com:https", "user@example.com:443",
		"[::1]", "[::1]:", "::1:443", "[::1:443", "example.com:443/",
		"http://example.com:443", "exa mple.com:443",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		check(url_parse_authority(bad[i], host, sizeof host, &port) < 0, __FILE__, __LINE__,
		      "url_parse_authority('%s') accepted", bad[i]);

	/* the caller's buffer bounds the host */
	char small[8];
	CHECK_INT(url_parse_authority("abcdefg:1", small, sizeof small, &port), 0);
	CHECK_STR(small, "abcdefg");
	CHECK(url_parse_authority("abcdefgh:1", small, sizeof small, &port) < 0);
}

/* ---- the request reader ------------------------------------------------------- */

static struct config cfg;

struct conn {
	struct session *s;
	int peer;           /* the client's end */
};

static int
conn_open(struct conn *c)
{
	int sv[2];
	struct sockaddr_in sin;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
		perror("socketpair");
		exit(2);
	}
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->s = session_new(sv[0], (struct sockaddr *)&sin, sizeof sin);
	c->peer = sv[1];
	return c->s != NULL;
}

static void
conn_send(struct conn *c, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(c->peer, data, len);
		if (n <= 0) {
			perror("write");
			exit(2);
		}
		data += n;
		len -= (size_t)n;
	}
}

static void
conn_sends(struct conn *c, const char *data)
{
	conn_send(c, data, strlen(data));
}

static void
conn_close(struct conn *c)
{
	session_close(c->s);
	close(c->peer);
}

/* Read one request head from `data` (the peer's end closed after it when
 * `eof`); the request is left initialised for the caller to inspect and free. */
static enum request_read_result
read_one(struct conn *c, struct request *r, const char *data, int eof)
{
	if (data)
		conn_sends(c, data);
	if (eof)
		shutdown(c->peer, SHUT_WR);
	request_init(r, c->s, &cfg);
	return request_read_head(r);
}

static size_t
read_body(struct request *r, char *out, size_t cap)
{
	size_t got = 0;
	for (;;) {
		ssize_t n = request_read_body(r, out + got, cap - 1 - got);
		if (n <= 0) {
			check(n == 0, __FILE__, __LINE__, "request_read_body: %zd", n);
			break;
		}
		got += (size_t)n;
		if (got == cap - 1)
			break;
	}
	out[got] = '\0';
	return got;
}

static void
test_request_simple(void)
{
	struct conn c;
	struct request r;

	if (!CHECK(conn_open(&c)))
		return;
	CHECK_INT(read_one(&c, &r, "GET http://example.com/a?b HTTP/1.1\r\n"
	                   "Host: example.com\r\n"
	                   "User-Agent:   curl/8  \r\n"
	                   "X-Empty:\r\n"
	                   "X-Next: 1\r\n"
	                   "X-Repeat: a\r\n"
	                   "x-repeat: b\r\n"
	                   "\r\n", 0), REQUEST_OK);
	CHECK_STR(r.method, "GET");
	CHECK_STR(r.url, "http://example.com/a?b");
	CHECK_INT(r.url_len, strlen("http://example.com/a?b"));
	CHECK_INT(r.http_major, 1);
	CHECK_INT(r.http_minor, 1);
	CHECK_INT(r.keep_alive, 1);
	CHECK_INT(r.content_length, -1);
	CHECK_INT(r.has_body, 0);
	CHECK_INT(r.chunked, 0);
	CHECK_INT(r.expect_continue, 0);
	CHECK_INT(r.error_status, 0);
	CHECK_INT(r.headers.n, 6);
	if (r.headers.n == 6) {
		CHECK_STR(r.headers.v[0].name, "Host");
		CHECK_STR(r.headers.v[1].name, "User-Agent");
		CHECK_STR(r.headers.v[1].value, "curl/8");
		CHECK_STR(r.headers.v[2].name, "X-Empty");
		CHECK_STR(r.headers.v[2].value, "");
		CHECK_STR(r.headers.v[3].name, "X-Next");
		CHECK_STR(r.headers.v[3].value, "1");
		CHECK_STR(r.headers.v[5].name, "x-repeat");
		CHECK_STR(r.headers.v[5].value, "b");
	} else {
		for (int i = 0; i < r.headers.n; i++)
			printf("  header %d: '%s': '%s'\n", i, r.headers.v[i].name,
			       r.headers.v[i].value);
	}
	CHECK_STR(headers_get(&r.headers, "x-repeat"), "a");
	CHECK_STR(headers_get(&r.headers, "X-Next"), "1");
	char body[16];
	CHECK_INT(read_body(&r, body, sizeof body), 0);
	CHECK_INT(r.message_complete, 1);
	request_free(&r);

	/* nothing more: the client closing now is a clean end */
	CHECK_INT(read_one(&c, &r, NULL, 1), REQUEST_CLOSED);
	request_free(&r);
	conn_close(&c);
}

static void
test_request_versions(void)
{
	static const struct {
		const char *head;
		int minor, keep_alive;
	} cases[] = {
		{ "GET http://h/ HTTP/1.0\r\n\r\n", 0, 0 },
		{ "GET http://h/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0, 1 },
		{ "GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n", 1, 1 },
		{ "GET http://h/ HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", 1, 0 },
		{ "GET http://h/ HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, Close\r\n\r\n", 1, 0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct conn c;
		struct request r;
		if (!CHECK(conn_open(&c)))
			return;
		if (check(read_one(&c, &r, cases[i].head, 1) == REQUEST_OK, __FILE__, __LINE__,
		          "refused: %s", cases[i].head)) {
			check(r.http_minor == cases[i].minor && r.keep_alive == cases[i].keep_alive,
			      __FILE__, __LINE__, "'%s': minor %d keep_alive %d", cases[i].head,
			      r.http_minor, r.keep_alive);
		}
		request_free(&r);
		conn_close(&c);
	}
}

static void
test_request_bodies(void)
{
	struct conn c;
	struct request r;
	char body[64];

	/* Content-Length, then a pipelined chunked request, then a GET: each read
	 * leaves the rest in the session's buffer for the next */
	if (!CHECK(conn_open(&c)))
		return;
	conn_sends(&c, "POST http://h/p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
	           "PUT http://h/q HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
	           "3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nX-Trailer: t\r\n\r\n"
	           "GET http://h/r HTTP/1.1\r\nHost: h\r\n\r\n");
	shutdown(c.peer, SHUT_WR);

	CHECK_INT(read_one(&c, &r, NULL, 0), REQUEST_OK);
	CHECK_STR(r.method, "POST");
	CHECK_INT(r.content_length, 5);
	CHECK_INT(r.has_body, 1);
	CHECK_INT(r.chunked, 0);
	CHECK_INT(read_body(&r, body, sizeof body), 5);
	CHECK_STR(body, "hello");
	CHECK_INT(r.body_read, 5);
	CHECK_INT(r.message_complete, 1);
	request_free(&r);

	CHECK_INT(read_one(&c, &r, NULL, 0), REQUEST_OK);
	CHECK_STR(r.method, "PUT");
	CHECK_STR(r.url, "http://h/q");
	CHECK_INT(r.chunked, 1);
	CHECK_INT(r.has_body, 1);
	CHECK_INT(r.content_length, -1);
	CHECK_INT(read_body(&r, body, sizeof body), 7);
	CHECK_STR(body, "abcdefg");
	CHECK_INT(r.message_complete, 1);
	CHECK_INT(r.headers.n, 2); /* the trailer field is dropped */
	CHECK_NULL(headers_get(&r.headers, "X-Trailer"));
	request_free(&r);

	CHECK_INT(read_one(&c, &r, NULL, 0), REQUEST_OK);
	CHECK_STR(r.method, "GET");
	CHECK_STR(r.url, "http://h/r");
	CHECK_INT(read_body(&r, body, sizeof body), 0);
	request_free(&r);
	CHECK_INT(read_one(&c, &r, NULL, 0), REQUEST_CLOSED);
	request_free(&r);
	conn_close(&c);

	/* Content-Length: 0 is no body */
	if (!CHECK(conn_open(&c)))
		return;
	CHECK_INT(read_one(&c, &r, "POST http://h/ HTTP/1.1\r\nHost: h\r\n"
	                   "Content-Length: 0\r\n\r\n", 1), REQUEST_OK);
	CHECK_INT(r.content_length, 0);
	CHECK_INT(r.has_body, 0);
	CHECK_INT(read_body(&r, body, sizeof body), 0);
	request_free(&r);
	conn_close(&c);

	/* a body cut short by the client is an error, not a short success */
	if (!CHECK(conn_open(&c)))
		return;
	CHECK_INT(read_one(&c, &r, "POST http://h/ HTTP/1.1\r\nHost: h\r\n"
	                   "Content-Length: 10\r\n\r\nabc", 1), REQUEST_OK);
	ssize_t n = request_read_body(&r, body, sizeof body);
	CHECK_INT(n, 3);
	n = request_read_body(&r, body, sizeof body);
	CHECK_INT(n, -1);
	CHECK_INT(r.message_complete, 0);
	request_free(&r);
	conn_close(&c);
}

static void
test_request_expect_continue(void)
{
	struct conn c;
	struct request r;
	char body[64], got[64];

	if (!CHECK(conn_open(&c)))
		return;
	CHECK_INT(read_one(&c, &r, "PUT http://h/ HTTP/1.1\r\nHost: h\r\n"
	                   "Expect: 100-Continue\r\nContent-Length: 4\r\n\r\n", 0), REQUEST_OK);
	CHECK_INT(r.expect_continue, 1);
	CHECK_INT(r.sent_continue, 0);
	/* the body is sent once the client sees 100 Continue; here it is already
	 * on its way, and the reader still owes the interim response */
	conn_sends(&c, "data");
	CHECK_INT(read_body(&r, body, sizeof body), 4);
	CHECK_STR(body, "data");
	CHECK_INT(r.sent_continue, 1);
	ssize_t n = read(c.peer, got, sizeof got - 1);
	got[n > 0 ? n : 0] = '\0';
	CHECK_STR(got, "HTTP/1.1 100 Continue\r\n\r\n");
	request_free(&r);
	conn_close(&c);
}

static void
test_request_obs_fold(void)
{
	struct conn c;
	struct request r;

	/* RFC 9112 5.2: reject obs-fold or replace it with SP. llhttp unfolds:
	 * no CR or LF may reach a forwarded header value. */
	if (!CHECK(conn_open(&c)))
		return;
	CHECK_INT(read_one(&c, &r, "GET http://h/ HTTP/1.1\r\nX: a\r\n b\r\n"
	                   "Y: c\r\nHost: h\r\n\r\n", 1), REQUEST_OK);
	CHECK_INT(r.headers.n, 3);
	if (r.headers.n == 3) {
		CHECK_STR(r.headers.v[0].name, "X");
		CHECK(strpbrk(r.headers.v[0].value, "\r\n") == NULL);
		CHECK_STR(r.headers.v[0].value, "a b");
		CHECK_STR(r.headers.v[1].value, "c");
	}
	request_free(&r);
	conn_close(&c);
}

static void
test_request_connect(void)
{
	struct conn c;
	struct request r;

	if (!CHECK(conn_open(&c)))
		return;
	CHECK_INT(read_one(&c, &r, "CONNECT example.com:443 HTTP/1.1\r\n"
	                   "Host: example.com:443\r\n\r\n\x16\x03\x01tls bytes", 0), REQUEST_OK);
	CHECK_STR(r.method, "CONNECT");
	CHECK_STR(r.url, "example.com:443");
	CHECK_INT(r.message_complete, 1);
	/* what follows the head is tunnel data, left for the tunnel */
	size_t left = evbuffer_get_length(c.s->in);
	CHECK_INT(left, 12);
	if (left == 12)
		CHECK(memcmp(evbuffer_pullup(c.s->in, -1), "\x16\x03\x01tls bytes", 12) == 0);
	request_free(&r);
	conn_close(&c);
}

static void
test_request_errors(void)
{
	static const struct {
		const char *name;
		const char *data;
		int eof;
		enum request_read_result rr;
		int status;
	} cases[] = {
		{ "garbage", "THIS IS NOT HTTP\r\n\r\n", 1, REQUEST_ERROR, 400 },
		{ "bad version", "GET http://h/ HTTP/9.9\r\n\r\n", 1, REQUEST_ERROR, 400 },
		{ "space in header name", "GET http://h/ HTTP/1.1\r\nBad Name: x\r\n\r\n", 1,
		  REQUEST_ERROR, 400 },
		{ "bare LF in value", "GET http://h/ HTTP/1.1\r\nX: a\rb\r\n\r\n", 1,
		  REQUEST_ERROR, 400 },
		{ "CL and TE", "POST http://h/ HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
		  "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 1, REQUEST_ERROR, 400 },
		{ "two CLs", "POST http://h/ HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
		  "Content-Length: 4\r\n\r\nabcd", 1, REQUEST_ERROR, 400 },
		{ "bad CL", "POST http://h/ HTTP/1.1\r\nHost: h\r\nContent-Length: 3x\r\n\r\nabc", 1,
		  REQUEST_ERROR, 400 },
		{ "TE not chunked last", "POST http://h/ HTTP/1.1\r\nHost: h\r\n"
		  "Transfer-Encoding: chunked, gzip\r\n\r\n", 1, REQUEST_ERROR, 400 },
		/* RFC 9112 3.2: Host once, valid, and present in HTTP/1.1 */
		{ "no Host", "GET http://h/ HTTP/1.1\r\nX: y\r\n\r\n", 1, REQUEST_ERROR, 400 },
		{ "two Hosts", "GET http://h/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 1,
		  REQUEST_ERROR, 400 },
		{ "Host with userinfo", "GET http://h/ HTTP/1.1\r\nHost: a b@c\r\n\r\n", 1,
		  REQUEST_ERROR, 400 },
		{ "Host with a path", "GET http://h/ HTTP/1.1\r\nHost: a/b\r\n\r\n", 1,
		  REQUEST_ERROR, 400 },
		/* RFC 9112 6.1: a coding before chunked is one corral does not decode */
		{ "TE gzip, chunked", "POST http://h/ HTTP/1.1\r\nHost: h\r\n"
		  "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 1, REQUEST_ERROR, 501 },
		{ "33 Connection options", "GET http://h/ HTTP/1.1\r\nHost: h\r\nConnection: "
		  "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s,t,u,v,w,x,y,z,aa,bb,cc,dd,ee,ff,gg\r\n\r\n",
		  1, REQUEST_ERROR, 400 },
		{ "closed mid-head", "GET http://h/ HTTP/1.1\r\nHost:", 1, REQUEST_ERROR, 0 },
		{ "closed at once", "", 1, REQUEST_CLOSED, 0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct conn c;
		struct request r;
		if (!CHECK(conn_open(&c)))
			return;
		enum request_read_result rr = read_one(&c, &r, cases[i].data, cases[i].eof);
		check(rr == cases[i].rr && r.error_status == cases[i].status, __FILE__, __LINE__,
		      "%s: result %d status %d, want %d %d", cases[i].name, rr, r.error_status,
		      cases[i].rr, cases[i].status);
		if (cases[i].status)
			check(r.error_text != NULL && r.error_text[0], __FILE__, __LINE__,
			      "%s: no error text", cases[i].name);
		request_free(&r);
		conn_close(&c);
	}
}

static void
test_request_checks_that_pass(void)
{
	struct conn c;
	struct request r;

	/* HTTP/1.0: no Host needed; Transfer-Encoding means close after it
	 * (RFC 9112 6.1), and Expect: 100-continue is ignored (RFC 9110 10.1.1) */
	if (!CHECK(conn_open(&c)))
		return;
	CHECK_INT(read_one(&c, &r, "POST http://h/ HTTP/1.0\r\nConnection: keep-alive\r\n"
	                   "Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
	                   "0\r\n\r\n", 1), REQUEST_OK);
	CHECK_INT(r.keep_alive, 0);
	CHECK_INT(r.expect_continue, 0);
	request_free(&r);
	conn_close(&c);
	if (!CHECK(conn_open(&c)))
		return;
	CHECK_INT(read_one(&c, &r, "POST http://h/ HTTP/1.1\r\nHost: [::1]:8080\r\n"
	                   "Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
	                   "0\r\n\r\n", 1), REQUEST_OK);
	CHECK_INT(r.keep_alive, 1);
	CHECK_INT(r.expect_continue, 1);
	request_free(&r);
	conn_close(&c);
	if (!CHECK(conn_open(&c)))
		return;
	CHECK_INT(read_one(&c, &r, "GET http://h/ HTTP/1.1\r\nHost:\r\n\r\n", 1), REQUEST_OK);
	request_free(&r);
	conn_close(&c);
}

/* Trailer fields are not headers, whether the body came with the head (one
 * write: llhttp parses it all before the head is used) or after it. */
static void
test_request_trailers_dropped(void)
{
	static const char head[] = "POST http://h/t HTTP/1.1\r\nHost: h\r\n"
	                           "Transfer-Encoding: chunked\r\n\r\n";
	static const char body_trailers[] = "5\r\nhello\r\n0\r\n"
	                                    "Authorization: Bearer smuggled\r\n"
	                                    "X-Injected: from-trailer\r\nCookie: a=b\r\n\r\n";
	for (int one_write = 1; one_write >= 0; one_write--) {
		struct conn c;
		struct request r;
		char body[64], all[512];
		if (!CHECK(conn_open(&c)))
			return;
		snprintf(all, sizeof all, "%s%s", head, one_write ? body_trailers : "");
		CHECK_INT(read_one(&c, &r, all, 0), REQUEST_OK);
		CHECK_INT(r.headers.n, 2);
		if (!one_write)
			conn_sends(&c, body_trailers);
		CHECK_INT(read_body(&r, body, sizeof body), 5);
		CHECK_STR(body, "hello");
		CHECK_INT(r.message_complete, 1);
		CHECK_INT(r.headers.n, 2);
		CHECK_NULL(headers_get(&r.headers, "Authorization"));
		CHECK_NULL(headers_get(&r.headers, "X-Injected"));
		CHECK_NULL(headers_get(&r.headers, "Cookie"));
		request_free(&r);
		conn_close(&c);
	}
}

/* Writes `data` to `fd` a byte at a time, each once the reader has taken
 * the one before (nothing left in the socket), so that every read of the
 * request reader gets one byte. */
struct trickle {
	int fd;
	const char *data;
};

static void *
trickle_run(void *arg)
{
	const struct trickle *t = arg;
	for (const char *p = t->data; *p; p++) {
		if (write(t->fd, p, 1) != 1)
			break;
		struct timespec now, deadline;
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_sec += 10;
		int queued = 1;
		while (ioctl(t->fd, SIOCOUTQ, &queued) == 0 && queued > 0) {
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (now.tv_sec > deadline.tv_sec ||
			    (now.tv_sec == deadline.tv_sec && now.tv_nsec > deadline.tv_nsec))
				return NULL; /* the reader stopped: it answered already */
			sched_yield();
		}
	}
	return NULL;
}

/* max_request_header counts the head, not how it was cut into reads (": "
 * and CRLF were counted once per piece of a field's name). */
static void
test_request_head_size_in_pieces(void)
{
	static const char head[] = "GET http://h/ HTTP/1.1\r\nHost: h\r\n"
	                           "X-Long-Field-Name: v\r\n\r\n";
	/* target 9, "Host" 4 + 4 + 1, "X-Long-Field-Name" 17 + 4 + 1 */
	static const size_t size = 9 + 9 + 22;
	struct conn c;
	struct request r;
	config_defaults(&cfg);
	cfg.max_request_header = size - 1;
	if (!CHECK(conn_open(&c)))
		return;
	CHECK_INT(read_one(&c, &r, head, 1), REQUEST_ERROR);
	CHECK_INT(r.error_status, 431);
	request_free(&r);
	conn_close(&c);
	cfg.max_request_header = size;
	for (int pieces = 0; pieces <= 1; pieces++) {
		if (!CHECK(conn_open(&c)))
			return;
		pthread_t th;
		struct trickle t = { c.peer, head };
		if (pieces)
			CHECK_INT(pthread_create(&th, NULL, trickle_run, &t), 0);
		CHECK_INT(read_one(&c, &r, pieces ? NULL : head, 0), REQUEST_OK);
		CHECK_INT(r.error_status, 0);
		CHECK_STR(headers_get(&r.headers, "X-Long-Field-Name"), "v");
		if (pieces)
			pthread_join(th, NULL);
		request_free(&r);
		conn_close(&c);
	}
	config_defaults(&cfg);
}

static void
test_request_limits(void)
{
	struct conn c;
	struct request r;
	char *big = malloc(200000);

	if (big == NULL)
		abort();
	config_defaults(&cfg);
	cfg.max_url = 100;
	cfg.max_request_header = 1024;

	/* max_url: exactly at the limit is fine, one more is 414 */
	char url[200];
	memset(url, 'u', sizeof url);
	memcpy(url, "http://h/", 9);
	if (!CHECK(conn_open(&c)))
		goto out;
	snprintf(big, 200000, "GET %.*s HTTP/1.1\r\nHost: h\r\n\r\n", 100, url);
	CHECK_INT(read_one(&c, &r, big, 1), REQUEST_OK);
	CHECK_INT(r.url_len, 100);
	request_free(&r);
	conn_close(&c);
	if (!CHECK(conn_open(&c)))
		goto out;
	snprintf(big, 200000, "GET %.*s HTTP/1.1\r\nHost: h\r\n\r\n", 101, url);
	CHECK_INT(read_one(&c, &r, big, 1), REQUEST_ERROR);
	CHECK_INT(r.error_status, 414);
	request_free(&r);
	conn_close(&c);

	/* max_request_header: many headers, or one long one, is 431 */
	if (!CHECK(conn_open(&c)))
		goto out;
	strcpy(big, "GET http://h/ HTTP/1.1\r\n");
	for (int i = 0; i < 100; i++)
		snprintf(big + strlen(big), 200000 - strlen(big), "X-Header-%d: value\r\n", i);
	strcat(big, "\r\n");
	CHECK_INT(read_one(&c, &r, big, 1), REQUEST_ERROR);
	CHECK_INT(r.error_status, 431);
	request_free(&r);
	conn_close(&c);

	if (!CHECK(conn_open(&c)))
		goto out;
	strcpy(big, "GET http://h/ HTTP/1.1\r\nX-Long: ");
	memset(big + strlen(big), 'v', 2000);
	strcpy(big + strlen("GET http://h/ HTTP/1.1\r\nX-Long: ") + 2000, "\r\n\r\n");
	CHECK_INT(read_one(&c, &r, big, 1), REQUEST_ERROR);
	CHECK_INT(r.error_status, 431);
	request_free(&r);
	conn_close(&c);

	/* a small head well under the limit is still fine */
	if (!CHECK(conn_open(&c)))
		goto out;
	CHECK_INT(read_one(&c, &r, "GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n", 1), REQUEST_OK);
	request_free(&r);
	conn_close(&c);

	/* header_timeout: part of a head and then silence is 408; silence from
	 * the start is a quiet close */
	cfg.header_timeout_ms = 50;
	if (!CHECK(conn_open(&c)))
		goto out;
	CHECK_INT(read_one(&c, &r, "GET http://h/ HTTP/1.1\r\nHo", 0), REQUEST_ERROR);
	CHECK_INT(r.error_status, 408);
	request_free(&r);
	conn_close(&c);
	if (!CHECK(conn_open(&c)))
		goto out;
	CHECK_INT(read_one(&c, &r, NULL, 0), REQUEST_CLOSED);
	CHECK_INT(r.error_status, 0);
	request_free(&r);
	conn_close(&c);
out:
	free(big);
	config_defaults(&cfg);
}

int
main(void)
{
	config_defaults(&cfg);
	test_headers();
	test_list_next();
	test_join();
	test_list_has();
	test_hop_by_hop();
	test_reason();
	test_url_parse();
	test_url_normalise_bounds();
	test_url_authority();
	test_request_simple();
	test_request_versions();
	test_request_bodies();
	test_request_expect_continue();
	test_request_obs_fold();
	test_request_connect();
	test_request_errors();
	test_request_checks_that_pass();
	test_request_limits();
	test_request_trailers_dropped();
	test_request_head_size_in_pieces();
	return check_summary("http");
}

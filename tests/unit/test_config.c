/*
 * test_config.c — unit tests for config.c: the value parsers, the defaults,
 * whole files (conf/corral.ini included; run from the project root), every
 * form of error message, the client ACL and the reference-counted swap of the
 * running config (with reader threads racing the installs).
 *
 * Prints one line per failed check and then "config: N passed, M failed";
 * exits non-zero when anything failed.
 */
#include "corral/config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "check.h"

/* ---- helpers ----------------------------------------------------------- */

static struct sockaddr_storage
sa_of(const char *addr)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof ss);
	if (strchr(addr, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1)
			abort();
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		if (inet_pton(AF_INET, addr, &s4->sin_addr) != 1)
			abort();
	}
	return ss;
}

static int
allowed(const struct config *c, const char *addr)
{
	struct sockaddr_storage ss = sa_of(addr);

	return config_client_allowed(c, (struct sockaddr *)&ss);
}

/* Parse `text`; the config or NULL, with the message in `err`. */
static void
write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!check(f != NULL, __FILE__, __LINE__, "cannot write %s", path))
		return;
	fputs(text, f);
	fclose(f);
}

static struct config *
load(const char *text, char *err, size_t errlen)
{
	return config_load_string(text, "test.ini", err, errlen);
}

/* Expect `text` to fail with a message that contains each of the NULL-ended
 * list of fragments. */
#define CHECK_LOAD_FAILS(text, ...) \
	check_load_fails(__FILE__, __LINE__, text, __VA_ARGS__, (const char *)NULL)

static void
check_load_fails(const char *file, int line, const char *text, ...)
{
	char err[512];
	struct config *c = load(text, err, sizeof err);
	const char *want;
	va_list ap;

	if (!check(c == NULL, file, line, "config accepted: %s", text)) {
		config_put(c);
		return;
	}
	va_start(ap, text);
	while ((want = va_arg(ap, const char *)) != NULL)
		check(strstr(err, want) != NULL, file, line,
		      "message '%s' lacks '%s'", err, want);
	va_end(ap);
}

static int
listen_eq(const struct config_listen *a, const struct config_listen *b)
{
	return a->addrlen == b->addrlen &&
	       memcmp(&a->addr, &b->addr, a->addrlen) == 0 &&
	       strcmp(a->text, b->text) == 0;
}

static int
cidr_eq(const struct config_cidr *a, const struct config_cidr *b)
{
	return a->family == b->family && a->prefix == b->prefix &&
	       memcmp(a->addr, b->addr, sizeof a->addr) == 0;
}

/* Every field of `a` equals `b`'s, except the path. */
#define SAME(f) check(a->f == b->f, file, line, "%s: field " #f " differs", what)
static void
check_same_config(const char *file, int line, const char *what,
                  const struct config *a, const struct config *b)
{
	SAME(n_listen);
	for (int i = 0; i < a->n_listen && i < b->n_listen; i++)
		check(listen_eq(&a->listen[i], &b->listen[i]), file, line,
		      "%s: listen[%d] differs", what, i);
	SAME(n_allow);
	for (int i = 0; i < a->n_allow && i < b->n_allow; i++)
		check(cidr_eq(&a->allow[i], &b->allow[i]), file, line,
		      "%s: allow[%d] differs", what, i);
	SAME(min_workers);
	SAME(max_workers);
	SAME(client_timeout_ms);
	SAME(header_timeout_ms);
	SAME(max_request_header);
	SAME(max_url);
	SAME(max_request_body);
	SAME(max_connections);
	SAME(via);
	SAME(forwarded_for);
	check(strcmp(a->auth_file, b->auth_file) == 0, file, line, "%s: auth_file differs", what);
	check(strcmp(a->auth_realm, b->auth_realm) == 0, file, line, "%s: auth_realm differs",
	      what);
	SAME(shutdown_grace_ms);
	SAME(keepalive_linger_ms);
	SAME(connect_ports.n);
	SAME(connect_ports.any);
	for (int i = 0; i < a->connect_ports.n && i < b->connect_ports.n; i++) {
		SAME(connect_ports.range[i].lo);
		SAME(connect_ports.range[i].hi);
	}
	SAME(http_ports.n);
	SAME(http_ports.any);
	for (int i = 0; i < a->http_ports.n && i < b->http_ports.n; i++) {
		SAME(http_ports.range[i].lo);
		SAME(http_ports.range[i].hi);
	}
	check(strcmp(a->ca_file, b->ca_file) == 0, file, line, "%s: ca_file differs", what);
	SAME(connect_timeout_ms);
	SAME(upstream_timeout_ms);
	check(strcmp(a->parent, b->parent) == 0, file, line, "%s: parent differs", what);
	SAME(allow_loopback);
	SAME(cache_memory);
	SAME(max_object);
	SAME(coalesce_timeout_ms);
	SAME(heuristic_percent);
	SAME(heuristic_max_ms);
	check(strcmp(a->access_log, b->access_log) == 0, file, line,
	      "%s: access_log differs", what);
	SAME(log_format);
	SAME(log_level);
	SAME(has_admin);
	if (a->has_admin && b->has_admin)
		check(listen_eq(&a->admin_listen, &b->admin_listen), file, line,
		      "%s: admin_listen differs", what);
}
#undef SAME
#define CHECK_SAME_CONFIG(what, a, b) check_same_config(__FILE__, __LINE__, what, a, b)

/* ---- defaults ---------------------------------------------------------- */

static void
test_defaults(void)
{
	struct config d;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	config_defaults(&d);
	CHECK_INT(d.n_listen, 1);
	CHECK_STR(d.listen[0].text, "127.0.0.1:3128");
	CHECK_INT(d.listen[0].addr.ss_family, AF_INET);
	CHECK_INT(d.listen[0].addrlen, sizeof(struct sockaddr_in));
	CHECK_INT(ntohs(((struct sockaddr_in *)&d.listen[0].addr)->sin_port), 3128);
	CHECK_INT(ntohl(((struct sockaddr_in *)&d.listen[0].addr)->sin_addr.s_addr),
	          0x7f000001);
	CHECK_INT(d.n_allow, 2);
	CHECK_INT(d.allow[0].family, AF_INET);
	CHECK_INT(d.allow[0].prefix, 8);
	CHECK(memcmp(d.allow[0].addr, "\x7f\0\0\0", 4) == 0);
	CHECK_INT(d.allow[1].family, AF_INET6);
	CHECK_INT(d.allow[1].prefix, 128);
	CHECK(memcmp(d.allow[1].addr, &in6addr_loopback, 16) == 0);
	CHECK_INT(d.min_workers, ncpu * 2 < 4096 ? ncpu * 2 : 4096);
	CHECK_INT(d.max_workers, 4096);
	CHECK_INT(d.client_timeout_ms, 60000);
	CHECK_INT(d.header_timeout_ms, 10000);
	CHECK_INT(d.max_request_header, 65536);
	CHECK_INT(d.max_url, 8192);
	CHECK_INT(d.max_request_body, 0);
	CHECK_INT(d.max_connections, 4096);
	CHECK_INT(d.via, 1);
	CHECK_INT(d.forwarded_for, FORWARDED_FOR_ON);
	CHECK_STR(d.auth_file, "");
	CHECK_STR(d.auth_realm, "corral");
	CHECK_INT(d.shutdown_grace_ms, 10000);
	CHECK_INT(d.keepalive_linger_ms, 50);
	CHECK_INT(d.connect_ports.n, 1);
	CHECK_INT(d.connect_ports.range[0].lo, 443);
	CHECK_INT(d.connect_ports.range[0].hi, 443);
	CHECK_INT(d.connect_ports.any, 0);
	/* http_ports: Squid's Safe_ports for the schemes corral speaks */
	CHECK_INT(d.http_ports.any, 0);
	CHECK(config_port_allowed(&d.http_ports, 80));
	CHECK(config_port_allowed(&d.http_ports, 443));
	CHECK(config_port_allowed(&d.http_ports, 777));
	CHECK(config_port_allowed(&d.http_ports, 1025));
	CHECK(config_port_allowed(&d.http_ports, 65535));
	CHECK(!config_port_allowed(&d.http_ports, 25));
	CHECK(!config_port_allowed(&d.http_ports, 22));
	CHECK(!config_port_allowed(&d.http_ports, 1024));
	CHECK(!config_port_allowed(&d.http_ports, 79));
	CHECK_STR(d.ca_file, "");
	CHECK_INT(d.connect_timeout_ms, 10000);
	CHECK_INT(d.upstream_timeout_ms, 120000);
	CHECK_STR(d.parent, "");
	CHECK_INT(d.allow_loopback, 0);
	CHECK_INT(d.cache_memory, 256ll << 20);
	CHECK_INT(d.max_object, 64ll << 20);
	CHECK_INT(d.coalesce_timeout_ms, 30000);
	CHECK_INT(d.heuristic_percent, 10);
	CHECK_INT(d.heuristic_max_ms, 86400000);
	CHECK_STR(d.access_log, "-");
	CHECK_INT(d.log_format, LOG_FORMAT_SQUID);
	CHECK_INT(d.log_level, LOG_LEVEL_INFO);
	CHECK_INT(d.has_admin, 1);
	CHECK_STR(d.admin_listen.text, "127.0.0.1:3129");
	CHECK_INT(ntohs(((struct sockaddr_in *)&d.admin_listen.addr)->sin_port), 3129);

	/* An empty file and a file of comments are the defaults. */
	char err[256];
	struct config *c = load("", err, sizeof err);
	if (CHECK(c != NULL)) {
		CHECK_SAME_CONFIG("empty file", c, &d);
		CHECK_STR(c->path, "test.ini");
		config_put(c);
	}
	c = load("; nothing\n# here\n\n[proxy]\n[cache]\n", err, sizeof err);
	if (CHECK(c != NULL)) {
		CHECK_SAME_CONFIG("comments only", c, &d);
		config_put(c);
	}
}

/* ---- value parsers ----------------------------------------------------- */

static void
test_size(void)
{
	static const struct { const char *s; uint64_t v; } good[] = {
		{ "0", 0 }, { "512", 512 }, { "512B", 512 }, { "64K", 65536 },
		{ "64k", 65536 }, { "64KB", 65536 }, { "64kb", 65536 },
		{ "64Kb", 65536 }, { "256M", 256ull << 20 }, { "256MB", 256ull << 20 },
		{ "1G", 1ull << 30 }, { "1g", 1ull << 30 }, { "3GB", 3ull << 30 },
		{ "007", 7 }, { "18446744073709551615", UINT64_MAX },
		{ "17179869183G", 17179869183ull << 30 },
	};
	static const char *const bad[] = {
		"", "K", "B", "-1", "+1", " 1", "1 ", "1 K", "1.5K", "64KiB", "64KBB",
		"1T", "1k2", "0x10", "ten", "18446744073709551616",
		"17179869184G", "99999999999999999999999",
	};
	uint64_t v;

	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		v = 12345;
		if (check(config_parse_size(good[i].s, &v) == 0, __FILE__, __LINE__,
		          "size '%s' rejected", good[i].s))
			check(v == good[i].v, __FILE__, __LINE__, "size '%s' = %llu",
			      good[i].s, (unsigned long long)v);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		v = 12345;
		check(config_parse_size(bad[i], &v) != 0 && v == 12345, __FILE__,
		      __LINE__, "size '%s' accepted", bad[i]);
	}
}

static void
test_duration(void)
{
	static const struct { const char *s; int64_t ms; } good[] = {
		{ "0", 0 }, { "500ms", 500 }, { "500MS", 500 }, { "10s", 10000 },
		{ "10S", 10000 }, { "10", 10000 }, { "2m", 120000 }, { "1h", 3600000 },
		{ "1d", 86400000 }, { "3D", 259200000 },
		{ "0s", 0 }, { "1ms", 1 }, { "9223372036854775807ms", INT64_MAX },
		{ "9223372036854775s", 9223372036854775000ll },
	};
	static const char *const bad[] = {
		"", "s", "ms", "soon", "-1", "-1s", "+1s", "1.5s", "10 s", "1w",
		"10sec", "1hm", "1sms", "9223372036854775808ms",
		"9223372036854776s", "99999999999999999999", "1 ",
	};
	int64_t ms;

	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		ms = 12345;
		if (check(config_parse_duration(good[i].s, &ms) == 0, __FILE__,
		          __LINE__, "duration '%s' rejected", good[i].s))
			check(ms == good[i].ms, __FILE__, __LINE__, "duration '%s' = %lld",
			      good[i].s, (long long)ms);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ms = 12345;
		check(config_parse_duration(bad[i], &ms) != 0 && ms == 12345,
		      __FILE__, __LINE__, "duration '%s' accepted", bad[i]);
	}
}

static void
test_bool(void)
{
	static const struct { const char *s; int v; } good[] = {
		{ "on", 1 }, { "off", 0 }, { "yes", 1 }, { "no", 0 }, { "true", 1 },
		{ "false", 0 }, { "1", 1 }, { "0", 0 }, { "ON", 1 }, { "Off", 0 },
		{ "YES", 1 }, { "False", 0 },
	};
	static const char *const bad[] = {
		"", "2", "onn", "of", "enabled", "y", "n", "01", " on", "-1",
	};
	int v;

	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		v = 7;
		if (check(config_parse_bool(good[i].s, &v) == 0, __FILE__, __LINE__,
		          "bool '%s' rejected", good[i].s))
			check(v == good[i].v, __FILE__, __LINE__, "bool '%s' = %d",
			      good[i].s, v);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		v = 7;
		check(config_parse_bool(bad[i], &v) != 0 && v == 7, __FILE__, __LINE__,
		      "bool '%s' accepted", bad[i]);
	}
}

static void
test_hostport(void)
{
	struct config_listen l;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&l.addr;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&l.addr;
	struct in6_addr v6;

	CHECK(config_parse_hostport("127.0.0.1:3128", &l) == 0);
	CHECK_INT(sin->sin_family, AF_INET);
	CHECK_INT(l.addrlen, sizeof(struct sockaddr_in));
	CHECK_INT(ntohs(sin->sin_port), 3128);
	CHECK_INT(ntohl(sin->sin_addr.s_addr), 0x7f000001);
	CHECK_STR(l.text, "127.0.0.1:3128");

	CHECK(config_parse_hostport("0.0.0.0:1", &l) == 0);
	CHECK_INT(ntohs(sin->sin_port), 1);
	CHECK_INT(sin->sin_addr.s_addr, 0);

	CHECK(config_parse_hostport("[::1]:3128", &l) == 0);
	CHECK_INT(sin6->sin6_family, AF_INET6);
	CHECK_INT(l.addrlen, sizeof(struct sockaddr_in6));
	CHECK_INT(ntohs(sin6->sin6_port), 3128);
	CHECK(memcmp(&sin6->sin6_addr, &in6addr_loopback, 16) == 0);
	CHECK_STR(l.text, "[::1]:3128");

	CHECK(config_parse_hostport("[::]:65535", &l) == 0);
	CHECK_INT(ntohs(sin6->sin6_port), 65535);
	CHECK(memcmp(&sin6->sin6_addr, &in6addr_any, 16) == 0);

	CHECK(config_parse_hostport("[2001:db8::42]:8080", &l) == 0);
	inet_pton(AF_INET6, "2001:db8::42", &v6);
	CHECK(memcmp(&sin6->sin6_addr, &v6, 16) == 0);
	CHECK(config_parse_hostport("[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535",
	                            &l) == 0);

	static const char *const bad[] = {
		"", "127.0.0.1", "127.0.0.1:", ":3128", "127.0.0.1:0",
		"127.0.0.1:65536", "127.0.0.1:99999", "127.0.0.1:123456",
		"127.0.0.1:-1", "127.0.0.1:+80", "127.0.0.1: 80", "127.0.0.1:80x",
		"127.0.0.1:0x50", "localhost:3128", "1.2.3:80", "256.0.0.1:80",
		"::1:3128", "::1", "[::1]", "[::1]:", "[::1]3128", "[::1]:0",
		"[::1]:70000", "[::1", "::1]:80", "[]:80", "[1.2.3.4]:80",
		"[::g]:80", " 127.0.0.1:80", "127.0.0.1:80 ",
		"[::1]:80:80", "1.2.3.4:80:80",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		check(config_parse_hostport(bad[i], &l) != 0, __FILE__, __LINE__,
		      "hostport '%s' accepted", bad[i]);
}

static void
test_cidr(void)
{
	struct config_cidr r;
	unsigned char want[16];

	CHECK(config_parse_cidr("10.0.0.0/8", &r) == 0);
	CHECK_INT(r.family, AF_INET);
	CHECK_INT(r.prefix, 8);
	CHECK(memcmp(r.addr, "\x0a\0\0\0", 4) == 0);

	/* host bits are zeroed */
	CHECK(config_parse_cidr("10.1.2.3/8", &r) == 0);
	CHECK(memcmp(r.addr, "\x0a\0\0\0", 4) == 0);
	CHECK(config_parse_cidr("192.168.255.255/17", &r) == 0);
	CHECK_INT(r.prefix, 17);
	CHECK(memcmp(r.addr, "\xc0\xa8\x80\x00", 4) == 0);

	/* a bare address is one address */
	CHECK(config_parse_cidr("192.0.2.7", &r) == 0);
	CHECK_INT(r.family, AF_INET);
	CHECK_INT(r.prefix, 32);
	CHECK(memcmp(r.addr, "\xc0\x00\x02\x07", 4) == 0);
	CHECK(config_parse_cidr("0.0.0.0/0", &r) == 0);
	CHECK_INT(r.prefix, 0);
	CHECK(config_parse_cidr("1.2.3.4/32", &r) == 0);
	CHECK_INT(r.prefix, 32);
	CHECK(config_parse_cidr("1.2.3.4/08", &r) == 0);
	CHECK_INT(r.prefix, 8);

	CHECK(config_parse_cidr("::1/128", &r) == 0);
	CHECK_INT(r.family, AF_INET6);
	CHECK_INT(r.prefix, 128);
	CHECK(memcmp(r.addr, &in6addr_loopback, 16) == 0);
	CHECK(config_parse_cidr("::1", &r) == 0);
	CHECK_INT(r.family, AF_INET6);
	CHECK_INT(r.prefix, 128);
	CHECK(config_parse_cidr("2001:db8:ffff::1/33", &r) == 0);
	CHECK_INT(r.prefix, 33);
	inet_pton(AF_INET6, "2001:db8:8000::", want);
	CHECK(memcmp(r.addr, want, 16) == 0);
	CHECK(config_parse_cidr("::/0", &r) == 0);
	CHECK_INT(r.family, AF_INET6);
	CHECK_INT(r.prefix, 0);

	/* IPv4-mapped IPv6 CIDRs are stored as the IPv4 CIDR they mean */
	CHECK(config_parse_cidr("::ffff:10.0.0.0/104", &r) == 0);
	CHECK_INT(r.family, AF_INET);
	CHECK_INT(r.prefix, 8);
	CHECK(memcmp(r.addr, "\x0a\0\0\0", 4) == 0);
	CHECK(config_parse_cidr("::ffff:192.0.2.7", &r) == 0);
	CHECK_INT(r.family, AF_INET);
	CHECK_INT(r.prefix, 32);
	CHECK(memcmp(r.addr, "\xc0\x00\x02\x07", 4) == 0);
	CHECK(config_parse_cidr("::ffff:0:0/96", &r) == 0);
	CHECK_INT(r.family, AF_INET);
	CHECK_INT(r.prefix, 0);
	CHECK(config_parse_cidr("::ffff:0:0/95", &r) == 0);
	CHECK_INT(r.family, AF_INET6);
	CHECK_INT(r.prefix, 95);

	static const char *const bad[] = {
		"", "/8", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/+8",
		"10.0.0.0/8x", "10.0.0.0/ 8", "10.0.0.0 /8", "10.0.0.0/8/8",
		"10.0.0.0/0008", "10.0.0/8", "10.0.0.256", "::/129", "::1/1280",
		"::g/64", "[::1]/128", "foo", "localhost", "10.0.0.0/0x8",
		" 10.0.0.0/8", "::ffff:10.0.0.0/129",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		check(config_parse_cidr(bad[i], &r) != 0, __FILE__, __LINE__,
		      "cidr '%s' accepted", bad[i]);
}

/* ---- whole files ------------------------------------------------------- */

static void
test_full_file(void)
{
	static const char text[] =
	    "\xEF\xBB\xBF; every key, none at its default\n"
	    "[proxy]\n"
	    "  listen = 0.0.0.0:8080 , [::]:8081,\n"
	    "           [::1]:8082\n"
	    "allow = 10.0.0.0/8, 192.168.1.7 ,2001:db8::/32\n"
	    "min_workers = 3\n"
	    "max_workers = 50\n"
	    "client_timeout = 90\n"
	    "header_timeout = 2500ms\n"
	    "max_request_header = 32KB\n"
	    "max_url = 2k\n"
	    "max_request_body = 1G\n"
	    "max_connections = 123\n"
	    "via = off\n"
	    "forwarded_for = Truncate\n"
	    "auth_realm = Office\n"
	    "shutdown_grace = 0\n"
	    "keepalive_linger = 0\n"
	    "connect_ports = 443, 8443 ,563\n"
	    "http_ports = 80, 8000-8999\n"
	    "\n"
	    "# upstream\n"
	    "[upstream]\n"
	    "connect_timeout = 3s ; an inline comment\n"
	    "timeout = 2m\n"
	    "parent = http://parent.example:8080\n"
	    "allow_loopback = yes\n"
	    "ca_file = @CA@\n"
	    "[cache]\n"
	    "memory = 1G\n"
	    "max_object = 100M\n"
	    "coalesce_timeout = 1h\n"
	    "heuristic_percent = 20\n"
	    "heuristic_max = 3d\n"
	    "[log]\n"
	    "access = /var/log/corral/access.log\n"
	    "format = combined\n"
	    "level = debug\r\n"
	    "[admin]\n"
	    "listen = [::1]:9000";
	char err[256] = "untouched";
	/* ca_file must name a file with a certificate in it */
	char ca[64], full[sizeof text + 64];
	snprintf(ca, sizeof ca, "/tmp/corral-test-ca-%d.pem", (int)getpid());
	write_text(ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
	const char *at = strstr(text, "@CA@");
	snprintf(full, sizeof full, "%.*s%s%s", (int)(at - text), text, ca, at + 4);
	struct config *c = load(full, err, sizeof err);
	unlink(ca);

	if (!check(c != NULL, __FILE__, __LINE__, "full file rejected: %s", err))
		return;
	CHECK_STR(err, "");
	CHECK_INT(c->n_listen, 3);
	CHECK_STR(c->listen[0].text, "0.0.0.0:8080");
	CHECK_INT(c->listen[0].addr.ss_family, AF_INET);
	CHECK_STR(c->listen[1].text, "[::]:8081");
	CHECK_INT(c->listen[1].addr.ss_family, AF_INET6);
	CHECK_STR(c->listen[2].text, "[::1]:8082");
	CHECK_INT(ntohs(((struct sockaddr_in6 *)&c->listen[2].addr)->sin6_port), 8082);
	CHECK_INT(c->n_allow, 3);
	CHECK_INT(c->allow[0].prefix, 8);
	CHECK_INT(c->allow[1].prefix, 32);
	CHECK_INT(c->allow[2].family, AF_INET6);
	CHECK_INT(c->allow[2].prefix, 32);
	CHECK_INT(c->min_workers, 3);
	CHECK_INT(c->max_workers, 50);
	CHECK_INT(c->client_timeout_ms, 90000);
	CHECK_INT(c->header_timeout_ms, 2500);
	CHECK_INT(c->max_request_header, 32768);
	CHECK_INT(c->max_url, 2048);
	CHECK_INT(c->max_request_body, 1ll << 30);
	CHECK_INT(c->max_connections, 123);
	CHECK_INT(c->via, 0);
	CHECK_INT(c->forwarded_for, FORWARDED_FOR_TRUNCATE);
	CHECK_STR(c->auth_realm, "Office");
	CHECK(c->auth == NULL);
	CHECK_INT(c->shutdown_grace_ms, 0);
	CHECK_INT(c->keepalive_linger_ms, 0);
	CHECK_INT(c->connect_ports.n, 3);
	CHECK_INT(c->connect_ports.range[0].lo, 443);
	CHECK_INT(c->connect_ports.range[1].lo, 8443);
	CHECK_INT(c->connect_ports.range[2].lo, 563);
	CHECK_INT(c->connect_ports.range[2].hi, 563);
	CHECK_INT(c->connect_ports.any, 0);
	CHECK_INT(c->http_ports.n, 2);
	CHECK(config_port_allowed(&c->http_ports, 80));
	CHECK(config_port_allowed(&c->http_ports, 8000));
	CHECK(config_port_allowed(&c->http_ports, 8999));
	CHECK(!config_port_allowed(&c->http_ports, 9000));
	CHECK(!config_port_allowed(&c->http_ports, 443));
	CHECK_STR(c->ca_file, ca);
	CHECK_INT(c->connect_timeout_ms, 3000);
	CHECK_INT(c->upstream_timeout_ms, 120000);
	CHECK_STR(c->parent, "http://parent.example:8080");
	CHECK_STR(c->parent_host, "parent.example:8080");
	CHECK_INT(c->allow_loopback, 1);
	CHECK_INT(c->cache_memory, 1ll << 30);
	CHECK_INT(c->max_object, 100ll << 20);
	CHECK_INT(c->coalesce_timeout_ms, 3600000);
	CHECK_INT(c->heuristic_percent, 20);
	CHECK_INT(c->heuristic_max_ms, 3 * 86400000LL);
	CHECK_STR(c->access_log, "/var/log/corral/access.log");
	CHECK_INT(c->log_format, LOG_FORMAT_COMBINED);
	CHECK_INT(c->log_level, LOG_LEVEL_DEBUG);
	CHECK_INT(c->has_admin, 1);
	CHECK_STR(c->admin_listen.text, "[::1]:9000");
	CHECK_INT(c->admin_listen.addr.ss_family, AF_INET6);
	CHECK(allowed(c, "10.9.8.7"));
	CHECK(allowed(c, "192.168.1.7"));
	CHECK(!allowed(c, "127.0.0.1"));
	CHECK(!allowed(c, "::1"));
	config_put(c);
}

static void
test_repeats(void)
{
	char err[256];
	struct config *c;

	/* last wins */
	c = load("[proxy]\nclient_timeout = 5s\nvia = off\n[cache]\nmemory = 1M\n"
	         "[proxy]\nclient_timeout = 7s\n", err, sizeof err);
	if (CHECK(c != NULL)) {
		CHECK_INT(c->client_timeout_ms, 7000);
		CHECK_INT(c->via, 0);
		CHECK_INT(c->cache_memory, 1 << 20);
		config_put(c);
	}

	/* listen and allow replace the default, and each other */
	c = load("[proxy]\nlisten = 127.0.0.1:1, 127.0.0.1:2\nlisten = [::1]:3\n"
	         "allow = 10.0.0.0/8\n", err, sizeof err);
	if (CHECK(c != NULL)) {
		CHECK_INT(c->n_listen, 1);
		CHECK_STR(c->listen[0].text, "[::1]:3");
		CHECK_INT(c->n_allow, 1);
		CHECK(allowed(c, "10.0.0.1"));
		CHECK(!allowed(c, "127.0.0.1"));
		CHECK(!allowed(c, "::1"));
		config_put(c);
	}

	/* a list goes on on indented lines, after a comma or not; blank lines,
	 * comments and inline comments do not end it */
	c = load("[proxy]\n"
	         "allow = 10.0.0.0/8,\n"
	         "        172.16.0.0/12, ; private\n"
	         "\n"
	         "; more\n"
	         "        192.168.0.0/16 ; private too\n"
	         "\t::1\n"
	         "listen = 127.0.0.1:1\n"
	         "  127.0.0.1:2\n"
	         "via = off\n", err, sizeof err);
	if (check(c != NULL, __FILE__, __LINE__, "continued lists: %s", err)) {
		CHECK_INT(c->n_allow, 4);
		CHECK(allowed(c, "172.20.1.1"));
		CHECK(allowed(c, "192.168.3.4"));
		CHECK(allowed(c, "::1"));
		CHECK(!allowed(c, "127.0.0.1"));
		CHECK_INT(c->n_listen, 2);
		CHECK_STR(c->listen[1].text, "127.0.0.1:2");
		CHECK_INT(c->via, 0);
		config_put(c);
	}

	/* the longest lists there is room for, and one more */
	for (int extra = 0; extra <= 1; extra++) {
		char text[8192];
		size_t n = (size_t)snprintf(text, sizeof text, "[proxy]\nlisten = 127.0.0.1:1");
		for (int i = 2; i <= CONFIG_MAX_LISTEN + extra; i++)
			n += (size_t)snprintf(text + n, sizeof text - n, ",\n  127.0.0.1:%d", i);
		n += (size_t)snprintf(text + n, sizeof text - n, "\nallow = ::");
		for (int i = 2; i <= CONFIG_MAX_ALLOW + extra; i++)
			n += (size_t)snprintf(text + n, sizeof text - n, "%s%x::",
			                      i % 8 == 0 ? "\n  " : ", ", i);
		snprintf(text + n, sizeof text - n, "\n");
		c = load(text, err, sizeof err);
		if (extra == 0 && check(c != NULL, __FILE__, __LINE__, "full lists: %s", err)) {
			CHECK_INT(c->n_listen, CONFIG_MAX_LISTEN);
			CHECK_INT(c->n_allow, CONFIG_MAX_ALLOW);
			CHECK(allowed(c, "40::"));
			CHECK(!allowed(c, "41::"));
			config_put(c);
		} else if (extra == 1 && CHECK(c == NULL)) {
			CHECK_HAS(err, "test.ini:18: [proxy] listen: expected at most 16 addresses, "
			          "got '127.0.0.1:17'");
		}
	}
	{
		/* the same with the listen list cut short: allow fails instead */
		char text[8192];
		size_t n = (size_t)snprintf(text, sizeof text, "[proxy]\nallow = ::");
		for (int i = 2; i <= CONFIG_MAX_ALLOW + 1; i++)
			n += (size_t)snprintf(text + n, sizeof text - n, "%s%x::",
			                      i % 8 == 0 ? "\n  " : ", ", i);
		c = load(text, err, sizeof err);
		if (CHECK(c == NULL))
			CHECK_HAS(err, "[proxy] allow: expected at most 64 CIDRs, got '41::'");
	}

	/* an indented key after a section is a key */
	c = load("[proxy]\n    via = off\n[cache]\n\tmemory = 1M\n", err, sizeof err);
	if (check(c != NULL, __FILE__, __LINE__, "indented keys: %s", err)) {
		CHECK_INT(c->via, 0);
		CHECK_INT(c->cache_memory, 1 << 20);
		config_put(c);
	}

	/* admin listen turned off, and on again */
	c = load("[admin]\nlisten =\n", err, sizeof err);
	if (CHECK(c != NULL)) {
		CHECK_INT(c->has_admin, 0);
		config_put(c);
	}
	c = load("[admin]\nlisten =\nlisten = 127.0.0.2:5\n", err, sizeof err);
	if (CHECK(c != NULL)) {
		CHECK_INT(c->has_admin, 1);
		CHECK_STR(c->admin_listen.text, "127.0.0.2:5");
		config_put(c);
	}

	/* empty parent and access log are allowed */
	c = load("[upstream]\nparent =\n[log]\naccess =\n", err, sizeof err);
	if (CHECK(c != NULL)) {
		CHECK_STR(c->parent, "");
		CHECK_STR(c->access_log, "");
		config_put(c);
	}

	/* a "key: value" line, as Python's configparser allows */
	c = load("[proxy]\nmax_connections: 9\n", err, sizeof err);
	if (CHECK(c != NULL)) {
		CHECK_INT(c->max_connections, 9);
		config_put(c);
	}

	/* min_workers left to its default follows a small max_workers */
	c = load("[proxy]\nmax_workers = 1\n", err, sizeof err);
	if (CHECK(c != NULL)) {
		CHECK_INT(c->max_workers, 1);
		CHECK_INT(c->min_workers, 1);
		config_put(c);
	}
	c = load("[proxy]\nmin_workers = 5\nmax_workers = 5\n", err, sizeof err);
	if (CHECK(c != NULL)) {
		CHECK_INT(c->min_workers, 5);
		config_put(c);
	}
}

static void
test_errors(void)
{
	char err[256];
	struct config *c;

	CHECK_LOAD_FAILS("[proxy]\nvia = on\n[foo]\nx = 1\n",
	                 "test.ini:3: unknown section [foo]");
	/* even without a key in it */
	CHECK_LOAD_FAILS("[proxy]\n[bogus]\n[cache]\n", "test.ini:2: unknown section [bogus]");
	CHECK_LOAD_FAILS("[Proxy]\n", "test.ini:1: unknown section [Proxy]");
	CHECK_LOAD_FAILS("\n\n[proxy]\nvia = on\nfrobnicate = 1\n",
	                 "test.ini:5: [proxy] frobnicate: unknown key");
	/* a key of another section */
	CHECK_LOAD_FAILS("[cache]\nvia = on\n", "test.ini:2: [cache] via: unknown key");
	CHECK_LOAD_FAILS("via = on\n", "test.ini:1: via: key outside any section");

	/* bad values: file, line, section, key, what was expected, what was got */
	c = load("[proxy]\nvia = on\nclient_timeout = soon\n", err, sizeof err);
	CHECK(c == NULL);
	CHECK_STR(err, "test.ini:3: [proxy] client_timeout: expected a duration "
	          "(ms, s, m, h, d), got 'soon'");
	CHECK_LOAD_FAILS("[proxy]\nmax_url = lots\n",
	                 "test.ini:2: [proxy] max_url: expected a size", "got 'lots'");
	CHECK_LOAD_FAILS("[proxy]\nvia = maybe\n",
	                 "test.ini:2: [proxy] via: expected on or off, got 'maybe'");
	CHECK_LOAD_FAILS("[proxy]\nmax_connections = 0\n",
	                 "test.ini:2: [proxy] max_connections: expected an integer",
	                 "got '0'");
	CHECK_LOAD_FAILS("[proxy]\nmax_connections = -5\n",
	                 "test.ini:2: [proxy] max_connections:", "got '-5'");
	CHECK_LOAD_FAILS("[proxy]\nmax_workers = 2147483648\n",
	                 "test.ini:2: [proxy] max_workers:", "got '2147483648'");
	CHECK_LOAD_FAILS("[proxy]\nmin_workers = 0\n", "test.ini:2: [proxy] min_workers:");
	CHECK_LOAD_FAILS("[proxy]\nmin_workers = 4x\n", "test.ini:2: [proxy] min_workers:");
	CHECK_LOAD_FAILS("[proxy]\nmin_workers =\n", "test.ini:2: [proxy] min_workers:",
	                 "got ''");
	CHECK_LOAD_FAILS("[proxy]\nheader_timeout = 0\n",
	                 "test.ini:2: [proxy] header_timeout: expected a duration greater than 0");
	CHECK_LOAD_FAILS("[upstream]\ntimeout = 0ms\n",
	                 "test.ini:2: [upstream] timeout: expected a duration greater than 0");
	CHECK_LOAD_FAILS("[upstream]\nconnect_timeout = -1s\n",
	                 "test.ini:2: [upstream] connect_timeout:", "got '-1s'");
	CHECK_LOAD_FAILS("[cache]\ncoalesce_timeout = 0\n", "[cache] coalesce_timeout:");
	CHECK_LOAD_FAILS("[cache]\nheuristic_percent = -1\n", "test.ini:2: [cache] heuristic_percent:");
	CHECK_LOAD_FAILS("[cache]\nheuristic_max = soon\n", "test.ini:2: [cache] heuristic_max:");
	CHECK_LOAD_FAILS("[cache]\nmemory = 0\n", "test.ini:2: [cache] memory: expected a size greater than 0");
	CHECK_LOAD_FAILS("[cache]\nmax_object = 1TB\n", "test.ini:2: [cache] max_object:");
	CHECK_LOAD_FAILS("[cache]\nmemory =\n", "test.ini:2: [cache] memory:");
	CHECK_LOAD_FAILS("[proxy]\nmax_request_header = 0\n", "[proxy] max_request_header:");
	CHECK_LOAD_FAILS("[proxy]\nmax_request_body = 99999999999999999999\n",
	                 "[proxy] max_request_body:");
	CHECK_LOAD_FAILS("[log]\nformat = json\n",
	                 "test.ini:2: [log] format: expected squid or combined, got 'json'");
	CHECK_LOAD_FAILS("[log]\nlevel = verbose\n",
	                 "test.ini:2: [log] level: expected error, warn, info or debug, got 'verbose'");
	CHECK_LOAD_FAILS("[proxy]\nforwarded_for = yes\n",
	                 "test.ini:2: [proxy] forwarded_for: expected on, off, transparent, "
	                 "truncate or delete, got 'yes'");
	CHECK_LOAD_FAILS("[proxy]\nauth_realm = a \"b\"\n",
	                 "test.ini:2: [proxy] auth_realm: expected a name without quotes");
	/* the parent's host for messages: never its user or password */
	c = load("[upstream]\nparent = http://user:secret@up.example:3128/\n", err, sizeof err);
	if (CHECK(c != NULL)) {
		CHECK_STR(c->parent_host, "up.example:3128");
		config_put(c);
	}
	CHECK_LOAD_FAILS("[upstream]\nca_file = /nonexistent/ca.pem\n",
	                 "test.ini:2: [upstream] ca_file: /nonexistent/ca.pem: no such file");
	write_text("/tmp/corral-test-noca.pem", "not a certificate\n");
	CHECK_LOAD_FAILS("[upstream]\nca_file = /tmp/corral-test-noca.pem\n",
	                 "test.ini:2: [upstream] ca_file: /tmp/corral-test-noca.pem: no PEM");
	unlink("/tmp/corral-test-noca.pem");
	CHECK_LOAD_FAILS("[proxy]\nauth_file = /nonexistent/users\n",
	                 "test.ini:2: [proxy] auth_file: /nonexistent/users: cannot open");
	CHECK_LOAD_FAILS("[admin]\nlisten = 3129\n",
	                 "test.ini:2: [admin] listen: expected", "got '3129'");
	CHECK_LOAD_FAILS("[proxy]\nconnect_ports = 443, https\n",
	                 "test.ini:2: [proxy] connect_ports: expected * or a list "
	                 "of ports and ranges from 1 to 65535 (443, 1025-65535), got 'https'");
	CHECK_LOAD_FAILS("[proxy]\nhttp_ports = 80, 9000-8000\n",
	                 "test.ini:2: [proxy] http_ports: expected", "got '9000-8000'");
	CHECK_LOAD_FAILS("[proxy]\nhttp_ports = 80, 1-\n",
	                 "test.ini:2: [proxy] http_ports: expected", "got '1-'");
	CHECK_LOAD_FAILS("[proxy]\nhttp_ports = 1-65536\n",
	                 "test.ini:2: [proxy] http_ports: expected", "got '1-65536'");
	CHECK_LOAD_FAILS("[proxy]\nhttp_ports = 10-20, 10-20\n",
	                 "test.ini:2: [proxy] http_ports: expected each item once");
	CHECK_LOAD_FAILS("[proxy]\nconnect_ports = 0\n",
	                 "test.ini:2: [proxy] connect_ports: expected * or a list");
	CHECK_LOAD_FAILS("[proxy]\nconnect_ports = 65536\n",
	                 "test.ini:2: [proxy] connect_ports:");
	CHECK_LOAD_FAILS("[proxy]\nconnect_ports = 443,443\n",
	                 "test.ini:2: [proxy] connect_ports: expected each");
	c = load("[proxy]\nconnect_ports = *\n", err, sizeof err);
	if (CHECK(c != NULL)) {
		CHECK_INT(c->connect_ports.any, 1);
		CHECK(config_port_allowed(&c->connect_ports, 22));
		config_put(c);
	}
	c = load("[proxy]\nconnect_ports =\n", err, sizeof err);
	if (CHECK(c != NULL)) {
		CHECK_INT(c->connect_ports.any, 0);
		CHECK_INT(c->connect_ports.n, 0);
		CHECK(!config_port_allowed(&c->connect_ports, 443));
		config_put(c);
	}
	CHECK_LOAD_FAILS("[upstream]\nallow_loopback = sometimes\n",
	                 "test.ini:2: [upstream] allow_loopback:");

	/* lists: the bad item is named */
	CHECK_LOAD_FAILS("[proxy]\nlisten = 127.0.0.1:3128, localhost:3128\n",
	                 "test.ini:2: [proxy] listen: expected", "got 'localhost:3128'");
	/* a comma at the end of a line is fine, with nothing after it too */
	c = load("[proxy]\nlisten = 127.0.0.1:3128,\n", err, sizeof err);
	if (check(c != NULL, __FILE__, __LINE__, "trailing comma: %s", err)) {
		CHECK_INT(c->n_listen, 1);
		config_put(c);
	}
	CHECK_LOAD_FAILS("[proxy]\nlisten =\n", "test.ini:2: [proxy] listen:", "got ''");
	CHECK_LOAD_FAILS("[proxy]\nlisten = [::1]:99999\n",
	                 "test.ini:2: [proxy] listen:", "got '[::1]:99999'");
	CHECK_LOAD_FAILS("[proxy]\nlisten = 127.0.0.1:1, 127.0.0.1:1\n",
	                 "test.ini:2: [proxy] listen: expected each item once, "
	                 "got '127.0.0.1:1'");
	CHECK_LOAD_FAILS("[proxy]\nallow = 10.0.0.0/8, 10.0.0.0/33\n",
	                 "test.ini:2: [proxy] allow: expected an address or CIDR",
	                 "got '10.0.0.0/33'");
	CHECK_LOAD_FAILS("[proxy]\nallow =\n", "test.ini:2: [proxy] allow:");
	CHECK_LOAD_FAILS("[proxy]\nallow = ::/129\n", "got '::/129'");
	CHECK_LOAD_FAILS("[proxy]\nallow = ,\n", "test.ini:2: [proxy] allow:", "got ''");
	CHECK_LOAD_FAILS("[proxy]\nallow = ::1,,::2\n", "test.ini:2: [proxy] allow:", "got ''");
	CHECK_LOAD_FAILS("[proxy]\nallow = ::1\n  ,::2\n", "test.ini:3: [proxy] allow:",
	                 "got ''");
	CHECK_LOAD_FAILS("[proxy]\nallow = ::1\n\n  10.0.0.0/40\n",
	                 "test.ini:4: [proxy] allow:", "got '10.0.0.0/40'");
	CHECK_LOAD_FAILS("[proxy]\nlisten = 127.0.0.1:1\n  127.0.0.1:1\n",
	                 "test.ini:3: [proxy] listen:", "got '127.0.0.1:1'");

	/* only lists continue: an indented key after a key is a mistake */
	CHECK_LOAD_FAILS("[proxy]\nvia = on\n  max_url = 8K\n",
	                 "test.ini:3: [proxy] via: expected one line", "got 'max_url = 8K'");
	CHECK_LOAD_FAILS("[proxy]\nallow = ::1\n  max_url = 8K\n",
	                 "test.ini:3: [proxy] allow: expected", "got 'max_url = 8K'");

	/* the admin listener cannot share a proxy address */
	CHECK_LOAD_FAILS("[proxy]\nlisten = 127.0.0.1:3129\n",
	                 "test.ini:2: [proxy] listen:", "got '127.0.0.1:3129'");
	CHECK_LOAD_FAILS("[proxy]\nlisten = 127.0.0.1:7\n[admin]\nlisten = 127.0.0.1:7\n",
	                 "test.ini:4: [admin] listen:", "got '127.0.0.1:7'");
	c = load("[proxy]\nlisten = 127.0.0.1:3129\n[admin]\nlisten =\n", err, sizeof err);
	if (CHECK(c != NULL))
		config_put(c);

	/* min_workers > max_workers, in either order, names min_workers' line */
	CHECK_LOAD_FAILS("[proxy]\nmin_workers = 10\nmax_workers = 4\n",
	                 "test.ini:2: [proxy] min_workers: expected at most max_workers (4), got '10'");
	CHECK_LOAD_FAILS("[proxy]\nmax_workers = 4\nvia = on\nmin_workers = 10\n",
	                 "test.ini:4: [proxy] min_workers:", "got '10'");
	CHECK_LOAD_FAILS("[proxy]\nmin_workers = 5000\n",
	                 "test.ini:2: [proxy] min_workers: expected at most max_workers (4096)");

	/* lines inih cannot read */
	CHECK_LOAD_FAILS("[proxy]\nvia = on\ngarbage\n",
	                 "test.ini:3: expected '[section]' or 'key = value', got 'garbage'");
	CHECK_LOAD_FAILS("[proxy\nvia = on\n", "test.ini:1:", "got '[proxy'");
	CHECK_LOAD_FAILS("[proxy]\n  \t   indented garbage  \n", "test.ini:2:",
	                 "got 'indented garbage'");

	/* a line longer than inih's buffer is an error, not a cut value */
	{
		char text[1024];
		int n = snprintf(text, sizeof text, "[log]\naccess = /");
		memset(text + n, 'a', 400);
		snprintf(text + n + 400, sizeof text - (size_t)n - 400, "\nlevel = debug\n");
		CHECK_LOAD_FAILS(text, "test.ini:2: line too long");
		/* but a long comment is only a comment */
		memcpy(text + 6, "; long ", 7);
		char err[256];
		c = load(text, err, sizeof err);
		if (check(c != NULL, __FILE__, __LINE__, "long comment: %s", err)) {
			CHECK_INT(c->log_level, LOG_LEVEL_DEBUG);
			CHECK_STR(c->access_log, "-");
			config_put(c);
		}
	}

	/* only the first error is reported */
	CHECK_LOAD_FAILS("[proxy]\nvia = x\nmax_url = y\n[foo]\n", "test.ini:2: [proxy] via:");
	CHECK_LOAD_FAILS("[proxy]\nnoequals\nvia = x\n", "test.ini:2:", "got 'noequals'");
	CHECK_LOAD_FAILS("[proxy]\nvia = x\nnoequals\n", "test.ini:2: [proxy] via:");
	CHECK_LOAD_FAILS("[proxy]\nvia = x\n[nope]\n", "test.ini:2: [proxy] via:");
	CHECK_LOAD_FAILS("[nope]\nvia = x\n", "test.ini:1: unknown section [nope]");

	/* control bytes are not copied into the message */
	c = load("[proxy]\nvia = \x1b[31mred\n", err, sizeof err);
	CHECK(c == NULL);
	CHECK(strchr(err, '\x1b') == NULL);
	CHECK_HAS(err, "got '?[31mred'");

	/* a short buffer gets a cut message, and a zero-length one none */
	c = load("[proxy]\nvia = x\n", err, 12);
	CHECK(c == NULL);
	CHECK_STR(err, "test.ini:2:");
	CHECK(load("[proxy]\nvia = x\n", NULL, 0) == NULL);
}

/* ---- files on disk ----------------------------------------------------- */

static void
test_files(void)
{
	char err[512], path[] = "/tmp/test_config.XXXXXX";
	struct config *c, d;
	int fd;

	c = config_load("/nonexistent/corral.ini", err, sizeof err);
	CHECK(c == NULL);
	CHECK_STR(err, "/nonexistent/corral.ini: cannot open: No such file or directory");

	c = config_load("/", err, sizeof err);
	CHECK(c == NULL);
	CHECK_HAS(err, "/: cannot read: Is a directory");

	fd = mkstemp(path);
	if (!CHECK(fd >= 0))
		return;
	static const char bad[] = "[proxy]\nvia = on\n[cache]\nmemory = 12Q\n";
	CHECK(write(fd, bad, sizeof bad - 1) == (ssize_t)(sizeof bad - 1));
	c = config_load(path, err, sizeof err);
	CHECK(c == NULL);
	char want[128];
	snprintf(want, sizeof want, "%s:4: [cache] memory: expected a size", path);
	CHECK_HAS(err, want);
	CHECK_HAS(err, "got '12Q'");

	CHECK(ftruncate(fd, 0) == 0);
	static const char good[] = "[cache]\nmemory = 12M\n";
	CHECK(pwrite(fd, good, sizeof good - 1, 0) == (ssize_t)(sizeof good - 1));
	c = config_load(path, err, sizeof err);
	if (CHECK(c != NULL)) {
		CHECK_STR(c->path, path);
		CHECK_INT(c->cache_memory, 12 << 20);
		config_put(c);
	}

	static const char nul[] = "[cache]\nmemory = 1M\0\n";
	CHECK(ftruncate(fd, 0) == 0);
	CHECK(pwrite(fd, nul, sizeof nul - 1, 0) == (ssize_t)(sizeof nul - 1));
	c = config_load(path, err, sizeof err);
	CHECK(c == NULL);
	CHECK_HAS(err, "NUL byte");
	close(fd);
	unlink(path);

	/* the shipped file is every default */
	c = config_load("conf/corral.ini", err, sizeof err);
	if (check(c != NULL, __FILE__, __LINE__, "conf/corral.ini: %s", err)) {
		config_defaults(&d);
		CHECK_SAME_CONFIG("conf/corral.ini", c, &d);
		CHECK_STR(c->path, "conf/corral.ini");
		config_put(c);
	}
}

/* ---- the client ACL ---------------------------------------------------- */

static void
test_allowed(void)
{
	char err[256];
	struct config d, *c;

	config_defaults(&d);
	CHECK(allowed(&d, "127.0.0.1"));
	CHECK(allowed(&d, "127.255.255.254"));
	CHECK(!allowed(&d, "128.0.0.1"));
	CHECK(!allowed(&d, "126.255.255.255"));
	CHECK(!allowed(&d, "10.0.0.1"));
	CHECK(allowed(&d, "::1"));
	CHECK(!allowed(&d, "::2"));
	CHECK(!allowed(&d, "::"));
	CHECK(allowed(&d, "::ffff:127.0.0.1"));
	CHECK(allowed(&d, "::ffff:127.1.2.3"));
	CHECK(!allowed(&d, "::ffff:10.0.0.1"));
	CHECK(!allowed(&d, "::127.0.0.1")); /* IPv4-compatible is not mapped */

	c = load("[proxy]\nallow = 10.0.0.0/9, 2001:db8::/32, 192.168.1.7, "
	         "::ffff:172.16.0.0/108, fe80::/10\n", err, sizeof err);
	if (!check(c != NULL, __FILE__, __LINE__, "allow: %s", err))
		return;
	CHECK(allowed(c, "10.0.0.0"));
	CHECK(allowed(c, "10.127.255.255"));
	CHECK(!allowed(c, "10.128.0.0"));
	CHECK(!allowed(c, "11.0.0.1"));
	CHECK(allowed(c, "::ffff:10.1.1.1"));
	CHECK(!allowed(c, "::ffff:10.200.1.1"));
	CHECK(allowed(c, "192.168.1.7"));
	CHECK(!allowed(c, "192.168.1.8"));
	CHECK(allowed(c, "::ffff:192.168.1.7"));
	CHECK(allowed(c, "172.16.0.1"));
	CHECK(allowed(c, "172.31.255.255"));
	CHECK(!allowed(c, "172.32.0.0"));
	CHECK(allowed(c, "2001:db8::1"));
	CHECK(allowed(c, "2001:db8:ffff:ffff::1"));
	CHECK(!allowed(c, "2001:db9::"));
	CHECK(allowed(c, "fe80::1"));
	CHECK(allowed(c, "febf::1"));
	CHECK(!allowed(c, "fec0::1"));
	CHECK(!allowed(c, "127.0.0.1"));
	CHECK(!allowed(c, "::1"));

	/* other families are never allowed */
	struct sockaddr_un sun;
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	CHECK(!config_client_allowed(c, (struct sockaddr *)&sun));
	config_put(c);

	/* /0 lets everyone of its family in, and only them */
	c = load("[proxy]\nallow = 0.0.0.0/0\n", err, sizeof err);
	if (CHECK(c != NULL)) {
		CHECK(allowed(c, "1.2.3.4"));
		CHECK(allowed(c, "255.255.255.255"));
		CHECK(allowed(c, "::ffff:8.8.8.8"));
		CHECK(!allowed(c, "2001:db8::1"));
		config_put(c);
	}
	c = load("[proxy]\nallow = ::/0\n", err, sizeof err);
	if (CHECK(c != NULL)) {
		CHECK(allowed(c, "2001:db8::1"));
		CHECK(!allowed(c, "1.2.3.4"));
		config_put(c);
	}
}

/* ---- the running config ----------------------------------------------- */

#define N_READERS 4
#define N_INSTALLS 300

static atomic_int stop_readers;

/* Take and drop the running config as fast as possible; each one must be
 * whole while held. */
static void *
reader_main(void *arg)
{
	long bad = 0, gets = 0;

	(void)arg;
	while (!atomic_load(&stop_readers) || gets == 0) {
		struct config *c = config_get();
		if (c == NULL)
			continue;
		if (c->max_connections < 1000 || c->max_connections >= 1000 + N_INSTALLS ||
		    c->n_listen != 1 || c->via != 1)
			bad++;
		config_put(c);
		gets++;
	}
	return (void *)bad;
}

static void
test_running(void)
{
	char err[256], text[128];
	struct config *a, *b, *g, *h;
	pthread_t th[N_READERS];

	CHECK(config_get() == NULL);

	/* loaded and never installed: one put frees it (ASan checks) */
	a = load("", err, sizeof err);
	CHECK(a != NULL);
	config_put(a);
	config_put(NULL);

	a = load("[proxy]\nmax_connections = 1\n", err, sizeof err);
	b = load("[proxy]\nmax_connections = 2\n", err, sizeof err);
	if (!CHECK(a != NULL && b != NULL))
		return;
	config_install(a);
	g = config_get();
	CHECK(g == a);
	h = config_get();
	CHECK(h == a);
	config_put(h);
	config_install(b);
	/* a is no longer running but still held by g */
	CHECK_INT(g->max_connections, 1);
	config_put(g);
	g = config_get();
	CHECK(g == b);
	CHECK_INT(g->max_connections, 2);
	config_put(g);
	/* installing the running config again needs a reference to hand over */
	config_install(config_get());
	g = config_get();
	CHECK(g == b);
	CHECK_INT(g->max_connections, 2);
	config_put(g);

	/* readers race the installs */
	a = load("[proxy]\nmax_connections = 1000\n", err, sizeof err);
	if (!CHECK(a != NULL))
		return;
	config_install(a);
	atomic_store(&stop_readers, 0);
	for (int i = 0; i < N_READERS; i++)
		CHECK(pthread_create(&th[i], NULL, reader_main, NULL) == 0);
	for (int i = 1; i < N_INSTALLS; i++) {
		snprintf(text, sizeof text, "[proxy]\nmax_connections = %d\n", 1000 + i);
		a = load(text, err, sizeof err);
		if (!CHECK(a != NULL))
			break;
		config_install(a);
	}
	atomic_store(&stop_readers, 1);
	for (int i = 0; i < N_READERS; i++) {
		void *bad;
		CHECK(pthread_join(th[i], &bad) == 0);
		check(bad == NULL, __FILE__, __LINE__, "reader %d saw %ld torn configs",
		      i, (long)bad);
	}
	g = config_get();
	if (CHECK(g != NULL)) {
		CHECK_INT(g->max_connections, 1000 + N_INSTALLS - 1);
		config_put(g);
	}
	config_install(NULL);
	CHECK(config_get() == NULL);
}

int
main(void)
{
	test_defaults();
	test_size();
	test_duration();
	test_bool();
	test_hostport();
	test_cidr();
	test_full_file();
	test_repeats();
	test_errors();
	test_files();
	test_allowed();
	test_running();
	return check_summary("config");
}

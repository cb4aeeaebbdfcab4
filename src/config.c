/*
 * config.c — the ini file, its defaults, its validation and the running config.
 *
 * config_load() reads one file into memory and config_load_string() parses it
 * with inih into a config that starts as a copy of config_defaults(). Every
 * key is described once, in the `keys` table below: its section, its name,
 * the kind of value it takes and the field it fills. A key given twice keeps
 * the last value; `listen` and `allow` take a comma-separated list that
 * replaces the whole list (the default included), never appends to it.
 *
 * Errors. Loading never exits and never half-applies: the first problem in
 * the file (an unknown section or key, a value that does not parse, a line
 * inih cannot read) makes the whole load fail with one message of the form
 *   FILE:LINE: [section] key: expected WHAT, got 'VALUE'
 * Line numbers come from our own line reader (ini_parse_stream), which counts
 * the lines it hands to inih: inih calls the handler for a line before it asks
 * for the next one, so the count is the handler's line. The reader also sorts
 * each line as inih will, which lets it report an unknown section even when
 * no key follows it (this inih is built not to tell the handler about
 * sections) and tell the handler when a line is a continuation: inih, like
 * Python's configparser, hands an indented line after a key to the handler
 * as more of that key's value. Continuation lines append to the `listen` and
 * `allow` lists (so a list may be longer than one line) and are an error
 * after any other key. inih's line buffer is INI_MAX_LINE (200) bytes: a
 * longer line is an error rather than a silently truncated value. Checks
 * that involve two keys (min_workers <= max_workers, [admin] listen not one
 * of the [proxy] listen addresses) run once the whole file is read. When
 * min_workers is not given, its default (2 per CPU) is lowered to
 * max_workers instead of being an error.
 *
 * The running config. A config never changes after it is built. It lives in
 * a `struct config_box` together with its reference count; `current` is
 * the running one and holds one reference. config_get() takes a reference
 * under `current_mtx` (so it cannot race with the swap that drops the old
 * pointer's reference), config_put() drops one outside any lock, and the last
 * put frees the box. config_load() hands its caller the first reference;
 * config_install() takes it over.
 */
#include "corral/config.h"
#include "corral/auth.h"
#include "corral/strbuf.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define CONFIG_MAGIC 0x43464731u /* "CFG1" */
#define CONFIG_MAX_FILE (1024 * 1024)

struct config_box {
	unsigned magic;
	atomic_int refs; /* readers plus one for `current` while installed */
	struct config c;
};

static pthread_mutex_t current_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct config *current; /* protected by current_mtx */

/* ---- values ---------------------------------------------------------- */

/* Leading decimal digits of *sp into *out, advancing *sp. At least one digit,
 * no sign, no overflow. */
static int
parse_digits(const char **sp, uint64_t *out)
{
	const char *s = *sp;
	uint64_t v = 0;

	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*sp = s;
	*out = v;
	return 0;
}

int
config_parse_size(const char *s, uint64_t *out)
{
	uint64_t v, mult = 1;

	assert(s != NULL && out != NULL);
	if (parse_digits(&s, &v) != 0)
		return -1;
	switch (*s) {
	case 'k': case 'K': mult = 1ull << 10; s++; break;
	case 'm': case 'M': mult = 1ull << 20; s++; break;
	case 'g': case 'G': mult = 1ull << 30; s++; break;
	default: break;
	}
	if (*s == 'b' || *s == 'B')
		s++;
	if (*s != '\0' || v > UINT64_MAX / mult)
		return -1;
	*out = v * mult;
	return 0;
}

int
config_parse_duration(const char *s, int64_t *out_ms)
{
	uint64_t v, mult;

	assert(s != NULL && out_ms != NULL);
	if (parse_digits(&s, &v) != 0)
		return -1;
	if (*s == '\0' || strcasecmp(s, "s") == 0)
		mult = 1000;
	else if (strcasecmp(s, "ms") == 0)
		mult = 1;
	else if (strcasecmp(s, "m") == 0)
		mult = 60 * 1000;
	else if (strcasecmp(s, "h") == 0)
		mult = 60 * 60 * 1000;
	else if (strcasecmp(s, "d") == 0)
		mult = 24 * 60 * 60 * 1000;
	else
		return -1;
	if (v > (uint64_t)INT64_MAX / mult)
		return -1;
	*out_ms = (int64_t)(v * mult);
	return 0;
}

int
config_parse_bool(const char *s, int *out)
{
	static const char *const yes[] = { "on", "yes", "true", "1" };
	static const char *const no[] = { "off", "no", "false", "0" };

	assert(s != NULL && out != NULL);
	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

/* "1".."65535", digits only. */
static int
parse_port(const char *s, in_port_t *out)
{
	uint64_t v;

	if (strlen(s) > 5 || parse_digits(&s, &v) != 0 || *s != '\0')
		return -1;
	if (v < 1 || v > 65535)
		return -1;
	*out = htons((in_port_t)v);
	return 0;
}

/* "1.2.3.4:80" or "[::1]:80"; numeric addresses only, no names. */
int
config_parse_hostport(const char *s, struct config_listen *out)
{
	char host[INET6_ADDRSTRLEN];
	const char *port;
	size_t hlen;
	in_port_t nport;

	assert(s != NULL && out != NULL);
	memset(out, 0, sizeof *out);
	if (strlen(s) >= sizeof out->text)
		return -1;
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (end == NULL || end[1] != ':')
			return -1;
		hlen = (size_t)(end - (s + 1));
		if (hlen == 0 || hlen >= sizeof host)
			return -1;
		memcpy(host, s + 1, hlen);
		host[hlen] = '\0';
		port = end + 2;
		if (parse_port(port, &nport) != 0)
			return -1;
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->addr;
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = nport;
		out->addrlen = sizeof *sin6;
	} else {
		const char *colon = strchr(s, ':');
		if (colon == NULL || strchr(colon + 1, ':') != NULL)
			return -1; /* no port, or IPv6 without brackets */
		hlen = (size_t)(colon - s);
		if (hlen == 0 || hlen >= sizeof host)
			return -1;
		memcpy(host, s, hlen);
		host[hlen] = '\0';
		port = colon + 1;
		if (parse_port(port, &nport) != 0)
			return -1;
		struct sockaddr_in *sin = (struct sockaddr_in *)&out->addr;
		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return -1;
		sin->sin_family = AF_INET;
		sin->sin_port = nport;
		out->addrlen = sizeof *sin;
	}
	snprintf(out->text, sizeof out->text, "%s", s);
	return 0;
}

/* Zero the bits of `addr` after the first `prefix`. */
static void
mask_host_bits(unsigned char *addr, int len, int prefix)
{
	for (int i = 0; i < len; i++) {
		int keep = prefix - i * 8;
		if (keep >= 8)
			continue;
		addr[i] &= keep <= 0 ? 0 : (unsigned char)(0xff << (8 - keep));
	}
}

static const unsigned char v4mapped_prefix[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

/* "10.0.0.0/8", "::1/128"; a bare address is a /32 or /128. Host bits are
 * zeroed. An IPv4-mapped IPv6 CIDR of /96 or longer (::ffff:10.0.0.0/104) is
 * stored as the IPv4 CIDR it means (10.0.0.0/8). */
int
config_parse_cidr(const char *s, struct config_cidr *out)
{
	char host[INET6_ADDRSTRLEN];
	const char *slash;
	size_t hlen;
	int max;

	assert(s != NULL && out != NULL);
	memset(out, 0, sizeof *out);
	slash = strchr(s, '/');
	hlen = slash != NULL ? (size_t)(slash - s) : strlen(s);
	if (hlen == 0 || hlen >= sizeof host)
		return -1;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (strchr(host, ':') != NULL) {
		if (inet_pton(AF_INET6, host, out->addr) != 1)
			return -1;
		out->family = AF_INET6;
		max = 128;
	} else {
		if (inet_pton(AF_INET, host, out->addr) != 1)
			return -1;
		out->family = AF_INET;
		max = 32;
	}
	out->prefix = max;
	if (slash != NULL) {
		const char *p = slash + 1;
		uint64_t v;
		if (strlen(p) > 3 || parse_digits(&p, &v) != 0 || *p != '\0' ||
		    v > (uint64_t)max)
			return -1;
		out->prefix = (int)v;
	}
	if (out->family == AF_INET6 && out->prefix >= 96 &&
	    memcmp(out->addr, v4mapped_prefix, sizeof v4mapped_prefix) == 0) {
		memmove(out->addr, out->addr + 12, 4);
		memset(out->addr + 4, 0, 12);
		out->family = AF_INET;
		out->prefix -= 96;
	}
	mask_host_bits(out->addr, out->family == AF_INET ? 4 : 16, out->prefix);
	return 0;
}

int
config_client_allowed(const struct config *c, const struct sockaddr *sa)
{
	const unsigned char *addr;
	unsigned char buf[16];
	int family;

	assert(c != NULL && sa != NULL);
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		memcpy(buf, &sin->sin_addr, 4);
		addr = buf;
		family = AF_INET;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		memcpy(buf, &sin6->sin6_addr, 16);
		if (memcmp(buf, v4mapped_prefix, sizeof v4mapped_prefix) == 0) {
			addr = buf + 12;
			family = AF_INET;
		} else {
			addr = buf;
			family = AF_INET6;
		}
	} else {
		return 0;
	}
	for (int i = 0; i < c->n_allow; i++) {
		const struct config_cidr *r = &c->allow[i];
		int whole = r->prefix / 8, rest = r->prefix % 8;
		if (r->family != family)
			continue;
		if (memcmp(addr, r->addr, (size_t)whole) != 0)
			continue;
		if (rest != 0) {
			unsigned char mask = (unsigned char)(0xff << (8 - rest));
			if ((addr[whole] & mask) != r->addr[whole])
				continue;
		}
		return 1;
	}
	return 0;
}

/* ---- defaults --------------------------------------------------------- */

void
config_defaults(struct config *c)
{
	long ncpu;
	int rc;

	assert(c != NULL);
	memset(c, 0, sizeof *c);

	rc = config_parse_hostport("127.0.0.1:3128", &c->listen[0]);
	assert(rc == 0);
	c->n_listen = 1;
	rc = config_parse_cidr("127.0.0.0/8", &c->allow[0]);
	assert(rc == 0);
	rc = config_parse_cidr("::1/128", &c->allow[1]);
	assert(rc == 0);
	c->n_allow = 2;
	c->max_workers = 4096;
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 1)
		ncpu = 1;
	c->min_workers = ncpu * 2 < c->max_workers ? (int)ncpu * 2 : c->max_workers;
	c->client_timeout_ms = 60 * 1000;
	c->header_timeout_ms = 10 * 1000;
	c->max_request_header = 64 * 1024;
	c->max_url = 8 * 1024;
	c->max_request_body = 0;
	c->max_connections = 4096;
	c->via = 1;
	c->forwarded_for = FORWARDED_FOR_ON;
	strcpy(c->auth_realm, "corral");
	c->shutdown_grace_ms = 10 * 1000;
	c->keepalive_linger_ms = 50;
	c->connect_ports = (struct config_ports){ .range = { { 443, 443 } }, .n = 1 };
	/* Squid's Safe_ports and SSL_ports, without the ports of schemes
	 * corral does not speak (ftp 21, gopher 70, wais 210) */
	c->http_ports = (struct config_ports){
		.range = { { 80, 80 }, { 443, 443 }, { 280, 280 }, { 488, 488 }, { 591, 591 },
		           { 777, 777 }, { 1025, 65535 } },
		.n = 7,
	};

	c->connect_timeout_ms = 10 * 1000;
	c->upstream_timeout_ms = 120 * 1000;
	c->parent[0] = '\0';
	c->allow_loopback = 0;

	c->cache_memory = 256ull << 20;
	c->max_object = 64ull << 20;
	c->coalesce_timeout_ms = 30 * 1000;
	c->heuristic_percent = 10;
	c->heuristic_max_ms = 24 * 3600 * 1000LL;

	snprintf(c->access_log, sizeof c->access_log, "-");
	c->log_format = LOG_FORMAT_SQUID;
	c->log_level = LOG_LEVEL_INFO;

	rc = config_parse_hostport("127.0.0.1:3129", &c->admin_listen);
	assert(rc == 0);
	c->has_admin = 1;
	(void)rc;
}

/* ---- the keys --------------------------------------------------------- */

enum key_kind {
	KEY_INT,      /* int, decimal, >= min */
	KEY_DURATION, /* int64_t ms, >= min */
	KEY_SIZE,     /* uint64_t or size_t (by `size`), >= min */
	KEY_BOOL,     /* int 0/1 */
	KEY_STRING,   /* char[size], may be empty */
	KEY_LISTEN,   /* [proxy] listen: the list of host:port */
	KEY_ALLOW,    /* [proxy] allow: the list of CIDRs */
	KEY_ADMIN,    /* [admin] listen: one host:port, or empty for none */
	KEY_PORTS,    /* struct config_ports: "*", or a list of ports and ranges */
	KEY_ENUM,     /* an enum: the index of the value in `names` */
};

struct key_def {
	const char *section;
	const char *name;
	enum key_kind kind;
	size_t off;  /* of the field in struct config */
	size_t size; /* of the field */
	int64_t min; /* smallest value allowed (numbers) */
	const char *const *names; /* KEY_ENUM: its values by number, NULL-ended */
};

#define FIELD(f) offsetof(struct config, f), sizeof(((struct config *)0)->f)

static const char *const format_names[] = {
	[LOG_FORMAT_SQUID] = "squid",
	[LOG_FORMAT_COMBINED] = "combined",
	NULL,
};

static const char *const level_names[] = {
	[LOG_LEVEL_ERROR] = "error",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
	NULL,
};

static const char *const forwarded_for_names[] = {
	[FORWARDED_FOR_ON] = "on",
	[FORWARDED_FOR_OFF] = "off",
	[FORWARDED_FOR_TRANSPARENT] = "transparent",
	[FORWARDED_FOR_TRUNCATE] = "truncate",
	[FORWARDED_FOR_DELETE] = "delete",
	NULL,
};

/* KEY_ENUM fields are written as int */
_Static_assert(sizeof(enum log_format) == sizeof(int) && sizeof(enum log_level) == sizeof(int) &&
               sizeof(enum forwarded_for) == sizeof(int), "enum keys are ints");

static const struct key_def keys[] = {
	{ "proxy", "listen", KEY_LISTEN, FIELD(listen), 0, NULL },
	{ "proxy", "allow", KEY_ALLOW, FIELD(allow), 0, NULL },
	{ "proxy", "min_workers", KEY_INT, FIELD(min_workers), 1, NULL },
	{ "proxy", "max_workers", KEY_INT, FIELD(max_workers), 1, NULL },
	{ "proxy", "client_timeout", KEY_DURATION, FIELD(client_timeout_ms), 1, NULL },
	{ "proxy", "header_timeout", KEY_DURATION, FIELD(header_timeout_ms), 1, NULL },
	{ "proxy", "max_request_header", KEY_SIZE, FIELD(max_request_header), 1, NULL },
	{ "proxy", "max_url", KEY_SIZE, FIELD(max_url), 1, NULL },
	{ "proxy", "max_request_body", KEY_SIZE, FIELD(max_request_body), 0, NULL },
	{ "proxy", "max_connections", KEY_INT, FIELD(max_connections), 1, NULL },
	{ "proxy", "via", KEY_BOOL, FIELD(via), 0, NULL },
	{ "proxy", "forwarded_for", KEY_ENUM, FIELD(forwarded_for), 0, forwarded_for_names },
	{ "proxy", "auth_file", KEY_STRING, FIELD(auth_file), 0, NULL },
	{ "proxy", "auth_realm", KEY_STRING, FIELD(auth_realm), 0, NULL },
	{ "proxy", "shutdown_grace", KEY_DURATION, FIELD(shutdown_grace_ms), 0, NULL },
	{ "proxy", "keepalive_linger", KEY_DURATION, FIELD(keepalive_linger_ms), 0, NULL },
	{ "proxy", "connect_ports", KEY_PORTS, FIELD(connect_ports), 0, NULL },
	{ "proxy", "http_ports", KEY_PORTS, FIELD(http_ports), 0, NULL },
	{ "upstream", "connect_timeout", KEY_DURATION, FIELD(connect_timeout_ms), 1, NULL },
	{ "upstream", "timeout", KEY_DURATION, FIELD(upstream_timeout_ms), 1, NULL },
	{ "upstream", "parent", KEY_STRING, FIELD(parent), 0, NULL },
	{ "upstream", "allow_loopback", KEY_BOOL, FIELD(allow_loopback), 0, NULL },
	{ "upstream", "ca_file", KEY_STRING, FIELD(ca_file), 0, NULL },
	{ "cache", "memory", KEY_SIZE, FIELD(cache_memory), 1, NULL },
	{ "cache", "max_object", KEY_SIZE, FIELD(max_object), 1, NULL },
	{ "cache", "coalesce_timeout", KEY_DURATION, FIELD(coalesce_timeout_ms), 1, NULL },
	{ "cache", "heuristic_percent", KEY_INT, FIELD(heuristic_percent), 0, NULL },
	{ "cache", "heuristic_max", KEY_DURATION, FIELD(heuristic_max_ms), 0, NULL },
	{ "log", "access", KEY_STRING, FIELD(access_log), 0, NULL },
	{ "log", "format", KEY_ENUM, FIELD(log_format), 0, format_names },
	{ "log", "level", KEY_ENUM, FIELD(log_level), 0, level_names },
	{ "admin", "listen", KEY_ADMIN, FIELD(admin_listen), 0, NULL },
};

#define N_KEYS (sizeof keys / sizeof keys[0])

static const char *const sections[] = { "proxy", "upstream", "cache", "log", "admin" };

static bool
section_known(const char *name)
{
	for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
		if (strcmp(name, sections[i]) == 0)
			return true;
	return false;
}

static int
key_find(const char *section, const char *name)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (strcmp(section, keys[i].section) == 0 &&
		    strcmp(name, keys[i].name) == 0)
			return (int)i;
	return -1;
}

/* ---- loading ---------------------------------------------------------- */

struct load_state {
	struct config *c;
	const char *name;   /* file name for messages */
	const char *text;   /* the whole file */
	const char *pos;    /* the reader's position in `text` */
	int lineno;         /* lines handed to inih so far */
	bool have_key;      /* inih has a previous key to continue (its prev_name) */
	bool continuation;  /* the current line continues the previous key */
	int err_line;       /* line of the first error, 0 if none yet */
	char *err;
	size_t errlen;
	int key_line[N_KEYS]; /* line each key was last set on, 0 if not */
};

/* `s` made safe to quote in a message: control bytes become '?', and a long
 * value is cut with "...". */
static const char *
quote(const char *s, char *buf, size_t len)
{
	size_t i;

	assert(len > 4);
	for (i = 0; s[i] != '\0' && i < len - 1; i++)
		buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	buf[i] = '\0';
	if (s[i] != '\0')
		memcpy(buf + len - 4, "...", 4);
	return buf;
}

/* Record the first error: "NAME:LINE: " followed by the message. */
__attribute__((format(printf, 3, 4)))
static void
load_error(struct load_state *st, int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (st->err_line != 0)
		return;
	st->err_line = line;
	if (st->errlen == 0)
		return;
	n = snprintf(st->err, st->errlen, "%s:%d: ", st->name, line);
	if (n < 0 || (size_t)n >= st->errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(st->err + n, st->errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

/* "[section] key: expected WHAT, got 'VALUE'" on the current line. */
static void
key_error(struct load_state *st, const struct key_def *k, const char *what,
          const char *got)
{
	char q[80];

	load_error(st, st->lineno, "[%s] %s: expected %s, got '%s'",
	           k->section, k->name, what, quote(got, q, sizeof q));
}

/* Parse the comma-separated items of `list` (modified in place) into `arr`
 * after the `start` items already there; `one` parses item i and returns 0,
 * -1 if it is not what `what` says or 1 if it repeats an item. An empty item
 * after the last comma of a line is ignored, so that a list can go on on the
 * next line ("a,\n  b"). Returns the new number of items, or -1 with the
 * error recorded. */
static int
parse_list(struct load_state *st, const struct key_def *k, char *list,
           int start, int max, const char *what, const char *what_many,
           int (*one)(const char *, void *, int), void *arr)
{
	int n = start;
	char *item = list;

	for (int i = 0;; i++) {
		char *comma = strchr(item, ',');
		char *end;
		if (comma != NULL)
			*comma = '\0';
		while (*item == ' ' || *item == '\t')
			item++;
		end = item + strlen(item);
		while (end > item && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		if (comma == NULL && i > 0 && *item == '\0')
			return n; /* "a," */
		if (n == max) {
			char many[80];
			snprintf(many, sizeof many, "at most %d %s", max, what_many);
			key_error(st, k, many, item);
			return -1;
		}
		switch (one(item, arr, n)) {
		case 0:
			break;
		case 1:
			key_error(st, k, "each item once", item);
			return -1;
		default:
			key_error(st, k, what, item);
			return -1;
		}
		n++;
		if (comma == NULL)
			return n;
		item = comma + 1;
	}
}

static int
listen_one(const char *s, void *arr, int i)
{
	struct config_listen *l = arr;

	if (config_parse_hostport(s, &l[i]) != 0)
		return -1;
	for (int j = 0; j < i; j++)
		if (l[j].addrlen == l[i].addrlen &&
		    memcmp(&l[j].addr, &l[i].addr, l[i].addrlen) == 0)
			return 1; /* the same address twice */
	return 0;
}

static int
cidr_one(const char *s, void *arr, int i)
{
	return config_parse_cidr(s, &((struct config_cidr *)arr)[i]);
}

/* "N" or "N-M" (N <= M), from 1 to 65535 */
static int
port_one(const char *s, void *arr, int i)
{
	struct config_ports *ports = arr;
	const char *p = s;
	uint64_t lo, hi;

	if (parse_digits(&p, &lo) != 0 || lo < 1 || lo > 65535)
		return -1;
	hi = lo;
	if (*p == '-') {
		p++;
		if (parse_digits(&p, &hi) != 0 || hi < lo || hi > 65535)
			return -1;
	}
	if (*p != '\0')
		return -1;
	ports->range[i].lo = (int)lo;
	ports->range[i].hi = (int)hi;
	for (int j = 0; j < i; j++)
		if (ports->range[j].lo == ports->range[i].lo && ports->range[j].hi == ports->range[i].hi)
			return 1;
	return 0;
}

int config_port_allowed(const struct config_ports *p, int port)
{
	if (p->any)
		return 1;
	for (int i = 0; i < p->n; i++)
		if (p->range[i].lo <= port && port <= p->range[i].hi)
			return 1;
	return 0;
}

#define WHAT_HOSTPORT "an address:port (e.g. 127.0.0.1:3128 or [::1]:3128)"
#define WHAT_CIDR "an address or CIDR (e.g. 10.0.0.0/8, ::1/128, 192.0.2.7)"

/* Parse `value` into the field of key `k`. Returns 0, or -1 with the error
 * recorded. */
static int
key_apply(struct load_state *st, const struct key_def *k, const char *value)
{
	void *field = (char *)st->c + k->off;
	char what[80];

	switch (k->kind) {
	case KEY_INT: {
		const char *p = value;
		uint64_t v;
		if (parse_digits(&p, &v) != 0 || *p != '\0' || v > INT_MAX ||
		    (int64_t)v < k->min) {
			snprintf(what, sizeof what, "an integer from %lld to %d",
			         (long long)k->min, INT_MAX);
			key_error(st, k, what, value);
			return -1;
		}
		*(int *)field = (int)v;
		return 0;
	}
	case KEY_DURATION: {
		int64_t ms;
		if (config_parse_duration(value, &ms) != 0) {
			key_error(st, k, "a duration (ms, s, m, h, d)", value);
			return -1;
		}
		if (ms < k->min) {
			key_error(st, k, "a duration greater than 0", value);
			return -1;
		}
		*(int64_t *)field = ms;
		return 0;
	}
	case KEY_SIZE: {
		uint64_t v;
		if (config_parse_size(value, &v) != 0 ||
		    (k->size < sizeof v && v > SIZE_MAX)) {
			key_error(st, k, "a size (bytes, or a number with K, M or G)", value);
			return -1;
		}
		if (v < (uint64_t)k->min) {
			key_error(st, k, "a size greater than 0", value);
			return -1;
		}
		if (k->size == sizeof(uint64_t))
			*(uint64_t *)field = v;
		else
			*(size_t *)field = (size_t)v;
		return 0;
	}
	case KEY_BOOL:
		if (config_parse_bool(value, field) != 0) {
			key_error(st, k, "on or off", value);
			return -1;
		}
		return 0;
	case KEY_STRING:
		if (strlen(value) >= k->size) {
			snprintf(what, sizeof what, "at most %zu characters", k->size - 1);
			key_error(st, k, what, value);
			return -1;
		}
		memcpy(field, value, strlen(value) + 1);
		return 0;
	case KEY_LISTEN:
	case KEY_ALLOW: {
		/* A key line replaces the list, a continuation line appends. */
		struct config *c = st->c;
		int start, n;
		char *copy;
		if (value[0] == '\0') {
			key_error(st, k, k->kind == KEY_LISTEN ? WHAT_HOSTPORT : WHAT_CIDR,
			          value);
			return -1;
		}
		copy = strdup(value);
		if (copy == NULL) {
			load_error(st, st->lineno, "out of memory");
			return -1;
		}
		if (k->kind == KEY_LISTEN) {
			start = st->continuation ? c->n_listen : 0;
			n = parse_list(st, k, copy, start, CONFIG_MAX_LISTEN,
			               WHAT_HOSTPORT, "addresses", listen_one, c->listen);
			if (n > 0)
				c->n_listen = n;
		} else {
			start = st->continuation ? c->n_allow : 0;
			n = parse_list(st, k, copy, start, CONFIG_MAX_ALLOW,
			               WHAT_CIDR, "CIDRs", cidr_one, c->allow);
			if (n > 0)
				c->n_allow = n;
		}
		free(copy);
		return n > 0 ? 0 : -1;
	}
	case KEY_PORTS: {
		struct config_ports *ports = (struct config_ports *)((char *)st->c + k->off);
		struct config_ports parsed = { .n = 0 };
		if (strcmp(value, "*") == 0) {
			*ports = (struct config_ports){ .any = 1 };
			return 0;
		}
		if (value[0] == '\0') {
			*ports = parsed; /* none at all */
			return 0;
		}
		char *copy = strdup(value);
		if (copy == NULL) {
			load_error(st, st->lineno, "out of memory");
			return -1;
		}
		int n = parse_list(st, k, copy, 0, CONFIG_MAX_PORTS,
		                   "* or a list of ports and ranges from 1 to 65535 (443, 1025-65535)",
		                   "ports or ranges", port_one, &parsed);
		free(copy);
		if (n < 0)
			return -1;
		parsed.n = n;
		*ports = parsed;
		return 0;
	}
	case KEY_ADMIN:
		if (value[0] == '\0') {
			memset(&st->c->admin_listen, 0, sizeof st->c->admin_listen);
			st->c->has_admin = 0;
			return 0;
		}
		if (config_parse_hostport(value, &st->c->admin_listen) != 0) {
			key_error(st, k, "an address:port (e.g. 127.0.0.1:3129) or nothing",
			          value);
			return -1;
		}
		st->c->has_admin = 1;
		return 0;
	case KEY_ENUM: {
		char expected[128];
		size_t n = 0;
		for (int i = 0; k->names[i]; i++) {
			if (strcasecmp(value, k->names[i]) == 0) {
				*(int *)field = i;
				return 0;
			}
			n++;
		}
		/* "a, b or c" */
		struct strbuf b = strbuf_on_cstr(expected, sizeof expected);
		for (size_t i = 0; i < n; i++) {
			if (i > 0)
				strbuf_str(&b, i + 1 == n ? " or " : ", ");
			strbuf_str(&b, k->names[i]);
		}
		strbuf_cstr(&b);
		key_error(st, k, expected, value);
		return -1;
	}
	}
	assert(!"unreachable");
	return -1;
}

/* inih's handler: one "key = value" of the line the reader handed over last. */
static int
load_handler(void *user, const char *section, const char *name, const char *value)
{
	struct load_state *st = user;
	char trimmed[INI_MAX_LINE], q1[80];
	int i;

	if (name == NULL) {
		/* A new section, with an inih built to say so; the reader has
		 * already checked it. */
		return 1;
	}
	if (!st->continuation)
		st->have_key = true;
	if (st->err_line != 0)
		return 1; /* only the first error is reported */
	if (st->continuation) {
		/* inih leaves a " ; comment" on a continuation line. */
		const char *semi = value;
		while ((semi = strchr(semi, ';')) != NULL &&
		       (semi == value || (semi[-1] != ' ' && semi[-1] != '\t')))
			semi++;
		if (semi != NULL) {
			size_t n = (size_t)(semi - value);
			if (n >= sizeof trimmed)
				n = sizeof trimmed - 1;
			memcpy(trimmed, value, n);
			while (n > 0 && (trimmed[n - 1] == ' ' || trimmed[n - 1] == '\t'))
				n--;
			trimmed[n] = '\0';
			value = trimmed;
		}
	}
	if (section[0] == '\0') {
		load_error(st, st->lineno, "%s: key outside any section",
		           quote(name, q1, sizeof q1));
		return 0;
	}
	if (!section_known(section)) {
		load_error(st, st->lineno, "unknown section [%s]",
		           quote(section, q1, sizeof q1));
		return 0;
	}
	i = key_find(section, name);
	if (i < 0) {
		load_error(st, st->lineno, "[%s] %s: unknown key", section,
		           quote(name, q1, sizeof q1));
		return 0;
	}
	if (st->continuation && keys[i].kind != KEY_LISTEN &&
	    keys[i].kind != KEY_ALLOW) {
		key_error(st, &keys[i], "one line (only listen and allow continue "
		          "on indented lines)", value);
		return 0;
	}
	if (key_apply(st, &keys[i], value) != 0)
		return 0;
	if (!st->continuation)
		st->key_line[i] = st->lineno;
	return 1;
}

/* inih's reader: the next line of st->text into `str` (fgets-style). On the
 * way it classifies the line as inih will (a comment, a continuation of the
 * previous key's value, a section or a key), checks section names and refuses
 * lines longer than inih's buffer. */
static char *
load_reader(char *str, int num, void *stream)
{
	struct load_state *st = stream;
	const char *line = st->pos, *nl;
	char *start;
	size_t len, n;

	assert(num > 2);
	if (*line == '\0')
		return NULL;
	nl = strchr(line, '\n');
	len = nl != NULL ? (size_t)(nl - line) + 1 : strlen(line);
	st->pos = line + len;
	st->lineno++;
	st->continuation = false;

	n = len;
	if (n > (size_t)num - 1)
		n = (size_t)num - 1; /* an error unless the line is a comment */
	memcpy(str, line, n);
	str[n] = '\0';

	start = str;
	if (st->lineno == 1 && strncmp(start, "\xEF\xBB\xBF", 3) == 0)
		start += 3; /* UTF-8 byte order mark */
	while (*start == ' ' || *start == '\t' || *start == '\r' || *start == '\n')
		start++;
	if (n < len && *start != ';' && *start != '#')
		load_error(st, st->lineno, "line too long (at most %d characters)",
		           num - 2);
	if (*start == '\0' || *start == ';' || *start == '#') {
		/* blank or comment */
	} else if (st->have_key && start > str) {
		st->continuation = true;
	} else if (*start == '[') {
		char *end = strchr(start, ']');
		if (end != NULL) {
			char sect[64], q[80];
			size_t slen = (size_t)(end - (start + 1));
			if (slen >= sizeof sect)
				slen = sizeof sect - 1;
			memcpy(sect, start + 1, slen);
			sect[slen] = '\0';
			if (!section_known(sect))
				load_error(st, st->lineno, "unknown section [%s]",
				           quote(sect, q, sizeof q));
			st->have_key = false;
		}
	}
	return str;
}

/* Line `lineno` (1-based) of `text`, trimmed, into buf. */
static const char *
text_line(const char *text, int lineno, char *buf, size_t len)
{
	const char *p = text, *end;
	size_t n;

	for (int i = 1; i < lineno && p != NULL; i++) {
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	if (p == NULL)
		p = "";
	while (*p == ' ' || *p == '\t')
		p++;
	end = strchr(p, '\n');
	if (end == NULL)
		end = p + strlen(p);
	while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		end--;
	n = (size_t)(end - p) < len - 1 ? (size_t)(end - p) : len - 1;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return buf;
}

/* The host[:port] of a proxy URL: scheme://[user[:password]@]host[:port][/] */
static void
url_host(const char *url, char *out, size_t len)
{
	const char *p = strstr(url, "://");
	p = p ? p + 3 : url;
	size_t n = strcspn(p, "/?#");
	const char *at = memchr(p, '@', n);
	if (at) {
		n -= (size_t)(at + 1 - p);
		p = at + 1;
	}
	snprintf(out, len, "%.*s", (int)n, p);
}

static int
has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < ' ' || *s == 0x7f)
			return 1;
	return 0;
}

/* What is wrong with [upstream] ca_file, or NULL: it must be a readable
 * file with a PEM certificate in it (else every https fetch would fail
 * with libcurl's "error setting certificate file"). Read once per load. */
static const char *
ca_file_problem(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return errno == ENOENT ? "no such file" : "cannot open";
	static const char begin[] = "-----BEGIN CERTIFICATE-----";
	char buf[4096 + sizeof begin];
	size_t kept = 0, n;
	int found = 0;
	while (!found && (n = fread(buf + kept, 1, sizeof buf - 1 - kept, f)) > 0) {
		buf[kept + n] = '\0';
		found = strstr(buf, begin) != NULL;
		/* keep the tail, in case the marker straddles two reads */
		size_t have = kept + n;
		kept = have < sizeof begin - 1 ? have : sizeof begin - 1;
		memmove(buf, buf + have - kept, kept);
	}
	int failed = ferror(f);
	fclose(f);
	if (failed)
		return "cannot read it";
	return found ? NULL : "no PEM certificate (-----BEGIN CERTIFICATE-----) in it";
}

/* Checks between keys, once the whole file is read. */
static void
load_check(struct load_state *st)
{
	struct config *c = st->c;
	url_host(c->parent, c->parent_host, sizeof c->parent_host);
	int min_line = st->key_line[key_find("proxy", "min_workers")];
	int plisten_line = st->key_line[key_find("proxy", "listen")];
	int alisten_line = st->key_line[key_find("admin", "listen")];

	if (c->min_workers > c->max_workers) {
		if (min_line == 0) {
			c->min_workers = c->max_workers; /* only the default was too big */
		} else {
			char what[80], got[24];
			snprintf(what, sizeof what, "at most max_workers (%d)",
			         c->max_workers);
			snprintf(got, sizeof got, "%d", c->min_workers);
			st->lineno = min_line;
			key_error(st, &keys[key_find("proxy", "min_workers")], what, got);
		}
	}
	if (c->auth_realm[0] == '\0' || strpbrk(c->auth_realm, "\"\\") ||
	    has_control(c->auth_realm)) {
		st->lineno = st->key_line[key_find("proxy", "auth_realm")];
		key_error(st, &keys[key_find("proxy", "auth_realm")],
		          "a name without quotes, backslashes or control characters",
		          c->auth_realm);
	}
	if (c->auth_file[0] != '\0' && st->err_line == 0) {
		char why[512];
		c->auth = auth_load(c->auth_file, why, sizeof why);
		if (c->auth == NULL)
			load_error(st, st->key_line[key_find("proxy", "auth_file")],
			           "[proxy] auth_file: %s", why);
	}
	if (c->ca_file[0] != '\0' && st->err_line == 0) {
		const char *why = ca_file_problem(c->ca_file);
		if (why)
			load_error(st, st->key_line[key_find("upstream", "ca_file")],
			           "[upstream] ca_file: %s: %s", c->ca_file, why);
	}
	if (c->has_admin) {
		for (int i = 0; i < c->n_listen; i++) {
			const struct config_listen *l = &c->listen[i];
			if (l->addrlen != c->admin_listen.addrlen ||
			    memcmp(&l->addr, &c->admin_listen.addr, l->addrlen) != 0)
				continue;
			if (alisten_line >= plisten_line) {
				st->lineno = alisten_line;
				key_error(st, &keys[key_find("admin", "listen")],
				          "an address not in [proxy] listen",
				          c->admin_listen.text);
			} else {
				st->lineno = plisten_line;
				key_error(st, &keys[key_find("proxy", "listen")],
				          "addresses other than [admin] listen", l->text);
			}
			break;
		}
	}
}

static struct config *
config_new(void)
{
	struct config_box *box = calloc(1, sizeof *box);

	if (box == NULL)
		return NULL;
	box->magic = CONFIG_MAGIC;
	atomic_init(&box->refs, 1);
	return &box->c;
}

struct config *
config_load_string(const char *text, const char *name, char *err, size_t errlen)
{
	struct load_state st;
	struct config *c;
	int r;

	assert(text != NULL && name != NULL && (err != NULL || errlen == 0));
	if (errlen > 0)
		err[0] = '\0';
	c = config_new();
	if (c == NULL) {
		if (errlen > 0)
			snprintf(err, errlen, "%s: out of memory", name);
		return NULL;
	}
	config_defaults(c);
	snprintf(c->path, sizeof c->path, "%s", name);

	memset(&st, 0, sizeof st);
	st.c = c;
	st.name = name;
	st.text = text;
	st.pos = text;
	st.err = err;
	st.errlen = errlen;

	r = ini_parse_stream(load_reader, &st, load_handler, &st);
	if (r > 0 && (st.err_line == 0 || r < st.err_line)) {
		/* A line inih could not read, before any error of ours. */
		char line[80], q[80];
		st.err_line = 0;
		load_error(&st, r, "expected '[section]' or 'key = value', got '%s'",
		           quote(text_line(text, r, line, sizeof line), q, sizeof q));
	} else if (r < 0 && st.err_line == 0) {
		load_error(&st, 0, "inih failed (%d)", r);
	}
	if (st.err_line == 0)
		load_check(&st);
	if (st.err_line != 0) {
		config_put(c);
		return NULL;
	}
	return c;
}

struct config *
config_load(const char *path, char *err, size_t errlen)
{
	struct config *c = NULL;
	FILE *f;
	char *text;
	size_t len = 0, n;

	assert(path != NULL && (err != NULL || errlen == 0));
	if (strlen(path) >= sizeof c->path) {
		snprintf(err, errlen, "%s: path too long", path);
		return NULL;
	}
	f = fopen(path, "re");
	if (f == NULL) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	text = malloc(CONFIG_MAX_FILE + 1);
	if (text == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		fclose(f);
		return NULL;
	}
	while ((n = fread(text + len, 1, CONFIG_MAX_FILE + 1 - len, f)) > 0)
		len += n;
	if (ferror(f))
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
	else if (len > CONFIG_MAX_FILE)
		snprintf(err, errlen, "%s: too large (over %d bytes)", path,
		         CONFIG_MAX_FILE);
	else if (memchr(text, '\0', len) != NULL)
		snprintf(err, errlen, "%s: contains a NUL byte", path);
	else {
		text[len] = '\0';
		c = config_load_string(text, path, err, errlen);
	}
	fclose(f);
	free(text);
	return c;
}

/* ---- the running config ----------------------------------------------- */

static struct config_box *
box_of(struct config *c)
{
	struct config_box *box =
	    (struct config_box *)((char *)c - offsetof(struct config_box, c));

	assert(box->magic == CONFIG_MAGIC);
	return box;
}

static void
current_lock(void)
{
	int rc = pthread_mutex_lock(&current_mtx);

	if (rc != 0) {
		fprintf(stderr, "config: pthread_mutex_lock: %s\n", strerror(rc));
		abort();
	}
}

static void
current_unlock(void)
{
	int rc = pthread_mutex_unlock(&current_mtx);

	if (rc != 0) {
		fprintf(stderr, "config: pthread_mutex_unlock: %s\n", strerror(rc));
		abort();
	}
}

struct config *
config_get(void)
{
	struct config *c;

	current_lock();
	c = current;
	if (c != NULL)
		atomic_fetch_add_explicit(&box_of(c)->refs, 1, memory_order_relaxed);
	current_unlock();
	return c;
}

void
config_put(struct config *c)
{
	struct config_box *box;
	int old;

	if (c == NULL)
		return;
	box = box_of(c);
	old = atomic_fetch_sub_explicit(&box->refs, 1, memory_order_acq_rel);
	assert(old >= 1);
	if (old == 1) {
		auth_free(c->auth);
		box->magic = 0;
		free(box);
	}
}

void
config_install(struct config *c)
{
	struct config *old;

	if (c != NULL)
		(void)box_of(c); /* checks the magic */
	/* before anyone uses c, and outside current_mtx (installs are the
	 * main thread's alone) */
	struct config *prev = config_get();
	if (prev && prev->auth && c && c->auth)
		auth_carry(c->auth, prev->auth);
	config_put(prev);
	current_lock();
	old = current;
	current = c;
	current_unlock();
	config_put(old);
}

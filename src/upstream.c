/*
 * upstream.c — libcurl's global state and the common handle options (see
 * upstream.h).
 *
 * The share object is locked per kind of data (connections, DNS, TLS
 * sessions) by the mutexes in share_locks; libcurl calls lock/unlock around
 * its own short critical sections, never across network I/O.
 */
#include "corral/upstream.h"
#include "corral/strbuf.h"
#include "corral/log.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static CURLSH *share;
/* libcurl's default CA directory is there and hashed (Debian's
 * /etc/ssl/certs, kept by update-ca-certificates: a "<hash>.0" link per
 * CA): https fetches without ca_file verify through it alone
 * (upstream_easy) */
static int default_capath;
static pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *u)
{
	(void)h;
	(void)access;
	(void)u;
	pthread_mutex_lock(&share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *u)
{
	(void)h;
	(void)u;
	pthread_mutex_unlock(&share_locks[data]);
}

int upstream_init(void)
{
	if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
		return -1;
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&share_locks[i], NULL);
	share = curl_share_init();
	if (share == NULL)
		return -1;
	curl_share_setopt(share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	CURL *h = curl_easy_init();
	char *capath = NULL;
	if (h && curl_easy_getinfo(h, CURLINFO_CAPATH, &capath) == CURLE_OK && capath) {
		DIR *d = opendir(capath);
		struct dirent *de;
		while (d && !default_capath && (de = readdir(d)) != NULL) {
			size_t n = strlen(de->d_name);
			default_capath = n > 2 && strcmp(de->d_name + n - 2, ".0") == 0;
		}
		if (d)
			closedir(d);
	}
	curl_easy_cleanup(h);
	return 0;
}

/* Loopback, link-local, unspecified — and their IPv4-mapped forms. */
static int is_local_address(const struct sockaddr *sa)
{
	const unsigned char *a4 = NULL;
	if (sa->sa_family == AF_INET) {
		a4 = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6))
			a4 = a6->s6_addr + 12;
		else
			return IN6_IS_ADDR_LOOPBACK(a6) || IN6_IS_ADDR_LINKLOCAL(a6) ||
			       IN6_IS_ADDR_UNSPECIFIED(a6);
	} else {
		return 1;
	}
	return a4[0] == 127 || a4[0] == 0 || (a4[0] == 169 && a4[1] == 254);
}

static int same_address(const struct sockaddr *a, const struct sockaddr_storage *b)
{
	if (a->sa_family != b->ss_family)
		return 0;
	if (a->sa_family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
		              &((const struct sockaddr_in *)b)->sin_addr, sizeof(struct in_addr)) == 0;
	return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
	              &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

/* Is `sa` an address of this host, on any interface? The kernel's routes
 * say: a UDP socket connected to it (which sends nothing) gets the address
 * itself as its source only when the destination is local. Asked per new
 * connection, so an interface that came up a moment ago counts too. When
 * the question cannot be asked (no socket left), the connection's own
 * socket would fail as well. */
static int is_own_address(const struct sockaddr *sa, socklen_t len)
{
	int fd = socket(sa->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	struct sockaddr_storage src;
	socklen_t n = sizeof src;
	int own = connect(fd, sa, len) == 0 &&
	          getsockname(fd, (struct sockaddr *)&src, &n) == 0 && same_address(sa, &src);
	close(fd);
	return own;
}

static curl_socket_t open_socket(void *clientp, curlsocktype purpose,
                                 struct curl_sockaddr *a)
{
	struct upstream_ctx *u = clientp;
	(void)purpose;
	if (!u->allow_loopback && (is_local_address(&a->addr) ||
	                           is_own_address(&a->addr, a->addrlen))) {
		u->dest_denied = 1;
		return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void upstream_touch(struct upstream_ctx *u)
{
	u->last_progress_ms = now_ms();
}

/* libcurl calls this at least once a second while a transfer runs. */
static int on_progress(void *clientp, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow)
{
	struct upstream_ctx *u = clientp;
	(void)dltotal;
	(void)ultotal;
	if (u->after_read)
		u->after_read(u->after_read_arg);
	if ((dlnow != u->last_dl || ulnow != u->last_ul) && !u->after_body) {
		u->last_dl = dlnow;
		u->last_ul = ulnow;
		upstream_touch(u);
		return 0;
	}
	if (now_ms() - u->last_progress_ms >= u->stall_ms) {
		u->stalled = 1;
		return 1; /* CURLE_ABORTED_BY_CALLBACK */
	}
	return 0;
}

#define UPSTREAM_IDLE_MAX 256L

CURL *upstream_easy(const struct config *c, struct upstream_ctx *u)
{
	u->parent = c->parent_host; /* the caller holds c for the transfer */
	CURL *h = curl_easy_init();
	if (h == NULL)
		return NULL;
	u->errbuf[0] = '\0';
	u->dest_denied = 0;
	/* a parent proxy makes its own decisions about destinations */
	u->allow_loopback = c->allow_loopback || c->parent[0] != '\0';
	curl_easy_setopt(h, CURLOPT_SHARE, share);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, u->errbuf);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_HTTP_CONTENT_DECODING, 0L);
	curl_easy_setopt(h, CURLOPT_HTTP_TRANSFER_DECODING, 1L);
	curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(h, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->connect_timeout_ms);
	/* [upstream] timeout is "no byte moved for this long": curl's
	 * LOW_SPEED_* averages over seconds and overshoots, so the progress
	 * callback keeps the clock itself. */
	u->stalled = 0;
	u->stall_ms = c->upstream_timeout_ms;
	u->last_dl = u->last_ul = 0;
	u->after_body = 0;
	u->after_read = NULL;
	u->after_read_arg = NULL;
	upstream_touch(u);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, u);
	curl_easy_setopt(h, CURLOPT_PROXY, c->parent); /* "" = none, not the environment's */
	curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, u);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	/* Idle upstream connections kept in the shared cache. libcurl's
	 * default of 5 closed every connection beyond five concurrent
	 * requests: with 10 clients passing no-store requests, one in two
	 * opened a new TCP connection. Idle ones still close after libcurl's
	 * CURLOPT_MAXAGE_CONN (118 s). */
	curl_easy_setopt(h, CURLOPT_MAXCONNECTS, UPSTREAM_IDLE_MAX);
	/* The system's CAs through the hashed directory alone, which OpenSSL
	 * reads a certificate at a time as a chain needs it, rather than the
	 * bundle file libcurl would parse whole for every new TLS connection:
	 * ~20 ms of CPU with Debian's, since a handle per request never reuses
	 * libcurl's own cache of it (measured: 200 new connections, 4.2 s of
	 * corrald's CPU against 0.2 s). A ca_file is read as given (small, as
	 * a rule: one private CA). */
	if (c->ca_file[0])
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
	else if (default_capath)
		curl_easy_setopt(h, CURLOPT_CAINFO, NULL);
	return h;
}

const char *upstream_hierarchy(const struct config *c)
{
	return c->parent[0] ? "FIRSTUP_PARENT" : "HIER_DIRECT";
}

int upstream_parent_refused(const struct upstream_ctx *u, int status, char *why, size_t len)
{
	if (status != 407 || u->parent[0] == '\0')
		return 0;
	snprintf(why, len, "the parent proxy %s asks for credentials (407): give them in "
	         "[upstream] parent = http://user:password@host:port", u->parent);
	return 1;
}

int upstream_failure(CURL *h, CURLcode rc, const struct upstream_ctx *u,
                     const char *host, int port, char *why, size_t whylen)
{
	/* whom the connection was with */
	char who[300];
	if (u->parent[0])
		snprintf(who, sizeof who, "the parent proxy %s", u->parent);
	else
		snprintf(who, sizeof who, "%s port %d", host, port);
	long oserr = 0;
	curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &oserr);
	const char *detail = u->errbuf[0] ? u->errbuf : curl_easy_strerror(rc);
	if (u->dest_denied) {
		snprintf(why, whylen, "destination %s is a loopback or link-local address or "
		         "one of this host's, which this proxy does not connect to", host);
		return 403;
	}
	if (u->stalled) {
		snprintf(why, whylen, "upstream timeout: %s sent nothing for %lld ms "
		         "([upstream] timeout)", who, (long long)u->stall_ms);
		return 504;
	}
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
		snprintf(why, whylen, "DNS lookup failed: cannot resolve host %s", host);
		return 502;
	case CURLE_COULDNT_RESOLVE_PROXY:
		snprintf(why, whylen, "DNS lookup failed for the parent proxy: %s", detail);
		return 502;
	case CURLE_COULDNT_CONNECT:
		if (oserr == ECONNREFUSED)
			snprintf(why, whylen, "connection refused by %s", who);
		else
			snprintf(why, whylen, "cannot connect to %s: %s", who, detail);
		return 502;
	case CURLE_OPERATION_TIMEDOUT:
		snprintf(why, whylen, "upstream timeout: %s: %s", who, detail);
		return 504;
	case CURLE_GOT_NOTHING:
		snprintf(why, whylen, "%s closed or reset the connection without "
		         "sending a response", who);
		return 502;
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
		if (oserr == ECONNRESET || oserr == EPIPE)
			snprintf(why, whylen, "connection reset by %s", who);
		else
			snprintf(why, whylen, "upstream connection failed: %s", detail);
		return 502;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
		snprintf(why, whylen, "the TLS certificate of %s port %d could not be verified "
		         "([upstream] ca_file): %s", host, port, detail);
		return 502;
	case CURLE_SSL_CONNECT_ERROR:
		snprintf(why, whylen, "TLS handshake with %s port %d failed: %s", host, port, detail);
		return 502;
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_BAD_FUNCTION_ARGUMENT: /* libcurl 7.88's answer to a head that
	                                     begins with a folded line */
		snprintf(why, whylen, "bad response from %s port %d: invalid HTTP status line "
		         "or headers (%s)", host, port, detail);
		return 502;
	case CURLE_OK: /* libcurl read a response whose head corral could not
	                  (resphead.c): its status line does not begin "HTTP/"
	                  (libcurl 7.88 takes "http/1.1" too; RFC 9112 2.3 does not) */
		snprintf(why, whylen, "bad response from %s port %d: its status line does not "
		         "begin with \"HTTP/\"", host, port);
		return 502;
	case CURLE_OUT_OF_MEMORY: /* also libcurl's answer to one line over 100 KiB */
		snprintf(why, whylen, "bad response from %s port %d: a header line too long to "
		         "take (over 100 KiB), or out of memory", host, port);
		return 502;
	default:
		snprintf(why, whylen, "upstream failure: %s", detail);
		return 502;
	}
}

/* curl's header list, built at its end in constant time (curl_slist_append
 * walks the list from where it is given: from the first node, a head of
 * many fields would cost quadratic time). */
struct slist {
	struct curl_slist *first, *last;
};

static int slist_line(struct slist *l, const char *line)
{
	struct curl_slist *n = curl_slist_append(l->last, line);
	if (n == NULL)
		return -1;
	l->last = l->last ? l->last->next : n;
	if (l->first == NULL)
		l->first = n;
	return 0;
}

/* "Name: value" for curl's header list; an empty value needs "Name;". Any
 * length: a value is never cut (a line buffer cut 60 KB cookies to 8 KB). */
static int slist_add(struct slist *l, const char *name, const char *value)
{
	char small[1024];
	size_t need = strlen(name) + strlen(value) + 3;
	char *line = need <= sizeof small ? small : malloc(need);
	if (line == NULL)
		return -1;
	struct strbuf b = strbuf_on_cstr(line, need);
	strbuf_str(&b, name);
	strbuf_str(&b, *value ? ": " : ";");
	strbuf_str(&b, value);
	strbuf_cstr(&b);
	int rc = slist_line(l, line);
	if (line != small)
		free(line);
	return rc;
}

struct curl_slist *upstream_header_append(struct curl_slist *l, const char *name,
                                          const char *value)
{
	struct slist sl = { l, l };
	while (sl.last && sl.last->next)
		sl.last = sl.last->next;
	if (slist_add(&sl, name, value) < 0) {
		curl_slist_free_all(l);
		return NULL;
	}
	return sl.first;
}

void upstream_forwarding_init(struct upstream_forwarding *fw, const struct config *c,
                              int http_minor, const char *client)
{
	fw->via = !c->via ? NULL : http_minor == 0 ? "1.0 corral" : "1.1 corral";
	fw->forwarded_for = c->forwarded_for;
	snprintf(fw->client, sizeof fw->client, "%s", client);
}

/* The client's X-Forwarded-For lines are gathered as one list (Squid joins
 * them too) in a strbuf: each comma-separated item trimmed, empty ones left
 * out. Past XFF_CHAIN_MAX (the builder cuts it) the list is "error", as
 * Squid makes it: a forwarding loop, most likely, whose line would
 * otherwise grow to the head's limit. The builder's room past the limit is
 * for ", " and the client's address. */
#define XFF_CHAIN_MAX (32 * 1024)
#define XFF_CHAIN_ROOM (XFF_CHAIN_MAX + 80)

static void xff_items(struct strbuf *chain, const char *value)
{
	for (const char *item = value; *item;) {
		const char *comma = strchr(item, ',');
		const char *end = comma ? comma : item + strlen(item);
		const char *a = item, *b = end;
		while (a < b && (*a == ' ' || *a == '\t'))
			a++;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
			b--;
		if (b > a) {
			if (strbuf_len(chain) > 0)
				strbuf_str(chain, ", ");
			strbuf_mem(chain, a, (size_t)(b - a));
		}
		item = comma ? comma + 1 : end;
	}
}

/* The X-Forwarded-For line, by [proxy] forwarded_for, once the client's
 * lines (those not hop-by-hop) are in `chain` (built on `buf`): on and off
 * append to them, truncate sends the client alone, delete nothing. */
static int add_forwarded_for(struct slist *l, struct strbuf *chain, char *buf,
                             const struct upstream_forwarding *fw)
{
	if (fw->forwarded_for == FORWARDED_FOR_TRANSPARENT ||
	    fw->forwarded_for == FORWARDED_FOR_DELETE)
		return 0;
	int too_long = chain->cut || strbuf_len(chain) > XFF_CHAIN_MAX;
	if (fw->forwarded_for == FORWARDED_FOR_TRUNCATE || too_long) {
		*chain = strbuf_on_cstr(buf, XFF_CHAIN_ROOM); /* start again */
		if (fw->forwarded_for != FORWARDED_FOR_TRUNCATE)
			strbuf_str(chain, "error");
	}
	xff_items(chain, fw->forwarded_for == FORWARDED_FOR_OFF ? "unknown" : fw->client);
	return strbuf_cstr(chain) > 0 ? slist_add(l, "X-Forwarded-For", buf) : 0;
}

int upstream_request_headers(const char *method, const struct http_headers *headers,
                             int has_body, const struct upstream_forwarding *fw,
                             int for_cache, struct curl_slist **out)
{
	int own_xff = fw->forwarded_for != FORWARDED_FOR_TRANSPARENT;
	char xff_buf[XFF_CHAIN_ROOM];
	struct strbuf xff = strbuf_on_cstr(xff_buf, sizeof xff_buf);
	struct slist l = { NULL, NULL };
	int has_accept = 0;
	int max_fwd_method = strcmp(method, "TRACE") == 0 || strcmp(method, "OPTIONS") == 0;
	*out = NULL;
	struct http_hop hop;
	if (http_hop_init(&hop, headers) < 0)
		return -1; /* request.c refused it already */
	for (int i = 0; i < headers->n; i++) {
		const char *name = headers->v[i].name, *value = headers->v[i].value;
		char dec[24];
		if (http_hop_has(&hop, name) || strcasecmp(name, "Host") == 0 ||
		    strcasecmp(name, "Expect") == 0 ||
		    (has_body && strcasecmp(name, "Content-Length") == 0) ||
		    (for_cache && strncasecmp(name, "If-", 3) == 0))
			continue;
		if (own_xff && strcasecmp(name, "X-Forwarded-For") == 0) {
			xff_items(&xff, value);
			continue;
		}
		if (strcasecmp(name, "Accept") == 0)
			has_accept = 1;
		/* decremented when it is 1*DIGIT; any other value is as if absent
		 * (exchange.c forwards it) and passes on unchanged */
		if (max_fwd_method && strcasecmp(name, "Max-Forwards") == 0 && value[0] &&
		    strspn(value, "0123456789") == strlen(value)) {
			long v = strtol(value, NULL, 10);
			snprintf(dec, sizeof dec, "%ld", v > 0 ? v - 1 : 0);
			value = dec;
		}
		if (slist_add(&l, name, value) < 0)
			goto nomem;
	}
	if (fw->via && slist_add(&l, "Via", fw->via) < 0)
		goto nomem;
	if (add_forwarded_for(&l, &xff, xff_buf, fw) < 0)
		goto nomem;
	/* "Name:" with no value removes a header curl would add itself */
	if ((!has_accept && slist_line(&l, "Accept:") < 0) || slist_line(&l, "Expect:") < 0)
		goto nomem;
	*out = l.first;
	return 0;
nomem:
	curl_slist_free_all(l.first);
	return -1;
}

/*
 * origin.c — the benchmark's origin server: libevent's evhttp on one thread.
 *
 *   origin -p PORT [-a ADDR]     serve until SIGTERM/SIGINT
 *   origin -W DIR                write DIR/obj/{1k,64k,1m} (the same bytes the
 *                                origin serves, for the static ceiling) and exit
 *
 * Paths (SIZE is bytes or a number with k, m or g: 1k, 64k, 1m, 4g):
 *   /obj/SIZE[...]              200, Content-Length, Cache-Control: public, max-age=86400
 *   /nostore/SIZE[...]          the same with Cache-Control: no-store
 *   /herd/cl/TAG                headers after 500 ms, then 4 MiB over 500 ms in
 *   /herd/chunked/TAG           64 pieces (Content-Length or chunked); cacheable
 *   /stream/nostore/SIZE[/...]  SIZE bytes as fast as the client takes them
 *   /stream/cache/SIZE[/...]    (Content-Length; no-store, or max-age=86400)
 *   /_stats                     "total N": requests served since start
 *   /_stats?p=PATH              "count N head_ns T1 end_ns T2" for PATH: requests
 *                               for that path (query ignored), and for its first
 *                               request, when the response head was handed to the
 *                               kernel and when the last body byte was
 *                               (CLOCK_MONOTONIC; 0 when not recorded)
 *
 * Bodies are one fixed 1 MiB pattern, repeated; nothing is copied: every body
 * is evbuffer references to that pattern.
 */
#define _GNU_SOURCE
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAT_LEN (1u << 20)
#define HERD_SIZE (4u << 20)
#define HERD_PIECES 64
#define HERD_HEAD_DELAY_MS 500
#define HERD_BODY_MS 500
#define STREAM_STEP (2u << 20)

static char pattern[PAT_LEN];
static struct event_base *base;
static uint64_t total_requests;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void pattern_init(void)
{
	static const char abc[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
	for (uint32_t i = 0; i < PAT_LEN; i++)
		pattern[i] = abc[(i * 31u + i / 61u) % 62u];
}

/* Add n bytes of the pattern, starting at body offset off, by reference. */
static void add_body(struct evbuffer *b, uint64_t off, uint64_t n)
{
	while (n > 0) {
		uint64_t at = off % PAT_LEN, len = PAT_LEN - at;
		if (len > n)
			len = n;
		evbuffer_add_reference(b, pattern + at, (size_t)len, NULL, NULL);
		off += len;
		n -= len;
	}
}

/* "64k" -> 65536; the number ends at '/', '?' or the end. */
static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	default: break;
	}
	if (*end != '\0' && *end != '/' && *end != '?')
		return -1;
	*out = v;
	return 0;
}

/* ---- per-path statistics: a small chained hash table ---- */

struct pstat {
	struct pstat *next;
	uint64_t count, head_ns, end_ns;
	char path[];
};

#define NBUCKETS 4096
static struct pstat *buckets[NBUCKETS];

static struct pstat *pstat_get(const char *path, int create)
{
	uint32_t h = 2166136261u;
	for (const char *p = path; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	struct pstat **slot = &buckets[h % NBUCKETS];
	for (struct pstat *s = *slot; s; s = s->next)
		if (strcmp(s->path, path) == 0)
			return s;
	if (!create)
		return NULL;
	size_t len = strlen(path);
	struct pstat *s = calloc(1, sizeof *s + len + 1);
	if (!s)
		abort();
	memcpy(s->path, path, len + 1);
	s->next = *slot;
	*slot = s;
	return s;
}

/* ---- responses ---- */

static void set_common(struct evhttp_request *req, const char *cache_control)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", "application/octet-stream");
	evhttp_add_header(h, "Cache-Control", cache_control);
}

static void send_fixed(struct evhttp_request *req, uint64_t size, const char *cc)
{
	static struct evbuffer *b;
	if (!b)
		b = evbuffer_new();
	set_common(req, cc);
	add_body(b, 0, size);
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_drain(b, evbuffer_get_length(b));
}

/* A response sent in pieces: the herd's slow one, or a long stream. */
struct stream {
	struct evhttp_request *req;
	struct event *timer;
	struct pstat *ps;
	int record;            /* the first request for its path: record the times */
	uint64_t size, sent;
	uint64_t t0;           /* herd: when the head was sent */
	int piece;
};

static void stream_free(struct stream *s)
{
	if (s->timer)
		event_free(s->timer);
	free(s);
}

static void herd_piece(evutil_socket_t fd, short what, void *arg);

static void herd_last_flushed(struct evhttp_connection *evcon, void *arg)
{
	struct stream *s = arg;
	(void)evcon;
	if (s->record)
		s->ps->end_ns = now_ns();
	evhttp_send_reply_end(s->req);
	stream_free(s);
}

static void herd_schedule(struct stream *s)
{
	uint64_t due = s->t0 + (uint64_t)(s->piece + 1) * HERD_BODY_MS * 1000000u / HERD_PIECES;
	uint64_t now = now_ns();
	struct timeval tv = { 0, 0 };
	if (due > now) {
		tv.tv_sec = (time_t)((due - now) / 1000000000u);
		tv.tv_usec = (suseconds_t)((due - now) % 1000000000u / 1000u);
	}
	evtimer_add(s->timer, &tv);
}

static void herd_head(evutil_socket_t fd, short what, void *arg)
{
	struct stream *s = arg;
	(void)fd, (void)what;
	if (evhttp_request_get_connection(s->req) == NULL) { /* the client left */
		evhttp_send_reply_end(s->req);
		stream_free(s);
		return;
	}
	evhttp_send_reply_start(s->req, 200, "OK");
	s->t0 = now_ns();
	if (s->record)
		s->ps->head_ns = s->t0;
	event_free(s->timer);
	s->timer = evtimer_new(base, herd_piece, s);
	herd_schedule(s);
}

static void herd_piece(evutil_socket_t fd, short what, void *arg)
{
	struct stream *s = arg;
	(void)fd, (void)what;
	if (evhttp_request_get_connection(s->req) == NULL) {
		evhttp_send_reply_end(s->req);
		stream_free(s);
		return;
	}
	uint64_t n = HERD_SIZE / HERD_PIECES;
	struct evbuffer *b = evbuffer_new();
	add_body(b, s->sent, n);
	s->sent += n;
	s->piece++;
	if (s->piece < HERD_PIECES) {
		evhttp_send_reply_chunk(s->req, b);
		herd_schedule(s);
	} else {
		evhttp_send_reply_chunk_with_cb(s->req, b, herd_last_flushed, s);
	}
	evbuffer_free(b);
}

/* A response body sent over time; the first request on a path records the
 * timestamps. */
static struct stream *stream_new(struct evhttp_request *req, struct pstat *ps, uint64_t size,
                                 const char *cc)
{
	struct stream *s = calloc(1, sizeof *s);
	if (!s)
		abort();
	s->req = req;
	s->ps = ps;
	s->record = ps->count == 1;
	s->size = size;
	set_common(req, cc);
	return s;
}

static void send_herd(struct evhttp_request *req, struct pstat *ps, int chunked)
{
	struct stream *s = stream_new(req, ps, HERD_SIZE, "public, max-age=86400");
	if (!chunked) {
		char cl[32];
		snprintf(cl, sizeof cl, "%u", HERD_SIZE);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Length", cl);
	}
	s->timer = evtimer_new(base, herd_head, s);
	struct timeval tv = { HERD_HEAD_DELAY_MS / 1000, (HERD_HEAD_DELAY_MS % 1000) * 1000 };
	evtimer_add(s->timer, &tv);
}

static void stream_more(struct evhttp_connection *evcon, void *arg)
{
	struct stream *s = arg;
	(void)evcon;
	if (evhttp_request_get_connection(s->req) == NULL || s->sent >= s->size) {
		if (s->record && s->sent >= s->size)
			s->ps->end_ns = now_ns();
		evhttp_send_reply_end(s->req);
		stream_free(s);
		return;
	}
	uint64_t n = s->size - s->sent;
	if (n > STREAM_STEP)
		n = STREAM_STEP;
	struct evbuffer *b = evbuffer_new();
	add_body(b, s->sent, n);
	s->sent += n;
	/* called again once the connection's output buffer has drained */
	evhttp_send_reply_chunk_with_cb(s->req, b, stream_more, s);
	evbuffer_free(b);
}

static void send_stream(struct evhttp_request *req, struct pstat *ps, uint64_t size, const char *cc)
{
	struct stream *s = stream_new(req, ps, size, cc);
	char cl[32];
	snprintf(cl, sizeof cl, "%" PRIu64, size);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Length", cl);
	evhttp_send_reply_start(req, 200, "OK");
	if (s->record)
		ps->head_ns = now_ns();
	if (size == 0 || evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		evhttp_send_reply_end(req);
		stream_free(s);
		return;
	}
	stream_more(NULL, s);
}

static void send_text(struct evhttp_request *req, int code, const char *reason, const char *text)
{
	struct evbuffer *b = evbuffer_new();
	evbuffer_add(b, text, strlen(text));
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
	evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
	evhttp_send_reply(req, code, reason, b);
	evbuffer_free(b);
}

static void on_stats(struct evhttp_request *req)
{
	char out[256];
	const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	struct evkeyvalq args;
	TAILQ_INIT(&args);
	const char *p = NULL;
	if (q && evhttp_parse_query_str(q, &args) == 0)
		p = evhttp_find_header(&args, "p");
	if (p) {
		struct pstat *s = pstat_get(p, 0);
		snprintf(out, sizeof out, "count %" PRIu64 " head_ns %" PRIu64 " end_ns %" PRIu64 "\n",
		         s ? s->count : 0, s ? s->head_ns : 0, s ? s->end_ns : 0);
	} else {
		snprintf(out, sizeof out, "total %" PRIu64 "\n", total_requests);
	}
	evhttp_clear_headers(&args);
	send_text(req, 200, "OK", out);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	(void)arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	uint64_t size;
	if (!path)
		path = "/";
	if (strcmp(path, "/_stats") == 0) {
		on_stats(req);
		return;
	}
	total_requests++;
	struct pstat *ps = pstat_get(path, 1);
	ps->count++;

	if (strncmp(path, "/obj/", 5) == 0 && parse_size(path + 5, &size) == 0)
		send_fixed(req, size, "public, max-age=86400");
	else if (strncmp(path, "/nostore/", 9) == 0 && parse_size(path + 9, &size) == 0)
		send_fixed(req, size, "no-store");
	else if (strncmp(path, "/herd/cl/", 9) == 0)
		send_herd(req, ps, 0);
	else if (strncmp(path, "/herd/chunked/", 14) == 0)
		send_herd(req, ps, 1);
	else if (strncmp(path, "/stream/nostore/", 16) == 0 && parse_size(path + 16, &size) == 0)
		send_stream(req, ps, size, "no-store");
	else if (strncmp(path, "/stream/cache/", 14) == 0 && parse_size(path + 14, &size) == 0)
		send_stream(req, ps, size, "public, max-age=86400");
	else
		send_text(req, 404, "Not Found", "no such object\n");
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)sig, (void)what, (void)arg;
	event_base_loopexit(base, NULL);
}

static int write_file(const char *dir, const char *name, uint64_t size)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/obj", dir);
	mkdir(dir, 0755);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/obj/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f) {
		perror(path);
		return -1;
	}
	for (uint64_t off = 0; off < size;) {
		uint64_t n = size - off > PAT_LEN ? PAT_LEN : size - off;
		fwrite(pattern, 1, (size_t)n, f);
		off += n;
	}
	return fclose(f) == 0 ? 0 : -1;
}

static void usage(void)
{
	fprintf(stderr, "usage: origin -p PORT [-a ADDR] | origin -W DIR\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *addr = "127.0.0.1", *dir = NULL;
	int port = -1, c;
	while ((c = getopt(argc, argv, "p:a:W:")) != -1) {
		switch (c) {
		case 'p': port = atoi(optarg); break;
		case 'a': addr = optarg; break;
		case 'W': dir = optarg; break;
		default: usage();
		}
	}
	pattern_init();
	if (dir) {
		if (write_file(dir, "1k", 1u << 10) || write_file(dir, "64k", 64u << 10) ||
		    write_file(dir, "1m", 1u << 20))
			return 1;
		return 0;
	}
	if (port < 0)
		usage();
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	struct evhttp *http = evhttp_new(base);
	if (!base || !http)
		return 1;
	evhttp_set_timeout(http, 300);
	evhttp_set_gencb(http, on_request, NULL);
	/* our own socket: evhttp's listen backlog (128) is too short for a herd */
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || inet_pton(AF_INET, addr, &sin.sin_addr) != 1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(fd, 4096) < 0 ||
	    evhttp_accept_socket_with_handle(http, fd) == NULL) {
		fprintf(stderr, "origin: cannot listen on %s:%d: %s\n", addr, port, strerror(errno));
		return 1;
	}
	struct event *sterm = evsignal_new(base, SIGTERM, on_signal, NULL);
	struct event *sint = evsignal_new(base, SIGINT, on_signal, NULL);
	evsignal_add(sterm, NULL);
	evsignal_add(sint, NULL);
	fprintf(stderr, "origin: listening on %s:%d\n", addr, port);
	event_base_dispatch(base);
	event_free(sterm);
	event_free(sint);
	evhttp_free(http);
	event_base_free(base);
	return 0;
}

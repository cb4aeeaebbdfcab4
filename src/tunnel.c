/*
 * tunnel.c — CONNECT tunnels.
 *
 * The worker connects upstream with a libcurl CONNECT_ONLY transfer (so a
 * tunnel gets the same DNS cache, timeouts, destination filter and parent
 * proxy as any request), takes the connected socket from curl (take_socket),
 * answers "200 Connection established" and hands the session and the socket
 * to the main loop by message (event_base_once). From then on the tunnel
 * belongs to the main thread: two bufferevents copy bytes each way. Memory is
 * bounded: a side stops reading while the other side has more than
 * TUNNEL_HIGH bytes waiting to be written, and resumes when it drains. When
 * one side ends (EOF), what is still queued for the other is flushed and the
 * end passed on (shutdown of writing), while the other way runs on: a client
 * may send its request and its end, then read the answer, as TCP allows
 * (`nc -N`). The tunnel closes when both ways have ended, on an error (a
 * reset) from either side, or at the idle timeout.
 *
 * The idle timeout ([upstream] timeout) is one clock for the whole tunnel, not
 * a read timeout per side: a byte read from either side, or written to either
 * side (the flush of a slow reader), restarts it, so a download where the
 * client sends nothing lives as long as the server keeps sending. The clock is
 * one timer event per tunnel; activity only stamps last_active_ms, and the
 * timer, when it fires early, re-arms itself for the time that is left.
 */
#include "corral/tunnel.h"
#include "corral/config.h"
#include "corral/exchange.h"
#include "corral/log.h"
#include "corral/session.h"
#include "corral/stats.h"
#include "corral/upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/socket.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#define TUNNEL_HIGH (256 * 1024)
/* Once one side has ended, the tunnel's idle timeout is at most this: a
 * client that closed outright (which an EOF cannot tell from a half-close)
 * would otherwise hold its tunnel, two descriptors and a connection slot
 * for all of [upstream] timeout (HAProxy's "timeout client-fin") */
#define TUNNEL_HALF_CLOSED_MS (10 * 1000)

static struct event_base *loop_base;

struct tunnel {
	struct session *s;          /* the client side */
	int upstream_fd;
	int64_t idle_timeout_ms;
	/* main thread only, once started */
	struct bufferevent *client, *upstream;
	struct evbuffer_cb_entry *client_sent, *upstream_sent;
	struct event *idle;         /* the idle clock */
	int64_t last_active_ms;     /* mono_ms() of the last byte moved, either way */
	/* by side, SIDE_CLIENT or SIDE_UPSTREAM */
	int ended[2];               /* the side sent its end: it is read no more */
	int shut[2];                /* its peer's end is passed on: writing shut down */
};

enum { SIDE_CLIENT, SIDE_UPSTREAM };

void tunnel_init(struct event_base *base)
{
	loop_base = base;
}

static void tunnel_free(struct tunnel *t)
{
	if (t->idle)
		event_free(t->idle);
	if (t->client_sent)
		evbuffer_remove_cb_entry(bufferevent_get_output(t->client), t->client_sent);
	if (t->upstream_sent)
		evbuffer_remove_cb_entry(bufferevent_get_output(t->upstream), t->upstream_sent);
	if (t->client)
		bufferevent_free(t->client);   /* not CLOSE_ON_FREE: the session closes it */
	if (t->upstream)
		bufferevent_free(t->upstream); /* CLOSE_ON_FREE */
	else if (t->upstream_fd >= 0)
		close(t->upstream_fd);
	session_close(t->s);
	stats_add(STAT_tunnels_active, -1);
	free(t);
}

static struct bufferevent *partner(struct tunnel *t, struct bufferevent *b)
{
	return b == t->client ? t->upstream : t->client;
}

static int side_of(const struct tunnel *t, const struct bufferevent *b)
{
	return b == t->client ? SIDE_CLIENT : SIDE_UPSTREAM;
}

/* b's partner has ended: once everything queued for b is written, shut
 * down writing to b. Frees the tunnel when both ways are done; returns 1
 * then. */
static int pass_end_when_flushed(struct tunnel *t, struct bufferevent *b)
{
	int side = side_of(t, b);
	if (!t->ended[!side] || t->shut[side] ||
	    evbuffer_get_length(bufferevent_get_output(b)) > 0)
		return 0;
	shutdown(bufferevent_getfd(b), SHUT_WR);
	t->shut[side] = 1;
	if (!t->shut[!side])
		return 0;
	tunnel_free(t);
	return 1;
}

static void arm_idle(struct tunnel *t, int64_t ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
	evtimer_add(t->idle, &tv);
}

/* The idle timeout now: shorter once a side has ended. */
static int64_t idle_limit(const struct tunnel *t)
{
	if ((t->ended[SIDE_CLIENT] || t->ended[SIDE_UPSTREAM]) &&
	    t->idle_timeout_ms > TUNNEL_HALF_CLOSED_MS)
		return TUNNEL_HALF_CLOSED_MS;
	return t->idle_timeout_ms;
}

static void on_idle(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct tunnel *t = arg;
	int64_t left = t->last_active_ms + idle_limit(t) - mono_ms();
	if (left > 0) {
		arm_idle(t, left);
		return;
	}
	tunnel_free(t);
}

/* Bytes left an output buffer: written to that side's socket. */
static void on_sent(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	(void)buf;
	struct tunnel *t = arg;
	if (info->n_deleted > 0)
		t->last_active_ms = mono_ms();
}

static void on_read(struct bufferevent *b, void *arg)
{
	struct tunnel *t = arg;
	t->last_active_ms = mono_ms();
	struct bufferevent *other = partner(t, b);
	evbuffer_add_buffer(bufferevent_get_output(other), bufferevent_get_input(b));
	if (evbuffer_get_length(bufferevent_get_output(other)) >= TUNNEL_HIGH) {
		bufferevent_disable(b, EV_READ);
		bufferevent_setwatermark(other, EV_WRITE, TUNNEL_HIGH / 2, 0);
	}
}

static void on_drained(struct bufferevent *b, void *arg)
{
	struct tunnel *t = arg;
	if (pass_end_when_flushed(t, b))
		return;
	bufferevent_setwatermark(b, EV_WRITE, 0, 0);
	struct bufferevent *other = partner(t, b);
	if (!t->ended[side_of(t, other)])
		bufferevent_enable(other, EV_READ);
}

static void on_event(struct bufferevent *b, short what, void *arg)
{
	struct tunnel *t = arg;
	struct bufferevent *other = partner(t, b);
	if (!(what & BEV_EVENT_EOF) || (what & BEV_EVENT_ERROR)) {
		tunnel_free(t); /* a reset, or a failed write: both ways end */
		return;
	}
	/* the side's end: what was read before it goes on, then the end */
	evbuffer_add_buffer(bufferevent_get_output(other), bufferevent_get_input(b));
	t->ended[side_of(t, b)] = 1;
	arm_idle(t, idle_limit(t)); /* the shorter clock from now (on_idle counts) */
	bufferevent_disable(b, EV_READ);
	bufferevent_setwatermark(other, EV_WRITE, 0, 0); /* on_drained when all is out */
	pass_end_when_flushed(t, other);
}

static void on_start(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct tunnel *t = arg;
	if (session_stopping()) {
		tunnel_free(t);
		return;
	}
	t->client = bufferevent_socket_new(loop_base, t->s->fd, 0);
	t->upstream = bufferevent_socket_new(loop_base, t->upstream_fd, BEV_OPT_CLOSE_ON_FREE);
	t->idle = evtimer_new(loop_base, on_idle, t);
	if (t->client == NULL || t->upstream == NULL || t->idle == NULL) {
		tunnel_free(t);
		return;
	}
	t->client_sent = evbuffer_add_cb(bufferevent_get_output(t->client), on_sent, t);
	t->upstream_sent = evbuffer_add_cb(bufferevent_get_output(t->upstream), on_sent, t);
	if (t->client_sent == NULL || t->upstream_sent == NULL) {
		tunnel_free(t);
		return;
	}
	/* bytes the client sent after the CONNECT head go upstream first */
	evbuffer_add_buffer(bufferevent_get_output(t->upstream), t->s->in);
	t->last_active_ms = mono_ms();
	arm_idle(t, t->idle_timeout_ms);
	bufferevent_setcb(t->client, on_read, on_drained, on_event, t);
	bufferevent_setcb(t->upstream, on_read, on_drained, on_event, t);
	bufferevent_enable(t->client, EV_READ | EV_WRITE);
	bufferevent_enable(t->upstream, EV_READ | EV_WRITE);
}

/* The connected socket, taken from curl: a dup of it for the tunnel, and
 * curl's descriptor number pointed at a fresh unconnected socket (dup3), so
 * that the tunnel holds the only descriptor of the connection. curl keeps a
 * CONNECT_ONLY connection in the shared connection cache after
 * curl_easy_cleanup (never reused, pruned later); were it still the real
 * connection, the server would not see the tunnel close. What curl closes
 * later is the placeholder. Returns the fd, or -1. */
static int take_socket(curl_socket_t sock)
{
	int fd = fcntl(sock, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int placeholder = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (placeholder < 0 || dup3(placeholder, sock, O_CLOEXEC) < 0) {
		if (placeholder >= 0)
			close(placeholder);
		close(fd);
		return -1;
	}
	close(placeholder);
	return fd;
}

void tunnel_run(struct exchange *x)
{
	exchange_will_block();
	char host[256], url[320], why[512];
	int port;
	x->result = "TCP_TUNNEL";
	/* x->hierarchy stays NULL (HIER_NONE) until the upstream is connected:
	 * a CONNECT refused here went nowhere */
	if (url_parse_authority(x->req.url, host, sizeof host, &port) < 0) {
		stats_inc(STAT_requests_bad_total);
		x->result = NULL;
		exchange_error(x, 400, "CONNECT needs a host:port target");
		return;
	}
	snprintf(x->url.host, sizeof x->url.host, "%s", host);
	x->url.port = port;
	if (!config_port_allowed(&x->cfg->connect_ports, port)) {
		stats_inc(STAT_requests_destination_denied_total);
		x->result = "TCP_DENIED";
		snprintf(why, sizeof why, "CONNECT to port %d is not allowed (connect_ports)", port);
		exchange_error(x, 403, why);
		return;
	}
	struct upstream_ctx u;
	CURL *h = upstream_easy(x->cfg, &u);
	if (h == NULL) {
		exchange_error(x, 500, "out of memory");
		return;
	}
	int v6 = strchr(host, ':') != NULL;
	snprintf(url, sizeof url, "http://%s%s%s:%d/", v6 ? "[" : "", host, v6 ? "]" : "", port);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
	struct curl_slist *to_parent = NULL;
	if (x->cfg->parent[0]) {
		/* the CONNECT to the parent says who asked, as other requests
		 * do (Squid sends both on a CONNECT to a cache_peer) */
		struct upstream_forwarding fw;
		upstream_forwarding_init(&fw, x->cfg, x->req.http_minor, x->s->peer_text);
		if (upstream_request_headers("CONNECT", &x->req.headers, 0, &fw, 0, &to_parent) < 0) {
			curl_easy_cleanup(h);
			exchange_error(x, 500, "out of memory");
			return;
		}
		curl_easy_setopt(h, CURLOPT_HTTPPROXYTUNNEL, 1L);
		curl_easy_setopt(h, CURLOPT_PROXYHEADER, to_parent);
		curl_easy_setopt(h, CURLOPT_HEADEROPT, (long)CURLHEADER_SEPARATE);
	}
	CURLcode rc = curl_easy_perform(h);
	curl_slist_free_all(to_parent);
	curl_socket_t sock = CURL_SOCKET_BAD;
	if (rc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_ACTIVESOCKET, &sock);
	if (rc != CURLE_OK || sock == CURL_SOCKET_BAD) {
		int status = upstream_failure(h, rc, &u, host, port, why, sizeof why);
		curl_easy_cleanup(h);
		x->hierarchy = "HIER_NONE";
		x->result = status == 403 ? "TCP_DENIED" : "TCP_TUNNEL";
		stats_inc(status == 403 ? STAT_requests_destination_denied_total
		          : status == 504 ? STAT_upstream_timeouts_total : STAT_upstream_errors_total);
		exchange_error(x, status, why);
		return;
	}
	x->hierarchy = upstream_hierarchy(x->cfg);
	char *ip = NULL;
	if (curl_easy_getinfo(h, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip)
		snprintf(x->upstream, sizeof x->upstream, "%s", ip);
	int fd = take_socket(sock);
	curl_easy_cleanup(h);
	struct tunnel *t = fd >= 0 ? calloc(1, sizeof *t) : NULL;
	if (t == NULL) {
		if (fd >= 0)
			close(fd);
		exchange_error(x, 500, "out of resources for a tunnel");
		return;
	}
	static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
	x->status = 200;
	if (exchange_write(x, ok, sizeof ok - 1) < 0) {
		close(fd);
		free(t);
		x->close_after = 1;
		return;
	}
	stats_inc(STAT_tunnels_total);
	stats_inc(STAT_tunnels_active);
	t->s = x->s;
	t->upstream_fd = fd;
	t->idle_timeout_ms = x->cfg->upstream_timeout_ms;
	/* log now: the session leaves this thread */
	struct access_record rec = {
		.start_ms = x->start_ms, .elapsed_ms = mono_ms() - x->start_mono,
		.client = x->s->peer_text, .user = x->user, .result = "TCP_TUNNEL", .status = 200,
		.bytes = x->bytes_out, .method = "CONNECT", .url = x->req.url,
		.hierarchy = upstream_hierarchy(x->cfg), .upstream = x->upstream, .mime = "-",
		.http_version = "HTTP/1.1",
		.user_agent = headers_get(&x->req.headers, "User-Agent"),
	};
	log_access(&rec);
	x->handed_off = 1;
	static const struct timeval now = { 0, 0 };
	if (event_base_once(loop_base, -1, EV_TIMEOUT, on_start, t, &now) < 0)
		tunnel_free(t);
}

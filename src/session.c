/*
 * session.c — client connections and the session waiter.
 *
 * The waiter lives on the main event loop. An idle connection costs one
 * `struct session` and one event, no thread: when it becomes readable the
 * waiter submits it to the worker pool (exchange_run); when it stays silent
 * for client_timeout it is closed. Workers hand sessions back with
 * session_park(), which posts a one-shot event to the main loop — the hand-off
 * message. `idle_list` and every session's ev/prev/next belong to the main
 * thread alone.
 */
#include "corral/session.h"
#include "corral/config.h"
#include "corral/exchange.h"
#include "corral/linger.h"
#include "corral/log.h"
#include "corral/pool.h"
#include "corral/stats.h"

#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct event_base *waiter_base;
static struct session *idle_list;      /* main thread only */
static _Atomic int stopping;

int session_stopping(void)
{
	return atomic_load(&stopping);
}

struct session *session_new(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct session *s = calloc(1, sizeof *s);
	if (s == NULL)
		return NULL;
	s->in = evbuffer_new();
	if (s->in == NULL) {
		free(s);
		return NULL;
	}
	s->magic = SESSION_MAGIC;
	s->fd = fd;
	memcpy(&s->peer, sa, len < sizeof s->peer ? len : sizeof s->peer);
	if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
		          s->peer_text, sizeof s->peer_text);
	} else if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		struct sockaddr_in6 a6;
		memcpy(&a6, sa, sizeof a6);
		/* an IPv4 client of a dual-stack listener: written as IPv4 in
		 * the logs and X-Forwarded-For, as Squid writes it */
		if (IN6_IS_ADDR_V4MAPPED(&a6.sin6_addr))
			inet_ntop(AF_INET, &a6.sin6_addr.s6_addr[12], s->peer_text,
			          sizeof s->peer_text);
		else
			inet_ntop(AF_INET6, &a6.sin6_addr, s->peer_text, sizeof s->peer_text);
	} else
		strcpy(s->peer_text, "-");
	stats_inc(STAT_connections_active);
	return s;
}

void session_close(struct session *s)
{
	if (s == NULL)
		return;
	if (s->magic != SESSION_MAGIC)
		abort();
	s->magic = 0;
	if (s->ev)
		event_free(s->ev);
	close(s->fd);
	evbuffer_free(s->in);
	free(s);
	stats_add(STAT_connections_active, -1);
}

static void idle_unlink(struct session *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		idle_list = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
	stats_add(STAT_connections_idle, -1);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	struct session *s = arg;
	idle_unlink(s);
	if (what & EV_TIMEOUT) {
		stats_inc(STAT_client_timeouts_total);
		session_close(s);
		return;
	}
	/* Workers serving the linger set take it up in turn; waking a pool
	 * thread for it would wait for the busy one's scheduler tick. */
	if (linger_offer(s) == 0)
		return;
	if (pool_submit(exchange_run, s) < 0)
		session_close(s);
}

void session_wait(struct session *s)
{
	if (atomic_load(&stopping)) {
		session_close(s);
		return;
	}
	struct config *c = config_get();
	struct timeval tv = { .tv_sec = c->client_timeout_ms / 1000,
	                      .tv_usec = (c->client_timeout_ms % 1000) * 1000 };
	config_put(c);
	if (s->ev == NULL)
		s->ev = event_new(waiter_base, s->fd, EV_READ, on_readable, s);
	else
		event_assign(s->ev, waiter_base, s->fd, EV_READ, on_readable, s);
	if (s->ev == NULL || event_add(s->ev, &tv) < 0) {
		session_close(s);
		return;
	}
	s->prev = NULL;
	s->next = idle_list;
	if (idle_list)
		idle_list->prev = s;
	idle_list = s;
	stats_inc(STAT_connections_idle);
}

static void on_parked(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	session_wait(arg);
}

void session_park(struct session *s)
{
	static const struct timeval now = { 0, 0 };
	if (event_base_once(waiter_base, -1, EV_TIMEOUT, on_parked, s, &now) < 0)
		session_close(s);
}

int session_waiter_start(struct event_base *base)
{
	waiter_base = base;
	return 0;
}

void session_waiter_stop(void)
{
	atomic_store(&stopping, 1);
	while (idle_list) {
		struct session *s = idle_list;
		idle_unlink(s);
		session_close(s);
	}
}

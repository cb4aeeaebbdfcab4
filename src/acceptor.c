/*
 * acceptor.c — accepts client connections (libevent evconnlistener, main
 * thread) and hands each to the session waiter.
 *
 * The acceptor decides two things from the address alone and blocks on
 * nothing: over max_connections the connection is closed at once (counted);
 * outside [proxy] allow it is marked `denied`, so the worker that reads its
 * first request answers 403 and closes — a client sees why, in HTTP.
 * There is no per-address limit: a CI farm behind NAT is one address.
 */
#include "corral/acceptor.h"
#include "corral/config.h"
#include "corral/log.h"
#include "corral/session.h"
#include "corral/stats.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>
#include <event2/listener.h>

static struct evconnlistener *listeners[CONFIG_MAX_LISTEN];
static int n_listeners;

static void on_accept(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg)
{
	(void)l;
	(void)arg;
	stats_inc(STAT_connections_accepted_total);
	struct config *c = config_get();
	int over = stats_get(STAT_connections_active) >= c->max_connections;
	int denied = !config_client_allowed(c, sa);
	config_put(c);
	if (over) {
		stats_inc(STAT_connections_rejected_total);
		log_warn("max_connections reached: closing a connection at once");
		close(fd);
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct session *s = session_new(fd, sa, (socklen_t)salen);
	if (s == NULL) {
		close(fd);
		return;
	}
	s->denied = denied;
	session_wait(s);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
	(void)l;
	(void)arg;
	log_error("accept: %s", strerror(errno));
}

int acceptor_start(struct event_base *base, const struct config *c)
{
	for (int i = 0; i < c->n_listen; i++) {
		const struct config_listen *L = &c->listen[i];
		struct evconnlistener *l = evconnlistener_new_bind(
			base, on_accept, NULL,
			LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
			1024, (const struct sockaddr *)&L->addr, (int)L->addrlen);
		if (l == NULL) {
			log_error("cannot listen on %s: %s", L->text, strerror(errno));
			return -1;
		}
		evconnlistener_set_error_cb(l, on_accept_error);
		listeners[n_listeners++] = l;
		log_info("listening on %s", L->text);
	}
	return 0;
}

void acceptor_stop(void)
{
	for (int i = 0; i < n_listeners; i++)
		evconnlistener_free(listeners[i]);
	n_listeners = 0;
}

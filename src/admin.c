/*
 * admin.c — the admin listener (see admin.h). Reads counters only (atomics
 * and the pool's stats); never takes a cache lock for long.
 */
#include "corral/admin.h"
#include "corral/log.h"
#include "corral/pool.h"
#include "corral/stats.h"

#include <errno.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/listener.h>

static struct evhttp *http;

static void on_metrics(struct evhttp_request *req, void *arg)
{
	(void)arg;
	struct evbuffer *b = evbuffer_new();
	for (int i = 0; i < STAT__COUNT; i++)
		evbuffer_add_printf(b, "# HELP corral_%s %s\ncorral_%s %lld\n",
		                    stats_name(i), stats_help(i), stats_name(i),
		                    (long long)stats_get(i));
	struct pool_stats p;
	pool_get_stats(&p);
	evbuffer_add_printf(b, "corral_workers %d\ncorral_workers_idle %d\n"
	                    "corral_workers_busy %d\ncorral_jobs_queued %d\n"
	                    "corral_worker_spawn_failures_total %lu\n",
	                    p.threads, p.idle, p.busy, p.queued, p.spawn_failures);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	                  "text/plain; version=0.0.4");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static void on_status(struct evhttp_request *req, void *arg)
{
	(void)arg;
	struct evbuffer *b = evbuffer_new();
	evbuffer_add_printf(b, "corral %s: ok\n", CORRAL_VERSION);
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

int admin_start(struct event_base *base, const struct config *c)
{
	if (!c->has_admin)
		return 0;
	http = evhttp_new(base);
	if (http == NULL)
		return -1;
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_cb(http, "/metrics", on_metrics, NULL);
	evhttp_set_cb(http, "/status", on_status, NULL);
	struct evconnlistener *l = evconnlistener_new_bind(
		base, NULL, NULL, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
		128, (const struct sockaddr *)&c->admin_listen.addr, (int)c->admin_listen.addrlen);
	if (l == NULL || evhttp_bind_listener(http, l) == NULL) {
		log_error("cannot listen on %s (admin): %s", c->admin_listen.text, strerror(errno));
		return -1;
	}
	log_info("admin listening on %s", c->admin_listen.text);
	return 0;
}

void admin_stop(void)
{
	if (http)
		evhttp_free(http);
	http = NULL;
}

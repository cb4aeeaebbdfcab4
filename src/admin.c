/*
 * admin.c — the admin listener (see admin.h). Reads counters only (atomics
 * and the pool's stats), and takes stored responses out of the cache on
 * request (/purge: the table's and one head's lock, briefly).
 */
#include "corral/admin.h"
#include "corral/cache.h"
#include "corral/http.h"
#include "corral/log.h"
#include "corral/pool.h"
#include "corral/stats.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/listener.h>

static struct evhttp *http;

static void reply(struct evhttp_request *req, int code, const char *reason, const char *text);

/* /metrics and /status are read with GET or HEAD only (POST is /purge's) */
static int read_only(struct evhttp_request *req)
{
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST)
		return 1;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
	reply(req, 405, "Method Not Allowed", "GET or HEAD\n");
	return 0;
}

static void on_metrics(struct evhttp_request *req, void *arg)
{
	(void)arg;
	if (!read_only(req))
		return;
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

/* A plain-text answer. */
static void reply(struct evhttp_request *req, int code, const char *reason, const char *text)
{
	struct evbuffer *b = evbuffer_new();
	evbuffer_add(b, text, strlen(text));
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
	evhttp_send_reply(req, code, reason, b);
	evbuffer_free(b);
}

/* The URL in /purge's query: everything after "url=" (the last
 * parameter, so that the URL's own query stays whole), as written when it
 * has "://" (the cache's key is the URL as clients send it: a '+' or a
 * %XX in it is part of it), else percent-decoded once. NULL when absent;
 * free() it. */
static char *purge_target(const char *query)
{
	const char *v = strncmp(query, "url=", 4) == 0 ? query : strstr(query, "&url=");
	if (v == NULL)
		return NULL;
	v += v[0] == '&' ? 5 : 4;
	return strstr(v, "://") ? strdup(v) : evhttp_uridecode(v, 0, NULL);
}

/* POST /purge?url=URL: every stored response for URL (its variants, and a
 * hit-for-miss marker) out of the cache, as Squid's PURGE. 200 with how
 * many, 404 when none was stored. Runs on the main loop: cache_invalidate
 * holds the table's lock for one bucket walk. A request with an Origin
 * header (a browser's, from some web page: a POST needs no preflight) is
 * refused. */
static void on_purge(struct evhttp_request *req, void *arg)
{
	(void)arg;
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
		reply(req, 405, "Method Not Allowed", "use POST /purge?url=URL\n");
		return;
	}
	if (evhttp_find_header(evhttp_request_get_input_headers(req), "Origin")) {
		reply(req, 403, "Forbidden", "a purge from a web page is refused\n");
		return;
	}
	const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	char *target = query ? purge_target(query) : NULL;
	struct url u;
	char key[8192];
	if (target == NULL || url_parse(target, &u) < 0 || url_normalise(&u, key, sizeof key) < 0) {
		reply(req, 400, "Bad Request",
		      "use POST /purge?url=URL, URL an absolute http:// or https:// URL\n");
		free(target);
		return;
	}
	int n = cache_invalidate(key);
	stats_add(STAT_cache_purged_total, n);
	log_info("purge %s: %d stored response(s)", key, n);
	char msg[64];
	snprintf(msg, sizeof msg, "purged %d stored response(s)\n", n);
	if (n > 0)
		reply(req, 200, "OK", msg);
	else
		reply(req, 404, "Not Found", "nothing stored for that URL\n");
	free(target);
}

static void on_status(struct evhttp_request *req, void *arg)
{
	(void)arg;
	if (!read_only(req))
		return;
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
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
	/* nothing here takes a body: evhttp would buffer any size on this
	 * thread (it answers 413 past these) */
	evhttp_set_max_body_size(http, 1024);
	evhttp_set_max_headers_size(http, 16384);
	evhttp_set_cb(http, "/metrics", on_metrics, NULL);
	evhttp_set_cb(http, "/status", on_status, NULL);
	evhttp_set_cb(http, "/purge", on_purge, NULL);
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

/*
 * main.c — corrald: wires the parts together and runs the main loop.
 *
 * The main thread runs one libevent loop holding the acceptor, the session
 * waiter, tunnels, the admin listener and the signals. Workers run requests.
 * Signals: SIGTERM/SIGINT stop accepting, close idle connections and wait up
 * to shutdown_grace for requests in flight, then exit 0; SIGHUP re-reads the
 * config (a bad one is logged and the running one kept); SIGUSR1 reopens the
 * access log. systemd is told READY=1, RELOADING=1 and STOPPING=1.
 */
#include "corral/acceptor.h"
#include "corral/admin.h"
#include "corral/cache.h"
#include "corral/config.h"
#include "corral/exchange.h"
#include "corral/io.h"
#include "corral/linger.h"
#include "corral/log.h"
#include "corral/pool.h"
#include "corral/session.h"
#include "corral/tunnel.h"
#include "corral/upstream.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <systemd/sd-daemon.h>

#define DEFAULT_CONFIG "/etc/corral/corral.ini"

static struct event_base *base;
static char config_path[4096];
static struct event *stop_timer;
static int64_t stop_deadline;

static void usage(FILE *f)
{
	fprintf(f, "usage: corrald [-c FILE] [-t] [-V] [-h]\n"
	        "  -c FILE  configuration file (default " DEFAULT_CONFIG ")\n"
	        "  -t       check the configuration file and exit (0 valid, 1 not)\n"
	        "  -V       print the version and exit\n"
	        "  -h       this help\n");
}

static void notify_reloading(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
	           (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
}

static int same_listen(const struct config *a, const struct config *b)
{
	if (a->n_listen != b->n_listen || a->has_admin != b->has_admin)
		return 0;
	for (int i = 0; i < a->n_listen; i++)
		if (strcmp(a->listen[i].text, b->listen[i].text) != 0)
			return 0;
	return !a->has_admin || strcmp(a->admin_listen.text, b->admin_listen.text) == 0;
}

static void reload(void)
{
	char err[1024];
	notify_reloading();
	struct config *next = config_load(config_path, err, sizeof err);
	if (next == NULL) {
		log_error("reload failed, keeping the running configuration: %s", err);
		sd_notify(0, "READY=1\nSTATUS=reload failed; running the previous configuration");
		return;
	}
	if (log_configure(next) < 0) {
		log_error("reload failed, keeping the running configuration: %s: [log] access: "
		          "cannot open %s", config_path, next->access_log);
		config_put(next);
		sd_notify(0, "READY=1\nSTATUS=reload failed; running the previous configuration");
		return;
	}
	struct config *cur = config_get();
	if (!same_listen(cur, next))
		log_warn("reload: listen addresses changed; they take effect on restart");
	config_put(cur);
	pool_resize(next->min_workers, next->max_workers);
	cache_set_limits(next->cache_memory, next->max_object);
	config_install(next);
	log_info("configuration reloaded from %s", config_path);
	sd_notify(0, "READY=1\nSTATUS=running");
}

static void on_stop_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	int busy = pool_busy();
	if (busy == 0 || mono_ms() >= stop_deadline) {
		if (busy)
			log_warn("shutdown: %d requests still in flight after the grace period", busy);
		event_base_loopbreak(base);
	}
}

static void begin_stop(void)
{
	if (stop_timer) {
		log_info("second stop signal: exiting now");
		event_base_loopbreak(base);
		return;
	}
	sd_notify(0, "STOPPING=1");
	log_info("stopping: no new connections; waiting for requests in flight");
	acceptor_stop();
	session_waiter_stop();
	struct config *c = config_get();
	stop_deadline = mono_ms() + c->shutdown_grace_ms;
	config_put(c);
	static const struct timeval tick = { 0, 20000 };
	stop_timer = event_new(base, -1, EV_PERSIST, on_stop_tick, NULL);
	event_add(stop_timer, &tick);
	on_stop_tick(-1, 0, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	(void)arg;
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		begin_stop();
		break;
	case SIGHUP:
		if (stop_timer) {
			/* stopping: a reload would send READY=1 after STOPPING=1 */
			log_info("reload ignored: stopping");
			break;
		}
		reload();
		break;
	case SIGUSR1:
		log_reopen();
		break;
	}
}

int main(int argc, char **argv)
{
	const char *path = DEFAULT_CONFIG;
	int check_only = 0, opt;
	while ((opt = getopt(argc, argv, "c:tVh")) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 't': check_only = 1; break;
		case 'V': printf("corrald %s\n", CORRAL_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 1;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 1;
	}
	snprintf(config_path, sizeof config_path, "%s", path);

	char err[1024];
	struct config *c = config_load(config_path, err, sizeof err);
	if (c == NULL) {
		fprintf(stderr, "corrald: %s\n", err);
		return 1;
	}
	if (check_only) {
		printf("corrald: %s: configuration is valid\n", config_path);
		config_put(c);
		return 0;
	}

	signal(SIGPIPE, SIG_IGN);
	if (evthread_use_pthreads() < 0 || (base = event_base_new()) == NULL) {
		fprintf(stderr, "corrald: cannot create the event loop\n");
		return 1;
	}
	/* Signals first: once a port accepts, a SIGHUP or SIGTERM must find our
	 * handler, not the default action (which kills). A signal that comes
	 * before the loop runs waits in libevent and is handled by the loop. */
	int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1 };
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
		struct event *ev = evsignal_new(base, sigs[i], on_signal, NULL);
		if (ev == NULL || event_add(ev, NULL) < 0) {
			fprintf(stderr, "corrald: cannot handle signal %d\n", sigs[i]);
			return 1;
		}
	}
	if (upstream_init() < 0) {
		fprintf(stderr, "corrald: cannot initialise libcurl\n");
		return 1;
	}
	if (cache_init() < 0) {
		fprintf(stderr, "corrald: out of memory for the cache table\n");
		return 1;
	}
	cache_set_limits(c->cache_memory, c->max_object);
	if (log_configure(c) < 0)
		return 1;
	config_install(c);
	c = config_get();
	session_waiter_start(base);
	tunnel_init(base);
	io_set_before_block(linger_release);
	if (linger_start(exchange_run) < 0) {
		log_error("cannot create the linger set: %s", strerror(errno));
		return 1;
	}
	if (pool_start(c->min_workers, c->max_workers) < 0) {
		log_error("cannot start %d worker threads", c->min_workers);
		return 1;
	}
	if (acceptor_start(base, c) < 0 || admin_start(base, c) < 0)
		return 1;
	config_put(c);

	log_info("corrald %s started with %s", CORRAL_VERSION, config_path);
	sd_notifyf(0, "READY=1\nSTATUS=running\nMAINPID=%d", (int)getpid());

	event_base_dispatch(base);

	admin_stop();
	log_info("stopped");
	return 0;
}

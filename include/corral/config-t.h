/*
 * config-t.h — the types of corral's configuration.
 *
 * One ini file becomes one `struct config`. A config is immutable once built:
 * a reload builds a new one and swaps the pointer (see config.h), so readers
 * never take a lock to read a field. Durations are kept in milliseconds,
 * sizes in bytes. Every field's default is in config_defaults() (config.c),
 * in README.md and in conf/corral.ini; the three must agree.
 */
#ifndef CORRAL_CONFIG_T_H
#define CORRAL_CONFIG_T_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CONFIG_MAX_LISTEN 16
#define CONFIG_MAX_ALLOW 64
#define CONFIG_MAX_PORTS 32

/* Ports a destination may have: any (`*`), or these ranges (a port alone is
 * a range of one), none when n is 0. */
struct config_ports {
	struct { int lo, hi; } range[CONFIG_MAX_PORTS];
	int n;
	int any;
};

struct auth;

/* One address to listen on: "127.0.0.1:3128" or "[::1]:3128". */
struct config_listen {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char text[64]; /* as written in the file, for logs */
};

/* One client CIDR allowed to use the proxy. */
struct config_cidr {
	int family;             /* AF_INET or AF_INET6 */
	unsigned char addr[16]; /* network address, host bits zeroed */
	int prefix;             /* 0..32 or 0..128 */
};

enum log_format {
	LOG_FORMAT_SQUID,    /* Squid's native access.log format */
	LOG_FORMAT_COMBINED, /* Apache/nginx combined */
};

enum log_level {
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

/* What [proxy] forwarded_for does to a request's X-Forwarded-For (Squid's
 * forwarded_for, with its values). */
enum forwarded_for {
	FORWARDED_FOR_ON,          /* append the client's address */
	FORWARDED_FOR_OFF,         /* append "unknown" */
	FORWARDED_FOR_TRANSPARENT, /* leave it as the client sent it */
	FORWARDED_FOR_TRUNCATE,    /* the client's address alone */
	FORWARDED_FOR_DELETE,      /* none */
};

struct config {
	char path[4096]; /* the file this was read from */

	/* [proxy] */
	struct config_listen listen[CONFIG_MAX_LISTEN];
	int n_listen;
	struct config_cidr allow[CONFIG_MAX_ALLOW];
	int n_allow;
	int min_workers;            /* default: 2 per CPU */
	int max_workers;            /* 4096 */
	int64_t client_timeout_ms;  /* 60s: idle keep-alive and per-read/write */
	int64_t header_timeout_ms;  /* 10s: whole request head must arrive */
	size_t max_request_header;  /* 64K -> 431 */
	size_t max_url;             /* 8K -> 414 */
	uint64_t max_request_body;  /* 0 = unlimited, else -> 413 */
	int max_connections;        /* 4096 */
	int via;                    /* 1: add "Via: 1.1 corral" */
	enum forwarded_for forwarded_for; /* on */
	char auth_file[4096];       /* "" none, else an htpasswd file (auth.h) */
	char auth_realm[128];       /* "corral" */
	struct auth *auth;          /* auth_file read, when given: owned by this
	                               config, freed with it */
	int64_t shutdown_grace_ms;  /* 10s: SIGTERM waits this long for requests in flight */
	int64_t keepalive_linger_ms;/* 50ms: a worker waits this long for the next request */
	struct config_ports connect_ports; /* CONNECT allowed to these ports: 443 */
	struct config_ports http_ports;    /* http:// and https:// requests to these:
	                                      80, 443, 280, 488, 591, 777, 1025-65535 */

	/* [upstream] */
	int64_t connect_timeout_ms; /* 10s */
	int64_t upstream_timeout_ms;/* 120s without progress */
	char parent[1024];          /* "" or a proxy URL for libcurl */
	char parent_host[262];      /* its host[:port], without user or password,
	                               for messages (set at load) */
	int allow_loopback;         /* 0: refuse loopback/link-local destinations */
	char ca_file[4096];         /* "" or a CA bundle used instead of the system one */

	/* [cache] */
	uint64_t cache_memory;      /* 256M */
	uint64_t max_object;        /* 64M */
	int64_t coalesce_timeout_ms;/* 30s */
	int heuristic_percent;      /* 10: heuristic freshness, % of the time
	                               since Last-Modified; 0 none */
	int64_t heuristic_max_ms;   /* 1d: the most it gives */

	/* [log] */
	char access_log[4096];      /* "-" stdout, "" off, else a path */
	enum log_format log_format; /* squid */
	enum log_level log_level;   /* info */

	/* [admin] */
	struct config_listen admin_listen; /* valid when has_admin */
	int has_admin;              /* 127.0.0.1:3129; empty value turns it off */
};

#endif

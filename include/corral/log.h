/*
 * log.h — the error log (stderr) and the access log.
 *
 * The error log writes one line per call to stderr, filtered by [log] level.
 * The access log writes one line per request, in Squid's native format or in
 * combined format, to stdout, to a file, or nowhere. Each line is one write(2)
 * on an O_APPEND descriptor, so threads never interleave within a line and no
 * lock is held across the write. log_reopen() (SIGUSR1) opens the file anew
 * and dup2()s it over the old descriptor: the swap is atomic for writers.
 */
#ifndef CORRAL_LOG_H
#define CORRAL_LOG_H

#include <stdint.h>
#include <time.h>
#include "corral/config-t.h"

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

/* Apply [log] settings: level, access log target and format. Called at start
 * and on reload (main thread). Returns 0, or -1 with a message logged. */
int log_configure(const struct config *c);

/* Reopen the access log file (SIGUSR1). */
void log_reopen(void);

/* One finished request, as the access log sees it. */
struct access_record {
	int64_t start_ms;        /* wall clock, ms since the epoch */
	int64_t elapsed_ms;
	const char *client;      /* client address text */
	const char *user;        /* the authenticated user, or NULL ("-") */
	const char *result;      /* Squid result code: TCP_MISS, TCP_DENIED, NONE_NONE... */
	int status;
	uint64_t bytes;          /* bytes written to the client, head and body */
	const char *method;
	const char *url;
	const char *hierarchy;   /* HIER_DIRECT or HIER_NONE */
	const char *upstream;    /* upstream address or "-" */
	const char *mime;        /* response Content-Type or "-" */
	/* shown in the combined format only (log_access_combined) */
	const char *http_version;/* "HTTP/1.1" */
	const char *referer;     /* or NULL */
	const char *user_agent;  /* or NULL */
};

void log_access(const struct access_record *rec);
/* Whether the access log is in the combined format, the only one that
 * shows http_version, referer and user_agent (a caller may leave them out
 * otherwise). */
int log_access_combined(void);

/* Milliseconds: wall clock and monotonic. */
int64_t log_now_ms(void);
int64_t mono_ms(void);
/* CLOCK_MONOTONIC now + ms, for pthread_cond_timedwait on a condvar with
 * that clock. */
struct timespec mono_deadline(int64_t ms);

#endif

/*
 * log.c — error log to stderr, access log in Squid or combined format.
 *
 * Rules (see log.h): one write(2) per line, no lock held while writing. The
 * settings are atomics written by the main thread (log_configure, log_reopen)
 * and read by any thread. The access log file keeps one descriptor number for
 * the life of the process (file_fd): a reopen or a new path dup2()s onto it,
 * so a writer on another thread never writes to a closed descriptor.
 */
#include "corral/log.h"
#include "corral/strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Atomic int level = LOG_LEVEL_INFO;
static _Atomic int format = LOG_FORMAT_SQUID;
static _Atomic int access_fd = 1;   /* -1 off, 1 stdout, or file_fd */
static int file_fd = -1;            /* main thread only */
static char file_path[4096];        /* main thread only */

int64_t log_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct timespec mono_deadline(int64_t ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	if ((int)lvl > atomic_load_explicit(&level, memory_order_relaxed))
		return;
	char line[2048];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ corrald[%d] %s: ",
	                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	                 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, (int)getpid(),
	                 level_names[lvl]);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof line - 2)
		len = sizeof line - 2;
	line[len++] = '\n';
	write_all(2, line, len);
}

static int open_access_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		log_error("cannot open access log %s: %s", path, strerror(errno));
		return -1;
	}
	if (file_fd < 0) {
		file_fd = fd;
	} else {
		dup2(fd, file_fd);
		close(fd);
	}
	return 0;
}

int log_configure(const struct config *c)
{
	/* The file first: when it cannot be opened nothing changes (a reload
	 * that fails here keeps the running settings whole). */
	int fd;
	if (strcmp(c->access_log, "-") == 0) {
		fd = 1;
	} else if (c->access_log[0] == '\0') {
		fd = -1;
	} else {
		if (open_access_file(c->access_log) < 0)
			return -1;
		snprintf(file_path, sizeof file_path, "%s", c->access_log);
		fd = file_fd;
	}
	atomic_store(&level, c->log_level);
	atomic_store(&format, c->log_format);
	atomic_store(&access_fd, fd);
	return 0;
}

void log_reopen(void)
{
	if (atomic_load(&access_fd) == file_fd && file_fd >= 0) {
		if (open_access_file(file_path) == 0)
			log_info("reopened access log %s", file_path);
	}
}

static const char *dash(const char *s)
{
	return (s && *s) ? s : "-";
}

/* %ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt */
static size_t squid_line(const struct access_record *r, char *buf, size_t size)
{
	/* copies, not snprintf: a fifth of a 1 KiB hit's instructions */
	struct strbuf l = strbuf_on(buf, size - 1); /* room for the newline */
	int64_t start = r->start_ms < 0 ? 0 : r->start_ms;
	strbuf_u64(&l, (uint64_t)(start / 1000), 0, ' ');
	strbuf_char(&l, '.');
	strbuf_u64(&l, (uint64_t)(start % 1000), 3, '0');
	strbuf_char(&l, ' ');
	strbuf_u64(&l, (uint64_t)(r->elapsed_ms < 0 ? 0 : r->elapsed_ms), 6, ' ');
	strbuf_char(&l, ' ');
	strbuf_str(&l, r->client);
	strbuf_char(&l, ' ');
	strbuf_str(&l, r->result);
	strbuf_char(&l, '/');
	strbuf_u64(&l, (uint64_t)(r->status < 0 ? 0 : r->status), 3, '0');
	strbuf_char(&l, ' ');
	strbuf_u64(&l, r->bytes, 0, ' ');
	strbuf_char(&l, ' ');
	strbuf_str(&l, r->method);
	strbuf_char(&l, ' ');
	strbuf_str(&l, r->url);
	strbuf_char(&l, ' ');
	strbuf_str(&l, dash(r->user));
	strbuf_char(&l, ' ');
	strbuf_str(&l, r->hierarchy);
	strbuf_char(&l, '/');
	strbuf_str(&l, dash(r->upstream));
	strbuf_char(&l, ' ');
	strbuf_str(&l, dash(r->mime));
	size_t n = strbuf_len(&l); /* cut: the line is cut, as snprintf cut it */
	buf[n] = '\n';
	return n + 1;
}

/* A field for the combined format's quoted strings, escaped as Apache
 * escapes them: '"' and '\\' with a backslash, control and high bytes as
 * \\xHH; so that a User-Agent cannot close its quotes and forge the fields
 * after it. Cut to fit `out` (size > 4). */
static const char *quoted_field(const char *in, char *out, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;
	for (; *in && n + 5 < size; in++) {
		unsigned char c = (unsigned char)*in;
		if (c == '"' || c == '\\') {
			out[n++] = '\\';
			out[n++] = (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			out[n++] = '\\';
			out[n++] = 'x';
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 15];
		} else {
			out[n++] = (char)c;
		}
	}
	out[n] = '\0';
	return out;
}

int log_access_combined(void)
{
	return atomic_load_explicit(&format, memory_order_relaxed) == LOG_FORMAT_COMBINED;
}

void log_access(const struct access_record *r)
{
	int fd = atomic_load_explicit(&access_fd, memory_order_relaxed);
	if (fd < 0)
		return;
	char line[8192];
	int n;
	if (atomic_load_explicit(&format, memory_order_relaxed) == LOG_FORMAT_COMBINED) {
		char date[64];
		struct tm tm;
		time_t t = (time_t)(r->start_ms / 1000);
		gmtime_r(&t, &tm);
		strftime(date, sizeof date, "%d/%b/%Y:%H:%M:%S +0000", &tm);
		char url[2048], referer[1024], agent[1024];
		n = snprintf(line, sizeof line,
		             "%s - %s [%s] \"%s %s %s\" %d %llu \"%s\" \"%s\" %lld %s %s/%s\n",
		             r->client, dash(r->user), date, r->method, quoted_field(r->url, url, sizeof url),
		             dash(r->http_version), r->status, (unsigned long long)r->bytes,
		             quoted_field(dash(r->referer), referer, sizeof referer),
		             quoted_field(dash(r->user_agent), agent, sizeof agent),
		             (long long)r->elapsed_ms, r->result, r->hierarchy, dash(r->upstream));
	} else {
		n = (int)squid_line(r, line, sizeof line);
	}
	if (n < 0)
		return;
	if ((size_t)n >= sizeof line) {
		n = sizeof line - 1;
		line[n - 1] = '\n';
	}
	write_all(fd, line, (size_t)n);
}

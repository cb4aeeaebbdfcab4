/*
 * herd.c — the benchmark's many-connection HTTP/1.1 client (epoll, one thread).
 *
 *   herd -c ADDR:PORT -u TARGET [-H HOST] [-n N] [-w WINDOW] [-m MODE]
 *        [-r REQS] [-e BYTES] [-T SECONDS]
 *
 *   -u TARGET  the request target: "http://host:port/path" (absolute form, for
 *              a forward proxy) or "/path" (origin form)
 *   -H HOST    the Host header (default: the host of an absolute TARGET, else ADDR:PORT)
 *   -n N       connections (default 1000)
 *   -w WINDOW  at most this many connections connecting or waiting for their
 *              response at once (default N: all at once)
 *   -e BYTES   the expected body length; any other length is a failure
 *   -T SECONDS give up after this long (default 60); unfinished ones fail
 *   -m herd    (default) every connection sends one GET and closes once the
 *              response is whole: TTFB/TTLB from each client's send time, and
 *              the absolute CLOCK_MONOTONIC times of first and last bytes
 *   -m idle    the same, but each connection stays open afterwards; prints
 *              "ready ..." and holds them until standard input closes (or -T)
 *   -m seq     every connection sends REQS requests one after the other on
 *              keep-alive (-r, default 100); latency percentiles of all of them
 *
 * Output: "key value" lines. Latencies are in ms; *_abs_ns are CLOCK_MONOTONIC.
 * Arrival times are the kernel's receive timestamps (SO_TIMESTAMPNS) of the
 * segments read, so they do not include this client's own delay in getting to
 * a socket among a thousand ready ones; the first read of a response takes one
 * byte, so that its timestamp is the first segment's.
 * Bodies are discarded with recv(MSG_TRUNC) where the framing allows, so the
 * client costs little CPU even for 1000 x 4 MiB.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum mode { M_HERD, M_IDLE, M_SEQ };
enum cstate { C_NEW, C_CONNECTING, C_SENDING, C_HEAD, C_BODY_LEN, C_BODY_CLOSE, C_CHUNK_SIZE,
	      C_CHUNK_DATA, C_CHUNK_CRLF, C_TRAILER, C_DONE, C_FAILED };

struct conn {
	int fd;
	enum cstate st;
	size_t sent;            /* bytes of the request written */
	char head[16384];
	size_t hlen;
	char line[256];         /* a chunk-size or trailer line */
	size_t llen;
	int status;
	uint64_t remaining;     /* body or chunk bytes still to come */
	uint64_t body;          /* body bytes received */
	int reqs;               /* requests completed on this connection */
	int64_t t_send, t_first, t_last;
	int64_t t_rx;           /* when the last bytes read arrived (kernel timestamp) */
	int got_first;
};

static enum mode mode = M_HERD;
static struct conn *conns;
static int nconns = 1000, window, reqs_per_conn = 100;
static int64_t expect = -1;
static char request[8192];
static size_t request_len;
static struct sockaddr_in dst;
static int ep;
static int inflight, done_ok, done_failed, next_conn;
static double *ttfb, *ttlb;
static int64_t *first_abs, *last_abs;
static int nsamples;
static char scratch[1 << 18];
/* Bytes read (copied) at a chunk boundary: the framing and the data after
 * it, before the rest of the chunk is discarded with MSG_TRUNC. 32 bytes
 * there made the receive windows of a chunked herd close and reopen 600 to
 * 3,000 times per herd (nstat TCPToZeroWindowAdv; none with Content-Length),
 * which cost the sender's CPU ~50 ms and the last byte tens of ms; with
 * 64 KiB, about as much as an ordinary client reads at once, they do not. */
#define FRAMING_READ (64 * 1024)
/* A head is read HEAD_READ at a time (after its first byte); the body after
 * it is then discarded with MSG_TRUNC like the rest. A head read used to
 * take all of `scratch`, copying up to 256 KiB of whatever body had come
 * with the head, so the client's cost (and how late it read the last heads
 * of a herd) depended on how closely a server's body followed its heads. */
#define HEAD_READ 4096
static const char *fail_reason[16];
static int64_t rt_minus_mono;   /* CLOCK_REALTIME - CLOCK_MONOTONIC, for kernel timestamps */
static long long kernel_stamps;
static int fail_count[16];

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void note_fail(const char *why)
{
	for (int i = 0; i < 16; i++) {
		if (fail_reason[i] == NULL || strcmp(fail_reason[i], why) == 0) {
			fail_reason[i] = why;
			fail_count[i]++;
			return;
		}
	}
}

static void finish(struct conn *c, int ok, const char *why)
{
	inflight--;
	if (!ok) {
		c->st = C_FAILED;
		done_failed++;
		note_fail(why);
		if (c->fd >= 0) {
			close(c->fd);
			c->fd = -1;
		}
		return;
	}
	c->st = C_DONE;
	done_ok++;
	if (mode == M_IDLE) {
		epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	} else {
		close(c->fd);
		c->fd = -1;
	}
}

static void start_conn(struct conn *c)
{
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		inflight++;
		finish(c, 0, "socket");
		return;
	}
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	setsockopt(c->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
	inflight++;
	int rc = connect(c->fd, (struct sockaddr *)&dst, sizeof dst);
	if (rc < 0 && errno != EINPROGRESS) {
		finish(c, 0, "connect");
		return;
	}
	c->st = C_CONNECTING;
	struct epoll_event ev = { .events = EPOLLOUT | EPOLLIN, .data.ptr = c };
	epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void fill_window(void)
{
	while (next_conn < nconns && inflight < window)
		start_conn(&conns[next_conn++]);
}

static void begin_request(struct conn *c)
{
	c->st = C_SENDING;
	c->sent = 0;
	c->hlen = c->llen = 0;
	c->status = 0;
	c->body = 0;
	c->got_first = 0;
	c->t_send = now_ns();
	c->t_first = c->t_last = 0;
}

/* One response is whole. */
static void response_done(struct conn *c)
{
	c->t_last = c->t_rx;
	if (c->status != 200) {
		finish(c, 0, "status");
		return;
	}
	if (expect >= 0 && (int64_t)c->body != expect) {
		finish(c, 0, "length");
		return;
	}
	c->reqs++;
	if (mode == M_SEQ) {
		ttlb[nsamples++] = (double)(c->t_last - c->t_send) / 1e6;
	} else {
		ttfb[nsamples] = (double)(c->t_first - c->t_send) / 1e6;
		ttlb[nsamples] = (double)(c->t_last - c->t_send) / 1e6;
		first_abs[nsamples] = c->t_first;
		last_abs[nsamples] = c->t_last;
		nsamples++;
	}
	if (mode == M_SEQ && c->reqs < reqs_per_conn) {
		begin_request(c);
		struct epoll_event ev = { .events = EPOLLOUT | EPOLLIN, .data.ptr = c };
		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
		return;
	}
	finish(c, 1, NULL);
}

static int parse_head(struct conn *c)
{
	c->head[c->hlen] = '\0';
	if (strncmp(c->head, "HTTP/1.", 7) != 0 || c->hlen < 12)
		return -1;
	c->status = atoi(c->head + 9);
	int chunked = 0, have_len = 0;
	uint64_t len = 0;
	char *p = strstr(c->head, "\r\n");
	while (p && p[2] != '\r') {
		char *h = p + 2, *eol = strstr(h, "\r\n");
		if (!eol)
			break;
		if (strncasecmp(h, "content-length:", 15) == 0) {
			len = strtoull(h + 15, NULL, 10);
			have_len = 1;
		} else if (strncasecmp(h, "transfer-encoding:", 18) == 0) {
			chunked = strcasestr(h, "chunked") != NULL && strcasestr(h, "chunked") < eol;
		}
		p = eol;
	}
	int no_body = c->status == 204 || c->status == 304 || (c->status >= 100 && c->status < 200);
	if (no_body) {
		c->st = C_DONE;
	} else if (chunked) {
		c->st = C_CHUNK_SIZE;
	} else if (have_len) {
		c->st = C_BODY_LEN;
		c->remaining = len;
	} else {
		c->st = C_BODY_CLOSE;
	}
	return 0;
}

/* Feed received bytes; returns 1 when the response is whole, -1 on error. */
static int feed(struct conn *c, const char *p, size_t n)
{
	while (n > 0 || c->st == C_DONE) {
		switch (c->st) {
		case C_HEAD: {
			size_t room = sizeof c->head - 1 - c->hlen;
			size_t take = n < room ? n : room;
			/* look for the end of the head across the boundary */
			size_t old = c->hlen;
			memcpy(c->head + c->hlen, p, take);
			c->hlen += take;
			c->head[c->hlen] = '\0';
			size_t from = old > 3 ? old - 3 : 0;
			char *end = memmem(c->head + from, c->hlen - from, "\r\n\r\n", 4);
			if (!end) {
				if (c->hlen >= sizeof c->head - 1)
					return -1;
				return 0;
			}
			size_t headlen = (size_t)(end - c->head) + 4;
			size_t used = headlen - old;
			c->hlen = headlen;
			if (parse_head(c) < 0)
				return -1;
			p += used;
			n -= used;
			if (c->status >= 100 && c->status < 200) { /* interim: read the next head */
				c->st = C_HEAD;
				c->hlen = 0;
			}
			break;
		}
		case C_BODY_LEN: {
			size_t take = n < c->remaining ? n : (size_t)c->remaining;
			c->remaining -= take;
			c->body += take;
			p += take;
			n -= take;
			if (c->remaining == 0)
				c->st = C_DONE;
			break;
		}
		case C_BODY_CLOSE:
			c->body += n;
			return 0;
		case C_CHUNK_SIZE:
		case C_TRAILER: {
			const char *nl = memchr(p, '\n', n);
			size_t take = nl ? (size_t)(nl - p) + 1 : n;
			if (c->llen + take >= sizeof c->line)
				return -1;
			memcpy(c->line + c->llen, p, take);
			c->llen += take;
			p += take;
			n -= take;
			if (!nl)
				return 0;
			c->line[c->llen] = '\0';
			if (c->st == C_CHUNK_SIZE) {
				char *e;
				unsigned long long sz = strtoull(c->line, &e, 16);
				if (e == c->line)
					return -1;
				c->llen = 0;
				if (sz == 0) {
					c->st = C_TRAILER;
				} else {
					c->remaining = sz;
					c->st = C_CHUNK_DATA;
				}
			} else {
				int empty = c->llen <= 2;
				c->llen = 0;
				if (empty)
					c->st = C_DONE;
			}
			break;
		}
		case C_CHUNK_DATA: {
			size_t take = n < c->remaining ? n : (size_t)c->remaining;
			c->remaining -= take;
			c->body += take;
			p += take;
			n -= take;
			if (c->remaining == 0) {
				c->st = C_CHUNK_CRLF;
				c->remaining = 2;
			}
			break;
		}
		case C_CHUNK_CRLF: {
			size_t take = n < c->remaining ? n : (size_t)c->remaining;
			c->remaining -= take;
			p += take;
			n -= take;
			if (c->remaining == 0)
				c->st = C_CHUNK_SIZE;
			break;
		}
		case C_DONE:
			if (n > 0 && mode != M_SEQ)
				return -1; /* bytes after the response */
			return 1;
		default:
			return -1;
		}
	}
	return 0;
}

static void on_readable(struct conn *c)
{
	for (;;) {
		ssize_t r;
		int discard = (c->st == C_BODY_LEN || c->st == C_CHUNK_DATA) && c->remaining > 0;
		struct iovec iov;
		union {
			char buf[CMSG_SPACE(sizeof(struct timespec))];
			struct cmsghdr align;
		} ctrl;
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl.buf,
		                      .msg_controllen = sizeof ctrl.buf };
		int flags = MSG_DONTWAIT;
		if (discard) {
			iov.iov_base = NULL;
			iov.iov_len = c->remaining > (1u << 30) ? (1u << 30) : (size_t)c->remaining;
			flags |= MSG_TRUNC;
		} else {
			iov.iov_base = scratch;
			/* the first read of a response takes one byte, so that its receive
			 * timestamp is the first segment's; between chunks, FRAMING_READ
			 * and the rest of the chunk is discarded (reading 256 KiB there
			 * copied most of a chunked body, and a client that copies costs
			 * the sender a fifth more CPU on loopback) */
			int framing = c->st == C_CHUNK_SIZE || c->st == C_CHUNK_CRLF ||
			              c->st == C_TRAILER;
			iov.iov_len = !c->got_first ? 1 : framing ? FRAMING_READ :
			              c->st == C_HEAD ? HEAD_READ : sizeof scratch;
		}
		r = recvmsg(c->fd, &msg, flags);
		if (r > 0) {
			c->t_rx = 0;
			for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
				if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
					struct timespec ts;
					memcpy(&ts, CMSG_DATA(cm), sizeof ts);
					c->t_rx = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - rt_minus_mono;
					kernel_stamps++;
				}
			}
			if (c->t_rx == 0)
				c->t_rx = now_ns();
		}
		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			finish(c, 0, "recv");
			return;
		}
		if (r == 0) {
			if (c->st == C_BODY_CLOSE) {
				c->st = C_DONE;
				response_done(c);
			} else {
				finish(c, 0, c->st == C_HEAD && !c->got_first ? "eof before head" : "eof in body");
			}
			return;
		}
		if (!c->got_first) {
			c->got_first = 1;
			c->t_first = c->t_rx;
		}
		int res;
		if (discard) {
			c->remaining -= (uint64_t)r;
			c->body += (uint64_t)r;
			if (c->remaining > 0)
				continue;
			if (c->st == C_BODY_LEN) {
				c->st = C_DONE;
			} else {
				c->st = C_CHUNK_CRLF;
				c->remaining = 2;
			}
			res = feed(c, scratch, 0);
		} else {
			res = feed(c, scratch, (size_t)r);
		}
		if (res < 0) {
			finish(c, 0, "bad response");
			return;
		}
		if (res > 0) {
			response_done(c);
			if (c->st != C_SENDING)
				return;
			return; /* seq: the next request is sent when writable */
		}
	}
}

static void on_writable(struct conn *c)
{
	if (c->st == C_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof err;
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err) {
			finish(c, 0, "connect");
			return;
		}
		begin_request(c);
	}
	if (c->st != C_SENDING)
		return;
	ssize_t w = send(c->fd, request + c->sent, request_len - c->sent, MSG_NOSIGNAL);
	if (w < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		finish(c, 0, "send");
		return;
	}
	c->sent += (size_t)w;
	if (c->sent == request_len) {
		c->st = C_HEAD;
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
	}
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int cmp_i(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* nearest-rank percentile of a sorted array */
static size_t rank(int n, double pct)
{
	if (n <= 0)
		return 0;
	size_t k = (size_t)(pct / 100.0 * n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > (size_t)n)
		k = (size_t)n;
	return k - 1;
}

static void usage(void)
{
	fprintf(stderr, "usage: herd -c ADDR:PORT -u TARGET [-H HOST] [-n N] [-w WINDOW] "
	                "[-m herd|idle|seq] [-r REQS] [-e BYTES] [-T SECONDS]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *connect_to = NULL, *target = NULL, *host = NULL;
	double timeout_s = 60;
	int c;
	while ((c = getopt(argc, argv, "c:u:H:n:w:m:r:e:T:")) != -1) {
		switch (c) {
		case 'c': connect_to = optarg; break;
		case 'u': target = optarg; break;
		case 'H': host = optarg; break;
		case 'n': nconns = atoi(optarg); break;
		case 'w': window = atoi(optarg); break;
		case 'r': reqs_per_conn = atoi(optarg); break;
		case 'e': expect = atoll(optarg); break;
		case 'T': timeout_s = atof(optarg); break;
		case 'm':
			if (strcmp(optarg, "herd") == 0) mode = M_HERD;
			else if (strcmp(optarg, "idle") == 0) mode = M_IDLE;
			else if (strcmp(optarg, "seq") == 0) mode = M_SEQ;
			else usage();
			break;
		default: usage();
		}
	}
	if (!connect_to || !target || nconns <= 0)
		usage();
	if (window <= 0 || window > nconns)
		window = nconns;

	char addr[64];
	const char *colon = strrchr(connect_to, ':');
	if (!colon || (size_t)(colon - connect_to) >= sizeof addr)
		usage();
	memcpy(addr, connect_to, (size_t)(colon - connect_to));
	addr[colon - connect_to] = '\0';
	dst.sin_family = AF_INET;
	dst.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, addr, &dst.sin_addr) != 1)
		usage();

	char hostbuf[256];
	if (!host) {
		if (strncmp(target, "http://", 7) == 0) {
			const char *h = target + 7, *slash = strchr(h, '/');
			size_t len = slash ? (size_t)(slash - h) : strlen(h);
			if (len >= sizeof hostbuf)
				usage();
			memcpy(hostbuf, h, len);
			hostbuf[len] = '\0';
			host = hostbuf;
		} else {
			host = connect_to;
		}
	}
	int len = snprintf(request, sizeof request,
	                   "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: corral-bench-herd\r\n\r\n",
	                   target, host);
	if (len < 0 || (size_t)len >= sizeof request)
		usage();
	request_len = (size_t)len;

	signal(SIGPIPE, SIG_IGN);
	conns = calloc((size_t)nconns, sizeof *conns);
	ttfb = calloc((size_t)nconns, sizeof *ttfb);
	ttlb = calloc((size_t)nconns * (mode == M_SEQ ? (size_t)reqs_per_conn : 1), sizeof *ttlb);
	first_abs = calloc((size_t)nconns, sizeof *first_abs);
	last_abs = calloc((size_t)nconns, sizeof *last_abs);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!conns || !ttfb || !ttlb || !first_abs || !last_abs || ep < 0) {
		perror("herd");
		return 1;
	}
	for (int i = 0; i < nconns; i++)
		conns[i].fd = -1;

	struct timespec rt, mono;
	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	rt_minus_mono = ((int64_t)rt.tv_sec - mono.tv_sec) * 1000000000 + (rt.tv_nsec - mono.tv_nsec);

	int64_t t_start = now_ns(), deadline = t_start + (int64_t)(timeout_s * 1e9);
	fill_window();
	int64_t t_all_started = now_ns();
	struct epoll_event evs[512];
	while (done_ok + done_failed < nconns) {
		int64_t now = now_ns();
		if (now >= deadline)
			break;
		int n = epoll_wait(ep, evs, 512, 10);
		for (int i = 0; i < n; i++) {
			struct conn *cn = evs[i].data.ptr;
			if (cn->st == C_DONE || cn->st == C_FAILED)
				continue;
			if (evs[i].events & (EPOLLOUT))
				on_writable(cn);
			if (cn->st >= C_HEAD && cn->st <= C_TRAILER &&
			    (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				on_readable(cn);
			else if (cn->st == C_CONNECTING && (evs[i].events & (EPOLLERR | EPOLLHUP)))
				finish(cn, 0, "connect");
		}
		fill_window();
	}
	int64_t t_end = now_ns();
	int unfinished = nconns - done_ok - done_failed;
	for (int i = 0; i < nconns && unfinished > 0; i++) {
		struct conn *cn = &conns[i];
		if (cn->st != C_DONE && cn->st != C_FAILED) {
			note_fail("timeout");
			if (cn->fd >= 0) {
				close(cn->fd);
				cn->fd = -1;
			}
		}
	}

	printf("mode %s\n", mode == M_HERD ? "herd" : mode == M_IDLE ? "idle" : "seq");
	printf("clients %d\n", nconns);
	printf("ok %d\n", done_ok);
	printf("failed %d\n", done_failed + unfinished);
	for (int i = 0; i < 16 && fail_reason[i]; i++)
		printf("fail_%s %d\n", fail_reason[i], fail_count[i]);
	printf("elapsed_ms %.3f\n", (double)(t_end - t_start) / 1e6);
	printf("kernel_timestamps %lld\n", kernel_stamps);
	printf("start_abs_ns %lld\n", (long long)t_start);
	printf("started_all_ms %.3f\n", (double)(t_all_started - t_start) / 1e6);
	if (mode == M_SEQ) {
		long long total = 0;
		for (int i = 0; i < nconns; i++)
			total += conns[i].reqs;
		printf("requests %lld\n", total);
		printf("req_per_s %.1f\n", total / ((double)(t_end - t_start) / 1e9));
		if (nsamples > 0) {
			double sum = 0;
			int over_10ms = 0;
			for (int i = 0; i < nsamples; i++) {
				sum += ttlb[i];
				over_10ms += ttlb[i] > 10.0;
			}
			printf("lat_over_10ms %d\n", over_10ms);
			qsort(ttlb, (size_t)nsamples, sizeof *ttlb, cmp_d);
			printf("lat_mean_ms %.3f\nlat_p50_ms %.3f\nlat_p90_ms %.3f\nlat_p99_ms %.3f\nlat_max_ms %.3f\n",
			       sum / nsamples, ttlb[rank(nsamples, 50)], ttlb[rank(nsamples, 90)],
			       ttlb[rank(nsamples, 99)], ttlb[nsamples - 1]);
		}
	} else if (nsamples > 0) {
		qsort(ttfb, (size_t)nsamples, sizeof *ttfb, cmp_d);
		qsort(ttlb, (size_t)nsamples, sizeof *ttlb, cmp_d);
		qsort(first_abs, (size_t)nsamples, sizeof *first_abs, cmp_i);
		qsort(last_abs, (size_t)nsamples, sizeof *last_abs, cmp_i);
		printf("ttfb_p50_ms %.3f\nttfb_p99_ms %.3f\nttfb_max_ms %.3f\n",
		       ttfb[rank(nsamples, 50)], ttfb[rank(nsamples, 99)], ttfb[nsamples - 1]);
		printf("ttlb_p50_ms %.3f\nttlb_p99_ms %.3f\nttlb_max_ms %.3f\n",
		       ttlb[rank(nsamples, 50)], ttlb[rank(nsamples, 99)], ttlb[nsamples - 1]);
		printf("first_abs_p50_ns %lld\nfirst_abs_p99_ns %lld\nfirst_abs_max_ns %lld\n",
		       (long long)first_abs[rank(nsamples, 50)], (long long)first_abs[rank(nsamples, 99)],
		       (long long)first_abs[nsamples - 1]);
		printf("last_abs_p50_ns %lld\nlast_abs_p99_ns %lld\nlast_abs_max_ns %lld\n",
		       (long long)last_abs[rank(nsamples, 50)], (long long)last_abs[rank(nsamples, 99)],
		       (long long)last_abs[nsamples - 1]);
	}
	fflush(stdout);

	if (mode == M_IDLE) {
		printf("ready %d\n", done_ok);
		fflush(stdout);
		/* hold the connections until standard input closes */
		struct pollfd pfd = { .fd = 0, .events = POLLIN };
		int64_t hold_until = now_ns() + (int64_t)(timeout_s * 1e9);
		char buf[256];
		for (;;) {
			int64_t left = (hold_until - now_ns()) / 1000000;
			if (left <= 0)
				break;
			int rc = poll(&pfd, 1, left > 1000 ? 1000 : (int)left);
			if (rc > 0 && read(0, buf, sizeof buf) <= 0)
				break;
		}
		int open = 0;
		for (int i = 0; i < nconns; i++) {
			struct conn *cn = &conns[i];
			if (cn->st != C_DONE || cn->fd < 0)
				continue;
			ssize_t r = recv(cn->fd, buf, 1, MSG_PEEK | MSG_DONTWAIT);
			if (r < 0 && errno == EAGAIN)
				open++;
		}
		printf("still_open %d\n", open);
		fflush(stdout);
	}
	return 0;
}

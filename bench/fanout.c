/*
 * fanout.c — the herd's floor on this machine: how much CPU it takes to write
 * one body arriving in paced pieces to N loopback connections, with no proxy,
 * no HTTP and no origin, and how late the last byte then is.
 *
 *   fanout -m one|threads [-n 1000] [-p 64] [-s 4194304] [-t 500] [-l port]
 *
 * The body (-s bytes) "arrives" in -p equal pieces spread over -t ms, like the
 * bench origin's herd response. Mode `one`: one thread writes each piece to
 * every connection with MSG_DONTWAIT, finishing what did not fit at the end
 * of the round (what corrald's entry_pump does). Mode `threads`: a thread per
 * connection sleeps on a condvar, is woken per piece and writes what is new,
 * blocking (what corrald did before parked readers). The writer runs on the
 * CPU it was started on (bench.py: CPU 0); a forked receiver on CPU 1 reads
 * every connection with epoll and recvmsg(MSG_TRUNC), like the herd client,
 * and stamps each connection's last byte with the kernel's receive timestamp
 * (SO_TIMESTAMPNS, as herd.c does: it costs the sending CPU a little).
 *
 * Prints "key value" lines: cpu_ms (the writer's utime+stime from the first
 * piece to the last byte written), last_lag_p50_ms / last_lag_p99_ms /
 * last_lag_max_ms (each connection's last byte received, minus the moment
 * the last piece arrived, i.e. was due: the origin's pacing, which the
 * herd's "last byte - origin's last" counts from too), and writer_late_ms
 * (how long after that the writer got to it, being behind: when the CPU
 * the writing takes is more than the window, nobody can keep up).
 *
 * With -l PORT there is no forked receiver: fanout prints "listening", takes
 * N connections on 127.0.0.1:PORT from an HTTP client (bench.py runs the herd
 * client itself) and reads each one's request. Then it sleeps in poll()
 * until a forked "origin" on the other CPU sends it a byte 500 ms later, as
 * a proxy's fetch sleeps until the herd origin's head arrives (waking an
 * idle CPU of this VM after that long takes 0.3-1.5 ms), writes every
 * connection a head with the body's Content-Length in one loop, one send
 * each (as corrald's fetch writes a herd's heads at publish), and 500 ms
 * later the body as above. (The herd origin sends its first piece 7.8 ms
 * after its head, not 500 ms; but then the first pieces reach connections
 * whose heads the client has not read yet, and the kernel stamps the merged
 * data with the later time: with no gap this floor's first byte read +46
 * ms. So the floor's last byte leaves out the heads' few ms of CPU.) It
 * prints cpu_ms, writer_late_ms, heads_ns and last_piece_ns
 * (CLOCK_MONOTONIC: when the "origin" sent its byte, and when the last
 * piece arrived), for the client's own first- and last-byte times: the
 * floor seen by the very client that measures corral, whose reading costs
 * the sending CPU more than the forked receiver's (bench/README.md).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int nconn = 1000, pieces = 64, window_ms = 500;
static size_t body_size = 4u << 20;
static char *body;
static int *fds;

/* mode threads: the bytes available so far, under avail_lock */
static pthread_mutex_t avail_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t avail_grown = PTHREAD_COND_INITIALIZER;
static size_t avail;

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof set, &set); /* best effort: 1 CPU machines */
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static int64_t rt_minus_mono; /* CLOCK_REALTIME - CLOCK_MONOTONIC, for kernel timestamps */

/* The kernel's receive timestamp of what msg read, as herd.c takes it (so the
 * receiving side costs the sender what the herd client's does), or now. */
static int64_t arrival(struct msghdr *msg)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
			struct timespec ts;
			memcpy(&ts, CMSG_DATA(cm), sizeof ts);
			return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - rt_minus_mono;
		}
	}
	return now_ns();
}

/* The receiver: read every connection to EOF; write each one's last-byte
 * time (CLOCK_MONOTONIC ns) to `out` (shared memory). */
static void receive(const struct sockaddr_in *addr, int64_t *out)
{
	int ep = epoll_create1(0), left = nconn, one = 1;
	if (ep < 0)
		die("epoll_create1");
	struct timespec rt, mono;
	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	rt_minus_mono = ((int64_t)rt.tv_sec - mono.tv_sec) * 1000000000 + (rt.tv_nsec - mono.tv_nsec);
	for (int i = 0; i < nconn; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (const struct sockaddr *)addr, sizeof *addr) < 0)
			die("connect");
		fcntl(fd, F_SETFL, O_NONBLOCK);
		setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
		struct epoll_event ev = { .events = EPOLLIN };
		ev.data.u64 = ((uint64_t)(uint32_t)fd << 32) | (uint32_t)i;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
			die("epoll_ctl");
	}
	struct epoll_event evs[256];
	while (left > 0) {
		int k = epoll_wait(ep, evs, 256, -1);
		for (int j = 0; j < k; j++) {
			int fd = (int)(evs[j].data.u64 >> 32), i = (int)(uint32_t)evs[j].data.u64;
			for (;;) {
				union {
					char buf[CMSG_SPACE(sizeof(struct timespec))];
					struct cmsghdr align;
				} ctrl;
				struct iovec iov = { NULL, 1u << 30 };
				struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
				                      .msg_control = ctrl.buf,
				                      .msg_controllen = sizeof ctrl.buf };
				ssize_t r = recvmsg(fd, &msg, MSG_TRUNC | MSG_DONTWAIT);
				if (r > 0) {
					out[i] = arrival(&msg);
					continue;
				}
				if (r == 0) {
					close(fd);
					left--;
				} else if (errno != EAGAIN && errno != EINTR) {
					die("recv");
				}
				break;
			}
		}
	}
}

static void *conn_thread(void *arg)
{
	int fd = fds[(intptr_t)arg];
	size_t pos = 0;
	while (pos < body_size) {
		pthread_mutex_lock(&avail_lock);
		while (avail == pos)
			pthread_cond_wait(&avail_grown, &avail_lock);
		size_t to = avail;
		pthread_mutex_unlock(&avail_lock);
		while (pos < to) {
			ssize_t w = send(fd, body + pos, to - pos, MSG_NOSIGNAL);
			if (w <= 0)
				die("send");
			pos += (size_t)w;
		}
	}
	return NULL;
}

/* Write what is new to every connection; blocking ones wait (`all`). */
static void write_round(size_t *pos, size_t to, int all)
{
	for (int i = 0; i < nconn; i++) {
		while (pos[i] < to) {
			ssize_t w = send(fds[i], body + pos[i], to - pos[i],
			                 MSG_NOSIGNAL | (all ? 0 : MSG_DONTWAIT));
			if (w < 0 && (errno == EAGAIN || errno == EINTR))
				break;
			if (w <= 0)
				die("send");
			pos[i] += (size_t)w;
		}
	}
}

/* -l: read one request head from fd. */
static void read_request(int fd)
{
	char req[4096];
	size_t got = 0;
	while (got < 4 || memmem(req, got, "\r\n\r\n", 4) == NULL) {
		ssize_t r = recv(fd, req + got, sizeof req - got, 0);
		if (r <= 0)
			die("recv (the request)");
		got += (size_t)r;
	}
}

/* -l: the response's head to every connection, one send each, as corrald's
 * fetch writes a herd's heads at publish. */
static void answer_heads(void)
{
	char head[128];
	int n = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", body_size);
	for (int i = 0; i < nconn; i++)
		if (send(fds[i], head, (size_t)n, MSG_NOSIGNAL) != n)
			die("send (the head)");
}

/* -l: wait in poll() for a byte that a child on `cpu` sends 500 ms from
 * now; returns when it sent it. */
static int64_t origin_head(int cpu)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		die("socketpair");
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		pin(cpu);
		struct timespec gap = { 0, 500000000 };
		nanosleep(&gap, NULL);
		int64_t sent = now_ns();
		_exit(write(sv[1], &sent, sizeof sent) == sizeof sent ? 0 : 1);
	}
	struct pollfd pfd = { .fd = sv[0], .events = POLLIN };
	int64_t sent;
	if (poll(&pfd, 1, 5000) != 1 || read(sv[0], &sent, sizeof sent) != sizeof sent)
		die("the origin's head");
	waitpid(pid, NULL, 0);
	close(sv[0]);
	close(sv[1]);
	return sent;
}

static double cpu_ms(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

int main(int argc, char **argv)
{
	const char *mode = "one";
	int opt, http_port = 0;
	while ((opt = getopt(argc, argv, "m:n:p:s:t:l:")) != -1) {
		switch (opt) {
		case 'm': mode = optarg; break;
		case 'n': nconn = atoi(optarg); break;
		case 'p': pieces = atoi(optarg); break;
		case 's': body_size = strtoull(optarg, NULL, 10); break;
		case 't': window_ms = atoi(optarg); break;
		case 'l': http_port = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: fanout -m one|threads [-n conns] [-p pieces] "
			        "[-s bytes] [-t ms] [-l port]\n");
			return 2;
		}
	}
	int threads = strcmp(mode, "threads") == 0;
	if (!threads && strcmp(mode, "one") != 0) {
		fprintf(stderr, "fanout: unknown mode %s\n", mode);
		return 2;
	}
	int sender_cpu = sched_getcpu();

	int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	                            .sin_port = htons((uint16_t)http_port) };
	socklen_t alen = sizeof addr;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
	    listen(lfd, 4096) < 0 || getsockname(lfd, (struct sockaddr *)&addr, &alen) < 0)
		die("listen");

	int64_t *last = mmap(NULL, (size_t)nconn * sizeof *last, PROT_READ | PROT_WRITE,
	                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (last == MAP_FAILED)
		die("mmap");
	if (http_port) {
		printf("listening\n");
		fflush(stdout);
	}
	pid_t child = http_port ? 1 : fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		pin(sender_cpu == 0 ? 1 : 0);
		receive(&addr, last);
		_exit(0);
	}

	fds = calloc((size_t)nconn, sizeof *fds);
	body = malloc(body_size);
	size_t *pos = calloc((size_t)nconn, sizeof *pos);
	pthread_t *th = threads ? calloc((size_t)nconn, sizeof *th) : NULL;
	if (fds == NULL || body == NULL || pos == NULL || (threads && th == NULL))
		die("malloc");
	memset(body, 'x', body_size);
	for (int i = 0; i < nconn; i++) {
		fds[i] = accept(lfd, NULL, NULL);
		if (fds[i] < 0)
			die("accept");
		setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (http_port)
			read_request(fds[i]);
	}
	int64_t heads_ns = 0;
	if (http_port) { /* the origin's head, the heads, the gap before the body */
		heads_ns = origin_head(sender_cpu == 0 ? 1 : 0);
		answer_heads();
		struct timespec gap = { 0, 500000000 };
		nanosleep(&gap, NULL);
	}
	for (int i = 0; threads && i < nconn; i++)
		if (pthread_create(&th[i], NULL, conn_thread, (void *)(intptr_t)i) != 0)
			die("pthread_create");

	double c0 = cpu_ms();
	int64_t t0 = now_ns(), arrived = 0, taken = 0;
	for (int k = 0; k < pieces; k++) {
		int64_t due = t0 + (int64_t)(k + 1) * window_ms * 1000000 / pieces;
		arrived = due;
		struct timespec ts = { .tv_sec = due / 1000000000, .tv_nsec = due % 1000000000 };
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL); /* the pacing itself */
		size_t to = k == pieces - 1 ? body_size : body_size / (size_t)pieces * (size_t)(k + 1);
		taken = now_ns();
		if (threads) {
			pthread_mutex_lock(&avail_lock);
			avail = to;
			pthread_cond_broadcast(&avail_grown);
			pthread_mutex_unlock(&avail_lock);
		} else {
			write_round(pos, to, 0);
		}
	}
	if (threads) {
		for (int i = 0; i < nconn; i++)
			pthread_join(th[i], NULL);
	} else {
		write_round(pos, body_size, 1);
	}
	double c1 = cpu_ms();
	for (int i = 0; i < nconn; i++)
		close(fds[i]);
	if (http_port) {
		printf("mode %s\nconns %d\ncpu_ms %.1f\nwriter_late_ms %.2f\nheads_ns %lld\n"
		       "last_piece_ns %lld\n", mode, nconn, c1 - c0, (taken - arrived) / 1e6,
		       (long long)heads_ns, (long long)arrived);
		return 0;
	}
	int status;
	if (waitpid(child, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "fanout: the receiver failed\n");
		return 1;
	}
	for (int i = 0; i < nconn; i++)
		last[i] -= arrived;
	qsort(last, (size_t)nconn, sizeof *last, cmp_i64);
	printf("mode %s\nconns %d\ncpu_ms %.1f\nwriter_late_ms %.2f\nlast_lag_p50_ms %.2f\n"
	       "last_lag_p99_ms %.2f\nlast_lag_max_ms %.2f\n", mode, nconn, c1 - c0,
	       (taken - arrived) / 1e6, last[nconn / 2] / 1e6, last[(nconn * 99) / 100] / 1e6,
	       last[nconn - 1] / 1e6);
	return 0;
}

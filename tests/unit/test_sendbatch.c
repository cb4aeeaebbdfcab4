/*
 * test_sendbatch.c — sendbatch.c on real loopback TCP connections, as the
 * pump uses it: sends queued on many connections go out whole and in order
 * when they fit, more of them than the ring holds are submitted in turns, a
 * full socket answers 0, a send that half fits answers its length (and
 * io_advance leaves the vector at the rest), a reset peer answers -1, and
 * with CORRAL_NO_IO_URING set a new thread is told to send by itself.
 *
 * Where this machine has no io_uring (kernel.io_uring_disabled, seccomp),
 * only that last part can run; the test says so on its output.
 */
#include "corral/io.h"
#include "corral/sendbatch.h"

#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEADLINE_MS 30000
#define N_CONNS 300 /* more than the ring's 256 entries */

static unsigned char
pattern(uint64_t i)
{
	return (unsigned char)(i * 7 + (i >> 9));
}

/* A connected pair on 127.0.0.1: *sender is the accepted side (as a
 * client's socket in corrald), *receiver the connecting one. rcvbuf > 0:
 * both sides' buffers that small (set before connecting). */
static int
tcp_pair(int *sender, int *receiver, int rcvbuf)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof a;
	int l = socket(AF_INET, SOCK_STREAM, 0);
	int c = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || c < 0)
		return -1;
	if (rcvbuf > 0) {
		setsockopt(l, SOL_SOCKET, SO_SNDBUF, &rcvbuf, sizeof rcvbuf);
		setsockopt(c, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
	}
	if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &alen) < 0 ||
	    connect(c, (struct sockaddr *)&a, sizeof a) < 0)
		return -1;
	int s = accept(l, NULL, NULL);
	close(l);
	if (s < 0)
		return -1;
	*sender = s;
	*receiver = c;
	return 0;
}

/* Read exactly len bytes from fd (a deadline, not a hang). */
static int
read_exactly(int fd, unsigned char *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, DEADLINE_MS) != 1)
			return -1;
		ssize_t r = recv(fd, buf + got, len - got, 0);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

/* What is in fd now, up to len bytes, without waiting. */
static size_t
read_now(int fd, unsigned char *buf, size_t len)
{
	size_t got = 0;
	ssize_t r;
	while (got < len && (r = recv(fd, buf + got, len - got, MSG_DONTWAIT)) > 0)
		got += (size_t)r;
	return got;
}

/* One message per connection in three iovecs, like a framed chunk; every
 * queued send goes out whole, and each receiver reads its own bytes. */
static void
test_many(void)
{
	static int snd[N_CONNS], rcv[N_CONNS];
	static unsigned char data[N_CONNS][3000], got[3000];
	static struct iovec iov[N_CONNS][3];
	static struct sendbatch_item it[N_CONNS];

	for (int i = 0; i < N_CONNS; i++) {
		if (!CHECK(tcp_pair(&snd[i], &rcv[i], 0) == 0))
			return;
		for (int k = 0; k < 3000; k++)
			data[i][k] = pattern((uint64_t)k + (uint64_t)i * 101);
		iov[i][0] = (struct iovec){ data[i], 10 };
		iov[i][1] = (struct iovec){ data[i] + 10, 2000 + (size_t)i };
		iov[i][2] = (struct iovec){ data[i] + 2010 + i, 2 };
		CHECK_INT(sendbatch_queue(&it[i], snd[i], iov[i], 3), 0);
	}
	sendbatch_submit();
	for (int i = 0; i < N_CONNS; i++) {
		size_t len = 2012 + (size_t)i;
		check(it[i].result == (ssize_t)len, __FILE__, __LINE__, "conn %d: sent %zd of %zu", i,
		      it[i].result, len);
		CHECK_INT(read_exactly(rcv[i], got, len), 0);
		check(memcmp(got, data[i], len) == 0, __FILE__, __LINE__, "conn %d: wrong bytes", i);
		CHECK_INT(read_now(rcv[i], got, sizeof got), 0); /* and nothing more */
		close(snd[i]);
		close(rcv[i]);
	}
	sendbatch_submit(); /* nothing queued: returns at once */
}

/* A full socket answers 0; one with some room takes part of a send, and
 * io_advance leaves the vector at the first byte not sent. */
static void
test_full_and_partial(void)
{
	int s, r;
	size_t big = 4u << 20, sent_before = 0;
	unsigned char *buf = malloc(big), *in = malloc(big);
	if (!CHECK(buf != NULL && in != NULL) || !CHECK(tcp_pair(&s, &r, 4096) == 0))
		return;
	for (size_t k = 0; k < big; k++)
		buf[k] = pattern(k);
	for (;;) { /* fill it */
		ssize_t w = send(s, buf + sent_before, 65536, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0) {
			CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
			break;
		}
		sent_before += (size_t)w;
	}
	struct sendbatch_item it;
	struct iovec v[2] = { { buf + sent_before, 1000 }, { buf + sent_before + 1000, 64536 } };
	CHECK_INT(sendbatch_queue(&it, s, v, 2), 0);
	sendbatch_submit();
	CHECK_INT(it.result, 0);

	/* take what was sent, then send far more than fits */
	CHECK_INT(read_exactly(r, in, sent_before), 0);
	CHECK(memcmp(in, buf, sent_before) == 0);
	struct iovec w[2] = { { buf + sent_before, 1000 }, { buf + sent_before + 1000, big - sent_before - 1000 } };
	struct iovec *wp = w;
	int wn = 2;
	CHECK_INT(sendbatch_queue(&it, s, wp, wn), 0);
	sendbatch_submit();
	check(it.result > 0 && (size_t)it.result < big - sent_before, __FILE__, __LINE__,
	      "a send of %zu bytes into a 4 KiB socket sent %zd", big - sent_before, it.result);
	if (it.result > 0) {
		io_advance(&wp, &wn, (size_t)it.result);
		CHECK(wn >= 1);
		CHECK(wp->iov_base == buf + sent_before + (size_t)it.result);
		CHECK_INT(read_exactly(r, in, (size_t)it.result), 0);
		CHECK(memcmp(in, buf + sent_before, (size_t)it.result) == 0);
	}
	close(s);
	close(r);
	free(buf);
	free(in);
}

/* A peer that reset the connection: -1, and no SIGPIPE. */
static void
test_reset_peer(void)
{
	int s, r;
	char x[100] = { 0 };
	if (!CHECK(tcp_pair(&s, &r, 0) == 0))
		return;
	struct linger lg = { 1, 0 };
	setsockopt(r, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	close(r); /* an RST */
	struct pollfd p = { .fd = s, .events = POLLIN };
	CHECK_INT(poll(&p, 1, DEADLINE_MS), 1); /* the reset has arrived */
	struct sendbatch_item it;
	struct iovec v = { x, sizeof x };
	CHECK_INT(sendbatch_queue(&it, s, &v, 1), 0);
	sendbatch_submit();
	CHECK_INT(it.result, -1);
	close(s);
}

static void *
queue_on_new_thread(void *arg)
{
	int *rc = arg, s, r;
	char x[10] = { 0 };
	struct sendbatch_item it;
	struct iovec v = { x, sizeof x };
	if (tcp_pair(&s, &r, 0) < 0)
		return NULL;
	*rc = sendbatch_queue(&it, s, &v, 1);
	sendbatch_submit();
	close(s);
	close(r);
	return NULL;
}

/* Is there a ring for a new thread? (1: queued, 0: told to send itself) */
static int
new_thread_queues(void)
{
	pthread_t t;
	int rc = 99;
	if (!CHECK(pthread_create(&t, NULL, queue_on_new_thread, &rc) == 0))
		return -1;
	pthread_join(t, NULL);
	CHECK(rc == 0 || rc == -1);
	return rc == 0;
}

int
main(void)
{
	unsetenv("CORRAL_NO_IO_URING");
	int have = new_thread_queues();
	if (have == 1) {
		test_many();
		test_full_and_partial();
		test_reset_peer();
	} else {
		printf("sendbatch: no io_uring on this machine: only the fallback is tested\n");
	}
	setenv("CORRAL_NO_IO_URING", "1", 1);
	CHECK_INT(new_thread_queues(), 0);
	unsetenv("CORRAL_NO_IO_URING");
	return check_summary("sendbatch");
}

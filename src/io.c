/*
 * io.c — blocking socket I/O with deadlines (see io.h).
 */
#include "corral/io.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

static void (*before_block)(void);

void io_set_before_block(void (*fn)(void))
{
	before_block = fn;
}

int io_wait(int fd, short events, int64_t timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int first = 1;
	for (;;) {
		int n = poll(&p, 1, first ? 0 : timeout_ms > 0x7fffffff ? 0x7fffffff : (int)timeout_ms);
		if (n == 0 && first && timeout_ms != 0) {
			first = 0;
			if (before_block)
				before_block();
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		return 1;
	}
}

ssize_t io_send_now(int fd, struct iovec **iovp, int *iovcnt)
{
	struct iovec *iov = *iovp;
	int n = *iovcnt;
	while (n > 0 && iov->iov_len == 0) {
		iov++;
		n--;
	}
	ssize_t sent = 0;
	if (n > 0) {
		struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)n };
		sent = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (sent < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				return -1;
			sent = 0;
		}
	}
	size_t done = (size_t)sent;
	while (n > 0 && done >= iov->iov_len) {
		done -= iov->iov_len;
		iov++;
		n--;
	}
	if (n > 0) {
		iov->iov_base = (char *)iov->iov_base + done;
		iov->iov_len -= done;
	}
	*iovp = iov;
	*iovcnt = n;
	return sent;
}

int io_writev_all(int fd, struct iovec *iov, int iovcnt, int64_t timeout_ms)
{
	while (iovcnt > 0) {
		ssize_t n = io_send_now(fd, &iov, &iovcnt);
		if (n < 0)
			return -1;
		if (n == 0 && iovcnt > 0 && io_wait(fd, POLLOUT, timeout_ms) != 1)
			return -1;
	}
	return 0;
}

int io_write_all(int fd, const void *buf, size_t len, int64_t timeout_ms)
{
	struct iovec v = { .iov_base = (void *)buf, .iov_len = len };
	return io_writev_all(fd, &v, 1, timeout_ms);
}

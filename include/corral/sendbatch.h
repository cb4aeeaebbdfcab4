/*
 * sendbatch.h — non-blocking sends queued on this thread and submitted
 * together (io_uring): the fetch's thread writes a herd's next bytes to a
 * thousand parked readers with one system call instead of a thousand
 * (DESIGN.md "Parked readers").
 *
 * Each thread has its own ring, made on first use. Where io_uring is not to
 * be had (kernel.io_uring_disabled, a seccomp filter, a kernel without
 * IORING_OP_SENDMSG, or CORRAL_NO_IO_URING set in the environment)
 * sendbatch_queue says so, and the caller sends at once (io_send_now).
 */
#ifndef CORRAL_SENDBATCH_H
#define CORRAL_SENDBATCH_H

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

/* One queued send. The caller owns it, and the iovecs it points at, until
 * sendbatch_submit returns. */
struct sendbatch_item {
	struct msghdr msg;
	/* after sendbatch_submit: the bytes sent, 0 when the socket was full,
	 * -1 when the peer is gone or the send failed (as io_send_now) */
	ssize_t result;
};

/* Queue a send of iov[0..iovcnt) on fd that will not wait (MSG_DONTWAIT,
 * MSG_NOSIGNAL). Returns 0 when queued, -1 when this thread has no ring:
 * send it now. A full ring is submitted first (those results are set). */
int sendbatch_queue(struct sendbatch_item *it, int fd, struct iovec *iov, int iovcnt);

/* Submit everything queued on this thread; every item has its result on
 * return. Nothing queued: returns at once. */
void sendbatch_submit(void);

#endif

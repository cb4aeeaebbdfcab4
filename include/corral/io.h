/*
 * io.h — blocking socket I/O with deadlines, for worker threads.
 *
 * Client sockets are non-blocking (evconnlistener makes them so); every
 * wait goes through poll() with a timeout, so no worker can be held
 * forever by a peer.
 */
#ifndef CORRAL_IO_H
#define CORRAL_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Wait until fd is ready for `events` (POLLIN/POLLOUT) or timeout_ms passes.
 * Returns 1 ready, 0 timed out, -1 error. When it is not ready at once, the
 * hook set with io_set_before_block() runs before the wait. */
int io_wait(int fd, short events, int64_t timeout_ms);

/* Run fn (from any thread) before io_wait blocks: the worker is about to
 * wait on a peer. Set once at start, before the workers. */
void io_set_before_block(void (*fn)(void));

/* One sendmsg of iov[0..*iovcnt) that does not wait: returns the bytes
 * written (0 when the socket is full) or -1 (peer gone, error). What was
 * written is dropped from the front of the vector: *iovp and *iovcnt then
 * describe what is left (the iovecs are adjusted in place). */
ssize_t io_send_now(int fd, struct iovec **iovp, int *iovcnt);

/* Write all of iov, waiting at most timeout_ms for each bit of progress.
 * Returns 0, or -1 (peer gone, error or timeout). */
int io_writev_all(int fd, struct iovec *iov, int iovcnt, int64_t timeout_ms);
int io_write_all(int fd, const void *buf, size_t len, int64_t timeout_ms);

#endif

/*
 * sendbatch.c — non-blocking sends queued on this thread and submitted
 * together on a per-thread io_uring (see sendbatch.h).
 *
 * Why: a herd's fan-out is 1,000 sends per read from the origin, and in
 * bench/fanout.c one io_uring_submit_and_wait for a round of them cost 8 to
 * 14 % less CPU than 1,000 sendmsg calls (most of a send is the kernel's TCP
 * work, which stays). The sends carry MSG_DONTWAIT, so the kernel runs each
 * one inline during the submit and answers -EAGAIN for a full socket instead
 * of waiting for room: by the time io_uring_submit_and_wait returns, every
 * send has its completion, and no io_uring worker thread is ever started.
 *
 * The ring (SENDBATCH_RING entries) belongs to its thread: no lock. A
 * thread that never queues never makes one; a pool thread that retires
 * frees its ring (the key's destructor).
 */
#include "corral/sendbatch.h"

#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

/* A pump of 1,000 readers is four submits: still 250 sends per call, and
 * the ring is ~20 KiB per thread. */
#define SENDBATCH_RING 256

struct batch {
	struct io_uring ring;
	int ready;          /* 1: the ring works; 0: no ring on this thread */
	unsigned queued;    /* sends queued and not yet submitted */
};

static pthread_key_t batch_key;
static pthread_once_t batch_once = PTHREAD_ONCE_INIT;
static __thread struct batch *this_batch;
static __thread int tried; /* made this thread's ring, or failed to */

static void batch_free(void *arg)
{
	struct batch *b = arg;
	if (b->ready)
		io_uring_queue_exit(&b->ring);
	free(b);
}

static void make_key(void)
{
	if (pthread_key_create(&batch_key, batch_free) != 0)
		batch_key = (pthread_key_t)-1;
}

/* The ring of this thread, or NULL when io_uring is not to be had. */
static struct batch *batch_of_thread(void)
{
	if (tried)
		return this_batch;
	tried = 1;
	if (getenv("CORRAL_NO_IO_URING") != NULL)
		return NULL;
	pthread_once(&batch_once, make_key);
	if (batch_key == (pthread_key_t)-1)
		return NULL;
	struct batch *b = calloc(1, sizeof *b);
	if (b == NULL)
		return NULL;
	if (io_uring_queue_init(SENDBATCH_RING, &b->ring, 0) < 0) {
		free(b);
		return NULL;
	}
	struct io_uring_probe *probe = io_uring_get_probe_ring(&b->ring);
	int ok = probe != NULL && io_uring_opcode_supported(probe, IORING_OP_SENDMSG);
	if (probe != NULL)
		io_uring_free_probe(probe);
	if (!ok) {
		io_uring_queue_exit(&b->ring);
		free(b);
		return NULL;
	}
	b->ready = 1;
	pthread_setspecific(batch_key, b);
	this_batch = b;
	return b;
}

static void submit(struct batch *b)
{
	while (b->queued > 0) {
		/* EINTR (a signal while waiting) leaves the completions to come */
		int rc = io_uring_submit_and_wait(&b->ring, b->queued);
		if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
			abort(); /* a ring that took the sends but cannot report them */
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&b->ring, head, cqe) {
			struct sendbatch_item *it = io_uring_cqe_get_data(cqe);
			if (cqe->res >= 0)
				it->result = cqe->res;
			else if (cqe->res == -EAGAIN || cqe->res == -EWOULDBLOCK || cqe->res == -EINTR)
				it->result = 0;
			else
				it->result = -1;
			seen++;
		}
		io_uring_cq_advance(&b->ring, seen);
		b->queued -= seen;
	}
}

int sendbatch_queue(struct sendbatch_item *it, int fd, struct iovec *iov, int iovcnt)
{
	struct batch *b = batch_of_thread();
	if (b == NULL)
		return -1;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);
	if (sqe == NULL) {
		submit(b);
		sqe = io_uring_get_sqe(&b->ring);
		if (sqe == NULL)
			return -1;
	}
	it->msg = (struct msghdr){ .msg_iov = iov, .msg_iovlen = (size_t)iovcnt };
	it->result = -1;
	io_uring_prep_sendmsg(sqe, fd, &it->msg, MSG_DONTWAIT | MSG_NOSIGNAL);
	io_uring_sqe_set_data(sqe, it);
	b->queued++;
	return 0;
}

void sendbatch_submit(void)
{
	struct batch *b = this_batch;
	if (b != NULL)
		submit(b);
}

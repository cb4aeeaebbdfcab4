/*
 * deliver.h — writing a cache entry to a client: one code path for hits,
 * streaming hits, coalesced waiters and the request that caused the fetch.
 */
#ifndef CORRAL_DELIVER_H
#define CORRAL_DELIVER_H

#include "corral/entry.h"
#include "corral/exchange.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Send entry `e` to x's client through reader `r` (attached): the stored
 * head with Age, Cache-Status `cache_status` and Via, framing redone
 * (Content-Length when the origin sent one or, except for `own_fetch`, when
 * the body is already complete; else chunked, else close), then the body as
 * it grows. `own_fetch`: x caused the fetch, so its framing follows the
 * origin's exactly as a pass-through would, whatever the timing. An entry that FAILED ends the response visibly truncated (no last
 * chunk; the connection closes). Sets x's status, bytes and log fields.
 * Detaches r before returning. */
void deliver(struct exchange *x, struct entry *e, struct entry_reader *r,
             const char *cache_status, int own_fetch);

/* A head prepared for one request and entry, and how much of it is out. */
struct delivery {
	char tail[256 + EXCHANGE_HEAD_END_MAX]; /* Age ... end of head */
	size_t tail_len;
	size_t head_sent;       /* bytes of e->wire_head + tail written */
	int chunked, no_body, failed;
	int parked;             /* parked by the fetch (deliver_park_now) */
	enum entry_state st;    /* the entry's state when the head was made */
	/* deliver_herd_sent: what deliver_rest sets in x on x's own thread
	 * (x's log fields, close_after and bytes_out) */
	int herd;
	int close_after;
	const char *cache_status;
};

/* A reader parked on a streaming entry: the fetch's thread writes for it
 * (pump_write) with MSG_DONTWAIT, and what did not fit is left in `rest`
 * for the reader's own thread. The pump hands the bytes out into rest + 1
 * (p.v), where the chunked framing goes around them, and the fields below
 * share two cache lines (see entry_parked). */
struct parked_reader {
	struct entry_parked p;    /* first: pump_write's argument is &p */
	int fd;
	int chunked;
	/* written on the fetch's thread while parked, read by the owner after
	 * the release (entry.lock orders the two) */
	int failed;               /* the client went away */
	int ended;                /* the body's end is written (or in rest) */
	int nrest;
	struct iovec *restv;      /* what is left of rest: nrest iovecs from here */
	uint64_t bytes;           /* bytes the fetch's thread wrote, for x->bytes_out */
	char size_line[20];
	/* a chunk's size line, the ENTRY_PARK_IOV pieces (p.v), its CRLF and
	 * the body's last chunk */
	struct iovec rest[1 + ENTRY_PARK_IOV + 2];
};

/* deliver() in two halves, for a coalesced waiter whose head the fetch sends
 * at publish while the waiter still sleeps: deliver_head_now prepares x's
 * head for e (x is not the caller's: its session is lent, see serve.c) and
 * writes what the socket takes without waiting; deliver_rest, on x's own
 * worker, writes the rest of the head, then the body, and detaches r. */
void deliver_head_now(struct exchange *x, struct entry *e, const char *cache_status,
                      struct delivery *d);
/* A herd's heads, all sent before the waiters' own memory is touched but
 * for one exchange per kind (on the bench VM the first access to each
 * waiter's idle stack page costs ~12 µs: cache.h). What a head's tail
 * depends on in the request (version, keep-alive, HEAD, Via) is its kind,
 * deliver_head_kind(x), which the waiter notes in its herd node with its
 * socket. deliver_herd_send
 * writes the head of that kind to fd; the first of each kind is made with
 * its own exchange, *xp (read only then). It returns the kind's index, or
 * -1 when there are more than DELIVER_HERD_KINDS (then deliver_head_now it
 * later); *sent is what io_send_now returned. Once every head is out,
 * deliver_herd_sent fills d as deliver_head_now would have, and what
 * deliver_head_now writes in x waits in d for deliver_rest. hh lives on the
 * fetch's stack for one publish. */
uint32_t deliver_head_kind(const struct exchange *x);
#define DELIVER_HERD_KINDS 4
struct herd_heads {
	struct entry *e;
	const char *cache_status;
	int n;                       /* kinds in use */
	struct herd_kind {
		uint32_t kind;
		struct delivery d;   /* the head made for the first of the kind */
		int close_after;     /* what that left in its x->close_after */
	} kinds[DELIVER_HERD_KINDS];
};
void deliver_herd_begin(struct herd_heads *hh, struct entry *e, const char *cache_status);
int deliver_herd_send(struct herd_heads *hh, uint32_t kind, int fd, struct exchange *const *xp,
                      ssize_t *sent);
void deliver_herd_sent(struct herd_heads *hh, int index, ssize_t sent, struct delivery *d);
/* Then, still on the fetch's thread and before the body's first byte is
 * appended, park reader r (pr: room the waiter keeps until deliver_rest
 * returns) when its whole head went out: the pump writes the body for it
 * from the first byte, and the waiter, woken later, sleeps on until its
 * release instead of racing the body to park (a herd's waiters that woke
 * after the first pieces wrote them themselves, a thousand threads at
 * once: herds 200-450 ms late). */
void deliver_park_now(int fd, struct entry *e, struct entry_reader *r, struct delivery *d,
                      struct parked_reader *pr);
void deliver_rest(struct exchange *x, struct entry *e, struct entry_reader *r,
                  struct delivery *d, struct parked_reader *pr);

/* x's access log fields for a response from e: Cache-Status, the upstream
 * address, the media type and e's status (a 304 or a 206 sets its own
 * after); and the protocol its Via names (exchange.via_http10). */
void deliver_log_fields(struct exchange *x, const struct entry *e, const char *cache_status);

#endif

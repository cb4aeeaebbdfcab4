/*
 * entry.h — one response as the cache holds it: an immutable head and a body
 * that grows as a list of immutable chunks while its fetch runs.
 *
 * Lifecycle (one function moves it: entry_finish):
 *   ENTRY_STREAMING  the fetch is appending body chunks
 *   ENTRY_COMPLETE   the whole body is here (final)
 *   ENTRY_FAILED     the fetch broke off; readers end their responses visibly
 *                    truncated (final)
 * Readers and the fetch meet under entry.lock; entry.grown is broadcast on
 * every append and on the state change, so readers stream as bytes arrive.
 * Readers that park (entry_park) are written for by the fetch's thread
 * instead, and released by entry_finish.
 *
 * Transit: an entry that is not (or no longer) stored frees chunks every
 * reader has passed, and the fetch waits in entry_append while it is more
 * than TRANSIT_MAX bytes ahead of its slowest reader — memory stays bounded
 * whatever the length.
 *
 * Lifetime: reference counted (entry_ref / entry_unref, atomic). The cache
 * table holds one reference while the entry is stored, the fetch one, each
 * reader one; memory goes with the last.
 */
#ifndef CORRAL_ENTRY_H
#define CORRAL_ENTRY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/uio.h>
#include "corral/http.h"

#define ENTRY_MAGIC 0xe417e417u
#define TRANSIT_MAX (1024 * 1024)

enum entry_state {
	ENTRY_STREAMING, /* body still arriving */
	ENTRY_COMPLETE,  /* body whole */
	ENTRY_FAILED,    /* fetch broke off after the head */
};

struct chunk {
	struct chunk *next;  /* set once, under entry.lock */
	size_t len;
	char data[];
};

struct entry_reader {
	struct chunk *cur;   /* chunk holding the next byte, NULL = not started */
	size_t off;          /* offset of the next byte in cur */
	struct chunk *hold;  /* first chunk handed out by the last entry_read_iov:
	                        kept (not freed in transit) until the next call */
	uint64_t pos;        /* body bytes read */
	LIST_ENTRY(entry_reader) link; /* e->readers, under e->lock */
	int attached;
};

/* A reader caught up with a streaming entry, parked until the fetch's
 * thread has written the next bytes for it (entry_park, entry_pump).
 *
 * Layout: a herd's pump walks a thousand of these (in herd slots, serve.c,
 * or on their owners' stacks), between sendmsg calls that evict them from
 * the cache, so every cache line it touches per reader is a miss (they were
 * 4-5 % of a herd's CPU). What the pump reads and writes comes first, in one line; the
 * owner's own fields (its writer's state) follow, and `v` points into
 * them, so the writer frames the bytes where the pump put them. */
#define ENTRY_PARK_IOV 64
struct entry_parked {
	/* e->parked, under e->lock; link.le_next of a parked reader is also
	 * read by the pump's thread without it (only that thread takes readers
	 * off, and LIST_INSERT_HEAD changes the old head's le_prev only) */
	LIST_ENTRY(entry_parked) link;
	struct entry_reader *r;
	/* The owner's writer, called on the fetch's thread with no lock held:
	 * by entry_pump with the new bytes, and by entry_finish (COMPLETE) with
	 * the last ones, maybe none, and `end` set (the writer may end the
	 * response). Returns 0 when all of it went out, or nonzero to hand the
	 * reader back: its owner then finishes that write itself (the chunks
	 * of v stay until its next read). */
	int (*write)(struct entry_parked *p, struct iovec *v, int n, int end);
	struct iovec *v;               /* the owner's room for ENTRY_PARK_IOV */
	/* entry_pump's own, while it writes */
	struct entry_parked *handed_back_next;
	int nv;
	int more;                      /* chunks beyond v: catch up on its own */
	/* under e->lock */
	int released;
	pthread_cond_t wake;
} __attribute__((aligned(64)));

struct keyhead;

struct entry {
	uint32_t magic;
	_Atomic int refs;

	/* immutable once published */
	int status;
	int http10;                    /* the origin answered in HTTP/1.0 (Via) */
	char reason[128];
	struct http_headers headers;   /* end-to-end response headers, no framing */
	char *vary;                    /* the response's Vary lines joined, or NULL */
	char *wire_head;               /* status line + headers but Age, as sent */
	size_t wire_head_len;
	struct http_headers vary_req;  /* request lines of the headers named in vary */
	int64_t content_length;        /* from the origin, -1 unknown */
	int64_t request_time, response_time; /* seconds, for Age */
	int64_t date_value, age_value;
	int64_t freshness_lifetime;    /* seconds */
	int hfm;                       /* a hit-for-miss marker: no response */
	int hfm_error;                 /* ... put in by an origin's 500, 502, 503
	                                  or 504: it leaves the stored variants in
	                                  place, for stale-if-error (serve.c) */
	int revalidated;               /* made of a stored response a 304 confirmed */
	char upstream[64];

	pthread_mutex_t lock;
	pthread_cond_t grown;
	/* protected by lock */
	enum entry_state state;
	struct chunk *first, *last;
	uint64_t bytes;                /* body bytes appended */
	int transit;                   /* not stored: free what readers passed */
	uint64_t dropped;              /* body bytes freed in transit */
	uint64_t held;                 /* body bytes in chunks now */
	int nreaders;
	LIST_HEAD(, entry_reader) readers;
	LIST_HEAD(, entry_parked) parked; /* readers the next entry_pump writes for */

	/* protected by the cache table lock */
	struct keyhead *head;          /* set while stored */
	struct entry *lru_prev, *lru_next;
	struct entry *variant_next;    /* head->lock + table lock (see cache.h) */
	int stored;                    /* in the table (LRU and variants) */
	struct entry *victim_next;     /* unlinked, waiting to be released */
	uint64_t charged;              /* bytes counted against [cache] memory */
};

struct entry *entry_new(void);
void entry_ref(struct entry *e);
void entry_unref(struct entry **ep);

/* Fetch side. entry_append copies data into a new chunk and wakes readers;
 * in transit it first waits for readers to drain. Returns 0, -1 when a
 * transit entry has no reader left (stop fetching), or -2 when out of
 * memory. */
int entry_append(struct entry *e, const char *data, size_t len);
/* The one state change: STREAMING -> COMPLETE or FAILED. Wakes readers;
 * on COMPLETE, first writes the rest for parked readers (entry_park). */
void entry_finish(struct entry *e, enum entry_state final);
/* Stop keeping the body: readers free what they pass from now on. */
void entry_make_transit(struct entry *e);

/* Reader side. entry_attach fails (-1) when the start of the body is gone
 * (a transit entry): the caller must fetch for itself. */
int entry_attach(struct entry *e, struct entry_reader *r);
void entry_detach(struct entry *e, struct entry_reader *r);
/* Wait for bytes after r's position. Returns a pointer to up to *len bytes
 * (valid until the next call) and advances r; or NULL with *state set to
 * COMPLETE (all read) or FAILED. */
const char *entry_read(struct entry *e, struct entry_reader *r, size_t *len,
                       enum entry_state *state);

/* Like entry_read, but hands out up to `max` consecutive chunks at once (for
 * one writev); they stay valid until the next call. Returns the number of
 * iovecs filled (> 0), or 0 with *state set to COMPLETE or FAILED. */
struct iovec;
int entry_read_iov(struct entry *e, struct entry_reader *r, struct iovec *iov, int max,
                   enum entry_state *state);

/* Like entry_read_iov, but returns -1 instead of waiting for bytes: the
 * deliverer's read, which parks (entry_park) rather than wait on
 * entry.grown. entry_read and entry_read_iov, which wait, serve readers
 * that do not park (the unit tests' threaded readers). */
int entry_try_read_iov(struct entry *e, struct entry_reader *r, struct iovec *iov, int max,
                       enum entry_state *state);

/* Parking: one thread writes a herd's body. A reader caught up with a
 * streaming entry parks (p->r its reader, p->write its writer) instead of
 * waiting on entry.grown; after each append the fetch calls entry_pump,
 * which hands every parked reader the new bytes and calls its writer, on
 * the fetch's thread, one reader after another. A thousand readers then
 * cost one thread's writes per append instead of a thousand threads waking
 * (bench/fanout.c: 0.40-0.50 s of CPU for 1,000 x 4 MiB against 0.55-0.9 s).
 *
 * entry_park returns 0 at once when r has bytes to read or the entry is
 * final; otherwise it sleeps until the reader is released and returns 1.
 * Released: its writer handed it back (a full socket buffer, an error), or
 * entry_finish, which first writes the last bytes and the end of the body
 * (a chunked body's last chunk) on the fetch's thread too: a herd's last
 * bytes do not wait for a thousand threads to wake. The owner then reads
 * on as before. */
int entry_park(struct entry *e, struct entry_parked *p);
/* entry_park in two halves, for a reader parked by another thread (the
 * fetch's, at publish: serve_herd_heads): entry_park_start parks p without
 * waiting (returns 0, not parked, in the cases entry_park returns 0 at
 * once); entry_park_wait, on the owner's thread, sleeps until p is
 * released. */
int entry_park_start(struct entry *e, struct entry_parked *p);
void entry_park_wait(struct entry *e, struct entry_parked *p);
void entry_pump(struct entry *e);

/* Serialise the immutable head (status line and headers, leaving out Age)
 * once, at publish, so that a hit copies it instead of formatting it.
 * Returns 0 or -1 (out of memory). */
int entry_serialise_head(struct entry *e);

/* e's current age at `now` (RFC 9111 4.2.3, from its immutable times). */
int64_t entry_age(const struct entry *e, int64_t now);
/* May e answer stale at `now` because its origin failed (its
 * stale-if-error, or the request's `request_n`, -1 none:
 * policy_stale_if_error)? */
int entry_may_stand_in(const struct entry *e, int64_t now, int64_t request_n);
/* May e answer stale at `now` while it is revalidated in the background
 * (its stale-while-revalidate, policy_stale_while_revalidate)? */
int entry_may_serve_while_revalidating(const struct entry *e, int64_t now);

/* Body bytes so far and state, under the lock. */
uint64_t entry_bytes(struct entry *e, enum entry_state *state);

#endif

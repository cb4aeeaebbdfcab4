/*
 * session.h — one client connection, and the session waiter that holds idle
 * ones.
 *
 * Ownership: exactly one thread holds a session at a time — the main loop
 * while it waits for its next request (the waiter), the linger set between
 * two requests (linger.c), or one worker while a request is served. Only the
 * holder touches the socket and `in`. A worker gives a session back with
 * session_park(), by message to the main loop (event_base_once), never by
 * touching the waiter's data. One loan: a worker parked on a cache key lends
 * its session to the fetch, which writes the response head (serve.c,
 * HERD_CLAIMED to HERD_DONE) while the worker sleeps.
 */
#ifndef CORRAL_SESSION_H
#define CORRAL_SESSION_H

#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <event2/event.h>
#include <event2/buffer.h>

#define SESSION_MAGIC 0x5e551011u

struct session {
	uint32_t magic;
	int fd;
	struct sockaddr_storage peer;
	char peer_text[64];       /* client address, for logs and X-Forwarded-For
	                             (an IPv4 client of a dual-stack listener
	                             written as IPv4) */
	int denied;               /* address not in [proxy] allow: answer 403 */
	struct evbuffer *in;      /* read but not yet parsed (holder only) */
	unsigned nrequests;       /* requests served (holder only) */
	/* linger set's fields (linger.c): under its lock while in the set */
	struct session *linger_prev, *linger_next;
	int64_t linger_deadline;  /* mono_ms */
	int linger_registered;    /* fd is in the set's epoll */
	/* waiter's fields: main thread only */
	struct event *ev;
	struct session *prev, *next;
};

/* Waiter side (main thread). */
int session_waiter_start(struct event_base *base);
void session_waiter_stop(void);     /* close idle sessions; later parks close */
struct session *session_new(int fd, const struct sockaddr *sa, socklen_t len);
void session_wait(struct session *s); /* put in the idle set: main thread only */

/* Worker side. */
void session_park(struct session *s); /* hand back to the waiter */
void session_close(struct session *s);

/* Is the daemon stopping (SIGTERM)? Readable from any thread. */
int session_stopping(void);

#endif

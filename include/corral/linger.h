/*
 * linger.h — keep-alive sessions between requests, waited on by workers.
 *
 * After a response, a worker puts its session in the linger set and waits on
 * the whole set for up to keepalive_linger: it comes back with whichever
 * lingering session became readable first (its own or another's), so requests
 * are served in the order they arrive. Sessions silent for keepalive_linger
 * are parked on the main loop's waiter, where they cost no thread.
 */
#ifndef CORRAL_LINGER_H
#define CORRAL_LINGER_H

#include "corral/pool.h"
#include "corral/session.h"

#include <stdint.h>

/* Create the set (before the pool starts). `serve` is the pool job that
 * serves a session (exchange_run): the set's watcher job calls it with the
 * session it waited for. Returns 0 or -1 (errno set). */
int linger_start(pool_job_fn *serve);

/* Put s in the set and wait up to linger_ms for any session in it to become
 * readable. Returns that session, now owned by the caller, or NULL when none
 * did (s has then been parked, or taken up by another worker). The last
 * waiting worker may stay longer, while others serve sessions of the set. */
struct session *linger_wait(struct session *s, int64_t linger_ms);

/* The main loop's session s became readable: when workers are in the set,
 * put s there for them (no thread to wake) and return 0; else return -1 and
 * the caller submits it to the pool. */
int linger_offer(struct session *s);

/* The worker stops counting as one serving the set: its job ends (session
 * closed, handed off or parked), or it is about to block on something other
 * than its client (exchange_will_block, io_wait's before-block hook), so
 * that another worker takes up the ready sessions. Cheap when not counted. */
void linger_release(void);

#endif

/*
 * stats.h — the daemon's counters, shown by the admin listener (/metrics).
 *
 * Every counter is a relaxed atomic: no lock, safe from any thread. Each
 * failure a user could see has a counter here and a line in a log.
 */
#ifndef CORRAL_STATS_H
#define CORRAL_STATS_H

#include <stdint.h>

/* X(name, help): name is the metric name without the "corral_" prefix. */
#define STATS_COUNTERS(X) \
	X(connections_accepted_total, "client connections accepted") \
	X(connections_rejected_total, "client connections closed at once: over max_connections") \
	X(connections_active, "client connections open now (gauge)") \
	X(connections_idle, "keep-alive connections waiting in the session waiter (gauge)") \
	X(requests_total, "requests read from clients") \
	X(requests_denied_total, "requests answered 403: client address not allowed") \
	X(requests_unauthenticated_total, "requests answered 407: no credentials matching [proxy] auth_file") \
	X(auth_hash_checks_total, "password hashes checked for [proxy] auth_file (credentials not remembered)") \
	X(requests_bad_total, "requests answered 400: malformed") \
	X(requests_too_large_total, "requests answered 413, 414 or 431") \
	X(requests_destination_denied_total, "requests answered 403: destination not allowed") \
	X(upstream_requests_total, "requests sent upstream") \
	X(upstream_errors_total, "upstream failures answered 502") \
	X(upstream_timeouts_total, "upstream timeouts answered 504") \
	X(upstream_truncated_total, "responses cut short after their head was sent") \
	X(client_timeouts_total, "client connections closed: idle past client_timeout, or 408 (head past header_timeout)") \
	X(tunnels_total, "CONNECT tunnels opened") \
	X(tunnels_active, "CONNECT tunnels open now (gauge)") \
	X(bytes_to_clients_total, "bytes written to clients (heads and bodies)") \
	X(cache_hits_total, "requests answered from a stored entry (complete or still streaming)") \
	X(cache_misses_total, "requests that found nothing usable and started a fetch") \
	X(cache_coalesced_total, "requests that waited for another request's fetch and were served from it") \
	X(cache_herd_heads_total, "of those, requests whose response head the fetch sent the moment it had one") \
	X(cache_pumped_writes_total, "body writes the fetch's thread made for readers parked on a body still arriving") \
	X(cache_pump_handbacks_total, "parked readers handed back to their own thread: the client's socket was full") \
	X(cache_fetches_total, "upstream fetches run by the cache") \
	X(cache_fetch_failures_total, "cache fetches that failed before the response head") \
	X(cache_fetch_aborts_total, "cache fetches that broke off after the response head") \
	X(cache_stored_total, "responses stored") \
	X(cache_not_stored_total, "fetched responses not storable (the key is marked hit-for-miss)") \
	X(cache_passes_total, "requests passed upstream without the cache (method, request directives, hit-for-miss, HEAD misses, coalesce timeout)") \
	X(cache_coalesce_timeouts_total, "waiters that gave up after coalesce_timeout and went upstream") \
	X(cache_revalidated_total, "stale stored responses the origin confirmed with a 304: stored again with the body they had") \
	X(cache_stale_if_error_total, "requests answered with a stale stored copy because the origin failed and its stale-if-error allowed it") \
	X(cache_purged_total, "stored responses taken out by POST /purge on the admin listener") \
	X(cache_stale_while_revalidate_total, "requests answered with a stale stored copy while it was revalidated in the background (stale-while-revalidate)") \
	X(cache_conditional_total, "requests answered 304 from a stored response: the client's copy was current") \
	X(cache_invalidations_total, "stored entries dropped because a POST, PUT, DELETE or other unsafe request to their URL succeeded") \
	X(cache_evictions_total, "entries evicted to stay within [cache] memory") \
	X(cache_objects, "entries stored now, hit-for-miss markers included (gauge)") \
	X(cache_memory_bytes, "bytes charged against [cache] memory now (gauge)") \
	X(cache_waiters, "requests waiting for a fetch's response head now (gauge)") \
	X(herd_memory_bytes, "bytes in the pools of herd nodes and slots (dense.c): their peak so far, never given back (gauge)") \
	X(cache_readers_parked, "readers caught up with a body still arriving, parked until the fetch's thread writes its next bytes for them (gauge)")

enum stat_id {
#define STAT_ENUM(name, help) STAT_##name,
	STATS_COUNTERS(STAT_ENUM)
#undef STAT_ENUM
	STAT__COUNT
};

void stats_add(enum stat_id id, int64_t n);
static inline void stats_inc(enum stat_id id) { stats_add(id, 1); }
int64_t stats_get(enum stat_id id);
const char *stats_name(enum stat_id id);
const char *stats_help(enum stat_id id);

#endif

/*
 * pool.h — the worker pool: threads that each run one job start to finish.
 *
 * A job is a function and its argument. pool_submit() never blocks on work:
 * when a job is queued and no thread is idle, the pool grows by one thread (up
 * to max_workers), so a herd waiting on one key never delays another key.
 * Threads idle for longer than the retire delay exit while the pool has more
 * than min_workers. Jobs may block (on sockets with timeouts, on condvars).
 */
#ifndef CORRAL_POOL_H
#define CORRAL_POOL_H

typedef void pool_job_fn(void *arg);

/* Start the pool with min_workers threads. Returns 0 or -1 (errno set). */
int pool_start(int min_workers, int max_workers);

/* Change the bounds (SIGHUP). Threads are not killed: extra ones retire. */
void pool_resize(int min_workers, int max_workers);

/* Queue a job. Returns 0, or -1 when the pool is stopping. */
int pool_submit(pool_job_fn *fn, void *arg);

/* Queue a job that others are waiting for (the cache's fetch: its starter
 * and waiters hold workers until it publishes). It goes first in the queue,
 * and a thread is started for it when none is idle even at max_workers —
 * otherwise a pool full of requests waiting for their fetches would wait for
 * ever. Fetches never outnumber the requests that started them, so the pool
 * stays under twice max_workers. Returns 0, or -1 when no thread can run it
 * (out of memory, or a thread could not be created and none is idle). */
int pool_submit_first(pool_job_fn *fn, void *arg);

/* Jobs queued or running right now. */
int pool_busy(void);

/* Counts for the metrics. */
struct pool_stats {
	int threads, idle, busy, queued;
	unsigned long spawn_failures;
};
void pool_get_stats(struct pool_stats *out);

#endif

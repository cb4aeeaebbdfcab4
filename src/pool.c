/*
 * pool.c — a growing pthread worker pool (see pool.h).
 *
 * One mutex (pool.lock) protects every field of `pool` and the job queue; one
 * condvar (pool.wake) wakes idle threads. Rule for growth: after queueing a
 * job, if there are more queued jobs than idle threads and fewer than
 * max_workers threads, start one more. A thread that has been idle for
 * RETIRE_AFTER_S seconds exits if the pool has more than min_workers.
 * Threads are detached; their stacks are small (thousands of them wait on
 * condvars during a herd) — STACK_SIZE is enough for libcurl and OpenSSL.
 */
#include "corral/pool.h"
#include "corral/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#define RETIRE_AFTER_S 10
#define STACK_SIZE (512 * 1024)

struct job {
	pool_job_fn *fn;
	void *arg;
	struct job *next;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	/* everything below: protected by lock */
	struct job *head, *tail;
	int queued;
	int threads;
	int idle;
	int running;  /* jobs being run */
	int min, max;
	unsigned long spawn_failures;
	pthread_attr_t attr;
} pool = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.wake = PTHREAD_COND_INITIALIZER,
};

static void *pool_thread(void *unused);

/* Caller holds pool.lock. */
static void do_spawn(void)
{
	pthread_t tid;
	if (pthread_create(&tid, &pool.attr, pool_thread, NULL) != 0) {
		pool.spawn_failures++;
		return;
	}
	pool.threads++;
}

static void *pool_thread(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&pool.lock);
	for (;;) {
		while (pool.head == NULL) {
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += RETIRE_AFTER_S;
			pool.idle++;
			int rc = pthread_cond_timedwait(&pool.wake, &pool.lock, &until);
			pool.idle--;
			if (rc == ETIMEDOUT && pool.head == NULL && pool.threads > pool.min) {
				pool.threads--;
				pthread_mutex_unlock(&pool.lock);
				return NULL;
			}
		}
		struct job *j = pool.head;
		pool.head = j->next;
		if (pool.head == NULL)
			pool.tail = NULL;
		pool.queued--;
		pool.running++;
		pthread_mutex_unlock(&pool.lock);

		j->fn(j->arg);
		free(j);

		pthread_mutex_lock(&pool.lock);
		pool.running--;
	}
}

int pool_start(int min_workers, int max_workers)
{
	pthread_attr_init(&pool.attr);
	pthread_attr_setdetachstate(&pool.attr, PTHREAD_CREATE_DETACHED);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
	pthread_attr_setstacksize(&pool.attr, STACK_SIZE);
#endif
	pthread_mutex_lock(&pool.lock);
	pool.min = min_workers;
	pool.max = max_workers;
	while (pool.threads < pool.min) {
		int before = pool.threads;
		do_spawn();
		if (pool.threads == before) {
			pthread_mutex_unlock(&pool.lock);
			errno = EAGAIN;
			return -1;
		}
	}
	pthread_mutex_unlock(&pool.lock);
	return 0;
}

void pool_resize(int min_workers, int max_workers)
{
	pthread_mutex_lock(&pool.lock);
	pool.min = min_workers;
	pool.max = max_workers;
	while (pool.threads < pool.min) {
		int before = pool.threads;
		do_spawn();
		if (pool.threads == before)
			break;
	}
	pthread_mutex_unlock(&pool.lock);
}

static struct job *job_new(pool_job_fn *fn, void *arg)
{
	struct job *j = malloc(sizeof *j);
	if (j) {
		j->fn = fn;
		j->arg = arg;
		j->next = NULL;
	}
	return j;
}

int pool_submit(pool_job_fn *fn, void *arg)
{
	struct job *j = job_new(fn, arg);
	if (j == NULL)
		return -1;

	pthread_mutex_lock(&pool.lock);
	if (pool.tail)
		pool.tail->next = j;
	else
		pool.head = j;
	pool.tail = j;
	pool.queued++;
	if (pool.queued > pool.idle && pool.threads < pool.max)
		do_spawn();
	pthread_cond_signal(&pool.wake);
	pthread_mutex_unlock(&pool.lock);
	return 0;
}

int pool_submit_first(pool_job_fn *fn, void *arg)
{
	struct job *j = job_new(fn, arg);
	if (j == NULL)
		return -1;

	pthread_mutex_lock(&pool.lock);
	j->next = pool.head;
	pool.head = j;
	if (pool.tail == NULL)
		pool.tail = j;
	pool.queued++;
	if (pool.queued > pool.idle) {
		int before = pool.threads;
		do_spawn(); /* past max_workers if need be: see pool.h */
		if (pool.threads == before && pool.idle == 0) {
			/* no thread will come for it: take it back */
			pool.head = j->next;
			if (pool.head == NULL)
				pool.tail = NULL;
			pool.queued--;
			pthread_mutex_unlock(&pool.lock);
			free(j);
			return -1;
		}
	}
	pthread_cond_signal(&pool.wake);
	pthread_mutex_unlock(&pool.lock);
	return 0;
}

int pool_busy(void)
{
	pthread_mutex_lock(&pool.lock);
	int n = pool.running + pool.queued;
	pthread_mutex_unlock(&pool.lock);
	return n;
}

void pool_get_stats(struct pool_stats *out)
{
	pthread_mutex_lock(&pool.lock);
	out->threads = pool.threads;
	out->idle = pool.idle;
	out->busy = pool.running;
	out->queued = pool.queued;
	out->spawn_failures = pool.spawn_failures;
	pthread_mutex_unlock(&pool.lock);
}

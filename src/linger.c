/*
 * linger.c — the linger set: keep-alive sessions between two requests, and
 * the workers waiting for any of them (see linger.h).
 *
 * A worker that has answered a request puts its session in the set and takes
 * up whichever session of the set is ready first, in the order the kernel
 * reported them. Under load one worker goes from session to session without
 * sleeping, as an event loop would, and the others stay asleep: every extra
 * runnable thread on a busy CPU runs a full scheduler tick when its turn
 * comes, and a request taken up by a thread that is then preempted waits for
 * every other runnable thread's tick. (Each worker waiting on its own socket
 * made a 1 KiB hit's p99 three times nginx's with 50 busy connections.)
 *
 * Roles, all under `set.lock`:
 *  - active: a worker serving a session it took from the set. It comes back
 *    (linger_wait) or leaves (linger_release).
 *  - the poller: at most one worker in epoll_wait on `epfd`. It blocks there
 *    only when no worker is active; otherwise it only looks (timeout 0).
 *    Events go to the `ready` queue. One poller at a time also keeps the
 *    kernel's order: concurrent epoll_wait calls put events that arrive
 *    during another's scan ahead of older ones.
 *  - the watchman: one sleeper that wakes every WATCH_MS while workers are
 *    active. If no session was taken from the set since it last looked (the
 *    active workers are all blocked, say on an upstream), it takes one up.
 *  - other sleepers: wait on `turn` until no worker is active and nobody
 *    polls, or until their linger ends and they return to the pool.
 *
 * Ownership: a session in the set (the deadline list or `ready`) belongs to
 * the set and is claimed under the lock — by the worker that takes it from
 * `ready`, or by expiry, which parks it on the main loop's waiter after
 * keepalive_linger of silence. The epoll event carries the session's fd and
 * a generation number rather than a pointer, so an event for a session that
 * has since been claimed (and perhaps freed) is recognised and dropped.
 *
 * The main loop puts a readable idle session in the set too (linger_offer),
 * when workers are there to take it up. A session is armed (epoll_ctl) under
 * `set.lock`, the one syscall made under it: nobody may see it in the set
 * unarmed.
 *
 * Every session in the set is watched: the last waiting worker does not leave
 * while others are active; when the last one leaves to serve a session, a
 * watcher job is queued on the pool; when nobody is active and the last one
 * leaves because nothing came, it parks what is left.
 */
#include "corral/linger.h"
#include "corral/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>

/* A waiting worker looks at session_stopping() at least this often. */
#define WAIT_SLICE_MS 100
/* How long ready sessions may wait while every active worker is blocked. */
#define WATCH_MS 2
#define MAX_EVENTS 64

struct slot {
	struct session *s;  /* NULL: free */
	uint32_t gen;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t turn;   /* CLOCK_MONOTONIC; see signal_locked */
	int epfd;              /* set once by linger_start */
	pool_job_fn *serve;    /* set once by linger_start */
	/* everything below: protected by lock */
	struct slot *slots;    /* indexed by fd: the sessions in the set */
	int nslots;
	struct session *head, *tail;  /* armed, by deadline (oldest first) */
	struct session *ready;        /* reported readable, FIFO */
	struct session **ready_tail;
	int waiting;           /* workers inside linger_wait */
	int sleeping;          /* of those, waiting on `turn` */
	int active;            /* workers serving a session taken from the set */
	int polling;           /* a worker is in epoll_wait */
	int watchman;          /* a sleeper is the watchman */
	int watcher_queued;    /* a watcher job is in the pool's queue */
	unsigned long taken;   /* sessions taken from `ready`, ever */
	int64_t linger_ms;     /* of the latest linger_wait */
	uint32_t gen;
} set = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.epfd = -1,
	.ready_tail = &set.ready,
};

/* Is this thread counted in set.active? */
static __thread int counted_active;

int linger_start(pool_job_fn *serve)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -1;
	rlim_t n = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (1 << 22) ? (1 << 22) : rl.rlim_cur;
	set.slots = calloc((size_t)n, sizeof *set.slots);
	if (set.slots == NULL)
		return -1;
	set.nslots = (int)n;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&set.turn, &ca);
	pthread_condattr_destroy(&ca);
	set.serve = serve;
	set.epfd = epoll_create1(EPOLL_CLOEXEC);
	return set.epfd < 0 ? -1 : 0;
}

/* Caller holds set.lock. Takes s off the deadline list and out of its slot. */
static void unlink_locked(struct session *s)
{
	if (s->linger_prev)
		s->linger_prev->linger_next = s->linger_next;
	else
		set.head = s->linger_next;
	if (s->linger_next)
		s->linger_next->linger_prev = s->linger_prev;
	else
		set.tail = s->linger_prev;
	s->linger_prev = s->linger_next = NULL;
	set.slots[s->fd].s = NULL;
}

/* Caller holds set.lock. Appends to *tail the armed sessions whose deadline
 * is at or before `now` (all of them if `all`), linked through linger_next,
 * and returns the new end of that list. */
static struct session **take_expired_locked(struct session **tail, int64_t now, int all)
{
	while (set.head && (all || set.head->linger_deadline <= now)) {
		struct session *s = set.head;
		unlink_locked(s);
		*tail = s;
		tail = &s->linger_next;
	}
	return tail;
}

/* Caller holds set.lock: move the sessions of these events to `ready`, in
 * the order the kernel reported them. */
static void take_events_locked(const struct epoll_event *evs, int n)
{
	for (int i = 0; i < n; i++) {
		int fd = (int)(uint32_t)evs[i].data.u64;
		uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
		struct session *s = fd < set.nslots ? set.slots[fd].s : NULL;
		if (s == NULL || set.slots[fd].gen != gen)
			continue; /* claimed since it was armed */
		unlink_locked(s);
		*set.ready_tail = s;
		set.ready_tail = &s->linger_next;
	}
}

/* Caller holds set.lock. Wake a sleeper when the set needs one: to poll
 * when nobody is active or polling, or to keep watch while workers are
 * active and there is no watchman. */
static void signal_locked(void)
{
	if (set.sleeping > 0 && (set.active == 0 ? !set.polling : !set.watchman))
		pthread_cond_signal(&set.turn);
}

static void park_list(struct session *s)
{
	while (s) {
		struct session *next = s->linger_next;
		s->linger_next = NULL;
		session_park(s);
		s = next;
	}
}

/* Caller holds set.lock. This thread no longer serves a session of the set. */
static void uncount_active_locked(void)
{
	if (counted_active) {
		counted_active = 0;
		set.active--;
	}
}

/* Put s in the set and arm its event; `waiter`: count the caller as waiting
 * (it goes on to wait_any), else only if workers are in the set already (the
 * main loop offering a readable session; linger_ms is then theirs). Returns 0, or -1 when it could not
 * be (s is still the caller's). */
static int add(struct session *s, int64_t linger_ms, int waiter)
{
	if (s->fd >= set.nslots)
		return -1;
	pthread_mutex_lock(&set.lock);
	if (!waiter) {
		/* offered: only to workers already here, for their linger */
		linger_ms = set.linger_ms;
		if ((set.waiting == 0 && set.active == 0) || linger_ms <= 0) {
			pthread_mutex_unlock(&set.lock);
			return -1;
		}
	}
	if (++set.gen == 0)
		set.gen = 1;
	uint32_t gen = set.gen;
	/* Armed under the lock: from the first event, or from expiry, s may be
	 * claimed by another thread; nobody may see it in the set unarmed. */
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT,
	                          .data.u64 = (uint64_t)gen << 32 | (uint32_t)s->fd };
	int rc = epoll_ctl(set.epfd, s->linger_registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD,
	                   s->fd, &ev);
	if (rc < 0 && (errno == ENOENT || errno == EEXIST)) /* registered: not as we thought */
		rc = epoll_ctl(set.epfd, errno == ENOENT ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, s->fd, &ev);
	if (rc < 0) {
		int err = errno;
		pthread_mutex_unlock(&set.lock);
		log_warn("linger: epoll_ctl: %s", strerror(err));
		return -1;
	}
	s->linger_registered = 1;
	set.slots[s->fd] = (struct slot){ s, gen };
	s->linger_deadline = mono_ms() + linger_ms;
	s->linger_next = NULL;
	s->linger_prev = set.tail;
	if (set.tail)
		set.tail->linger_next = s;
	else
		set.head = s;
	set.tail = s;
	if (waiter) {
		set.linger_ms = linger_ms;
		set.waiting++;
	}
	pthread_mutex_unlock(&set.lock);
	return 0;
}

/* Caller holds set.lock. Sleep on `turn` for at most ms. */
static void sleep_locked(int64_t ms)
{
	struct timespec ts = mono_deadline(ms);
	set.sleeping++;
	pthread_cond_timedwait(&set.turn, &set.lock, &ts);
	set.sleeping--;
}

/* Caller holds set.lock. Look for events: block for up to ms when nobody is
 * active, else only look. Returns how many were reported. */
static int poll_locked(int64_t ms)
{
	set.polling = 1;
	pthread_mutex_unlock(&set.lock);
	struct epoll_event evs[MAX_EVENTS];
	int n = epoll_wait(set.epfd, evs, MAX_EVENTS, (int)ms);
	if (n < 0 && errno != EINTR)
		log_warn("linger: epoll_wait: %s", strerror(errno));
	pthread_mutex_lock(&set.lock);
	set.polling = 0;
	if (n > 0)
		take_events_locked(evs, n);
	return n > 0 ? n : 0;
}

static void watch_job(void *unused);

/*
 * Wait up to linger_ms for a session of the set to become readable; the
 * caller is counted in set.waiting. `may_take`: whether the caller may take
 * up a session at once (a watcher job starts as a watchman instead).
 */
static struct session *wait_any(int64_t linger_ms, int may_take)
{
	int64_t until = mono_ms() + linger_ms;
	struct session *got = NULL, *parks = NULL, **parks_tail = &parks;
	pthread_mutex_lock(&set.lock);
	/* Counted active until here, so that from the time it served its last
	 * session until now the watchman did not see an idle set. */
	uncount_active_locked();
	for (;;) {
		int64_t now = mono_ms();
		parks_tail = take_expired_locked(parks_tail, now, session_stopping());
		if (parks) {
			/* to the main loop now: their slots are cleared, so a
			 * request on them would go unseen until we leave */
			pthread_mutex_unlock(&set.lock);
			park_list(parks);
			parks = NULL;
			parks_tail = &parks;
			pthread_mutex_lock(&set.lock);
			continue;
		}
		if (session_stopping())
			break;
		if (may_take && set.ready) {
			got = set.ready;
			set.ready = got->linger_next;
			if (set.ready == NULL)
				set.ready_tail = &set.ready;
			got->linger_next = NULL;
			set.taken++;
			break;
		}
		int64_t left = until - now;
		/* The last waiter stays while others are active: it watches
		 * their sessions. */
		if (left <= 0 && (set.waiting > 1 || set.active == 0 ||
		                  (set.head == NULL && set.ready == NULL)))
			break;
		int64_t slice = left < WAIT_SLICE_MS ? (left > 0 ? left : WATCH_MS) : WAIT_SLICE_MS;
		if (may_take && !set.polling && poll_locked(set.active == 0 ? slice : 0) > 0)
			continue;
		if (set.active == 0 && !set.polling) {
			may_take = 1;
			continue;
		}
		/* Somebody else serves or polls: sleep. */
		if (!set.watchman && set.active > 0) {
			unsigned long seen = set.taken;
			set.watchman = 1;
			sleep_locked(WATCH_MS);
			set.watchman = 0;
			/* Nobody took a session meanwhile: the active workers
			 * are blocked, take one up. */
			may_take = set.active > 0 ? set.taken == seen : !set.polling;
		} else {
			sleep_locked(slice);
			may_take = set.active == 0 && !set.polling;
		}
	}
	int need_watcher = 0;
	set.waiting--;
	if (got) {
		counted_active = 1;
		set.active++;
		if (set.waiting == 0 && (set.head || set.ready) && !set.watcher_queued)
			need_watcher = set.watcher_queued = 1;
	} else if (set.waiting == 0 && set.active == 0) {
		/* Nothing came and nobody else is here: the main loop takes
		 * what is left. */
		parks_tail = take_expired_locked(parks_tail, 0, 1);
		*parks_tail = set.ready;
		set.ready = NULL;
		set.ready_tail = &set.ready;
	}
	signal_locked();
	pthread_mutex_unlock(&set.lock);
	park_list(parks);
	if (need_watcher && pool_submit(watch_job, NULL) < 0) {
		pthread_mutex_lock(&set.lock);
		set.watcher_queued = 0;
		pthread_mutex_unlock(&set.lock);
	}
	return got;
}

/* A pool job that watches the set while every waiter has left to serve. */
static void watch_job(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&set.lock);
	set.watcher_queued = 0;
	set.waiting++;
	int64_t linger_ms = set.linger_ms;
	pthread_mutex_unlock(&set.lock);
	struct session *s = wait_any(linger_ms, 0);
	if (s)
		set.serve(s);
}

int linger_offer(struct session *s)
{
	return add(s, 0, 0);
}

struct session *linger_wait(struct session *s, int64_t linger_ms)
{
	if (add(s, linger_ms, 1) < 0) {
		linger_release();
		session_park(s);
		return NULL;
	}
	return wait_any(linger_ms, 1);
}

void linger_release(void)
{
	if (!counted_active)
		return;
	struct session *parks = NULL;
	pthread_mutex_lock(&set.lock);
	uncount_active_locked();
	if (set.waiting == 0 && set.active == 0 && !set.watcher_queued) {
		/* Nobody would watch the set: the main loop takes it. */
		*take_expired_locked(&parks, 0, 1) = set.ready;
		set.ready = NULL;
		set.ready_tail = &set.ready;
	}
	signal_locked();
	pthread_mutex_unlock(&set.lock);
	park_list(parks);
}

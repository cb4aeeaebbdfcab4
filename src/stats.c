/*
 * stats.c — the counters of stats.h: one array of relaxed atomics.
 */
#include "corral/stats.h"

#include <stdatomic.h>

static _Atomic int64_t counters[STAT__COUNT];

static const char *const names[] = {
#define STAT_NAME(name, help) #name,
	STATS_COUNTERS(STAT_NAME)
#undef STAT_NAME
};

static const char *const helps[] = {
#define STAT_HELP(name, help) help,
	STATS_COUNTERS(STAT_HELP)
#undef STAT_HELP
};

void stats_add(enum stat_id id, int64_t n)
{
	atomic_fetch_add_explicit(&counters[id], n, memory_order_relaxed);
}

int64_t stats_get(enum stat_id id)
{
	return atomic_load_explicit(&counters[id], memory_order_relaxed);
}

const char *stats_name(enum stat_id id) { return names[id]; }
const char *stats_help(enum stat_id id) { return helps[id]; }

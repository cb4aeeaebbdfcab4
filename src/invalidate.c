/*
 * invalidate.c — invalidation after unsafe methods (see invalidate.h).
 *
 * The keys are made as a lookup makes them (url_normalise): the target's
 * own parsed URL, or that URL with the path of a Location / Content-Location
 * that has the same origin. A reference that is neither absolute-form nor
 * an absolute path ("other", "../x") is left alone: resolving dot segments
 * is more than an optional invalidation needs.
 */
#include "corral/invalidate.h"
#include "corral/cache.h"
#include "corral/exchange.h"
#include "corral/log.h"
#include "corral/stats.h"

#include <string.h>
#include <strings.h>

#define INVALIDATE_KEY_MAX 8192

int invalidate_method_is_safe(const char *method)
{
	return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ||
	       strcmp(method, "OPTIONS") == 0 || strcmp(method, "TRACE") == 0;
}

static void invalidate_url(const struct url *u)
{
	char key[INVALIDATE_KEY_MAX];
	if (url_normalise(u, key, sizeof key) < 0)
		return;
	int n = cache_invalidate(key);
	if (n > 0) {
		stats_add(STAT_cache_invalidations_total, n);
		log_info("%s: invalidated (%d stored)", key, n);
	}
}

/* A Location or Content-Location value: its URL when it has the target's
 * origin, else nothing. */
static void invalidate_reference(const struct url *target, const char *ref)
{
	struct url u;
	if (ref[0] == '/' && ref[1] != '/') {
		u = *target; /* an absolute path: the target's origin */
		u.path = ref;
	} else if (url_parse(ref, &u) < 0 || strcmp(u.scheme, target->scheme) != 0 ||
	           strcmp(u.host, target->host) != 0 || u.port != target->port) {
		return; /* another origin, or a reference not worth resolving */
	}
	invalidate_url(&u);
}

void invalidate_after_unsafe(struct exchange *x, int status, const struct http_headers *h,
                             int64_t content_length)
{
	(void)content_length;
	if (status < 200 || status > 399)
		return; /* an error changed nothing we know of */
	invalidate_url(&x->url);
	const char *loc = headers_get(h, "Location");
	const char *cloc = headers_get(h, "Content-Location");
	if (loc)
		invalidate_reference(&x->url, loc);
	if (cloc)
		invalidate_reference(&x->url, cloc);
}

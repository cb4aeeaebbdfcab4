/*
 * fetch.c — the cache's upstream fetch (see fetch.h).
 *
 * A fetch owns itself: it is created by the request that found the key
 * empty, runs on a pool thread, and frees itself at the end. It shares with
 * the starter only `out` and `starter`, both touched once, under the key's
 * lock, when it publishes or fails; the starter waits until then.
 */
#include "corral/fetch.h"
#include "corral/chunked.h"
#include "corral/config.h"
#include "corral/exchange.h"
#include "corral/log.h"
#include "corral/policy.h"
#include "corral/pool.h"
#include "corral/resphead.h"
#include "corral/revalidate.h"
#include "corral/serve.h"
#include "corral/session.h"
#include "corral/stats.h"
#include "corral/upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct fetch {
	struct keyhead *h;              /* a use of the key, given back at the end */
	struct config *cfg;             /* a reference */
	char *url;
	char host[256];
	int port;
	struct http_headers req;        /* the starter's request headers (a copy) */
	struct entry_reader *starter;   /* attached at publish; the starter waits */
	struct fetch_outcome *out;      /* the starter's, until published/failed */
	struct resphead head;
	struct entry *e;                /* published entry: the fetch's reference */
	struct entry *validate;         /* the stored variant (a reference), or NULL:
	                                   revalidated when `conditional`, and the
	                                   starter's answer if the fetch fails while its
	                                   stale-if-error allows (`may_stand_in`) */
	int conditional;                /* it has a validator: revalidate.h */
	int ask_again;                  /* the 304 named another representation:
	                                   ask without validators (fetch_job) */
	int may_stand_in;               /* not a reload, and it or the starter's
	                                   request says stale-if-error */
	int64_t request_sie;            /* the starter's request's stale-if-error,
	                                   -1 none (RFC 5861 4) */
	int stale_status;               /* the 5xx that failed the fetch for it */
	struct entry_reader validate_rd;/* attached to validate from the start, so
	                                   that its body stays whatever happens to it
	                                   (evicted, replaced: transit frees what no
	                                   reader holds) */
	int stored;                     /* e is still in the store */
	int no_readers;                 /* a transit entry lost its last reader */
	size_t unpumped;                /* bytes appended since the last entry_pump */
	int dechunk;                    /* the body comes framed: decode it (ch) */
	struct chunked ch;
	char why[320];                  /* why the body broke off, if not libcurl's */
	uint64_t appended;              /* body bytes appended */
	int body_done;                  /* the body's last byte is appended */
	int64_t request_time;
	struct fetch_outcome own_out;   /* `out` of a background fetch, which
	                                   nobody waits for */
	struct upstream_forwarding fw;  /* Via and X-Forwarded-For of the starter's request */
	struct upstream_ctx u;
	CURL *curl;
};

/* Done with the stored variant a revalidation asked about: its reader
 * held the old body (uncharged) for as long as it stayed attached. */
static void drop_validate(struct fetch *f)
{
	if (f->validate) {
		entry_detach(f->validate, &f->validate_rd);
		entry_unref(&f->validate);
	}
}

static void fetch_free(struct fetch *f)
{
	if (f->h)
		cache_head_put(f->h, NULL);
	config_put(f->cfg);
	free(f->url);
	headers_free(&f->req);
	resphead_free(&f->head);
	entry_unref(&f->e);
	drop_validate(f);
	free(f);
}

/* Every request line of the headers the response varies on (all its Vary
 * lines together), of those that went upstream: not a hop-by-hop field
 * (upstream.c removes them), which the origin never saw (policy.h,
 * policy_vary_match). */
static int copy_vary(struct fetch *f, struct entry *e)
{
	e->vary = headers_join(&f->head.headers, "Vary");
	if (e->vary == NULL)
		return headers_get(&f->head.headers, "Vary") ? -1 : 0;
	struct http_hop hop;
	if (http_hop_init(&hop, &f->req) < 0)
		return -1; /* request.c refused it already */
	const char *p = e->vary, *start;
	size_t n;
	while ((p = http_list_next(p, &start, &n)) != NULL) {
		char name[128];
		if (n >= sizeof name)
			continue;
		memcpy(name, start, n);
		name[n] = '\0';
		if (http_hop_has(&hop, name))
			continue;
		for (int i = 0; i < f->req.n; i++) {
			const struct http_header *h = &f->req.v[i];
			if (strcasecmp(h->name, name) == 0 &&
			    headers_add(&e->vary_req, name, n, h->value, strlen(h->value)) < 0)
				return -1;
		}
	}
	return 0;
}

/* A response without Date gets the time it arrived (RFC 9110 6.6.1: a
 * cache with a clock adds one). Returns 0 or -1 (out of memory). */
static int add_date(struct entry *e)
{
	if (headers_get(&e->headers, "Date"))
		return 0;
	char date[POLICY_DATE_LEN];
	policy_format_date(e->response_time, date);
	return headers_add(&e->headers, "Date", 4, date, strlen(date));
}

static int publish_entry(struct fetch *f, struct entry *e, const struct http_headers *hh);
static int append_body(void *arg, const char *p, size_t n);
static void pump_if_due(struct fetch *f);


/* A 304 to a revalidation: publish the stored variant anew, its head
 * updated (revalidate.h), and append its body. Returns 0 or -1. */
static int publish_revalidated(struct fetch *f)
{
	struct entry *e = revalidate_entry(f->validate, &f->head, f->request_time, time(NULL));
	if (e == NULL)
		return -1;
	stats_inc(STAT_cache_revalidated_total);
	if (f->out)
		f->out->revalidated = 1;
	publish_entry(f, e, &e->headers);
	enum entry_state st;
	struct iovec v[16];
	int n, rc = 0;
	/* pumped as the body from the origin is (on_body): a transit entry
	 * (the 304 made it unstorable) waits in entry_append while it is
	 * TRANSIT_MAX ahead of its readers, and parked readers move only
	 * when pumped: without it, a body over 1 MiB hung both threads */
	while (rc == 0 && (n = entry_read_iov(f->validate, &f->validate_rd, v, 16, &st)) > 0) {
		for (int i = 0; i < n && rc == 0; i++)
			rc = append_body(f, v[i].iov_base, v[i].iov_len);
		pump_if_due(f);
	}
	drop_validate(f);
	f->body_done = rc == 0; /* the 304 has no body: it ends as soon as read */
	return rc;
}

/* The final head is in: build the entry and publish it. Returns 0 or -1. */
static int publish(struct fetch *f)
{
	const struct http_headers *hh = &f->head.headers;
	struct entry *e = entry_new();
	if (e == NULL)
		return -1;
	e->status = f->head.status;
	e->http10 = f->head.http10;
	snprintf(e->reason, sizeof e->reason, "%s", f->head.reason);
	e->request_time = f->request_time;
	e->response_time = time(NULL);
	if (resphead_end_to_end(&f->head, &e->headers) < 0 || copy_vary(f, e) < 0 ||
	    add_date(e) < 0 || entry_serialise_head(e) < 0) {
		entry_unref(&e);
		return -1;
	}
	const char *cl = headers_get(hh, "Transfer-Encoding") ? NULL
	                 : headers_get(hh, "Content-Length");
	e->content_length = cl ? strtoll(cl, NULL, 10) : -1;
	const char *date = headers_get(hh, "Date");
	const char *age = headers_get(hh, "Age");
	e->date_value = date ? policy_parse_date(date) : -1;
	e->age_value = age ? strtoll(age, NULL, 10) : -1;
	char *ip = NULL;
	if (curl_easy_getinfo(f->curl, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip)
		snprintf(e->upstream, sizeof e->upstream, "%s", ip);
	if (f->conditional && f->out)
		f->out->revalidated = 2; /* asked with validators, got a new response */
	drop_validate(f);
	return publish_entry(f, e, hh);
}

/* e is built: may it be stored (hh: the response's fields), then publish
 * it and send the herd its heads. Returns 0. */
static int publish_entry(struct fetch *f, struct entry *e, const struct http_headers *hh)
{
	const char *why = NULL;
	struct policy_store_rules rules;
	cache_store_rules(f->cfg, &rules);
	e->freshness_lifetime = policy_storable(&f->req, f->url, e->status, hh, e->content_length,
	                                        &rules, e->response_time, &why);
	if (why == NULL && policy_stale_on_arrival(hh, e->freshness_lifetime, e->response_time))
		why = "stale";
	f->e = e;
	f->stored = why == NULL;
	struct herd_waiter *claimed = NULL;
	cache_publish(f->h, e, why, f->starter, f->out, &claimed);
	if (claimed) {
		serve_herd_heads(f->h, e, claimed);
		cache_herd_done(f->h, claimed, f->out);
	}
	if (f->out == &f->own_out)
		entry_unref(&f->own_out.entry); /* a background fetch's: nobody's */
	f->out = NULL;
	f->starter = NULL;
	return 0;
}

/* n decoded body bytes: into the entry. Returns 0, or -1 to stop the
 * transfer. */
static int append_body(void *arg, const char *p, size_t n)
{
	struct fetch *f = arg;
	int rc = entry_append(f->e, p, n);
	if (rc < 0) {
		f->no_readers = rc == -1; /* transit and nobody left to read it */
		return -1;
	}
	f->unpumped += n;
	if (f->stored)
		f->stored = cache_grow(f->e, n);
	f->appended += n;
	if (f->e->content_length >= 0 && f->appended >= (uint64_t)f->e->content_length)
		f->body_done = 1; /* a Content-Length body is whole */
	return 0;
}

/* May the stored variant answer now, stale, because the fetch failed? Its
 * body is held (validate_rd) since the fetch began. */
static int can_stand_in(const struct fetch *f)
{
	return f->validate && f->may_stand_in &&
	       entry_may_stand_in(f->validate, time(NULL), f->request_sie);
}

static size_t on_header(char *buf, size_t size, size_t n, void *ud)
{
	struct fetch *f = ud;
	size_t len = size * n;
	switch (resphead_line(&f->head, buf, len)) {
	case RESPHEAD_MORE:
	case RESPHEAD_TRAILER:
	case RESPHEAD_INTERIM:
		if (f->head.status == 101) {
			snprintf(f->why, sizeof f->why, "%s", RESPHEAD_NO_UPGRADE);
			return 0;
		}
		return len;
	case RESPHEAD_NOMEM:
		return 0;
	case RESPHEAD_FINAL:
		if (resphead_framing_error(&f->head, f->why, sizeof f->why) ||
		    upstream_parent_refused(&f->u, f->head.status, f->why, sizeof f->why))
			return 0;
		if ((f->head.status == 500 || f->head.status == 502 || f->head.status == 503 ||
		     f->head.status == 504) && (can_stand_in(f) || f->out == &f->own_out)) {
			/* an error the stored copy may stand in for (RFC 5861),
			 * decided now: a failed fetch, not a response to store
			 * or pass on (else the 5xx goes through as it is). A
			 * background revalidation's 5xx has nobody to go to:
			 * failed too, so that the stale copy it came to refresh
			 * is not replaced by a hit-for-miss marker */
			f->stale_status = f->head.status;
			snprintf(f->why, sizeof f->why, "the origin answered %d %s",
			         f->head.status, f->head.reason);
			return 0;
		}
		if (f->conditional && f->head.status == 304) {
			if (!revalidate_matches(f->validate, &f->head)) {
				f->ask_again = 1;
				return 0;
			}
			if (publish_revalidated(f) < 0)
				return 0;
			return len;
		}
		if (f->head.status == 304 && !headers_get(&f->req, "If-None-Match") &&
		    !headers_get(&f->req, "If-Modified-Since")) {
			/* to a request without validators, from a client that
			 * sent none either (one that did may take it, as
			 * before): nothing to send the client, and the stored
			 * copy, if any, stays */
			snprintf(f->why, sizeof f->why, "the origin answered 304 Not Modified to a "
			         "request without validators");
			return 0;
		}
		if (publish(f) < 0)
			return 0;
		/* libcurl leaves the chunked framing to us (fetch_job), where
		 * it sees "chunked" among the transfer codings */
		if (headers_list_has(&f->head.headers, "Transfer-Encoding", "chunked")) {
			chunked_init(&f->ch, append_body, f);
			f->dechunk = 1;
		}
		return len;
	}
	return 0;
}

/* Write the bytes appended since the last time for the readers parked on
 * the entry (entry_pump). libcurl hands the body over in pieces of at most
 * 16 KiB; this runs after each pass of its transfer loop (after_read: its
 * progress callback, which libcurl 7.88 calls after every pass; a pass may
 * read more than once while the socket stays readable), and in any case
 * every FETCH_READ_SIZE bytes. Reads take whatever the origin socket
 * holds, up to FETCH_READ_SIZE: one piece as it
 * arrives while the fetch keeps up, more at once when it falls behind, so
 * the writes grow exactly when CPU is short. Measured with bench/fanout.c
 * (1,000 readers, 4 MiB): 16 KiB writes cost ~0.75 s of CPU, 64 KiB ones
 * ~0.42 s, 128 KiB ~0.35 s, 256 KiB ~0.32 s; in a corrald herd, pumps of
 * 128 and 256 KiB cost about the same per byte (bench/README.md). No byte
 * is held back to make a write bigger: a slow trickle still streams at once
 * (holding reads back to grow the writes made the herd's last byte later). */
#define FETCH_READ_SIZE (256 * 1024)
/* Parked readers hold at most the last hand-out and what came since (each
 * under FETCH_READ_SIZE plus one 16 KiB piece): a transit fetch waiting in
 * entry_append for readers to drain must never be waiting for them, or it
 * would wait for its own next pump. */
_Static_assert(2 * (FETCH_READ_SIZE + 16 * 1024) < TRANSIT_MAX,
               "parked readers alone could hold a transit fetch back");
static void pump(void *arg);

static void pump_if_due(struct fetch *f)
{
	if (f->unpumped >= FETCH_READ_SIZE)
		pump(f);
}

static void pump(void *arg)
{
	struct fetch *f = arg;
	/* body_done: the body is whole, and entry_finish writes these last
	 * bytes and its end together, one write for each parked reader, as
	 * soon as libcurl returns. Not here: libcurl first puts the origin
	 * connection back for the next request, which a client that has the
	 * whole response may send at once. */
	if (f->e == NULL || f->body_done || f->unpumped == 0)
		return;
	f->unpumped = 0;
	entry_pump(f->e);
}

static size_t on_body(char *buf, size_t size, size_t n, void *ud)
{
	struct fetch *f = ud;
	size_t len = size * n;
	if (f->e == NULL || len == 0)
		return len;
	if (f->dechunk) {
		if (chunked_feed(&f->ch, buf, len) < 0) {
			if (f->ch.error)
				snprintf(f->why, sizeof f->why,
				         "malformed chunked framing from the origin: %s",
				         f->ch.error);
			return 0;
		}
		f->body_done = chunked_done(&f->ch);
		f->u.after_body = chunked_in_trailers(&f->ch);
	} else if (append_body(f, buf, len) < 0) {
		return 0;
	}
	if (f->unpumped >= FETCH_READ_SIZE)
		pump(f);
	if (!f->u.after_body)
		upstream_touch(&f->u); /* time spent waiting for readers is not a stall */
	return len;
}

/* One GET to the origin for the fetch, with validators when `conditional`
 * (the header list goes in *hdrs, for the caller to free). */
static CURLcode perform(struct fetch *f, struct curl_slist **hdrs)
{
	if (upstream_request_headers("GET", &f->req, 0, &f->fw, 1, hdrs) < 0 ||
	    (f->conditional && (*hdrs = revalidate_headers(*hdrs, f->validate)) == NULL))
		return CURLE_OUT_OF_MEMORY;
	curl_easy_setopt(f->curl, CURLOPT_URL, f->url);
	curl_easy_setopt(f->curl, CURLOPT_HTTPHEADER, *hdrs);
	curl_easy_setopt(f->curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(f->curl, CURLOPT_HEADERDATA, f);
	curl_easy_setopt(f->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(f->curl, CURLOPT_WRITEDATA, f);
	stats_inc(STAT_upstream_requests_total);
	f->request_time = time(NULL);
	return curl_easy_perform(f->curl);
}

/* Would another try now meet the same failure? Then the requests that
 * waited for this one share its answer (cache_fail): a timeout (connect or
 * no progress), a refused destination, DNS, a refused connection, a TLS
 * certificate or handshake, or the origin's response itself. Not a reset
 * or a connection closed without a response, which the next try on a new
 * connection may not meet (the shared design's hand-off to one waiter). */
static int shared_failure(CURLcode rc, int status, const struct fetch *f)
{
	if (f->stale_status)
		return 0; /* the origin's 5xx, for the starter's stored copy to stand
		             in for: another waiter must see the 5xx itself (its try) */
	if (status == 403 || status == 504 || f->u.stalled)
		return 1;
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_WRITE_ERROR: /* on_header refused the response (f->why) */
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return 1;
	default:
		return 0;
	}
}

static void fetch_job(void *arg)
{
	struct fetch *f = arg;
	struct curl_slist *hdrs = NULL;
	CURLcode rc = CURLE_OUT_OF_MEMORY;

	f->curl = upstream_easy(f->cfg, &f->u);
	f->u.after_read = pump;
	f->u.after_read_arg = f;
	/* reads of up to FETCH_READ_SIZE (libcurl's default is 16 KiB). Only
	 * here: a fetch is one per key, a pass one per client. */
	if (f->curl) {
		curl_easy_setopt(f->curl, CURLOPT_BUFFERSIZE, (long)FETCH_READ_SIZE);
		/* a chunked body comes framed, to know its end as it arrives
		 * (chunked.h); libcurl still finds the end for itself */
		curl_easy_setopt(f->curl, CURLOPT_HTTP_TRANSFER_DECODING, 0L);
	}
	if (f->curl) {
		stats_inc(STAT_cache_fetches_total);
		rc = perform(f, &hdrs);
	}
	if (f->ask_again && f->e == NULL) {
		/* a 304 for another representation than the stored one
		 * (revalidate_matches): the same request without validators */
		log_info("%s: the origin's 304 names another representation; asking again",
		         f->url);
		f->ask_again = f->conditional = 0;
		f->why[0] = '\0';
		resphead_free(&f->head);
		resphead_init(&f->head);
		curl_slist_free_all(hdrs);
		hdrs = NULL;
		rc = perform(f, &hdrs);
	}

	if (f->e != NULL) {
		if (rc == CURLE_OK || f->body_done) {
			/* writes what is left for the parked readers, and the
			 * end with it (an error after the body's end loses
			 * nothing of it) */
			entry_finish(f->e, ENTRY_COMPLETE);
		} else {
			/* broke off after the head: readers end truncated, nobody
			 * gets this entry again */
			cache_unstore(f->e);
			entry_finish(f->e, ENTRY_FAILED);
			if (!f->no_readers) {
				stats_inc(STAT_cache_fetch_aborts_total);
				stats_inc(STAT_upstream_truncated_total);
				log_warn("%s: upstream response cut short: %s", f->url,
				         f->why[0] ? f->why
				         : f->u.errbuf[0] ? f->u.errbuf : curl_easy_strerror(rc));
			}
		}
	} else {
		char why[384];
		int status = 500;
		if (f->curl)
			status = upstream_failure(f->curl, rc, &f->u, f->host, f->port, why, sizeof why);
		else
			snprintf(why, sizeof why, "out of memory");
		if (f->why[0]) {
			/* our own reason to drop the response (on_header) */
			status = 502;
			snprintf(why, sizeof why, "%s", f->why);
		}
		stats_inc(STAT_cache_fetch_failures_total);
		stats_inc(status == 403 ? STAT_requests_destination_denied_total
		          : status == 504 ? STAT_upstream_timeouts_total
		          : STAT_upstream_errors_total);
		log_info("%s: cache fetch failed: %d %s", f->url, status, why);
		if (status != 403 && f->starter && can_stand_in(f) &&
		    entry_attach(f->validate, f->starter) == 0) {
			/* the starter's answer: the stored copy, stale */
			entry_ref(f->validate);
			f->out->stale = f->validate;
			f->out->stale_status = f->stale_status ? f->stale_status : status;
		}
		cache_fail(f->h, status, why, shared_failure(rc, status, f), f->out);
	}
	if (f->curl)
		curl_easy_cleanup(f->curl);
	curl_slist_free_all(hdrs);
	fetch_free(f);
}

int fetch_start(struct exchange *x, struct keyhead *h, struct entry_reader *starter,
                struct fetch_outcome *out, struct entry *validate, int refresh,
                int64_t request_sie)
{
	const struct request *r = &x->req;
	struct fetch *f = calloc(1, sizeof *f);
	if (f == NULL)
		goto fail;
	headers_init(&f->req);
	resphead_init(&f->head);
	f->cfg = config_get();
	upstream_forwarding_init(&f->fw, f->cfg, r->http_minor, x->s->peer_text);
	f->url = strdup(r->url);
	snprintf(f->host, sizeof f->host, "%s", x->url.host);
	f->port = x->url.port;
	f->starter = starter;
	f->out = out ? out : &f->own_out;
	f->request_sie = starter ? request_sie : -1;
	if (validate) {
		int conditional = headers_get(&validate->headers, "ETag") ||
		                  headers_get(&validate->headers, "Last-Modified");
		/* a reload never gets the copy it came to replace; the age
		 * is checked again when the fetch fails (can_stand_in) */
		int may = !refresh && policy_stale_if_error(&validate->headers,
		                                            validate->freshness_lifetime, 0,
		                                            f->request_sie);
		if ((conditional || may) && entry_attach(validate, &f->validate_rd) == 0) {
			entry_ref(validate); /* else its body is going: a plain miss */
			f->validate = validate;
			f->conditional = conditional;
			f->may_stand_in = may;
		}
	}
	if (f->url == NULL)
		goto fail;
	if (headers_copy(&f->req, &r->headers) < 0)
		goto fail;
	cache_head_hold(h);
	f->h = h;
	if (pool_submit_first(fetch_job, f) < 0)
		goto fail;
	return 0;
fail:
	if (f)
		fetch_free(f);
	struct fetch_outcome nobodys;
	cache_fail(h, 503, "the proxy could not start an upstream fetch (out of memory or "
	           "no thread for it)", 0, out ? out : &nobodys);
	return -1;
}

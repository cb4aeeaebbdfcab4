/*
 * test_revalidate.c — unit tests for revalidate.h: the entry a 304 makes of
 * a stored response (RFC 9111 4.3.4: the 304's fields replace the stored
 * ones of the same name, the framing and the old Age never come through, a
 * 304 without Date is dated now), and the validators a fetch sends.
 *
 * Prints one line per failed check and then "revalidate: N passed, M
 * failed"; exits non-zero when anything failed.
 */
#define _GNU_SOURCE
#include "corral/revalidate.h"
#include "corral/policy.h"

#include <stdio.h>
#include <string.h>

#include "check.h"

static void add(struct http_headers *h, const char *name, const char *value)
{
	headers_add(h, name, strlen(name), value, strlen(value));
}

/* Feed a head's lines to a resphead as libcurl would. */
static void feed(struct resphead *h, const char *const *lines)
{
	resphead_init(h);
	for (; *lines; lines++) {
		char line[256];
		snprintf(line, sizeof line, "%s\r\n", *lines);
		resphead_line(h, line, strlen(line));
	}
	resphead_line(h, "\r\n", 2);
}

static int count(const struct http_headers *h, const char *name)
{
	int n = 0;
	for (int i = 0; i < h->n; i++)
		n += strcasecmp(h->v[i].name, name) == 0;
	return n;
}

static struct entry *stored_entry(void)
{
	struct entry *e = entry_new();
	e->status = 200;
	strcpy(e->reason, "OK");
	add(&e->headers, "Content-Type", "text/plain");
	add(&e->headers, "Cache-Control", "max-age=1");
	add(&e->headers, "X-A", "old");
	add(&e->headers, "X-A", "old too");
	add(&e->headers, "ETag", "\"e1\"");
	add(&e->headers, "Date", "Sun, 06 Nov 1994 08:49:37 GMT");
	add(&e->headers, "Age", "5");
	add(&e->headers, "Vary", "Accept-Language");
	add(&e->vary_req, "Accept-Language", "fr");
	e->vary = strdup("Accept-Language");
	e->content_length = 8;
	strcpy(e->upstream, "192.0.2.1");
	return e;
}

static void test_merge(void)
{
	struct entry *old = stored_entry();
	struct resphead h;
	static const char *const not_modified[] = {
		"HTTP/1.1 304 Not Modified", "Cache-Control: max-age=60", "X-A: new",
		"ETag: \"e1\"", "Content-Length: 0", "Connection: close", NULL,
	};
	feed(&h, not_modified);
	struct entry *e = revalidate_entry(old, &h, 1000, 1002);
	if (!CHECK(e != NULL))
		return;
	CHECK_INT(e->status, 200);
	CHECK_STR(e->reason, "OK");
	CHECK_STR(headers_get(&e->headers, "Content-Type"), "text/plain");
	CHECK_STR(headers_get(&e->headers, "Cache-Control"), "max-age=60");
	CHECK_STR(headers_get(&e->headers, "X-A"), "new");
	CHECK_INT(count(&e->headers, "X-A"), 1);        /* both old lines replaced */
	CHECK_INT(count(&e->headers, "ETag"), 1);
	CHECK_INT(count(&e->headers, "Content-Length"), 0); /* framing: never from a 304 */
	CHECK_INT(count(&e->headers, "Connection"), 0);
	CHECK_INT(count(&e->headers, "Age"), 0);        /* the old response's */
	CHECK_INT(e->age_value, -1);
	/* no Date in the 304: dated when it came */
	char now[POLICY_DATE_LEN];
	policy_format_date(1002, now);
	CHECK_STR(headers_get(&e->headers, "Date"), now);
	CHECK_INT(count(&e->headers, "Date"), 1);
	CHECK_INT(e->date_value, 1002);
	CHECK_INT(e->request_time, 1000);
	CHECK_INT(e->response_time, 1002);
	CHECK_INT(e->content_length, 8);
	CHECK_STR(e->vary, "Accept-Language");
	CHECK_STR(headers_get(&e->vary_req, "Accept-Language"), "fr");
	CHECK_STR(e->upstream, "192.0.2.1");
	/* the serialised head has a length, no NUL */
	CHECK(e->wire_head != NULL && memmem(e->wire_head, e->wire_head_len, "X-A: new\r\n", 10) &&
	      !memmem(e->wire_head, e->wire_head_len, "old", 3));
	entry_unref(&e);
	resphead_free(&h);

	/* the 304's own Date and Age */
	static const char *const dated[] = {
		"HTTP/1.1 304 Not Modified", "Date: Mon, 07 Nov 1994 08:49:37 GMT", "Age: 3", NULL,
	};
	feed(&h, dated);
	e = revalidate_entry(old, &h, 1000, 1002);
	if (CHECK(e != NULL)) {
		CHECK_STR(headers_get(&e->headers, "Date"), "Mon, 07 Nov 1994 08:49:37 GMT");
		CHECK_INT(count(&e->headers, "Date"), 1);
		CHECK_INT(e->date_value, 784198177);
		CHECK_INT(e->age_value, 3);
		CHECK_STR(headers_get(&e->headers, "Cache-Control"), "max-age=1"); /* kept */
		entry_unref(&e);
	}
	resphead_free(&h);
	entry_unref(&old);
}

static void test_validators(void)
{
	struct entry *e = stored_entry();
	struct curl_slist *l = revalidate_headers(NULL, e);
	CHECK(l != NULL && strcmp(l->data, "If-None-Match: \"e1\"") == 0 && l->next == NULL);
	curl_slist_free_all(l);
	add(&e->headers, "Last-Modified", "Sat, 05 Nov 1994 08:49:37 GMT");
	l = curl_slist_append(NULL, "Accept:");
	l = revalidate_headers(l, e);
	CHECK(l != NULL && l->next && l->next->next &&
	      strcmp(l->next->next->data, "If-Modified-Since: Sat, 05 Nov 1994 08:49:37 GMT") == 0);
	curl_slist_free_all(l);
	entry_unref(&e);
}

/* Which 304 may update the stored response (RFC 9111 4.3.4) */
static void test_matches(void)
{
	struct entry *e = stored_entry(); /* ETag "e1" */
	struct resphead h;
#define MATCHES(...) (feed(&h, (const char *const[]){ "HTTP/1.1 304 Not Modified", \
	                                                  __VA_ARGS__, NULL }), \
	                   rc = revalidate_matches(e, &h), resphead_free(&h), rc)
	int rc;
	CHECK(MATCHES("ETag: \"e1\""));
	CHECK(!MATCHES("ETag: \"e2\""));
	CHECK(MATCHES("ETag: W/\"e1\"")); /* weak comparison */
	CHECK(!MATCHES("ETag: W/\"e2\""));
	CHECK(MATCHES("Cache-Control: max-age=5")); /* no validator: updates */
	CHECK(MATCHES("Last-Modified: Sat, 05 Nov 1994 08:49:37 GMT")); /* none stored */
	add(&e->headers, "Last-Modified", "Sat, 05 Nov 1994 08:49:37 GMT");
	CHECK(MATCHES("Last-Modified: Sat, 05 Nov 1994 08:49:37 GMT"));
	CHECK(!MATCHES("Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT"));
	CHECK(!MATCHES("Last-Modified: garbage"));
	entry_unref(&e);
	/* a stored weak tag: compared weakly too (nginx's gzip weakens the
	 * 200's tag, not its 304's) */
	e = entry_new();
	add(&e->headers, "ETag", "W/\"e1\"");
	CHECK(MATCHES("ETag: \"e1\""));
	CHECK(MATCHES("ETag: W/\"e1\""));
	CHECK(!MATCHES("ETag: \"e2\""));
	CHECK(!MATCHES("Cache-Control: max-age=5", "ETag: \"x\""));
	entry_unref(&e);
	/* no ETag stored, one in the 304 */
	e = entry_new();
	CHECK(!MATCHES("ETag: \"e1\""));
	entry_unref(&e);
#undef MATCHES
}

int main(void)
{
	test_merge();
	test_validators();
	test_matches();
	return check_summary("revalidate");
}

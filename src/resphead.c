/*
 * resphead.c — assembling an upstream response head from libcurl's header
 * lines (see resphead.h).
 */
#include "corral/resphead.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void resphead_init(struct resphead *h)
{
	memset(h, 0, sizeof *h);
	headers_init(&h->headers);
}

void resphead_free(struct resphead *h)
{
	headers_free(&h->headers);
}

static void status_line(struct resphead *h, const char *buf, size_t l)
{
	headers_free(&h->headers);
	headers_init(&h->headers);
	h->in_head = 1;
	const char *sp = memchr(buf, ' ', l);
	h->status = sp ? atoi(sp + 1) : 0;
	const char *rs = sp ? memchr(sp + 1, ' ', l - (size_t)(sp + 1 - buf)) : NULL;
	size_t rlen = rs ? l - (size_t)(rs + 1 - buf) : 0;
	if (rlen >= sizeof h->reason)
		rlen = sizeof h->reason - 1;
	if (rs)
		memcpy(h->reason, rs + 1, rlen);
	h->reason[rlen] = '\0';
	if (rlen == 0)
		snprintf(h->reason, sizeof h->reason, "%s", http_reason(h->status));
}

enum resphead_event resphead_line(struct resphead *h, const char *buf, size_t len)
{
	size_t l = len;
	while (l > 0 && (buf[l - 1] == '\r' || buf[l - 1] == '\n'))
		l--;
	if (h->final)
		return RESPHEAD_TRAILER;
	if (l >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
		status_line(h, buf, l);
		return RESPHEAD_MORE;
	}
	if (!h->in_head)
		return RESPHEAD_MORE;
	if (l == 0) {
		h->in_head = 0;
		if (h->status >= 100 && h->status < 200)
			return RESPHEAD_INTERIM;
		h->final = 1;
		return RESPHEAD_FINAL;
	}
	if ((buf[0] == ' ' || buf[0] == '\t') && h->headers.n > 0) {
		/* obsolete line folding: join to the previous value */
		struct http_header *last = &h->headers.v[h->headers.n - 1];
		size_t old = strlen(last->value);
		char *v = realloc(last->value, old + l + 1);
		if (v == NULL)
			return RESPHEAD_NOMEM;
		v[old] = ' ';
		memcpy(v + old + 1, buf + 1, l - 1);
		v[old + l] = '\0';
		last->value = v;
		return RESPHEAD_MORE;
	}
	const char *colon = memchr(buf, ':', l);
	if (colon == NULL || colon == buf)
		return RESPHEAD_MORE; /* not a header line: drop it */
	if (headers_add(&h->headers, buf, (size_t)(colon - buf), colon + 1,
	                l - (size_t)(colon + 1 - buf)) < 0)
		return RESPHEAD_NOMEM;
	return RESPHEAD_MORE;
}

int resphead_end_to_end(const struct resphead *h, struct http_headers *out)
{
	for (int i = 0; i < h->headers.n; i++) {
		const char *name = h->headers.v[i].name, *value = h->headers.v[i].value;
		if (http_is_hop_by_hop(&h->headers, name) ||
		    strcasecmp(name, "Content-Length") == 0 ||
		    strcasecmp(name, "Transfer-Encoding") == 0)
			continue;
		if (headers_add(out, name, strlen(name), value, strlen(value)) < 0)
			return -1;
	}
	return 0;
}

/* Content-Length values that disagree, in one line or across lines. */
static int lengths_conflict(const struct http_headers *hh)
{
	const char *first = NULL;
	size_t first_n = 0;
	for (int i = 0; i < hh->n; i++) {
		if (strcasecmp(hh->v[i].name, "Content-Length") != 0)
			continue;
		const char *p = hh->v[i].value, *tok;
		size_t n;
		while ((p = http_list_next(p, &tok, &n)) != NULL) {
			if (first == NULL) {
				first = tok;
				first_n = n;
			} else if (n != first_n || memcmp(tok, first, n) != 0) {
				return 1;
			}
		}
	}
	return 0;
}

const char *resphead_framing_error(const struct resphead *h, char *why, size_t len)
{
	const struct http_headers *hh = &h->headers;
	int has_te = 0;
	for (int i = 0; i < hh->n; i++) {
		if (strcasecmp(hh->v[i].name, "Transfer-Encoding") != 0)
			continue;
		has_te = 1;
		const char *p = hh->v[i].value, *tok;
		size_t n;
		while ((p = http_list_next(p, &tok, &n)) != NULL) {
			if (n == 7 && strncasecmp(tok, "chunked", 7) == 0)
				continue;
			snprintf(why, len, "the origin sent the transfer coding '%.*s', which corral "
			         "did not ask for and does not decode", n > 40 ? 40 : (int)n, tok);
			return why;
		}
	}
	if (!has_te && lengths_conflict(hh)) {
		snprintf(why, len, "the origin sent Content-Length values that disagree");
		return why;
	}
	return NULL;
}

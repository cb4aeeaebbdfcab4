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

/* Control characters but HTAB as spaces, in place (RFC 9112 2.2: a bare CR
 * is invalid or a space; so is any other CTL for the clients behind us). */
static void ctl_to_space(char *s)
{
	for (; *s; s++)
		if (((unsigned char)*s < ' ' && *s != '\t') || *s == 0x7f)
			*s = ' ';
}

/* A field name: 1*tchar (RFC 9110 5.6.2). */
static int is_token(const char *s, size_t n)
{
	static const char tchar_punct[] = "!#$%&'*+-.^_`|~";
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
		      (c != '\0' && strchr(tchar_punct, c))))
			return 0;
	}
	return 1;
}

static void status_line(struct resphead *h, const char *buf, size_t l)
{
	headers_free(&h->headers);
	headers_init(&h->headers);
	h->in_head = 1;
	h->bytes = 0;
	h->bad = NULL;
	h->http10 = l >= 8 && memcmp(buf, "HTTP/1.0", 8) == 0;
	/* status-code = 3DIGIT (RFC 9112 4), valid in 100..599 (RFC 9110 15:
	 * a client treats others as a 5xx, so this is a 502 rather than a
	 * status relayed as "HTTP/1.1 600" or, from atoi, "HTTP/1.1 0") */
	const char *end = buf + l;
	const char *code = memchr(buf, ' ', l);
	while (code && code < end && *code == ' ')
		code++; /* one SP, or more as libcurl reads it */
	size_t digits = 0;
	h->status = 0;
	while (code && code + digits < end && digits < 4 && code[digits] >= '0' &&
	       code[digits] <= '9')
		h->status = h->status * 10 + (code[digits++] - '0');
	if (digits != 3 || h->status < 100 || h->status > 599) {
		h->status = 0;
		h->bad = "the origin's status line has no valid status code (three digits, "
		         "100 to 599)";
	}
	/* the reason: after the code and one SP ("200OK" has none) */
	const char *rs = code && code + digits < end && code[digits] == ' ' ? code + digits
	                                                                   : NULL;
	size_t rlen = rs ? (size_t)(end - (rs + 1)) : 0;
	if (rlen >= sizeof h->reason)
		rlen = sizeof h->reason - 1;
	if (rs)
		memcpy(h->reason, rs + 1, rlen);
	h->reason[rlen] = '\0';
	if (rlen == 0)
		snprintf(h->reason, sizeof h->reason, "%s", http_reason(h->status));
	ctl_to_space(h->reason);
}

enum resphead_event resphead_line(struct resphead *h, const char *buf, size_t len)
{
	size_t l = len;
	while (l > 0 && (buf[l - 1] == '\r' || buf[l - 1] == '\n'))
		l--;
	if (h->final)
		return RESPHEAD_TRAILER;
	/* a status line only where a head begins: libcurl takes "HTTP/1.1
	 * 200: x" inside a head for a field, and starting a new head there
	 * would drop the fields before it (Transfer-Encoding: chunked) that
	 * libcurl frames the body by, so that corral relayed it with a later
	 * Content-Length and the rest of the body became a response of the
	 * origin's choosing on the client's connection. Inside a head the
	 * line's name is not a token: a 502. */
	if (!h->in_head && l >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
		status_line(h, buf, l);
		return RESPHEAD_MORE;
	}
	if (!h->in_head)
		return RESPHEAD_MORE;
	h->bytes += len;
	if (h->bytes > RESPHEAD_MAX && l > 0) {
		h->bad = "the origin's response head is larger than 64 KiB";
		return RESPHEAD_MORE; /* kept no more: linear whatever comes */
	}
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
		ctl_to_space(v);
		last->value = v;
		return RESPHEAD_MORE;
	}
	const char *colon = memchr(buf, ':', l);
	if (colon == NULL || colon == buf)
		return RESPHEAD_MORE; /* not a header line: drop it */
	if (!is_token(buf, (size_t)(colon - buf))) {
		h->bad = "the origin sent a header field name that is not a token, or with "
		         "whitespace before its colon";
		return RESPHEAD_MORE;
	}
	if (headers_add(&h->headers, buf, (size_t)(colon - buf), colon + 1,
	                l - (size_t)(colon + 1 - buf)) < 0)
		return RESPHEAD_NOMEM;
	ctl_to_space(h->headers.v[h->headers.n - 1].value);
	return RESPHEAD_MORE;
}

int resphead_end_to_end(const struct resphead *h, struct http_headers *out)
{
	struct http_hop hop;
	if (http_hop_init(&hop, &h->headers) < 0)
		return -1; /* resphead_framing_error refuses it first */
	for (int i = 0; i < h->headers.n; i++) {
		const char *name = h->headers.v[i].name, *value = h->headers.v[i].value;
		if (http_hop_has(&hop, name) ||
		    strcasecmp(name, "Content-Length") == 0 ||
		    strcasecmp(name, "Transfer-Encoding") == 0)
			continue;
		if (headers_add(out, name, strlen(name), value, strlen(value)) < 0)
			return -1;
	}
	return 0;
}

/* Content-Length values: 0 when all are 1*DIGIT (18 digits at most: an
 * int64) and the same, 1 when they disagree, -1 when one is invalid. */
static int lengths_check(const struct http_headers *hh)
{
	const char *first = NULL;
	size_t first_n = 0;
	for (int i = 0; i < hh->n; i++) {
		if (strcasecmp(hh->v[i].name, "Content-Length") != 0)
			continue;
		const char *p = hh->v[i].value, *tok;
		size_t n;
		int any = 0;
		while ((p = http_list_next(p, &tok, &n)) != NULL) {
			any = 1;
			for (size_t k = 0; k < n; k++)
				if (tok[k] < '0' || tok[k] > '9')
					return -1;
			if (n > 18)
				return -1;
			if (first == NULL) {
				first = tok;
				first_n = n;
			} else if (n != first_n || memcmp(tok, first, n) != 0) {
				return 1;
			}
		}
		if (!any)
			return -1; /* "Content-Length:" with no value */
	}
	return 0;
}

const char *resphead_framing_error(const struct resphead *h, char *why, size_t len)
{
	const struct http_headers *hh = &h->headers;
	int has_te = 0;
	struct http_hop hop;
	if (h->bad) {
		snprintf(why, len, "%s", h->bad);
		return why;
	}
	if (http_hop_init(&hop, hh) < 0) {
		snprintf(why, len, "the origin sent more than %d Connection options",
		         HTTP_CONNECTION_OPTIONS_MAX);
		return why;
	}
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
	int lengths = has_te ? 0 : lengths_check(hh);
	if (lengths != 0) {
		snprintf(why, len, lengths > 0 ? "the origin sent Content-Length values that disagree"
		                               : "the origin sent an invalid Content-Length");
		return why;
	}
	return NULL;
}

/*
 * http.c — header lists, hop-by-hop rules and URL parsing (see http.h).
 */
#include "corral/http.h"
#include "corral/strbuf.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void headers_init(struct http_headers *h)
{
	h->v = NULL;
	h->n = h->cap = 0;
}

void headers_free(struct http_headers *h)
{
	for (int i = 0; i < h->n; i++) {
		free(h->v[i].name);
		free(h->v[i].value);
	}
	free(h->v);
	headers_init(h);
}

int headers_copy(struct http_headers *to, const struct http_headers *from)
{
	for (int i = 0; i < from->n; i++)
		if (headers_add(to, from->v[i].name, strlen(from->v[i].name), from->v[i].value,
		                strlen(from->v[i].value)) < 0)
			return -1;
	return 0;
}

int headers_add(struct http_headers *h, const char *name, size_t nlen,
                const char *value, size_t vlen)
{
	if (h->n == h->cap) {
		int cap = h->cap ? h->cap * 2 : 16;
		struct http_header *v = realloc(h->v, (size_t)cap * sizeof *v);
		if (v == NULL)
			return -1;
		h->v = v;
		h->cap = cap;
	}
	/* trim optional whitespace around the value */
	while (vlen > 0 && (*value == ' ' || *value == '\t')) {
		value++;
		vlen--;
	}
	while (vlen > 0 && (value[vlen - 1] == ' ' || value[vlen - 1] == '\t'))
		vlen--;
	char *n = strndup(name, nlen), *v = strndup(value, vlen);
	if (n == NULL || v == NULL) {
		free(n);
		free(v);
		return -1;
	}
	h->v[h->n].name = n;
	h->v[h->n].value = v;
	h->n++;
	return 0;
}

const char *headers_get(const struct http_headers *h, const char *name)
{
	for (int i = 0; i < h->n; i++)
		if (strcasecmp(h->v[i].name, name) == 0)
			return h->v[i].value;
	return NULL;
}

char *headers_join(const struct http_headers *h, const char *name)
{
	size_t len = 0;
	int n = 0;
	for (int i = 0; i < h->n; i++)
		if (strcasecmp(h->v[i].name, name) == 0) {
			len += strlen(h->v[i].value) + 2;
			n++;
		}
	if (n == 0)
		return NULL;
	char *out = malloc(len + 1), *p = out;
	if (out == NULL)
		return NULL;
	for (int i = 0; i < h->n; i++)
		if (strcasecmp(h->v[i].name, name) == 0) {
			size_t l = strlen(h->v[i].value);
			if (p != out) {
				memcpy(p, ", ", 2);
				p += 2;
			}
			memcpy(p, h->v[i].value, l);
			p += l;
		}
	*p = '\0';
	return out;
}

const char *http_list_next(const char *p, const char **tok, size_t *len)
{
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			return NULL;
		const char *start = p;
		while (*p && *p != ',' && *p != ' ' && *p != '\t')
			p++;
		*tok = start;
		*len = (size_t)(p - start);
		return p;
	}
}

int http_list_has(const char *list, const char *token)
{
	size_t tlen = strlen(token);
	const char *p = list;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *start = p;
		while (*p && *p != ',')
			p++;
		const char *end = p;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if ((size_t)(end - start) == tlen && strncasecmp(start, token, tlen) == 0)
			return 1;
	}
	return 0;
}

int headers_list_has(const struct http_headers *h, const char *name, const char *token)
{
	for (int i = 0; i < h->n; i++)
		if (strcasecmp(h->v[i].name, name) == 0 && http_list_has(h->v[i].value, token))
			return 1;
	return 0;
}

static const char *const hop_by_hop[] = {
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization",
	"Proxy-Authenticate", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
};

int http_hop_init(struct http_hop *hop, const struct http_headers *h)
{
	hop->n = 0;
	for (int i = 0; i < h->n; i++) {
		/* (on every request: the first letter before strcasecmp) */
		if ((h->v[i].name[0] | 0x20) != 'c' || strcasecmp(h->v[i].name, "Connection") != 0)
			continue;
		const char *p = h->v[i].value, *tok;
		size_t len;
		while ((p = http_list_next(p, &tok, &len)) != NULL) {
			if (hop->n == HTTP_CONNECTION_OPTIONS_MAX)
				return -1;
			hop->opt[hop->n].p = tok;
			hop->opt[hop->n++].len = len;
		}
	}
	return 0;
}

int http_hop_has(const struct http_hop *hop, const char *name)
{
	for (size_t i = 0; i < sizeof hop_by_hop / sizeof hop_by_hop[0]; i++)
		if (strcasecmp(name, hop_by_hop[i]) == 0)
			return 1;
	size_t n = strlen(name);
	for (int i = 0; i < hop->n; i++)
		if (hop->opt[i].len == n && strncasecmp(hop->opt[i].p, name, n) == 0)
			return 1;
	return 0;
}

const char *http_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "";
	}
}

/* host[:port] at s (up to end); IPv6 in brackets. Returns 0 or -1. */
static int parse_hostport(const char *s, const char *end, char *host, size_t hostlen,
                          int *port, int *port_given)
{
	const char *h, *hend, *p;
	if (s < end && *s == '[') {
		h = s + 1;
		hend = memchr(h, ']', (size_t)(end - h));
		if (hend == NULL)
			return -1;
		p = hend + 1;
		if (p < end && *p != ':')
			return -1;
	} else {
		h = s;
		hend = memchr(s, ':', (size_t)(end - s));
		if (hend == NULL)
			hend = end;
		p = hend;
	}
	size_t len = (size_t)(hend - h);
	if (len == 0 || len >= hostlen)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)h[i];
		if (!(isalnum(c) || c == '-' || c == '.' || c == '_' || c == ':' || c == '%'))
			return -1;
		host[i] = (char)tolower(c);
	}
	host[len] = '\0';
	*port_given = 0;
	if (p < end && *p == ':') {
		p++;
		if (p == end)
			return 0; /* "host:" means the default port */
		long v = 0;
		for (; p < end; p++) {
			if (!isdigit((unsigned char)*p))
				return -1;
			v = v * 10 + (*p - '0');
			if (v > 65535)
				return -1;
		}
		if (v == 0)
			return -1;
		*port = (int)v;
		*port_given = 1;
	}
	return 0;
}

int url_parse(const char *s, struct url *u)
{
	const char *rest;
	if (strncasecmp(s, "http://", 7) == 0) {
		strcpy(u->scheme, "http");
		u->port = 80;
		rest = s + 7;
	} else if (strncasecmp(s, "https://", 8) == 0) {
		strcpy(u->scheme, "https");
		u->port = 443;
		rest = s + 8;
	} else {
		return -1;
	}
	const char *end = rest + strcspn(rest, "/?#");
	if (memchr(rest, '@', (size_t)(end - rest)) != NULL)
		return -1; /* userinfo is not allowed in a proxy request */
	if (parse_hostport(rest, end, u->host, sizeof u->host, &u->port, &u->port_given) < 0)
		return -1;
	u->path = end;
	return 0;
}

int url_parse_authority(const char *s, char *host, size_t hostlen, int *port)
{
	int given = 0;
	*port = 0;
	if (parse_hostport(s, s + strlen(s), host, hostlen, port, &given) < 0 || !given)
		return -1;
	return 0;
}

int url_normalise(const struct url *u, char *out, size_t outlen)
{
	/* on every cacheable request: copies, not snprintf (two of them were
	 * 11 % of a 1 KiB hit's instructions) */
	int dflt = (strcmp(u->scheme, "http") == 0 && u->port == 80) ||
	           (strcmp(u->scheme, "https") == 0 && u->port == 443);
	int v6 = strchr(u->host, ':') != NULL;
	const char *path = *u->path && *u->path != '#' ? u->path : "/";
	if (outlen == 0)
		return -1;
	struct strbuf b = strbuf_on_cstr(out, outlen);
	strbuf_str(&b, u->scheme);
	strbuf_str(&b, v6 ? "://[" : "://");
	strbuf_str(&b, u->host);
	if (v6)
		strbuf_char(&b, ']');
	if (!dflt) {
		strbuf_char(&b, ':');
		strbuf_u64(&b, (uint64_t)(u->port < 0 ? 0 : u->port), 0, ' ');
	}
	if (*path == '?')
		strbuf_char(&b, '/');
	/* a fragment is the client's own business: never part of the key */
	strbuf_mem(&b, path, strcspn(path, "#"));
	if (b.cut)
		return -1;
	return (int)strbuf_cstr(&b);
}

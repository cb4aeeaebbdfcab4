/*
 * http.h — HTTP message pieces shared by the request reader, the forwarder and
 * the cache: header lists, hop-by-hop rules, absolute URLs. Pure functions on
 * caller-owned data; no shared state, no locks.
 */
#ifndef CORRAL_HTTP_H
#define CORRAL_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct http_header {
	char *name;
	char *value;
};

/* An ordered list of header fields, repeats kept. Owns its strings. */
struct http_headers {
	struct http_header *v;
	int n, cap;
};

void headers_init(struct http_headers *h);
void headers_free(struct http_headers *h);
int headers_add(struct http_headers *h, const char *name, size_t nlen,
                const char *value, size_t vlen);
/* Append every line of `from` to `to`, in order. Returns 0 or -1 (out of
 * memory: `to` keeps what was added). */
int headers_copy(struct http_headers *to, const struct http_headers *from);
/* First value of `name` (case-insensitive), or NULL. */
const char *headers_get(const struct http_headers *h, const char *name);

/* Every value of `name`, joined with ", " as RFC 9110 5.3 combines field
 * lines, in a malloc'd string; NULL when there is none (or out of memory). */
char *headers_join(const struct http_headers *h, const char *name);

/* The next token of a comma-separated list at `p`: sets *tok and *len and
 * returns where to go on from, or NULL when the list has no more tokens. */
const char *http_list_next(const char *p, const char **tok, size_t *len);

/* Is `token` in the comma-separated list `list` (case-insensitive)? */
int http_list_has(const char *list, const char *token);
/* Is `token` in any line of header `name` (both case-insensitive)? */
int headers_list_has(const struct http_headers *h, const char *name, const char *token);

/* The hop-by-hop fields of one message: the fixed set (Connection,
 * Keep-Alive, Proxy-Connection, Proxy-Authorization, Proxy-Authenticate, TE,
 * Trailer, Transfer-Encoding, Upgrade) and the options its Connection lines
 * name, gathered once so that filtering a message is linear in its fields
 * (asking "is it named in Connection?" of every field by scanning them all
 * again made a head of 60,000 fields cost 25 s of CPU). More than
 * HTTP_CONNECTION_OPTIONS_MAX options is refused: no sender needs that many. */
#define HTTP_CONNECTION_OPTIONS_MAX 32
struct http_hop {
	int n;
	struct { const char *p; size_t len; } opt[HTTP_CONNECTION_OPTIONS_MAX];
};
/* h's Connection options into hop (pointing into h: valid while h is
 * unchanged). Returns 0, or -1 when there are more than the max. */
int http_hop_init(struct http_hop *hop, const struct http_headers *h);
/* Is the field `name` hop-by-hop for the message hop was made from? */
int http_hop_has(const struct http_hop *hop, const char *name);

/* The standard reason phrase of a status code ("" when unknown). */
const char *http_reason(int status);

/* An absolute-form target: http://host[:port]/path?query */
struct url {
	char scheme[8];     /* "http" or "https", lower case */
	char host[256];     /* lower case; IPv6 without brackets */
	int port;           /* explicit or the scheme's default */
	int port_given;     /* the URL named a port */
	const char *path;   /* points into the parsed string: "/...", or "?..." or
	                       "#..." when the authority ends there, or "" */
};

/* Parse an absolute-form http/https URL. Returns 0, or -1 when it is not one. */
int url_parse(const char *s, struct url *u);

/* Parse an authority-form target (CONNECT host:port). Returns 0 or -1. */
int url_parse_authority(const char *s, char *host, size_t hostlen, int *port);

/* Normalised absolute URL: lower-case scheme and host, default port dropped,
 * empty path as "/". Writes at most outlen bytes; returns the length, or -1
 * when it does not fit. */
int url_normalise(const struct url *u, char *out, size_t outlen);

#endif

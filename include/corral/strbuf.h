/*
 * strbuf.h — building a string in a fixed buffer with copies and a digit
 * writer, for what every request formats: the cache key, the head's tail,
 * the access log line. snprintf did it before and was a third of a 1 KiB
 * hit's instructions (callgrind).
 *
 * Bytes that do not fit are dropped and `cut` is set; the caller decides
 * whether a cut string is an error (the cache key) or fine (a log line).
 * Nothing is NUL-terminated but by strbuf_cstr; strbuf_len gives the
 * length.
 */
#ifndef CORRAL_STRBUF_H
#define CORRAL_STRBUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct strbuf {
	char *start, *p, *end;
	int cut;             /* something did not fit */
};

/* Build into buf[0, size). */
static inline struct strbuf strbuf_on(char *buf, size_t size)
{
	return (struct strbuf){ buf, buf, buf + size, 0 };
}

/* Build a C string into buf[0, size), size > 0: one byte is kept for the
 * NUL that strbuf_cstr writes. */
static inline struct strbuf strbuf_on_cstr(char *buf, size_t size)
{
	return strbuf_on(buf, size - 1);
}

/* NUL-terminate what a strbuf_on_cstr builder made; returns its length. */
static inline size_t strbuf_cstr(struct strbuf *b)
{
	*b->p = '\0';
	return (size_t)(b->p - b->start);
}

static inline size_t strbuf_len(const struct strbuf *b)
{
	return (size_t)(b->p - b->start);
}

static inline void strbuf_mem(struct strbuf *b, const char *s, size_t n)
{
	size_t room = (size_t)(b->end - b->p);
	if (n > room) {
		n = room;
		b->cut = 1;
	}
	memcpy(b->p, s, n);
	b->p += n;
}

static inline void strbuf_str(struct strbuf *b, const char *s)
{
	strbuf_mem(b, s, strlen(s));
}

static inline void strbuf_char(struct strbuf *b, char c)
{
	if (b->p < b->end)
		*b->p++ = c;
	else
		b->cut = 1;
}

/* v in decimal, in at least `width` characters, padded on the left. */
static inline void strbuf_u64(struct strbuf *b, uint64_t v, int width, char pad)
{
	char d[20];
	int k = 0;
	do
		d[k++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	for (; width > k; width--)
		strbuf_char(b, pad);
	while (k > 0)
		strbuf_char(b, d[--k]);
}

#endif

/*
 * chunked.c — an origin's chunked body decoded as it arrives (see chunked.h
 * for why corral does this rather than libcurl, and why not with llhttp).
 *
 * A byte-at-a-time state machine for the framing; the data itself is handed
 * over in runs, as much of a chunk as a read holds.
 */
#include "corral/chunked.h"

#include <string.h>

void chunked_init(struct chunked *c, int (*on_data)(void *arg, const char *p, size_t n),
                  void *arg)
{
	memset(c, 0, sizeof *c);
	c->state = CHUNKED_SIZE;
	c->on_data = on_data;
	c->arg = arg;
}

static int fail(struct chunked *c, const char *why)
{
	c->state = CHUNKED_ERROR;
	c->error = why;
	return -1;
}

static int hex_value(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* The size line is over: data, or the trailers after the last chunk. */
static void size_line_done(struct chunked *c)
{
	c->left = c->size;
	c->state = c->size == 0 ? CHUNKED_TRAILER : CHUNKED_DATA;
	c->size = 0;
	c->digits = 0;
}

int chunked_feed(struct chunked *c, const char *p, size_t n)
{
	const char *end = p + n;
	while (p < end) {
		char ch = *p;
		switch (c->state) {
		case CHUNKED_SIZE: {
			int v = hex_value(ch);
			if (v >= 0) {
				if (c->size >> 59) /* times 16 would pass 2^63 */
					return fail(c, "a chunk size over 2^63");
				c->size = c->size * 16 + (uint64_t)v;
				c->digits++;
			} else if (c->digits == 0) {
				return fail(c, "a chunk size line without a hex size");
			} else if (ch == '\n') {
				size_line_done(c);
			} else {
				c->state = CHUNKED_SIZE_REST; /* ignored up to the LF */
			}
			p++;
			break;
		}
		case CHUNKED_SIZE_REST:
			if (ch == '\n')
				size_line_done(c);
			p++;
			break;
		case CHUNKED_DATA: {
			size_t run = (size_t)(end - p) < c->left ? (size_t)(end - p) : (size_t)c->left;
			if (c->on_data(c->arg, p, run) < 0) {
				c->state = CHUNKED_ERROR;
				return -1;
			}
			c->left -= run;
			p += run;
			if (c->left == 0)
				c->state = CHUNKED_DATA_CR;
			break;
		}
		case CHUNKED_DATA_CR:
		case CHUNKED_DATA_LF:
			/* any number of CRs, as libcurl took them */
			if (ch == '\n')
				c->state = CHUNKED_SIZE;
			else if (ch == '\r')
				c->state = CHUNKED_DATA_LF;
			else
				return fail(c, "no CRLF after a chunk's data");
			p++;
			break;
		case CHUNKED_TRAILER:
			if (++c->trailer_bytes > CHUNKED_TRAILERS_MAX)
				return fail(c, "a trailer section over 64 KiB");
			c->state = ch == '\n' ? CHUNKED_DONE
			           : ch == '\r' ? CHUNKED_END_LF : CHUNKED_TRAILER_REST;
			p++;
			break;
		case CHUNKED_TRAILER_REST:
			if (++c->trailer_bytes > CHUNKED_TRAILERS_MAX)
				return fail(c, "a trailer section over 64 KiB");
			if (ch == '\n')
				c->state = CHUNKED_TRAILER;
			p++;
			break;
		case CHUNKED_END_LF:
			if (ch == '\r')
				; /* more CRs, as after data */
			else if (ch != '\n')
				return fail(c, "no LF after the CR that ends the trailers");
			else
				c->state = CHUNKED_DONE;
			p++;
			break;
		case CHUNKED_DONE:
			return 0; /* not this body's */
		case CHUNKED_ERROR:
			return -1;
		}
	}
	return c->state == CHUNKED_ERROR ? -1 : 0;
}

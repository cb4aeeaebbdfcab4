/*
 * chunked.h — an origin's chunked body, decoded as it arrives, so that a
 * fetch knows the body has ended when its last bytes arrive rather than when
 * libcurl returns.
 *
 * Why: libcurl decodes chunked bodies itself, but says the body is whole only
 * when curl_easy_perform returns, after the fetch has already written the last
 * bytes to a herd's parked readers. The body's end (the last chunk corral
 * sends its own clients) then cost every parked reader a second write of 5
 * bytes: 1,000 sends after the origin's last byte. With
 * CURLOPT_HTTP_TRANSFER_DECODING off, libcurl hands over the framing as it
 * came (and still finds the end for itself), and this decoder gives the data
 * and the end in the same read: the last bytes and the end go out in one write.
 *
 * Why not llhttp, which parses the requests: version 8.1 (Debian 12) refuses
 * chunk lines RFC 9112 allows and libcurl accepts ("5 ;a=b", "5; a=b",
 * "5;a=b;flag", "5 " before the CRLF), so origins that worked would break.
 * This decoder accepts what libcurl's did: hex digits, then anything up to
 * the line's LF; data; CRs and an LF; after the last chunk, trailer lines up
 * to an empty line, dropped as libcurl's decoding dropped them for corral.
 * A trailer section over CHUNKED_TRAILERS_MAX is a framing error: an origin
 * that sends trailers without end cannot hold a fetch and its readers.
 */
#ifndef CORRAL_CHUNKED_H
#define CORRAL_CHUNKED_H

#include <stddef.h>
#include <stdint.h>

enum chunked_state {
	CHUNKED_SIZE,        /* hex digits of a chunk's size */
	CHUNKED_SIZE_REST,   /* extensions or spaces up to the LF */
	CHUNKED_DATA,        /* `left` data bytes */
	CHUNKED_DATA_CR,     /* the CRLF after the data */
	CHUNKED_DATA_LF,
	CHUNKED_TRAILER,     /* at the start of a trailer line (or the end) */
	CHUNKED_TRAILER_REST,
	CHUNKED_END_LF,      /* the CR of the empty line is in */
	CHUNKED_DONE,
	CHUNKED_ERROR,
};

#define CHUNKED_TRAILERS_MAX (64 * 1024)

struct chunked {
	enum chunked_state state;
	uint32_t trailer_bytes; /* of the trailer section so far */
	uint64_t size;       /* the size line's value so far */
	int digits;          /* of the size line so far */
	uint64_t left;       /* data bytes left in this chunk */
	const char *error;   /* what was wrong, when CHUNKED_ERROR */
	/* the decoded bytes; returns 0, or -1 to stop (chunked_feed fails) */
	int (*on_data)(void *arg, const char *p, size_t n);
	void *arg;
};

void chunked_init(struct chunked *c, int (*on_data)(void *arg, const char *p, size_t n),
                  void *arg);
/* Decode n more bytes of framing. Returns 0, or -1 on a framing error
 * (c->error says what) or when on_data returned -1 (c->error NULL). Bytes
 * after the body's end are ignored. */
int chunked_feed(struct chunked *c, const char *p, size_t n);
/* Whether the body's end (the last chunk and the trailers) is in. */
static inline int chunked_done(const struct chunked *c) { return c->state == CHUNKED_DONE; }
/* Whether the last chunk is in and the trailers are coming. */
static inline int chunked_in_trailers(const struct chunked *c)
{
	return c->state == CHUNKED_TRAILER || c->state == CHUNKED_TRAILER_REST ||
	       c->state == CHUNKED_END_LF;
}

#endif

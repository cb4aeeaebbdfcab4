/*
 * forward.h — pass a request upstream through libcurl and relay the response
 * to the client as it arrives (no cache involved).
 */
#ifndef CORRAL_FORWARD_H
#define CORRAL_FORWARD_H

struct exchange;

/* Forward x's request (absolute-form, already checked) and stream the answer.
 * On return x->status, x->bytes_out, x->close_after and the log fields are
 * set. */
void forward_run(struct exchange *x);

#endif

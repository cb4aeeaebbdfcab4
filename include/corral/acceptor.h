/*
 * acceptor.h — the listening sockets of the proxy port(s).
 */
#ifndef CORRAL_ACCEPTOR_H
#define CORRAL_ACCEPTOR_H

#include <event2/event.h>
#include "corral/config-t.h"

/* Bind every [proxy] listen address. Returns 0, or -1 with an error logged. */
int acceptor_start(struct event_base *base, const struct config *c);
/* Close the listening sockets (SIGTERM). */
void acceptor_stop(void);

#endif

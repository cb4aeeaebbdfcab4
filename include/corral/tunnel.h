/*
 * tunnel.h — CONNECT: two sockets spliced on the main event loop.
 */
#ifndef CORRAL_TUNNEL_H
#define CORRAL_TUNNEL_H

#include <event2/event.h>

struct exchange;

void tunnel_init(struct event_base *base);

/* Serve a CONNECT request: check the port against connect_ports, connect
 * (through libcurl: DNS cache, timeouts, destination filter, parent proxy),
 * answer 200 and hand both sockets to the loop (x->handed_off), or answer
 * an error. */
void tunnel_run(struct exchange *x);

#endif

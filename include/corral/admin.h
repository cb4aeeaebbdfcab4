/*
 * admin.h — the admin listener: GET /metrics (Prometheus text) and
 * GET /status, served by libevent's evhttp on the main loop.
 */
#ifndef CORRAL_ADMIN_H
#define CORRAL_ADMIN_H

#include <event2/event.h>
#include "corral/config-t.h"

int admin_start(struct event_base *base, const struct config *c);
void admin_stop(void);

#endif

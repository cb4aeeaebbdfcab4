/*
 * config.h — reading, validating and swapping the configuration.
 *
 * config_load() parses one ini file (inih) into a fresh struct config. It
 * never exits: on any error it returns NULL and writes into `err` a message
 * naming the file, the line, the key and what was expected, e.g.
 *   "/etc/corral/corral.ini:12: [proxy] client_timeout: expected a duration
 *    (ms, s, m, h, d), got 'soon'".
 *
 * The running config is one pointer (config_current), swapped on SIGHUP.
 * Readers take a reference with config_get() and drop it with config_put();
 * the old config is freed when its last reader is done.
 */
#ifndef CORRAL_CONFIG_H
#define CORRAL_CONFIG_H

#include "corral/config-t.h"

/* Fill `c` with every default. */
void config_defaults(struct config *c);

/* Parse `path`. Returns a new config (refcount 1) or NULL with `err` set. */
struct config *config_load(const char *path, char *err, size_t errlen);

/* Parse ini text held in memory; `name` stands for the file name in errors.
 * Used by config_load and by the unit tests. */
struct config *config_load_string(const char *text, const char *name,
                                  char *err, size_t errlen);

/* Value parsers, exported for the unit tests. Return 0 on success. */
int config_parse_size(const char *s, uint64_t *out);      /* 512, 64K, 256M, 1G */
int config_parse_duration(const char *s, int64_t *out_ms);/* 500ms, 10s, 2m, 1h; bare number = seconds */
int config_parse_bool(const char *s, int *out);           /* on/off, yes/no, true/false, 1/0 */
int config_parse_hostport(const char *s, struct config_listen *out); /* 1.2.3.4:80, [::1]:80 */
int config_parse_cidr(const char *s, struct config_cidr *out);       /* 10.0.0.0/8, ::1/128, 1.2.3.4 */

/* Does `sa` fall inside one of the config's allow CIDRs? */
int config_client_allowed(const struct config *c, const struct sockaddr *sa);
/* Is `port` among `p` ([proxy] connect_ports, http_ports)? */
int config_port_allowed(const struct config_ports *p, int port);

/* The running config. config_install() takes over the caller's reference
 * and drops the one held on the config it replaces; config_install(NULL) drops
 * the running config (at exit). config_get() returns NULL before the first
 * install. config_put(NULL) does nothing. */
struct config *config_get(void);
void config_put(struct config *c);
void config_install(struct config *c);

#endif

/*
 * auth.h — proxy authentication: HTTP Basic credentials (RFC 7617) checked
 * against an htpasswd file ([proxy] auth_file), as Squid's basic_ncsa_auth.
 *
 * The file is read with the config (at start and on SIGHUP) into a `struct
 * auth` that the config owns: a reload reads it again, and forgets every
 * credential verified so far. Hashes are checked with crypt(3) (libxcrypt):
 * bcrypt (htpasswd -B), SHA-256/512-crypt and yescrypt. A verified
 * credential is remembered (up to AUTH_REMEMBERED of them, by the header's
 * value), so only the first request with it pays for the hash. Safe from
 * any thread: the remembered credentials are under the auth's lock.
 */
#ifndef CORRAL_AUTH_H
#define CORRAL_AUTH_H

#include <stddef.h>

#define AUTH_REMEMBERED 4096

struct auth;

/* Read htpasswd file `path`: "user:hash" lines, blank lines and lines
 * starting with '#' skipped. NULL on error, with "PATH:LINE: why" (or
 * "PATH: why") in err. */
struct auth *auth_load(const char *path, char *err, size_t errlen);
void auth_free(struct auth *a);
/* A reload: the credentials `from` remembers go on in `to` for each user
 * whose hash is the same in both, so that a reload does not make every
 * browser's next request pay for a hash check again (behind a flood of
 * wrong passwords, seconds). `to` is not in use yet. */
void auth_carry(struct auth *to, struct auth *from);
/* How many users the file has. */
int auth_users(const struct auth *a);

/* The user whose credentials a Proxy-Authorization value carries ("Basic
 * BASE64(user:password)", the scheme in any case), or NULL when they are
 * missing, malformed, of another scheme, or do not match the file. The
 * name stays valid while `a` does. */
const char *auth_check(struct auth *a, const char *proxy_authorization);

/* The most hash checks that ran at once so far, and the bound (for the
 * tests). */
void auth_checks_seen(int *most, int *max);

/* Decode base64 `in` (RFC 4648, canonical: padded, unused bits zero, no
 * whitespace) into out
 * (at most outlen - 1 bytes, NUL-terminated). Returns the length, or -1 when
 * `in` is not base64 or does not fit. For the unit tests too. */
int auth_base64_decode(const char *in, char *out, size_t outlen);

#endif

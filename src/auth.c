/*
 * auth.c — proxy authentication against an htpasswd file (see auth.h).
 *
 * The users are sorted by name for bsearch. A credential is checked by its
 * hash only once: then its Proxy-Authorization value (the base64 after
 * "Basic") goes into `remembered`, a direct-mapped table of AUTH_REMEMBERED
 * slots, so that a browser's following requests cost a string compare. A
 * collision only makes a credential pay for its hash again.
 *
 * A hash check is the expensive part (milliseconds of CPU; yescrypt's 16
 * MiB of memory), and wrong credentials are checked every time they come,
 * so at most `checks_max` (the CPUs, at least 2) run at once: more wait
 * their turn (as Squid's fixed set of basic_ncsa_auth helpers queues them),
 * and a flood of wrong passwords costs that many CPUs, not all of memory.
 * Hashes dearer than bcrypt cost 14, 1,000,000 SHA-crypt rounds or
 * yescrypt's default are refused when the file is read: one request would
 * otherwise hold a CPU for minutes or days. A name that is not in the file
 * costs a hash too, of the dearest user's kind (`dummy`), so that a refusal
 * takes about as long whether the name exists or not (a file that mixes
 * kinds and costs still shows which users have the cheaper ones).
 */
#include "corral/auth.h"
#include "corral/stats.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define AUTH_FILE_MAX (1 << 20) /* an htpasswd file larger than 1 MiB is refused */
#define AUTH_LINE_MAX 1024
#define AUTH_TOKEN_MAX 1024     /* longer Proxy-Authorization values are refused */

struct auth_user {
	char *name;
	char *hash;
};

struct auth {
	struct auth_user *users;  /* sorted by name; read-only after auth_load */
	int n;
	const char *dummy;        /* the dearest user's hash: checked for unknown
	                             names */
	pthread_mutex_t lock;
	/* under lock: */
	struct {
		char *token;              /* the base64 credentials, or NULL */
		const char *user;         /* users[i].name */
	} remembered[AUTH_REMEMBERED];
};

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct auth_user *)a)->name, ((const struct auth_user *)b)->name);
}

void auth_free(struct auth *a)
{
	if (a == NULL)
		return;
	for (int i = 0; i < a->n; i++) {
		free(a->users[i].name);
		free(a->users[i].hash);
	}
	for (int i = 0; i < AUTH_REMEMBERED; i++)
		free(a->remembered[i].token);
	free(a->users);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

int auth_users(const struct auth *a)
{
	return a->n;
}

/* The file's text, NUL-terminated: a regular file (not a FIFO that would
 * block the reload, nor a device) of at most AUTH_FILE_MAX bytes. */
static char *read_file(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	struct stat st;
	char *text = NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
	} else if (st.st_size > AUTH_FILE_MAX) {
		snprintf(err, errlen, "%s: larger than %d bytes", path, AUTH_FILE_MAX);
	} else if ((text = malloc((size_t)st.st_size + 1)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
	} else {
		size_t len = 0;
		ssize_t r;
		while (len < (size_t)st.st_size &&
		       (r = read(fd, text + len, (size_t)st.st_size - len)) > 0)
			len += (size_t)r;
		text[len] = '\0';
		if (memchr(text, '\0', len) != NULL) {
			snprintf(err, errlen, "%s: contains a NUL byte", path);
			free(text);
			text = NULL;
		}
	}
	close(fd);
	return text;
}

/* How dear checking `hash` is, in rough units (about 60 us each on this
 * kind of machine: bcrypt cost 10 is 1,024), or -1 when it is dearer than
 * auth_load takes. Only kinds bad_line accepts. */
static double hash_cost(const char *hash)
{
	static const char itoa64[] =
	    "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	if (hash[0] == '$' && hash[1] == '2') { /* $2y$NN$ */
		int cost = atoi(hash + 4);
		return cost > 14 ? -1 : (double)(1u << cost);
	}
	if (hash[1] == '5' || hash[1] == '6') { /* $6$[rounds=N$] */
		long rounds = 5000;
		if (strncmp(hash + 3, "rounds=", 7) == 0)
			rounds = strtol(hash + 10, NULL, 10);
		return rounds > 1000000 ? -1 : (double)rounds / 150;
	}
	/* $y$PARAMS$: flags, then N and r as single itoa64 digits when no
	 * larger than the default "j9T" (N = 4096, r = 32: 16 MiB) */
	const char *params = hash + 3, *end = strchr(params, '$');
	if (end == NULL || end - params != 3)
		return -1;
	const char *n = strchr(itoa64, params[1]), *r = strchr(itoa64, params[2]);
	if (n == NULL || r == NULL || n > itoa64 + 11 || r > itoa64 + 31)
		return -1;
	return 800.0 * (double)(1u << (n - itoa64)) / 2048 * (double)(r - itoa64 + 1) / 32;
}

/* Why a "user:hash" line cannot be used, or NULL. */
static const char *bad_line(const char *name, size_t nlen, const char *hash)
{
	if (nlen == 0)
		return "an empty user name";
	for (size_t i = 0; i < nlen; i++)
		if ((unsigned char)name[i] <= ' ' || name[i] == 0x7f)
			return "a user name with a space or a control character";
	if (strncmp(hash, "$apr1$", 6) == 0 || strncmp(hash, "{SHA}", 5) == 0)
		return "an Apache MD5 or SHA-1 hash, which crypt(3) does not check: make it "
		       "with htpasswd -B (bcrypt)";
	if (strncmp(hash, "$2a$", 4) != 0 && strncmp(hash, "$2b$", 4) != 0 &&
	    strncmp(hash, "$2y$", 4) != 0 && strncmp(hash, "$5$", 3) != 0 &&
	    strncmp(hash, "$6$", 3) != 0 && strncmp(hash, "$y$", 3) != 0)
		return "not a bcrypt ($2y$), SHA-crypt ($5$, $6$) or yescrypt ($y$) hash";
	/* Debian's libxcrypt rates SHA-256-crypt ($5$, `openssl passwd -5`)
	 * as legacy, yet computes it: taken, as SHA-512-crypt is */
	int salt = crypt_checksalt(hash);
	if (salt != CRYPT_SALT_OK &&
	    !(salt == CRYPT_SALT_METHOD_LEGACY && strncmp(hash, "$5$", 3) == 0))
		return "a hash this system's crypt(3) does not accept";
	if (hash_cost(hash) < 0)
		return "a hash dearer to check than bcrypt cost 14, 1000000 SHA-crypt rounds or "
		       "yescrypt's default (one request would hold a CPU for that long)";
	return NULL;
}

struct auth *auth_load(const char *path, char *err, size_t errlen)
{
	char *text = read_file(path, err, errlen);
	if (text == NULL)
		return NULL;
	struct auth *a = calloc(1, sizeof *a);
	int cap = 0, lineno = 0;
	if (a == NULL)
		goto nomem;
	pthread_mutex_init(&a->lock, NULL);
	for (char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		size_t len = strlen(line);
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
		if (len == 0 || line[0] == '#')
			continue;
		const char *why = NULL;
		char *colon = strchr(line, ':');
		if (len > AUTH_LINE_MAX)
			why = "a line longer than 1024 bytes";
		else if (colon == NULL)
			why = "expected user:hash";
		else
			why = bad_line(line, (size_t)(colon - line), colon + 1);
		if (why) {
			snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
			goto fail;
		}
		*colon = '\0';
		for (int i = 0; i < a->n; i++)
			if (strcmp(a->users[i].name, line) == 0) {
				snprintf(err, errlen, "%s:%d: user '%s' given twice", path, lineno,
				         line);
				goto fail;
			}
		if (a->n == cap) {
			int ncap = cap ? cap * 2 : 16;
			struct auth_user *u = realloc(a->users, (size_t)ncap * sizeof *u);
			if (u == NULL)
				goto nomem;
			a->users = u;
			cap = ncap;
		}
		a->users[a->n].name = strdup(line);
		a->users[a->n].hash = strdup(colon + 1);
		a->n++;
		if (!a->users[a->n - 1].name || !a->users[a->n - 1].hash)
			goto nomem;
	}
	if (a->n == 0) {
		snprintf(err, errlen, "%s: no users", path);
		goto fail;
	}
	qsort(a->users, (size_t)a->n, sizeof *a->users, by_name);
	a->dummy = a->users[0].hash;
	for (int i = 1; i < a->n; i++)
		if (hash_cost(a->users[i].hash) > hash_cost(a->dummy))
			a->dummy = a->users[i].hash;
	free(text);
	return a;
nomem:
	snprintf(err, errlen, "%s: out of memory", path);
fail:
	auth_free(a);
	free(text);
	return NULL;
}

int auth_base64_decode(const char *in, char *out, size_t outlen)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = 0, len = strlen(in);
	uint32_t acc = 0;
	int bits = 0;
	/* canonical only (RFC 4648 3.5): padded to a multiple of 4, the bits
	 * past the last byte zero, so that one credential has one spelling */
	if (len % 4 != 0)
		return -1;
	while (len > 0 && in[len - 1] == '=')
		len--;
	if (strlen(in) - len > 2 || len % 4 == 1)
		return -1;
	for (size_t i = 0; i < len; i++) {
		const char *p = in[i] ? strchr(alphabet, in[i]) : NULL;
		if (p == NULL)
			return -1;
		acc = (acc << 6) | (uint32_t)(p - alphabet);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n + 1 >= outlen)
				return -1;
			out[n++] = (char)((acc >> bits) & 0xff);
		}
	}
	if (outlen == 0 || (acc & ((1u << bits) - 1)) != 0)
		return -1;
	out[n] = '\0';
	return (int)n;
}

/* At most `checks_max` password_matches at once (see the top). */
static pthread_mutex_t checks_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t checks_done = PTHREAD_COND_INITIALIZER;
static int checks_running, checks_max, checks_most; /* under checks_lock */

static void check_begin(void)
{
	pthread_mutex_lock(&checks_lock);
	if (checks_max == 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		checks_max = cpus > 2 ? (int)cpus : 2;
	}
	while (checks_running >= checks_max)
		pthread_cond_wait(&checks_done, &checks_lock);
	if (++checks_running > checks_most)
		checks_most = checks_running;
	pthread_mutex_unlock(&checks_lock);
}

static void check_end(void)
{
	pthread_mutex_lock(&checks_lock);
	checks_running--;
	pthread_cond_signal(&checks_done);
	pthread_mutex_unlock(&checks_lock);
}

void auth_checks_seen(int *most, int *max)
{
	pthread_mutex_lock(&checks_lock);
	*most = checks_most;
	*max = checks_max;
	pthread_mutex_unlock(&checks_lock);
}

/* Whether a and b are the same string, in time that does not depend on
 * where they differ (only on their lengths). */
static int same_secret(const char *a, const char *b)
{
	size_t n = strlen(a);
	if (n != strlen(b))
		return 0;
	unsigned char diff = 0;
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(a[i] ^ b[i]);
	return diff == 0;
}

/* Whether `password` hashes to `hash`. */
static int password_matches(const char *password, const char *hash)
{
	struct crypt_data *cd = calloc(1, sizeof *cd);
	if (cd == NULL)
		return 0;
	check_begin();
	stats_inc(STAT_auth_hash_checks_total);
	const char *out = crypt_rn(password, hash, cd, (int)sizeof *cd);
	check_end();
	int ok = out != NULL && same_secret(out, hash);
	free(cd);
	return ok;
}

static const struct auth_user *find(const struct auth *a, const char *name)
{
	struct auth_user key = { .name = (char *)name };
	return bsearch(&key, a->users, (size_t)a->n, sizeof *a->users, by_name);
}

void auth_carry(struct auth *to, struct auth *from)
{
	pthread_mutex_lock(&from->lock);
	for (int i = 0; i < AUTH_REMEMBERED; i++) {
		if (from->remembered[i].token == NULL || to->remembered[i].token != NULL)
			continue;
		const struct auth_user *was = find(from, from->remembered[i].user);
		const struct auth_user *now = find(to, from->remembered[i].user);
		if (was == NULL || now == NULL || strcmp(was->hash, now->hash) != 0)
			continue; /* gone, or another password */
		char *copy = strdup(from->remembered[i].token);
		if (copy == NULL)
			break;
		to->remembered[i].token = copy; /* the same slot: it is the token's */
		to->remembered[i].user = now->name;
	}
	pthread_mutex_unlock(&from->lock);
}

static uint32_t slot_of(const char *token)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (; *token; token++)
		h = (h ^ (unsigned char)*token) * 16777619u;
	return h % AUTH_REMEMBERED;
}

const char *auth_check(struct auth *a, const char *value)
{
	if (value == NULL || strncasecmp(value, "Basic", 5) != 0 ||
	    (value[5] != ' ' && value[5] != '\t'))
		return NULL;
	const char *token = value + 5 + strspn(value + 5, " \t");
	size_t tlen = strcspn(token, " \t");
	if (tlen == 0 || tlen > AUTH_TOKEN_MAX || token[tlen + strspn(token + tlen, " \t")])
		return NULL;
	char tok[AUTH_TOKEN_MAX + 1];
	memcpy(tok, token, tlen);
	tok[tlen] = '\0';

	uint32_t slot = slot_of(tok);
	const char *user = NULL;
	pthread_mutex_lock(&a->lock);
	if (a->remembered[slot].token && same_secret(a->remembered[slot].token, tok))
		user = a->remembered[slot].user;
	pthread_mutex_unlock(&a->lock);
	if (user)
		return user;

	char plain[AUTH_TOKEN_MAX];
	int plen = auth_base64_decode(tok, plain, sizeof plain);
	if (plen < 0)
		return NULL;
	/* RFC 7617 2: no control characters (a NUL would end the password
	 * early: "secret\0anything" would pass for "secret") */
	for (int i = 0; i < plen; i++)
		if ((unsigned char)plain[i] < ' ' || plain[i] == 0x7f)
			return NULL;
	char *colon = strchr(plain, ':');
	if (colon == NULL || colon[1] == '\0')
		return NULL; /* no password: refused, as Squid does */
	*colon = '\0';
	const struct auth_user *u = find(a, plain);
	/* an unknown name costs a hash too: see the top of the file */
	int ok = password_matches(colon + 1, u ? u->hash : a->dummy) && u != NULL;
	explicit_bzero(plain, sizeof plain);
	if (!ok)
		return NULL;
	char *copy = strdup(tok);
	pthread_mutex_lock(&a->lock);
	if (copy) {
		free(a->remembered[slot].token);
		a->remembered[slot].token = copy;
		a->remembered[slot].user = u->name;
	}
	pthread_mutex_unlock(&a->lock);
	return u->name;
}

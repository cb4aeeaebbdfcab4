/*
 * test_auth.c — unit tests for auth.c: base64 as RFC 4648 has it, htpasswd
 * files read or refused with the file and line, and Basic credentials
 * checked against bcrypt and SHA-512-crypt hashes (made here with
 * libxcrypt's crypt_gensalt_rn), remembered once verified.
 *
 * Prints one line per failed check and then "auth: N passed, M failed";
 * exits non-zero when anything failed.
 */
#include "corral/auth.h"
#include "corral/stats.h"

#include <crypt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static void test_base64(void)
{
	char out[64];
	/* RFC 4648 10 */
	static const char *const vectors[][2] = {
		{ "", "" }, { "Zg==", "f" }, { "Zm8=", "fo" }, { "Zm9v", "foo" },
		{ "Zm9vYg==", "foob" }, { "Zm9vYmE=", "fooba" }, { "Zm9vYmFy", "foobar" },
		{ "dXNlcjpwOnc=", "user:p:w" },
	};
	for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
		int n = auth_base64_decode(vectors[i][0], out, sizeof out);
		CHECK_INT(n, (int)strlen(vectors[i][1]));
		CHECK_STR(out, vectors[i][1]);
	}
	/* not canonical too: unpadded, bits past the last byte not zero */
	static const char *const bad[] = { "Z", "Zm9v!", "Zm 9v", "Zm9v====", "Zg===", "Z===",
		                           "Zm9vYg", "Zh==", "Zm9=" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		check(auth_base64_decode(bad[i], out, sizeof out) == -1, __FILE__, __LINE__,
		      "'%s' decoded", bad[i]);
	CHECK_INT(auth_base64_decode("Zm9vYmFy", out, 6), -1); /* does not fit */
}

static char dir[] = "/tmp/corral-auth-XXXXXX";

static const char *write_file(const char *name, const char *text)
{
	static char path[256];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

static void hash_of(const char *prefix, const char *password, char *out, size_t len)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data cd;
	memset(&cd, 0, sizeof cd);
	CHECK(crypt_gensalt_rn(prefix, 0, NULL, 0, setting, sizeof setting) != NULL);
	const char *h = crypt_rn(password, setting, &cd, (int)sizeof cd);
	CHECK(h != NULL);
	snprintf(out, len, "%s", h ? h : "");
}

static void test_load_errors(void)
{
	char err[512];
	static const struct {
		const char *text, *message;
	} cases[] = {
		{ "alice:$apr1$abc$def\n", "x.pw:1: an Apache MD5 or SHA-1 hash" },
		{ "# users\n\nbob:{SHA}abc=\n", "x.pw:3: an Apache MD5 or SHA-1 hash" },
		{ "carol\n", "x.pw:1: expected user:hash" },
		{ ":$6$salt$hash\n", "x.pw:1: an empty user name" },
		{ "da ve:$6$salt$hash\n", "x.pw:1: a user name with a space" },
		{ "eve:plaintext\n", "x.pw:1: not a bcrypt ($2y$), SHA-crypt" },
		{ "# only a comment\n", "x.pw: no users" },
		/* dearer than auth_load takes: one check would hold a CPU too long */
		{ "gus:$2b$15$FA0mcwO5wShBBePu8jysjOabcdefghijklmnopqrstuvwxyzABCDE\n",
		  "x.pw:1: a hash dearer to check" },
		{ "hal:$6$rounds=2000000$saltsalt$"
		  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
		  "x.pw:1: a hash dearer to check" },
		{ "ivy:$y$jAT$bdDPDwIpH/wxwO9vKdog4.$aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
		  "x.pw:1: a hash dearer to check" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *path = write_file("x.pw", cases[i].text);
		err[0] = '\0';
		struct auth *a = auth_load(path, err, sizeof err);
		CHECK(a == NULL);
		auth_free(a);
		CHECK_HAS(err, cases[i].message);
		CHECK_HAS(err, dir); /* the whole path */
	}
	char h[CRYPT_OUTPUT_SIZE], text[1024];
	hash_of("$6$", "pw", h, sizeof h);
	snprintf(text, sizeof text, "frank:%s\nfrank:%s\n", h, h);
	CHECK(auth_load(write_file("x.pw", text), err, sizeof err) == NULL);
	CHECK_HAS(err, "x.pw:2: user 'frank' given twice");
	CHECK(auth_load("/dev/null", err, sizeof err) == NULL);
	CHECK_HAS(err, "/dev/null: not a regular file");
	CHECK(auth_load("/nonexistent/corral.pw", err, sizeof err) == NULL);
	CHECK_HAS(err, "/nonexistent/corral.pw: cannot open");
}

static const char *basic(const char *user_colon_password)
{
	/* base64 by hand for the few strings used here */
	static char out[256];
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *in = (const unsigned char *)user_colon_password;
	size_t len = strlen(user_colon_password), n = 0;
	n += (size_t)snprintf(out, sizeof out, "Basic ");
	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < len ? (unsigned)in[i + 1] << 8 : 0) |
		             (i + 2 < len ? in[i + 2] : 0);
		out[n++] = alphabet[v >> 18 & 63];
		out[n++] = alphabet[v >> 12 & 63];
		out[n++] = i + 1 < len ? alphabet[v >> 6 & 63] : '=';
		out[n++] = i + 2 < len ? alphabet[v & 63] : '=';
	}
	out[n] = '\0';
	return out;
}

static void test_check(void)
{
	char bh[CRYPT_OUTPUT_SIZE], sh[CRYPT_OUTPUT_SIZE], text[2048], err[512] = "";
	char yh[CRYPT_OUTPUT_SIZE];
	hash_of("$2b$", "secret one", bh, sizeof bh);
	hash_of("$y$", "yes", yh, sizeof yh); /* yescrypt's default: taken */
	hash_of("$6$", "p:with:colons", sh, sizeof sh);
	snprintf(text, sizeof text, "# corral users\r\nzoe:%s\r\nadam:%s\nyann:%s\n", bh, sh, yh);
	struct auth *a = auth_load(write_file("users.pw", text), err, sizeof err);
	if (!check(a != NULL, __FILE__, __LINE__, "load failed: %s", err))
		return;
	const char *u;
	CHECK_INT(auth_users(a), 3);
	u = auth_check(a, basic("yann:yes"));
	CHECK(u != NULL && strcmp(u, "yann") == 0);
	u = auth_check(a, basic("zoe:secret one"));
	CHECK(u != NULL && strcmp(u, "zoe") == 0);
	/* remembered: the same value again, and the same user */
	CHECK(auth_check(a, basic("zoe:secret one")) == u);
	u = auth_check(a, basic("adam:p:with:colons"));
	CHECK(u != NULL && strcmp(u, "adam") == 0);
	char lower[256];
	snprintf(lower, sizeof lower, "basic   %s  ", basic("adam:p:with:colons") + 6);
	CHECK(auth_check(a, lower) != NULL); /* scheme in any case, spaces around */
	CHECK_NULL(auth_check(a, basic("zoe:secret two")));
	CHECK_NULL(auth_check(a, basic("zoe:")));
	CHECK_NULL(auth_check(a, basic("nobody:secret one")));
	CHECK_NULL(auth_check(a, basic("zoe")));
	CHECK_NULL(auth_check(a, basic("adam:p")));
	/* control characters: a NUL would end the password early */
	CHECK_NULL(auth_check(a, "Basic em9lOnNlY3JldCBvbmUAeA==")); /* "zoe:secret one\0x" */
	CHECK_NULL(auth_check(a, "Basic em9lOnNlY3JldAlvbmU=")); /* a tab */
	CHECK_NULL(auth_check(a, NULL));
	CHECK_NULL(auth_check(a, "Basic"));
	CHECK_NULL(auth_check(a, "Basic "));
	CHECK_NULL(auth_check(a, "Basic !!!!"));
	CHECK_NULL(auth_check(a, "Bearer em9lOnNlY3JldCBvbmU="));
	CHECK_NULL(auth_check(a, "Basicem9lOnNlY3JldCBvbmU="));
	char two[512];
	snprintf(two, sizeof two, "%s %s", basic("zoe:secret one"), "extra");
	CHECK_NULL(auth_check(a, two));
	auth_free(a);
	/* SHA-256-crypt, as `openssl passwd -5 -salt saltsalt secret` makes it
	 * (libxcrypt calls it legacy) */
	a = auth_load(write_file("users.pw",
	                         "sam:$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA\n"),
	              err, sizeof err);
	if (check(a != NULL, __FILE__, __LINE__, "$5$ refused: %s", err)) {
		u = auth_check(a, basic("sam:secret"));
		CHECK(u != NULL && strcmp(u, "sam") == 0);
		CHECK_NULL(auth_check(a, basic("sam:secrets")));
	}
	auth_free(a);
	/* md5crypt ($1$) stays refused */
	CHECK(auth_load(write_file("users.pw", "old:$1$saltsalt$qjXMvbEw8oaL.CzflDugX/\n"), err,
	                sizeof err) == NULL);
}

struct flood {
	struct auth *a;
	const char *value;    /* made before the threads: basic() is not reentrant */
	int refused;
};

static void *flood_run(void *arg)
{
	struct flood *f = arg;
	for (int i = 0; i < 3; i++)
		f->refused += auth_check(f->a, f->value) == NULL;
	return NULL;
}

/* Wrong passwords from many threads: all refused, and never more hash
 * checks at once than the bound. */
static void test_checks_bounded(void)
{
	char bh[CRYPT_OUTPUT_SIZE], text[512], err[512] = "";
	hash_of("$2b$", "secret one", bh, sizeof bh);
	snprintf(text, sizeof text, "zoe:%s\n", bh);
	struct auth *a = auth_load(write_file("flood.pw", text), err, sizeof err);
	if (!check(a != NULL, __FILE__, __LINE__, "load failed: %s", err))
		return;
	enum { THREADS = 12 };
	pthread_t th[THREADS];
	struct flood f[THREADS];
	char wrong[256];
	snprintf(wrong, sizeof wrong, "%s", basic("zoe:not the password"));
	for (int i = 0; i < THREADS; i++) {
		f[i] = (struct flood){ a, wrong, 0 };
		CHECK_INT(pthread_create(&th[i], NULL, flood_run, &f[i]), 0);
	}
	int refused = 0;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		refused += f[i].refused;
	}
	CHECK_INT(refused, THREADS * 3);
	int most, max;
	auth_checks_seen(&most, &max);
	CHECK(max >= 2);
	check(most >= 1 && most <= max, __FILE__, __LINE__, "%d checks at once, bound %d", most,
	      max);
	auth_free(a);
}

/* A reload keeps the credentials of users whose hash is unchanged, and
 * only theirs (auth_carry). */
static void test_carry(void)
{
	char ha[CRYPT_OUTPUT_SIZE], hb[CRYPT_OUTPUT_SIZE], hb2[CRYPT_OUTPUT_SIZE];
	char text[1024], err[512];
	hash_of("$6$", "apple", ha, sizeof ha);
	hash_of("$6$", "banana", hb, sizeof hb);
	hash_of("$6$", "cherry", hb2, sizeof hb2);
	snprintf(text, sizeof text, "ann:%s\nben:%s\n", ha, hb);
	struct auth *old = auth_load(write_file("old.pw", text), err, sizeof err);
	snprintf(text, sizeof text, "ann:%s\nben:%s\n", ha, hb2);
	struct auth *fresh = auth_load(write_file("new.pw", text), err, sizeof err);
	if (!CHECK(old != NULL && fresh != NULL))
		goto out;
	CHECK(auth_check(old, basic("ann:apple")) != NULL);
	CHECK(auth_check(old, basic("ben:banana")) != NULL);
	auth_carry(fresh, old);
	int64_t checks = stats_get(STAT_auth_hash_checks_total);
	const char *u = auth_check(fresh, basic("ann:apple"));
	CHECK(u != NULL && strcmp(u, "ann") == 0);
	CHECK_INT(stats_get(STAT_auth_hash_checks_total), checks); /* remembered */
	CHECK_NULL(auth_check(fresh, basic("ben:banana"))); /* ben's password changed */
	CHECK(auth_check(fresh, basic("ben:cherry")) != NULL);
out:
	auth_free(old);
	auth_free(fresh);
}

int main(void)
{
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_base64();
	test_load_errors();
	test_check();
	test_checks_bounded();
	test_carry();
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return check_summary("auth");
}

/*
 * fuzz_auth.c — a Proxy-Authorization value, as auth_check reads it
 * against an htpasswd file of two users (written once, at the first input).
 *
 * Checked for any input: a value is accepted only when it is "Basic" (any
 * case), spaces, and the base64 of exactly one of the two users' "name:
 * password" (the same value again gives the same answer, remembered or
 * not); base64 decoding agrees with an encoder (decode(encode(x)) == x for
 * the input's bytes).
 */
#include <crypt.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "corral/auth.h"
#include "fuzz.h"

static const char *const creds[] = { "alice:wonder land", "bob:b0b:pw" };

static struct auth *users(void)
{
	static struct auth *a;
	if (a)
		return a;
	char path[] = "/tmp/corral-fuzz-auth-XXXXXX";
	int fd = mkstemp(path);
	FUZZ_CHECK(fd >= 0);
	FILE *f = fdopen(fd, "w");
	for (size_t i = 0; i < sizeof creds / sizeof creds[0]; i++) {
		char setting[CRYPT_GENSALT_OUTPUT_SIZE], name[32];
		struct crypt_data cd;
		memset(&cd, 0, sizeof cd);
		const char *colon = strchr(creds[i], ':');
		snprintf(name, sizeof name, "%.*s", (int)(colon - creds[i]), creds[i]);
		/* SHA-512-crypt at its fewest rounds: the fuzzer pays for a hash
		 * on every input that decodes */
		FUZZ_CHECK(crypt_gensalt_rn("$6$", 1000, NULL, 0, setting, sizeof setting));
		fprintf(f, "%s:%s\n", name, crypt_rn(colon + 1, setting, &cd, (int)sizeof cd));
	}
	fclose(f);
	char err[256];
	a = auth_load(path, err, sizeof err);
	unlink(path);
	FUZZ_CHECK(a != NULL);
	return a;
}

static void encode(const unsigned char *in, size_t len, char *out)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = 0;
	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < len ? (unsigned)in[i + 1] << 8 : 0) |
		             (i + 2 < len ? in[i + 2] : 0);
		out[n++] = alphabet[v >> 18 & 63];
		out[n++] = alphabet[v >> 12 & 63];
		out[n++] = i + 1 < len ? alphabet[v >> 6 & 63] : '=';
		out[n++] = i + 2 < len ? alphabet[v & 63] : '=';
	}
	out[n] = '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct auth *a = users();
	char value[2048], enc[2048], dec[2048];
	if (size >= 1024)
		return 0;
	memcpy(value, data, size);
	value[size] = '\0';

	/* base64 round trip of the input's bytes (up to a NUL: a C string) */
	size_t len = strlen(value);
	encode((const unsigned char *)value, len, enc);
	FUZZ_CHECK(auth_base64_decode(enc, dec, sizeof dec) == (int)len);
	FUZZ_CHECK(memcmp(dec, value, len) == 0);

	const char *user = auth_check(a, value);
	if (user != NULL) {
		/* "Basic", at least one space or tab, the token, spaces */
		FUZZ_CHECK(strncasecmp(value, "Basic", 5) == 0);
		const char *tok = value + 5 + strspn(value + 5, " \t");
		char plain[1024];
		size_t tlen = strcspn(tok, " \t");
		char t[1100];
		snprintf(t, sizeof t, "%.*s", (int)tlen, tok);
		int n = auth_base64_decode(t, plain, sizeof plain);
		int which = -1;
		for (size_t i = 0; i < sizeof creds / sizeof creds[0]; i++)
			if (n == (int)strlen(creds[i]) && memcmp(plain, creds[i], (size_t)n) == 0)
				which = (int)i;
		FUZZ_CHECK(which >= 0);
		FUZZ_CHECK(strncmp(user, creds[which], strlen(user)) == 0 &&
		           creds[which][strlen(user)] == ':');
	}
	FUZZ_CHECK(auth_check(a, value) == user); /* the same answer again */
	return 0;
}

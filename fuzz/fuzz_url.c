/*
 * fuzz_url.c — request targets as URLs and cache keys (http.c), from any
 * bytes: what a client's target becomes once llhttp has passed it, and
 * what the admin endpoint's /purge?url= takes after percent-decoding.
 *
 * Checked for any input: a parsed URL has an http or https scheme, a host,
 * a port in 1..65535 and a path that is empty or starts with '/', '?' or
 * '#'; its cache key parses again and normalises to itself; a CONNECT
 * authority has a host and a port in 1..65535.
 */
#include <string.h>

#include "corral/http.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	FUZZ_CHECK(s != NULL);
	memcpy(s, data, size);
	s[size] = '\0';

	struct url u, again;
	if (url_parse(s, &u) == 0) {
		FUZZ_CHECK(strcmp(u.scheme, "http") == 0 || strcmp(u.scheme, "https") == 0);
		FUZZ_CHECK(u.host[0] != '\0');
		FUZZ_CHECK(u.port >= 1 && u.port <= 65535);
		FUZZ_CHECK(u.path != NULL && strchr("/?#", u.path[0]) != NULL);
		char key[16384], key2[16384];
		int n = url_normalise(&u, key, sizeof key);
		if (n >= 0) {
			FUZZ_CHECK((size_t)n == strlen(key));
			FUZZ_CHECK(url_parse(key, &again) == 0);
			FUZZ_CHECK(url_normalise(&again, key2, sizeof key2) == n);
			FUZZ_CHECK(strcmp(key, key2) == 0);
		}
	}
	char host[256];
	int port = 0;
	if (url_parse_authority(s, host, sizeof host, &port) == 0) {
		FUZZ_CHECK(host[0] != '\0');
		FUZZ_CHECK(port >= 1 && port <= 65535);
	}
	free(s);
	return 0;
}

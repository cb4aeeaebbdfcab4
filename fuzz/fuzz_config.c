/*
 * fuzz_config.c — a configuration file, as corrald reads it at start and
 * on SIGHUP (config_load_string: the same parser as config_load).
 *
 * Checked for any input: a file is either loaded or refused with a message
 * that names the file ("fuzz.ini:LINE: ..." or "fuzz.ini: ..."); a loaded
 * one keeps the limits corrald relies on (at least one listener, a worker,
 * non-zero timeouts and sizes).
 */
#include <string.h>

#include "corral/config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	FUZZ_CHECK(text != NULL);
	memcpy(text, data, size);
	text[size] = '\0';
	char err[512] = "";
	struct config *c = config_load_string(text, "fuzz.ini", err, sizeof err);
	if (c == NULL) {
		FUZZ_CHECK(strncmp(err, "fuzz.ini", 8) == 0);
	} else {
		FUZZ_CHECK(c->n_listen >= 1 && c->n_listen <= CONFIG_MAX_LISTEN);
		FUZZ_CHECK(c->max_workers >= 1 && c->min_workers >= 1 &&
		           c->min_workers <= c->max_workers);
		FUZZ_CHECK(c->client_timeout_ms > 0 && c->header_timeout_ms > 0);
		FUZZ_CHECK(c->max_request_header > 0 && c->max_url > 0);
		FUZZ_CHECK(c->cache_memory > 0 && c->max_object > 0);
		config_put(c);
	}
	free(text);
	return 0;
}

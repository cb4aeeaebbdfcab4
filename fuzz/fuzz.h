/*
 * fuzz.h — what every fuzz target shares: the entry point libFuzzer (or
 * replay.c) calls, and FUZZ_CHECK, a property that must hold for any input.
 * A failed check aborts, which libFuzzer reports as a crash with the input
 * that caused it, and which fails `make check` when replayed.
 */
#ifndef CORRAL_FUZZ_H
#define CORRAL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                          \
	do {                                                                      \
		if (!(cond)) {                                                    \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,   \
			        __LINE__, #cond);                                 \
			abort();                                                  \
		}                                                                 \
	} while (0)

#endif

/*
 * replay.c — runs a fuzz target's LLVMFuzzerTestOneInput over files, without
 * libFuzzer: the regression half of fuzzing, built with the project's own
 * compiler and sanitizers by `make check` (fuzz-replay).
 *
 * Arguments are files or directories (their regular files, not recursive),
 * each file one input. Prints how many inputs ran; a failed check inside a
 * target aborts, and so does a sanitizer report, so the exit status says
 * whether every input passed. `make fuzz` builds the same targets with
 * clang's libFuzzer instead, which needs no main of ours.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		perror(path);
		return -1;
	}
	size_t cap = 4096, len = 0;
	uint8_t *buf = malloc(cap);
	size_t n;
	while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
		len += n;
		if (len == cap) {
			uint8_t *more = realloc(buf, cap *= 2);
			if (more == NULL)
				free(buf);
			buf = more;
		}
	}
	fclose(f);
	if (buf == NULL) {
		fprintf(stderr, "%s: out of memory\n", path);
		return -1;
	}
	/* an exact-size copy, so that ASan sees a read past the input's end */
	uint8_t *exact = malloc(len ? len : 1);
	if (exact == NULL) {
		fprintf(stderr, "%s: out of memory\n", path);
		free(buf);
		return -1;
	}
	memcpy(exact, buf, len);
	free(buf);
	LLVMFuzzerTestOneInput(exact, len);
	free(exact);
	return 0;
}

int main(int argc, char **argv)
{
	int inputs = 0;
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) < 0) {
			perror(argv[i]);
			return 1;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (run_file(argv[i]) < 0)
				return 1;
			inputs++;
			continue;
		}
		DIR *d = opendir(argv[i]);
		if (d == NULL) {
			perror(argv[i]);
			return 1;
		}
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			char path[4096];
			snprintf(path, sizeof path, "%s/%s", argv[i], de->d_name);
			if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
				continue;
			if (run_file(path) < 0) {
				closedir(d);
				return 1;
			}
			inputs++;
		}
		closedir(d);
	}
	printf("%s: %d input(s) passed\n", argv[0], inputs);
	return inputs > 0 ? 0 : 1;
}

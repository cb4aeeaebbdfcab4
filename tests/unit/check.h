/*
 * check.h — the check helpers every unit test (tests/unit/test_*.c) shares:
 * the pass/fail counters, check() and the CHECK* macros built on it, and
 * check_summary() for the last line. Each test is its own binary, so all of
 * this is static and included once per test; helpers only one test needs
 * stay in that test.
 *
 * A check that holds counts as passed and prints nothing; one that fails
 * prints "FAIL file:line: message" (flushed at once, so it is not lost if
 * the test then hangs or crashes). check() returns whether it held, for
 * `if (!CHECK(p != NULL)) return;`. The counters are atomic: checks may run
 * on several threads. check_summary("name") prints "name: N passed, M failed"
 * and returns the exit status: 0 when nothing failed, else 1.
 */
#ifndef CORRAL_TESTS_CHECK_H
#define CORRAL_TESTS_CHECK_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static atomic_int n_pass, n_fail;

__attribute__((format(printf, 4, 5), unused))
static int
check(int ok, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	if (ok) {
		n_pass++;
		return 1;
	}
	n_fail++;
	printf("FAIL %s:%d: ", file, line);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return 0;
}

/* Print "name: N passed, M failed"; the exit status for main to return. */
__attribute__((unused))
static int
check_summary(const char *name)
{
	int failed = atomic_load(&n_fail);

	printf("%s: %d passed, %d failed\n", name, atomic_load(&n_pass), failed);
	fflush(stdout);
	return failed == 0 ? 0 : 1;
}

#define CHECK(cond) check(!!(cond), __FILE__, __LINE__, "%s", #cond)
#define CHECK_INT(a, b) do { \
	long long a_ = (long long)(a), b_ = (long long)(b); \
	check(a_ == b_, __FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_); \
} while (0)
/* Equal strings, or both NULL. */
#define CHECK_STR(a, b) do { \
	const char *a_ = (a), *b_ = (b); \
	check(a_ && b_ ? strcmp(a_, b_) == 0 : a_ == b_, __FILE__, __LINE__, \
	      "%s: '%s' != '%s'", #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
} while (0)
#define CHECK_NULL(a) do { \
	const char *a_ = (a); \
	check(a_ == NULL, __FILE__, __LINE__, "%s: '%s' is not NULL", #a, a_ ? a_ : ""); \
} while (0)
/* hay contains needle. */
#define CHECK_HAS(hay, needle) do { \
	const char *h_ = (hay), *n_ = (needle); \
	check(h_ != NULL && strstr(h_, n_) != NULL, __FILE__, __LINE__, \
	      "'%s' lacks '%s'", h_ ? h_ : "(null)", n_); \
} while (0)

#endif

/* SPDX-License-Identifier: MIT */
/*
 * lf_test.h - the tiny unit-test harness.
 *
 *   LF_TEST(name) { CHECK(x); CHECK_EQ_INT(a, b); ... }
 *   int main(int argc, char **argv) { return lf_test_main(argc, argv); }
 *
 * Tests register themselves with a constructor, run in declaration order,
 * each in a fresh mkdtemp() directory (the cwd while it runs, removed only
 * when it passes), and report TAP so meson counts each case.  A failed CHECK
 * prints both sides with file:line and marks the test failed but keeps going.
 * Include it in exactly one .c file per test program.
 */
#ifndef LAYERFS_LF_TEST_H
#define LAYERFS_LF_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct lf_test_case {
	const char *name;
	void (*fn)(void);
};

#define LF_TEST_MAX 256
static struct lf_test_case lf_test_cases[LF_TEST_MAX];
static int lf_test_ncases;
static int lf_test_failed_now;
static char lf_test_dir[4096];

#define LF_TEST(name)                                                          \
	static void test_##name(void);                                         \
	__attribute__((constructor)) static void reg_##name(void)              \
	{                                                                      \
		if (lf_test_ncases < LF_TEST_MAX)                              \
			lf_test_cases[lf_test_ncases++] =                      \
				(struct lf_test_case){ #name, test_##name };   \
	}                                                                      \
	static void test_##name(void)

#define LF_FAIL(...)                                                           \
	do {                                                                   \
		printf("# %s:%d: ", __FILE__, __LINE__);                       \
		printf(__VA_ARGS__);                                           \
		printf("\n");                                                  \
		lf_test_failed_now = 1;                                        \
	} while (0)

#define CHECK(expr)                                                            \
	do {                                                                   \
		if (!(expr))                                                   \
			LF_FAIL("CHECK(%s) failed", #expr);                    \
	} while (0)

#define CHECK_EQ_INT(a, b)                                                     \
	do {                                                                   \
		long long va_ = (long long)(a), vb_ = (long long)(b);          \
		if (va_ != vb_)                                                \
			LF_FAIL("%s == %s: %lld != %lld", #a, #b, va_, vb_);   \
	} while (0)

#define CHECK_EQ_STR(a, b)                                                     \
	do {                                                                   \
		const char *sa_ = (a), *sb_ = (b);                             \
		if (!sa_ || !sb_ || strcmp(sa_, sb_))                          \
			LF_FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b,          \
				sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");   \
	} while (0)

#define CHECK_EQ_MEM(a, b, n)                                                  \
	do {                                                                   \
		const unsigned char *ma_ = (const void *)(a);                  \
		const unsigned char *mb_ = (const void *)(b);                  \
		size_t n_ = (n), i_;                                           \
		for (i_ = 0; i_ < n_ && ma_[i_] == mb_[i_]; i_++)              \
			;                                                      \
		if (i_ < n_)                                                   \
			LF_FAIL("%s == %s: differ at byte %zu of %zu "         \
				"(0x%02x != 0x%02x)",                          \
				#a, #b, i_, n_, ma_[i_], mb_[i_]);             \
	} while (0)

/* The per-test temporary directory (also the cwd while the test runs). */
static inline const char *lf_test_tmpdir(void)
{
	return lf_test_dir;
}

static inline int lf_test_main(int argc, char **argv)
{
	char cwd[4096];
	int i, nfail = 0;

	if (!getcwd(cwd, sizeof(cwd)))
		return 1;
	printf("1..%d\n", lf_test_ncases);
	for (i = 0; i < lf_test_ncases; i++) {
		const char *tmp = getenv("TMPDIR");

		if (argc > 1 && strcmp(argv[1], lf_test_cases[i].name)) {
			printf("ok %d - %s # SKIP not selected\n", i + 1,
			       lf_test_cases[i].name);
			continue;
		}
		snprintf(lf_test_dir, sizeof(lf_test_dir), "%s/lftest.XXXXXX",
			 tmp ? tmp : "/tmp");
		if (!mkdtemp(lf_test_dir) || chdir(lf_test_dir))
			return 1;
		lf_test_failed_now = 0;
		lf_test_cases[i].fn();
		fflush(NULL);
		if (chdir(cwd))
			return 1;
		if (!lf_test_failed_now) {
			char cmd[4200];

			snprintf(cmd, sizeof(cmd), "rm -rf '%s'", lf_test_dir);
			if (system(cmd))
				printf("# could not remove %s\n", lf_test_dir);
		} else {
			printf("# left %s for inspection\n", lf_test_dir);
		}
		printf("%s %d - %s\n", lf_test_failed_now ? "not ok" : "ok",
		       i + 1, lf_test_cases[i].name);
		nfail += lf_test_failed_now;
	}
	return nfail ? 1 : 0;
}

#endif /* LAYERFS_LF_TEST_H */

// SPDX-License-Identifier: MIT
/*
 * test_stack.c - a stack of directory lowers: the order of lowers (top
 * first), the merged tree, reads through lf_stack_read_file() against the
 * bytes written here, and lf_stack_blob() asked by many threads at once
 * (each layer's blob opened once: every thread gets the same pointer).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "layerfs/stack.h"
#include "lf_test.h"

#define NTHREADS 8

static void put(const char *path, const char *data)
{
	FILE *f = fopen(path, "wb");

	if (!f || fputs(data, f) < 0 || fclose(f))
		LF_FAIL("cannot write %s", path);
}

/* lower "top" over lower "bottom": a.txt in both, b.txt in bottom only */
static struct lf_stack *open_two(void)
{
	const char *lowers[2] = { "top", "bottom" };
	struct lf_stack_opts so = { .lowers = lowers,
				    .nlowers = 2,
				    .want_tree = true };
	struct lf_stack *s = NULL;
	struct lf_err err = { 0 };

	if (mkdir("top", 0755) || mkdir("bottom", 0755))
		LF_FAIL("mkdir: %s", strerror(errno));
	put("bottom/a.txt", "bottom a\n");
	put("bottom/b.txt", "bottom b\n");
	put("top/a.txt", "top a, longer\n");
	if (lf_stack_open(NULL, &so, &s, &err))
		LF_FAIL("lf_stack_open: %s", err.msg);
	return s;
}

static void check_file(const struct lf_stack *s, const char *path,
		       const char *want, size_t want_layer)
{
	const struct lf_idx_entry *e;
	struct lf_err err = { 0 };
	char buf[64];
	uint64_t ino;
	size_t layer;
	ssize_t n;

	if (lf_tree_resolve(lf_stack_tree(s), path, 0, &ino) ||
	    lf_tree_data(lf_stack_tree(s), ino, &layer, &e)) {
		LF_FAIL("%s not in the tree", path);
		return;
	}
	CHECK_EQ_INT(layer, want_layer);
	n = lf_stack_read_file(s, layer, e, buf, sizeof(buf), 0, &err);
	CHECK_EQ_INT(n, strlen(want));
	if (n == (ssize_t)strlen(want))
		CHECK_EQ_MEM(buf, want, strlen(want));
}

LF_TEST(directory_lowers_top_first)
{
	struct lf_stack *s = open_two();

	if (!s)
		return;
	CHECK_EQ_INT(lf_stack_count(s), 2);
	CHECK_EQ_STR(lf_stack_name(s), "lowerdir");
	CHECK(lf_stack_image(s) == NULL);
	CHECK(lf_stack_layer(s, 0) == NULL && lf_stack_layer(s, 1) == NULL);
	CHECK(lf_stack_cache_dir(s) == NULL);
	/* the last lower is the bottom layer (0), the first the top (1) */
	check_file(s, "/a.txt", "top a, longer\n", 1);
	check_file(s, "/b.txt", "bottom b\n", 0);
	lf_stack_close(s);
}

struct asker {
	const struct lf_stack *s;
	struct lf_blob *got[2];
};

static void *ask(void *arg)
{
	struct asker *a = arg;
	size_t i;

	for (i = 0; i < 2; i++)
		a->got[i] = lf_stack_blob(a->s, i, NULL);
	return NULL;
}

LF_TEST(blob_opened_once_by_many_threads)
{
	struct asker a[NTHREADS];
	pthread_t th[NTHREADS];
	struct lf_stack *s = open_two();
	size_t t, i;

	if (!s)
		return;
	for (t = 0; t < NTHREADS; t++) {
		a[t] = (struct asker){ .s = s };
		if (pthread_create(&th[t], NULL, ask, &a[t]))
			LF_FAIL("pthread_create");
	}
	for (t = 0; t < NTHREADS; t++)
		pthread_join(th[t], NULL);
	for (i = 0; i < 2; i++) {
		CHECK(a[0].got[i] != NULL);
		for (t = 1; t < NTHREADS; t++)
			CHECK(a[t].got[i] == a[0].got[i]);
		CHECK(lf_stack_blob(s, i, NULL) == a[0].got[i]);
	}
	CHECK(a[0].got[0] != a[0].got[1]);
	lf_stack_close(s);
}

LF_TEST(no_layers_is_an_empty_view)
{
	struct lf_stack_opts so = { .want_tree = true };
	struct lf_stack *s = NULL;
	struct lf_err err = { 0 };
	uint64_t ino;

	if (lf_stack_open(NULL, &so, &s, &err)) {
		LF_FAIL("lf_stack_open: %s", err.msg);
		return;
	}
	CHECK_EQ_INT(lf_stack_count(s), 0);
	CHECK(lf_stack_tree(s) != NULL);
	CHECK_EQ_INT(lf_tree_resolve(lf_stack_tree(s), "/x", 0, &ino), -ENOENT);
	lf_stack_close(s);
}

int main(int argc, char **argv)
{
	return lf_test_main(argc, argv);
}

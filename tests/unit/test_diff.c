// SPDX-License-Identifier: MIT
/*
 * test_diff.c - lf_diff_run() over directory layers, without the CLI:
 * prefix against prefix (every kind of change, in walk order, with the
 * bytes of a deleted subtree), a prefix against the same prefix with an
 * upper dir changed through upper.h (checked against the diff of the same
 * upper dir read as one more directory layer: another code path), a
 * callback that stops the walk, and a chain deeper than any C stack would
 * take by recursion.
 */
#include "lf_test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "layerfs/buf.h"
#include "layerfs/diff.h"
#include "layerfs/stack.h"
#include "layerfs/upper.h"

#define T0 1000000000

static void put(const char *path, const char *text, mode_t mode, long mtime)
{
	FILE *f = fopen(path, "w");
	struct timespec ts[2] = { { mtime, 0 }, { mtime, 0 } };

	CHECK(f != NULL);
	if (f) {
		fputs(text, f);
		fclose(f);
	}
	CHECK_EQ_INT(chmod(path, mode), 0);
	CHECK_EQ_INT(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static void dir(const char *path, mode_t mode)
{
	CHECK_EQ_INT(mkdir(path, mode), 0);
	CHECK_EQ_INT(chmod(path, mode), 0);
}

static void link_to(const char *path, const char *target, long mtime)
{
	struct timespec ts[2] = { { mtime, 0 }, { mtime, 0 } };

	CHECK_EQ_INT(symlink(target, path), 0);
	CHECK_EQ_INT(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

/* Directory times last: making entries in them changed them. */
static void dir_time(const char *path, long mtime)
{
	struct timespec ts[2] = { { mtime, 0 }, { mtime, 0 } };

	CHECK_EQ_INT(utimensat(AT_FDCWD, path, ts, 0), 0);
}

/* The changes as "K PATH BYTES" lines. */
static int collect(void *ctx, const struct lf_diff_change *c)
{
	return lf_buf_addf(ctx, "%c %s %llu\n", c->kind, c->path,
			   (unsigned long long)c->size);
}

static struct lf_stack *open_lowers(const char *const *lowers, size_t n)
{
	struct lf_stack_opts so = { .lowers = lowers,
				    .nlowers = n,
				    .verify = true,
				    .want_tree = true };
	struct lf_err err = { 0 };
	struct lf_stack *s = NULL;
	size_t i;

	if (lf_stack_open(NULL, &so, &s, &err)) {
		LF_FAIL("%s", err.msg);
		return NULL;
	}
	for (i = 0; i < lf_stack_count(s); i++)
		if (!lf_stack_blob(s, i, &err))
			LF_FAIL("%s", err.msg);
	return s;
}

/* The diff of prefix `from` against prefix `to`, as lines (static). */
static const char *prefix_diff(struct lf_stack *s, size_t from, size_t to)
{
	static char out[4096];
	struct lf_tree *ta = NULL, *tb = NULL;
	struct lf_err err = { 0 };
	struct lf_buf b;

	lf_buf_init(&b);
	out[0] = '\0';
	CHECK_EQ_INT(lf_stack_tree_prefix(s, from, &ta, &err), 0);
	CHECK_EQ_INT(lf_stack_tree_prefix(s, to, &tb, &err), 0);
	if (ta && tb) {
		struct lf_mview a = { s, ta, NULL }, v = { s, tb, NULL };
		int ret = lf_diff_run(&a, &v, collect, &b, &err);

		if (ret)
			LF_FAIL("diff %zu..%zu: %s", from, to, err.msg);
		snprintf(out, sizeof(out), "%s", b.len ? b.data : "");
	}
	lf_tree_free(ta);
	lf_tree_free(tb);
	lf_buf_release(&b);
	return out;
}

/*
 * l1: a/ (f1 "one", f2 "two", sub/deep "d"), b "bee", link -> a/f1, same
 * l2: a/f1 "ONE" (only the bytes differ), a/.wh.f2, a/.wh.sub, b 0600,
 *     c/x, link -> b, same (rewritten, identical)
 * l3: a/ opaque with a/new, c a file
 * Every time is set, so only what the layer means to change changes.
 */
static void make_layers(void)
{
	dir("l1", 0755);
	dir("l1/a", 0755);
	put("l1/a/f1", "one", 0644, T0 + 1);
	put("l1/a/f2", "two", 0644, T0 + 2);
	dir("l1/a/sub", 0700);
	put("l1/a/sub/deep", "d", 0644, T0 + 3);
	put("l1/b", "bee", 0644, T0 + 4);
	link_to("l1/link", "a/f1", T0 + 5);
	put("l1/same", "same", 0644, T0 + 6);
	dir_time("l1/a/sub", T0 + 7);
	dir_time("l1/a", T0 + 8);

	dir("l2", 0755);
	dir("l2/a", 0755);
	put("l2/a/f1", "ONE", 0644, T0 + 1);
	put("l2/a/.wh.f2", "", 0644, T0);
	put("l2/a/.wh.sub", "", 0644, T0);
	put("l2/b", "bee", 0600, T0 + 4);
	dir("l2/c", 0755);
	put("l2/c/x", "x", 0644, T0 + 9);
	link_to("l2/link", "b", T0 + 5);
	put("l2/same", "same", 0644, T0 + 6);
	dir_time("l2/a", T0 + 8);
	dir_time("l2/c", T0 + 10);

	dir("l3", 0755);
	dir("l3/a", 0755);
	put("l3/a/.wh..wh..opq", "", 0644, T0);
	put("l3/a/new", "n", 0644, T0 + 11);
	put("l3/c", "file", 0644, T0 + 12);
	dir_time("l3/a", T0 + 8);
}

LF_TEST(prefixes_in_walk_order)
{
	const char *lowers[3] = { "l3", "l2", "l1" }; /* top first */
	struct lf_stack *s;

	make_layers();
	if (!(s = open_lowers(lowers, 3)))
		return;
	/* from the empty view: everything added, parents first */
	CHECK_EQ_STR(prefix_diff(s, 0, 1), "A /a 0\n"
					   "A /a/f1 3\n"
					   "A /a/f2 3\n"
					   "A /a/sub 0\n"
					   "A /a/sub/deep 1\n"
					   "A /b 3\n"
					   "A /link 0\n"
					   "A /same 4\n");
	/* content only, whiteouts (a dir: the bytes below it), a mode, an
	 * added dir with its subtree, a symlink target; nothing for `same`
	 * nor for the directory a, whose own metadata did not change */
	CHECK_EQ_STR(prefix_diff(s, 1, 2), "C /a/f1 3\n"
					   "D /a/f2 3\n"
					   "D /a/sub 1\n"
					   "C /b 3\n"
					   "A /c 0\n"
					   "A /c/x 1\n"
					   "C /link 0\n");
	/* an opaque dir hides what was below; a dir turned into a file is
	 * one change (its children are implied) */
	CHECK_EQ_STR(prefix_diff(s, 2, 3), "D /a/f1 3\n"
					   "A /a/new 1\n"
					   "C /c 4\n");
	/* and backwards: the same paths, kinds swapped */
	CHECK_EQ_STR(prefix_diff(s, 2, 1), "C /a/f1 3\n"
					   "A /a/f2 3\n"
					   "A /a/sub 0\n"
					   "A /a/sub/deep 1\n"
					   "C /b 3\n"
					   "D /c 1\n"
					   "C /link 0\n");
	CHECK_EQ_STR(prefix_diff(s, 3, 3), "");
	lf_stack_close(s);
}

static void check_ok(int ret, const char *what)
{
	if (ret)
		LF_FAIL("%s: %s", what, strerror(-ret));
}

static uint64_t lookup(struct lf_upper *up, uint64_t parent, const char *name)
{
	struct stat st;
	uint64_t node = 0;

	check_ok(lf_upper_lookup(up, parent, name, &node, &st), name);
	return node;
}

/* Changes made through the upper API, the way the FUSE handlers make
 * them. */
static void change_upper(struct lf_upper *up)
{
	uint64_t a = lookup(up, LF_UPPER_ROOT, "a"), f1, fh, d, node;
	struct stat st;

	f1 = lookup(up, a, "f1");
	check_ok(lf_upper_open(up, f1, O_RDWR, &fh), "open f1");
	CHECK_EQ_INT(lf_upper_write(up, fh, "X", 1, 0), 1);
	lf_upper_release(up, fh);
	lf_upper_forget(up, f1, 1);
	check_ok(lf_upper_unlink(up, LF_UPPER_ROOT, "b"), "unlink b");
	check_ok(lf_upper_create(up, LF_UPPER_ROOT, "new", 0640,
				 O_WRONLY | O_CREAT | O_EXCL, 0, 0, &node, &st,
				 &fh),
		 "create new");
	CHECK_EQ_INT(lf_upper_write(up, fh, "fresh", 5, 0), 5);
	lf_upper_release(up, fh);
	lf_upper_forget(up, node, 1);
	check_ok(lf_upper_mkdir(up, LF_UPPER_ROOT, "d", 0750, 0, 0, &d, &st),
		 "mkdir d");
	check_ok(lf_upper_symlink(up, d, "s", "../a/f1", 0, 0, &node, &st),
		 "symlink");
	lf_upper_forget(up, node, 1);
	lf_upper_forget(up, d, 1);
	node = lookup(up, LF_UPPER_ROOT, "same");
	st.st_mode = 0600;
	check_ok(lf_upper_setattr(up, node, 0, &st, LF_SET_MODE, &st),
		 "chmod same");
	lf_upper_forget(up, node, 1);
	node = lookup(up, a, "f2");
	check_ok(lf_upper_setxattr(up, node, "user.k", "v", 1, 0), "setxattr");
	lf_upper_forget(up, node, 1);
	check_ok(lf_upper_rename(up, a, "f2", LF_UPPER_ROOT, "g", 0),
		 "rename f2 g");
	check_ok(lf_upper_unlink(up, lookup(up, a, "sub"), "deep"),
		 "unlink deep");
	lf_upper_forget(up, a, 1);
}

LF_TEST(upper_equals_upper_as_a_layer)
{
	const char *one[1] = { "l1" }, *two[2] = { "up", "l1" };
	struct lf_err err = { 0 };
	struct lf_upper *up = NULL;
	struct lf_stack *s, *s2;
	struct lf_buf b;
	char *via_upper;

	make_layers();
	lf_buf_init(&b);
	if (!(s = open_lowers(one, 1)))
		return;
	if (lf_upper_new("up", s, &up, &err)) {
		LF_FAIL("%s", err.msg);
		lf_stack_close(s);
		return;
	}
	change_upper(up);
	{
		struct lf_mview a = { s, lf_stack_tree(s), NULL };
		struct lf_mview v = { s, lf_stack_tree(s), up };

		check_ok(lf_diff_run(&a, &v, collect, &b, &err), err.msg);
	}
	lf_upper_free(up);
	lf_stack_close(s);
	via_upper = strdup(b.len ? b.data : "");
	/* what was done is there */
	CHECK(strstr(via_upper, "C /a/f1 3\n") != NULL);
	CHECK(strstr(via_upper, "D /a/f2 3\n") != NULL);
	CHECK(strstr(via_upper, "D /a/sub/deep 1\n") != NULL);
	CHECK(strstr(via_upper, "D /b 3\n") != NULL);
	CHECK(strstr(via_upper, "A /d 0\nA /d/s 0\n") != NULL);
	CHECK(strstr(via_upper, "A /g 3\n") != NULL);
	CHECK(strstr(via_upper, "A /new 5\n") != NULL);
	CHECK(strstr(via_upper, "C /same 4\n") != NULL);
	/* the same upper dir read as one more layer (index_dir and the tree
	 * merge, not the upper view) gives the same changes */
	if ((s2 = open_lowers(two, 2))) {
		CHECK_EQ_STR(prefix_diff(s2, 1, 2), via_upper);
		lf_stack_close(s2);
	}
	free(via_upper);
	lf_buf_release(&b);
}

static int stop_at_second(void *ctx, const struct lf_diff_change *c)
{
	(void)c;
	return ++*(int *)ctx == 2 ? -EINTR : 0;
}

LF_TEST(callback_stops_the_walk)
{
	const char *lowers[3] = { "l3", "l2", "l1" };
	struct lf_tree *ta = NULL, *tb = NULL;
	struct lf_err err = { 0 };
	struct lf_stack *s;
	int calls = 0;

	make_layers();
	if (!(s = open_lowers(lowers, 3)))
		return;
	CHECK_EQ_INT(lf_stack_tree_prefix(s, 0, &ta, &err), 0);
	CHECK_EQ_INT(lf_stack_tree_prefix(s, 2, &tb, &err), 0);
	if (ta && tb) {
		struct lf_mview a = { s, ta, NULL }, v = { s, tb, NULL };

		CHECK_EQ_INT(lf_diff_run(&a, &v, stop_at_second, &calls, &err),
			     -EINTR);
		CHECK_EQ_INT(calls, 2);
		CHECK(err.code != 0 && strstr(err.msg, "/a/f1") != NULL);
	}
	lf_tree_free(ta);
	lf_tree_free(tb);
	lf_stack_close(s);
}

/* Upper views serve 2000 levels of "n/"; 5000 pass the upper's depth limit
 * (LF_UPPER_MAX_DEPTH, 4096). */
#define DEPTH 2000
#define TOO_DEEP 5000

/* A chain of `depth` directories "n" under `root`, a file at the bottom. */
static void chain(const char *root, int depth)
{
	int fd = open(root, O_RDONLY | O_DIRECTORY), next, i;

	CHECK(fd >= 0);
	for (i = 0; fd >= 0 && i < depth; i++) {
		CHECK_EQ_INT(mkdirat(fd, "n", 0755), 0);
		next = openat(fd, "n", O_RDONLY | O_DIRECTORY);
		close(fd);
		fd = next;
	}
	if (fd >= 0) {
		int f = openat(fd, "leaf", O_WRONLY | O_CREAT, 0644);

		CHECK_EQ_INT(write(f, "12345", 5), 5);
		close(f);
		close(fd);
	}
}

static int count(void *ctx, const struct lf_diff_change *c)
{
	size_t *n = ctx;

	n[0]++;
	if (c->kind == 'D')
		n[1] = c->size;
	return 0;
}

/* Diff the lowers "low" against them + upper dir `upper`, both ways. */
static void deep_diff(const char *upper, int want_fwd, int want_back,
		      size_t *fwd, size_t *back, struct lf_err *err)
{
	const char *lowers[1] = { "low" };
	struct lf_upper *up = NULL;
	struct lf_stack *s;

	if (!(s = open_lowers(lowers, 1)))
		return;
	if (lf_upper_new(upper, s, &up, err)) {
		LF_FAIL("%s", err->msg);
	} else {
		struct lf_mview a = { s, lf_stack_tree(s), NULL };
		struct lf_mview v = { s, lf_stack_tree(s), up };

		CHECK_EQ_INT(lf_diff_run(&a, &v, count, fwd, err), want_fwd);
		memset(err, 0, sizeof(*err));
		CHECK_EQ_INT(lf_diff_run(&v, &a, count, back, err), want_back);
	}
	lf_upper_free(up);
	lf_stack_close(s);
}

LF_TEST(deep_chains_without_recursion)
{
	struct lf_err err = { 0 };
	size_t fwd[2] = { 0, 0 }, back[2] = { 0, 0 };

	dir("low", 0755);
	dir("low/deep", 0755);
	chain("low/deep", 1000);
	dir("up", 0755);
	chain("up", DEPTH);
	deep_diff("up", 0, 0, fwd, back, &err);
	/* DEPTH dirs and the leaf of the upper chain are added */
	CHECK_EQ_INT(fwd[0], DEPTH + 1);
	/* backwards, the upper chain is one D with the bytes at its bottom,
	 * and the lower chain, seen on both sides, compares equal all the
	 * way down */
	CHECK_EQ_INT(back[0], 1);
	CHECK_EQ_INT(back[1], 5);
	/* deeper than a path can name: an error that says so, never a
	 * shorter tree */
	dir("up2", 0755);
	chain("up2", TOO_DEEP);
	fwd[0] = back[0] = back[1] = 0;
	deep_diff("up2", -ENAMETOOLONG, -ENAMETOOLONG, fwd, back, &err);
	CHECK(strstr(err.msg, "/n/n/n") && strstr(err.msg, "..."));
	CHECK_EQ_INT(back[0], 0);
}

int main(int argc, char **argv)
{
	return lf_test_main(argc, argv);
}

// SPDX-License-Identifier: MIT
/*
 * test_upper.c - the copy-on-write layer without FUSE: an upper directory
 * over a lower directory layer, driven through upper.h as the FUSE handlers
 * drive it, checked against what must then be on disk in the upper dir
 * (copied-up bytes, `.wh.NAME` whiteouts, the opaque marker) and against
 * what the merged view answers; the lower layer never changes.
 */
#include "lf_test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layerfs/stack.h"
#include "layerfs/upper.h"

struct cow {
	struct lf_stack *stack;
	struct lf_upper *up;
};

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	CHECK(f != NULL);
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

/* The whole of a host file, or "" (static buffer). */
static const char *slurp(const char *path)
{
	static char buf[256];
	FILE *f = fopen(path, "r");
	size_t n = 0;

	if (f) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return buf;
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* lower/: etc/passwd, etc/hosts, d/x, d/y, keep; upper: up/ (absent). */
static int cow_open(struct cow *c)
{
	const char *lowers[1] = { "lower" };
	struct lf_stack_opts so = { .lowers = lowers,
				    .nlowers = 1,
				    .want_tree = true };
	struct lf_err err = { 0 };
	int ret;

	memset(c, 0, sizeof(*c));
	if (mkdir("lower", 0755) || mkdir("lower/etc", 0755) ||
	    mkdir("lower/d", 0755))
		return -errno;
	put("lower/etc/passwd", "root:x:0:0\n");
	put("lower/etc/hosts", "127.0.0.1 localhost\n");
	put("lower/d/x", "x\n");
	put("lower/d/y", "y\n");
	put("lower/keep", "keep\n");
	if ((ret = lf_stack_open(NULL, &so, &c->stack, &err)) ||
	    (ret = lf_upper_new("up", c->stack, &c->up, &err))) {
		LF_FAIL("%s", err.msg);
		return ret;
	}
	return 0;
}

static void cow_close(struct cow *c)
{
	lf_upper_free(c->up);
	lf_stack_close(c->stack);
	/* the lower layer is never written */
	CHECK_EQ_STR(slurp("lower/etc/passwd"), "root:x:0:0\n");
	CHECK_EQ_STR(slurp("lower/etc/hosts"), "127.0.0.1 localhost\n");
	CHECK(exists("lower/keep") && exists("lower/d/x"));
}

static uint64_t lookup(struct cow *c, uint64_t parent, const char *name,
		       int want)
{
	struct stat st;
	uint64_t node = 0;
	int ret = lf_upper_lookup(c->up, parent, name, &node, &st);

	if (ret != want)
		LF_FAIL("lookup %s: %d, want %d", name, ret, want);
	return ret ? 0 : node;
}

/* The names of a merged listing, sorted, joined by ' ' (static buffer). */
static const char *list(struct cow *c, uint64_t dir)
{
	static char out[512];
	char *names[32];
	struct lf_upper_dirent d;
	uint64_t dh;
	size_t i, n = 0, j;

	out[0] = '\0';
	if (lf_upper_opendir(c->up, dir, &dh)) {
		LF_FAIL("opendir %llu", (unsigned long long)dir);
		return out;
	}
	for (i = 0; n < 32 && !lf_upper_readdir(c->up, dh, i, &d); i++)
		if (strcmp(d.name, ".") && strcmp(d.name, ".."))
			names[n++] = strdup(d.name);
	lf_upper_releasedir(c->up, dh);
	for (i = 1; i < n; i++) /* insertion sort */
		for (j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
			char *t = names[j];

			names[j] = names[j - 1];
			names[j - 1] = t;
		}
	for (i = 0; i < n; i++) {
		if (i)
			strcat(out, " ");
		strncat(out, names[i], sizeof(out) - strlen(out) - 2);
		free(names[i]);
	}
	return out;
}

LF_TEST(write_copies_up)
{
	struct cow c;
	uint64_t etc, pw, fh;
	char buf[64];
	ssize_t n;

	if (cow_open(&c))
		return;
	/* nothing is in the upper dir before a write */
	CHECK(!exists("up/etc"));
	etc = lookup(&c, LF_UPPER_ROOT, "etc", 0);
	pw = lookup(&c, etc, "passwd", 0);
	CHECK_EQ_INT(lf_upper_open(c.up, pw, O_RDONLY, &fh), 0);
	lf_upper_release(c.up, fh);
	CHECK(!exists("up/etc/passwd"));
	CHECK_EQ_INT(lf_upper_open(c.up, pw, O_RDWR, &fh), 0);
	CHECK_EQ_INT(lf_upper_write(c.up, fh, "ROOT", 4, 0), 4);
	n = lf_upper_read(c.up, fh, buf, sizeof(buf) - 1, 0);
	CHECK_EQ_INT(n, 11);
	buf[n > 0 ? n : 0] = '\0';
	CHECK_EQ_STR(buf, "ROOT:x:0:0\n");
	lf_upper_release(c.up, fh);
	/* the file and its parent were copied up, nothing else */
	CHECK_EQ_STR(slurp("up/etc/passwd"), "ROOT:x:0:0\n");
	CHECK(!exists("up/etc/hosts") && !exists("up/d"));
	CHECK_EQ_STR(list(&c, etc), "hosts passwd");
	lf_upper_forget(c.up, pw, 1);
	lf_upper_forget(c.up, etc, 1);
	cow_close(&c);
}

LF_TEST(unlink_leaves_whiteout)
{
	struct cow c;

	if (cow_open(&c))
		return;
	CHECK_EQ_INT(lf_upper_unlink(c.up, LF_UPPER_ROOT, "keep"), 0);
	CHECK(exists("up/.wh.keep"));
	lookup(&c, LF_UPPER_ROOT, "keep", -ENOENT);
	CHECK_EQ_STR(list(&c, LF_UPPER_ROOT), "d etc");
	CHECK_EQ_INT(lf_upper_unlink(c.up, LF_UPPER_ROOT, "keep"), -ENOENT);
	/* a new file by that name takes the whiteout's place */
	{
		struct stat st;
		uint64_t node, fh;

		CHECK_EQ_INT(lf_upper_create(c.up, LF_UPPER_ROOT, "keep", 0644,
					     O_WRONLY | O_CREAT, 0, 0, &node,
					     &st, &fh),
			     0);
		CHECK_EQ_INT(lf_upper_write(c.up, fh, "new\n", 4, 0), 4);
		lf_upper_release(c.up, fh);
		lf_upper_forget(c.up, node, 1);
	}
	CHECK(!exists("up/.wh.keep"));
	CHECK_EQ_STR(slurp("up/keep"), "new\n");
	CHECK_EQ_STR(list(&c, LF_UPPER_ROOT), "d etc keep");
	cow_close(&c);
}

LF_TEST(rmdir_then_mkdir_is_opaque)
{
	struct cow c;
	struct stat st;
	uint64_t d;

	if (cow_open(&c))
		return;
	CHECK_EQ_INT(lf_upper_rmdir(c.up, LF_UPPER_ROOT, "d"), -ENOTEMPTY);
	d = lookup(&c, LF_UPPER_ROOT, "d", 0);
	CHECK_EQ_INT(lf_upper_unlink(c.up, d, "x"), 0);
	CHECK_EQ_INT(lf_upper_unlink(c.up, d, "y"), 0);
	CHECK_EQ_STR(list(&c, d), "");
	lf_upper_forget(c.up, d, 1);
	CHECK_EQ_INT(lf_upper_rmdir(c.up, LF_UPPER_ROOT, "d"), 0);
	CHECK(exists("up/.wh.d"));
	lookup(&c, LF_UPPER_ROOT, "d", -ENOENT);
	CHECK_EQ_INT(lf_upper_mkdir(c.up, LF_UPPER_ROOT, "d", 0700, 0, 0, &d,
				    &st),
		     0);
	CHECK(S_ISDIR(st.st_mode));
	/* the new directory hides the lower one's entries for good */
	CHECK(exists("up/d/.wh..wh..opq"));
	CHECK(!exists("up/.wh.d"));
	CHECK_EQ_STR(list(&c, d), "");
	lookup(&c, d, "x", -ENOENT);
	lf_upper_forget(c.up, d, 1);
	cow_close(&c);
}

LF_TEST(rename_moves_and_whites_out)
{
	struct cow c;
	uint64_t etc;

	if (cow_open(&c))
		return;
	etc = lookup(&c, LF_UPPER_ROOT, "etc", 0);
	CHECK_EQ_INT(lf_upper_rename(c.up, etc, "hosts", LF_UPPER_ROOT,
				     "hosts2", 0),
		     0);
	CHECK_EQ_STR(slurp("up/hosts2"), "127.0.0.1 localhost\n");
	CHECK(exists("up/etc/.wh.hosts"));
	lookup(&c, etc, "hosts", -ENOENT);
	CHECK_EQ_STR(list(&c, etc), "passwd");
	CHECK_EQ_STR(list(&c, LF_UPPER_ROOT), "d etc hosts2 keep");
	/* RENAME_NOREPLACE over an existing lower name */
	CHECK_EQ_INT(lf_upper_rename(c.up, LF_UPPER_ROOT, "hosts2",
				     LF_UPPER_ROOT, "keep", RENAME_NOREPLACE),
		     -EEXIST);
	lf_upper_forget(c.up, etc, 1);
	cow_close(&c);
}

LF_TEST(reserved_names_refused_and_hidden)
{
	struct cow c;
	struct stat st;
	uint64_t node, fh;

	if (cow_open(&c))
		return;
	/* a name the view could never show cannot be made */
	CHECK(lf_upper_create(c.up, LF_UPPER_ROOT, ".wh.keep", 0644,
			      O_WRONLY | O_CREAT, 0, 0, &node, &st, &fh) < 0);
	CHECK(exists("lower/keep"));
	lookup(&c, LF_UPPER_ROOT, "keep", 0);
	/* one put there from outside is never listed */
	put("up/.wh..wh..lftmp.123", "half a copy-up");
	CHECK_EQ_STR(list(&c, LF_UPPER_ROOT), "d etc keep");
	cow_close(&c);
}

int main(int argc, char **argv)
{
	return lf_test_main(argc, argv);
}

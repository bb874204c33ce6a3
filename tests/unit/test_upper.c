// SPDX-License-Identifier: MIT
/*
 * test_upper.c - the copy-on-write layer without FUSE: an upper directory
 * over a lower directory layer, driven through upper.h as the FUSE handlers
 * drive it, checked against what must then be on disk in the upper dir
 * (copied-up bytes, `.wh.NAME` whiteouts, the opaque marker) and against
 * what the merged view answers; the lower layer never changes.
 */
#include "lf_test.h"
#include "lf_testimg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
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

/* The stack of "img" (or of lowers only, img NULL) with its merged tree:
 * the one place a test builds what lf_upper_new() runs over. */
static int open_stack(const char *img, const char *const *lowers,
		      size_t nlowers, struct lf_stack **out)
{
	struct lf_stack_opts so = { .lowers = lowers,
				    .nlowers = nlowers,
				    .verify = true,
				    .want_tree = true };
	struct lf_err err = { 0 };
	int ret = lf_stack_open(img, &so, out, &err);

	if (ret)
		LF_FAIL("%s", err.msg);
	return ret;
}

/* lower/: etc/passwd, etc/hosts, d/x, d/y, keep; upper: up/ (absent). */
static int cow_open(struct cow *c)
{
	const char *lowers[1] = { "lower" };
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
	if ((ret = open_stack(NULL, lowers, 1, &c->stack)))
		return ret;
	if ((ret = lf_upper_new("up", c->stack, &c->up, &err))) {
		LF_FAIL("%s", err.msg);
		lf_stack_close(c->stack);
	}
	return ret;
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

/*
 * Directories the upper keeps fds of, renamed from outside: the view follows
 * the paths (a new directory at the old path is what it lists), and nothing
 * is made in the moved directory, inside the upper dir or out of it.
 */
LF_TEST(cached_dirs_follow_outside_renames)
{
	struct cow c;
	struct stat st;
	uint64_t n1, n2, f, fh;

	if (cow_open(&c))
		return;
	CHECK_EQ_INT(lf_upper_mkdir(c.up, LF_UPPER_ROOT, "n1", 0755, 0, 0, &n1,
				    &st),
		     0);
	CHECK_EQ_INT(lf_upper_mkdir(c.up, n1, "n2", 0755, 0, 0, &n2, &st), 0);
	CHECK_EQ_INT(lf_upper_create(c.up, n2, "f", 0644, O_WRONLY, 0, 0, &f,
				     &st, &fh),
		     0);
	lf_upper_release(c.up, fh);
	CHECK_EQ_STR(list(&c, n2), "f");
	/* n1 moved within the upper dir, another n1 made in its place */
	CHECK(rename("up/n1", "up/moved") == 0);
	CHECK(mkdir("up/n1", 0755) == 0);
	put("up/n1/other", "other\n");
	CHECK_EQ_STR(list(&c, n1), "other");
	CHECK(lf_upper_create(c.up, n2, "g", 0644, O_WRONLY, 0, 0, &f, &st,
			      &fh) < 0);
	CHECK(!exists("up/moved/n2/g"));
	/* and out of the upper dir altogether */
	CHECK(rename("up/n1", "outside") == 0);
	CHECK_EQ_INT(lf_upper_lookup(c.up, n1, "other", &f, &st), -ENOENT);
	CHECK(lf_upper_create(c.up, n1, "h", 0644, O_WRONLY, 0, 0, &f, &st,
			      &fh) < 0);
	CHECK(!exists("up/n1") && !exists("outside/h"));
	CHECK_EQ_STR(slurp("outside/other"), "other\n");
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

/* ---- over an image: copy-up streams a gzip layer's bytes ---- */

static int img_open(struct cow *c)
{
	struct lf_err err = { 0 };
	int ret;

	memset(c, 0, sizeof(*c));
	if (lf_testimg_make())
		return -EIO;
	if ((ret = open_stack("img", NULL, 0, &c->stack)))
		return ret;
	if ((ret = lf_upper_new("up", c->stack, &c->up, &err))) {
		LF_FAIL("%s", err.msg);
		lf_stack_close(c->stack);
	}
	return ret;
}

LF_TEST(image_copy_up_streams_data_and_keeps_metadata)
{
	struct cow c;
	struct stat before, after, st;
	uint64_t etc, conf, fh;
	unsigned char *buf;
	char val[16];
	size_t i, bad = 0;
	ssize_t n;
	bool in_upper = true;

	if (img_open(&c))
		return;
	/* the merged view: layer 2 whited out etc/old and added etc/new */
	CHECK_EQ_STR(list(&c, LF_UPPER_ROOT), "etc link");
	etc = lookup(&c, LF_UPPER_ROOT, "etc", 0);
	CHECK_EQ_STR(list(&c, etc), "conf new");
	lookup(&c, etc, "old", -ENOENT);
	conf = 0;
	CHECK_EQ_INT(lf_upper_lookup(c.up, etc, "conf", &conf, &before), 0);
	CHECK_EQ_INT(before.st_size, LF_TESTIMG_CONF_SIZE);
	CHECK_EQ_INT(before.st_mode, S_IFREG | 0640);
	CHECK_EQ_INT(before.st_uid, 7);
	CHECK_EQ_INT(before.st_gid, 8);
	CHECK_EQ_INT(before.st_mtime, 2000);
	CHECK_EQ_INT(lf_upper_in_upper(c.up, conf, &in_upper), 0);
	CHECK(!in_upper);
	/* write 4 bytes in the middle: the whole file is copied up */
	CHECK_EQ_INT(lf_upper_open(c.up, conf, O_RDWR, &fh), 0);
	CHECK_EQ_INT(lf_upper_write(c.up, fh, "EDIT", 4, 100000), 4);
	lf_upper_release(c.up, fh);
	CHECK_EQ_INT(lf_upper_in_upper(c.up, conf, &in_upper), 0);
	CHECK(in_upper);
	/* on disk: the bytes of the layer but the four, owner, mode, xattr */
	CHECK_EQ_INT(lstat("up/etc/conf", &st), 0);
	CHECK(S_ISREG(st.st_mode));
	CHECK_EQ_INT(st.st_mode & 07777, 0640);
	CHECK_EQ_INT(st.st_uid, 7);
	CHECK_EQ_INT(st.st_gid, 8);
	CHECK_EQ_INT(st.st_size, LF_TESTIMG_CONF_SIZE);
	buf = malloc(LF_TESTIMG_CONF_SIZE + 1);
	CHECK(buf != NULL);
	{
		FILE *f = fopen("up/etc/conf", "rb");

		n = f && buf ? (ssize_t)fread(buf, 1, LF_TESTIMG_CONF_SIZE + 1,
					      f)
			     : -1;
		if (f)
			fclose(f);
	}
	CHECK_EQ_INT(n, LF_TESTIMG_CONF_SIZE);
	for (i = 0;
	     buf && n == LF_TESTIMG_CONF_SIZE && i < LF_TESTIMG_CONF_SIZE; i++)
		if (buf[i] != (i >= 100000 && i < 100004
				       ? (unsigned char)"EDIT"[i - 100000]
				       : lf_testimg_byte(i)))
			bad++;
	CHECK_EQ_INT(bad, 0);
	n = lgetxattr("up/etc/conf", "user.tag", val, sizeof(val));
	CHECK_EQ_INT(n, 4);
	CHECK(n == 4 && !memcmp(val, "blue", 4));
	/* the parent was copied up with its own metadata */
	CHECK_EQ_INT(lstat("up/etc", &st), 0);
	CHECK(S_ISDIR(st.st_mode));
	CHECK_EQ_INT(st.st_mode & 07777, 0750);
	CHECK_EQ_INT(st.st_uid, 7);
	CHECK_EQ_INT(st.st_gid, 8);
	CHECK_EQ_INT(st.st_mtime, 1000);
	/* nothing else was: not the sibling, not the symlink */
	CHECK(!exists("up/etc/new") && !exists("up/link"));
	CHECK(!exists("up/etc/old") && !exists("up/etc/.wh.old"));
	/* the view keeps the inode number across copy-up */
	CHECK_EQ_INT(lf_upper_getattr(c.up, conf, &after), 0);
	CHECK_EQ_INT(after.st_ino, before.st_ino);
	CHECK_EQ_INT(after.st_size, LF_TESTIMG_CONF_SIZE);
	/* and reads the edited bytes, also across a 64 KiB boundary */
	CHECK_EQ_INT(lf_upper_open(c.up, conf, O_RDONLY, &fh), 0);
	n = buf ? lf_upper_read(c.up, fh, buf, 8, 99998) : -1;
	CHECK_EQ_INT(n, 8);
	if (n == 8) {
		CHECK_EQ_INT(buf[0], lf_testimg_byte(99998));
		CHECK(!memcmp(buf + 2, "EDIT", 4));
		CHECK_EQ_INT(buf[7], lf_testimg_byte(100005));
	}
	lf_upper_release(c.up, fh);
	free(buf);
	/* the still-lower sibling reads straight from the layer */
	{
		uint64_t nw = lookup(&c, etc, "new", 0), h2;
		char b2[16] = { 0 };

		CHECK_EQ_INT(lf_upper_open(c.up, nw, O_RDONLY, &h2), 0);
		CHECK_EQ_INT(lf_upper_read(c.up, h2, b2, sizeof(b2) - 1, 0), 4);
		CHECK_EQ_STR(b2, "new\n");
		lf_upper_release(c.up, h2);
		/* unlinking it leaves a whiteout in the copied-up parent */
		lf_upper_forget(c.up, nw, 1);
		CHECK_EQ_INT(lf_upper_unlink(c.up, etc, "new"), 0);
		CHECK(exists("up/etc/.wh.new"));
		CHECK_EQ_STR(list(&c, etc), "conf");
	}
	/* the symlink resolves as the layer says */
	{
		uint64_t ln = lookup(&c, LF_UPPER_ROOT, "link", 0);
		char target[64] = { 0 };

		CHECK_EQ_INT(lf_upper_readlink(c.up, ln, target,
					       sizeof(target)),
			     0);
		CHECK_EQ_STR(target, "etc/conf");
		lf_upper_forget(c.up, ln, 1);
	}
	lf_upper_forget(c.up, conf, 1);
	lf_upper_forget(c.up, etc, 1);
	lf_upper_free(c.up);
	lf_stack_close(c.stack);
}

/* The rootless ownership record: what it accepts, and that anything else
 * leaves the host stat as it is. */
LF_TEST(override_record_parse)
{
	static const struct {
		const char *v;
		mode_t host, want_mode;
		uid_t uid;
		gid_t gid;
		dev_t rdev;
	} ok[] = {
		{ "0:0:0644", S_IFREG, S_IFREG | 0644, 0, 0, 0 },
		{ "33:33:0750:dir", S_IFDIR, S_IFDIR | 0750, 33, 33, 0 },
		{ "0:0:4755:file", S_IFREG, S_IFREG | 04755, 0, 0, 0 },
		{ "7:8:0620:pipe", S_IFREG, S_IFIFO | 0620, 7, 8, 0 },
		{ "0:0:0666:char-1-3", S_IFREG, S_IFCHR | 0666, 0, 0,
		  1 * 256 + 3 },
		{ "0:6:0660:block-8-1", S_IFREG, S_IFBLK | 0660, 0, 6,
		  8 * 256 + 1 },
		{ "4294967294:1:0", S_IFREG, S_IFREG, 4294967294u, 1, 0 },
	};
	static const struct {
		const char *v;
		mode_t host;
	} bad[] = {
		{ "", S_IFREG },
		{ "0:0", S_IFREG },
		{ "0:0:", S_IFREG },
		{ "a:0:0644", S_IFREG },
		{ "0:0:0648", S_IFREG },	  /* not octal */
		{ "0:0:17777", S_IFREG },	  /* beyond 07777 */
		{ "4294967295:0:0644", S_IFREG }, /* (uid_t)-1 */
		{ "99999999999999999999:0:0644", S_IFREG },
		{ "-1:0:0644", S_IFREG },
		{ "0:0:0644:dir", S_IFREG }, /* type does not fit */
		{ "0:0:0755:file", S_IFDIR },
		{ "0:0:0644:pipe", S_IFDIR }, /* only a file stands in */
		{ "0:0:0644:symlink", S_IFREG },
		{ "0:0:0644:char-1", S_IFREG },
		{ "0:0:0644:char-1-", S_IFREG },
		{ "0:0:0644:char-x-3", S_IFREG },
		{ "0:0:0644:char-99999999-3", S_IFREG },
		{ "0:0:0644:", S_IFREG },
		{ "0:0:0644:file:x", S_IFREG },
		{ "0:0:0644 ", S_IFREG },
	};
	size_t i;

	for (i = 0; i < LF_ARRAY_SIZE(ok); i++) {
		struct stat st = { .st_mode = ok[i].host | 0600,
				   .st_uid = 1000,
				   .st_gid = 1000,
				   .st_size = 5 };

		char buf[128];

		/* the value is not NUL-terminated (an xattr): digits after
		 * it must not be read */
		memset(buf, '9', sizeof(buf));
		memcpy(buf, ok[i].v, strlen(ok[i].v));
		CHECK_EQ_INT(lf_upper_override_apply(buf, strlen(ok[i].v), &st),
			     0);
		CHECK_EQ_INT(st.st_mode, ok[i].want_mode);
		CHECK_EQ_INT(st.st_uid, ok[i].uid);
		CHECK_EQ_INT(st.st_gid, ok[i].gid);
		if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
			CHECK_EQ_INT(st.st_size, 0);
			CHECK_EQ_INT(st.st_rdev, ok[i].rdev);
		}
	}
	for (i = 0; i < LF_ARRAY_SIZE(bad); i++) {
		struct stat st = { .st_mode = bad[i].host | 0600,
				   .st_uid = 1000,
				   .st_gid = 1000 };

		CHECK_EQ_INT(lf_upper_override_apply(bad[i].v, strlen(bad[i].v),
						     &st),
			     -EINVAL);
		CHECK_EQ_INT(st.st_mode, bad[i].host | 0600);
		CHECK_EQ_INT(st.st_uid, 1000);
	}
	/* format and parse agree */
	{
		struct stat img = { .st_mode = S_IFCHR | 0640,
				    .st_uid = 5,
				    .st_gid = 6,
				    .st_rdev = 4 * 256 + 64 },
			    st = { .st_mode = S_IFREG | 0600 };
		char buf[128];

		CHECK_EQ_INT(lf_upper_override_format(buf, sizeof(buf), &img),
			     0);
		CHECK_EQ_STR(buf, "5:6:0640:char-4-64");
		CHECK_EQ_INT(lf_upper_override_apply(buf, strlen(buf), &st), 0);
		CHECK_EQ_INT(st.st_mode, img.st_mode);
		CHECK_EQ_INT(st.st_rdev, img.st_rdev);
		CHECK_EQ_INT(lf_upper_override_format(buf, 8, &img), -ERANGE);
	}
}

int main(int argc, char **argv)
{
	return lf_test_main(argc, argv);
}

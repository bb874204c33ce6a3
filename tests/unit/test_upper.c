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

/* An OCI layout "img" of two gzip layers:
 *   1: etc/ (0750, 7:8, mtime 1000), etc/conf (0640, 7:8, mtime 2000,
 *      user.tag=blue, CONF_SIZE bytes of pattern()), etc/old, link -> etc/conf
 *   2: etc/.wh.old, etc/new ("new\n")
 * written by python's tarfile, gzip and json, not by layerfs. */
#define CONF_SIZE (300u << 10)
static const char mkimg_py[] =
	"import hashlib, io, json, os, tarfile, gzip\n"
	"def blob(data):\n"
	"    h = hashlib.sha256(data).hexdigest()\n"
	"    open('img/blobs/sha256/' + h, 'wb').write(data)\n"
	"    return 'sha256:' + h\n"
	"def tar(members):\n"
	"    b = io.BytesIO()\n"
	"    with tarfile.open(fileobj=b, mode='w', format=tarfile.PAX_FORMAT) "
	"as t:\n"
	"        for name, typ, data, mode, mtime, extra in members:\n"
	"            ti = tarfile.TarInfo(name)\n"
	"            ti.type, ti.mode, ti.mtime = typ, mode, mtime\n"
	"            ti.uid, ti.gid = 7, 8\n"
	"            if typ == tarfile.SYMTYPE:\n"
	"                ti.linkname = data\n"
	"                data = b''\n"
	"            ti.size = len(data)\n"
	"            ti.pax_headers = extra\n"
	"            t.addfile(ti, io.BytesIO(data))\n"
	"    return b.getvalue()\n"
	"conf = bytes((i * 31 + 7) & 255 for i in range(%u))\n"
	"l1 = tar([('etc', tarfile.DIRTYPE, b'', 0o750, 1000, {}),\n"
	"          ('etc/conf', tarfile.REGTYPE, conf, 0o640, 2000,\n"
	"           {'SCHILY.xattr.user.tag': 'blue'}),\n"
	"          ('etc/old', tarfile.REGTYPE, b'old\\n', 0o644, 3000, {}),\n"
	"          ('link', tarfile.SYMTYPE, 'etc/conf', 0o777, 4000, {})])\n"
	"l2 = tar([('etc/.wh.old', tarfile.REGTYPE, b'', 0o644, 5000, {}),\n"
	"          ('etc/new', tarfile.REGTYPE, b'new\\n', 0o644, 5000, {})])\n"
	"os.makedirs('img/blobs/sha256')\n"
	"layers = []\n"
	"for raw in (l1, l2):\n"
	"    gz = gzip.compress(raw, mtime=0)\n"
	"    layers.append({'mediaType':\n"
	"                   'application/vnd.oci.image.layer.v1.tar+gzip',\n"
	"                   'digest': blob(gz), 'size': len(gz)})\n"
	"cfg = json.dumps({'architecture': 'amd64', 'os': 'linux',\n"
	"                  'rootfs': {'type': 'layers', 'diff_ids':\n"
	"                   ['sha256:' + hashlib.sha256(r).hexdigest()\n"
	"                    for r in (l1, l2)]}}).encode()\n"
	"mt = 'application/vnd.oci.image.manifest.v1+json'\n"
	"man = json.dumps({'schemaVersion': 2, 'mediaType': mt,\n"
	"    'config': {'mediaType': "
	"'application/vnd.oci.image.config.v1+json',\n"
	"               'digest': blob(cfg), 'size': len(cfg)},\n"
	"    'layers': layers}).encode()\n"
	"open('img/oci-layout', 'w').write('{\"imageLayoutVersion\": "
	"\"1.0.0\"}')\n"
	"json.dump({'schemaVersion': 2, 'manifests': [{'mediaType': mt,\n"
	"           'digest': blob(man), 'size': len(man)}]},\n"
	"          open('img/index.json', 'w'))\n";

/* Byte i of etc/conf, as mkimg_py makes it. */
static unsigned char pattern(size_t i)
{
	return (unsigned char)((i * 31 + 7) & 255);
}

static int img_open(struct cow *c)
{
	char cmd[8192];
	FILE *f;
	struct lf_err err = { 0 };
	int ret;

	memset(c, 0, sizeof(*c));
	f = fopen("mkimg.py", "w");
	CHECK(f != NULL);
	if (!f)
		return -EIO;
	fprintf(f, mkimg_py, CONF_SIZE);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "%s mkimg.py",
		 access("/usr/bin/python3", X_OK) ? "python3"
						  : "/usr/bin/python3");
	if (system(cmd)) {
		LF_FAIL("cannot make the image: %s", cmd);
		return -EIO;
	}
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
	CHECK_EQ_INT(before.st_size, CONF_SIZE);
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
	CHECK_EQ_INT(st.st_size, CONF_SIZE);
	buf = malloc(CONF_SIZE + 1);
	CHECK(buf != NULL);
	{
		FILE *f = fopen("up/etc/conf", "rb");

		n = f && buf ? (ssize_t)fread(buf, 1, CONF_SIZE + 1, f) : -1;
		if (f)
			fclose(f);
	}
	CHECK_EQ_INT(n, CONF_SIZE);
	for (i = 0; buf && n == CONF_SIZE && i < CONF_SIZE; i++)
		if (buf[i] != (i >= 100000 && i < 100004
				       ? (unsigned char)"EDIT"[i - 100000]
				       : pattern(i)))
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
	CHECK_EQ_INT(after.st_size, CONF_SIZE);
	/* and reads the edited bytes, also across a 64 KiB boundary */
	CHECK_EQ_INT(lf_upper_open(c.up, conf, O_RDONLY, &fh), 0);
	n = buf ? lf_upper_read(c.up, fh, buf, 8, 99998) : -1;
	CHECK_EQ_INT(n, 8);
	if (n == 8) {
		CHECK_EQ_INT(buf[0], pattern(99998));
		CHECK(!memcmp(buf + 2, "EDIT", 4));
		CHECK_EQ_INT(buf[7], pattern(100005));
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

int main(int argc, char **argv)
{
	return lf_test_main(argc, argv);
}

// SPDX-License-Identifier: MIT
/*
 * test_commit.c - lf_commit() without the CLI, its output read back by
 * other code: jansson for the documents, OpenSSL for every digest,
 * libarchive (the reader) for the layer.  The new layer must hold exactly
 * what a walk of the upper dir on disk finds (this file's own walk), the
 * base layers must be the base's bytes, the config's diff_id the digest of
 * the uncompressed tar; a second commit gives the same bytes; a squash
 * holds the merged view; errors leave nothing behind.
 */
#include "lf_test.h"
#include "lf_testimg.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "layerfs/commit.h"
#include "layerfs/stack.h"

/* ---- reading the output ---- */

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *p = NULL;
	long n;

	*len = 0;
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (p = malloc((size_t)n + 1)) &&
	    fread(p, 1, (size_t)n, f) == (size_t)n) {
		p[n] = '\0';
		*len = (size_t)n;
	} else {
		free(p);
		p = NULL;
	}
	fclose(f);
	return p;
}

static void sha256_hex(const void *p, size_t n, char out[72])
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	int i;

	EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL);
	strcpy(out, "sha256:");
	for (i = 0; i < 32; i++)
		sprintf(out + 7 + 2 * i, "%02x", md[i]);
}

/* The blob of descriptor d in layout `dir`, checked against d's digest and
 * size; malloc'd, or NULL. */
static char *blob(const char *dir, json_t *d, size_t *len)
{
	const char *digest = json_string_value(json_object_get(d, "digest"));
	json_int_t size = json_integer_value(json_object_get(d, "size"));
	char path[512], got[72];
	char *p;

	if (!digest || strncmp(digest, "sha256:", 7)) {
		LF_FAIL("descriptor without a sha256 digest");
		return NULL;
	}
	snprintf(path, sizeof(path), "%s/blobs/sha256/%s", dir, digest + 7);
	if (!(p = slurp(path, len))) {
		LF_FAIL("cannot read %s", path);
		return NULL;
	}
	sha256_hex(p, *len, got);
	CHECK_EQ_STR(got, digest);
	CHECK_EQ_INT((json_int_t)*len, size);
	return p;
}

static json_t *parse(const char *p, size_t len)
{
	json_error_t e;
	json_t *j = p ? json_loadb(p, len, 0, &e) : NULL;

	if (!j)
		LF_FAIL("bad JSON: %s", p ? e.text : "(none)");
	return j;
}

/* A layout's manifest (through index.json) and config, both checked. */
struct layout {
	json_t *manifest, *config;
	char *mbytes, *cbytes;
};

static int layout_open(const char *dir, struct layout *l)
{
	char path[512], *ib;
	size_t n;
	json_t *index, *md;

	memset(l, 0, sizeof(*l));
	snprintf(path, sizeof(path), "%s/index.json", dir);
	ib = slurp(path, &n);
	index = parse(ib, n);
	free(ib);
	md = json_array_get(json_object_get(index, "manifests"), 0);
	if (md && (l->mbytes = blob(dir, md, &n)))
		l->manifest = parse(l->mbytes, n);
	json_decref(index);
	if (!l->manifest)
		return -1;
	l->cbytes = blob(dir, json_object_get(l->manifest, "config"), &n);
	l->config = parse(l->cbytes, n);
	return l->config ? 0 : -1;
}

static void layout_close(struct layout *l)
{
	json_decref(l->manifest);
	json_decref(l->config);
	free(l->mbytes);
	free(l->cbytes);
}

static json_t *layer_desc(struct layout *l, size_t i)
{
	return json_array_get(json_object_get(l->manifest, "layers"), i);
}

static size_t layer_count(struct layout *l)
{
	return json_array_size(json_object_get(l->manifest, "layers"));
}

/* ---- one line per member, the same from a tar and from a directory ---- */

/* "path type mode uid:gid mtime size sha256|->target|=>link xattrs\n" */
static void line(struct lf_buf *out, const char *path, mode_t mode, uid_t uid,
		 gid_t gid, long mtime, long long size, const char *what,
		 const char *xattrs)
{
	lf_buf_addf(out, "%s %c %04o %u:%u %ld %lld %s%s\n", path,
		    S_ISDIR(mode)   ? 'd'
		    : S_ISLNK(mode) ? 'l'
		    : S_ISREG(mode) ? 'f'
				    : '?',
		    (unsigned)(mode & 07777), (unsigned)uid, (unsigned)gid,
		    mtime, size, what, xattrs);
}

/* The new layer as lines, read by libarchive; *tar_sha: sha256 of the
 * uncompressed tar stream (read a second time, raw). */
static void read_layer(const char *gz, size_t len, struct lf_buf *out,
		       char tar_sha[72])
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	struct lf_buf data, raw;
	char what[600], xa[256];

	lf_buf_init(&data);
	lf_buf_init(&raw);
	archive_read_support_filter_gzip(a);
	archive_read_support_format_tar(a);
	CHECK_EQ_INT(archive_read_open_memory(a, gz, len), ARCHIVE_OK);
	while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
		const char *name, *val;
		const void *v;
		size_t vl;
		char buf[65536];
		la_ssize_t n;

		lf_buf_reset(&data);
		while ((n = archive_read_data(a, buf, sizeof(buf))) > 0)
			lf_buf_add(&data, buf, (size_t)n);
		xa[0] = '\0';
		archive_entry_xattr_reset(e);
		while (archive_entry_xattr_next(e, &name, &v, &vl) ==
		       ARCHIVE_OK) {
			val = v;
			snprintf(xa + strlen(xa), sizeof(xa) - strlen(xa),
				 " %s=%.*s", name, (int)vl, val);
		}
		if (archive_entry_hardlink(e))
			snprintf(what, sizeof(what), "=>%s",
				 archive_entry_hardlink(e));
		else if (archive_entry_symlink(e))
			snprintf(what, sizeof(what), "->%s",
				 archive_entry_symlink(e));
		else if (archive_entry_filetype(e) == AE_IFREG)
			sha256_hex(data.data ? data.data : "", data.len, what);
		else
			strcpy(what, "-");
		{
			char path[512];
			size_t pl;

			snprintf(path, sizeof(path), "%s",
				 archive_entry_pathname(e));
			pl = strlen(path);
			if (pl > 1 && path[pl - 1] == '/')
				path[pl - 1] = '\0';
			/* a hardlink member's type is its target's */
			line(out, path,
			     archive_entry_hardlink(e)
				     ? (archive_entry_mode(e) & 07777) | S_IFREG
				     : archive_entry_mode(e),
			     (uid_t)archive_entry_uid(e),
			     (gid_t)archive_entry_gid(e),
			     (long)archive_entry_mtime(e),
			     archive_entry_hardlink(e)
				     ? 0
				     : (long long)archive_entry_size(e),
			     what, xa);
		}
	}
	archive_read_free(a);
	a = archive_read_new();
	archive_read_support_filter_gzip(a);
	archive_read_support_format_raw(a);
	CHECK_EQ_INT(archive_read_open_memory(a, gz, len), ARCHIVE_OK);
	if (archive_read_next_header(a, &e) == ARCHIVE_OK) {
		char buf[65536];
		la_ssize_t n;

		while ((n = archive_read_data(a, buf, sizeof(buf))) > 0)
			lf_buf_add(&raw, buf, (size_t)n);
	}
	archive_read_free(a);
	sha256_hex(raw.data ? raw.data : "", raw.len, tar_sha);
	lf_buf_release(&data);
	lf_buf_release(&raw);
}

static int byte_order(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

struct seen {
	dev_t dev;
	ino_t ino;
	char path[512];
};

/* The upper dir on disk as lines: this file's own walk, in the order the
 * layer must have (names in byte order, parents first), the second name
 * of an inode as a hardlink to the first. */
static void walk_dir(const char *root, const char *rel, struct lf_buf *out,
		     struct seen *seen, size_t *nseen)
{
	struct dirent **ents;
	char dpath[512];
	int n, i;

	snprintf(dpath, sizeof(dpath), "%s%s%s", root, *rel ? "/" : "", rel);
	n = scandir(dpath, &ents, NULL, byte_order);
	for (i = 0; i < n; i++) {
		const char *nm = ents[i]->d_name;
		char full[600], path[512], what[600], xa[2048] = "";
		char list[1024], val[256];
		struct stat st;
		size_t k;
		ssize_t ll, vl;
		char *p;

		if (!strcmp(nm, ".") || !strcmp(nm, ".."))
			goto next;
		snprintf(path, sizeof(path), "%s%s%s", rel, *rel ? "/" : "",
			 nm);
		snprintf(full, sizeof(full), "%s/%s", root, path);
		CHECK_EQ_INT(lstat(full, &st), 0);
		ll = llistxattr(full, list, sizeof(list));
		for (p = list; ll > 0 && p < list + ll; p += strlen(p) + 1) {
			if (strncmp(p, "user.", 5))
				continue;
			vl = lgetxattr(full, p, val, sizeof(val));
			snprintf(xa + strlen(xa), sizeof(xa) - strlen(xa),
				 " %s=%.*s", p, (int)(vl > 0 ? vl : 0), val);
		}
		strcpy(what, "-");
		for (k = 0;
		     !S_ISDIR(st.st_mode) && st.st_nlink > 1 && k < *nseen; k++)
			if (seen[k].dev == st.st_dev &&
			    seen[k].ino == st.st_ino)
				break;
		if (!S_ISDIR(st.st_mode) && st.st_nlink > 1 && k < *nseen) {
			snprintf(what, sizeof(what), "=>%s", seen[k].path);
			line(out, path, st.st_mode, st.st_uid, st.st_gid,
			     (long)st.st_mtime, 0, what, "");
			goto next;
		}
		if (!S_ISDIR(st.st_mode) && st.st_nlink > 1 && *nseen < 16) {
			seen[*nseen].dev = st.st_dev;
			seen[*nseen].ino = st.st_ino;
			snprintf(seen[*nseen].path, sizeof(seen->path), "%s",
				 path);
			(*nseen)++;
		}
		if (S_ISREG(st.st_mode)) {
			size_t len;
			char *d = slurp(full, &len);

			sha256_hex(d ? d : "", len, what);
			free(d);
		} else if (S_ISLNK(st.st_mode)) {
			char t[256];
			ssize_t tl = readlink(full, t, sizeof(t) - 1);

			t[tl > 0 ? tl : 0] = '\0';
			snprintf(what, sizeof(what), "->%s", t);
		}
		line(out, path, st.st_mode, st.st_uid, st.st_gid,
		     (long)st.st_mtime,
		     S_ISREG(st.st_mode) ? (long long)st.st_size : 0, what, xa);
		if (S_ISDIR(st.st_mode))
			walk_dir(root, path, out, seen, nseen);
	next:
		free(ents[i]);
	}
	if (n >= 0)
		free(ents);
}

/* ---- the inputs ---- */

#define TOOL "#!/bin/sh\necho hi\n"

static void settime(const char *path, long t)
{
	struct timespec ts[2] = { { t, 0 }, { t, 0 } };

	CHECK_EQ_INT(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static void put(const char *path, const char *text, mode_t mode, long t)
{
	FILE *f = fopen(path, "w");

	CHECK(f != NULL);
	if (f) {
		fputs(text, f);
		fclose(f);
	}
	CHECK_EQ_INT(chmod(path, mode), 0);
	settime(path, t);
}

/* An upper dir as a copy-on-write mount leaves one: etc copied up and made
 * opaque, etc/conf rewritten with an xattr, link deleted, bin/ new with a
 * file under two names, a new symlink. */
static void make_upper(void)
{
	CHECK_EQ_INT(mkdir("up", 0755), 0);
	CHECK_EQ_INT(mkdir("up/etc", 0750), 0);
	CHECK_EQ_INT(chown("up/etc", 7, 8), 0);
	put("up/etc/.wh..wh..opq", "", 0644, 1000);
	put("up/etc/conf", "changed\n", 0600, 6000);
	CHECK_EQ_INT(chown("up/etc/conf", 7, 8), 0);
	CHECK_EQ_INT(setxattr("up/etc/conf", "user.note", "x", 1, 0), 0);
	put("up/.wh.link", "", 0644, 1000);
	CHECK_EQ_INT(mkdir("up/bin", 0755), 0);
	put("up/bin/tool", TOOL, 0755, 7001);
	CHECK_EQ_INT(link("up/bin/tool", "up/bin/tool2"), 0);
	CHECK_EQ_INT(symlink("bin/tool", "up/sym"), 0);
	settime("up/sym", 7002);
	settime("up/bin", 7000);
	settime("up/etc", 1000);
	settime("up", 900);
}

static struct lf_stack *open_image(void)
{
	struct lf_stack_opts so = { .verify = true, .want_tree = true };
	struct lf_err err = { 0 };
	struct lf_stack *s = NULL;

	if (lf_testimg_make())
		return NULL;
	if (lf_stack_open("img", &so, &s, &err)) {
		LF_FAIL("%s", err.msg);
		return NULL;
	}
	return s;
}

static int commit(struct lf_stack *s, const char *upper, const char *out,
		  bool squash, struct lf_commit_result *r, struct lf_err *err)
{
	struct lf_commit_opts o = { .out = out,
				    .format = LF_COMMIT_OCI,
				    .tag = "test:1",
				    .message = "unit test",
				    .squash = squash };

	memset(r, 0, sizeof(*r));
	memset(err, 0, sizeof(*err));
	return lf_commit(s, upper, &o, r, err);
}

/* The layer i of layout `dir`: lines of its members; checks the config's
 * diff_id i against the tar. */
static void layer_lines(const char *dir, struct layout *l, size_t i,
			struct lf_buf *out)
{
	json_t *ids = json_object_get(json_object_get(l->config, "rootfs"),
				      "diff_ids");
	char tar_sha[72];
	size_t len;
	char *gz = blob(dir, layer_desc(l, i), &len);

	if (!gz)
		return;
	read_layer(gz, len, out, tar_sha);
	CHECK_EQ_STR(tar_sha, json_string_value(json_array_get(ids, i)));
	free(gz);
}

LF_TEST(new_layer_is_the_upper_dir)
{
	struct lf_commit_result r;
	struct lf_err err;
	struct lf_stack *s = open_image();
	struct layout base, out;
	struct lf_buf got, want;
	struct seen seen[16];
	size_t nseen = 0, i, n1, n2;

	if (!s)
		return;
	make_upper();
	lf_buf_init(&got);
	lf_buf_init(&want);
	CHECK_EQ_INT(commit(s, "up", "out", false, &r, &err), 0);
	if (layout_open("img", &base) || layout_open("out", &out)) {
		lf_stack_close(s);
		return;
	}
	/* base layers kept, byte for byte; one new layer on top */
	CHECK_EQ_INT(layer_count(&out), 3);
	CHECK_EQ_INT(r.nlayers, 3);
	for (i = 0; i < 2; i++) {
		char *a = blob("img", layer_desc(&base, i), &n1);
		char *b = blob("out", layer_desc(&out, i), &n2);

		CHECK(a && b && n1 == n2 && !memcmp(a, b, n1));
		free(a);
		free(b);
	}
	CHECK_EQ_STR(json_string_value(
			     json_object_get(layer_desc(&out, 2), "digest")),
		     r.layer_digest);
	/* the new layer: exactly the upper dir, whiteouts as they are */
	layer_lines("out", &out, 2, &got);
	walk_dir("up", "", &want, seen, &nseen);
	CHECK_EQ_STR(got.data ? got.data : "", want.data ? want.data : "-");
	CHECK(strstr(got.data ? got.data : "", ".wh.link f") != NULL);
	CHECK(strstr(got.data ? got.data : "", "bin/tool2 f 0755 0:0 7001 0 "
					       "=>bin/tool") != NULL);
	/* history: the base's and one entry with the message */
	{
		json_t *h = json_object_get(out.config, "history");

		CHECK_EQ_STR(json_string_value(json_object_get(
				     json_array_get(h, json_array_size(h) - 1),
				     "created_by")),
			     "unit test");
	}
	layout_close(&base);
	layout_close(&out);
	lf_buf_release(&got);
	lf_buf_release(&want);
	lf_stack_close(s);
}

LF_TEST(same_input_same_bytes)
{
	struct lf_commit_result r1, r2;
	struct lf_err err;
	struct lf_stack *s = open_image();
	size_t n1, n2;
	char *a, *b;

	if (!s)
		return;
	make_upper();
	CHECK_EQ_INT(commit(s, "up", "out1", false, &r1, &err), 0);
	CHECK_EQ_INT(commit(s, "up", "out2", false, &r2, &err), 0);
	CHECK_EQ_STR(r1.layer_digest, r2.layer_digest);
	CHECK_EQ_STR(r1.manifest_digest, r2.manifest_digest);
	a = slurp("out1/index.json", &n1);
	b = slurp("out2/index.json", &n2);
	CHECK(a && b && n1 == n2 && !memcmp(a, b, n1));
	free(a);
	free(b);
	lf_stack_close(s);
}

LF_TEST(squash_is_the_merged_view)
{
	struct lf_commit_result r;
	struct lf_err err;
	struct lf_stack *s = open_image();
	struct layout out;
	struct lf_buf got;
	char conf[72];
	unsigned char *pat;
	size_t i;

	if (!s)
		return;
	make_upper();
	lf_buf_init(&got);
	/* tree + upper: etc opaque (only the upper conf), link gone */
	CHECK_EQ_INT(commit(s, "up", "sq", true, &r, &err), 0);
	if (!layout_open("sq", &out)) {
		CHECK_EQ_INT(layer_count(&out), 1);
		layer_lines("sq", &out, 0, &got);
		{
			char want[1024], tool[72], up_conf[72];

			sha256_hex(TOOL, strlen(TOOL), tool);
			sha256_hex("changed\n", 8, up_conf);
			snprintf(want, sizeof(want),
				 "bin d 0755 0:0 7000 0 -\n"
				 "bin/tool f 0755 0:0 7001 %zu %s\n"
				 "bin/tool2 f 0755 0:0 7001 0 =>bin/tool\n"
				 "etc d 0750 7:8 1000 0 -\n"
				 "etc/conf f 0600 7:8 6000 8 %s user.note=x\n"
				 "sym l 0777 0:0 7002 0 ->bin/tool\n",
				 strlen(TOOL), tool, up_conf);
			CHECK_EQ_STR(got.data ? got.data : "", want);
		}
		layout_close(&out);
	}
	/* the tree alone: the image's merged view */
	lf_buf_reset(&got);
	CHECK_EQ_INT(commit(s, NULL, "sq2", true, &r, &err), 0);
	pat = malloc(LF_TESTIMG_CONF_SIZE);
	for (i = 0; pat && i < LF_TESTIMG_CONF_SIZE; i++)
		pat[i] = lf_testimg_byte(i);
	sha256_hex(pat, pat ? LF_TESTIMG_CONF_SIZE : 0, conf);
	free(pat);
	if (!layout_open("sq2", &out)) {
		char want[1024], new[72];

		layer_lines("sq2", &out, 0, &got);
		sha256_hex("new\n", 4, new);
		snprintf(want, sizeof(want),
			 "etc d 0750 7:8 1000 0 -\n"
			 "etc/conf f 0640 7:8 2000 %u %s user.tag=blue\n"
			 "etc/new f 0644 7:8 5000 4 %s\n"
			 "link l 0777 7:8 4000 0 ->etc/conf\n",
			 LF_TESTIMG_CONF_SIZE, conf, new);
		CHECK_EQ_STR(got.data ? got.data : "", want);
		layout_close(&out);
	}
	lf_buf_release(&got);
	lf_stack_close(s);
}

/* Nothing but what was there before: no OUT.tmp.* left beside OUT. */
static int entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	if (d)
		closedir(d);
	return n;
}

LF_TEST(errors_leave_nothing_behind)
{
	struct lf_commit_result r;
	struct lf_err err;
	struct lf_stack *s = open_image();
	int before;

	if (!s)
		return;
	make_upper();
	CHECK_EQ_INT(mkdir("exists", 0755), 0);
	before = entries(".");
	CHECK(commit(s, "up", "exists", false, &r, &err) < 0);
	CHECK(strstr(err.msg, "exists") != NULL);
	CHECK(commit(s, "no-such-upper", "out", false, &r, &err) < 0);
	CHECK(strstr(err.msg, "no-such-upper") != NULL);
	CHECK(commit(s, "up", "no/such/dir/out", false, &r, &err) < 0);
	CHECK(strstr(err.msg, "no/such/dir") != NULL);
	CHECK_EQ_INT(entries("."), before);
	CHECK_EQ_INT(entries("exists"), 0);
	lf_stack_close(s);
}

int main(int argc, char **argv)
{
	return lf_test_main(argc, argv);
}

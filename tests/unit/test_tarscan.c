// SPDX-License-Identifier: MIT
/* test_tarscan.c - tar member listing and exact data offsets. */
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layerfs/tarscan.h"
#include "lf_test.h"
#include "tarscan_internal.h"

#define MAXE 64

struct seen {
	size_t n;
	char path[MAXE][300];
	char link[MAXE][300];
	enum lf_tar_type type[MAXE];
	uint64_t off[MAXE], dsize[MAXE], size[MAXE];
	char xattr[MAXE][64]; /* "name=value" of the first xattr */
	struct lf_tar_sparse sp[MAXE][8];
	size_t nsp[MAXE];
	uint64_t count;
	int fail_at; /* -EPERM at this member, 0 = never */
};

static int on_entry(void *ctx, const struct lf_tar_entry *e, struct lf_err *err)
{
	struct seen *s = ctx;
	size_t i = s->n;

	s->count++;
	if (s->fail_at && (int)s->count == s->fail_at)
		return lf_err_set(err, -EPERM, "stop at '%s'", e->path);
	if (i >= MAXE)
		return 0;
	snprintf(s->path[i], sizeof(s->path[i]), "%s", e->path);
	snprintf(s->link[i], sizeof(s->link[i]), "%s", e->link ? e->link : "");
	s->type[i] = e->type;
	s->off[i] = e->data_offset;
	s->dsize[i] = e->data_size;
	s->size[i] = e->size;
	if (e->nxattrs)
		snprintf(s->xattr[i], sizeof(s->xattr[i]), "%s=%.*s",
			 e->xattrs[0].name, (int)e->xattrs[0].len,
			 (const char *)e->xattrs[0].value);
	s->nsp[i] = e->nsparse < 8 ? e->nsparse : 8;
	if (e->sparse)
		memcpy(s->sp[i], e->sparse, s->nsp[i] * sizeof(*e->sparse));
	s->n++;
	return 0;
}

struct fdsrc {
	int fd;
	uint64_t bytes;
};

static ssize_t fd_read(void *ctx, void *buf, size_t len)
{
	struct fdsrc *f = ctx;
	ssize_t n = read(f->fd, buf, len);

	if (n < 0)
		return -errno;
	f->bytes += (uint64_t)n;
	return n;
}

static int scan_stream(const char *file, struct seen *s, uint64_t *bytes,
		       struct lf_err *err)
{
	struct fdsrc f = { open(file, O_RDONLY), 0 };
	int ret;

	if (f.fd < 0)
		return -errno;
	ret = lf_tarscan_stream(fd_read, &f, file, on_entry, s, err);
	close(f.fd);
	if (bytes)
		*bytes = f.bytes;
	return ret;
}

static int scan_file(const char *file, struct seen *s, struct lf_err *err)
{
	struct lf_vfile *vf;
	int ret = lf_vfile_open(file, NULL, &vf, err);

	if (ret)
		return ret;
	ret = lf_tarscan_vfile(vf, on_entry, s, err);
	lf_vfile_close(vf);
	return ret;
}

static char *slurp(const char *file, size_t *len)
{
	FILE *f = fopen(file, "rb");
	char *p;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	p = malloc((size_t)n + 1);
	if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
		free(p);
		p = NULL;
	}
	fclose(f);
	if (p)
		*len = (size_t)n;
	return p;
}

static int sh(const char *cmd)
{
	return system(cmd);
}

static ssize_t find(const struct seen *s, const char *suffix)
{
	size_t i, l = strlen(suffix);

	for (i = 0; i < s->n; i++) {
		size_t pl = strlen(s->path[i]);

		if (pl >= l && !strcmp(s->path[i] + pl - l, suffix))
			return (ssize_t)i;
	}
	return -1;
}

/* The bytes at data_offset in the tar must be the file's content. */
static void check_content(const struct seen *s, const char *tar,
			  const char *member, const char *file)
{
	size_t tl = 0, fl = 0;
	char *t = slurp(tar, &tl), *f = slurp(file, &fl);
	ssize_t i = find(s, member);

	/* the data lives with the first name of a hardlinked pair */
	if (i >= 0 && s->type[i] == LF_TAR_HARDLINK)
		i = find(s, s->link[i]);

	CHECK(t && f && i >= 0);
	if (t && f && i >= 0) {
		CHECK_EQ_INT(s->dsize[i], fl);
		CHECK(s->off[i] + fl <= tl);
		if (s->off[i] + fl <= tl)
			CHECK_EQ_MEM(t + s->off[i], f, fl);
	}
	free(t);
	free(f);
}

static void make_tree(void)
{
	CHECK_EQ_INT(sh("mkdir -p src/d && printf hello > src/a.txt && "
			"head -c 70000 /dev/urandom > src/rand && "
			"ln -s a.txt src/sl && ln src/a.txt src/hl && "
			"python3 -c \"import os; d='src/' + 'd' * 120; "
			"os.makedirs(d); open(d + '/' + 'f' * 140, 'w')"
			".write('long name content')\" && "
			"python3 -c \"import os; os.setxattr('src/rand', "
			"'user.foo', b'bar')\""),
		     0);
}

static void check_tree(const char *tar)
{
	struct seen s = { 0 };
	struct lf_err err = { 0 };
	uint64_t bytes = 0;
	struct stat st;
	ssize_t i;
	char lf[400];

	CHECK_EQ_INT(scan_stream(tar, &s, &bytes, &err), 0);
	CHECK(stat(tar, &st) == 0 && (uint64_t)st.st_size == bytes);
	check_content(&s, tar, "a.txt", "src/a.txt");
	check_content(&s, tar, "rand", "src/rand");
	snprintf(lf, sizeof(lf), "src/%0120d/%0140d", 0, 0);
	memset(lf + 4, 'd', 120);
	memset(lf + 125, 'f', 140);
	check_content(&s, tar, lf + 4, lf);
	i = find(&s, "rand");
	CHECK(i >= 0 && !strcmp(s.xattr[i], "user.foo=bar"));
	i = find(&s, "sl");
	CHECK(i >= 0 && s.type[i] == LF_TAR_SYMLINK &&
	      !strcmp(s.link[i], "a.txt"));
	/* tar stores the second name of a hardlinked pair as a link */
	i = find(&s, "hl");
	if (i >= 0 && s.type[i] == LF_TAR_HARDLINK)
		CHECK(strstr(s.link[i], "a.txt") != NULL);
	else
		CHECK(find(&s, "a.txt") >= 0 &&
		      s.type[find(&s, "a.txt")] == LF_TAR_HARDLINK);

	/* seekable listing agrees */
	{
		struct seen s2 = { 0 };

		CHECK_EQ_INT(scan_file(tar, &s2, &err), 0);
		CHECK_EQ_INT(s2.n, s.n);
		CHECK(!memcmp(s2.off, s.off, sizeof(s.off)));
	}
}

LF_TEST(pax_offsets)
{
	make_tree();
	CHECK_EQ_INT(sh("tar --format=pax --xattrs -cf t.tar -C src ."), 0);
	check_tree("t.tar");
}

LF_TEST(gnu_offsets)
{
	make_tree();
	CHECK_EQ_INT(sh("tar --format=gnu --xattrs -cf t.tar -C src ."), 0);
	check_tree("t.tar");
}

/* Rebuild a sparse file from its regions and compare with the original. */
static void check_sparse(const char *tar)
{
	struct seen s = { 0 };
	struct lf_err err = { 0 };
	size_t tl = 0, fl = 0, k;
	char *t, *f, *img;
	uint64_t stored = 0;

	CHECK_EQ_INT(scan_stream(tar, &s, NULL, &err), 0);
	CHECK_EQ_INT(s.n, 1);
	t = slurp(tar, &tl);
	f = slurp("sp", &fl);
	img = calloc(1, fl);
	CHECK(t && f && img && s.size[0] == fl && s.nsp[0] == 2);
	for (k = 0; t && f && img && k < s.nsp[0]; k++) {
		const struct lf_tar_sparse *r = &s.sp[0][k];

		CHECK(r->offset + r->length <= fl);
		CHECK(s.off[0] + stored + r->length <= tl);
		memcpy(img + r->offset, t + s.off[0] + stored, r->length);
		stored += r->length;
	}
	CHECK_EQ_INT(stored, s.dsize[0]);
	if (img && f)
		CHECK_EQ_MEM(img, f, fl);
	/* seekable mode skips the data but reports the same offsets */
	{
		struct seen s2 = { 0 };

		CHECK_EQ_INT(scan_file(tar, &s2, &err), 0);
		CHECK(s2.n == 1 && s2.off[0] == s.off[0] &&
		      s2.dsize[0] == s.dsize[0] && s2.nsp[0] == s.nsp[0]);
	}
	free(t);
	free(f);
	free(img);
}

LF_TEST(sparse_formats)
{
	static const char *const cmds[] = {
		"tar --format=pax --sparse --sparse-version=0.0 -cf t.tar sp",
		"tar --format=pax --sparse --sparse-version=0.1 -cf t.tar sp",
		"tar --format=pax --sparse --sparse-version=1.0 -cf t.tar sp",
		"tar --format=gnu --sparse -cf t.tar sp",
	};
	size_t i;

	CHECK_EQ_INT(sh("python3 -c \"f = open('sp', 'wb'); "
			"f.seek(100000); f.write(b'A' * 5000); "
			"f.seek(300000); f.write(b'B' * 3000); "
			"f.truncate(500000)\""),
		     0);
	for (i = 0; i < LF_ARRAY_SIZE(cmds); i++) {
		printf("# %s\n", cmds[i]);
		CHECK_EQ_INT(sh(cmds[i]), 0);
		check_sparse("t.tar");
	}
}

/* one member "x" of 5 bytes: header 0..512, data 512..517 */
static void make_one(void)
{
	CHECK_EQ_INT(sh("printf hello > x && tar --format=ustar -cf one.tar x"),
		     0);
}

static int scan_cut(size_t len, struct seen *s, struct lf_err *err)
{
	char cmd[200];
	int r1, r2;
	struct seen s2 = { 0 };
	struct lf_err e2 = { 0 };

	snprintf(cmd, sizeof(cmd), "head -c %zu one.tar > cut.tar", len);
	if (sh(cmd))
		return -99;
	r1 = scan_stream("cut.tar", s, NULL, err);
	r2 = scan_file("cut.tar", &s2, &e2);
	CHECK_EQ_INT(r1, r2);
	return r1;
}

LF_TEST(missing_padding_is_clean)
{
	static const size_t ok[] = { 517, 600, 1024, 1100, 1536, 0 };
	size_t i;

	make_one();
	for (i = 0; i < LF_ARRAY_SIZE(ok); i++) {
		struct seen s = { 0 };
		struct lf_err err = { 0 };

		CHECK_EQ_INT(scan_cut(ok[i], &s, &err), 0);
		CHECK_EQ_INT(s.n, ok[i] ? 1 : 0);
		if (ok[i])
			CHECK_EQ_INT(s.off[0], 512);
	}
}

LF_TEST(truncated_data_is_error)
{
	struct seen s = { 0 };
	struct lf_err err = { 0 };

	make_one();
	CHECK_EQ_INT(scan_cut(515, &s, &err), -EIO);
	CHECK(strstr(err.msg, "truncated") && strstr(err.msg, "'x'"));
	printf("# %s\n", err.msg);
}

LF_TEST(damaged_header)
{
	struct seen s = { 0 };
	struct lf_err err = { 0 };

	CHECK_EQ_INT(sh("printf hello > x && printf bye > y && "
			"tar --format=ustar -cf two.tar x y && "
			"printf 'Z' | dd of=two.tar bs=1 seek=1030 "
			"conv=notrunc "
			"2>/dev/null"),
		     0);
	CHECK_EQ_INT(scan_stream("two.tar", &s, NULL, &err), -EINVAL);
	CHECK(strstr(err.msg, "offset 1024") != NULL);
	printf("# %s\n", err.msg);
	CHECK_EQ_INT(s.n, 1);
	memset(&s, 0, sizeof(s));
	CHECK_EQ_INT(scan_file("two.tar", &s, &err), -EINVAL);
	/* garbage that is not a tar at all */
	CHECK_EQ_INT(sh("head -c 2000 /dev/urandom | tr '\\037' x > junk"), 0);
	CHECK_EQ_INT(scan_file("junk", &s, &err), -EINVAL);
}

LF_TEST(truncated_header_is_error)
{
	struct seen s = { 0 };
	struct lf_err err = { 0 };

	CHECK_EQ_INT(sh("printf hello > x && printf bye > y && "
			"tar --format=ustar -cf two.tar x y && "
			"head -c 1300 two.tar > cut.tar"),
		     0);
	CHECK(scan_stream("cut.tar", &s, NULL, &err) < 0);
	printf("# %s\n", err.msg);
}

LF_TEST(compressed_refused)
{
	struct seen s = { 0 };
	struct lf_err err = { 0 };

	make_one();
	CHECK_EQ_INT(sh("gzip -k one.tar"), 0);
	CHECK_EQ_INT(scan_file("one.tar.gz", &s, &err), -EINVAL);
	CHECK(strstr(err.msg, "compressed archive, decompress it first"));
}

LF_TEST(stream_reads_every_byte)
{
	struct seen s = { 0 };
	struct lf_err err = { 0 };
	uint64_t bytes = 0;

	make_one();
	/* trailing junk after the end blocks still goes through rd */
	CHECK_EQ_INT(sh("head -c 777 /dev/urandom >> one.tar"), 0);
	CHECK_EQ_INT(scan_stream("one.tar", &s, &bytes, &err), 0);
	CHECK_EQ_INT(bytes, 10240 + 777);
	CHECK_EQ_INT(sh(": > empty.tar"), 0);
	memset(&s, 0, sizeof(s));
	CHECK_EQ_INT(scan_stream("empty.tar", &s, &bytes, &err), 0);
	CHECK_EQ_INT(s.n, 0);
}

LF_TEST(callback_stops_scan)
{
	struct seen s = { 0 };
	struct lf_err err = { 0 };

	make_tree();
	CHECK_EQ_INT(sh("tar -cf t.tar -C src ."), 0);
	s.fail_at = 2;
	CHECK_EQ_INT(scan_stream("t.tar", &s, NULL, &err), -EPERM);
	CHECK(strstr(err.msg, "stop at") != NULL);
}

/*
 * A multi-GB outer archive is listed without reading member data: the big
 * member is a hole in a sparse host file, so reading it would be slow and
 * the test would time out long before.
 */
LF_TEST(seekable_big_outer_tar)
{
	struct seen s = { 0 };
	struct lf_err err = { 0 };

	CHECK_EQ_INT(sh("python3 -c \"\n"
			"import tarfile\n"
			"big = 6 << 30\n"
			"f = open('big.tar', 'wb')\n"
			"ti = tarfile.TarInfo('blobs/big'); ti.size = big\n"
			"f.write(ti.tobuf(tarfile.PAX_FORMAT))\n"
			"f.seek(big, 1)\n"
			"ti = tarfile.TarInfo('manifest.json'); ti.size = 2\n"
			"f.write(ti.tobuf(tarfile.PAX_FORMAT))\n"
			"f.write(b'[]' + bytes(510) + bytes(1024))\n\""),
		     0);
	CHECK_EQ_INT(scan_file("big.tar", &s, &err), 0);
	CHECK_EQ_INT(s.n, 2);
	CHECK_EQ_INT(s.off[0], 512);
	CHECK_EQ_INT(s.dsize[0], 6ULL << 30);
	CHECK_EQ_INT(s.off[1], 512 + (6ULL << 30) + 512);
	CHECK_EQ_STR(s.path[1], "manifest.json");
}

/* A generated stream of many members: constant memory, no file needed. */
struct gen {
	uint64_t left, made;
	bool end_done;
	unsigned char blk[1024];
	size_t have, pos;
};

static void gen_header(unsigned char *h, uint64_t i)
{
	unsigned sum = 0;
	size_t k;

	memset(h, 0, 1024);
	snprintf((char *)h, 100, "dir/file%llu", (unsigned long long)i);
	memcpy(h + 100, "0000644", 8);
	memcpy(h + 108, "0000000", 8);
	memcpy(h + 116, "0000000", 8);
	memcpy(h + 124, "00000000001", 12);
	memcpy(h + 136, "00000000000", 12);
	h[156] = '0';
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	memset(h + 148, ' ', 8);
	for (k = 0; k < 512; k++)
		sum += h[k];
	snprintf((char *)h + 148, 8, "%06o", sum);
	h[512] = 'z'; /* one data byte, then padding */
}

/* Members of 1024 bytes each, then the two zero blocks, then EOF. */
static ssize_t gen_read(void *ctx, void *buf, size_t len)
{
	struct gen *g = ctx;
	size_t n;

	if (g->pos == g->have) {
		if (g->left) {
			gen_header(g->blk, g->made++);
			g->left--;
		} else if (!g->end_done) {
			memset(g->blk, 0, sizeof(g->blk));
			g->end_done = true;
		} else {
			return 0;
		}
		g->have = sizeof(g->blk);
		g->pos = 0;
	}
	n = LF_MIN(len, g->have - g->pos);
	memcpy(buf, g->blk + g->pos, n);
	g->pos += n;
	return (ssize_t)n;
}

LF_TEST(many_members_stream)
{
	struct gen g = { .left = 200000 };
	struct seen s = { 0 };
	struct lf_err err = { 0 };

	CHECK_EQ_INT(lf_tarscan_stream(gen_read, &g, "gen", on_entry, &s, &err),
		     0);
	CHECK_EQ_INT(s.count, 200000);
	CHECK_EQ_INT(s.off[1], 1024 + 512);
}

/*
 * Names are bytes: NFD stays NFD, Latin-1 stays Latin-1, in PAX records
 * (hdrcharset=BINARY too), GNU long names and ustar prefix+name, whether
 * the header sits inside one read chunk or straddles two.
 */
static const char *const byte_names[] = {
	"pad",
	"cafe\xcc\x81",	  /* PAX path, NFD */
	"caf\xe9",	  /* PAX path, hdrcharset=BINARY */
	"s-cafe\xcc\x81", /* symlink, PAX linkpath below */
	"gnu/"
	"\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9"
	"\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9"
	"\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9"
	"\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9"
	"\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9"
	"\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9"
	"e\xcc\x81", /* GNU L header */
};

static void check_byte_names(const char *tar)
{
	struct seen s = { 0 }, s2 = { 0 };
	struct lf_err err = { 0 };
	size_t i;

	CHECK_EQ_INT(scan_stream(tar, &s, NULL, &err), 0);
	CHECK_EQ_INT(scan_file(tar, &s2, &err), 0);
	CHECK_EQ_INT(s.n, LF_ARRAY_SIZE(byte_names));
	CHECK_EQ_INT(s2.n, s.n);
	for (i = 0; i < s.n && i < LF_ARRAY_SIZE(byte_names); i++) {
		CHECK_EQ_STR(s.path[i], byte_names[i]);
		CHECK_EQ_STR(s2.path[i], byte_names[i]);
		CHECK_EQ_STR(s2.link[i], s.link[i]);
	}
	if (s.n > 3) {
		CHECK_EQ_INT(s.type[3], LF_TAR_SYMLINK);
		CHECK_EQ_STR(s.link[3], "\xe9/cafe\xcc\x81");
	}
}

static void make_byte_names(const char *fmt, size_t pad)
{
	char cmd[2048];

	snprintf(cmd, sizeof(cmd),
		 "python3 -c \"import io, tarfile\n"
		 "names = [b'pad', b'cafe\\xcc\\x81', b'caf\\xe9',\n"
		 "         b's-cafe\\xcc\\x81', b'gnu/' + b'\\xe9' * 96 + "
		 "b'e\\xcc\\x81']\n"
		 "tf = tarfile.open('n.tar', 'w', format=tarfile.%s,\n"
		 "                  encoding='utf-8', "
		 "errors='surrogateescape')\n"
		 "for i, n in enumerate(names):\n"
		 "    ti = tarfile.TarInfo(n.decode('utf-8', "
		 "'surrogateescape'))\n"
		 "    data = b'x' * (%zu if i == 0 else 3)\n"
		 "    if i == 3:\n"
		 "        ti.type = tarfile.SYMTYPE\n"
		 "        ti.linkname = b'\\xe9/cafe\\xcc\\x81'.decode('utf-8',"
		 " 'surrogateescape')\n"
		 "        data = b''\n"
		 "    ti.size = len(data)\n"
		 "    tf.addfile(ti, io.BytesIO(data))\n"
		 "tf.close()\"",
		 fmt, pad);
	CHECK_EQ_INT(sh(cmd), 0);
}

LF_TEST(names_are_bytes)
{
	/* pads put the next headers inside a read chunk, across the end of
	 * one, and right at its start */
	static const size_t pads[] = { 10, 65536 - 700, 65536 - 512 - 512,
				       3 * 65536 + 100 };
	size_t k;

	/* the CLI's locale, where libarchive converts PAX names from UTF-8
	 * and normalises them to NFC */
	CHECK(setlocale(LC_CTYPE, "C.UTF-8") != NULL);
	for (k = 0; k < LF_ARRAY_SIZE(pads); k++) {
		make_byte_names("PAX_FORMAT", pads[k]);
		check_byte_names("n.tar");
		make_byte_names("GNU_FORMAT", pads[k]);
		check_byte_names("n.tar");
		make_byte_names("USTAR_FORMAT", pads[k]); /* prefix */
		check_byte_names("n.tar");
	}
	setlocale(LC_CTYPE, "C");
}

/* --- lf_tarscan_raw_names() on hand-made header chains ----------------- */

static unsigned char chain[8 * 512];
static size_t chain_len;

/* Append a header block of `type` with name/linkname and a body. */
static void add_block(char type, const char *name, const char *linkname,
		      const char *magic, const void *body, size_t blen)
{
	unsigned char *h = chain + chain_len;

	memset(h, 0, 512);
	memcpy(h, name, strlen(name));
	memcpy(h + 157, linkname, strlen(linkname));
	snprintf((char *)h + 124, 12, "%011zo", blen);
	h[156] = (unsigned char)type;
	memcpy(h + 257, magic, strlen(magic) + 1);
	chain_len += 512;
	if (blen) {
		memset(chain + chain_len, 0, (blen + 511) / 512 * 512);
		memcpy(chain + chain_len, body, blen);
		chain_len += (blen + 511) / 512 * 512;
	}
}

static int names_of(char *path, char *link)
{
	unsigned char joined[LF_TAR_JOINED];
	struct lf_tar_span p, l;
	int ret = lf_tarscan_raw_names(chain, chain_len, joined, &p, &l);

	snprintf(path, 64, "%.*s", p.p ? (int)p.len : 4,
		 p.p ? (const char *)p.p : "NULL");
	snprintf(link, 64, "%.*s", l.p ? (int)l.len : 4,
		 l.p ? (const char *)l.p : "NULL");
	chain_len = 0;
	return ret;
}

#define PAX(s) (s), strlen(s)

LF_TEST(raw_names_precedence)
{
	char path[64], link[64];

	/* the first extension header wins, as in libarchive */
	add_block('x', "x", "", "ustar", PAX("11 path=P1\n"));
	add_block('L', "././@LongLink", "", "ustar  ", "P2", 3);
	add_block('0', "N", "", "ustar", NULL, 0);
	CHECK_EQ_INT(names_of(path, link), 0);
	CHECK_EQ_STR(path, "P1");
	CHECK_EQ_STR(link, "");
	add_block('L', "././@LongLink", "", "ustar  ", "P2", 3);
	add_block('x', "x", "", "ustar", PAX("11 path=P1\n"));
	add_block('0', "N", "", "ustar", NULL, 0);
	CHECK_EQ_INT(names_of(path, link), 0);
	CHECK_EQ_STR(path, "P2");
	/* GNU.sparse.name over path; linkpath over linkname */
	add_block('x', "x", "", "ustar",
		  PAX("10 path=A\n21 GNU.sparse.name=B\n14 linkpath=T\n"));
	add_block('2', "N", "U", "ustar", NULL, 0);
	CHECK_EQ_INT(names_of(path, link), 0);
	CHECK_EQ_STR(path, "B");
	CHECK_EQ_STR(link, "T");
	/* a malformed record voids the header's names; so does a NUL,
	 * which ends the body; an empty value does not count */
	add_block('x', "x", "", "ustar", PAX("10 path=A\n8 path=B\n"));
	add_block('0', "N", "", "ustar", NULL, 0);
	CHECK_EQ_INT(names_of(path, link), 0);
	CHECK_EQ_STR(path, "N");
	add_block('x', "x", "", "ustar", "12 path=a\0b\n", 12);
	add_block('0', "N", "", "ustar", NULL, 0);
	CHECK_EQ_INT(names_of(path, link), 0);
	CHECK_EQ_STR(path, "N");
	add_block('x', "x", "", "ustar", PAX("8 path=\n"));
	add_block('0', "N", "", "ustar", NULL, 0);
	CHECK_EQ_INT(names_of(path, link), 0);
	CHECK_EQ_STR(path, "N");
	/* global headers and volume labels carry no member name */
	add_block('g', "g", "", "ustar", PAX("11 path=G1\n"));
	add_block('V', "label", "", "ustar  ", NULL, 0);
	add_block('0', "N", "", "ustar", NULL, 0);
	CHECK_EQ_INT(names_of(path, link), 0);
	CHECK_EQ_STR(path, "N");
	/* ustar prefix; GNU's header has no prefix field */
	add_block('0', "nm", "", "ustar", NULL, 0);
	memcpy(chain + 345, "pre", 3);
	CHECK_EQ_INT(names_of(path, link), 0);
	CHECK_EQ_STR(path, "pre/nm");
	add_block('0', "nm", "", "ustar", NULL, 0);
	memcpy(chain + 345, "pre/", 4);
	CHECK_EQ_INT(names_of(path, link), 0);
	CHECK_EQ_STR(path, "pre/nm");
	add_block('0', "nm", "", "ustar  ", NULL, 0);
	memcpy(chain + 345, "\1\2", 2);
	CHECK_EQ_INT(names_of(path, link), 0);
	CHECK_EQ_STR(path, "nm");
	/* a chain cut short, or a body past the bytes given */
	add_block('x', "x", "", "ustar", PAX("11 path=P1\n"));
	CHECK_EQ_INT(names_of(path, link), -EINVAL);
	add_block('L', "././@LongLink", "", "ustar  ", "P2", 3);
	add_block('0', "N", "", "ustar", NULL, 0);
	snprintf((char *)chain + 124, 12, "%011o", 4096);
	CHECK_EQ_INT(names_of(path, link), -EINVAL);
	/* base-256 sizes */
	add_block('L', "././@LongLink", "", "ustar  ", "P2", 3);
	add_block('0', "N", "", "ustar", NULL, 0);
	memset(chain + 124, 0, 12);
	chain[124] = 0x80;
	chain[135] = 3;
	CHECK_EQ_INT(names_of(path, link), 0);
	CHECK_EQ_STR(path, "P2");
}

int main(int argc, char **argv)
{
	return lf_test_main(argc, argv);
}

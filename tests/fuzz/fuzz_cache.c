// SPDX-License-Identifier: MIT
/*
 * fuzz_cache.c - the cache files layerfs maps and trusts once checked.
 * The hashes catch accidents; everything behind them must hold against any
 * bytes, so the target fixes magic, version and key and seals the input with
 * the right hashes, then loads it:
 *   first byte even: as a layer index (cache.h), reads a plain layer's
 *                    stream through the plain source (SPANSUMS checks), then
 *                    merges it, stores the tree, maps it back and walks
 *                    both;
 *   first byte odd:  as a tree file (tree_cache.h) of a small fixed layer,
 *                    then walks whatever validate() let through.
 * A walk that loops or a tree that differs after a round trip abort()s.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "index_internal.h"
#include "layerfs/blob.h"
#include "layerfs/cache.h"
#include "layerfs/log.h"
#include "layerfs/tree_cache.h"
#include "layerfs/vfile.h"
#include "tree_internal.h"

static char dir[64];

static void write_file(const char *path, const void *p, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || write(fd, p, len) != (ssize_t)len)
		abort();
	close(fd);
}

/* Visit every inode and name; an inode seen twice as a directory is a loop. */
static void walk(const struct lf_tree *t)
{
	uint64_t n = lf_tree_count(t), ino, c, sum = 0;
	unsigned char *seen = calloc(n + 1, 1);
	uint64_t *stack = malloc((n + 1) * sizeof(*stack));
	size_t top = 0, i;

	if (!seen || !stack)
		abort();
	for (ino = 1; ino <= n; ino++) {
		struct lf_tree_attr a;
		const char *l;
		size_t k;

		if (lf_tree_getattr(t, ino, &a))
			abort();
		sum += a.size;
		if ((l = lf_tree_readlink(t, ino)))
			sum += strlen(l);
		for (k = 0; k < lf_tree_xattr_count(t, ino); k++) {
			const char *xn;
			const void *xv;
			size_t len;

			lf_tree_xattr(t, ino, k, &xn, &xv, &len);
			sum += strlen(xn) + len;
		}
	}
	stack[top++] = LF_TREE_ROOT;
	while (top) {
		uint64_t d = stack[--top];

		if (seen[d]++)
			abort();
		for (i = 0; i < lf_tree_dir_count(t, d); i++) {
			const char *nm;
			size_t len;
			struct lf_tree_attr a;

			lf_tree_dir_entry(t, d, i, &nm, &len, &c);
			if (lf_tree_lookup(t, d, nm, len, &ino) || ino < 1 ||
			    ino > n)
				abort();
			if (!lf_tree_getattr(t, c, &a) && S_ISDIR(a.mode)) {
				if (top > n)
					abort();
				stack[top++] = c;
			}
		}
	}
	lf_tree_resolve(t, "a/l/../b/./c", LF_TREE_FOLLOW, &ino);
	free(seen);
	free(stack);
	(void)sum;
}

static bool same(const struct lf_tree *x, const struct lf_tree *y)
{
	uint64_t ino;
	size_t i;

	if (lf_tree_count(x) != lf_tree_count(y))
		return false;
	for (ino = 1; ino <= lf_tree_count(x); ino++) {
		struct lf_tree_attr a, b;

		lf_tree_getattr(x, ino, &a);
		lf_tree_getattr(y, ino, &b);
		if (a.mode != b.mode || a.size != b.size ||
		    a.nlink != b.nlink ||
		    lf_tree_dir_count(x, ino) != lf_tree_dir_count(y, ino))
			return false;
		for (i = 0; i < lf_tree_dir_count(x, ino); i++) {
			const char *n1, *n2;
			size_t l1, l2;
			uint64_t c1, c2;

			lf_tree_dir_entry(x, ino, i, &n1, &l1, &c1);
			lf_tree_dir_entry(y, ino, i, &n2, &l2, &c2);
			if (l1 != l2 || c1 != c2 || memcmp(n1, n2, l1))
				return false;
		}
	}
	return true;
}

/* Read a plain layer's whole stream (zeros) and every file through blob.c,
 * which checks each block against SPANSUMS. */
static void read_blob(const struct lf_index *idx)
{
	uint64_t size = lf_index_tar_size(idx), off;
	struct lf_vfile *vf = NULL;
	struct lf_blob *b = NULL;
	struct lf_err err;
	char *zeros, buf[4096];
	size_t i;

	if (lf_index_compression(idx) != LF_COMP_NONE || size > (1u << 20))
		return;
	zeros = calloc(1, (size_t)size + 1);
	if (!zeros || lf_vfile_from_mem(zeros, (size_t)size, "fuzz", &vf))
		abort();
	if (!lf_blob_open(vf, idx, NULL, &b, &err)) {
		for (off = 0; off < size; off += sizeof(buf))
			lf_blob_pread(b, buf, sizeof(buf), off, &err);
		for (i = 0; i < lf_index_count(idx); i++)
			lf_blob_read_file(b, lf_index_entry(idx, i), buf,
					  sizeof(buf), 0, &err);
		lf_blob_close(b);
	}
	lf_vfile_close(vf);
	free(zeros);
}

static void as_index(const uint8_t *data, size_t size)
{
	struct lf_cache_header *h;
	struct lf_index *idx;
	struct lf_tree *t1 = NULL, *t2 = NULL;
	struct lf_err err;
	char path[160], key[72], *buf;
	const char *why;
	size_t len, i;
	void *map;

	len = LF_MAX(size, sizeof(*h));
	buf = calloc(1, len);
	if (!buf)
		return;
	memcpy(buf, data, size);
	h = (struct lf_cache_header *)(void *)buf;
	memcpy(h->magic, LF_CACHE_MAGIC, 8);
	h->version = lf_le32(LF_CACHE_VERSION);
	h->header_size = lf_le32(sizeof(*h));
	memset(h->key, 0, sizeof(h->key));
	strcpy(h->key, "fuzz");
	lf_cache_seal(buf, len);
	snprintf(path, sizeof(path), "%s/fuzz.idx", dir);
	write_file(path, buf, len);
	free(buf);
	if (lf_cache_load(path, "fuzz", &map, &len, &err))
		return;
	idx = lf_index_alloc();
	if (!idx)
		abort();
	idx->map = map;
	idx->maplen = len;
	idx->mapped = true;
	if (lf_index_attach(idx, &why)) {
		lf_index_close(idx);
		return;
	}
	lf_cache_check_windows(map, len);
	read_blob(idx);
	for (i = 0; i < lf_index_count(idx); i++) {
		const struct lf_idx_entry *e = lf_index_entry(idx, i);
		const char *l = lf_index_link(idx, e);
		size_t k, sum = strlen(lf_index_path(idx, e));

		if (l)
			sum += strlen(l);
		for (k = 0; k < e->xattr_count; k++) {
			const char *xn;
			const void *xv;
			size_t xl;

			lf_index_xattr(idx, e, k, &xn, &xv, &xl);
			sum += strlen(xn) + xl;
		}
		if (e->sparse_count)
			sum += lf_index_sparse(idx, e)[e->sparse_count - 1]
				       .length;
		(void)sum;
	}
	/* merge, store, map back: the same tree both ways */
	if (!lf_tree_open(&idx, 1, dir, &t1, &err)) {
		walk(t1);
		if (lf_tree_open(&idx, 1, dir, &t2, &err) || !same(t1, t2))
			abort();
		walk(t2);
	}
	lf_tree_free(t1);
	lf_tree_free(t2);
	/* one tree file per input would fill the disk */
	if (!lf_tree_cache_key(&idx, 1, key)) {
		snprintf(path, sizeof(path), "%s/%s.tree", dir, key);
		unlink(path);
	}
	lf_index_close(idx);
}

/* A ustar member header for the fixed layer. */
static void member(char *p, const char *name, char type, const char *link,
		   size_t size)
{
	unsigned sum = 0;
	int i;

	memset(p, 0, 512);
	snprintf(p, 100, "%s", name);
	snprintf(p + 100, 8, "%07o", type == '5' ? 0755 : 0644);
	snprintf(p + 108, 8, "%07o", 0);
	snprintf(p + 116, 8, "%07o", 0);
	snprintf(p + 124, 12, "%011zo", size);
	snprintf(p + 136, 12, "%011o", 1700000000);
	memset(p + 148, ' ', 8);
	p[156] = type;
	if (link)
		snprintf(p + 157, 100, "%s", link);
	memcpy(p + 257, "ustar", 6);
	memcpy(p + 263, "00", 2);
	for (i = 0; i < 512; i++)
		sum += (unsigned char)p[i];
	snprintf(p + 148, 8, "%06o", sum);
}

/* a/, a/f ("x"), a/l -> f, b/, b/c -> ../a/f, h == a/f */
static struct lf_index *fixed_layer(void)
{
	static char tar[512 * 12];
	static struct lf_image_layer l;
	struct lf_index_opts o = { .verify = false, .label = "layer 1" };
	struct lf_index *idx = NULL;
	struct lf_err err;

	member(tar, "a/", '5', NULL, 0);
	member(tar + 512, "a/f", '0', NULL, 1);
	tar[1024] = 'x';
	member(tar + 1536, "a/l", '2', "f", 0);
	member(tar + 2048, "b/", '5', NULL, 0);
	member(tar + 2560, "b/c", '2', "../a/f", 0);
	member(tar + 3072, "h", '1', "a/f", 0);
	l.source = "fixed.tar";
	if (lf_vfile_from_mem(tar, sizeof(tar), "fixed.tar", &l.blob) ||
	    lf_index_open(&l, &o, &idx, &err))
		abort();
	return idx;
}

static void as_tree(const uint8_t *data, size_t size)
{
	static struct lf_index *idx;
	static char key[72];
	/* header fields, as tree_cache.c lays them out */
	const size_t hsize = 184, hash_at = 176;
	struct lf_tree *t = NULL;
	struct lf_err err;
	char path[160], *buf;
	size_t len = LF_MAX(size, hsize);
	uint64_t v;

	if (!idx) {
		idx = fixed_layer();
		if (lf_tree_cache_key(&idx, 1, key))
			abort();
	}
	buf = calloc(1, len);
	if (!buf)
		return;
	memcpy(buf, data, size);
	memcpy(buf, "LFTREE\r\n", 8);
	v = LF_TREE_FILE_VERSION;
	memcpy(buf + 8, &v, 4);
	v = hsize;
	memcpy(buf + 12, &v, 4);
	memset(buf + 16, 0, 72);
	memcpy(buf + 16, key, strlen(key));
	v = 1;
	memcpy(buf + 88, &v, 4); /* nlayers */
	v = len;
	memcpy(buf + 144, &v, 8); /* size */
	v = lf_cache_hash64(buf + hsize, len - hsize);
	/* hkey[2] at 152 and 160: the fuzzer's bytes */
	memcpy(buf + 168, &v, 8); /* body_hash */
	v = lf_cache_hash64(buf, hash_at);
	memcpy(buf + hash_at, &v, 8); /* header_hash */
	snprintf(path, sizeof(path), "%s/%s.tree", dir, key);
	write_file(path, buf, len);
	free(buf);
	if (!lf_tree_open(&idx, 1, dir, &t, &err))
		walk(t);
	lf_tree_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!dir[0]) {
		snprintf(dir, sizeof(dir), "/tmp/lf-fuzz-cache.XXXXXX");
		if (!mkdtemp(dir))
			abort();
		lf_log_set_level(LF_LOG_ERR); /* rejected files are the norm */
	}
	if (!size)
		return 0;
	if (data[0] & 1)
		as_tree(data + 1, size - 1);
	else
		as_index(data + 1, size - 1);
	return 0;
}

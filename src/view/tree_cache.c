// SPDX-License-Identifier: MIT
/* tree_cache.c - merged trees stored in, and mapped from, the cache. */
#include "layerfs/tree_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layerfs/buf.h"
#include "layerfs/cache.h"
#include "layerfs/digest.h"
#include "layerfs/log.h"
#include "tree_internal.h"

#define TREE_MAGIC "LFTREE\r\n"

struct tree_header {
	char magic[8];
	uint32_t version;     /* LF_TREE_FILE_VERSION */
	uint32_t header_size; /* sizeof(struct tree_header) */
	char key[72];	      /* "tree-<hex of 32 bytes>", NUL-padded */
	uint32_t nlayers, ninodes, ndirents, nslots;
	uint64_t off_inodes, off_dirents, off_slots, off_names, names_len;
	uint64_t size;
	uint64_t hkey[2];     /* the slots' SipHash key (tree_internal.h) */
	uint64_t body_hash;   /* of every byte after the header */
	uint64_t header_hash; /* of the header before this field; last */
};
_Static_assert(sizeof(struct tree_header) == 184, "tree header size");

static size_t align8(size_t x)
{
	return (x + 7) & ~(size_t)7;
}

int lf_tree_cache_key(struct lf_index *const *layers, size_t n, char key[72])
{
	char dg[LF_DIGEST_LEN];
	struct lf_buf b;
	size_t i;
	int ret;

	lf_buf_init(&b);
	ret = lf_buf_addf(&b, "layerfs tree %d %zu\n", LF_TREE_FILE_VERSION, n);
	for (i = 0; i < n && !ret; i++) {
		const uint8_t *sum = lf_index_checksum(layers[i]);

		ret = sum ? lf_buf_add(&b, sum, 32) : -ENOENT;
	}
	if (!ret)
		ret = lf_sha256_mem(b.data, b.len, dg);
	lf_buf_release(&b);
	if (ret)
		return ret;
	/* dg is "sha256:<hex>" */
	snprintf(key, 72, "tree-%s", dg + 7);
	return 0;
}

/* What a mapped tree needs before its first use: a root directory and a
 * usable hash table.  Every other record is checked when it is used
 * (tree_internal.h), so a mount makes no pass over the records;
 * a loaded file may be anything that passed the hashes. */
static const char *validate(struct lf_tree *t)
{
	if (!t->nslots || (t->nslots & (t->nslots - 1)))
		return "bad hash table size";
	t->checked = calloc((size_t)t->ninodes / 64 + 1, sizeof(uint64_t));
	if (!t->checked)
		return "out of memory";
	if (t->ninodes < 1 || !lf_tree_inode_sane(t, LF_TREE_ROOT))
		return "the root's record out of bounds";
	if ((t->inodes[LF_TREE_ROOT].layer >= 0 &&
	     lf_index_entry(t->layers[t->inodes[LF_TREE_ROOT].layer],
			    t->inodes[LF_TREE_ROOT].entry)
			     ->kind != LF_KIND_DIR))
		return "the root is not a directory";
	return NULL;
}

/* Map `path` and make *t use it; -ENOENT (no file) or -EINVAL with *why. */
static int load(const char *path, const char *key, struct lf_tree *t,
		const char **why)
{
	const struct tree_header *h;
	struct stat st;
	void *p;
	size_t len;
	int fd;

	fd = lf_open_own_file(path, &st);
	if (fd < 0 && fd != -EINVAL) {
		*why = strerror(-fd);
		return fd == -ENOENT ? -ENOENT : -EINVAL;
	}
	if (fd < 0 || st.st_size < (off_t)sizeof(*h)) {
		if (fd >= 0)
			close(fd);
		*why = "not a layerfs tree";
		return -EINVAL;
	}
	len = (size_t)st.st_size;
	p = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		*why = strerror(errno);
		return -EINVAL;
	}
	h = p;
	t->map = p;
	t->maplen = len;
	*why = NULL;
	if (memcmp(h->magic, TREE_MAGIC, 8))
		*why = "not a layerfs tree";
	else if (lf_le32(h->version) != LF_TREE_FILE_VERSION ||
		 lf_le32(h->header_size) != sizeof(*h))
		*why = "tree format version differs";
	else if (strncmp(h->key, key, sizeof(h->key)))
		*why = "the tree belongs to other layers";
	else if (lf_le64(h->header_hash) !=
			 lf_cache_hash64(h, offsetof(struct tree_header,
						     header_hash)) ||
		 lf_le64(h->size) != len ||
		 lf_le64(h->body_hash) !=
			 lf_cache_hash64((const char *)p + sizeof(*h),
					 len - sizeof(*h)))
		*why = "checksum mismatch";
	else if (lf_le32(h->nlayers) != t->nlayers ||
		 lf_le32(h->ninodes) == UINT32_MAX ||
		 lf_range_outside(lf_le64(h->off_inodes),
				  ((uint64_t)lf_le32(h->ninodes) + 1) *
					  sizeof(struct tinode),
				  len) ||
		 lf_range_outside(lf_le64(h->off_dirents),
				  (uint64_t)lf_le32(h->ndirents) *
					  sizeof(struct tdirent),
				  len) ||
		 lf_range_outside(lf_le64(h->off_slots),
				  (uint64_t)lf_le32(h->nslots) *
					  sizeof(uint32_t),
				  len) ||
		 lf_range_outside(lf_le64(h->off_names), lf_le64(h->names_len),
				  len) ||
		 ((lf_le64(h->off_inodes) | lf_le64(h->off_dirents) |
		   lf_le64(h->off_slots)) &
		  7))
		*why = "a section outside the file";
	if (!*why) {
		t->ninodes = lf_le32(h->ninodes);
		t->ndirents = lf_le32(h->ndirents);
		t->nslots = lf_le32(h->nslots);
		t->inodes = (struct tinode *)((char *)p +
					      lf_le64(h->off_inodes));
		t->dirents = (struct tdirent *)((char *)p +
						lf_le64(h->off_dirents));
		t->slots = (uint32_t *)((char *)p + lf_le64(h->off_slots));
		t->names = (char *)p + lf_le64(h->off_names);
		t->names_len = lf_le64(h->names_len);
		t->hkey.k0 = lf_le64(h->hkey[0]);
		t->hkey.k1 = lf_le64(h->hkey[1]);
		*why = validate(t);
	}
	if (*why) {
		munmap(p, len);
		free(t->checked);
		t->checked = NULL;
		t->map = NULL;
		t->inodes = NULL;
		t->dirents = NULL;
		t->slots = NULL;
		t->names = NULL;
		return -EINVAL;
	}
	return 0;
}

static void store(const struct lf_tree *t, const char *path, const char *key)
{
	size_t oi = align8(sizeof(struct tree_header));
	size_t od = align8(oi + ((size_t)t->ninodes + 1) * sizeof(*t->inodes));
	size_t os = align8(od + (size_t)t->ndirents * sizeof(*t->dirents));
	size_t on = os + (size_t)t->nslots * sizeof(*t->slots);
	size_t len = on + t->names_len;
	struct tree_header *h;
	struct lf_err err;
	char *p = calloc(1, len);

	if (!p) {
		lf_log(LF_LOG_WARN, "cannot store '%s': out of memory", path);
		return;
	}
	h = (struct tree_header *)p;
	memcpy(h->magic, TREE_MAGIC, 8);
	h->version = lf_le32(LF_TREE_FILE_VERSION);
	h->header_size = lf_le32(sizeof(*h));
	snprintf(h->key, sizeof(h->key), "%s", key);
	h->nlayers = lf_le32((uint32_t)t->nlayers);
	h->ninodes = lf_le32(t->ninodes);
	h->ndirents = lf_le32(t->ndirents);
	h->nslots = lf_le32(t->nslots);
	h->off_inodes = lf_le64(oi);
	h->off_dirents = lf_le64(od);
	h->off_slots = lf_le64(os);
	h->off_names = lf_le64(on);
	h->names_len = lf_le64(t->names_len);
	h->size = lf_le64(len);
	h->hkey[0] = lf_le64(t->hkey.k0);
	h->hkey[1] = lf_le64(t->hkey.k1);
	memcpy(p + oi, t->inodes,
	       ((size_t)t->ninodes + 1) * sizeof(*t->inodes));
	memcpy(p + od, t->dirents, (size_t)t->ndirents * sizeof(*t->dirents));
	memcpy(p + os, t->slots, (size_t)t->nslots * sizeof(*t->slots));
	if (t->names_len)
		memcpy(p + on, t->names, t->names_len);
	h->body_hash = lf_le64(
		lf_cache_hash64(p + sizeof(*h), len - sizeof(*h)));
	h->header_hash = lf_le64(
		lf_cache_hash64(h, offsetof(struct tree_header, header_hash)));
	if (lf_cache_store(path, p, len, &err))
		lf_log(LF_LOG_WARN, "%s", err.msg);
	free(p);
}

int lf_tree_open(struct lf_index *const *layers, size_t n,
		 const char *cache_dir, struct lf_tree **out,
		 struct lf_err *err)
{
	struct lf_tree *t;
	struct lf_buf path;
	const char *why;
	char key[72];
	int ret;

	if (!cache_dir || !n || lf_tree_cache_key(layers, n, key) ||
	    n > UINT32_MAX)
		return lf_tree_build(layers, n, out, err);
	lf_buf_init(&path);
	t = calloc(1, sizeof(*t));
	if (!t || !(t->layers = malloc(sizeof(*t->layers) * n)) ||
	    lf_cache_path(cache_dir, key, ".tree", &path)) {
		if (t)
			free(t->layers);
		free(t);
		lf_buf_release(&path);
		return lf_err_set(err, -ENOMEM, "out of memory");
	}
	memcpy(t->layers, layers, sizeof(*layers) * n);
	t->nlayers = n;
	ret = load(path.data, key, t, &why);
	if (!ret) {
		/* named for the checks made on use (tree_internal.h) */
		t->path = lf_buf_detach(&path, NULL);
		*out = t;
		return 0;
	}
	if (ret != -ENOENT)
		lf_log(LF_LOG_WARN,
		       "ignoring tree cache file '%s': %s; "
		       "rebuilding",
		       path.data, why);
	lf_tree_free(t);
	ret = lf_tree_build(layers, n, out, err);
	if (!ret)
		store(*out, path.data, key);
	lf_buf_release(&path);
	return ret;
}

// SPDX-License-Identifier: MIT
/* blob.c - random access to a layer's tar stream: plain, gzip, zstd. */
#include "blob_internal.h"

#include "layerfs/path.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Plain and zstd layers are checked block by block: whole blocks are read
 * straight into the caller's buffer, the blocks at the edges of a read go
 * through the chunk LRU (so small sequential reads read each block once). */
#define FLAT_CHUNK ((uint64_t)LF_SPAN_SIZE)

struct lf_blob {
	const struct lf_vfile *vf;	/* borrowed */
	const struct lf_index *idx;	/* borrowed */
	struct lf_chunk_cache *cc;	/* borrowed, may be NULL */
	bool is_gz;			/* a gzip layer: checkpoints come from
					 * lf_index_gzidx_checked() */
	int tar_fd;			/* zstd copy (owned by idx) or -1 */
	uint64_t id;			/* chunk cache key */
	uint64_t tar_size;
	/* the blob file as opened; a change answers EIO, never other bytes */
	bool has_id;
	struct stat st;
	atomic_bool changed;		/* latched once seen */
};

static const char *blob_name(const struct lf_blob *b)
{
	return b->vf ? lf_vfile_name(b->vf) : "?";
}

/* Every layer but a directory has a hash for each block of its stream. */
static int check_sums(const struct lf_blob *b, struct lf_err *err)
{
	const struct lf_gzidx_view *gz = lf_index_gzidx(b->idx);
	uint64_t sum, last = gz ? gz->npoints - 1
				: (b->tar_size - 1) / LF_SPAN_SIZE;

	if (!b->tar_size || lf_index_dir_fd(b->idx) >= 0 ||
	    !lf_index_span_sum(b->idx, last, &sum))
		return 0;
	return lf_err_set(err, -EINVAL, "'%s': the index has no checksums",
			  blob_name(b));
}

int lf_blob_open(const struct lf_vfile *blob, const struct lf_index *idx,
		 struct lf_chunk_cache *cc, struct lf_blob **out,
		 struct lf_err *err)
{
	/* blob is NULL for directory layers (lf_index_open_dir) */
	struct lf_blob *b = calloc(1, sizeof(*b));
	int ret;

	if (!b)
		return lf_err_set(err, -ENOMEM, "out of memory");
	b->vf = blob;
	b->idx = idx;
	b->cc = cc;
	b->is_gz = lf_index_compression(idx) == LF_COMP_GZIP;
	b->tar_fd = lf_index_tar_fd(idx);
	b->tar_size = lf_index_tar_size(idx);
	b->id = cc ? lf_chunk_cache_new_id(cc) : 0;
	b->has_id = blob && !lf_vfile_stat(blob, &b->st);
	atomic_init(&b->changed, false);
	if (lf_index_compression(idx) == LF_COMP_ZSTD && b->tar_fd < 0) {
		free(b);
		return lf_err_set(err, -EINVAL,
				  "'%s': no decompressed copy of zstd layer",
				  blob ? lf_vfile_name(blob) : "?");
	}
	if ((ret = check_sums(b, err))) {
		free(b);
		return ret;
	}
	*out = b;
	return 0;
}

void lf_blob_close(struct lf_blob *b)
{
	if (b && b->cc)
		lf_chunk_forget_blob(b->cc, b);
	free(b);
}

uint64_t lf_blob_id(const struct lf_blob *b)
{
	return b->id;
}

static ssize_t fd_pread(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done,
				  (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	       a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
	       a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/*
 * Has the blob file been written since the blob was opened?  Called after
 * the bytes are read: a write that could have reached them has already
 * moved mtime and ctime.  A fstat per chunk, not per byte.
 */
static int check_blob(struct lf_blob *b, struct lf_err *err)
{
	struct stat st;

	if (!b->has_id)
		return 0;
	if (!atomic_load(&b->changed) &&
	    (lf_vfile_stat(b->vf, &st) || !same_file(&st, &b->st)))
		atomic_store(&b->changed, true);
	if (!atomic_load(&b->changed))
		return 0;
	lf_err_set(err, -EIO, "'%s': the blob file changed since it was "
		   "opened", blob_name(b));
	return err->code;
}

static int span_damaged(struct lf_blob *b, uint64_t off, struct lf_err *err)
{
	char copy[4096];

	if (b->tar_fd >= 0) {
		lf_index_drop_copy(b->idx, copy, sizeof(copy));
		return lf_err_set(err, -EIO, "'%s': its decompressed copy '%s' "
				  "is damaged at offset %llu (removed: the "
				  "next run rebuilds it)", blob_name(b), copy,
				  (unsigned long long)off);
	}
	return lf_err_set(err, -EIO, "'%s': bytes at offset %llu of the "
			  "layer differ from when it was indexed",
			  blob_name(b), (unsigned long long)off);
}

/* A gzip chunk: checkpoint span i, hashed whole while indexing. */
static int check_gz_span(struct lf_blob *b, size_t i, uint64_t start,
			 const struct lf_chunk *c, struct lf_err *err)
{
	uint64_t want;

	if (!lf_index_span_sum(b->idx, i, &want) &&
	    lf_cache_hash64(c->data, c->len) == want)
		return 0;
	return span_damaged(b, start, err);
}

/*
 * Check the blocks of [start, start+len) (data) against the hashes taken
 * while indexing: plain and zstd chunks are whole blocks.
 */
static int check_spans(struct lf_blob *b, const unsigned char *data,
		       uint64_t start, size_t len, struct lf_err *err)
{
	uint64_t end = start + len, k = start / LF_SPAN_SIZE;

	for (; k * LF_SPAN_SIZE < end; k++) {
		uint64_t bs = k * LF_SPAN_SIZE;
		uint64_t be = LF_MIN(bs + LF_SPAN_SIZE, b->tar_size), want;

		if (be > end || lf_index_span_sum(b->idx, k, &want) ||
		    lf_cache_hash64(data + (bs - start), (size_t)(be - bs)) !=
		    want)
			return span_damaged(b, bs, err);
	}
	return 0;
}

static struct lf_chunk *chunk_new(struct lf_blob *b, uint64_t no, size_t len)
{
	struct lf_chunk *c = malloc(sizeof(*c) + len);

	if (!c)
		return NULL;
	atomic_init(&c->refs, 1);
	c->blob_id = b->id;
	c->no = no;
	c->len = len;
	c->hnext = c->prev = c->next = NULL;
	return c;
}

/* Read [start, start+len) of a plain or zstd layer into dst, and check
 * it: len ends at a block boundary or at the end of the stream. */
static int flat_read(struct lf_blob *b, void *dst, uint64_t start, size_t len,
		     struct lf_err *err)
{
	ssize_t n;
	int ret;

	if (b->tar_fd >= 0)
		n = fd_pread(b->tar_fd, dst, len, start);
	else
		n = lf_vfile_pread(b->vf, dst, len, start);
	if (n < 0)
		return lf_err_set(err, (int)n, "'%s': read error at offset "
				  "%llu: %s", blob_name(b),
				  (unsigned long long)start, strerror((int)-n));
	if ((size_t)n < len)
		return lf_err_set(err, -EIO, "'%s': blob is shorter than its "
				  "index (offset %llu)", blob_name(b),
				  (unsigned long long)(start + (uint64_t)n));
	if ((ret = check_blob(b, err)))
		return ret;
	return check_spans(b, dst, start, len, err);
}

/* Block `no` of a plain or zstd layer, read and checked, referenced. */
static int flat_chunk(struct lf_blob *b, uint64_t no, struct lf_chunk **out,
		      struct lf_err *err)
{
	uint64_t start = no * FLAT_CHUNK;
	size_t len = (size_t)LF_MIN(FLAT_CHUNK, b->tar_size - start);
	struct lf_chunk *c;
	int ret;

	if (b->cc && (c = lf_chunk_get(b->cc, b->id, no))) {
		*out = c;
		return 0;
	}
	if (!(c = chunk_new(b, no, len)))
		return lf_err_set(err, -ENOMEM, "out of memory");
	if ((ret = flat_read(b, c->data, start, len, err))) {
		free(c);
		return ret;
	}
	*out = b->cc ? lf_chunk_put(b->cc, c) : c;
	return 0;
}

/* The decompressed span of checkpoint i, referenced (lf_chunk_unref). */
static int get_chunk(struct lf_blob *b, const struct lf_gzidx_view *gz,
		     size_t i, bool worker, struct lf_chunk **out,
		     struct lf_err *err)
{
	uint64_t start = gz->points[i].out;
	uint64_t end = i + 1 < gz->npoints ? gz->points[i + 1].out
					   : gz->total_out;
	struct lf_chunk *c;
	size_t got = 0;
	int ret;

	if (b->cc && (c = lf_chunk_get(b->cc, b->id, i))) {
		*out = c;
		return 0;
	}
	/* the read-ahead worker may be inflating this very chunk */
	if (b->cc && !worker) {
		lf_chunk_wait_inflight(b->cc, b->id, i);
		if ((c = lf_chunk_get(b->cc, b->id, i))) {
			*out = c;
			return 0;
		}
		/* a sequential reader wants the next one soon: start it now,
		 * on the other core, while this one inflates here */
		if (i + 1 < gz->npoints)
			lf_chunk_prefetch(b->cc, b, i + 1);
	}
	if (end - start > SIZE_MAX - sizeof(*c))
		return lf_err_set(err, -EFBIG, "chunk too large");
	if (!(c = chunk_new(b, i, (size_t)(end - start))))
		return lf_err_set(err, -ENOMEM, "out of memory");
	ret = lf_gzidx_extract(gz, i, b->vf, c->data, c->len, &got, err);
	if (!ret && got != c->len)
		ret = lf_err_set(err, -EIO,
				 "'%s': gzip stream ends early at offset %llu",
				 lf_vfile_name(b->vf),
				 (unsigned long long)(start + got));
	/* inflating a changed blob often fails or runs short: say why */
	if (!ret || ret == -EIO || ret == -EINVAL) {
		struct lf_err cerr;

		if (check_blob(b, &cerr)) {
			*err = cerr;
			ret = -EIO;
		}
	}
	if (!ret)
		ret = check_gz_span(b, i, start, c, err);
	if (ret) {
		free(c);
		return ret;
	}
	*out = b->cc ? lf_chunk_put(b->cc, c) : c;
	return 0;
}

void lf_blob_fill_chunk(struct lf_blob *b, uint64_t no)
{
	struct lf_chunk *c = NULL;
	struct lf_err err;

	const struct lf_gzidx_view *gz;

	/* errors surface again, with a message, when a reader asks */
	if (!lf_index_gzidx_checked(b->idx, b->vf, &gz, &err) && gz &&
	    no < gz->npoints && !get_chunk(b, gz, (size_t)no, true, &c, &err))
		lf_chunk_unref(c);
}

static ssize_t gz_pread(struct lf_blob *b, void *buf, size_t len,
			uint64_t off, struct lf_err *err)
{
	const struct lf_gzidx_view *gz;
	size_t done = 0;
	int ret = lf_index_gzidx_checked(b->idx, b->vf, &gz, err);

	if (ret)
		return ret;
	while (done < len && off < b->tar_size) {
		size_t i = lf_gzidx_find(gz, off), n;
		struct lf_chunk *c = NULL;
		uint64_t skip;

		if ((ret = get_chunk(b, gz, i, false, &c, err)))
			return ret;
		skip = off - gz->points[i].out;
		if (skip >= c->len) { /* cannot happen with a checked index */
			lf_chunk_unref(c);
			return lf_err_set(err, -EIO, "'%s': bad checkpoint",
					  lf_vfile_name(b->vf));
		}
		n = LF_MIN(len - done, c->len - (size_t)skip);
		memcpy((char *)buf + done, c->data + skip, n);
		lf_chunk_unref(c);
		done += n;
		off += n;
	}
	return (ssize_t)done;
}

static ssize_t flat_pread(struct lf_blob *b, void *buf, size_t len,
			  uint64_t off, struct lf_err *err)
{
	uint64_t pos = off, end = off + len;
	int ret;

	while (pos < end) {
		/* whole blocks from pos: the last boundary <= end, or the end
		 * of the stream */
		uint64_t run = end == b->tar_size ? end
						  : end - end % FLAT_CHUNK;
		struct lf_chunk *c = NULL;
		uint64_t skip;
		size_t n;

		if (pos % FLAT_CHUNK == 0 && run > pos) {
			ret = flat_read(b, (char *)buf + (pos - off), pos,
					(size_t)(run - pos), err);
			if (ret)
				return ret;
			pos = run;
			continue;
		}
		if ((ret = flat_chunk(b, pos / FLAT_CHUNK, &c, err)))
			return ret;
		skip = pos % FLAT_CHUNK;
		n = (size_t)LF_MIN(end - pos, c->len - skip);
		memcpy((char *)buf + (pos - off), c->data + skip, n);
		lf_chunk_unref(c);
		pos += n;
	}
	return (ssize_t)len;
}

ssize_t lf_blob_pread(struct lf_blob *b, void *buf, size_t len, uint64_t off,
		      struct lf_err *err)
{

	if (off >= b->tar_size)
		return 0;
	len = (size_t)LF_MIN((uint64_t)len, b->tar_size - off);
	if (b->is_gz)
		return gz_pread(b, buf, len, off, err);
	return flat_pread(b, buf, len, off, err);
}

/* Sparse files: holes read as zeros, data regions are stored back to back. */
static ssize_t read_sparse(struct lf_blob *b, const struct lf_idx_entry *e,
			   char *buf, size_t len, uint64_t off,
			   struct lf_err *err)
{
	const struct lf_idx_sparse *s = lf_index_sparse(b->idx, e);
	uint64_t stored = e->data_off, end = off + len;
	uint32_t k;

	memset(buf, 0, len);
	for (k = 0; k < e->sparse_count; k++) {
		uint64_t rs = s[k].offset, re = s[k].offset + s[k].length;
		uint64_t a = LF_MAX(rs, off), z = LF_MIN(re, end);

		if (a < z) {
			ssize_t n = lf_blob_pread(b, buf + (a - off),
						  (size_t)(z - a),
						  stored + (a - rs), err);
			if (n < 0)
				return n;
		}
		stored += s[k].length;
	}
	return (ssize_t)len;
}

/*
 * Directory layers: open the file by its path below the layer directory,
 * one component at a time and never through a symlink, then pread.
 */
static ssize_t read_dir_file(struct lf_blob *b, const struct lf_idx_entry *e,
			     void *buf, size_t len, uint64_t off,
			     struct lf_err *err)
{
	const char *path = lf_index_path(b->idx, e), *p = path, *comp;
	char name[NAME_MAX + 1];
	int fd = openat(lf_index_dir_fd(b->idx), ".", O_RDONLY | O_DIRECTORY |
			O_CLOEXEC), next;
	size_t clen;
	ssize_t n;

	while (fd >= 0 && lf_path_next(&p, &comp, &clen)) {
		bool last = !*p;

		if (clen > NAME_MAX) {
			close(fd);
			fd = -1;
			errno = ENAMETOOLONG;
			break;
		}
		memcpy(name, comp, clen);
		name[clen] = '\0';
		next = openat(fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
			      (last ? O_NONBLOCK : O_DIRECTORY));
		close(fd);
		fd = next;
	}
	if (fd < 0)
		return lf_err_set(err, -EIO, "cannot open '%s' of directory "
				  "layer: %s", path, strerror(errno));
	n = fd_pread(fd, buf, len, off);
	close(fd);
	if (n < 0)
		return lf_err_set(err, (int)n, "cannot read '%s' of directory "
				  "layer: %s", path, strerror((int)-n));
	return n;
}

ssize_t lf_blob_read_file(struct lf_blob *b, const struct lf_idx_entry *e,
			  void *buf, size_t len, uint64_t off,
			  struct lf_err *err)
{
	if (lf_index_dir_fd(b->idx) >= 0)
		return read_dir_file(b, e, buf, len, off, err);
	if (off >= e->size)
		return 0;
	len = (size_t)LF_MIN((uint64_t)len, e->size - off);
	if (e->sparse_count)
		return read_sparse(b, e, buf, len, off, err);
	return lf_blob_pread(b, buf, len, e->data_off + off, err);
}

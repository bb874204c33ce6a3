// SPDX-License-Identifier: MIT
/* blob.c - random access to a layer's tar stream: plain, gzip, zstd. */
#include "blob_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const char *lf_blob_name(const struct lf_blob *b)
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
			  lf_blob_name(b));
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
		lf_chunk_forget(b->cc, b->id);
	free(b);
}

ssize_t lf_blob_pread(struct lf_blob *b, void *buf, size_t len, uint64_t off,
		      struct lf_err *err)
{

	if (off >= b->tar_size)
		return 0;
	len = (size_t)LF_MIN((uint64_t)len, b->tar_size - off);
	if (b->is_gz)
		return lf_gz_pread(b, buf, len, off, err);
	return lf_flat_pread(b, buf, len, off, err);
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

ssize_t lf_blob_read_file(struct lf_blob *b, const struct lf_idx_entry *e,
			  void *buf, size_t len, uint64_t off,
			  struct lf_err *err)
{
	if (lf_index_dir_fd(b->idx) >= 0)
		return lf_dir_read_file(b, e, buf, len, off, err);
	if (off >= e->size)
		return 0;
	len = (size_t)LF_MIN((uint64_t)len, e->size - off);
	if (e->sparse_count)
		return read_sparse(b, e, buf, len, off, err);
	return lf_blob_pread(b, buf, len, e->data_off + off, err);
}

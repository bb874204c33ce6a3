// SPDX-License-Identifier: MIT
/*
 * blob.c - the generic layer over the sources (source.h): choosing the
 * backend, clipping reads to the stream or the file, sparse files' holes.
 */
#include "layerfs/blob.h"

#include "layerfs/source.h"

#include "blob_lru.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int lf_blob_open(const struct lf_vfile *blob, const struct lf_index *idx,
		 struct lf_chunk_cache *cc, struct lf_blob **out,
		 struct lf_err *err)
{
	static const struct lf_source_ops *const backends[] = {
		LF_SOURCE_BACKENDS
	};
	/* blob is NULL for directory layers (lf_index_open_dir) */
	const struct lf_source_loc loc = { blob, idx, cc };
	size_t i;

	for (i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (backends[i]->match(&loc))
			return backends[i]->open(&loc, out, err);
	return lf_err_set(err, -EINVAL, "'%s': no source reads this layer",
			  blob ? lf_vfile_name(blob) : "?");
}

void lf_blob_close(struct lf_blob *b)
{
	if (!b)
		return;
	if (b->cc)
		lf_chunk_forget(b->cc, b->id);
	b->ops->close(b);
}

ssize_t lf_blob_pread(struct lf_blob *b, void *buf, size_t len, uint64_t off,
		      struct lf_err *err)
{
	if (off >= b->tar_size)
		return 0;
	len = (size_t)LF_MIN((uint64_t)len, b->tar_size - off);
	return b->ops->pread(b, buf, len, off, err);
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
	if (b->ops->read_file)
		return b->ops->read_file(b, e, buf, len, off, err);
	if (off >= e->size)
		return 0;
	len = (size_t)LF_MIN((uint64_t)len, e->size - off);
	if (e->sparse_count)
		return read_sparse(b, e, buf, len, off, err);
	return lf_blob_pread(b, buf, len, e->data_off + off, err);
}

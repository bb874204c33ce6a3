/* SPDX-License-Identifier: MIT */
/* blob_internal.h - what blob.c, source*.c and blob_lru.c share: the open
 * blob, the readers of each layer kind, the chunk cache interface. */
#ifndef LAYERFS_BLOB_INTERNAL_H
#define LAYERFS_BLOB_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "layerfs/blob.h"

#include "blob_lru.h"

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

/* blob.c: the blob's name for messages. */
const char *lf_blob_name(const struct lf_blob *b);

/* source.c: what the readers share. */
ssize_t lf_fd_pread(int fd, void *buf, size_t len, uint64_t off);
int lf_blob_check_file(struct lf_blob *b, struct lf_err *err);
int lf_blob_span_damaged(struct lf_blob *b, uint64_t off,
			 struct lf_err *err);
struct lf_chunk *lf_blob_chunk_new(struct lf_blob *b, uint64_t no,
				   size_t len);

/* The readers: source_plain.c (plain and zstd), source_gzip.c, and
 * source_dir.c (a file of a directory layer). */
ssize_t lf_flat_pread(struct lf_blob *b, void *buf, size_t len,
		      uint64_t off, struct lf_err *err);
ssize_t lf_gz_pread(struct lf_blob *b, void *buf, size_t len,
		    uint64_t off, struct lf_err *err);
ssize_t lf_dir_read_file(struct lf_blob *b, const struct lf_idx_entry *e,
			 void *buf, size_t len, uint64_t off,
			 struct lf_err *err);

#endif /* LAYERFS_BLOB_INTERNAL_H */

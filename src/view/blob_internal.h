/* SPDX-License-Identifier: MIT */
/* blob_internal.h - what blob.c, source*.c and blob_lru.c share: the open
 * blob, the readers of each layer kind, the chunk cache interface. */
#ifndef LAYERFS_BLOB_INTERNAL_H
#define LAYERFS_BLOB_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "layerfs/blob.h"

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

/* A decompressed span of one blob; refcounted, immutable once inserted. */
struct lf_chunk {
	atomic_uint refs;
	uint64_t blob_id, no;	/* key: blob and checkpoint number */
	size_t len;
	struct lf_chunk *hnext;	/* hash chain, protected by cc->lock */
	struct lf_chunk *prev, *next;	/* LRU list, protected by cc->lock */
	unsigned char data[];
};

/* A unique id for a blob's chunks. */
uint64_t lf_chunk_cache_new_id(struct lf_chunk_cache *cc);

/* A referenced chunk, or NULL on a miss. */
struct lf_chunk *lf_chunk_get(struct lf_chunk_cache *cc, uint64_t blob_id,
			      uint64_t no);

/*
 * Insert `c` (refs = 1, owned by the caller) and return the chunk the caller
 * should use: `c` itself, or an equal one another thread inserted first (then
 * `c` is freed).  Either way the caller holds one reference.
 */
struct lf_chunk *lf_chunk_put(struct lf_chunk_cache *cc, struct lf_chunk *c);

/* Drop a reference. */
void lf_chunk_unref(struct lf_chunk *c);

/*
 * Read-ahead: ask the cache's worker thread to inflate chunk `no` of blob
 * `b` now, so that a sequential reader finds it ready.  Dropped when the
 * queue is full.  The worker calls lf_blob_fill_chunk().
 */
void lf_chunk_prefetch(struct lf_chunk_cache *cc, struct lf_blob *b,
		       uint64_t no);
/* Wait while the worker inflates chunk `no` of blob id (0: any chunk of
 * any blob is fine); returns immediately when it does not. */
void lf_chunk_wait_inflight(struct lf_chunk_cache *cc, uint64_t blob_id,
			    uint64_t no);
/* Drop b's queued requests and wait until the worker no longer uses b. */
void lf_chunk_forget_blob(struct lf_chunk_cache *cc, struct lf_blob *b);

/* blob.c: inflate chunk `no` of b into the cache (worker side). */
void lf_blob_fill_chunk(struct lf_blob *b, uint64_t no);
uint64_t lf_blob_id(const struct lf_blob *b);

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

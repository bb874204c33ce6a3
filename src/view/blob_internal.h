/* SPDX-License-Identifier: MIT */
/* blob_internal.h - the chunk cache interface shared by blob*.c. */
#ifndef LAYERFS_BLOB_INTERNAL_H
#define LAYERFS_BLOB_INTERNAL_H

#include <stdatomic.h>

#include "layerfs/blob.h"

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

#endif /* LAYERFS_BLOB_INTERNAL_H */

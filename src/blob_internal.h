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

#endif /* LAYERFS_BLOB_INTERNAL_H */

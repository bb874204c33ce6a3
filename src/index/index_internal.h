/* SPDX-License-Identifier: MIT */
/* index_internal.h - shared by index.c (build) and index_load.c (views). */
#ifndef LAYERFS_INDEX_INTERNAL_H
#define LAYERFS_INDEX_INTERNAL_H

#include "layerfs/index.h"
#include "layerfs/tarscan.h"
#include "layerfs/zstdec.h"

struct lf_index {
	void *map; /* owned: the whole file image */
	size_t maplen;
	bool mapped;			   /* map is an mmap (else malloc) */
	bool cached;			   /* loaded from the cache */
	const struct lf_cache_header *hdr; /* == map */
	const struct lf_idx_entry *entries;
	size_t nentries;
	const char *strings;
	size_t strings_len;
	const struct lf_idx_xattr *xattrs;
	size_t nxattrs;
	const struct lf_idx_sparse *sparse;
	size_t nsparse;
	const uint64_t *sums; /* SPANSUMS, one per LF_SPAN_SIZE block */
	size_t nsums;
	struct lf_gzidx_view gz;	   /* as stored; windows unchecked */
	const struct lf_idx_chunk *chunks; /* eStargz layers, else NULL */
	size_t nchunks;
	/* what the index hands over to the layer sources (index.h) */
	int tar_fd;	  /* owned, zstd copy; -1 otherwise */
	int dir_fd;	  /* owned, directory layers; -1 otherwise */
	char *cache_path; /* the file loaded, NULL if built now */
	char *copy_path;  /* the zstd copy in the cache, or NULL */
};

/* The state of one index build (index.c: blobs; index_dir.c: dirs). */
struct index_builder {
	const struct lf_image_layer *layer; /* borrowed */
	const struct lf_index_opts *opts;   /* borrowed */
	const char *label;
	enum lf_compression comp;
	/* the compressed side */
	uint64_t in_pos;
	struct lf_sha256 *hc;
	uint64_t next_progress;
	/* the decompressors (one of them, by comp) */
	struct lf_gzidx_builder *gz;
	struct lf_zstdec *zd;
	/* the uncompressed side */
	struct lf_sha256 *hu;
	uint64_t out_total;
	int copy_fd;		/* zstd copy being written, else -1 */
	struct lf_buf copy_tmp; /* its temp name ("" when unlinked) */
	struct lf_err inner;	/* error raised below tarscan */
	struct lf_limits lim;	/* resolved opts->limits */
	/* the uncompressed block being hashed into `sums` */
	unsigned char *span; /* LF_SPAN_SIZE bytes */
	size_t span_fill;
	/* gzip: the bytes since checkpoint next_point - 1 (at span_start) */
	struct lf_buf gzspan;
	uint64_t span_start;
	size_t next_point;
	/* the sections being built */
	struct lf_buf entries, strings, xattrs, sparse, points, windows, sums;
	struct lf_buf chunks; /* eStargz: struct lf_idx_chunk[] */
	struct lf_buf path, link;
	uint64_t nentries, nwhiteouts;
};

void lf_index_builder_init(struct index_builder *b);
void lf_index_builder_release(struct index_builder *b);
/* Add one member (a tarscan callback; ctx is the builder). */
int lf_index_add_entry(void *ctx, const struct lf_tar_entry *e,
		       struct lf_err *err);
/* Lay the built sections out into idx's file image (unsealed). */
int lf_index_assemble(struct index_builder *b, const char *key,
		      struct lf_index *idx);

/* A zeroed index with its fds at -1; NULL if no memory. */
struct lf_index *lf_index_alloc(void);

/*
 * Point the views of idx at its file image and check every offset in it, so
 * that nothing read later from a (possibly hostile) cache file can reach
 * outside the mapping.  Returns 0 or -EINVAL with *why set.
 */
int lf_index_attach(struct lf_index *idx, const char **why);

/*
 * Build idx from the layer's eStargz TOC (index_estargz.c): 0, -ENOENT
 * (not eStargz, or the image names no TOC digest: stream it), or another
 * error with a message (the caller warns and streams).
 */
int lf_index_build_estargz(const struct lf_image_layer *layer,
			   const struct lf_index_opts *opts, const char *key,
			   struct lf_index *idx, struct lf_err *err);

/* Cache key of a layer into out (LF_CACHE key size), or "" if none. */
void lf_index_key(const struct lf_image_layer *layer, char out[80]);

#endif /* LAYERFS_INDEX_INTERNAL_H */

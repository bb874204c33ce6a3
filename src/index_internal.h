/* SPDX-License-Identifier: MIT */
/* index_internal.h - shared by index.c (build) and index_load.c (views). */
#ifndef LAYERFS_INDEX_INTERNAL_H
#define LAYERFS_INDEX_INTERNAL_H

#include "layerfs/index.h"

struct lf_index {
	void *map;		/* owned: the whole file image */
	size_t maplen;
	bool mapped;		/* map is an mmap (else malloc) */
	bool cached;		/* loaded from the cache */
	const struct lf_cache_header *hdr;	/* == map */
	const struct lf_idx_entry *entries;
	size_t nentries;
	const char *strings;
	size_t strings_len;
	const struct lf_idx_xattr *xattrs;
	size_t nxattrs;
	const struct lf_idx_sparse *sparse;
	size_t nsparse;
	struct lf_gzidx_view gz;
	int tar_fd;		/* owned, zstd copy; -1 otherwise */
};

/*
 * Point the views of idx at its file image and check every offset in it, so
 * that nothing read later from a (possibly hostile) cache file can reach
 * outside the mapping.  Returns 0 or -EINVAL with *why set.
 */
int lf_index_attach(struct lf_index *idx, const char **why);

/* Cache key of a layer into out (LF_CACHE key size), or "" if none. */
void lf_index_key(const struct lf_image_layer *layer, char out[80]);

#endif /* LAYERFS_INDEX_INTERNAL_H */

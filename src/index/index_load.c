// SPDX-License-Identifier: MIT
/* index_load.c - checked views over an index file image, and accessors. */
#include "index_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "layerfs/cache.h"
#include "layerfs/estargz.h"
#include "layerfs/path.h"
#include "layerfs/whiteout.h"

static const void *sect(const struct lf_index *idx, int i, size_t *len)
{
	const struct lf_cache_sect *s = &idx->hdr->sect[i];

	*len = (size_t)lf_le64(s->len);
	return (const char *)idx->map + lf_le64(s->off);
}

static bool str_ok(const struct lf_index *idx, uint32_t off)
{
	return off < idx->strings_len;
}

static bool entry_ok(const struct lf_index *idx, const struct lf_idx_entry *e,
		     uint64_t tar_size)
{
	uint64_t stored = e->size;
	const char *base;
	uint32_t k;

	if (e->kind < LF_KIND_REG || e->kind > LF_KIND_SOCK)
		return false;
	if (!str_ok(idx, e->path) ||
	    (e->link != UINT32_MAX && !str_ok(idx, e->link)))
		return false;
	/* what the merge and the upper dir rely on (design.md 3 rule 1): paths
	 * as normalised at indexing, links where the kind needs one, and the
	 * whiteout flags only on ".wh." names */
	if (!lf_path_is_normal(idx->strings + e->path))
		return false;
	if ((e->kind == LF_KIND_SYMLINK || e->kind == LF_KIND_HARDLINK) &&
	    e->link == UINT32_MAX)
		return false;
	if (e->kind == LF_KIND_HARDLINK &&
	    (!idx->strings[e->link] ||
	     !lf_path_is_normal(idx->strings + e->link)))
		return false;
	if (e->flags & (LF_IDX_WHITEOUT | LF_IDX_OPAQUE)) {
		base = lf_path_basename(idx->strings + e->path);
		if (!(e->flags & LF_IDX_WHITEOUT) || !lf_is_whiteout_name(base))
			return false;
		if ((e->flags & LF_IDX_OPAQUE) && !lf_is_opaque_marker(base))
			return false;
	}
	if ((uint64_t)e->xattr_first + e->xattr_count > idx->nxattrs ||
	    (uint64_t)e->sparse_first + e->sparse_count > idx->nsparse)
		return false;
	for (k = 0; k < e->xattr_count; k++) {
		const struct lf_idx_xattr *x = &idx->xattrs[e->xattr_first + k];

		if (!str_ok(idx, x->name) ||
		    lf_range_outside(x->value, x->len, idx->strings_len))
			return false;
	}
	if (e->kind != LF_KIND_REG)
		return true;
	if (e->sparse_count) {
		stored = 0;
		for (k = 0; k < e->sparse_count; k++) {
			const struct lf_idx_sparse *s =
				&idx->sparse[e->sparse_first + k];

			if (lf_range_outside(s->offset, s->length, e->size) ||
			    lf_add_overflow(stored, s->length, &stored))
				return false;
		}
	}
	return !lf_range_outside(e->data_off, stored, tar_size);
}

static bool gz_ok(const struct lf_index *idx)
{
	const struct lf_gzidx_view *gz = &idx->gz;
	size_t i;

	for (i = 0; i < gz->npoints; i++) {
		const struct lf_gzidx_point *p = &gz->points[i];

		if (p->in > gz->total_in || p->out > gz->total_out ||
		    (i && p->out < gz->points[i - 1].out) || p->bits > 7 ||
		    lf_range_outside(p->window_off, p->window_len,
				     gz->windows_len))
			return false;
	}
	return true;
}

/* SPANSUMS: none (directory layers), one per gzip checkpoint span no
 * longer than LF_GZ_MAX_SPAN, or one per LF_SPAN_SIZE block. */
static bool sums_ok(const struct lf_index *idx, size_t len)
{
	const struct lf_gzidx_view *gz = &idx->gz;
	uint64_t size = gz->total_out;
	size_t i;

	if (len % sizeof(uint64_t))
		return false;
	if (!idx->nsums)
		return true;
	if (lf_le32(idx->hdr->compression) != LF_COMP_GZIP)
		return idx->nsums ==
		       size / LF_SPAN_SIZE + !!(size % LF_SPAN_SIZE);
	if (idx->nsums != gz->npoints)
		return false;
	for (i = 0; i < gz->npoints; i++) {
		uint64_t end = i + 1 < gz->npoints ? gz->points[i + 1].out
						   : size;

		if (end - gz->points[i].out > LF_GZ_MAX_SPAN)
			return false;
	}
	return true;
}

/* An eStargz index (LF_CACHE_ESTARGZ): CHUNKS, and no checkpoints or
 * SPANSUMS (the chunks carry their sha256). */
static bool estargz_ok(const struct lf_index *idx, size_t len)
{
	const struct lf_cache_header *h = idx->hdr;

	return lf_le32(h->compression) == LF_COMP_GZIP && !idx->gz.npoints &&
	       !idx->nsums && !idx->gz.windows_len &&
	       !(len % sizeof(struct lf_idx_chunk)) &&
	       lf_estargz_chunks_ok(idx->chunks, idx->nchunks,
				    lf_le64(h->tar_size),
				    lf_le64(h->blob_size));
}

int lf_index_attach(struct lf_index *idx, const char **why)
{
	const struct lf_cache_header *h = idx->map;
	uint64_t tar_size = lf_le64(h->tar_size);
	size_t len, sums_len, i;

	idx->hdr = h;
	idx->entries = sect(idx, LF_SECT_ENTRIES, &len);
	idx->nentries = len / sizeof(struct lf_idx_entry);
	if (idx->nentries != lf_le64(h->nentries) ||
	    len % sizeof(struct lf_idx_entry))
		goto bad;
	idx->strings = sect(idx, LF_SECT_STRINGS, &idx->strings_len);
	/* every string ends inside the section */
	if (idx->strings_len && idx->strings[idx->strings_len - 1] != '\0')
		goto bad;
	idx->xattrs = sect(idx, LF_SECT_XATTRS, &len);
	idx->nxattrs = len / sizeof(struct lf_idx_xattr);
	idx->sparse = sect(idx, LF_SECT_SPARSE, &len);
	idx->nsparse = len / sizeof(struct lf_idx_sparse);
	idx->sums = sect(idx, LF_SECT_SPANSUMS, &sums_len);
	idx->nsums = sums_len / sizeof(uint64_t);
	idx->gz.points = sect(idx, LF_SECT_GZPOINTS, &len);
	idx->gz.npoints = len / sizeof(struct lf_gzidx_point);
	idx->gz.windows = sect(idx, LF_SECT_GZWINDOWS, &idx->gz.windows_len);
	idx->gz.total_in = lf_le64(h->blob_size);
	idx->gz.total_out = tar_size;
	idx->chunks = sect(idx, LF_SECT_CHUNKS, &len);
	idx->nchunks = len / sizeof(struct lf_idx_chunk);
	if (!(lf_le32(h->flags) & LF_CACHE_ESTARGZ ? estargz_ok(idx, len)
						   : !len) ||
	    lf_le32(h->compression) > LF_COMP_ZSTD ||
	    (lf_le32(h->compression) == LF_COMP_GZIP && !idx->gz.npoints &&
	     !(lf_le32(h->flags) & LF_CACHE_ESTARGZ)))
		goto bad;
	if (!gz_ok(idx) || !sums_ok(idx, sums_len))
		goto bad;
	for (i = 0; i < idx->nentries; i++)
		if (!entry_ok(idx, &idx->entries[i], tar_size))
			goto bad;
	return 0;
bad:
	*why = "inconsistent index contents";
	return -EINVAL;
}

struct lf_index *lf_index_alloc(void)
{
	struct lf_index *idx = calloc(1, sizeof(*idx));

	if (!idx)
		return NULL;
	idx->tar_fd = -1;
	idx->dir_fd = -1;
	return idx;
}

void lf_index_close(struct lf_index *idx)
{
	if (!idx)
		return;
	free(idx->cache_path);
	free(idx->copy_path);
	if (idx->mapped)
		lf_cache_unmap(idx->map, idx->maplen);
	else
		free(idx->map);
	if (idx->tar_fd >= 0)
		close(idx->tar_fd);
	if (idx->dir_fd >= 0)
		close(idx->dir_fd);
	free(idx);
}

size_t lf_index_count(const struct lf_index *idx)
{
	return idx->nentries;
}

const struct lf_idx_entry *lf_index_entry(const struct lf_index *idx, size_t i)
{
	return &idx->entries[i];
}

const uint8_t *lf_index_checksum(const struct lf_index *idx)
{
	return idx->dir_fd >= 0 ? NULL : idx->hdr->checksum;
}

const char *lf_index_str(const struct lf_index *idx, uint32_t off)
{
	return idx->strings + off;
}

const char *lf_index_path(const struct lf_index *idx,
			  const struct lf_idx_entry *e)
{
	return idx->strings + e->path;
}

const char *lf_index_link(const struct lf_index *idx,
			  const struct lf_idx_entry *e)
{
	return e->link == UINT32_MAX ? NULL : idx->strings + e->link;
}

void lf_index_xattr(const struct lf_index *idx, const struct lf_idx_entry *e,
		    size_t k, const char **name, const void **value,
		    size_t *len)
{
	const struct lf_idx_xattr *x = &idx->xattrs[e->xattr_first + k];

	*name = idx->strings + x->name;
	*value = idx->strings + x->value;
	*len = x->len;
}

const struct lf_idx_sparse *lf_index_sparse(const struct lf_index *idx,
					    const struct lf_idx_entry *e)
{
	return e->sparse_count ? &idx->sparse[e->sparse_first] : NULL;
}

enum lf_compression lf_index_compression(const struct lf_index *idx)
{
	return (enum lf_compression)lf_le32(idx->hdr->compression);
}

uint64_t lf_index_blob_size(const struct lf_index *idx)
{
	return lf_le64(idx->hdr->blob_size);
}

uint64_t lf_index_tar_size(const struct lf_index *idx)
{
	return lf_le64(idx->hdr->tar_size);
}

uint64_t lf_index_whiteouts(const struct lf_index *idx)
{
	return lf_le64(idx->hdr->nwhiteouts);
}

const char *lf_index_blob_digest(const struct lf_index *idx)
{
	return idx->hdr->blob_digest;
}

const char *lf_index_diff_id(const struct lf_index *idx)
{
	return idx->hdr->diff_id;
}

bool lf_index_cached(const struct lf_index *idx)
{
	return idx->cached;
}

const struct lf_gzidx_view *lf_index_gzidx(const struct lf_index *idx)
{
	return lf_index_compression(idx) == LF_COMP_GZIP ? &idx->gz : NULL;
}

int lf_index_check_windows(const struct lf_index *idx)
{
	return idx->cached ? lf_cache_check_windows(idx->map, idx->maplen) : 0;
}

const void *lf_index_file(const struct lf_index *idx, size_t *len)
{
	*len = idx->hdr ? idx->maplen : 0;
	return idx->hdr ? idx->map : NULL;
}

bool lf_index_verified(const struct lf_index *idx)
{
	return idx->hdr && (lf_le32(idx->hdr->flags) & LF_CACHE_VERIFIED);
}

const char *lf_index_cache_path(const struct lf_index *idx)
{
	return idx->cached ? idx->cache_path : NULL;
}

int lf_index_span_sum(const struct lf_index *idx, uint64_t block, uint64_t *sum)
{
	if (block >= idx->nsums)
		return -ENOENT;
	*sum = lf_le64(idx->sums[block]);
	return 0;
}

int lf_index_tar_fd(const struct lf_index *idx)
{
	return idx->tar_fd;
}

const char *lf_index_copy_path(const struct lf_index *idx)
{
	return idx->copy_path;
}

int lf_index_dir_fd(const struct lf_index *idx)
{
	return idx->dir_fd;
}

const struct lf_idx_chunk *lf_index_chunks(const struct lf_index *idx,
					   size_t *n)
{
	bool sgz = idx->hdr && (lf_le32(idx->hdr->flags) & LF_CACHE_ESTARGZ);

	if (n)
		*n = sgz ? idx->nchunks : 0;
	return sgz ? idx->chunks : NULL;
}

const char *lf_compression_name(enum lf_compression c)
{
	switch (c) {
	case LF_COMP_GZIP:
		return "gzip";
	case LF_COMP_ZSTD:
		return "zstd";
	default:
		return "none";
	}
}

void lf_index_key(const struct lf_image_layer *layer, char out[80])
{
	out[0] = '\0';
	/* digests were validated by image.c; ':' is not welcome in file names */
	if (lf_digest_valid(layer->digest))
		snprintf(out, 80, "sha256-%s", layer->digest + 7);
	else if (lf_digest_valid(layer->diff_id))
		snprintf(out, 80, "diffid-sha256-%s", layer->diff_id + 7);
}

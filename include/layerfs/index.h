/* SPDX-License-Identifier: MIT */
/*
 * index.h - the one-pass index of a layer blob, built once per digest ever.
 *
 * lf_index_open() loads `<cache>/<key>.idx` when it is valid, and otherwise
 * reads the blob exactly once:
 *   compressed bytes -> sha256 (must equal the manifest digest)
 *   -> inflate (gzip: with checkpoints, gzidx.h; zstd: zstdec.h, plus a
 *      decompressed copy `<cache>/<key>.tar` for random access)
 *   -> sha256 (must equal the config diff_id)
 *   -> tarscan.h -> entries with exact data offsets (cache.h format)
 * and stores the result in the cache (temp file + rename).  A corrupt or
 * foreign cache file is reported with lf_log(WARN), ignored and rebuilt.
 * Compression is detected from magic bytes, never from names or media types.
 * Entry paths are normalised (path.h); an entry with a ".." component or an
 * empty name fails the whole layer (design.md section 3 rule 1).
 *
 * This module knows nothing of trees or FUSE.  Ownership: a struct lf_index
 * owns its mapping; every pointer it returns is valid until lf_index_close().
 * It is the immutable description of a layer: reading the layer's bytes,
 * with the state that needs (the checked checkpoint windows, the fds they
 * are read through), is the layer sources' (source.h).  The index only
 * hands over what indexing opened (the zstd copy, the directory) as fds
 * that it keeps open until lf_index_close() and a source dups.
 * Thread safety: read-only after open; any number of readers.  Distinct layers
 * may be opened concurrently from different threads.
 */
#ifndef LAYERFS_INDEX_H
#define LAYERFS_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layerfs/cache.h"
#include "layerfs/common.h"
#include "layerfs/gzidx.h"
#include "layerfs/image.h"
#include "layerfs/limits.h"

struct lf_index;

/* Progress: bytes of the blob consumed so far, of `total`.  Called from the
 * indexing thread, at most every few MiB. */
typedef void (*lf_index_progress_fn)(void *ctx, uint64_t done, uint64_t total);

struct lf_index_opts {
	const char *cache_dir; /* NULL: no cache (build in memory only) */
	bool verify;	       /* check digest and diff_id (default on) */
	const char *label;     /* names the layer in messages, e.g. "layer 2" */
	lf_index_progress_fn progress; /* may be NULL */
	void *progress_ctx;
	struct lf_limits limits; /* zero fields: environment/default */
};

/*
 * Load or build the index of `layer` (borrowed; its blob must stay open while
 * the index is built, not afterwards).  Errors name the label and blob:
 *   "layer 2: blob blobs/sha256/ab..: digest mismatch: manifest says X, blob is Y"
 *   "layer 2: diff_id mismatch: config says X, uncompressed content is Y"
 *   "layer 2: entry '../escape' has a '..' component"
 *   "layer 2: blob X: uncompressed size exceeds the limit of N bytes ..."
 * plus those of gzidx.h, zstdec.h and tarscan.h.
 */
int lf_index_open(const struct lf_image_layer *layer,
		  const struct lf_index_opts *opts, struct lf_index **out,
		  struct lf_err *err);
void lf_index_close(struct lf_index *idx);

size_t lf_index_count(const struct lf_index *idx);
/* Entry i (tar order); i < lf_index_count(). */
const struct lf_idx_entry *lf_index_entry(const struct lf_index *idx, size_t i);
/* A string of the STRINGS section (entry paths, link targets). */
const char *lf_index_str(const struct lf_index *idx, uint32_t off);
/* Normalised path of an entry ("" = the root directory). */
const char *lf_index_path(const struct lf_index *idx,
			  const struct lf_idx_entry *e);
/* Link target of an entry, or NULL. */
const char *lf_index_link(const struct lf_index *idx,
			  const struct lf_idx_entry *e);
/* xattr k (< e->xattr_count) of an entry. */
void lf_index_xattr(const struct lf_index *idx, const struct lf_idx_entry *e,
		    size_t k, const char **name, const void **value,
		    size_t *len);
/* The sparse map of an entry (e->sparse_count records) or NULL. */
const struct lf_idx_sparse *lf_index_sparse(const struct lf_index *idx,
					    const struct lf_idx_entry *e);

enum lf_compression lf_index_compression(const struct lf_index *idx);
uint64_t lf_index_blob_size(const struct lf_index *idx);
uint64_t lf_index_tar_size(const struct lf_index *idx);
uint64_t lf_index_whiteouts(const struct lf_index *idx);
/* Digests computed while indexing ("sha256:<hex>"). */
const char *lf_index_blob_digest(const struct lf_index *idx);
const char *lf_index_diff_id(const struct lf_index *idx);
/*
 * The 32-byte checksum of the index image: it identifies the content, so
 * a merged tree stored for a list of layers names them by it
 * (tree_cache.h).  NULL for directory layers, which change under us.
 */
const uint8_t *lf_index_checksum(const struct lf_index *idx);
/* true when loaded from the cache rather than built now. */
bool lf_index_cached(const struct lf_index *idx);
/* Checkpoints of a gzip layer (NULL for others), unchecked: their windows
 * are not covered by the load-time checksum (lf_index_check_windows). */
const struct lf_gzidx_view *lf_index_gzidx(const struct lf_index *idx);
/*
 * Check the checkpoint windows against the cache file's checksum: 0, or
 * -EIO when they are damaged (the gzip source then rebuilds them in memory
 * and removes lf_index_cache_path()).  0 for an index built now.  Reads the
 * whole section: call it once.
 */
int lf_index_check_windows(const struct lf_index *idx);
/* The cache file the index was loaded from, or NULL (built now). */
const char *lf_index_cache_path(const struct lf_index *idx);
/* The whole index file image (cache.h), as stored or loaded; NULL for a
 * directory layer.  *len gets its size. */
const void *lf_index_file(const struct lf_index *idx, size_t *len);
/* Built with digest verification on (LF_CACHE_VERIFIED). */
bool lf_index_verified(const struct lf_index *idx);
/*
 * The hash (lf_cache_hash64()) of span `block` of the uncompressed stream
 * as seen while indexing: gzip layers, checkpoint span `block`; others,
 * bytes [block * LF_SPAN_SIZE, +LF_SPAN_SIZE) clipped to the tar size.
 * -ENOENT past the end or for directory layers.
 */
int lf_index_span_sum(const struct lf_index *idx, uint64_t block,
		      uint64_t *sum);
/*
 * Read-only fd of the decompressed copy of a zstd layer, or -1 for other
 * layers: opened (and its size checked) when the index was built or loaded,
 * owned by the index until lf_index_close(); the zstd source reads through
 * its own dup.  Without a cache directory the copy is an unlinked temp file
 * that disappears with the last fd.
 */
int lf_index_tar_fd(const struct lf_index *idx);
/* The copy's path in the cache (the zstd source removes it when a block
 * fails its check, so the next run rebuilds it), or NULL (temp file). */
const char *lf_index_copy_path(const struct lf_index *idx);
/*
 * A plain host directory as a layer (an extracted layer, as overlayfs and
 * fuse-overlayfs take them), walked now into the same entry table; never
 * cached, since directories change.  Both whiteout forms are honoured:
 * `.wh.NAME` files, and overlayfs's 0/0 character devices and
 * trusted.overlay.opaque / user.overlay.opaque = "y" on directories (turned
 * into `.wh.` entries here).  Symlinks are never followed; file data is read
 * later by the directory source, through a dup of lf_index_dir_fd().
 * `label` names the layer in messages.
 */
int lf_index_open_dir(const char *dir, const char *label, struct lf_index **out,
		      struct lf_err *err);
/* The same for a directory that is a whole root file system over the
 * layers below (a vfs-driver layer of containers-storage): its root is
 * opaque, as if `.wh..wh..opq` were in it. */
int lf_index_open_rootfs(const char *dir, const char *label,
			 struct lf_index **out, struct lf_err *err);
/* The directory fd of a directory layer (owned by the index until
 * lf_index_close(); the directory source dups it), else -1. */
int lf_index_dir_fd(const struct lf_index *idx);

/*
 * The chunk table of an eStargz layer indexed from its TOC (cache.h
 * CHUNKS; checked at load: back to back over the stream, inside the
 * blob), its count in *n (if n), or NULL for every other layer.
 * lf_index_open() indexes a gzip layer so when its manifest gives a TOC
 * digest (lf_image_layer.toc_digest) and the blob's footer and TOC match
 * it: one read of the blob's last 64 KiB, and of the TOC when it is
 * larger (estargz.h), instead of the whole blob.  Anything else about the TOC (no footer, a digest that differs,
 * a malformed TOC) is a warning and the layer is streamed as any gzip
 * layer.  A cached eStargz index is used only for a layer that names the
 * same TOC digest (else it is rebuilt).
 */
const struct lf_idx_chunk *lf_index_chunks(const struct lf_index *idx,
					   size_t *n);

/* "gzip", "none" or "zstd". */
const char *lf_compression_name(enum lf_compression c);

#endif /* LAYERFS_INDEX_H */

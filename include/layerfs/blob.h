/* SPDX-License-Identifier: MIT */
/*
 * blob.h - random access to the uncompressed bytes of a layer.
 *
 * A struct lf_blob is an open layer source (source.h): lf_blob_open()
 * picks the backend for the layer (plain tar: pread from the blob; gzip:
 * inflate from the nearest checkpoint, decompressed spans shared by all
 * blobs of a mount through a struct lf_chunk_cache (chunk_cache.h); zstd:
 * pread from the decompressed copy; a directory layer: the host files).
 * lf_blob_pread() reads the layer's tar stream at any offset;
 * lf_blob_read_file() reads a file entry's contents, mapping sparse files'
 * holes to zeros.
 *
 * Ownership: a blob borrows its vfile and index (both must outlive it) and
 * its chunk cache.  Thread safety: lf_blob_pread() and lf_blob_read_file()
 * may run on many threads at once; the chunk cache has its own lock.
 */
#ifndef LAYERFS_BLOB_H
#define LAYERFS_BLOB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "layerfs/chunk_cache.h"
#include "layerfs/common.h"
#include "layerfs/index.h"
#include "layerfs/vfile.h"

struct lf_blob;

/*
 * Open random access over `blob` described by `idx`.  `cc` may be NULL for
 * gzip layers too (then every read inflates from its checkpoint).
 */
int lf_blob_open(const struct lf_vfile *blob, const struct lf_index *idx,
		 struct lf_chunk_cache *cc, struct lf_blob **out,
		 struct lf_err *err);
void lf_blob_close(struct lf_blob *b);

/*
 * Read up to len bytes of the tar stream at `off`.  Returns bytes read (short
 * only at the end of the stream) or -errno (-EIO with a message naming the
 * blob and the offset when the blob is gone or corrupt).
 */
ssize_t lf_blob_pread(struct lf_blob *b, void *buf, size_t len, uint64_t off,
		      struct lf_err *err);

/*
 * Read up to len bytes of the contents of file entry `e` (of this blob's
 * index) at file offset `off`.  Returns bytes read (short only at the end of
 * the file) or -errno.
 */
ssize_t lf_blob_read_file(struct lf_blob *b, const struct lf_idx_entry *e,
			  void *buf, size_t len, uint64_t off,
			  struct lf_err *err);

#endif /* LAYERFS_BLOB_H */

/* SPDX-License-Identifier: MIT */
/*
 * source.h - layer sources: where a layer's bytes come from, one backend
 * per kind of location behind one small ops table.
 *
 * An open source is a struct lf_blob (blob.h's handle).  It serves the
 * layer's tar stream at any offset (pread) and, for layers stored as files
 * rather than as a stream, a file's bytes (read_file).  The backends, one
 * file each in src/view/:
 *   source_plain.c  a blob stored as is: pread from its vfile (a file, or its
 *                   range in an outer tar), block by block;
 *   source_gzip.c   inflate from the nearest checkpoint (gzidx.h) through the
 *                   chunk cache, with read-ahead;
 *   source_zstd.c   pread from the decompressed copy indexing left;
 *   source_estargz.c an eStargz layer indexed from its TOC: each chunk's
 *                   gzip member fetched raw (lf_rblob_pread_raw), inflated
 *                   and checked against the TOC's sha256 (estargz.h);
 *   source_dir.c    a directory layer: a file's bytes from the host file.
 * Every backend but dir and estargz checks what it reads against the index's SPANSUMS
 * (lf_index_span_sum) and the blob file's identity (lf_source_check_file),
 * and answers EIO with one message naming the blob when either differs:
 * never other bytes.
 *
 * Selection: lf_blob_open() offers the layer's location (struct
 * lf_source_loc: the blob vfile and its index, which knows the compression
 * and whether the layer is a directory) to the backends of
 * LF_SOURCE_BACKENDS in order; the first whose match() says yes opens it.
 *
 * Ownership: a source borrows its blob vfile, index and chunk cache (all
 * outlive it) and owns what its open() made (its state, and a dup of the
 * fd the index hands over: index.h, lf_index_tar_fd/lf_index_dir_fd).
 * lf_blob_close() drops its queued read-ahead (lf_chunk_forget) before
 * ops->close frees it.
 * Thread safety: pread and read_file run on many threads at once; open and
 * close are single-owner.  A backend keeps per-read work to what the read
 * needs: no allocation beyond a missed chunk, no lock beyond the cache's.
 *
 * Adding a backend (e.g. a registry blob read by HTTP Range requests, its
 * spans checked against the same SPANSUMS):
 *   1. src/view/source_NAME.c defines `const struct lf_source_ops
 *      lf_source_NAME` (and is listed in src/view/meson.build);
 *   2. here: its declaration below and its place in LF_SOURCE_BACKENDS,
 *      before the generic backends it must win over;
 *   3. the image/transport parser gives the layer its location: the blob as
 *      a vfile (lf_vfile_from_ops for bytes that are not in a host file),
 *      which is also what indexing reads.  match() recognises its own by the
 *      blob's backend (lf_vfile_backend()) and the index's compression.
 * A transport whose bytes are merely elsewhere needs only step 3: the
 * plain and gzip backends read any vfile.  Nothing else changes: blob.c,
 * the chunk cache and every caller see only struct lf_blob.
 */
#ifndef LAYERFS_SOURCE_H
#define LAYERFS_SOURCE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "layerfs/chunk_cache.h"
#include "layerfs/common.h"
#include "layerfs/index.h"
#include "layerfs/vfile.h"

struct lf_blob;
struct lf_chunk;

/* Where a layer's bytes are, as the image parser and the indexer left it. */
struct lf_source_loc {
	const struct lf_vfile *blob; /* the blob; NULL for directories */
	const struct lf_index *idx;  /* compression, sizes, SPANSUMS */
	struct lf_chunk_cache *cc;   /* may be NULL (no caching) */
};

struct lf_source_ops {
	const char *name;
	/* Does this backend read the layer at loc? */
	bool (*match)(const struct lf_source_loc *loc);
	/* Allocate the backend's state (a struct embedding struct lf_blob as
	 * its first member), lf_source_init() it and check what it needs
	 * (e.g. lf_source_need_sums()).  0 or -errno with a message. */
	int (*open)(const struct lf_source_loc *loc, struct lf_blob **out,
		    struct lf_err *err);
	/* Bytes [off, off+len) of the tar stream; the caller clips the range
	 * to b->tar_size.  Returns len or -errno with a message. */
	ssize_t (*pread)(struct lf_blob *b, void *buf, size_t len, uint64_t off,
			 struct lf_err *err);
	/* A file's bytes, for layers whose files are not ranges of the
	 * stream (directories); NULL: lf_blob_read_file() reads the file's
	 * range of the stream, sparse holes as zeros. */
	ssize_t (*read_file)(struct lf_blob *b, const struct lf_idx_entry *e,
			     void *buf, size_t len, uint64_t off,
			     struct lf_err *err);
	/* Free what open() made. */
	void (*close)(struct lf_blob *b);
};

/* The part every open source shares (lf_source_init fills it). */
struct lf_blob {
	const struct lf_source_ops *ops;
	const struct lf_vfile *vf;  /* borrowed, NULL for directories */
	const struct lf_index *idx; /* borrowed */
	struct lf_chunk_cache *cc;  /* borrowed, may be NULL */
	uint64_t id;		    /* its chunks' key in cc */
	uint64_t tar_size;
	/* the blob file as opened; a change answers EIO, never other bytes */
	bool has_id;
	struct stat st;
	atomic_bool changed; /* latched once seen */
};

/* The backends, and the order lf_blob_open() offers them a location. */
extern const struct lf_source_ops lf_source_dir, lf_source_zstd,
	lf_source_estargz, lf_source_gzip, lf_source_plain;
#define LF_SOURCE_BACKENDS                                                     \
	&lf_source_dir, &lf_source_zstd, &lf_source_estargz, &lf_source_gzip,  \
		&lf_source_plain

/* Helpers for backends (source.c, source_plain.c). */

/* Fill b's shared part for loc (a chunk id, the blob file's identity). */
void lf_source_init(struct lf_blob *b, const struct lf_source_ops *ops,
		    const struct lf_source_loc *loc);
/* The blob's name for messages ("?" for directories). */
const char *lf_source_name(const struct lf_blob *b);
/* -EINVAL "the index has no checksums" unless span `last` (the last of a
 * non-empty stream) has one. */
int lf_source_need_sums(const struct lf_blob *b, uint64_t last,
			struct lf_err *err);
/* After reading: -EIO with a message if the blob file was written since
 * the source opened it (latched), else 0.  One fstat. */
int lf_source_check_file(struct lf_blob *b, struct lf_err *err);
/* -EIO "bytes at offset N of the layer differ from when it was indexed". */
int lf_source_differs(const struct lf_blob *b, uint64_t off,
		      struct lf_err *err);
/* A new chunk of `len` bytes for chunk `no` of b (refs 1), NULL if no
 * memory; the backend fills it, then lf_chunk_put()s or frees it. */
struct lf_chunk *lf_source_chunk_new(const struct lf_blob *b, uint64_t no,
				     size_t len);
/* pread(2) of len bytes, retrying EINTR and short reads; short at EOF. */
ssize_t lf_source_fd_pread(int fd, void *buf, size_t len, uint64_t off);

/*
 * Backends whose stream is stored as is somewhere (plain: the blob; zstd:
 * its decompressed copy) read it block by block (LF_SPAN_SIZE): whole
 * blocks straight into the caller's buffer, the blocks at the edges of a
 * read through the chunk cache, each block checked against SPANSUMS.
 */
struct lf_flat {
	struct lf_blob b;
	/* [off, off+len) as stored: bytes read (short at the end) or -errno */
	ssize_t (*raw)(struct lf_flat *f, void *buf, size_t len, uint64_t off);
	/* the error for block at off failing its check */
	int (*damaged)(struct lf_flat *f, uint64_t off, struct lf_err *err);
};
/* ops->pread of such backends. */
ssize_t lf_flat_pread(struct lf_blob *b, void *buf, size_t len, uint64_t off,
		      struct lf_err *err);

#endif /* LAYERFS_SOURCE_H */

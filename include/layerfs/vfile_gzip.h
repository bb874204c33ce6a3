/* SPDX-License-Identifier: MIT */
/*
 * vfile_gzip.h - the decompressed bytes of a gzip file as a vfile.
 *
 * `docker save | gzip` and a gzip'd OCI archive are read in place: one pass
 * over the file builds gzidx checkpoints (about one per MiB of output, with
 * its 32 KiB window, in memory: ~1.5% of the output), and every read
 * afterwards inflates from the nearest checkpoint.  With a cache directory
 * the checkpoints are kept in `<cache>/gzouter-<hex>.gzi`, named by the
 * file's identity (device, inode, size, mtime, ctime: any change gives
 * another name) and checked whole (sha256) and point by point at load, so
 * a second look at the same file inflates only what it reads.  Decompressed spans are
 * kept in a small LRU (LF_VFILE_GZIP_SLOTS spans), so sequential readers
 * (a layer indexed through it, a gzip layer inside read through it) inflate
 * each span once: reading through two levels stays linear.  Nothing is
 * written to disk.  Sub-ranges (lf_vfile_sub) share the checkpoints.
 *
 * Thread safety: the returned vfile (and its sub-ranges) may be pread from
 * many threads; the LRU has its own lock, inflating runs outside it.
 */
#ifndef LAYERFS_VFILE_GZIP_H
#define LAYERFS_VFILE_GZIP_H

#include <stdbool.h>

#include "layerfs/common.h"
#include "layerfs/vfile.h"

/* Decompressed spans kept for re-reading. */
#define LF_VFILE_GZIP_SLOTS 16

/* Does vf start with the gzip magic (1f 8b)? */
bool lf_vfile_is_gzip(const struct lf_vfile *vf);

/*
 * Inflate `file` once, building its checkpoints (or load them from
 * `cache_dir`, NULL for none; a damaged checkpoint file is a warning and
 * rebuilt, one we cannot write a warning), and return a vfile of its
 * decompressed bytes named like `file`.  Takes ownership of `file`
 * (closed on failure).  Errors are those of gzidx.h (corrupt or truncated stream, named
 * by the file and the compressed offset), or -EFBIG for a checkpoint span
 * of more than 64 MiB (no gzip tool writes one).
 */
int lf_vfile_gzip_open(struct lf_vfile *file, const char *cache_dir,
		       struct lf_vfile **out, struct lf_err *err);

#endif /* LAYERFS_VFILE_GZIP_H */

/* SPDX-License-Identifier: MIT */
/*
 * zstdec.h - streaming zstd decoder for tar+zstd layers (the only libzstd
 * user).
 *
 * Same pull shape as the gzip builder in gzidx.h: compressed bytes come in
 * through a read callback (index.c hashes them there), decompressed bytes go
 * out through lf_zstdec_read().  zstd frames have no cheap random access
 * points, so index.c keeps a decompressed copy of such layers in the cache
 * directory (design.md section 5) and the zstd source reads that with pread.
 * Concatenated frames are decoded in sequence; skippable frames are skipped.
 *
 * Ownership: the decoder owns its buffers.  Thread safety: one thread.
 */
#ifndef LAYERFS_ZSTDEC_H
#define LAYERFS_ZSTDEC_H

#include <stddef.h>
#include <sys/types.h>

#include "layerfs/common.h"

struct lf_zstdec;

/* Source of compressed bytes: bytes read, 0 at EOF, or -errno. */
typedef ssize_t (*lf_zstdec_read_fn)(void *ctx, void *buf, size_t len);

/* `name` (borrowed, valid for the decoder's life) names the blob. */
int lf_zstdec_new(lf_zstdec_read_fn rd, void *ctx, const char *name,
		  struct lf_zstdec **out);

/*
 * Produce up to len bytes into buf; *got = 0 with return 0 at the end.
 * -EINVAL for corrupt data, -EIO for a truncated stream or a read error,
 * with a message naming the blob and the compressed offset.
 */
int lf_zstdec_read(struct lf_zstdec *d, void *buf, size_t len, size_t *got,
		   struct lf_err *err);

void lf_zstdec_free(struct lf_zstdec *d);

#endif /* LAYERFS_ZSTDEC_H */

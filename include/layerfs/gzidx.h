/* SPDX-License-Identifier: MIT */
/*
 * gzidx.h - random access into gzip streams (zlib's zran technique).
 *
 * A gzip stream cannot be entered in the middle except at a deflate block
 * boundary, given the 32 KiB of output before it.  While a layer is read once
 * (index.c), the builder inflates it and records a checkpoint about every
 * `span` bytes of output: {compressed offset, bit offset, uncompressed
 * offset, 32 KiB window}.  Each window is stored as a zlib-format stream
 * (compress2-style, so its adler32 catches a damaged cache file).  Only gzip
 * is accepted (windowBits 31), not raw zlib streams.  Multi-member gzip files
 * (concatenated streams) work the same; every member start gets a point.
 * Zero bytes after the last member are ignored (some tools pad; they count
 * in total_in); any other trailing data is an error.  Points have strictly
 * increasing `out`.
 *
 * Two inflaters do the work: ISA-L (gzidx_isal.c, when built with it; 3-4
 * times faster) or zlib.  They make points of the same meaning, so an index
 * built by one is read by the other.  The engine is process-wide: ISA-L by
 * default, zlib with LAYERFS_INFLATE=zlib or lf_gzidx_set_engine().  ISA-L
 * stops only where its input or output ends, so its builder finds block
 * boundaries by feeding input in slices once a point is due (see
 * gzidx_isal.c); points may then lie a little further apart than `span`.
 *
 * The gzip layer source (src/view/source_gzip.c) keeps decompressed spans
 * in the chunk LRU and calls lf_gzidx_extract().
 *
 * Ownership: the builder owns its buffers until lf_gzidx_builder_free().  A
 * struct lf_gzidx_view borrows memory (usually the mmapped cache file).
 * Thread safety: a builder belongs to one thread; lf_gzidx_extract() is
 * reentrant (each call has its own z_stream) and may run on many threads over
 * the same view.
 */
#ifndef LAYERFS_GZIDX_H
#define LAYERFS_GZIDX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "layerfs/buf.h"
#include "layerfs/common.h"
#include "layerfs/vfile.h"

/* Default checkpoint spacing (bytes of uncompressed output). */
#define LF_GZIDX_SPAN (1u << 20)

/* On-disk checkpoint record (little-endian, part of the cache format). */
struct lf_gzidx_point {
	uint64_t in;  /* compressed offset of the first full byte */
	uint64_t out; /* uncompressed offset of this checkpoint */
	uint64_t
		window_off; /* offset of the deflated window in the windows blob */
	uint32_t
		window_len; /* deflated window length (0: no window, out==member start) */
	uint8_t bits;	/* bits (0-7) of the byte at in-1 that belong here */
	uint8_t flags;	/* LF_GZIDX_POINT_* */
	uint8_t pad[2]; /* zero */
};
_Static_assert(sizeof(struct lf_gzidx_point) == 32, "gzidx point size");

/* The point is at the start of a gzip member (a header follows at `in`). */
#define LF_GZIDX_POINT_MEMBER 1

/* A read-only view of an index: borrowed arrays. */
struct lf_gzidx_view {
	const struct lf_gzidx_point *points; /* sorted by out */
	size_t npoints;
	const unsigned char *windows; /* deflated windows */
	size_t windows_len;
	uint64_t total_out; /* uncompressed size */
	uint64_t total_in;  /* compressed size */
};

enum lf_gzidx_engine { LF_GZIDX_ZLIB, LF_GZIDX_ISAL };

/* The inflater builders and extracts use now. */
enum lf_gzidx_engine lf_gzidx_engine(void);
/* Choose it (tests, benchmarks); -ENOTSUP if not built with ISA-L. */
int lf_gzidx_set_engine(enum lf_gzidx_engine e);
const char *lf_gzidx_engine_name(enum lf_gzidx_engine e);

/* Pull-style source of compressed bytes: returns bytes read, 0 at EOF, or
 * -errno.  index.c hashes the compressed stream inside this callback. */
typedef ssize_t (*lf_gzidx_read_fn)(void *ctx, void *buf, size_t len);

struct lf_gzidx_builder;

/*
 * Create a builder that pulls compressed bytes through `rd(ctx, ...)`.
 * `name` (borrowed, valid for the builder's life) names the blob in messages.
 * span 0 means LF_GZIDX_SPAN.
 */
int lf_gzidx_builder_new(uint64_t span, lf_gzidx_read_fn rd, void *ctx,
			 const char *name, struct lf_gzidx_builder **out);

/*
 * Produce up to `len` (> 0) bytes of uncompressed output into buf.  After a
 * failure every later call returns the same code.  *got is set to
 * the number produced; 0 with return 0 means the end of the (last) member.
 * Errors: -EINVAL for corrupt data ("'<name>': corrupt deflate data at
 * compressed offset N: <zlib msg>"), -EIO for a truncated stream ("'<name>':
 * truncated gzip stream (ends at compressed offset N)") or a read error.
 */
int lf_gzidx_builder_read(struct lf_gzidx_builder *b, void *buf, size_t len,
			  size_t *got, struct lf_err *err);

/* Point a view at the point array and windows blob held in two buffers
 * (as lf_gzidx_builder_finish() fills them); totals are left as they are. */
void lf_gzidx_view_set(struct lf_gzidx_view *v, const struct lf_buf *points,
		       const struct lf_buf *windows);

/*
 * After the end: append the point array and the windows blob to `points` and
 * `windows` (both caller-owned buffers), and report totals.  window_off
 * counts from the start of what is appended to `windows`.  Only valid once
 * lf_gzidx_builder_read() has returned 0 bytes.
 */
int lf_gzidx_builder_finish(struct lf_gzidx_builder *b, struct lf_buf *points,
			    struct lf_buf *windows, uint64_t *total_in,
			    uint64_t *total_out, struct lf_err *err);

/*
 * The checkpoints recorded so far (the first is at out 0): their number,
 * and the uncompressed offset of point k < that number.  Points are
 * recorded in order of out, each before any output past it is returned,
 * except that ISA-L's builder may record points behind output already
 * returned (never before the last point recorded); index.c keeps the
 * output since the last point and hashes each span once the point that
 * ends it exists.
 */
size_t lf_gzidx_builder_npoints(const struct lf_gzidx_builder *b);
uint64_t lf_gzidx_builder_point_out(const struct lf_gzidx_builder *b, size_t k);

void lf_gzidx_builder_free(struct lf_gzidx_builder *b);

/*
 * Decompress `len` bytes of output starting exactly at checkpoint `i` of
 * `view`, reading compressed bytes from `blob`.  Reading stops early only at
 * the end of the stream (*got < len).  Callers (the gzip source) choose i
 * as the last point <= the wanted offset and discard the head they do not
 * need.
 * Returns 0 or -EIO/-EINVAL with a message naming the blob and offset.
 */
int lf_gzidx_extract(const struct lf_gzidx_view *view, size_t i,
		     const struct lf_vfile *blob, void *out, size_t len,
		     size_t *got, struct lf_err *err);

/* Index of the last point with out <= off (0 if none). */
size_t lf_gzidx_find(const struct lf_gzidx_view *view, uint64_t off);

#endif /* LAYERFS_GZIDX_H */

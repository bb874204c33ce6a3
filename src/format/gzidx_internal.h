/* SPDX-License-Identifier: MIT */
/*
 * gzidx_internal.h - shared by gzidx.c (zlib) and gzidx_isal.c (ISA-L).
 *
 * One builder type serves both inflaters: the stream bookkeeping, the
 * checkpoint array and the windows blob are common; each engine keeps its
 * own decoder state.  Points are pushed only through gzidx_push_point(),
 * which keeps `out` strictly increasing.
 */
#ifndef LAYERFS_GZIDX_INTERNAL_H
#define LAYERFS_GZIDX_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <zlib.h>

#include "layerfs/gzidx.h"

/* deflate's window: the most output a back-reference can reach. */
#define WSIZE 32768u
#define WMASK (WSIZE - 1)

enum build_state {
	B_RUN,	      /* inside a member */
	B_MEMBER_END, /* Z_STREAM_END seen; next member, padding or EOF? */
	B_DONE,	      /* end of the last member (and of any zero padding) */
	B_FAILED,     /* an error was returned; the builder is unusable */
};

struct lf_gzidx_builder {
	z_stream zs;  /* gzip-mode inflater over the whole blob */
	z_stream ds;  /* level-1 deflater for windows */
	bool ds_live; /* ds was initialised (lazily, first point) */
	lf_gzidx_read_fn rd;
	void *ctx;
	const char *name; /* borrowed */
	uint64_t span;
	uint64_t nread;	     /* compressed bytes pulled from rd so far */
	uint64_t out;	     /* uncompressed bytes produced so far */
	uint64_t last;	     /* out of the last checkpoint */
	uint64_t member_out; /* out at the start of the current member */
	bool eof;	     /* rd returned 0 */
	enum build_state state;
	int fail;	   /* the code returned when state == B_FAILED */
	unsigned char *in; /* BUILD_CHUNK bytes of compressed input */
	/*
	 * The last WSIZE bytes of output from *earlier* read calls.  Output of
	 * the current call is still in the caller's buffer, so a window is
	 * assembled from the ring's tail plus that buffer's head, and the ring
	 * is refreshed once per call (at most WSIZE bytes copied).
	 */
	unsigned char ring[WSIZE];
	size_t ring_pos;   /* where the next byte goes */
	size_t ring_len;   /* valid bytes, <= WSIZE */
	unsigned char *wz; /* scratch for one deflated window */
	size_t wz_cap;
	struct lf_buf points;	 /* struct lf_gzidx_point, host byte order */
	struct lf_buf windows;	 /* concatenated deflated windows */
	struct gzidx_isal *isal; /* the ISA-L engine's state, or NULL: zlib */
};

unsigned long long gzidx_ull(uint64_t v);
int gzidx_truncated(const char *name, uint64_t off, struct lf_err *err);
int gzidx_trailing_garbage(const char *name, uint64_t off, struct lf_err *err);
/* "read error at compressed offset OFF" for a reader's -errno n. */
int gzidx_read_error(const char *name, uint64_t off, ssize_t n,
		     struct lf_err *err);
/* 0 if p[0, n) are all zero bytes (padding), else trailing garbage. */
int gzidx_zeros(const unsigned char *p, size_t n, const char *name,
		uint64_t off, struct lf_err *err);
int gzidx_push_point(struct lf_gzidx_builder *b,
		     const struct lf_gzidx_point *pt);

int gzidx_store_window(struct lf_gzidx_builder *b, const unsigned char *dst,
		       size_t done, size_t wlen, uint64_t *off, uint32_t *zlen);

/* gzidx_isal.c: the same operations on ISA-L (stubs without it). */
bool gzidx_isal_available(void);
int gzidx_isal_new(struct lf_gzidx_builder *b);
void gzidx_isal_free(struct lf_gzidx_builder *b);
int gzidx_isal_read(struct lf_gzidx_builder *b, unsigned char *dst, size_t len,
		    size_t *got, struct lf_err *err);
int gzidx_isal_extract(const struct lf_gzidx_view *view, size_t i,
		       const struct lf_vfile *blob, void *out, size_t len,
		       size_t *got, struct lf_err *err);

#endif /* LAYERFS_GZIDX_INTERNAL_H */

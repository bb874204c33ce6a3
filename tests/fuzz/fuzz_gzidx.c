// SPDX-License-Identifier: MIT
/*
 * fuzz_gzidx.c - gzip streams through the checkpoint builder, then every
 * checkpoint entered again: what lf_gzidx_extract() returns from a
 * checkpoint must be the bytes the one-pass inflate produced there.  Both
 * inflaters (zlib, and ISA-L when built with it) build an index of each
 * input; where both succeed their output must be the same bytes, and the
 * points of either must read right with either.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "fuzz.h"
#include "layerfs/buf.h"
#include "layerfs/common.h"
#include "layerfs/gzidx.h"
#include "layerfs/vfile.h"

#define MAX_OUT (4u << 20) /* a gzip bomb is not what we are after */
#define SPAN 4096	   /* checkpoints even in small inputs */

static void check_points(const uint8_t *data, size_t size,
			 const struct lf_buf *points,
			 const struct lf_buf *windows, const uint8_t *out,
			 uint64_t total_in, uint64_t total_out)
{
	struct lf_gzidx_view v = {
		(const struct lf_gzidx_point *)(const void *)points->data,
		points->len / sizeof(struct lf_gzidx_point),
		(const unsigned char *)windows->data,
		windows->len,
		total_out,
		total_in
	};
	static unsigned char got[8192];
	struct lf_vfile *vf;
	struct lf_err err;
	size_t i;

	if (lf_vfile_from_mem(data, size, "fuzz.gz", &vf))
		return;
	for (i = 0; i < v.npoints && i < 64; i++) {
		uint64_t at = v.points[i].out;
		size_t want = (size_t)LF_MIN((uint64_t)sizeof(got),
					     total_out - at),
		       n = 0;

		if (at > total_out ||
		    lf_gzidx_extract(&v, i, vf, got, want, &n, &err) ||
		    n != want || memcmp(got, out + at, want))
			abort();
		if (lf_gzidx_find(&v, at) != i) /* outs strictly increase */
			abort();
	}
	lf_vfile_close(vf);
}

/* Build with the current engine: 0 and out/points/windows filled, or -1. */
static int build(const uint8_t *data, size_t size, struct lf_buf *out,
		 struct lf_buf *points, struct lf_buf *windows,
		 uint64_t *total_in, uint64_t *total_out)
{
	struct fuzz_src s = { data, size, 0, 0 };
	struct lf_gzidx_builder *b;
	struct lf_err err;
	size_t got;
	int ret;

	if (lf_gzidx_builder_new(SPAN, fuzz_read, &s, "fuzz.gz", &b))
		return -1;
	do {
		if (out->len >= MAX_OUT || lf_buf_grow(out, 65536)) {
			ret = -1;
			break;
		}
		ret = lf_gzidx_builder_read(b, out->data + out->len, 65536,
					    &got, &err);
		if (!ret)
			out->len += got; /* lf_buf_grow() made the room */
	} while (!ret && got);
	if (!ret)
		ret = lf_gzidx_builder_finish(b, points, windows, total_in,
					      total_out, &err);
	lf_gzidx_builder_free(b);
	if (!ret && *total_out != out->len)
		abort();
	return ret ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum lf_gzidx_engine eng[2] = { LF_GZIDX_ZLIB,
						     LF_GZIDX_ISAL };
	struct lf_buf out[2], points[2], windows[2];
	uint64_t total_in[2], total_out[2];
	int ok[2] = { 0, 0 }, a, b;

	for (a = 0; a < 2; a++) {
		lf_buf_init(&out[a]);
		lf_buf_init(&points[a]);
		lf_buf_init(&windows[a]);
		if (!lf_gzidx_set_engine(eng[a]))
			ok[a] = !build(data, size, &out[a], &points[a],
				       &windows[a], &total_in[a],
				       &total_out[a]);
	}
	if (ok[0] && ok[1] &&
	    (out[0].len != out[1].len ||
	     memcmp(out[0].data, out[1].data, out[0].len)))
		abort();
	for (a = 0; a < 2; a++) {
		for (b = 0; ok[a] && b < 2; b++) {
			if (!lf_gzidx_set_engine(eng[b]))
				check_points(data, size, &points[a],
					     &windows[a],
					     (const uint8_t *)out[a].data,
					     total_in[a], total_out[a]);
		}
		lf_buf_release(&out[a]);
		lf_buf_release(&points[a]);
		lf_buf_release(&windows[a]);
	}
	return 0;
}

// SPDX-License-Identifier: MIT
/*
 * fuzz_gzidx.c - gzip streams through the checkpoint builder, then every
 * checkpoint entered again: what lf_gzidx_extract() returns from a
 * checkpoint must be the bytes the one-pass inflate produced there.
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_src s = { data, size, 0, 0 };
	struct lf_gzidx_builder *b;
	struct lf_buf out, points, windows;
	uint64_t total_in, total_out;
	struct lf_err err;
	size_t got;
	int ret;

	if (lf_gzidx_builder_new(SPAN, fuzz_read, &s, "fuzz.gz", &b))
		return 0;
	lf_buf_init(&out);
	lf_buf_init(&points);
	lf_buf_init(&windows);
	do {
		if (out.len >= MAX_OUT || lf_buf_grow(&out, 65536))
			goto done;
		ret = lf_gzidx_builder_read(b, out.data + out.len, 65536, &got,
					    &err);
		if (!ret)
			out.len += got; /* lf_buf_grow() made the room */
	} while (!ret && got);
	if (!ret && !lf_gzidx_builder_finish(b, &points, &windows, &total_in,
					     &total_out, &err)) {
		if (total_out != out.len)
			abort();
		check_points(data, size, &points, &windows,
			     (const uint8_t *)out.data, total_in, total_out);
	}
done:
	lf_gzidx_builder_free(b);
	lf_buf_release(&out);
	lf_buf_release(&points);
	lf_buf_release(&windows);
	return 0;
}

// SPDX-License-Identifier: MIT
/* zstdec.c - streaming zstd decompression with libzstd. */
#include "layerfs/zstdec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

struct lf_zstdec {
	ZSTD_DStream *ds;
	lf_zstdec_read_fn rd;
	void *ctx;
	const char *name;  /* borrowed */
	unsigned char *in; /* owned input buffer */
	size_t in_cap;
	ZSTD_inBuffer ib;
	uint64_t in_total; /* compressed bytes consumed so far */
	size_t last_ret;   /* 0 when the last frame is complete */
	int eof;	   /* the source returned 0 */
};

int lf_zstdec_new(lf_zstdec_read_fn rd, void *ctx, const char *name,
		  struct lf_zstdec **out)
{
	struct lf_zstdec *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	d->ds = ZSTD_createDStream();
	d->in_cap = ZSTD_DStreamInSize() * 4;
	d->in = malloc(d->in_cap);
	if (!d->ds || !d->in) {
		lf_zstdec_free(d);
		return -ENOMEM;
	}
	ZSTD_initDStream(d->ds);
	d->rd = rd;
	d->ctx = ctx;
	d->name = name;
	d->ib.src = d->in;
	*out = d;
	return 0;
}

static int refill(struct lf_zstdec *d, struct lf_err *err)
{
	ssize_t n = d->rd(d->ctx, d->in, d->in_cap);

	if (n < 0)
		return lf_err_set(err, (int)n, "'%s': read error: %s", d->name,
				  strerror((int)-n));
	d->in_total += (uint64_t)n;
	d->ib.src = d->in;
	d->ib.size = (size_t)n;
	d->ib.pos = 0;
	if (n == 0)
		d->eof = 1;
	return 0;
}

int lf_zstdec_read(struct lf_zstdec *d, void *buf, size_t len, size_t *got,
		   struct lf_err *err)
{
	ZSTD_outBuffer ob = { buf, len, 0 };
	int ret;

	while (ob.pos < ob.size) {
		size_t r;

		if (d->ib.pos == d->ib.size) {
			if (d->eof)
				break;
			if ((ret = refill(d, err)))
				return ret;
			if (d->eof)
				break;
		}
		r = ZSTD_decompressStream(d->ds, &ob, &d->ib);
		if (ZSTD_isError(r))
			return lf_err_set(err, -EINVAL,
					  "'%s': corrupt zstd data near "
					  "compressed offset %llu: %s",
					  d->name,
					  (unsigned long long)(d->in_total -
							       d->ib.size +
							       d->ib.pos),
					  ZSTD_getErrorName(r));
		d->last_ret = r;
	}
	if (ob.pos == 0 && d->eof && d->last_ret != 0)
		return lf_err_set(err, -EIO,
				  "'%s': truncated zstd stream (ends at "
				  "compressed offset %llu)",
				  d->name, (unsigned long long)d->in_total);
	*got = ob.pos;
	return 0;
}

void lf_zstdec_free(struct lf_zstdec *d)
{
	if (!d)
		return;
	ZSTD_freeDStream(d->ds);
	free(d->in);
	free(d);
}

// SPDX-License-Identifier: MIT
/* gzidx.c - gzip checkpoint index (zran technique): build, extract, find. */
#include "layerfs/gzidx.h"
#include "gzidx_internal.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/*
 * The builder pulls 256 KiB at a time: a layer is hundreds of MB, and each
 * read goes through index.c's sha256 callback, so few large calls win.
 * Extract reads 64 KiB pieces: a small read near a checkpoint needs only a
 * little compressed input, and 64 KiB + the window stay under glibc's mmap
 * threshold, so the per-call buffer comes from the heap, not from mmap().
 */
#define BUILD_CHUNK (256u << 10)
#define EXTRACT_CHUNK (64u << 10)

/* inflateInit2() windowBits: 15 + 16 = gzip wrapper only, -15 = raw. */
#define WBITS_GZIP 31
#define WBITS_RAW (-15)
#define WBITS_ZLIB 15

/* The inflater, chosen once (LAYERFS_INFLATE) unless set by a test. */
static _Atomic int engine = -1;

static int engine_default(void)
{
	const char *e = getenv("LAYERFS_INFLATE");

	if (e && !strcmp(e, "zlib"))
		return LF_GZIDX_ZLIB;
	return gzidx_isal_available() ? LF_GZIDX_ISAL : LF_GZIDX_ZLIB;
}

enum lf_gzidx_engine lf_gzidx_engine(void)
{
	int e = engine;

	if (e < 0) {
		int want = engine_default(), none = -1;

		atomic_compare_exchange_strong(&engine, &none, want);
		e = engine;
	}
	return (enum lf_gzidx_engine)e;
}

int lf_gzidx_set_engine(enum lf_gzidx_engine e)
{
	if (e == LF_GZIDX_ISAL && !gzidx_isal_available())
		return -ENOTSUP;
	if (e != LF_GZIDX_ISAL && e != LF_GZIDX_ZLIB)
		return -EINVAL;
	engine = (int)e;
	return 0;
}

const char *lf_gzidx_engine_name(enum lf_gzidx_engine e)
{
	return e == LF_GZIDX_ISAL ? "isa-l" : "zlib";
}

unsigned long long gzidx_ull(uint64_t v)
{
	return (unsigned long long)v;
}

/* Compressed offset of the next byte inflate will consume. */
static uint64_t build_pos(const struct lf_gzidx_builder *b)
{
	return b->nread - b->zs.avail_in;
}

static int zlib_fail(int zret, const z_stream *zs, const char *name,
		     uint64_t off, struct lf_err *err)
{
	const char *why = zs->msg;

	if (zret == Z_MEM_ERROR)
		return lf_err_set(err, -ENOMEM,
				  "'%s': out of memory inflating at compressed "
				  "offset %llu",
				  name, gzidx_ull(off));
	if (!why)
		why = zret == Z_NEED_DICT ? "needs a preset dictionary"
					  : "bad data";
	return lf_err_set(err, -EINVAL,
			  "'%s': corrupt deflate data at compressed offset "
			  "%llu: %s",
			  name, gzidx_ull(off), why);
}

int gzidx_truncated(const char *name, uint64_t off, struct lf_err *err)
{
	return lf_err_set(err, -EIO,
			  "'%s': truncated gzip stream (ends at compressed "
			  "offset %llu)",
			  name, gzidx_ull(off));
}

int gzidx_read_error(const char *name, uint64_t off, ssize_t n,
		     struct lf_err *err)
{
	return lf_err_set(err, (int)n,
			  "'%s': read error at compressed offset %llu: %s",
			  name, gzidx_ull(off), strerror((int)-n));
}

int gzidx_zeros(const unsigned char *p, size_t n, const char *name,
		uint64_t off, struct lf_err *err)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (p[i])
			return gzidx_trailing_garbage(name, off + i, err);
	}
	return 0;
}

int gzidx_trailing_garbage(const char *name, uint64_t off, struct lf_err *err)
{
	return lf_err_set(err, -EINVAL,
			  "'%s': corrupt gzip stream: trailing garbage at "
			  "compressed offset %llu",
			  name, gzidx_ull(off));
}

/*
 * Top up the input buffer, keeping unconsumed bytes (the member-boundary
 * check needs two bytes in a row).  Sets b->eof when rd reports the end.
 */
static int build_fill(struct lf_gzidx_builder *b, struct lf_err *err)
{
	size_t have = b->zs.avail_in;
	ssize_t n;

	if (have && b->zs.next_in != b->in)
		memmove(b->in, b->zs.next_in, have);
	b->zs.next_in = b->in;
	if (b->eof || have == BUILD_CHUNK)
		return 0;
	n = b->rd(b->ctx, b->in + have, BUILD_CHUNK - have);
	if (n < 0)
		return gzidx_read_error(b->name, b->nread, n, err);
	if ((size_t)n > BUILD_CHUNK - have)
		return lf_err_set(err, -EIO,
				  "'%s': reader returned more than asked at "
				  "compressed offset %llu",
				  b->name, gzidx_ull(b->nread));
	if (n == 0)
		b->eof = true;
	b->zs.avail_in = (uInt)(have + (size_t)n);
	b->nread += (uint64_t)n;
	return 0;
}

int lf_gzidx_builder_new(uint64_t span, lf_gzidx_read_fn rd, void *ctx,
			 const char *name, struct lf_gzidx_builder **out)
{
	struct lf_gzidx_builder *b;
	struct lf_gzidx_point pt = { .flags = LF_GZIDX_POINT_MEMBER };
	int ret = -ENOMEM;

	if (!rd || !out)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	lf_buf_init(&b->points);
	lf_buf_init(&b->windows);
	b->rd = rd;
	b->ctx = ctx;
	b->name = name ? name : "<gzip>";
	b->span = span ? span : LF_GZIDX_SPAN;
	b->in = malloc(BUILD_CHUNK);
	if (!b->in)
		goto err_free;
	/*
	 * Gzip wrapper only (not 47's gzip-or-zlib autodetect): extract skips
	 * a member's trailer itself and assumes gzip's 8 bytes.
	 */
	if (inflateInit2(&b->zs, WBITS_GZIP) != Z_OK)
		goto err_free;
	b->zs.next_in = b->in;
	if (lf_gzidx_engine() == LF_GZIDX_ISAL) {
		ret = gzidx_isal_new(b);
		if (ret)
			goto err_end;
	}
	/* The stream's start is the first checkpoint: a member start. */
	ret = lf_buf_add(&b->points, &pt, sizeof(pt));
	if (ret)
		goto err_end;
	*out = b;
	return 0;

err_end:
	gzidx_isal_free(b);
	inflateEnd(&b->zs);
err_free:
	lf_buf_release(&b->points);
	free(b->in);
	free(b);
	return ret;
}

static struct lf_gzidx_point *last_point(struct lf_gzidx_builder *b)
{
	return (struct lf_gzidx_point *)(void *)b->points.data +
	       (b->points.len / sizeof(struct lf_gzidx_point) - 1);
}

/*
 * Append a checkpoint.  Points must be strictly increasing in out for
 * lf_gzidx_find(); a new point at the same out as the previous one (an empty
 * member, or a block boundary right before a member end) replaces it, and
 * the replaced point's window, the last one in the blob, is dropped.
 */
int gzidx_push_point(struct lf_gzidx_builder *b,
		     const struct lf_gzidx_point *pt)
{
	struct lf_gzidx_point *prev = last_point(b);

	if (prev->out == pt->out) {
		if (prev->window_len)
			lf_buf_setlen(&b->windows, prev->window_off);
		*prev = *pt;
		return 0;
	}
	return lf_buf_add(&b->points, pt, sizeof(*pt));
}

static int deflate_seg(z_stream *ds, const unsigned char *p, size_t n)
{
	int zret;

	if (!n)
		return Z_OK;
	ds->next_in = (unsigned char *)p;
	ds->avail_in = (uInt)n;
	zret = deflate(ds, Z_NO_FLUSH);
	/* wz holds deflateBound() bytes, so all input is always consumed */
	return zret == Z_OK && !ds->avail_in ? Z_OK : Z_STREAM_ERROR;
}

static int deflate_setup(struct lf_gzidx_builder *b)
{
	if (b->ds_live)
		return deflateReset(&b->ds) == Z_OK ? 0 : -EINVAL;
	/* Level 1: windows are 3% of the output; speed beats ratio here. */
	if (deflateInit2(&b->ds, 1, Z_DEFLATED, WBITS_ZLIB, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	b->ds_live = true;
	b->wz_cap = deflateBound(&b->ds, WSIZE);
	b->wz = malloc(b->wz_cap);
	return b->wz ? 0 : -ENOMEM;
}

/*
 * Deflate the last wlen bytes of output (ring tail, then dst[0, done)) into
 * the windows blob; report where they went.
 */
int gzidx_store_window(struct lf_gzidx_builder *b, const unsigned char *dst,
		       size_t done, size_t wlen, uint64_t *off, uint32_t *zlen)
{
	size_t from_buf = LF_MIN(wlen, done);
	size_t k = wlen - from_buf, start, first;
	z_stream *ds = &b->ds;
	int ret;

	assert(k <= b->ring_len);
	ret = deflate_setup(b);
	if (ret)
		return ret;
	ds->next_out = b->wz;
	ds->avail_out = (uInt)b->wz_cap;
	start = (b->ring_pos - k) & WMASK;
	first = LF_MIN(k, WSIZE - start);
	if (deflate_seg(ds, b->ring + start, first) != Z_OK ||
	    deflate_seg(ds, b->ring, k - first) != Z_OK ||
	    deflate_seg(ds, dst + done - from_buf, from_buf) != Z_OK ||
	    deflate(ds, Z_FINISH) != Z_STREAM_END)
		return -EINVAL;
	*off = b->windows.len;
	*zlen = (uint32_t)(b->wz_cap - ds->avail_out);
	return lf_buf_add(&b->windows, b->wz, *zlen);
}

/* A mid-member checkpoint at the block boundary inflate just stopped at. */
static int add_point(struct lf_gzidx_builder *b, const unsigned char *dst,
		     size_t done, struct lf_err *err)
{
	struct lf_gzidx_point pt = { 0 };
	/* Back-references never cross a member start, so neither do windows. */
	size_t wlen = (size_t)LF_MIN((uint64_t)WSIZE, b->out - b->member_out);
	int ret;

	ret = gzidx_store_window(b, dst, done, wlen, &pt.window_off,
				 &pt.window_len);
	if (!ret) {
		pt.in = build_pos(b);
		pt.out = b->out;
		pt.bits = (uint8_t)(b->zs.data_type & 7);
		ret = gzidx_push_point(b, &pt);
	}
	if (ret)
		return lf_err_set(err, ret,
				  "'%s': cannot store checkpoint at compressed "
				  "offset %llu",
				  b->name, gzidx_ull(build_pos(b)));
	b->last = b->out;
	return 0;
}

/* Remember the output of one read call for the next call's windows. */
static void ring_push(struct lf_gzidx_builder *b, const unsigned char *src,
		      size_t n)
{
	size_t first;

	if (n >= WSIZE) {
		memcpy(b->ring, src + n - WSIZE, WSIZE);
		b->ring_pos = 0;
		b->ring_len = WSIZE;
		return;
	}
	first = LF_MIN(n, WSIZE - b->ring_pos);
	memcpy(b->ring + b->ring_pos, src, first);
	memcpy(b->ring, src + first, n - first);
	b->ring_pos = (b->ring_pos + n) & WMASK;
	b->ring_len = LF_MIN((size_t)WSIZE, b->ring_len + n);
}

/* After the last member: only zero bytes may follow (some tools pad). */
static int skip_zeros(struct lf_gzidx_builder *b, struct lf_err *err)
{
	int ret;

	for (;;) {
		size_t n = b->zs.avail_in;

		ret = gzidx_zeros(b->zs.next_in, n, b->name, build_pos(b) - n,
				  err);
		if (ret)
			return ret;
		b->zs.avail_in = 0;
		if (b->eof)
			break;
		ret = build_fill(b, err);
		if (ret)
			return ret;
	}
	b->state = B_DONE;
	return 0;
}

/*
 * Z_STREAM_END was returned (inflate has checked the member's CRC and
 * length).  Decide what follows: another member, zero padding, or EOF.
 */
static int next_member(struct lf_gzidx_builder *b, struct lf_err *err)
{
	struct lf_gzidx_point pt = { .flags = LF_GZIDX_POINT_MEMBER };
	const unsigned char *p;
	int ret;

	while (b->zs.avail_in < 2 && !b->eof) {
		ret = build_fill(b, err);
		if (ret)
			return ret;
	}
	if (!b->zs.avail_in) {
		b->state = B_DONE;
		return 0;
	}
	p = b->zs.next_in;
	if (p[0] == 0)
		return skip_zeros(b, err);
	if (b->zs.avail_in < 2 || p[0] != 0x1f || p[1] != 0x8b)
		return gzidx_trailing_garbage(b->name, build_pos(b), err);
	if (inflateReset(&b->zs) != Z_OK)
		return lf_err_set(err, -EINVAL, "'%s': inflateReset failed",
				  b->name);
	pt.in = build_pos(b);
	pt.out = b->out;
	ret = gzidx_push_point(b, &pt);
	if (ret)
		return lf_err_set(err, ret, "'%s': out of memory", b->name);
	b->last = b->member_out = b->out;
	b->state = B_RUN;
	return 0;
}

/* One inflate call into dst[*done, len); records a point if one is due. */
static int build_step(struct lf_gzidx_builder *b, unsigned char *dst,
		      size_t len, size_t *done, struct lf_err *err)
{
	uInt room = (uInt)LF_MIN(len - *done, (size_t)UINT_MAX);
	int zret, dt;

	b->zs.next_out = dst + *done;
	b->zs.avail_out = room;
	/* Z_BLOCK: return at every block boundary, where a point may go. */
	zret = inflate(&b->zs, Z_BLOCK);
	*done += room - b->zs.avail_out;
	b->out += room - b->zs.avail_out;
	switch (zret) {
	case Z_STREAM_END:
		b->state = B_MEMBER_END;
		return 0;
	case Z_BUF_ERROR:
		/* no progress: fine when input ran out, the caller refills */
		if (!b->zs.avail_in || !b->zs.avail_out)
			return 0;
		return zlib_fail(zret, &b->zs, b->name, build_pos(b), err);
	case Z_OK:
		break;
	default:
		return zlib_fail(zret, &b->zs, b->name, build_pos(b), err);
	}
	/* 128: at a block boundary (or after the header); 64: last block */
	dt = b->zs.data_type;
	if ((dt & 128) && !(dt & 64) && b->out - b->last >= b->span)
		return add_point(b, dst, *done, err);
	return 0;
}

int lf_gzidx_builder_read(struct lf_gzidx_builder *b, void *buf, size_t len,
			  size_t *got, struct lf_err *err)
{
	unsigned char *dst = buf;
	size_t done = 0;
	int ret = 0;

	*got = 0;
	if (b->state == B_FAILED)
		return lf_err_set(err, b->fail,
				  "'%s': gzip index builder used after an "
				  "error",
				  b->name);
	if (!len)
		return lf_err_set(err, -EINVAL,
				  "'%s': gzip index builder read of 0 bytes",
				  b->name);
	if (b->isal) {
		ret = gzidx_isal_read(b, dst, len, got, err);
		if (ret) {
			b->state = B_FAILED;
			b->fail = ret;
		}
		return ret;
	}
	while (done < len && b->state != B_DONE) {
		if (b->state == B_MEMBER_END) {
			ret = next_member(b, err);
		} else if (!b->zs.avail_in) {
			ret = build_fill(b, err);
			if (!ret && !b->zs.avail_in)
				ret = gzidx_truncated(b->name, b->nread, err);
		} else {
			ret = build_step(b, dst, len, &done, err);
		}
		if (ret) {
			b->state = B_FAILED;
			b->fail = ret;
			return ret;
		}
	}
	ring_push(b, dst, done);
	*got = done;
	return 0;
}

int lf_gzidx_builder_finish(struct lf_gzidx_builder *b, struct lf_buf *points,
			    struct lf_buf *windows, uint64_t *total_in,
			    uint64_t *total_out, struct lf_err *err)
{
	const struct lf_gzidx_point *pt =
		(const struct lf_gzidx_point *)(const void *)b->points.data;
	size_t i, n = b->points.len / sizeof(*pt);
	int ret;

	if (b->state != B_DONE)
		return lf_err_set(err, -EINVAL,
				  "'%s': gzip index finished before the end of "
				  "the stream",
				  b->name);
	ret = lf_buf_grow(points, b->points.len);
	if (!ret)
		ret = lf_buf_grow(windows, b->windows.len);
	if (ret)
		return lf_err_set(err, ret, "'%s': out of memory", b->name);
	/* The point array is part of the cache format: little-endian. */
	for (i = 0; i < n; i++) {
		struct lf_gzidx_point le = pt[i];

		le.in = lf_le64(le.in);
		le.out = lf_le64(le.out);
		le.window_off = lf_le64(le.window_off);
		le.window_len = lf_le32(le.window_len);
		lf_buf_add(points, &le, sizeof(le)); /* room reserved above */
	}
	lf_buf_add(windows, b->windows.data, b->windows.len);
	*total_in = b->nread;
	*total_out = b->out;
	return 0;
}

size_t lf_gzidx_builder_npoints(const struct lf_gzidx_builder *b)
{
	return b->points.len / sizeof(struct lf_gzidx_point);
}

uint64_t lf_gzidx_builder_point_out(const struct lf_gzidx_builder *b, size_t k)
{
	return ((const struct lf_gzidx_point *)(const void *)b->points.data)[k]
		.out;
}

void lf_gzidx_builder_free(struct lf_gzidx_builder *b)
{
	if (!b)
		return;
	gzidx_isal_free(b);
	inflateEnd(&b->zs);
	if (b->ds_live)
		deflateEnd(&b->ds);
	lf_buf_release(&b->points);
	lf_buf_release(&b->windows);
	free(b->wz);
	free(b->in);
	free(b);
}

/* ---- extract ---------------------------------------------------------- */

/* The state of one extract call: nothing here is shared between threads. */
struct ex {
	z_stream zs;
	bool live; /* zs was initialised */
	bool raw;  /* raw deflate: started mid-member */
	const struct lf_vfile *vf;
	const char *name;
	unsigned char *in; /* EXTRACT_CHUNK bytes, then WSIZE */
	uint64_t pos;	   /* blob offset after buffered input */
};

static uint64_t ex_off(const struct ex *x)
{
	return x->pos - x->zs.avail_in;
}

/* Ensure `want` bytes of input are buffered, unless the blob ends first. */
static int ex_fill(struct ex *x, size_t want, struct lf_err *err)
{
	while (x->zs.avail_in < want) {
		size_t have = x->zs.avail_in;
		ssize_t n;

		if (have && x->zs.next_in != x->in)
			memmove(x->in, x->zs.next_in, have);
		x->zs.next_in = x->in;
		n = lf_vfile_pread(x->vf, x->in + have, EXTRACT_CHUNK - have,
				   x->pos);
		if (n < 0)
			return gzidx_read_error(x->name, x->pos, n, err);
		if (n == 0)
			break;
		x->pos += (uint64_t)n;
		x->zs.avail_in = (uInt)(have + (size_t)n);
	}
	return 0;
}

static int bad_index(const struct ex *x, size_t i, const char *why,
		     struct lf_err *err)
{
	return lf_err_set(err, -EINVAL,
			  "'%s': corrupt gzip index: point %zu %s", x->name, i,
			  why);
}

/* Inflate point i's window into dict; *dlen gets its length. */
static int ex_window(struct ex *x, const struct lf_gzidx_view *view, size_t i,
		     unsigned char *dict, size_t *dlen, struct lf_err *err)
{
	const struct lf_gzidx_point *p = &view->points[i];
	uint64_t off = lf_le64(p->window_off);
	uint32_t zlen = lf_le32(p->window_len);

	if (!zlen || lf_range_outside(off, zlen, view->windows_len))
		return bad_index(x, i, "has a window outside the index", err);
	if (inflateInit2(&x->zs, WBITS_ZLIB) != Z_OK)
		return lf_err_set(err, -ENOMEM, "'%s': out of memory", x->name);
	x->live = true;
	x->zs.next_in = (unsigned char *)view->windows + off;
	x->zs.avail_in = zlen;
	x->zs.next_out = dict;
	x->zs.avail_out = WSIZE;
	if (inflate(&x->zs, Z_FINISH) != Z_STREAM_END ||
	    x->zs.avail_out == WSIZE)
		return bad_index(x, i, "has a corrupt window", err);
	*dlen = WSIZE - x->zs.avail_out;
	x->zs.avail_in = 0;
	if (inflateReset2(&x->zs, WBITS_RAW) != Z_OK)
		return lf_err_set(err, -EINVAL, "'%s': inflateReset2 failed",
				  x->name);
	return 0;
}

/* Position the inflater exactly at point i. */
static int ex_start(struct ex *x, const struct lf_gzidx_view *view, size_t i,
		    struct lf_err *err)
{
	const struct lf_gzidx_point *p = &view->points[i];
	uint64_t in = lf_le64(p->in);
	unsigned char *dict = x->in + EXTRACT_CHUNK;
	size_t dlen = 0;
	int bits = p->bits, ret;

	if (in > lf_vfile_size(x->vf))
		return bad_index(x, i, "is beyond the end of the blob", err);
	if (p->flags & LF_GZIDX_POINT_MEMBER) {
		/* a member start: a gzip header follows, no history needed */
		if (inflateInit2(&x->zs, WBITS_GZIP) != Z_OK)
			return lf_err_set(err, -ENOMEM, "'%s': out of memory",
					  x->name);
		x->live = true;
		x->pos = in;
		return 0;
	}
	if (bits > 7 || (bits && !in))
		return bad_index(x, i, "has a bad bit offset", err);
	ret = ex_window(x, view, i, dict, &dlen, err);
	if (ret)
		return ret;
	x->raw = true;
	/* The point's block starts `bits` bits before the end of byte in-1. */
	x->pos = in - (bits ? 1 : 0);
	if (bits) {
		ret = ex_fill(x, 1, err);
		if (ret)
			return ret;
		if (!x->zs.avail_in)
			return gzidx_truncated(x->name, x->pos, err);
		inflatePrime(&x->zs, bits, x->zs.next_in[0] >> (8 - bits));
		x->zs.next_in++;
		x->zs.avail_in--;
	}
	if (inflateSetDictionary(&x->zs, dict, (uInt)dlen) != Z_OK)
		return lf_err_set(err, -EINVAL,
				  "'%s': inflateSetDictionary failed", x->name);
	return 0;
}

/*
 * A member ended.  Returns 1 to go on with the next member, 0 at the end of
 * the stream (EOF or zero padding, which the builder validated), or -errno.
 */
static int ex_member_end(struct ex *x, struct lf_err *err)
{
	const unsigned char *p;
	int ret;

	if (x->raw) {
		/*
		 * Raw inflate stops before the gzip trailer (CRC32, ISIZE); it
		 * cannot be checked without the whole member, so skip it.
		 */
		ret = ex_fill(x, 8, err);
		if (ret)
			return ret;
		if (x->zs.avail_in < 8)
			return gzidx_truncated(x->name, x->pos, err);
		x->zs.next_in += 8;
		x->zs.avail_in -= 8;
	}
	ret = ex_fill(x, 2, err);
	if (ret)
		return ret;
	p = x->zs.next_in;
	if (!x->zs.avail_in || p[0] == 0)
		return 0;
	if (x->zs.avail_in < 2 || p[0] != 0x1f || p[1] != 0x8b)
		return gzidx_trailing_garbage(x->name, ex_off(x), err);
	if (inflateReset2(&x->zs, WBITS_GZIP) != Z_OK)
		return lf_err_set(err, -EINVAL, "'%s': inflateReset2 failed",
				  x->name);
	x->raw = false;
	return 1;
}

/* Inflate into out[0, len) until it is full or the stream ends. */
static int ex_run(struct ex *x, unsigned char *out, size_t len, size_t *got,
		  struct lf_err *err)
{
	size_t done = 0;
	int ret, zret;

	while (done < len) {
		uInt room = (uInt)LF_MIN(len - done, (size_t)UINT_MAX);

		if (!x->zs.avail_in) {
			ret = ex_fill(x, 1, err);
			if (ret)
				return ret;
			if (!x->zs.avail_in)
				return gzidx_truncated(x->name, x->pos, err);
		}
		x->zs.next_out = out + done;
		x->zs.avail_out = room;
		zret = inflate(&x->zs, Z_NO_FLUSH);
		done += room - x->zs.avail_out;
		*got = done;
		if (zret == Z_STREAM_END) {
			ret = ex_member_end(x, err);
			if (ret <= 0)
				return ret;
			continue;
		}
		/* Z_BUF_ERROR is only fine when the input ran out: refill */
		if (zret != Z_OK && (zret != Z_BUF_ERROR || x->zs.avail_in))
			return zlib_fail(zret, &x->zs, x->name, ex_off(x), err);
	}
	return 0;
}

/* The compressed bytes span i inflates from, to a far-away blob. */
static void advise_span(const struct lf_gzidx_view *view, size_t i,
			const struct lf_vfile *blob)
{
	uint64_t a = lf_le64(view->points[i].in), z = lf_vfile_size(blob);

	if (view->points[i].bits && a)
		a--;
	if (i + 1 < view->npoints)
		z = lf_le64(view->points[i + 1].in) + 1;
	if (z > a)
		lf_vfile_advise(blob, a, z - a);
}

int lf_gzidx_extract(const struct lf_gzidx_view *view, size_t i,
		     const struct lf_vfile *blob, void *out, size_t len,
		     size_t *got, struct lf_err *err)
{
	struct ex x = { .vf = blob, .name = lf_vfile_name(blob) };
	int ret;

	*got = 0;
	if (i >= view->npoints)
		return lf_err_set(err, -EINVAL,
				  "'%s': gzip index has no point %zu (of %zu)",
				  x.name, i, view->npoints);
	if (!len)
		return 0;
	advise_span(view, i, blob);
	if (lf_gzidx_engine() == LF_GZIDX_ISAL)
		return gzidx_isal_extract(view, i, blob, out, len, got, err);
	x.in = malloc(EXTRACT_CHUNK + WSIZE);
	if (!x.in)
		return lf_err_set(err, -ENOMEM, "'%s': out of memory", x.name);
	ret = ex_start(&x, view, i, err);
	if (!ret)
		ret = ex_run(&x, out, len, got, err);
	if (x.live)
		inflateEnd(&x.zs);
	free(x.in);
	return ret;
}

size_t lf_gzidx_find(const struct lf_gzidx_view *view, uint64_t off)
{
	size_t lo = 0, hi = view->npoints;

	/* invariant: points[0, lo) have out <= off, points[hi, n) have > off */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (lf_le64(view->points[mid].out) <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? lo - 1 : 0;
}

void lf_gzidx_view_set(struct lf_gzidx_view *v, const struct lf_buf *points,
		       const struct lf_buf *windows)
{
	v->points = (const void *)points->data;
	v->npoints = points->len / sizeof(struct lf_gzidx_point);
	v->windows = (const void *)windows->data;
	v->windows_len = windows->len;
}

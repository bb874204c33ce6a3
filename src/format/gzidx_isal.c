// SPDX-License-Identifier: MIT
/*
 * gzidx_isal.c - the gzip checkpoint index on ISA-L's inflate.
 *
 * ISA-L inflates about 3-4 times faster than zlib but, unlike zlib's
 * Z_BLOCK, never stops at a deflate block boundary on its own: it stops
 * only when its input or its output runs out.  It does tell, though, when
 * the input ran out inside a block header (block_state ISAL_BLOCK_HDR,
 * with the bits before the header kept in read_in): that is an exact
 * boundary.  So once a checkpoint is due, the builder feeds the inflater
 * slices of input and looks at where each one left it:
 *
 *  - in a header: a boundary, recorded as a point;
 *  - in the same block as before (same Huffman tables, or the same stored
 *    block end): go on with the next slice;
 *  - in another block: a boundary lies inside the slice.  The state before
 *    the slice was kept (the struct is plain data); the slice is bisected by
 *    restoring it and feeding shorter prefixes until one ends inside the
 *    header.  A block whose header fits in the byte where the previous
 *    block ends (a fixed-Huffman block) cannot be caught this way; the
 *    hunt then goes on with the next block.
 *
 * A stream made of such blocks only (zlib's Z_FIXED strategy) would leave
 * points far apart.  So the compressed bytes since the last point are kept,
 * and when no point was found two spans past the due one, zlib inflates
 * them again from that point (Z_BLOCK stops at every boundary) and records
 * the points ISA-L could not; ISA-L goes on from where it is.  Such points
 * lie behind output already handed out, never before the last point.
 *
 * Points are recorded only where every byte of output before them has been
 * delivered from the inflater (nothing pending in its own buffer), and
 * their windows come from the builder's output buffer, which keeps the last
 * 32 KiB.  The points have the same meaning as zlib's, so either engine
 * reads what the other built.
 *
 * Extraction primes the inflater with the point's bits and window
 * (isal_inflate_set_dict) and inflates raw deflate to the member's end; a
 * member that starts at a point is read with ISA-L's gzip wrapper, which
 * checks its CRC and length.  Reserved gzip header flags are refused here,
 * as zlib refuses them (ISA-L ignores them).
 */
#include "layerfs/gzidx.h"
#include "gzidx_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#if LF_HAVE_ISAL
#include <isa-l/igzip_lib.h>

/* Input read per call of the reader; output inflated per step. */
#define IN_CHUNK (256u << 10)
#define OUT_STEP (1u << 20)
#define OUT_CAP (WSIZE + OUT_STEP)
/* Input fed per try while a checkpoint is due. */
#define SLICE (16u << 10)
#define EX_CHUNK (64u << 10)
/* A deflated window that would not fit here goes through zlib instead. */
#define WZ_CAP (WSIZE + 1024)

struct gzidx_isal {
	/* the way back for zlib: compressed bytes since the last point */
	struct lf_buf keep; /* from compressed offset keep_off */
	uint64_t keep_off;
	struct lf_gzidx_point lastpt; /* the last point (host order) */
	unsigned char lastwin[WSIZE]; /* and its window, raw */
	size_t lastwin_len;
	struct isal_zstream zs;	   /* level-1 deflater for windows */
	unsigned char *zlevel;	   /* its level buffer */
	unsigned char *wz;	   /* one deflated window */
	struct inflate_state *st;  /* the live state */
	struct inflate_state *alt; /* the state before a slice, for bisection */
	const unsigned char *inp;  /* next input byte for the inflater */
	size_t inavail;		   /* bytes at inp */
	unsigned char *obuf;	   /* OUT_CAP bytes: history, then new output */
	size_t olen;		   /* bytes in obuf */
	size_t opos;		   /* next byte of obuf to hand out */
};

/* Bytes of a state worth copying: all but the unused end of tmp_out. */
static size_t state_bytes(const struct inflate_state *st)
{
	size_t n = offsetof(struct inflate_state, tmp_out_buffer);

	if (st->tmp_out_valid > 0)
		n += (size_t)st->tmp_out_valid;
	return LF_MIN(n, sizeof(*st));
}

static const char *isal_why(int ret)
{
	switch (ret) {
	case ISAL_INVALID_BLOCK:
		return "invalid block type";
	case ISAL_INVALID_SYMBOL:
		return "invalid code";
	case ISAL_INVALID_LOOKBACK:
		return "invalid distance too far back";
	case ISAL_INVALID_WRAPPER:
		return "incorrect header check";
	case ISAL_UNSUPPORTED_METHOD:
		return "unknown compression method";
	case ISAL_INCORRECT_CHECKSUM:
		return "incorrect data check";
	default:
		return "bad data";
	}
}

static int isal_fail(int ret, const char *name, uint64_t off,
		     struct lf_err *err)
{
	return lf_err_set(err, -EINVAL,
			  "'%s': corrupt deflate data at compressed offset "
			  "%llu: %s",
			  name, gzidx_ull(off), isal_why(ret));
}

/* zlib refuses a gzip header with reserved flags set; so do we. */
static int header_flags(const unsigned char *p, size_t n, const char *name,
			uint64_t off, struct lf_err *err)
{
	if (n >= 4 && (p[3] & 0xe0))
		return lf_err_set(err, -EINVAL,
				  "'%s': corrupt deflate data at compressed "
				  "offset %llu: unknown header flags set",
				  name, gzidx_ull(off));
	return 0;
}

/* ---- build ------------------------------------------------------------ */

/* Compressed offset of inp. */
static uint64_t in_off(const struct lf_gzidx_builder *b)
{
	return b->nread - b->isal->inavail;
}

/*
 * Top the input buffer up to IN_CHUNK bytes (or the end of the blob), so
 * that what the inflater is given never depends on how the reader cuts
 * the stream: the same blob always gives the same points.
 */
static int fill(struct lf_gzidx_builder *b, struct lf_err *err)
{
	struct gzidx_isal *g = b->isal;

	if (g->inavail && g->inp != b->in)
		memmove(b->in, g->inp, g->inavail);
	g->inp = b->in;
	while (!b->eof && g->inavail < IN_CHUNK) {
		ssize_t n = b->rd(b->ctx, b->in + g->inavail,
				  IN_CHUNK - g->inavail);

		if (n < 0)
			return gzidx_read_error(b->name, b->nread, n, err);
		if ((size_t)n > IN_CHUNK - g->inavail)
			return lf_err_set(err, -EIO,
					  "'%s': reader returned more than "
					  "asked at compressed offset %llu",
					  b->name, gzidx_ull(b->nread));
		if (n == 0)
			b->eof = true;
		g->inavail += (size_t)n;
		b->nread += (uint64_t)n;
	}
	return 0;
}

/* Buffer at least `want` input bytes unless the blob ends first. */
static int fill_to(struct lf_gzidx_builder *b, size_t want, struct lf_err *err)
{
	if (b->isal->inavail < want && !b->eof)
		return fill(b, err);
	return 0;
}

int gzidx_isal_new(struct lf_gzidx_builder *b)
{
	struct gzidx_isal *g = calloc(1, sizeof(*g));

	if (!g)
		return -ENOMEM;
	b->isal = g;
	g->st = malloc(sizeof(*g->st));
	g->alt = malloc(sizeof(*g->alt));
	g->obuf = malloc(OUT_CAP);
	g->zlevel = malloc(ISAL_DEF_LVL1_DEFAULT);
	g->wz = malloc(WZ_CAP);
	if (!g->st || !g->alt || !g->obuf || !g->zlevel || !g->wz)
		return -ENOMEM;
	isal_inflate_init(g->st);
	g->st->crc_flag = ISAL_GZIP;
	g->inp = b->in;
	lf_buf_init(&g->keep);
	g->lastpt.flags = LF_GZIDX_POINT_MEMBER;
	return 0;
}

void gzidx_isal_free(struct lf_gzidx_builder *b)
{
	struct gzidx_isal *g = b->isal;

	if (!g)
		return;
	free(g->st);
	free(g->alt);
	free(g->obuf);
	free(g->zlevel);
	free(g->wz);
	lf_buf_release(&g->keep);
	free(g);
	b->isal = NULL;
}

/*
 * Deflate a window as a zlib stream (what extraction inflates, adler32 and
 * all) with ISA-L's level 1, several times faster than zlib's: windows are
 * 32 KiB of every MiB of output.  A window that does not shrink enough for
 * the scratch buffer goes through zlib.
 */
static int store_window(struct lf_gzidx_builder *b, size_t wlen, uint64_t *off,
			uint32_t *zlen)
{
	struct gzidx_isal *g = b->isal;
	struct isal_zstream *zs = &g->zs;

	isal_deflate_stateless_init(zs);
	zs->level = 1;
	zs->level_buf = g->zlevel;
	zs->level_buf_size = ISAL_DEF_LVL1_DEFAULT;
	zs->gzip_flag = IGZIP_ZLIB;
	zs->end_of_stream = 1;
	zs->next_in = g->obuf + g->olen - wlen;
	zs->avail_in = (uint32_t)wlen;
	zs->next_out = g->wz;
	zs->avail_out = WZ_CAP;
	if (isal_deflate_stateless(zs) != COMP_OK || zs->avail_in)
		return gzidx_store_window(b, g->obuf, g->olen, wlen, off, zlen);
	*off = b->windows.len;
	*zlen = WZ_CAP - zs->avail_out;
	return lf_buf_add(&b->windows, g->wz, *zlen);
}

/* Drop the kept compressed bytes before the last point's first byte. */
static void keep_from_last(struct gzidx_isal *g)
{
	uint64_t from = g->lastpt.in - (g->lastpt.bits ? 1 : 0), drop;

	if (from < g->keep_off)
		return; /* cannot happen: points only move forward */
	drop = LF_MIN(from - g->keep_off, (uint64_t)g->keep.len);
	memmove(g->keep.data, g->keep.data + drop, g->keep.len - drop);
	lf_buf_setlen(&g->keep, g->keep.len - (size_t)drop);
	g->keep_off += drop;
}

/*
 * The point just pushed is the last one: keep its window, and only the
 * compressed bytes from its first byte on.
 */
static void remember(struct lf_gzidx_builder *b,
		     const struct lf_gzidx_point *pt, const unsigned char *win,
		     size_t wlen)
{
	struct gzidx_isal *g = b->isal;

	g->lastpt = *pt;
	if (win && wlen)
		memcpy(g->lastwin, win, wlen);
	g->lastwin_len = win ? wlen : 0;
	keep_from_last(g);
}

/* Record a point at the header that starts at compressed bit `pos`. */
static int pin(struct lf_gzidx_builder *b, uint64_t pos, struct lf_err *err)
{
	struct gzidx_isal *g = b->isal;
	struct lf_gzidx_point pt = { 0 };
	size_t wlen = (size_t)LF_MIN((uint64_t)WSIZE, b->out - b->member_out);
	int ret;

	wlen = LF_MIN(wlen, g->olen);
	ret = store_window(b, wlen, &pt.window_off, &pt.window_len);
	if (!ret) {
		pt.in = (pos + 7) / 8;
		pt.bits = (uint8_t)((8 - pos % 8) % 8);
		pt.out = b->out;
		ret = gzidx_push_point(b, &pt);
	}
	if (ret)
		return lf_err_set(err, ret,
				  "'%s': cannot store checkpoint at compressed "
				  "offset %llu",
				  b->name, gzidx_ull(pt.in));
	remember(b, &pt, g->obuf + g->olen - wlen, wlen);
	b->last = b->out;
	return 0;
}

enum outcome {
	O_ERROR,    /* the inflater failed (err set) */
	O_HEADER,   /* stopped inside a block header: a boundary */
	O_IN_BLOCK, /* inside a block: the caller compares it with its copy */
	O_OTHER,    /* output full, member end, or a state not to judge */
};

/* What identifies the block a state is in (see same_block). */
static bool same_block(const struct inflate_state *a, uint64_t a_end,
		       const struct inflate_state *b, uint64_t b_end)
{
	if (a->block_state != b->block_state)
		return false;
	if (a->block_state == ISAL_BLOCK_TYPE0)
		return a_end == b_end;
	return !memcmp(&a->lit_huff_code, &b->lit_huff_code,
		       sizeof(a->lit_huff_code)) &&
	       !memcmp(&a->dist_huff_code, &b->dist_huff_code,
		       sizeof(a->dist_huff_code));
}

/* A stored block's end (compressed offset): the same all through it. */
static uint64_t stored_end(const struct lf_gzidx_builder *b)
{
	const struct inflate_state *st = b->isal->st;

	if (st->block_state != ISAL_BLOCK_TYPE0)
		return 0;
	return in_off(b) - (uint64_t)(st->read_in_length / 8) +
	       (uint64_t)(uint32_t)st->type0_block_len;
}

/*
 * One call of the inflater over at most `feed` buffered input bytes, output
 * into obuf.  Sets *hdr to the header's bit offset on O_HEADER.
 */
static enum outcome step(struct lf_gzidx_builder *b, size_t feed,
			 uint64_t limit, uint64_t *hdr, struct lf_err *err)
{
	struct gzidx_isal *g = b->isal;
	struct inflate_state *st = g->st;
	size_t room = OUT_CAP - g->olen, used, made;
	int ret;

	/* stop near where the next point is due; any room at all will do */
	if (limit && limit < room)
		room = (size_t)limit;

	st->next_in = (uint8_t *)(uintptr_t)g->inp;
	st->avail_in = (uint32_t)LF_MIN(feed, g->inavail);
	st->next_out = g->obuf + g->olen;
	st->avail_out = (uint32_t)room;
	ret = isal_inflate(st);
	used = (size_t)(st->next_in - g->inp);
	made = room - st->avail_out;
	if (lf_buf_add(&g->keep, g->inp, used)) {
		lf_err_set(err, -ENOMEM, "'%s': out of memory", b->name);
		return O_ERROR;
	}
	g->inp += used;
	g->inavail -= used;
	g->olen += made;
	b->out += made;
	if (ret < 0) {
		isal_fail(ret, b->name, in_off(b), err);
		return O_ERROR;
	}
	if (st->block_state == ISAL_BLOCK_FINISH || !st->avail_out ||
	    st->tmp_out_processed != st->tmp_out_valid ||
	    st->write_overflow_len || st->copy_overflow_length)
		return O_OTHER;
	if (st->block_state == ISAL_BLOCK_HDR ||
	    st->block_state == ISAL_BLOCK_NEW_HDR) {
		*hdr = (in_off(b) - (uint64_t)st->tmp_in_size) * 8 -
		       (uint64_t)st->read_in_length;
		return O_HEADER;
	}
	if (st->block_state == ISAL_BLOCK_CODED ||
	    st->block_state == ISAL_BLOCK_TYPE0)
		return O_IN_BLOCK;
	return O_OTHER;
}

/* Where a state stands, to go back to it. */
struct mark {
	const unsigned char *inp;
	size_t inavail, olen, keep;
	uint64_t out, end;
};

static void mark_take(const struct lf_gzidx_builder *b, struct mark *m)
{
	const struct gzidx_isal *g = b->isal;

	m->inp = g->inp;
	m->inavail = g->inavail;
	m->olen = g->olen;
	m->keep = g->keep.len;
	m->out = b->out;
	m->end = stored_end(b);
}

/* Make the live state the copy in alt again, at mark m. */
static void mark_back(struct lf_gzidx_builder *b, const struct mark *m)
{
	struct gzidx_isal *g = b->isal;

	memcpy(g->st, g->alt, state_bytes(g->alt));
	g->inp = m->inp;
	g->inavail = m->inavail;
	g->olen = m->olen;
	lf_buf_setlen(&g->keep, m->keep);
	b->out = m->out;
}

/* Swap the live state and the copy (the copy becomes the live one's). */
static void swap_states(struct gzidx_isal *g)
{
	struct inflate_state *t = g->st;

	g->st = g->alt;
	g->alt = t;
}

/*
 * A checkpoint is due: one slice of input, and if it crossed into another
 * block, bisect it.  Any state left behind is a valid place to go on from.
 */
static int hunt(struct lf_gzidx_builder *b, struct lf_err *err)
{
	struct gzidx_isal *g = b->isal;
	struct mark lo;
	size_t fed, lo_n = 0, hi_n;
	uint64_t hdr = 0;
	enum outcome oc;

	memcpy(g->alt, g->st, state_bytes(g->st));
	mark_take(b, &lo);
	fed = LF_MIN((size_t)SLICE, g->inavail);
	oc = step(b, fed, 0, &hdr, err);
	if (oc == O_ERROR)
		return -EINVAL;
	if (oc == O_HEADER)
		return pin(b, hdr, err);
	if (oc != O_IN_BLOCK ||
	    same_block(g->alt, lo.end, g->st, stored_end(b)))
		return 0;
	/* [lo_n, hi_n): the first byte past the old block is in there */
	hi_n = fed;
	while (hi_n - lo_n > 1) {
		size_t mid = lo_n + (hi_n - lo_n) / 2;

		mark_back(b, &lo);
		oc = step(b, mid - lo_n, 0, &hdr, err);
		if (oc == O_ERROR)
			return -EINVAL;
		if (oc == O_HEADER)
			return pin(b, hdr, err);
		if (oc != O_IN_BLOCK)
			return 0; /* a valid state; hunt again from it */
		if (same_block(g->alt, lo.end, g->st, stored_end(b))) {
			/* mid is the new low end: its state becomes the copy */
			mark_take(b, &lo);
			swap_states(g);
			lo_n = mid;
		} else {
			hi_n = mid;
		}
	}
	/*
	 * The header ended in the byte the old block ended in.  Go on from
	 * the start of the next block's data; the hunt goes on after it.
	 */
	mark_back(b, &lo);
	oc = step(b, hi_n - lo_n, 0, &hdr, err);
	if (oc == O_ERROR)
		return -EINVAL;
	if (oc == O_HEADER)
		return pin(b, hdr, err);
	return 0;
}

/* After a member's end: the next member, zero padding, or the end. */
static int next_member(struct lf_gzidx_builder *b, struct lf_err *err)
{
	struct gzidx_isal *g = b->isal;
	struct lf_gzidx_point pt = { .flags = LF_GZIDX_POINT_MEMBER };
	const unsigned char *p;
	int ret;

	if (g->st->read_in_length >= 8)
		return lf_err_set(err, -EINVAL,
				  "'%s': inflater kept bytes past a member's "
				  "end at compressed offset %llu",
				  b->name, gzidx_ull(in_off(b)));
	ret = fill_to(b, 4, err);
	if (ret)
		return ret;
	if (!g->inavail) {
		b->state = B_DONE;
		return 0;
	}
	p = g->inp;
	if (p[0] == 0) {
		for (;;) {
			ret = gzidx_zeros(g->inp, g->inavail, b->name,
					  in_off(b), err);
			if (ret)
				return ret;
			g->inp += g->inavail;
			g->inavail = 0;
			if (b->eof)
				break;
			ret = fill(b, err);
			if (ret)
				return ret;
		}
		b->state = B_DONE;
		return 0;
	}
	if (g->inavail < 2 || p[0] != 0x1f || p[1] != 0x8b)
		return gzidx_trailing_garbage(b->name, in_off(b), err);
	ret = header_flags(p, g->inavail, b->name, in_off(b), err);
	if (ret)
		return ret;
	isal_inflate_reset(g->st);
	g->st->crc_flag = ISAL_GZIP;
	pt.in = in_off(b);
	pt.out = b->out;
	ret = gzidx_push_point(b, &pt);
	if (ret)
		return lf_err_set(err, ret, "'%s': out of memory", b->name);
	/* a new member: nothing before it is needed any more */
	lf_buf_setlen(&g->keep, 0);
	g->keep_off = pt.in;
	remember(b, &pt, NULL, 0);
	b->last = b->member_out = b->out;
	b->state = B_RUN;
	return 0;
}

/*
 * Points ISA-L could not find: inflate the kept bytes again with zlib from
 * the last point, stopping at every block boundary, and record a point at
 * each one a span past the previous.  Ends where the kept bytes end, at the
 * member's end, or at an error (ISA-L has inflated these bytes: an error
 * here only means no point).  Returns 0 or -errno for a failed push.
 */
static int replay(struct lf_gzidx_builder *b, struct lf_err *err)
{
	struct gzidx_isal *g = b->isal;
	const struct lf_gzidx_point p0 = g->lastpt;
	unsigned char *buf = malloc(OUT_CAP); /* WSIZE history + new output */
	size_t have; /* bytes in buf; the last WSIZE are history */
	uint64_t out = p0.out, last = p0.out, in0 = g->keep_off;
	z_stream zs = { 0 };
	int ret = 0, zret;

	if (!buf)
		return lf_err_set(err, -ENOMEM, "'%s': out of memory", b->name);
	if (inflateInit2(&zs, (p0.flags & LF_GZIDX_POINT_MEMBER) ? 31 : -15) !=
	    Z_OK) {
		free(buf);
		return 0;
	}
	zs.next_in = (unsigned char *)g->keep.data;
	zs.avail_in = (uInt)g->keep.len;
	memcpy(buf, g->lastwin, g->lastwin_len);
	have = g->lastwin_len;
	if (!(p0.flags & LF_GZIDX_POINT_MEMBER)) {
		if (p0.bits) {
			if (!zs.avail_in)
				goto out;
			inflatePrime(&zs, p0.bits,
				     zs.next_in[0] >> (8 - p0.bits));
			zs.next_in++;
			zs.avail_in--;
		}
		if (have && inflateSetDictionary(&zs, buf, (uInt)have) != Z_OK)
			goto out;
	}
	for (;;) {
		size_t room;

		if (have > WSIZE && OUT_CAP - have < WSIZE) {
			memmove(buf, buf + have - WSIZE, WSIZE);
			have = WSIZE;
		}
		room = OUT_CAP - have;
		zs.next_out = buf + have;
		zs.avail_out = (uInt)room;
		zret = inflate(&zs, Z_BLOCK);
		have += room - zs.avail_out;
		out += room - zs.avail_out;
		if (zret != Z_OK || (!zs.avail_in && zs.avail_out))
			break; /* member end, error, or the kept bytes' end */
		if ((zs.data_type & 128) && !(zs.data_type & 64) &&
		    out - last >= b->span && out < b->out) {
			struct lf_gzidx_point pt = { 0 };
			size_t wlen = (size_t)LF_MIN((uint64_t)WSIZE,
						     out - b->member_out);

			wlen = LF_MIN(wlen, have);
			ret = gzidx_store_window(b, buf, have, wlen,
						 &pt.window_off,
						 &pt.window_len);
			if (!ret) {
				pt.in = in0 + (uint64_t)(zs.next_in -
							 (unsigned char *)
								 g->keep.data);
				pt.bits = (uint8_t)(zs.data_type & 7);
				pt.out = out;
				ret = gzidx_push_point(b, &pt);
			}
			if (ret) {
				lf_err_set(err, ret, "'%s': out of memory",
					   b->name);
				break;
			}
			last = out;
			b->last = out;
			/* keep what the next replay needs: this point on */
			g->lastpt = pt;
			memcpy(g->lastwin, buf + have - wlen, wlen);
			g->lastwin_len = wlen;
		}
	}
out:
	inflateEnd(&zs);
	free(buf);
	if (!ret && last != p0.out)
		keep_from_last(g);
	return ret;
}

/* Inflate more into obuf (which has been handed out in full). */
static int produce(struct lf_gzidx_builder *b, struct lf_err *err)
{
	struct gzidx_isal *g = b->isal;
	uint64_t hdr, before_in, before_out;
	size_t keep;
	int ret;

	if (b->state == B_MEMBER_END)
		return next_member(b, err);
	/* keep the last WSIZE bytes for windows; the rest is handed out */
	keep = LF_MIN(g->olen, (size_t)WSIZE);
	if (g->olen > keep)
		memmove(g->obuf, g->obuf + g->olen - keep, keep);
	g->olen = g->opos = keep;
	/* a slice and its bisection must find all their input buffered */
	ret = fill_to(b, 2 * SLICE, err);
	if (ret)
		return ret;
	if (b->out == 0 && b->nread == g->inavail) {
		ret = fill_to(b, 4, err);
		if (!ret)
			ret = header_flags(g->inp, g->inavail, b->name, 0, err);
		if (ret)
			return ret;
	}
	before_in = in_off(b);
	before_out = b->out;
	if (b->out - b->last >= 3 * b->span && b->out > b->member_out)
		ret = replay(b, err);
	if (ret)
		return ret;
	if (b->out - b->last >= b->span && b->out > b->member_out)
		ret = hunt(b, err);
	else
		ret = step(b, g->inavail, b->last + b->span - b->out, &hdr,
			   err) == O_ERROR
			      ? -EINVAL
			      : 0;
	if (ret)
		return ret;
	if (g->st->block_state == ISAL_BLOCK_FINISH &&
	    g->st->tmp_out_processed == g->st->tmp_out_valid) {
		b->state = B_MEMBER_END;
		return 0;
	}
	/* no input taken and no output made: more input is needed */
	if (in_off(b) == before_in && b->out == before_out) {
		if (g->inavail)
			return lf_err_set(err, -EINVAL,
					  "'%s': inflater stalled at "
					  "compressed offset %llu",
					  b->name, gzidx_ull(in_off(b)));
		if (b->eof)
			return gzidx_truncated(b->name, b->nread, err);
	}
	return 0;
}

int gzidx_isal_read(struct lf_gzidx_builder *b, unsigned char *dst, size_t len,
		    size_t *got, struct lf_err *err)
{
	struct gzidx_isal *g = b->isal;
	size_t done = 0;
	int ret;

	while (done < len && b->state != B_DONE) {
		size_t n = LF_MIN(len - done, g->olen - g->opos);

		if (n) {
			memcpy(dst + done, g->obuf + g->opos, n);
			g->opos += n;
			done += n;
			continue;
		}
		ret = produce(b, err);
		if (ret) {
			*got = done;
			return ret;
		}
	}
	*got = done;
	return 0;
}

/* ---- extract ---------------------------------------------------------- */

struct ex {
	struct inflate_state st;
	const struct lf_vfile *vf;
	const char *name;
	uint64_t pos; /* blob offset of in[0] + have */
	uint32_t have;
	unsigned char in[EX_CHUNK];
	unsigned char dict[WSIZE];
};

/* Read the next piece of input at pos into in[]; 0 bytes at the end. */
static int ex_fill(struct ex *x, struct lf_err *err)
{
	ssize_t n = lf_vfile_pread(x->vf, x->in, EX_CHUNK, x->pos);

	if (n < 0)
		return gzidx_read_error(x->name, x->pos, n, err);
	x->st.next_in = x->in;
	x->st.avail_in = (uint32_t)n;
	x->pos += (uint64_t)n;
	return 0;
}

/* Compressed offset of the next byte the inflater has not taken. */
static uint64_t ex_off(const struct ex *x)
{
	return x->pos - x->st.avail_in;
}

static int ex_window(struct ex *x, const struct lf_gzidx_view *view, size_t i,
		     size_t *dlen, struct lf_err *err)
{
	const struct lf_gzidx_point *p = &view->points[i];
	uint64_t off = lf_le64(p->window_off);
	uint32_t zlen = lf_le32(p->window_len);
	uLongf n = WSIZE;

	if (!zlen || lf_range_outside(off, zlen, view->windows_len) ||
	    uncompress(x->dict, &n, view->windows + off, zlen) != Z_OK || !n)
		return lf_err_set(err, -EINVAL,
				  "'%s': corrupt gzip index: point %zu has a "
				  "%s window",
				  x->name, i,
				  !zlen || lf_range_outside(off, zlen,
							    view->windows_len)
					  ? "misplaced"
					  : "corrupt");
	*dlen = (size_t)n;
	return 0;
}

/* Member start at x->pos: check the header's flags, reset for gzip. */
static int ex_member(struct ex *x, struct lf_err *err)
{
	int ret = ex_fill(x, err);

	if (ret)
		return ret;
	ret = header_flags(x->in, x->st.avail_in, x->name, ex_off(x), err);
	if (ret)
		return ret;
	isal_inflate_reset(&x->st);
	x->st.crc_flag = ISAL_GZIP;
	return 0;
}

static int ex_start(struct ex *x, const struct lf_gzidx_view *view, size_t i,
		    struct lf_err *err)
{
	const struct lf_gzidx_point *p = &view->points[i];
	uint64_t in = lf_le64(p->in);
	size_t dlen = 0;
	int ret;

	isal_inflate_init(&x->st);
	if (in > lf_vfile_size(x->vf))
		return lf_err_set(err, -EINVAL,
				  "'%s': corrupt gzip index: point %zu is "
				  "beyond the end of the blob",
				  x->name, i);
	if (p->flags & LF_GZIDX_POINT_MEMBER) {
		x->pos = in;
		return ex_member(x, err);
	}
	if (p->bits > 7 || (p->bits && !in))
		return lf_err_set(err, -EINVAL,
				  "'%s': corrupt gzip index: point %zu has a "
				  "bad bit offset",
				  x->name, i);
	ret = ex_window(x, view, i, &dlen, err);
	if (ret)
		return ret;
	x->st.crc_flag = ISAL_DEFLATE;
	if (isal_inflate_set_dict(&x->st, x->dict, (uint32_t)dlen) != COMP_OK)
		return lf_err_set(err, -EINVAL,
				  "'%s': isal_inflate_set_dict failed",
				  x->name);
	x->pos = in - (p->bits ? 1 : 0);
	ret = ex_fill(x, err);
	if (ret)
		return ret;
	if (p->bits) {
		if (!x->st.avail_in)
			return gzidx_truncated(x->name, x->pos, err);
		x->st.read_in = (uint64_t)(x->in[0] >> (8 - p->bits));
		x->st.read_in_length = p->bits;
		x->st.next_in++;
		x->st.avail_in--;
	}
	return 0;
}

/*
 * The member ended.  A raw (mid-member) start stops before the trailer,
 * which cannot be checked without the whole member: skip it.  Returns 1
 * to go on with the next member, 0 at the end of the stream, or -errno.
 */
static int ex_member_end(struct ex *x, struct lf_err *err)
{
	uint64_t at = ex_off(x) - (uint64_t)(x->st.read_in_length / 8);
	unsigned char hdr[2];
	ssize_t n;
	int ret;

	if (x->st.crc_flag == ISAL_DEFLATE) {
		if (at + 8 > lf_vfile_size(x->vf))
			return gzidx_truncated(x->name, lf_vfile_size(x->vf),
					       err);
		at += 8;
	}
	n = lf_vfile_pread(x->vf, hdr, 2, at);
	if (n < 0)
		return gzidx_read_error(x->name, at, n, err);
	if (n == 0 || hdr[0] == 0)
		return 0; /* the end, or the zero padding the builder checked */
	if (n < 2 || hdr[0] != 0x1f || hdr[1] != 0x8b)
		return gzidx_trailing_garbage(x->name, at, err);
	x->pos = at;
	ret = ex_member(x, err);
	return ret ? ret : 1;
}

static int ex_run(struct ex *x, unsigned char *out, size_t len, size_t *got,
		  struct lf_err *err)
{
	size_t done = 0;
	int ret;

	while (done < len) {
		uint32_t room = (uint32_t)LF_MIN(len - done,
						 (size_t)UINT32_MAX);
		uint32_t in_before;

		if (!x->st.avail_in) {
			ret = ex_fill(x, err);
			if (ret)
				return ret;
		}
		in_before = x->st.avail_in;
		x->st.next_out = out + done;
		x->st.avail_out = room;
		ret = isal_inflate(&x->st);
		if (in_before && x->st.avail_in == in_before &&
		    x->st.avail_out == room &&
		    x->st.block_state != ISAL_BLOCK_FINISH)
			return lf_err_set(err, -EINVAL,
					  "'%s': inflater stalled at "
					  "compressed offset %llu",
					  x->name, gzidx_ull(ex_off(x)));
		done += room - x->st.avail_out;
		*got = done;
		if (ret < 0)
			return isal_fail(ret, x->name, ex_off(x), err);
		if (x->st.block_state == ISAL_BLOCK_FINISH &&
		    x->st.tmp_out_processed == x->st.tmp_out_valid) {
			ret = ex_member_end(x, err);
			if (ret <= 0)
				return ret;
			continue;
		}
		if (!in_before && x->st.avail_out)
			return gzidx_truncated(x->name, x->pos, err);
	}
	return 0;
}

/*
 * An extract's state is 180 KiB: above glibc's mmap threshold, so a malloc
 * per call would map and fault it in every time.  Each thread keeps one,
 * taken out while in use: an extract may read its blob through another
 * extract (a layer inside a gzip'd archive), which then gets its own.
 */
static pthread_key_t ex_key;
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;
static int ex_key_err = -1; /* until the key exists */

static void ex_key_make(void)
{
	ex_key_err = pthread_key_create(&ex_key, free);
}

static struct ex *ex_take(void)
{
	struct ex *x = NULL;

	if (!pthread_once(&ex_once, ex_key_make) && !ex_key_err) {
		x = pthread_getspecific(ex_key);
		if (x && pthread_setspecific(ex_key, NULL))
			x = NULL; /* leave it where it is */
	}
	return x ? x : malloc(sizeof(*x));
}

static void ex_give_back(struct ex *x)
{
	if (!ex_key_err && !pthread_getspecific(ex_key) &&
	    !pthread_setspecific(ex_key, x))
		return;
	free(x);
}

int gzidx_isal_extract(const struct lf_gzidx_view *view, size_t i,
		       const struct lf_vfile *blob, void *out, size_t len,
		       size_t *got, struct lf_err *err)
{
	struct ex *x = ex_take();
	int ret;

	if (!x)
		return lf_err_set(err, -ENOMEM, "'%s': out of memory",
				  lf_vfile_name(blob));
	x->vf = blob;
	x->name = lf_vfile_name(blob);
	ret = ex_start(x, view, i, err);
	if (!ret)
		ret = ex_run(x, out, len, got, err);
	ex_give_back(x);
	return ret;
}

bool gzidx_isal_available(void)
{
	return true;
}

#else /* !LF_HAVE_ISAL */

bool gzidx_isal_available(void)
{
	return false;
}

int gzidx_isal_new(struct lf_gzidx_builder *b)
{
	(void)b;
	return -ENOTSUP;
}

void gzidx_isal_free(struct lf_gzidx_builder *b)
{
	(void)b;
}

int gzidx_isal_read(struct lf_gzidx_builder *b, unsigned char *dst, size_t len,
		    size_t *got, struct lf_err *err)
{
	(void)b;
	(void)dst;
	(void)len;
	*got = 0;
	return lf_err_set(err, -ENOTSUP, "built without ISA-L");
}

int gzidx_isal_extract(const struct lf_gzidx_view *view, size_t i,
		       const struct lf_vfile *blob, void *out, size_t len,
		       size_t *got, struct lf_err *err)
{
	(void)view;
	(void)i;
	(void)blob;
	(void)out;
	(void)len;
	*got = 0;
	return lf_err_set(err, -ENOTSUP, "built without ISA-L");
}

#endif

// SPDX-License-Identifier: MIT
/* source_plain.c - plain layers: the blob's bytes as stored, read block by
 * block and each block checked against SPANSUMS (lf_flat_pread, which the
 * zstd copy shares). */
#include "layerfs/source.h"

#include "blob_lru.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Plain and zstd layers are checked block by block: whole blocks are read
 * straight into the caller's buffer, the blocks at the edges of a read go
 * through the chunk LRU (so small sequential reads read each block once). */
#define FLAT_CHUNK ((uint64_t)LF_SPAN_SIZE)

/*
 * Check the blocks of [start, start+len) (data) against the hashes taken
 * while indexing: plain and zstd chunks are whole blocks.
 */
static int check_spans(struct lf_flat *f, const unsigned char *data,
		       uint64_t start, size_t len, struct lf_err *err)
{
	const struct lf_blob *b = &f->b;
	uint64_t end = start + len, k = start / LF_SPAN_SIZE;

	for (; k * LF_SPAN_SIZE < end; k++) {
		uint64_t bs = k * LF_SPAN_SIZE;
		uint64_t be = LF_MIN(bs + LF_SPAN_SIZE, b->tar_size), want;

		if (be > end || lf_index_span_sum(b->idx, k, &want) ||
		    lf_cache_hash64(data + (bs - start), (size_t)(be - bs)) !=
			    want)
			return f->damaged(f, bs, err);
	}
	return 0;
}

/* Read [start, start+len) of the stream into dst, and check it: len ends
 * at a block boundary or at the end of the stream. */
static int flat_read(struct lf_flat *f, void *dst, uint64_t start, size_t len,
		     struct lf_err *err)
{
	struct lf_blob *b = &f->b;
	ssize_t n = f->raw(f, dst, len, start);
	int ret;

	if (n < 0)
		return lf_err_set(err, (int)n,
				  "'%s': read error at offset "
				  "%llu: %s",
				  lf_source_name(b), (unsigned long long)start,
				  strerror((int)-n));
	if ((size_t)n < len)
		return lf_err_set(err, -EIO,
				  "'%s': blob is shorter than its "
				  "index (offset %llu)",
				  lf_source_name(b),
				  (unsigned long long)(start + (uint64_t)n));
	if ((ret = lf_source_check_file(b, err)))
		return ret;
	return check_spans(f, dst, start, len, err);
}

/* Block `no` of the stream, read and checked, referenced. */
static int flat_chunk(struct lf_flat *f, uint64_t no, struct lf_chunk **out,
		      struct lf_err *err)
{
	const struct lf_blob *b = &f->b;
	uint64_t start = no * FLAT_CHUNK;
	size_t len = (size_t)LF_MIN(FLAT_CHUNK, b->tar_size - start);
	struct lf_chunk *c;
	int ret;

	if (b->cc && (c = lf_chunk_get(b->cc, b->id, no))) {
		*out = c;
		return 0;
	}
	if (!(c = lf_source_chunk_new(b, no, len)))
		return lf_err_set(err, -ENOMEM, "out of memory");
	if ((ret = flat_read(f, c->data, start, len, err))) {
		free(c);
		return ret;
	}
	*out = b->cc ? lf_chunk_put(b->cc, c) : c;
	return 0;
}

ssize_t lf_flat_pread(struct lf_blob *b, void *buf, size_t len, uint64_t off,
		      struct lf_err *err)
{
	struct lf_flat *f = (struct lf_flat *)b;
	uint64_t pos = off, end = off + len;
	int ret;

	while (pos < end) {
		/* whole blocks from pos: the last boundary <= end, or the end
		 * of the stream */
		uint64_t run = end == b->tar_size ? end
						  : end - end % FLAT_CHUNK;
		struct lf_chunk *c = NULL;
		uint64_t skip;
		size_t n;

		if (pos % FLAT_CHUNK == 0 && run > pos) {
			ret = flat_read(f, (char *)buf + (pos - off), pos,
					(size_t)(run - pos), err);
			if (ret)
				return ret;
			pos = run;
			continue;
		}
		if ((ret = flat_chunk(f, pos / FLAT_CHUNK, &c, err)))
			return ret;
		skip = pos % FLAT_CHUNK;
		n = (size_t)LF_MIN(end - pos, c->len - skip);
		memcpy((char *)buf + (pos - off), c->data + skip, n);
		lf_chunk_unref(c);
		pos += n;
	}
	return (ssize_t)len;
}

static ssize_t plain_raw(struct lf_flat *f, void *buf, size_t len, uint64_t off)
{
	return lf_vfile_pread(f->b.vf, buf, len, off);
}

static int plain_damaged(struct lf_flat *f, uint64_t off, struct lf_err *err)
{
	return lf_source_differs(&f->b, off, err);
}

static bool plain_match(const struct lf_source_loc *loc)
{
	return lf_index_compression(loc->idx) == LF_COMP_NONE;
}

static int plain_open(const struct lf_source_loc *loc, struct lf_blob **out,
		      struct lf_err *err)
{
	struct lf_flat *f = calloc(1, sizeof(*f));
	int ret;

	if (!f)
		return lf_err_set(err, -ENOMEM, "out of memory");
	lf_source_init(&f->b, &lf_source_plain, loc);
	f->raw = plain_raw;
	f->damaged = plain_damaged;
	if ((ret = lf_source_need_sums(&f->b,
				       (f->b.tar_size - 1) / LF_SPAN_SIZE,
				       err))) {
		free(f);
		return ret;
	}
	*out = &f->b;
	return 0;
}

static void plain_close(struct lf_blob *b)
{
	free(b);
}

const struct lf_source_ops lf_source_plain = {
	.name = "plain",
	.match = plain_match,
	.open = plain_open,
	.pread = lf_flat_pread,
	.close = plain_close,
};

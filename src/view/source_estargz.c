// SPDX-License-Identifier: MIT
/*
 * source_estargz.c - eStargz layers indexed from their TOC: a file's bytes
 * are the chunks of the index's CHUNKS table, each fetched as its gzip
 * member's compressed range (one range GET from a registry, never the
 * streamed blob), inflated and checked against the TOC's sha256 through
 * the chunk cache, with the next chunk fetched ahead for a sequential
 * reader.  A chunk that does not match is EIO with a message.
 */
#include "layerfs/source.h"

#include "layerfs/estargz.h"
#include "layerfs/rblob.h"

#include "blob_lru.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct sgz_source {
	struct lf_blob b;
	const struct lf_idx_chunk *chunks;
	size_t nchunks;
	unsigned char *starts; /* bitmap: chunk k starts a file */
};

static ssize_t raw_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	return lf_rblob_pread_raw(ctx, buf, len, off);
}

/* The chunk holding stream offset off (off < tar_size). */
static size_t find(const struct sgz_source *s, uint64_t off)
{
	size_t lo = 0, hi = s->nchunks;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->chunks[mid].out <= off)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

static void fill_chunk(void *ctx, uint64_t no);

/* Chunk k - 1 is in the LRU: the reader of chunk k is going forward. */
static bool came_from(struct lf_blob *b, size_t k)
{
	struct lf_chunk *c = k ? lf_chunk_get(b->cc, b->id, k - 1) : NULL;

	if (c)
		lf_chunk_unref(c);
	return c != NULL;
}

/* Chunk k, fetched and checked, referenced (lf_chunk_unref). */
static int get_chunk(struct sgz_source *s, size_t k, bool worker,
		     struct lf_chunk **out, struct lf_err *err)
{
	struct lf_blob *b = &s->b;
	const struct lf_idx_chunk *ic = &s->chunks[k];
	struct lf_chunk *c;
	struct lf_err cerr;
	int ret;

	if (b->cc && (c = lf_chunk_get(b->cc, b->id, k))) {
		*out = c;
		return 0;
	}
	if (b->cc && !worker) {
		/* the read-ahead worker may be fetching this very chunk */
		lf_chunk_wait_inflight(b->cc, b->id, k);
		if ((c = lf_chunk_get(b->cc, b->id, k))) {
			*out = c;
			return 0;
		}
		/* a sequential reader: fetch the next chunk meanwhile */
		if (k + 1 < s->nchunks && came_from(b, k) &&
		    !(s->starts[(k + 1) / 8] & (1u << ((k + 1) % 8))))
			lf_chunk_prefetch(b->cc, fill_chunk, s, b->id, k + 1);
	}
	if (!(c = lf_source_chunk_new(b, k, ic->len)))
		return lf_err_set(err, -ENOMEM, "out of memory");
	ret = lf_estargz_chunk_read(raw_read, (void *)b->vf, ic, c->data,
				    lf_source_name(b), err);
	/* a local blob written since it was opened: say so */
	if (!ret || ret == -EIO) {
		if (lf_source_check_file(b, &cerr)) {
			*err = cerr;
			ret = -EIO;
		}
	}
	if (ret) {
		free(c);
		return ret;
	}
	*out = b->cc ? lf_chunk_put(b->cc, c) : c;
	return 0;
}

/* The read-ahead worker's fill callback (blob_lru.h); ctx is the source.
 * Errors surface again, with a message, when a reader asks. */
static void fill_chunk(void *ctx, uint64_t no)
{
	struct sgz_source *s = ctx;
	struct lf_chunk *c = NULL;
	struct lf_err err;

	if (no < s->nchunks && !get_chunk(s, (size_t)no, true, &c, &err))
		lf_chunk_unref(c);
}

static ssize_t sgz_pread(struct lf_blob *b, void *buf, size_t len, uint64_t off,
			 struct lf_err *err)
{
	struct sgz_source *s = (struct sgz_source *)b;
	size_t done = 0;
	int ret;

	while (done < len && off < b->tar_size) {
		size_t k = find(s, off), n;
		struct lf_chunk *c = NULL;
		uint64_t skip = off - s->chunks[k].out;

		if ((ret = get_chunk(s, k, false, &c, err)))
			return ret;
		if (skip >= c->len) { /* cannot happen with a checked index */
			lf_chunk_unref(c);
			return lf_err_set(err, -EIO, "'%s': bad chunk table",
					  lf_source_name(b));
		}
		n = LF_MIN(len - done, c->len - (size_t)skip);
		memcpy((char *)buf + done, c->data + skip, n);
		lf_chunk_unref(c);
		done += n;
		off += n;
	}
	return (ssize_t)done;
}

static void sgz_close(struct lf_blob *b)
{
	free(((struct sgz_source *)b)->starts);
	free(b);
}

/* Mark the chunks where a file starts: read-ahead stays in a file. */
static void mark_starts(struct sgz_source *s)
{
	const struct lf_index *idx = s->b.idx;
	size_t i, n = lf_index_count(idx), k;

	for (i = 0; i < n; i++) {
		const struct lf_idx_entry *e = lf_index_entry(idx, i);

		if (e->kind != LF_KIND_REG || !e->size ||
		    e->data_off >= s->b.tar_size)
			continue;
		k = find(s, e->data_off);
		if (s->chunks[k].out == e->data_off)
			s->starts[k / 8] |= (unsigned char)(1u << (k % 8));
	}
}

static bool sgz_match(const struct lf_source_loc *loc)
{
	return loc->blob && lf_index_chunks(loc->idx, NULL) != NULL;
}

static int sgz_open(const struct lf_source_loc *loc, struct lf_blob **out,
		    struct lf_err *err)
{
	struct sgz_source *s = calloc(1, sizeof(*s));

	if (!s)
		return lf_err_set(err, -ENOMEM, "out of memory");
	lf_source_init(&s->b, &lf_source_estargz, loc);
	s->chunks = lf_index_chunks(loc->idx, &s->nchunks);
	s->starts = calloc(s->nchunks / 8 + 1, 1);
	if (!s->starts) {
		free(s);
		return lf_err_set(err, -ENOMEM, "out of memory");
	}
	mark_starts(s);
	*out = &s->b;
	return 0;
}

const struct lf_source_ops lf_source_estargz = {
	.name = "estargz",
	.match = sgz_match,
	.open = sgz_open,
	.pread = sgz_pread,
	.read_file = NULL,
	.close = sgz_close,
};

// SPDX-License-Identifier: MIT
/*
 * source_gzip.c - gzip layers: inflate from the nearest checkpoint, through
 * the chunk LRU, with read-ahead; each span checked against SPANSUMS.  The
 * checkpoint windows (three quarters of a cache file) are checked on first
 * use, not at load; damaged ones are rebuilt here, in memory, from the blob.
 */
#include "layerfs/source.h"

#include "layerfs/buf.h"
#include "layerfs/log.h"

#include "blob_lru.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct gz_source {
	struct lf_blob b;
	struct lf_gzidx_view gz;       /* the index's, or the rebuilt ones */
	pthread_mutex_t lock;	       /* for the first check */
	atomic_bool checked;	       /* gz's windows are good */
	struct lf_buf points, windows; /* rebuilt checkpoints */
};

/* Checkpoints anew from the blob, in memory (a damaged cache file). */
static int rebuild_points(struct gz_source *s, struct lf_err *err)
{
	const struct lf_vfile *blob = s->b.vf;
	struct lf_vfile_cursor r = { blob, 0 };
	struct lf_gzidx_builder *gb;
	uint64_t tin, tout;
	size_t got;
	char *buf;
	int ret;

	if (!blob)
		return lf_err_set(err, -EIO, "no blob to rebuild checkpoints");
	buf = malloc(1 << 20);
	if (!buf)
		return lf_err_set(err, -ENOMEM, "out of memory");
	ret = lf_gzidx_builder_new(0, lf_vfile_cursor_read, &r,
				   lf_vfile_name(blob), &gb);
	if (ret) {
		free(buf);
		return lf_err_set(err, ret, "out of memory");
	}
	do
		ret = lf_gzidx_builder_read(gb, buf, 1 << 20, &got, err);
	while (!ret && got);
	lf_buf_reset(&s->points);
	lf_buf_reset(&s->windows);
	if (!ret)
		ret = lf_gzidx_builder_finish(gb, &s->points, &s->windows, &tin,
					      &tout, err);
	lf_gzidx_builder_free(gb);
	free(buf);
	if (!ret && tout != s->gz.total_out)
		ret = lf_err_set(err, -EIO,
				 "'%s': the blob changed since it "
				 "was indexed",
				 lf_vfile_name(blob));
	if (ret)
		return ret;
	lf_gzidx_view_set(&s->gz, &s->points, &s->windows);
	return 0;
}

/*
 * The checkpoints, their windows checked against the cache file's checksum
 * on the first call (later calls cost an atomic load).  Damaged windows are
 * rebuilt in memory from the blob (one pass, a warning, and the cache file
 * is removed so the next run rebuilds it).
 */
static int gz_checked(struct gz_source *s, const struct lf_gzidx_view **out,
		      struct lf_err *err)
{
	const char *path;
	int ret = 0;

	*out = NULL;
	if (atomic_load(&s->checked)) {
		*out = &s->gz;
		return 0;
	}
	pthread_mutex_lock(&s->lock);
	if (!atomic_load(&s->checked)) {
		if (lf_index_check_windows(s->b.idx)) {
			path = lf_index_cache_path(s->b.idx);
			lf_log(LF_LOG_WARN,
			       "index cache file '%s': checkpoint "
			       "windows damaged; rebuilding them from the "
			       "blob (the next run rebuilds the file)",
			       path ? path : "?");
			if (path)
				unlink(path);
			ret = rebuild_points(s, err);
		}
		if (!ret)
			atomic_store(&s->checked, true);
	}
	pthread_mutex_unlock(&s->lock);
	if (!ret)
		*out = &s->gz;
	return ret;
}

/* A gzip chunk: checkpoint span i, hashed whole while indexing. */
static int check_gz_span(struct lf_blob *b, size_t i, uint64_t start,
			 const struct lf_chunk *c, struct lf_err *err)
{
	uint64_t want;

	if (!lf_index_span_sum(b->idx, i, &want) &&
	    lf_cache_hash64(c->data, c->len) == want)
		return 0;
	return lf_source_differs(b, start, err);
}

static void fill_chunk(void *ctx, uint64_t no);

/* Chunk i - 1 is in the LRU: the reader of chunk i is going forward. */
static bool came_from(struct lf_blob *b, size_t i)
{
	struct lf_chunk *c = i ? lf_chunk_get(b->cc, b->id, i - 1) : NULL;

	if (c)
		lf_chunk_unref(c);
	return c != NULL;
}

/* The decompressed span of checkpoint i, referenced (lf_chunk_unref). */
static int get_chunk(struct lf_blob *b, const struct lf_gzidx_view *gz,
		     size_t i, bool worker, struct lf_chunk **out,
		     struct lf_err *err)
{
	uint64_t start = gz->points[i].out;
	uint64_t end = i + 1 < gz->npoints ? gz->points[i + 1].out
					   : gz->total_out;
	struct lf_chunk *c;
	size_t got = 0;
	int ret;

	if (b->cc && (c = lf_chunk_get(b->cc, b->id, i))) {
		*out = c;
		return 0;
	}
	/* the read-ahead worker may be inflating this very chunk */
	if (b->cc && !worker) {
		lf_chunk_wait_inflight(b->cc, b->id, i);
		if ((c = lf_chunk_get(b->cc, b->id, i))) {
			*out = c;
			return 0;
		}
		/* a sequential reader wants the next one soon: start it now,
		 * on the other core, while this one inflates here (from a
		 * far blob only when the reader came from the chunk before:
		 * a small file must not cost the next span's fetch) */
		if (i + 1 < gz->npoints &&
		    (!lf_vfile_far(b->vf) || came_from(b, i)))
			lf_chunk_prefetch(b->cc, fill_chunk, b, b->id, i + 1);
	}
	if (end - start > SIZE_MAX - sizeof(*c))
		return lf_err_set(err, -EFBIG, "chunk too large");
	if (!(c = lf_source_chunk_new(b, i, (size_t)(end - start))))
		return lf_err_set(err, -ENOMEM, "out of memory");
	ret = lf_gzidx_extract(gz, i, b->vf, c->data, c->len, &got, err);
	if (!ret && got != c->len)
		ret = lf_err_set(err, -EIO,
				 "'%s': gzip stream ends early at offset %llu",
				 lf_vfile_name(b->vf),
				 (unsigned long long)(start + got));
	/* inflating a changed blob often fails or runs short: say why */
	if (!ret || ret == -EIO || ret == -EINVAL) {
		struct lf_err cerr;

		if (lf_source_check_file(b, &cerr)) {
			*err = cerr;
			ret = -EIO;
		}
	}
	if (!ret)
		ret = check_gz_span(b, i, start, c, err);
	if (ret) {
		free(c);
		return ret;
	}
	*out = b->cc ? lf_chunk_put(b->cc, c) : c;
	return 0;
}

/* The read-ahead worker's fill callback (blob_lru.h); ctx is the source. */
static void fill_chunk(void *ctx, uint64_t no)
{
	struct gz_source *s = ctx;
	struct lf_chunk *c = NULL;
	struct lf_err err;

	const struct lf_gzidx_view *gz;

	/* errors surface again, with a message, when a reader asks */
	if (!gz_checked(s, &gz, &err) && no < gz->npoints &&
	    !get_chunk(&s->b, gz, (size_t)no, true, &c, &err))
		lf_chunk_unref(c);
}

static ssize_t gz_pread(struct lf_blob *b, void *buf, size_t len, uint64_t off,
			struct lf_err *err)
{
	const struct lf_gzidx_view *gz;
	size_t done = 0;
	int ret = gz_checked((struct gz_source *)b, &gz, err);

	if (ret)
		return ret;
	while (done < len && off < b->tar_size) {
		size_t i = lf_gzidx_find(gz, off), n;
		struct lf_chunk *c = NULL;
		uint64_t skip;

		if ((ret = get_chunk(b, gz, i, false, &c, err)))
			return ret;
		skip = off - gz->points[i].out;
		if (skip >= c->len) { /* cannot happen with a checked index */
			lf_chunk_unref(c);
			return lf_err_set(err, -EIO, "'%s': bad checkpoint",
					  lf_vfile_name(b->vf));
		}
		n = LF_MIN(len - done, c->len - (size_t)skip);
		memcpy((char *)buf + done, c->data + skip, n);
		lf_chunk_unref(c);
		done += n;
		off += n;
	}
	return (ssize_t)done;
}

static void gz_close(struct lf_blob *b)
{
	struct gz_source *s = (struct gz_source *)b;

	pthread_mutex_destroy(&s->lock);
	lf_buf_release(&s->points);
	lf_buf_release(&s->windows);
	free(s);
}

static bool gz_match(const struct lf_source_loc *loc)
{
	return lf_index_compression(loc->idx) == LF_COMP_GZIP;
}

static int gz_open(const struct lf_source_loc *loc, struct lf_blob **out,
		   struct lf_err *err)
{
	struct gz_source *s = calloc(1, sizeof(*s));
	int ret;

	if (!s)
		return lf_err_set(err, -ENOMEM, "out of memory");
	lf_source_init(&s->b, &lf_source_gzip, loc);
	s->gz = *lf_index_gzidx(loc->idx);
	pthread_mutex_init(&s->lock, NULL);
	atomic_init(&s->checked, false);
	lf_buf_init(&s->points);
	lf_buf_init(&s->windows);
	if ((ret = lf_source_need_sums(&s->b, s->gz.npoints - 1, err))) {
		gz_close(&s->b);
		return ret;
	}
	*out = &s->b;
	return 0;
}

const struct lf_source_ops lf_source_gzip = {
	.name = "gzip",
	.match = gz_match,
	.open = gz_open,
	.pread = gz_pread,
	.close = gz_close,
};

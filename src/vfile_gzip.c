// SPDX-License-Identifier: MIT
/* vfile_gzip.c - random access to the decompressed bytes of a gzip file. */
#include "layerfs/vfile_gzip.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "layerfs/buf.h"
#include "layerfs/gzidx.h"
#include "layerfs/log.h"

/* Largest span between two checkpoints we agree to hold in memory. */
#define SPAN_MAX (64u << 20)
/* Output discarded while the checkpoints are built. */
#define SCRATCH (256u << 10)

struct slot {
	uint64_t no;		/* checkpoint number */
	unsigned char *data;	/* NULL: free slot */
	size_t len;
	uint64_t used;		/* LRU clock */
};

struct gzv {
	int refs;		/* atomic */
	struct lf_vfile *file;	/* owned: the compressed bytes */
	struct lf_buf points, windows;
	struct lf_gzidx_view view;
	pthread_mutex_t lock;	/* slots and clock */
	struct slot slots[LF_VFILE_GZIP_SLOTS];
	uint64_t clock;
};

bool lf_vfile_is_gzip(const struct lf_vfile *vf)
{
	unsigned char m[2];

	return lf_vfile_pread(vf, m, 2, 0) == 2 && m[0] == 0x1f &&
	       m[1] == 0x8b;
}

static void gzv_free(struct gzv *g)
{
	size_t i;

	for (i = 0; i < LF_VFILE_GZIP_SLOTS; i++)
		free(g->slots[i].data);
	lf_buf_release(&g->points);
	lf_buf_release(&g->windows);
	lf_vfile_close(g->file);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

static void gzv_ref(void *ctx)
{
	struct gzv *g = ctx;

	__atomic_add_fetch(&g->refs, 1, __ATOMIC_RELAXED);
}

static void gzv_unref(void *ctx)
{
	struct gzv *g = ctx;

	if (__atomic_sub_fetch(&g->refs, 1, __ATOMIC_ACQ_REL) == 0)
		gzv_free(g);
}

static int gzv_check(void *ctx)
{
	struct gzv *g = ctx;

	return lf_vfile_check(g->file);
}

static uint64_t span_end(const struct gzv *g, size_t i)
{
	return i + 1 < g->view.npoints ? lf_le64(g->view.points[i + 1].out) :
					 g->view.total_out;
}

/* Copy what [off, off+len) needs from a cached span, if there is one. */
static size_t from_slot(struct gzv *g, size_t i, void *buf, size_t len,
			uint64_t skip)
{
	size_t k, n = 0;

	pthread_mutex_lock(&g->lock);
	for (k = 0; k < LF_VFILE_GZIP_SLOTS; k++) {
		struct slot *s = &g->slots[k];

		if (s->data && s->no == i && skip < s->len) {
			n = LF_MIN(len, s->len - (size_t)skip);
			memcpy(buf, s->data + skip, n);
			s->used = ++g->clock;
			break;
		}
	}
	pthread_mutex_unlock(&g->lock);
	return n;
}

/* Keep a freshly inflated span (takes data), evicting the least used. */
static void to_slot(struct gzv *g, size_t i, unsigned char *data, size_t len)
{
	struct slot *victim = &g->slots[0];
	size_t k;

	pthread_mutex_lock(&g->lock);
	for (k = 0; k < LF_VFILE_GZIP_SLOTS; k++) {
		struct slot *s = &g->slots[k];

		if (s->data && s->no == i) {	/* another thread was first */
			victim = NULL;
			break;
		}
		if (!s->data || s->used < victim->used)
			victim = s;
		if (!s->data)
			break;
	}
	if (victim) {
		free(victim->data);
		victim->no = i;
		victim->data = data;
		victim->len = len;
		victim->used = ++g->clock;
		data = NULL;
	}
	pthread_mutex_unlock(&g->lock);
	free(data);
}

static ssize_t gzv_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct gzv *g = ctx;
	size_t done = 0;

	while (done < len && off < g->view.total_out) {
		size_t i = lf_gzidx_find(&g->view, off), n, got = 0;
		uint64_t start = lf_le64(g->view.points[i].out);
		uint64_t end = span_end(g, i);
		unsigned char *data;
		struct lf_err err;

		if (off < start || end <= off || end - start > SPAN_MAX)
			return -EIO;	/* cannot happen: checked at open */
		n = from_slot(g, i, (char *)buf + done, len - done,
			      off - start);
		if (!n) {
			data = malloc((size_t)(end - start));
			if (!data)
				return -ENOMEM;
			if (lf_gzidx_extract(&g->view, i, g->file, data,
					     (size_t)(end - start), &got,
					     &err) ||
			    got != end - start) {
				free(data);
				lf_log(LF_LOG_ERR, "%s", err.msg);
				return -EIO;
			}
			n = LF_MIN(len - done, (size_t)(end - off));
			memcpy((char *)buf + done, data + (off - start), n);
			to_slot(g, i, data, (size_t)(end - start));
		}
		done += n;
		off += n;
	}
	return (ssize_t)done;
}

static const struct lf_vfile_ops gzv_ops = {
	.pread = gzv_pread,
	.ref = gzv_ref,
	.unref = gzv_unref,
	.check = gzv_check,
};

struct pull {
	const struct lf_vfile *file;
	uint64_t pos;
};

static ssize_t pull_read(void *ctx, void *buf, size_t len)
{
	struct pull *p = ctx;
	ssize_t n = lf_vfile_pread(p->file, buf, len, p->pos);

	if (n > 0)
		p->pos += (uint64_t)n;
	return n;
}

/* The one pass: inflate everything, keep the checkpoints. */
static int build(struct gzv *g, struct lf_err *err)
{
	struct pull p = { .file = g->file };
	struct lf_gzidx_builder *b;
	unsigned char *scratch = malloc(SCRATCH);
	size_t got, i;
	int ret;

	if (!scratch)
		return lf_err_set(err, -ENOMEM, "out of memory");
	ret = lf_gzidx_builder_new(0, pull_read, &p, lf_vfile_name(g->file),
				   &b);
	if (ret) {
		free(scratch);
		return lf_err_set(err, ret, "out of memory");
	}
	do
		ret = lf_gzidx_builder_read(b, scratch, SCRATCH, &got, err);
	while (!ret && got);
	if (!ret)
		ret = lf_gzidx_builder_finish(b, &g->points, &g->windows,
					      &g->view.total_in,
					      &g->view.total_out, err);
	lf_gzidx_builder_free(b);
	free(scratch);
	if (ret)
		return ret;
	g->view.points = (const void *)g->points.data;
	g->view.npoints = g->points.len / sizeof(struct lf_gzidx_point);
	g->view.windows = (const void *)g->windows.data;
	g->view.windows_len = g->windows.len;
	for (i = 0; i < g->view.npoints; i++)
		if (span_end(g, i) - lf_le64(g->view.points[i].out) > SPAN_MAX)
			return lf_err_set(err, -EFBIG,
					  "'%s': a deflate block of more than %u MiB at compressed offset %llu",
					  lf_vfile_name(g->file), SPAN_MAX >> 20,
					  (unsigned long long)lf_le64(
						  g->view.points[i].in));
	return 0;
}

int lf_vfile_gzip_open(struct lf_vfile *file, struct lf_vfile **out,
		       struct lf_err *err)
{
	struct gzv *g = calloc(1, sizeof(*g));
	int ret;

	if (!g) {
		lf_vfile_close(file);
		return lf_err_set(err, -ENOMEM, "out of memory");
	}
	g->refs = 1;
	lf_buf_init(&g->points);
	lf_buf_init(&g->windows);
	pthread_mutex_init(&g->lock, NULL);
	g->file = file;
	ret = build(g, err);
	if (!ret) {
		/* from_ops drops our reference if it fails */
		ret = lf_vfile_from_ops(&gzv_ops, g, g->view.total_out,
					lf_vfile_name(file), out);
		if (ret)
			return lf_err_set(err, ret, "out of memory");
		return 0;
	}
	gzv_free(g);
	return ret;
}

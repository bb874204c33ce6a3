// SPDX-License-Identifier: MIT
/* waste.c - bytes shipped but hidden, dive's efficiency, shipped secrets. */
#include "layerfs/waste.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layerfs/hash.h"
#include "layerfs/path.h"
#include "layerfs/tree.h"

/* One leaf path of dive's accounting. */
struct pstat {
	const char *path; /* normalised, no leading slash */
	bool own_path;	  /* path is ours (else an index's) */
	bool has_first;
	uint32_t first_layer, first_entry; /* first regular-file copy */
	uint64_t cum, min;
	uint32_t *layers; /* occurrences (1-based), in order */
	uint64_t *sizes;  /* and their sizes */
	uint32_t n, cap;
	uint32_t l_in[2];   /* the first two occurrences, inline: most */
	uint64_t s_in[2];   /* paths occur once */
	struct pstat *next; /* hash chain */
};

#define PBLOCK 4096

/* Paths by name; pstats come from blocks that never move. */
struct pmap {
	struct lf_hash_key key; /* the paths are the image's: keyed */
	struct pstat **buckets;
	size_t nbuckets, count; /* power of two; count <= nbuckets */
	struct pstat **all;	/* insertion order, for the final pass */
	size_t cap;		/* of all; all[i] lives in blocks[i / PBLOCK] */
	struct pstat **blocks;
};

struct acc {
	struct lf_index *const *idx;
	const struct lf_stack *stack; /* NULL: judge secrets by names */
	size_t n;
	size_t *base;	     /* flat offset of each layer's entries */
	uint32_t *hidden_at; /* per flat entry: 1-based layer, 0 = live */
	size_t cur;	     /* layer being applied */
	const char **paths;  /* its paths, sorted, made when first needed */
	size_t npaths;
	struct pmap map;
	struct lf_waste *w;
	char *buf;	/* secrets: LF_SECRET_SCAN_BYTES */
	size_t scanned; /* bytes read for secrets so far */
};

static uint64_t hash_str(const struct pmap *m, const char *s)
{
	return lf_siphash(&m->key, 0, s, strlen(s));
}

static int pmap_grow(struct pmap *m)
{
	size_t nb = m->nbuckets ? m->nbuckets * 2 : 4096, i;
	struct pstat **b = calloc(nb, sizeof(*b));

	if (!b)
		return -ENOMEM;
	if (!m->nbuckets)
		lf_hash_key(&m->key);
	for (i = 0; i < m->count; i++) {
		struct pstat *p = m->all[i];
		size_t h = hash_str(m, p->path) & (nb - 1);

		p->next = b[h];
		b[h] = p;
	}
	free(m->buckets);
	m->buckets = b;
	m->nbuckets = nb;
	return 0;
}

/* The record of `path`, made when new; `borrowed`: path outlives the map
 * (an index string), else it is copied. */
static struct pstat *pmap_get(struct pmap *m, const char *path, bool borrowed)
{
	size_t b;
	struct pstat *p;

	if (m->nbuckets) {
		b = hash_str(m, path) & (m->nbuckets - 1);
		for (p = m->buckets[b]; p; p = p->next)
			if (!strcmp(p->path, path))
				return p;
	}
	if (m->count == m->cap) {
		size_t nc = m->cap + PBLOCK, nblk = nc / PBLOCK;
		struct pstat **a = realloc(m->all, nc * sizeof(*a));
		struct pstat **bl;

		if (!a)
			return NULL;
		m->all = a;
		bl = realloc(m->blocks, nblk * sizeof(*bl));
		if (!bl)
			return NULL;
		m->blocks = bl;
		if (!(bl[nblk - 1] = malloc(PBLOCK * sizeof(**bl))))
			return NULL;
		m->cap = nc;
	}
	if (m->count >= m->nbuckets && pmap_grow(m))
		return NULL;
	p = &m->blocks[m->count / PBLOCK][m->count % PBLOCK];
	memset(p, 0, sizeof(*p));
	p->layers = p->l_in;
	p->sizes = p->s_in;
	p->cap = 2;
	p->path = path;
	if (!borrowed && !(p->path = strdup(path)))
		return NULL;
	p->own_path = !borrowed;
	b = hash_str(m, path) & (m->nbuckets - 1);
	p->next = m->buckets[b];
	m->buckets[b] = p;
	m->all[m->count++] = p;
	return p;
}

static int pstat_add(struct pstat *p, uint64_t size, uint32_t layer)
{
	uint32_t k;

	/* dive keeps one node per path per layer: a later entry of the same
	 * layer replaces the earlier occurrence */
	if (p->n && p->layers[p->n - 1] == layer) {
		p->cum -= p->sizes[p->n - 1];
		p->n--;
	} else if (p->n == p->cap) {
		uint32_t nc = p->cap * 2;
		uint32_t *l = malloc(nc * sizeof(*l));
		uint64_t *s = malloc(nc * sizeof(*s));

		if (!l || !s) {
			free(l);
			free(s);
			return -ENOMEM;
		}
		memcpy(l, p->layers, p->n * sizeof(*l));
		memcpy(s, p->sizes, p->n * sizeof(*s));
		if (p->layers != p->l_in) {
			free(p->layers);
			free(p->sizes);
		}
		p->layers = l;
		p->sizes = s;
		p->cap = nc;
	}
	p->layers[p->n] = layer;
	p->sizes[p->n++] = size;
	p->cum += size;
	p->min = p->sizes[0];
	for (k = 1; k < p->n; k++)
		p->min = LF_MIN(p->min, p->sizes[k]);
	return 0;
}

/* dive's per-layer visit: the leaves of layer l (0-based). */
static int dive_layer(struct acc *a, size_t l, struct lf_merge *below)
{
	const struct lf_index *x = a->idx[l];
	size_t i, n = lf_index_count(x);
	struct lf_buf tgt;
	int ret = 0;

	lf_buf_init(&tgt);
	for (i = 0; i < n && !ret; i++) {
		const struct lf_idx_entry *e = lf_index_entry(x, i);
		const char *path = lf_index_path(x, e);
		uint64_t size = 0;
		struct pstat *p;

		if (e->kind == LF_KIND_DIR || (e->flags & LF_IDX_OPAQUE))
			continue;
		if (e->flags & LF_IDX_WHITEOUT) {
			/* the path it deletes; a directory counts its bytes */
			size_t dl = lf_path_dirlen(path);

			lf_buf_reset(&tgt);
			if (lf_buf_add(&tgt, path, dl) ||
			    (dl && lf_buf_addch(&tgt, '/')) ||
			    lf_buf_adds(&tgt, lf_path_basename(path) + 4)) {
				ret = -ENOMEM;
				break;
			}
			path = tgt.data;
			if (lf_merge_dir_bytes(below, path, tgt.len, &size) ==
			    -ENOMEM) {
				ret = -ENOMEM;
				break;
			}
		} else if (e->kind == LF_KIND_REG) {
			size = e->size;
		}
		p = pmap_get(&a->map, path, path != tgt.data);
		if (!p) {
			ret = -ENOMEM;
			break;
		}
		ret = pstat_add(p, size, (uint32_t)l + 1);
		if (!ret && e->kind == LF_KIND_REG && !p->has_first) {
			p->has_first = true;
			p->first_layer = (uint32_t)l;
			p->first_entry = (uint32_t)i;
		}
	}
	lf_buf_release(&tgt);
	return ret;
}

static int cmp_strp(const void *x, const void *y)
{
	return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* The paths layer x puts something at (not whiteouts), sorted. */
static const char **layer_paths(const struct lf_index *x, size_t *np)
{
	size_t i, n = lf_index_count(x);
	const char **v = malloc((n ? n : 1) * sizeof(*v));

	*np = 0;
	if (!v)
		return NULL;
	for (i = 0; i < n; i++) {
		const struct lf_idx_entry *e = lf_index_entry(x, i);

		if (!(e->flags & LF_IDX_WHITEOUT))
			v[(*np)++] = lf_index_path(x, e);
	}
	if (*np)
		qsort(v, *np, sizeof(*v), cmp_strp);
	return v;
}

/*
 * A file of layer l leaves the view while layer a->cur is applied: a
 * regular file's bytes are overwritten when layer cur puts something at its
 * path, deleted otherwise (a whiteout, or a parent replaced).
 */
static int file_gone(void *arg, size_t l, uint32_t i)
{
	struct acc *a = arg;
	const struct lf_idx_entry *e = lf_index_entry(a->idx[l], i);
	const char *p = lf_index_path(a->idx[l], e);

	if (e->kind != LF_KIND_REG)
		return 0;
	a->hidden_at[a->base[l] + i] = (uint32_t)a->cur + 1;
	if (!a->paths && !(a->paths = layer_paths(a->idx[a->cur], &a->npaths)))
		return -ENOMEM;
	if (a->npaths &&
	    bsearch(&p, a->paths, a->npaths, sizeof(*a->paths), cmp_strp))
		a->w->layers[l].overwritten += e->size;
	else
		a->w->layers[l].deleted += e->size;
	return 0;
}

/* Read up to LF_SECRET_SCAN_BYTES of the file into a->buf (binary data:
 * the probe only) within the total budget; the bytes read. */
static size_t scan_read(struct acc *a, size_t l, const struct lf_idx_entry *e)
{
	size_t want = (size_t)LF_MIN(e->size, (uint64_t)LF_SECRET_SCAN_BYTES);
	size_t probe = LF_MIN(want, (size_t)LF_SECRET_BINARY_PROBE);
	struct lf_err err;
	ssize_t n;

	if (!want)
		return 0;
	if (a->scanned + want > LF_WASTE_SCAN_TOTAL) {
		a->w->secrets_unscanned++;
		return 0;
	}
	n = lf_stack_read_file(a->stack, l, e, a->buf, probe, 0, &err);
	if (n <= 0)
		return 0;
	a->scanned += (size_t)n;
	if ((size_t)n < probe || want == probe ||
	    lf_secret_is_binary(a->buf, (size_t)n))
		return (size_t)n;
	want -= (size_t)n;
	n = lf_stack_read_file(a->stack, l, e, a->buf + probe, want, probe,
			       &err);
	if (n <= 0)
		return probe;
	a->scanned += (size_t)n;
	return probe + (size_t)n;
}

static int add_secret(struct lf_waste *w, size_t *cap, const char *path,
		      uint32_t layer, uint32_t hid, uint64_t size,
		      const struct lf_secret_hit *h)
{
	struct lf_waste_secret *s;

	if (w->nsecrets == *cap) {
		size_t nc = *cap ? *cap * 2 : 8;

		if (!(s = realloc(w->secrets, nc * sizeof(*s))))
			return -ENOMEM;
		w->secrets = s;
		*cap = nc;
	}
	s = &w->secrets[w->nsecrets];
	*s = (struct lf_waste_secret){ NULL,	  layer,   hid, size,
				       h->reason, h->rule, "" };
	memcpy(s->excerpt, h->excerpt, sizeof(s->excerpt));
	if (!(s->path = malloc(strlen(path) + 2)))
		return -ENOMEM;
	sprintf(s->path, "/%s", path);
	w->nsecrets++;
	return 0;
}

static int find_secrets(struct acc *a, enum lf_waste_secrets which)
{
	size_t l, i, cap = 0;
	int ret = 0;

	if (which == LF_WASTE_SECRETS_NONE)
		return 0;
	if (a->stack && !(a->buf = malloc(LF_SECRET_SCAN_BYTES)))
		return -ENOMEM;
	for (l = 0; l < a->n && !ret; l++) {
		const struct lf_index *x = a->idx[l];

		for (i = 0; i < lf_index_count(x) && !ret; i++) {
			const struct lf_idx_entry *e = lf_index_entry(x, i);
			const char *path = lf_index_path(x, e);
			uint32_t hid = a->hidden_at[a->base[l] + i];
			struct lf_secret_hit h;
			size_t n;

			if (e->kind != LF_KIND_REG || !e->size ||
			    (e->flags & LF_IDX_WHITEOUT) ||
			    (!hid && which != LF_WASTE_SECRETS_ALL))
				continue;
			n = a->stack ? scan_read(a, l, e) : 0;
			if (lf_secret_check(path, e->size, a->buf, n, &h))
				ret = add_secret(a->w, &cap, path,
						 (uint32_t)l + 1, hid, e->size,
						 &h);
		}
	}
	return ret;
}

static int cmp_cum(const void *x, const void *y)
{
	const struct pstat *a = *(struct pstat *const *)x;
	const struct pstat *b = *(struct pstat *const *)y;

	if (a->cum != b->cum)
		return a->cum < b->cum ? 1 : -1;
	return strcmp(a->path, b->path);
}

static int summarise(struct acc *a, size_t top)
{
	struct lf_waste *w = a->w;
	uint64_t sum_min = 0, sum_cum = 0;
	struct pstat **bad;
	size_t i, nbad = 0;

	bad = malloc((a->map.count ? a->map.count : 1) * sizeof(*bad));
	if (!bad)
		return -ENOMEM;
	for (i = 0; i < a->map.count; i++) {
		struct pstat *p = a->map.all[i];

		sum_min += p->min;
		sum_cum += p->cum;
		if (p->n >= 2) {
			w->wasted_bytes += p->cum;
			bad[nbad++] = p;
		}
	}
	w->efficiency = sum_cum ? (double)sum_min / (double)sum_cum : 1.0;
	for (i = 0; i < a->n; i++) {
		w->total_size += w->layers[i].added;
		if (i)
			w->user_size += w->layers[i].added;
	}
	w->wasted_user_ratio = w->user_size ? (double)w->wasted_bytes /
						      (double)w->user_size
					    : 0.0;
	if (nbad)
		qsort(bad, nbad, sizeof(*bad), cmp_cum);
	w->ntop = LF_MIN(nbad, top);
	w->top = calloc(w->ntop ? w->ntop : 1, sizeof(*w->top));
	for (i = 0; w->top && i < w->ntop; i++) {
		struct pstat *p = bad[i];
		struct lf_waste_path *t = &w->top[i];

		t->path = malloc(strlen(p->path) + 2);
		t->layers = malloc(p->n * sizeof(*t->layers));
		if (!t->path || !t->layers)
			break;
		sprintf(t->path, "/%s", p->path);
		memcpy(t->layers, p->layers, p->n * sizeof(*t->layers));
		t->nlayers = p->n;
		t->cumulative = p->cum;
		if (p->has_first)
			t->hidden_by = a->hidden_at[a->base[p->first_layer] +
						    p->first_entry];
	}
	free(bad);
	return w->top && i == w->ntop ? 0 : -ENOMEM;
}

static void acc_release(struct acc *a)
{
	size_t i;

	for (i = 0; i < a->map.count; i++) {
		struct pstat *p = a->map.all[i];

		if (p->own_path)
			free((char *)p->path);
		if (p->layers != p->l_in) {
			free(p->layers);
			free(p->sizes);
		}
	}
	for (i = 0; i < a->map.cap / PBLOCK; i++)
		free(a->map.blocks[i]);
	free(a->map.blocks);
	free(a->map.all);
	free(a->map.buckets);
	free(a->base);
	free(a->hidden_at);
	free(a->paths);
	free(a->buf);
}

/* full: dive's path accounting and secrets too, else per layer only. */
static int compute(struct lf_index *const *layers, const struct lf_stack *stack,
		   size_t n, size_t top, bool full, enum lf_waste_secrets which,
		   struct lf_waste **out, struct lf_err *err)
{
	struct acc a = { .idx = layers, .stack = stack, .n = n };
	struct lf_merge *merge = NULL;
	size_t l, i;
	int ret = -ENOMEM;

	a.w = calloc(1, sizeof(*a.w));
	a.base = calloc(n + 1, sizeof(*a.base));
	if (!a.w || !a.base)
		goto fail;
	for (l = 0; l < n; l++)
		a.base[l + 1] = a.base[l] + lf_index_count(layers[l]);
	a.hidden_at = calloc(a.base[n] + 1, sizeof(*a.hidden_at));
	a.w->nlayers = n;
	a.w->layers = calloc(n ? n : 1, sizeof(*a.w->layers));
	if (!a.hidden_at || !a.w->layers ||
	    lf_merge_new(layers, n, file_gone, &a, &merge))
		goto fail;
	for (l = 0; l < n; l++) {
		for (i = 0; i < lf_index_count(layers[l]); i++) {
			const struct lf_idx_entry *e = lf_index_entry(layers[l],
								      i);

			if (e->kind == LF_KIND_REG &&
			    !(e->flags & LF_IDX_WHITEOUT))
				a.w->layers[l].added += e->size;
		}
		if (full && (ret = dive_layer(&a, l, merge)))
			goto nomem;
		a.cur = l;
		if ((ret = lf_merge_apply(merge, err)))
			goto fail;
		free(a.paths);
		a.paths = NULL;
	}
	if (full &&
	    ((ret = find_secrets(&a, which)) || (ret = summarise(&a, top))))
		goto nomem;
	lf_merge_free(merge);
	acc_release(&a);
	*out = a.w;
	return 0;
nomem:
	lf_err_set(err, ret, "out of memory");
fail:
	if (ret == -ENOMEM && err && !err->code)
		lf_err_set(err, ret, "out of memory");
	lf_merge_free(merge);
	acc_release(&a);
	lf_waste_free(a.w);
	return ret;
}

int lf_waste_scan(const struct lf_stack *stack, size_t top,
		  enum lf_waste_secrets which, struct lf_waste **out,
		  struct lf_err *err)
{
	return compute(lf_stack_indexes(stack), stack, lf_stack_count(stack),
		       top, true, which, out, err);
}

int lf_waste_compute(const struct lf_stack *stack, size_t top,
		     struct lf_waste **out, struct lf_err *err)
{
	return lf_waste_scan(stack, top, LF_WASTE_SECRETS_HIDDEN, out, err);
}

int lf_waste_per_layer(struct lf_index *const *layers, size_t n,
		       struct lf_waste **out, struct lf_err *err)
{
	return compute(layers, NULL, n, 0, false, LF_WASTE_SECRETS_NONE, out,
		       err);
}

void lf_waste_free(struct lf_waste *w)
{
	size_t i;

	if (!w)
		return;
	for (i = 0; i < w->ntop; i++) {
		free(w->top[i].path);
		free(w->top[i].layers);
	}
	for (i = 0; i < w->nsecrets; i++)
		free(w->secrets[i].path);
	free(w->top);
	free(w->secrets);
	free(w->layers);
	free(w);
}

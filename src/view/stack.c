// SPDX-License-Identifier: MIT
/* stack.c - open images and directory lowers, index their layers in
 * parallel, merge them, open layer blobs on first use. */
#include "layerfs/stack.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layerfs/buf.h"
#include "layerfs/cache.h"
#include "layerfs/imgref.h"
#include "layerfs/index_remote.h"
#include "layerfs/log.h"
#include "layerfs/tree_cache.h"

/* Where layer i of the stack comes from: an image's layer, a directory
 * layer, or both (a containers-storage layer is its store's directory). */
struct stack_src {
	const struct lf_image_layer *layer;
	const char *dir;
};

struct lf_stack {
	struct lf_image *img;	/* IMAGE (may be NULL) */
	const char *name;	/* how messages name the stack */
	struct lf_image **imgs; /* images opened for lowers */
	size_t nimgs;
	struct stack_src *src; /* [n] */
	size_t n;	       /* layers in use (the prefix) */
	struct lf_index **idx; /* [n] */
	struct lf_tree *tree;  /* NULL unless asked for */
	struct lf_chunk_cache *cc;
	struct lf_blob **blobs;	   /* [n], opened lazily (atomic) */
	pthread_mutex_t blob_lock; /* serializes the opening */
	struct lf_buf cache_dir;
	char *name_copy;
};

struct progress {
	pthread_mutex_t lock;
	size_t n;
	_Atomic uint64_t *done; /* [n] bytes read per layer */
	uint64_t total;
	const struct lf_stack_opts *o;
};

struct slot {
	struct progress *pg;
	size_t i;
};

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct slot *s = ctx;
	struct progress *pg = s->pg;
	uint64_t sum = 0;
	size_t i;

	(void)total;
	atomic_store(&pg->done[s->i], done);
	if (!pg->o->progress || pthread_mutex_trylock(&pg->lock))
		return;
	for (i = 0; i < pg->n; i++)
		sum += atomic_load(&pg->done[i]);
	pg->o->progress(pg->o->progress_ctx, pg->n, sum, pg->total);
	pthread_mutex_unlock(&pg->lock);
}

struct job {
	struct lf_stack *ci;
	const struct lf_stack_opts *o;
	struct progress *pg;
	struct slot *slots;
	struct lf_err *errs; /* [n] */
	int *rets;	     /* [n] */
	size_t *order;	     /* [n] layer numbers, largest blob first */
	atomic_size_t next;
};

static void *index_worker(void *arg)
{
	struct job *j = arg;
	size_t k, i;

	while ((k = atomic_fetch_add(&j->next, 1)) < j->ci->n) {
		struct lf_index_opts io = { 0 };
		char label[64];

		i = j->order[k];
		snprintf(label, sizeof(label), "layer %zu", i + 1);
		io.cache_dir = lf_stack_cache_dir(j->ci);
		io.verify = j->o->verify;
		io.label = label;
		io.progress = on_progress;
		io.progress_ctx = &j->slots[i];
		if (j->ci->src[i].layer && j->ci->src[i].layer->dir_full)
			j->rets[i] = lf_index_open_rootfs(j->ci->src[i].dir,
							  label, &j->ci->idx[i],
							  &j->errs[i]);
		else if (j->ci->src[i].dir)
			j->rets[i] = lf_index_open_dir(j->ci->src[i].dir, label,
						       &j->ci->idx[i],
						       &j->errs[i]);
		else
			j->rets[i] = lf_index_open(j->ci->src[i].layer, &io,
						   &j->ci->idx[i], &j->errs[i]);
	}
	return NULL;
}

static uint64_t src_size(const struct stack_src *s)
{
	return s->layer && !s->dir ? s->layer->size : 0;
}

/*
 * Largest first: with more layers than cores, the longest job starting last
 * would leave the other cores idle at the end (the layer sizes are the
 * manifest's, known before any byte is read).
 */
static void order_by_size(const struct lf_stack *ci, size_t *order)
{
	size_t i, k;

	for (i = 0; i < ci->n; i++) {
		uint64_t sz = src_size(&ci->src[i]);

		for (k = i; k > 0 && src_size(&ci->src[order[k - 1]]) < sz; k--)
			order[k] = order[k - 1];
		order[k] = i;
	}
}

/* Index layers 0..n-1 on all cores; the first failing layer is reported. */
static int index_layers(struct lf_stack *ci, const struct lf_stack_opts *o,
			struct lf_err *err)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	size_t nthreads = ncpu > 0 ? (size_t)ncpu : 1, i, t;
	struct progress pg = { .n = ci->n, .o = o };
	struct job j = { .ci = ci, .o = o, .pg = &pg };
	pthread_t *th = NULL;
	int ret = -ENOMEM;

	pthread_mutex_init(&pg.lock, NULL);
	pg.done = calloc(ci->n ? ci->n : 1, sizeof(*pg.done));
	j.slots = calloc(ci->n ? ci->n : 1, sizeof(*j.slots));
	j.errs = calloc(ci->n ? ci->n : 1, sizeof(*j.errs));
	j.rets = calloc(ci->n ? ci->n : 1, sizeof(*j.rets));
	j.order = calloc(ci->n ? ci->n : 1, sizeof(*j.order));
	if (nthreads > ci->n)
		nthreads = ci->n;
	th = calloc(nthreads ? nthreads : 1, sizeof(*th));
	if (!pg.done || !j.slots || !j.errs || !j.rets || !j.order || !th) {
		lf_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < ci->n; i++) {
		j.slots[i] = (struct slot){ &pg, i };
		pg.total += src_size(&ci->src[i]);
	}
	order_by_size(ci, j.order);
	for (t = 0; t < nthreads; t++)
		if (pthread_create(&th[t], NULL, index_worker, &j))
			break;
	if (t == 0)
		index_worker(&j); /* no threads: do it here */
	for (i = 0; i < t; i++)
		pthread_join(th[i], NULL);
	ret = 0;
	for (i = 0; i < ci->n; i++) {
		if (j.rets[i]) {
			ret = lf_err_set(err, j.rets[i], "%s: %s", ci->name,
					 j.errs[i].msg);
			break;
		}
	}
out:
	pthread_mutex_destroy(&pg.lock);
	free(pg.done);
	free(j.slots);
	free(j.errs);
	free(j.rets);
	free(j.order);
	free(th);
	return ret;
}

/* A lowerdir element: an image (archive file or OCI layout) or a dir? */
static bool is_image(const char *path)
{
	struct stat st;
	char buf[4096];

	if (stat(path, &st) < 0) {
		/* oci:DIR, docker-archive:FILE...: an image by its name */
		struct lf_imgref r;
		struct lf_err err = { 0 };
		bool named = !lf_imgref_parse(path, &r, &err) &&
			     r.kind != LF_IMGREF_PATH;

		if (!err.code)
			lf_imgref_release(&r);
		return named || err.code;
	}
	if (S_ISREG(st.st_mode))
		return true;
	snprintf(buf, sizeof(buf), "%s/oci-layout", path);
	return access(buf, F_OK) == 0;
}

static int add_src(struct lf_stack *ci, size_t *cap, struct stack_src s)
{
	if (ci->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		struct stack_src *p = realloc(ci->src, nc * sizeof(*p));

		if (!p)
			return -ENOMEM;
		ci->src = p;
		*cap = nc;
	}
	if (s.dir && !(s.dir = strdup(s.dir)))
		return -ENOMEM;
	ci->src[ci->n++] = s;
	return 0;
}

/* docker://: the indexes the registry shares for the first n layers of img
 * that are not in the cache yet (index_remote.h); a failure costs speed. */
static void remote_indexes(const struct lf_stack_opts *o,
			   const struct lf_stack *ci,
			   const struct lf_image *img, size_t n)
{
	struct lf_remote_fetch rf;
	struct lf_err e = { 0 };

	if (o->no_remote_index || !lf_image_registry(img) ||
	    !lf_stack_cache_dir(ci))
		return;
	if (lf_index_remote_fetch(img, n, lf_stack_cache_dir(ci), &rf, &e))
		lf_log(LF_LOG_WARN, "%s", e.msg);
	else if (rf.found)
		lf_log(LF_LOG_DEBUG,
		       "%s: %zu layer index%s from artifact %s (%llu "
		       "requests, %llu bytes)",
		       lf_image_path(img), rf.installed,
		       rf.installed == 1 ? "" : "es", rf.digest,
		       (unsigned long long)rf.requests,
		       (unsigned long long)rf.bytes);
}

/* The layers of IMAGE's prefix, then each lower (bottom first). */
static int gather(const struct lf_stack_opts *o, const char *path,
		  struct lf_stack *ci, struct lf_err *err)
{
	struct lf_image_opts io = { .ref = o->ref,
				    .platform = o->platform,
				    .cache_dir = lf_stack_cache_dir(ci),
				    .no_tls_verify = o->no_tls_verify,
				    .cache_max = o->cache_max,
				    .creds = o->creds,
				    .cert_dir = o->cert_dir };
	size_t cap = 0, count, n, i, k;
	int ret;

	if (path) {
		if ((ret = lf_image_open(path, &io, &ci->img, err)))
			return ret;
		count = n = lf_image_layer_count(ci->img);
		if (o->layers) {
			long want = o->layers > 0 ? o->layers
						  : (long)count + o->layers;

			if (o->layers > (long)count || want < 1)
				return lf_err_set(err, -ERANGE,
						  "--layers %ld: '%s' has %zu "
						  "layer%s",
						  o->layers, path, count,
						  count == 1 ? "" : "s");
			n = (size_t)want;
		}
		remote_indexes(o, ci, ci->img, n);
		for (i = 0; i < n; i++)
			if (add_src(ci, &cap,
				    (struct stack_src){
					    lf_image_layer(ci->img, i),
					    lf_image_layer(ci->img, i)->dir }))
				goto nomem;
	}
	ci->imgs = calloc(o->nlowers ? o->nlowers : 1, sizeof(*ci->imgs));
	if (!ci->imgs)
		goto nomem;
	/* lowerdir order: the first one is the top */
	for (k = o->nlowers; k-- > 0;) {
		const char *l = o->lowers[k];

		if (!is_image(l)) {
			if (add_src(ci, &cap, (struct stack_src){ NULL, l }))
				goto nomem;
			continue;
		}
		if ((ret = lf_image_open(l, &io, &ci->imgs[ci->nimgs], err)))
			return ret;
		n = lf_image_layer_count(ci->imgs[ci->nimgs]);
		remote_indexes(o, ci, ci->imgs[ci->nimgs], n);
		for (i = 0; i < n; i++)
			if (add_src(ci, &cap,
				    (struct stack_src){
					    lf_image_layer(ci->imgs[ci->nimgs],
							   i),
					    lf_image_layer(ci->imgs[ci->nimgs],
							   i)
						    ->dir }))
				goto nomem;
		ci->nimgs++;
	}
	return 0;
nomem:
	return lf_err_set(err, -ENOMEM, "out of memory");
}

static int stack_open(const char *path, const struct lf_stack_opts *o,
		      struct lf_stack *ci, struct lf_err *err)
{
	struct lf_err werr = { 0 };
	int ret;

	ci->name_copy = strdup(path ? path : "lowerdir");
	if (!ci->name_copy)
		return lf_err_set(err, -ENOMEM, "out of memory");
	ci->name = ci->name_copy;
	if (o->cache_dir && lf_buf_adds(&ci->cache_dir, o->cache_dir))
		return lf_err_set(err, -ENOMEM, "out of memory");
	if (ci->cache_dir.len && lf_cache_mkdir(ci->cache_dir.data, &werr)) {
		/* one warning, not one per layer: speed is lost, not data */
		lf_log(LF_LOG_WARN, "%s; working without a cache", werr.msg);
		lf_buf_reset(&ci->cache_dir);
	}
	/* after the cache dir: a gzip'd archive keeps its checkpoints there */
	if ((ret = gather(o, path, ci, err)))
		return ret;
	ci->idx = calloc(ci->n ? ci->n : 1, sizeof(*ci->idx));
	ci->blobs = calloc(ci->n ? ci->n : 1, sizeof(*ci->blobs));
	if (!ci->idx || !ci->blobs ||
	    lf_chunk_cache_new(LF_CHUNK_CACHE_DEFAULT, &ci->cc))
		return lf_err_set(err, -ENOMEM, "out of memory");
	if ((ret = index_layers(ci, o, err)))
		return ret;
	if (o->want_tree &&
	    (ret = lf_tree_open(ci->idx, ci->n, lf_stack_cache_dir(ci),
				&ci->tree, &werr)))
		return lf_err_set(err, ret, "%s: %s", ci->name, werr.msg);
	return 0;
}

int lf_stack_open(const char *path, const struct lf_stack_opts *opts,
		  struct lf_stack **out, struct lf_err *err)
{
	struct lf_stack *s = calloc(1, sizeof(*s));
	int ret;

	*out = NULL;
	if (!s)
		return lf_err_set(err, -ENOMEM, "out of memory");
	lf_buf_init(&s->cache_dir);
	pthread_mutex_init(&s->blob_lock, NULL);
	if ((ret = stack_open(path, opts, s, err))) {
		lf_stack_close(s);
		return ret;
	}
	*out = s;
	return 0;
}

struct lf_blob *lf_stack_blob(const struct lf_stack *cs, size_t i,
			      struct lf_err *err)
{
	/* opening mutates only the lazily filled blob slots and their lock;
	 * a stack is always allocated by lf_stack_open(), never const */
	struct lf_stack *s = (struct lf_stack *)cs;
	struct lf_blob *b = __atomic_load_n(&s->blobs[i], __ATOMIC_ACQUIRE);

	if (b)
		return b;
	pthread_mutex_lock(&s->blob_lock);
	b = __atomic_load_n(&s->blobs[i], __ATOMIC_ACQUIRE);
	if (!b && !lf_blob_open(s->src[i].layer ? s->src[i].layer->blob : NULL,
				s->idx[i], s->cc, &b, err))
		__atomic_store_n(&s->blobs[i], b, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&s->blob_lock);
	return __atomic_load_n(&s->blobs[i], __ATOMIC_ACQUIRE);
}

int lf_stack_tree_prefix(const struct lf_stack *s, size_t n,
			 struct lf_tree **out, struct lf_err *err)
{
	return lf_tree_open(s->idx, n, lf_stack_cache_dir(s), out, err);
}

const char *lf_stack_name(const struct lf_stack *s)
{
	return s->name;
}

const struct lf_image *lf_stack_image(const struct lf_stack *s)
{
	return s->img;
}

const char *lf_stack_cache_dir(const struct lf_stack *s)
{
	return s->cache_dir.len ? s->cache_dir.data : NULL;
}

size_t lf_stack_count(const struct lf_stack *s)
{
	return s->n;
}

struct lf_index *lf_stack_index(const struct lf_stack *s, size_t i)
{
	return s->idx[i];
}

struct lf_index *const *lf_stack_indexes(const struct lf_stack *s)
{
	return s->idx;
}

const struct lf_image_layer *lf_stack_layer(const struct lf_stack *s, size_t i)
{
	return s->src[i].layer;
}

ssize_t lf_stack_read_file(const struct lf_stack *s, size_t i,
			   const struct lf_idx_entry *e, void *buf, size_t len,
			   uint64_t off, struct lf_err *err)
{
	struct lf_blob *b = lf_stack_blob(s, i, err);

	return b ? lf_blob_read_file(b, e, buf, len, off, err) : -EIO;
}

struct lf_tree *lf_stack_tree(const struct lf_stack *s)
{
	return s->tree;
}

void lf_stack_close(struct lf_stack *s)
{
	size_t i;

	if (!s)
		return;
	lf_tree_free(s->tree);
	for (i = 0; s->idx && i < s->n; i++) {
		if (s->blobs)
			lf_blob_close(s->blobs[i]);
		lf_index_close(s->idx[i]);
	}
	for (i = 0; s->src && i < s->n; i++)
		free((char *)s->src[i].dir);
	free(s->idx);
	free(s->blobs);
	lf_chunk_cache_free(s->cc);
	lf_image_close(s->img);
	for (i = 0; i < s->nimgs; i++)
		lf_image_close(s->imgs[i]);
	free(s->imgs);
	free(s->src);
	lf_buf_release(&s->cache_dir);
	pthread_mutex_destroy(&s->blob_lock);
	free(s->name_copy);
	free(s);
}

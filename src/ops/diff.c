// SPDX-License-Identifier: MIT
/* diff.c - A/C/D changes between two views (prefixes, or a prefix + upper). */
#include "layerfs/diff.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "layerfs/buf.h"
#include "layerfs/digest.h"

#define READ_CHUNK (1u << 20)

struct walk {
	const struct lf_mview *a, *b;
	lf_diff_fn fn;
	void *ctx;
	struct lf_err *err;
	struct lf_buf path;
	char *buf; /* READ_CHUNK bytes for content hashing */
};

/*
 * lf_mview_lookup() for a walk: a name that is gone (-ENOENT) is not there;
 * any other failure (a limit of the upper dir, an I/O error) is an error,
 * so a walk never reports a shorter tree than there is without saying so.
 */
static int obj_find(const struct lf_mview *v, uint64_t dir, const char *name,
		    struct lf_mobj *o, bool *found)
{
	int ret = lf_mview_lookup(v, dir, name, o);

	*found = !ret;
	return ret == -ENOENT ? 0 : ret;
}

/* One xattr as a record "name\0len:value" of a view's xattr string. */
static int xattr_rec(void *ctx, const char *name, const void *value, size_t len)
{
	struct lf_buf *out = ctx;

	if (lf_buf_adds(out, name) || lf_buf_addch(out, 0) ||
	    lf_buf_addf(out, "%zu:", len) || lf_buf_add(out, value, len))
		return -ENOMEM;
	return 0;
}

/* Tree xattr order is tar order and upper order is the filesystem's: compare
 * the records as sets. */
static bool same_xattrs(struct walk *w, const struct lf_mobj *a,
			const struct lf_mobj *b)
{
	struct lf_buf xa, xb;
	bool same;

	lf_buf_init(&xa);
	lf_buf_init(&xb);
	if (lf_mview_xattrs(w->a, a, xattr_rec, &xa) ||
	    lf_mview_xattrs(w->b, b, xattr_rec, &xb)) {
		same = false;
	} else if (xa.len == xb.len && !memcmp(xa.data, xb.data, xa.len)) {
		same = true;
	} else {
		/* different order or content: compare as sets by length sum
		 * and membership of every record of a in b */
		const char *p = xa.data, *end = xa.data + xa.len;

		same = xa.len == xb.len;
		while (same && p < end) {
			const char *name = p, *lenp = p + strlen(p) + 1;
			size_t vlen = strtoul(lenp, NULL, 10);
			const char *val = strchr(lenp, ':') + 1;
			size_t rec = (size_t)(val + vlen - name);

			same = memmem(xb.data, xb.len, name, rec) != NULL;
			p = val + vlen;
		}
	}
	lf_buf_release(&xa);
	lf_buf_release(&xb);
	return same;
}

/* Tree objects of two stacks whose data is the same extent of layers with
 * one blob digest (a base layer two images share). */
static bool same_blob_data(const struct walk *w, const struct lf_mobj *a,
			   const struct lf_mobj *b)
{
	const struct lf_image_layer *la, *lb;

	if (!a->entry || !b->entry || w->a->stack == w->b->stack)
		return false;
	la = lf_stack_layer(w->a->stack, a->layer);
	lb = lf_stack_layer(w->b->stack, b->layer);
	/* blobs only: a directory layer's offsets are its walk's */
	return la && lb && !la->dir && !lb->dir && la->digest[0] &&
	       !strcmp(la->digest, lb->digest) &&
	       a->entry->data_off == b->entry->data_off &&
	       a->entry->size == b->entry->size &&
	       a->entry->sparse_count == b->entry->sparse_count &&
	       a->entry->sparse_first == b->entry->sparse_first;
}

static int hash_obj(struct walk *w, const struct lf_mview *v,
		    const struct lf_mobj *o, char out[LF_DIGEST_LEN])
{
	struct lf_mview_file f;
	struct lf_sha256 *h;
	struct lf_err e;
	uint64_t off = 0;
	ssize_t n;
	int ret;

	if ((ret = lf_sha256_new(&h)))
		return ret;
	ret = lf_mview_open(v, o, &f);
	while (!ret) {
		n = lf_mview_read(&f, w->buf, READ_CHUNK, off, &e);
		if (n < 0)
			ret = (int)n;
		if (n <= 0)
			break;
		lf_sha256_update(h, w->buf, (size_t)n);
		off += (uint64_t)n;
	}
	lf_mview_close(&f);
	lf_sha256_final(h, out);
	lf_sha256_free(h);
	return ret;
}

static int same_link(struct walk *w, const struct lf_mobj *a,
		     const struct lf_mobj *b, bool *out)
{
	char *ba = NULL, *bb = NULL;
	const char *la, *lb;
	int ret;

	if (!(ret = lf_mview_readlink(w->a, a, &ba, &la)) &&
	    !(ret = lf_mview_readlink(w->b, b, &bb, &lb)))
		*out = strcmp(la, lb) == 0;
	free(ba);
	free(bb);
	return ret;
}

static int changed(struct walk *w, const struct lf_mobj *a,
		   const struct lf_mobj *b, bool *out)
{
	const struct stat *x = &a->st, *y = &b->st;
	char ha[LF_DIGEST_LEN], hb[LF_DIGEST_LEN];
	bool same;
	int ret;

	*out = true;
	if ((x->st_mode & S_IFMT) != (y->st_mode & S_IFMT) ||
	    (x->st_mode & 07777) != (y->st_mode & 07777) ||
	    x->st_uid != y->st_uid || x->st_gid != y->st_gid ||
	    x->st_mtim.tv_sec != y->st_mtim.tv_sec ||
	    x->st_mtim.tv_nsec != y->st_mtim.tv_nsec)
		return 0;
	if (!S_ISDIR(x->st_mode) && x->st_size != y->st_size)
		return 0;
	if ((S_ISCHR(x->st_mode) || S_ISBLK(x->st_mode)) &&
	    x->st_rdev != y->st_rdev)
		return 0;
	if (!same_xattrs(w, a, b))
		return 0;
	if (S_ISLNK(x->st_mode)) {
		if ((ret = same_link(w, a, b, &same)))
			return ret;
		*out = !same;
		return 0;
	}
	*out = false;
	if (!S_ISREG(x->st_mode))
		return 0;
	/* the same tree entry holds the same bytes; an object the upper dir
	 * does not hold is the lower one, unchanged */
	if (!w->a->upper && !w->b->upper && a->entry == b->entry)
		return 0;
	/* two images (or stacks) sharing a layer: the same blob holds the
	 * same bytes at the same offset */
	if (!w->a->upper && !w->b->upper && same_blob_data(w, a, b))
		return 0;
	if (w->b->upper && !b->in_upper)
		return 0;
	if ((ret = hash_obj(w, w->a, a, ha)) ||
	    (ret = hash_obj(w, w->b, b, hb)))
		return ret;
	*out = strcmp(ha, hb) != 0;
	return 0;
}

static int emit(struct walk *w, char kind, const struct lf_mobj *o,
		uint64_t size)
{
	struct lf_diff_change c = { kind, w->path.data, o->st.st_mode, size };

	return w->fn(w->ctx, &c);
}

static uint64_t file_bytes(const struct lf_mobj *o)
{
	return S_ISREG(o->st.st_mode) ? (uint64_t)o->st.st_size : 0;
}

/* Bytes of regular files in a subtree of view a (for D of a dir). */
static int add_bytes(void *ctx, const struct lf_buf *path,
		     const struct lf_mobj *o)
{
	(void)path;
	*(uint64_t *)ctx += file_bytes(o);
	return 0;
}

/* Everything below an added directory is added. */
static int add_one(void *ctx, const struct lf_buf *path,
		   const struct lf_mobj *o)
{
	struct walk *w = ctx;

	(void)path; /* w->path */
	return emit(w, 'A', o, file_bytes(o));
}

/*
 * The walk of the two views is iterative: a pair of directories being
 * compared is a frame on a heap stack, so a 20,000-level chain costs heap,
 * not C stack.  A frame holds the sorted names of its directory on each
 * side and the references its directories hold (upper views).  What only
 * one side has is walked by lf_mview_walk(), iterative too.
 */
struct frame {
	struct lf_mobj da, db; /* the directories compared */
	char **na, **nb;       /* their sorted names */
	size_t ca, cb, i, j;   /* counts, next index into na / nb */
	size_t plen;	       /* w->path length to restore on pop */
};

struct stack {
	struct frame *f;
	size_t n, cap;
};

/* Push the pair (da, db), whose references the frame takes in all cases,
 * reading and sorting their names; popping it restores w->path to plen. */
static int frame_push(struct walk *w, struct stack *s, const struct lf_mobj *da,
		      const struct lf_mobj *db, size_t plen)
{
	struct frame *f;
	int ret;

	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 64;
		struct frame *p = realloc(s->f, nc * sizeof(*p));

		if (!p) {
			struct lf_mobj a = *da, b = *db;

			lf_mview_put(w->a, &a);
			lf_mview_put(w->b, &b);
			return -ENOMEM;
		}
		s->f = p;
		s->cap = nc;
	}
	f = &s->f[s->n++];
	*f = (struct frame){ .da = *da, .db = *db, .plen = plen };
	ret = lf_mview_names(w->a, da->id, &f->na, &f->ca);
	if (!ret)
		ret = lf_mview_names(w->b, db->id, &f->nb, &f->cb);
	return ret;
}

static void frame_pop(struct walk *w, struct stack *s)
{
	struct frame *f = &s->f[--s->n];

	lf_buf_setlen(&w->path, f->plen);
	lf_mview_names_free(f->na, f->ca);
	lf_mview_names_free(f->nb, f->cb);
	lf_mview_put(w->a, &f->da);
	lf_mview_put(w->b, &f->db);
}

/* A: the object, and the subtree of a directory. */
static int added(struct walk *w, const struct lf_mobj *b)
{
	int ret = emit(w, 'A', b, file_bytes(b));

	if (!ret && S_ISDIR(b->st.st_mode))
		ret = lf_mview_walk(w->b, b->id, &w->path, add_one, w);
	return ret;
}

/* D: one line, with the bytes of the files below a directory. */
static int deleted(struct walk *w, const struct lf_mobj *a)
{
	uint64_t bytes = file_bytes(a);
	size_t len = w->path.len;
	int ret = 0;

	if (S_ISDIR(a->st.st_mode))
		ret = lf_mview_walk(w->a, a->id, &w->path, add_bytes, &bytes);
	if (!ret) {
		lf_buf_setlen(&w->path, len);
		ret = emit(w, 'D', a, bytes);
	}
	return ret;
}

/* One name present on either side of a compared directory. */
static int diff_one(struct walk *w, struct stack *s, uint64_t da, uint64_t db,
		    const char *name)
{
	struct lf_mobj a, b;
	bool ha = false, hb = false, ch = false;
	size_t old = w->path.len;
	int ret = 0;

	if (lf_buf_addch(&w->path, '/') || lf_buf_adds(&w->path, name))
		return -ENOMEM;
	ret = obj_find(w->a, da, name, &a, &ha);
	if (!ret)
		ret = obj_find(w->b, db, name, &b, &hb);
	if (ret) {
		/* the path names the failed entry in the message */
		if (ha)
			lf_mview_put(w->a, &a);
		return ret;
	}
	if (ha && !hb) {
		ret = deleted(w, &a);
	} else if (!ha && hb) {
		ret = added(w, &b);
	} else if (ha && hb) {
		/* with an upper dir, what it does not hold is the image */
		if (w->b->upper && !b.in_upper)
			goto out;
		ret = changed(w, &a, &b, &ch);
		if (!ret && ch)
			ret = emit(w, 'C', &b, file_bytes(&b));
		if (ret || !S_ISDIR(b.st.st_mode))
			goto out;
		if (S_ISDIR(a.st.st_mode))
			/* the frame restores the path and drops a and b */
			return frame_push(w, s, &a, &b, old);
		ret = lf_mview_walk(w->b, b.id, &w->path, add_one, w);
	}
out:
	if (!ret)
		lf_buf_setlen(&w->path, old);
	if (ha)
		lf_mview_put(w->a, &a);
	if (hb)
		lf_mview_put(w->b, &b);
	return ret;
}

/* The next name of a compared directory: the two sorted lists merged. */
static int diff_next(struct walk *w, struct stack *s, struct frame *f)
{
	int c = f->i == f->ca	? 1
		: f->j == f->cb ? -1
				: strcmp(f->na[f->i], f->nb[f->j]);
	const char *name = c <= 0 ? f->na[f->i] : f->nb[f->j];

	if (c <= 0)
		f->i++;
	if (c >= 0)
		f->j++;
	/* frame_push may move the stack: f is not used after this call */
	return diff_one(w, s, f->da.id, f->db.id, name);
}

int lf_diff_run(const struct lf_mview *a, const struct lf_mview *b,
		lf_diff_fn fn, void *ctx, struct lf_err *err)
{
	struct walk w = { a, b, fn, ctx, err, { 0 }, NULL };
	/* the roots: the views hold them, the frame takes no reference */
	struct lf_mobj ra = { 0 }, rb = { 0 };
	struct stack s = { 0 };
	int ret;

	ra.id = rb.id = LF_MVIEW_ROOT;
	lf_buf_init(&w.path);
	w.buf = malloc(READ_CHUNK);
	if (!w.buf)
		return lf_err_set(err, -ENOMEM, "out of memory");
	ret = frame_push(&w, &s, &ra, &rb, 0);
	while (!ret && s.n) {
		struct frame *f = &s.f[s.n - 1];

		if (f->i < f->ca || f->j < f->cb)
			ret = diff_next(&w, &s, f);
		else
			frame_pop(&w, &s);
	}
	/* only long paths are cut, and the message says so by its "..." */
	if (ret && err && !err->code)
		lf_err_set(err, ret, "diff failed at '%.200s%s': %s",
			   w.path.len ? w.path.data : "/",
			   w.path.len > 200 ? "..." : "", strerror(-ret));
	while (s.n)
		frame_pop(&w, &s);
	free(s.f);
	free(w.buf);
	lf_buf_release(&w.path);
	return ret;
}

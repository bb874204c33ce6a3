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

/* What one side says about one path. */
struct obj {
	uint64_t id; /* tree inode or upper node (0: absent) */
	struct stat st;
	bool in_upper; /* upper views: the object is in the upper dir */
	int layer;     /* tree objects: where the data is (-1: none) */
	const struct lf_idx_entry *entry;
};

struct walk {
	const struct lf_diff_view *a, *b;
	lf_diff_fn fn;
	void *ctx;
	struct lf_err *err;
	struct lf_buf path;
	char *buf; /* READ_CHUNK bytes for content hashing */
};

static int obj_get(const struct lf_diff_view *v, uint64_t dir, const char *name,
		   struct obj *o)
{
	struct lf_tree_attr a;
	uint64_t ino;
	int ret;

	memset(o, 0, sizeof(*o));
	o->layer = -1;
	if (v->upper) {
		ret = lf_upper_lookup(v->upper, dir, name, &o->id, &o->st);
		if (ret)
			return ret;
		return lf_upper_in_upper(v->upper, o->id, &o->in_upper);
	}
	ret = lf_tree_lookup(v->tree, dir, name, strlen(name), &ino);
	if (ret)
		return ret;
	lf_tree_getattr(v->tree, ino, &a);
	o->id = ino;
	o->st.st_ino = ino;
	o->st.st_mode = a.mode;
	o->st.st_uid = a.uid;
	o->st.st_gid = a.gid;
	o->st.st_size = (off_t)a.size;
	o->st.st_mtim.tv_sec = a.mtime;
	o->st.st_mtim.tv_nsec = a.mtime_nsec;
	o->st.st_rdev = ((dev_t)a.rdev_major << 20) | a.rdev_minor;
	o->layer = a.layer;
	o->entry = a.entry;
	return 0;
}

/*
 * obj_get() for a walk: a name that is gone (-ENOENT) is not there; any
 * other failure (a limit of the upper dir, an I/O error) is an error, so a
 * walk never reports a shorter tree than there is without saying so.
 */
static int obj_find(const struct lf_diff_view *v, uint64_t dir,
		    const char *name, struct obj *o, bool *found)
{
	int ret = obj_get(v, dir, name, o);

	*found = !ret;
	return ret == -ENOENT ? 0 : ret;
}

static void obj_put(const struct lf_diff_view *v, struct obj *o)
{
	if (v->upper && o->id)
		lf_upper_forget(v->upper, o->id, 1);
	o->id = 0;
}

static int cmp_name(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Names in a directory, sorted (byte order); *names is malloc'd. */
static int list(const struct lf_diff_view *v, uint64_t dir, char ***names,
		size_t *n)
{
	size_t cap = 0, i;
	char **arr = NULL;
	uint64_t dh = 0;
	int ret = 0;

	*n = 0;
	if (v->upper && (ret = lf_upper_opendir(v->upper, dir, &dh)))
		return ret;
	for (i = 0;; i++) {
		struct lf_upper_dirent d;
		const char *nm;
		size_t len;
		uint64_t ino;

		if (v->upper) {
			if (lf_upper_readdir(v->upper, dh, i, &d))
				break;
			nm = d.name;
			len = strlen(nm);
		} else {
			if (i >= lf_tree_dir_count(v->tree, dir))
				break;
			lf_tree_dir_entry(v->tree, dir, i, &nm, &len, &ino);
		}
		if (*n == cap) {
			size_t nc = cap ? cap * 2 : 32;
			char **p = realloc(arr, nc * sizeof(*p));

			if (!p) {
				ret = -ENOMEM;
				break;
			}
			arr = p;
			cap = nc;
		}
		if (!(arr[*n] = strndup(nm, len))) {
			ret = -ENOMEM;
			break;
		}
		(*n)++;
	}
	if (v->upper)
		lf_upper_releasedir(v->upper, dh);
	if (*n)
		qsort(arr, *n, sizeof(*arr), cmp_name);
	*names = arr;
	return ret;
}

static void free_names(char **names, size_t n)
{
	while (n--)
		free(names[n]);
	free(names);
}

/* xattrs as one sorted "name\0len value..." string, for comparison. */
static int xattr_blob(const struct lf_diff_view *v, const struct obj *o,
		      struct lf_buf *out)
{
	char list[65536], val[65536];
	const char *p;
	ssize_t n, vl;
	size_t k;

	lf_buf_reset(out);
	if (!v->upper) {
		/* tree xattrs come in tar order, which is stable per entry */
		for (k = 0; k < lf_tree_xattr_count(v->tree, o->id); k++) {
			const char *xn;
			const void *xv;
			size_t len;

			lf_tree_xattr(v->tree, o->id, k, &xn, &xv, &len);
			if (lf_buf_adds(out, xn) || lf_buf_addch(out, 0) ||
			    lf_buf_addf(out, "%zu:", len) ||
			    lf_buf_add(out, xv, len))
				return -ENOMEM;
		}
		return 0;
	}
	n = lf_upper_listxattr(v->upper, o->id, list, sizeof(list));
	for (p = list; n > 0 && p < list + n; p += strlen(p) + 1) {
		vl = lf_upper_getxattr(v->upper, o->id, p, val, sizeof(val));
		if (vl < 0)
			continue;
		if (lf_buf_adds(out, p) || lf_buf_addch(out, 0) ||
		    lf_buf_addf(out, "%zd:", vl) ||
		    lf_buf_add(out, val, (size_t)vl))
			return -ENOMEM;
	}
	return 0;
}

/* Tree xattr order is tar order and upper order is the filesystem's: sort
 * records before comparing (records are name\0len:value). */
static bool same_xattrs(struct walk *w, const struct obj *a,
			const struct obj *b)
{
	struct lf_buf xa, xb;
	bool same;

	lf_buf_init(&xa);
	lf_buf_init(&xb);
	if (xattr_blob(w->a, a, &xa) || xattr_blob(w->b, b, &xb)) {
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

static int hash_obj(struct walk *w, const struct lf_diff_view *v,
		    const struct obj *o, char out[LF_DIGEST_LEN])
{
	struct lf_sha256 *h;
	struct lf_err e;
	uint64_t fh = 0, off = 0;
	const struct lf_idx_entry *ent;
	size_t layer;
	ssize_t n;
	int ret;

	if ((ret = lf_sha256_new(&h)))
		return ret;
	if (v->upper)
		ret = lf_upper_open(v->upper, o->id, O_RDONLY, &fh);
	else
		ret = lf_tree_data(v->tree, o->id, &layer, &ent);
	while (!ret) {
		if (v->upper)
			n = lf_upper_read(v->upper, fh, w->buf, READ_CHUNK,
					  (off_t)off);
		else
			n = lf_stack_read_file(v->stack, layer, ent, w->buf,
					       READ_CHUNK, off, &e);
		if (n < 0)
			ret = (int)n;
		if (n <= 0)
			break;
		lf_sha256_update(h, w->buf, (size_t)n);
		off += (uint64_t)n;
	}
	if (v->upper && fh)
		lf_upper_release(v->upper, fh);
	lf_sha256_final(h, out);
	lf_sha256_free(h);
	return ret;
}

/* Compare two symlink targets.  Tree targets are compared in place (a tar
 * target may be any length); an upper target is read into a buffer that
 * grows until the target fits, so a long one is never cut. */
static int read_link(const struct lf_diff_view *v, const struct obj *o,
		     char **buf, const char **out)
{
	size_t size = 4096;
	char *p;
	int ret;

	if (!v->upper) {
		*out = lf_tree_readlink(v->tree, o->id);
		if (!*out)
			*out = "";
		return 0;
	}
	for (;;) {
		if (!(p = realloc(*buf, size)))
			return -ENOMEM;
		*buf = p;
		if ((ret = lf_upper_readlink(v->upper, o->id, p, size)))
			return ret;
		if (strlen(p) < size - 1)
			break;
		if (size >= (size_t)1 << 30)
			return -ENAMETOOLONG;
		size *= 2;
	}
	*out = p;
	return 0;
}

static int same_link(struct walk *w, const struct obj *a, const struct obj *b,
		     bool *out)
{
	char *ba = NULL, *bb = NULL;
	const char *la, *lb;
	int ret;

	if (!(ret = read_link(w->a, a, &ba, &la)) &&
	    !(ret = read_link(w->b, b, &bb, &lb)))
		*out = strcmp(la, lb) == 0;
	free(ba);
	free(bb);
	return ret;
}

static int changed(struct walk *w, const struct obj *a, const struct obj *b,
		   bool *out)
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
	if (w->b->upper && !b->in_upper)
		return 0;
	if ((ret = hash_obj(w, w->a, a, ha)) ||
	    (ret = hash_obj(w, w->b, b, hb)))
		return ret;
	*out = strcmp(ha, hb) != 0;
	return 0;
}

static int emit(struct walk *w, char kind, const struct obj *o, uint64_t size)
{
	struct lf_diff_change c = { kind, w->path.data, o->st.st_mode, size };

	return w->fn(w->ctx, &c);
}

static int push(struct walk *w, const char *name, size_t *old)
{
	*old = w->path.len;
	if (lf_buf_addch(&w->path, '/') || lf_buf_adds(&w->path, name))
		return -ENOMEM;
	return 0;
}

/*
 * The walk is iterative: a directory being compared (or listed because it
 * was added) is a frame on a heap stack, so a 20,000-level chain costs
 * heap, not C stack.  A frame holds the sorted names of its directory on
 * each side and the node references its directories hold (upper views).
 */
enum frame_kind { F_DIFF, F_ADDED, F_BYTES };

struct frame {
	enum frame_kind kind;
	uint64_t da, db;     /* the directory on each side (F_ADDED: db;
				 * F_BYTES: da) */
	char **na, **nb;     /* sorted names (F_ADDED: nb only) */
	size_t ca, cb, i, j; /* counts, next index into na / nb */
	size_t plen;	     /* w->path length to restore on pop */
	bool put_a, put_b;   /* da / db hold a reference to drop on pop */
};

struct stack {
	struct frame *f;
	size_t n, cap;
};

/* Push a frame for directory da (view a) and/or db (view b), reading and
 * sorting its names; popping it restores w->path to plen.  Takes the
 * references (put_a/put_b) in all cases. */
static int frame_push(struct walk *w, struct stack *s, enum frame_kind kind,
		      uint64_t da, uint64_t db, bool put_a, bool put_b,
		      size_t plen)
{
	struct frame *f;
	int ret = 0;

	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 64;
		struct frame *p = realloc(s->f, nc * sizeof(*p));

		if (!p) {
			ret = -ENOMEM;
			goto fail;
		}
		s->f = p;
		s->cap = nc;
	}
	f = &s->f[s->n++];
	*f = (struct frame){ kind, da, db, NULL, NULL,	0,
			     0,	   0,  0,  plen, put_a, put_b };
	if (kind != F_ADDED)
		ret = list(w->a, da, &f->na, &f->ca);
	if (!ret && kind != F_BYTES)
		ret = list(w->b, db, &f->nb, &f->cb);
	return ret;
fail:
	if (put_a)
		lf_upper_forget(w->a->upper, da, 1);
	if (put_b)
		lf_upper_forget(w->b->upper, db, 1);
	return ret;
}

static void frame_pop(struct walk *w, struct stack *s)
{
	struct frame *f = &s->f[--s->n];

	lf_buf_setlen(&w->path, f->plen);
	free_names(f->na, f->ca);
	free_names(f->nb, f->cb);
	if (f->put_a)
		lf_upper_forget(w->a->upper, f->da, 1);
	if (f->put_b)
		lf_upper_forget(w->b->upper, f->db, 1);
}

/* Bytes of regular files in a subtree of view a (for D of a dir): its own
 * walk, on its own stack, done before the D line is emitted. */
static int subtree_bytes(struct walk *w, uint64_t dir, uint64_t *sum)
{
	struct stack s = { 0 };
	size_t plen = w->path.len;
	int ret = frame_push(w, &s, F_BYTES, dir, 0, false, false, plen);

	*sum = 0;
	while (!ret && s.n) {
		struct frame *f = &s.f[s.n - 1];
		struct obj o;
		bool found;

		if (f->i == f->ca) {
			frame_pop(w, &s);
			continue;
		}
		ret = obj_find(w->a, f->da, f->na[f->i++], &o, &found);
		if (ret || !found)
			continue;
		if (S_ISREG(o.st.st_mode))
			*sum += (uint64_t)o.st.st_size;
		if (S_ISDIR(o.st.st_mode))
			ret = frame_push(w, &s, F_BYTES, o.id, 0,
					 w->a->upper != NULL, false, plen);
		else
			obj_put(w->a, &o);
	}
	while (s.n)
		frame_pop(w, &s);
	free(s.f);
	lf_buf_setlen(&w->path, plen);
	return ret;
}

static uint64_t file_bytes(const struct obj *o)
{
	return S_ISREG(o->st.st_mode) ? (uint64_t)o->st.st_size : 0;
}

/* One name of an added directory: A, and its subtree if it is a dir. */
static int added_one(struct walk *w, struct stack *s, struct frame *f)
{
	const char *name = f->nb[f->i++];
	uint64_t db = f->db;
	struct obj o;
	size_t old;
	bool found = false;
	int ret = push(w, name, &old);

	if (!ret)
		ret = obj_find(w->b, db, name, &o, &found);
	if (ret || !found) {
		/* the path names the failed entry in the message */
		if (!ret)
			lf_buf_setlen(&w->path, old);
		return ret;
	}
	ret = emit(w, 'A', &o, file_bytes(&o));
	if (!ret && S_ISDIR(o.st.st_mode))
		/* the frame restores the path and drops o on pop */
		return frame_push(w, s, F_ADDED, 0, o.id, false,
				  w->b->upper != NULL, old);
	lf_buf_setlen(&w->path, old);
	obj_put(w->b, &o);
	return ret;
}

/* One name present on either side of a compared directory. */
static int diff_one(struct walk *w, struct stack *s, uint64_t da, uint64_t db,
		    const char *name)
{
	struct obj a, b;
	bool ha = false, hb = false;
	bool ch = false, up_a = w->a->upper != NULL, up_b = w->b->upper != NULL;
	uint64_t bytes;
	size_t old;
	int ret = push(w, name, &old);

	if (ret)
		return ret;
	ret = obj_find(w->a, da, name, &a, &ha);
	if (!ret)
		ret = obj_find(w->b, db, name, &b, &hb);
	if (ret) {
		/* the path names the failed entry in the message */
		if (ha)
			obj_put(w->a, &a);
		return ret;
	}
	if (ha && !hb) {
		/* bytes: of regular files only (not symlink target lengths) */
		bytes = file_bytes(&a);
		if (S_ISDIR(a.st.st_mode))
			ret = subtree_bytes(w, a.id, &bytes);
		if (!ret)
			ret = emit(w, 'D', &a, bytes);
	} else if (!ha && hb) {
		ret = emit(w, 'A', &b, file_bytes(&b));
		if (!ret && S_ISDIR(b.st.st_mode)) {
			/* the frame restores the path and drops b */
			return frame_push(w, s, F_ADDED, 0, b.id, false, up_b,
					  old);
		}
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
			return frame_push(w, s, F_DIFF, a.id, b.id, up_a, up_b,
					  old);
		obj_put(w->a, &a);
		return frame_push(w, s, F_ADDED, 0, b.id, false, up_b, old);
	}
out:
	lf_buf_setlen(&w->path, old);
	if (ha)
		obj_put(w->a, &a);
	if (hb)
		obj_put(w->b, &b);
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
	return diff_one(w, s, f->da, f->db, name);
}

int lf_diff_run(const struct lf_diff_view *a, const struct lf_diff_view *b,
		lf_diff_fn fn, void *ctx, struct lf_err *err)
{
	struct walk w = { a, b, fn, ctx, err, { 0 }, NULL };
	struct stack s = { 0 };
	int ret;

	lf_buf_init(&w.path);
	w.buf = malloc(READ_CHUNK);
	if (!w.buf)
		return lf_err_set(err, -ENOMEM, "out of memory");
	ret = frame_push(&w, &s, F_DIFF, LF_TREE_ROOT, LF_TREE_ROOT, false,
			 false, 0);
	while (!ret && s.n) {
		struct frame *f = &s.f[s.n - 1];

		if (f->kind == F_DIFF && (f->i < f->ca || f->j < f->cb))
			ret = diff_next(&w, &s, f);
		else if (f->kind == F_ADDED && f->i < f->cb)
			ret = added_one(&w, &s, f);
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

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
	uint64_t id;		/* tree inode or upper node (0: absent) */
	struct stat st;
	bool in_upper;		/* upper views: the object is in the upper dir */
	int layer;		/* tree objects: where the data is (-1: none) */
	const struct lf_idx_entry *entry;
};

struct walk {
	const struct lf_diff_view *a, *b;
	lf_diff_fn fn;
	void *ctx;
	struct lf_err *err;
	struct lf_buf path;
	char *buf;		/* READ_CHUNK bytes for content hashing */
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
			n = lf_blob_read_file(v->blobs[layer], ent, w->buf,
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

static int read_link(const struct lf_diff_view *v, const struct obj *o,
		     char *buf, size_t size)
{
	const char *t;

	if (v->upper)
		return lf_upper_readlink(v->upper, o->id, buf, size);
	t = lf_tree_readlink(v->tree, o->id);
	snprintf(buf, size, "%s", t ? t : "");
	return 0;
}

static int changed(struct walk *w, const struct obj *a, const struct obj *b,
		   bool *out)
{
	const struct stat *x = &a->st, *y = &b->st;
	char la[PATH_MAX], lb[PATH_MAX], ha[LF_DIGEST_LEN], hb[LF_DIGEST_LEN];
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
		if ((ret = read_link(w->a, a, la, sizeof(la))) ||
		    (ret = read_link(w->b, b, lb, sizeof(lb))))
			return ret;
		*out = strcmp(la, lb) != 0;
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
	if ((ret = hash_obj(w, w->a, a, ha)) || (ret = hash_obj(w, w->b, b, hb)))
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

/* Bytes of regular files in a subtree of view v (for D of a dir). */
static uint64_t subtree_bytes(const struct lf_diff_view *v, uint64_t dir)
{
	char **names;
	size_t n, i;
	uint64_t sum = 0;

	if (list(v, dir, &names, &n))
		return 0;
	for (i = 0; i < n; i++) {
		struct obj o;

		if (obj_get(v, dir, names[i], &o))
			continue;
		if (S_ISDIR(o.st.st_mode))
			sum += subtree_bytes(v, o.id);
		else if (S_ISREG(o.st.st_mode))
			sum += (uint64_t)o.st.st_size;
		obj_put(v, &o);
	}
	free_names(names, n);
	return sum;
}

static int added_tree(struct walk *w, uint64_t dir)
{
	char **names;
	size_t n, i, old;
	int ret = list(w->b, dir, &names, &n);

	for (i = 0; !ret && i < n; i++) {
		struct obj o;

		if (obj_get(w->b, dir, names[i], &o))
			continue;
		ret = push(w, names[i], &old);
		if (!ret)
			ret = emit(w, 'A', &o, S_ISREG(o.st.st_mode) ?
				   (uint64_t)o.st.st_size : 0);
		if (!ret && S_ISDIR(o.st.st_mode))
			ret = added_tree(w, o.id);
		lf_buf_setlen(&w->path, old);
		obj_put(w->b, &o);
	}
	free_names(names, n);
	return ret;
}

static int diff_dir(struct walk *w, uint64_t da, uint64_t db);

static int diff_one(struct walk *w, uint64_t da, uint64_t db,
		    const char *name)
{
	struct obj a, b;
	bool ha = !obj_get(w->a, da, name, &a);
	bool hb = !obj_get(w->b, db, name, &b);
	bool ch = false;
	size_t old;
	int ret = push(w, name, &old);

	if (ret)
		goto out;
	if (ha && !hb) {
		/* bytes: of regular files only (not symlink target lengths) */
		ret = emit(w, 'D', &a, S_ISDIR(a.st.st_mode) ?
			   subtree_bytes(w->a, a.id) : S_ISREG(a.st.st_mode) ?
			   (uint64_t)a.st.st_size : 0);
	} else if (!ha && hb) {
		ret = emit(w, 'A', &b, S_ISREG(b.st.st_mode) ?
			   (uint64_t)b.st.st_size : 0);
		if (!ret && S_ISDIR(b.st.st_mode))
			ret = added_tree(w, b.id);
	} else if (ha && hb) {
		/* with an upper dir, what it does not hold is the image */
		if (w->b->upper && !b.in_upper)
			goto out;
		ret = changed(w, &a, &b, &ch);
		if (!ret && ch)
			ret = emit(w, 'C', &b, S_ISREG(b.st.st_mode) ?
				   (uint64_t)b.st.st_size : 0);
		if (ret || !S_ISDIR(b.st.st_mode))
			goto out;
		if (S_ISDIR(a.st.st_mode))
			ret = diff_dir(w, a.id, b.id);
		else
			ret = added_tree(w, b.id);
	}
out:
	lf_buf_setlen(&w->path, old);
	if (ha)
		obj_put(w->a, &a);
	if (hb)
		obj_put(w->b, &b);
	return ret;
}

static int diff_dir(struct walk *w, uint64_t da, uint64_t db)
{
	char **na = NULL, **nb = NULL;
	size_t ca = 0, cb = 0, i = 0, j = 0;
	int ret = list(w->a, da, &na, &ca);

	if (!ret)
		ret = list(w->b, db, &nb, &cb);
	/* merge the two sorted name lists */
	while (!ret && (i < ca || j < cb)) {
		int c = i == ca ? 1 : j == cb ? -1 : strcmp(na[i], nb[j]);
		const char *name = c <= 0 ? na[i] : nb[j];

		ret = diff_one(w, da, db, name);
		if (c <= 0)
			i++;
		if (c >= 0)
			j++;
	}
	free_names(na, ca);
	free_names(nb, cb);
	return ret;
}

int lf_diff_run(const struct lf_diff_view *a, const struct lf_diff_view *b,
		lf_diff_fn fn, void *ctx, struct lf_err *err)
{
	struct walk w = { a, b, fn, ctx, err, { 0 }, NULL };
	int ret;

	lf_buf_init(&w.path);
	w.buf = malloc(READ_CHUNK);
	if (!w.buf)
		return lf_err_set(err, -ENOMEM, "out of memory");
	ret = diff_dir(&w, LF_TREE_ROOT, LF_TREE_ROOT);
	if (ret && err && !err->code)
		lf_err_set(err, ret, "diff failed at '%s': %s",
			   w.path.len ? w.path.data : "/", strerror(-ret));
	free(w.buf);
	lf_buf_release(&w.path);
	return ret;
}

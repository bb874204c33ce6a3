// SPDX-License-Identifier: MIT
/* mview.c - the merged view (tree, or tree + upper dir) diff and commit read. */
#include "layerfs/mview.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

/* Linux caps an xattr value at 64 KiB (XATTR_SIZE_MAX). */
#define XATTR_VALUE_MAX 65536

static void from_tree(const struct lf_tree *t, uint64_t ino, struct lf_mobj *o)
{
	struct lf_tree_attr a;

	lf_tree_getattr(t, ino, &a);
	o->id = ino;
	o->st.st_ino = a.ino;
	o->st.st_mode = a.mode;
	o->st.st_nlink = a.nlink;
	o->st.st_uid = a.uid;
	o->st.st_gid = a.gid;
	o->st.st_size = (off_t)a.size;
	o->st.st_rdev = makedev(a.rdev_major, a.rdev_minor);
	o->st.st_mtim.tv_sec = a.mtime;
	o->st.st_mtim.tv_nsec = a.mtime_nsec;
	if (S_ISREG(a.mode) && lf_tree_data(t, ino, &o->layer, &o->entry))
		o->entry = NULL;
}

int lf_mview_lookup(const struct lf_mview *v, uint64_t dir, const char *name,
		    struct lf_mobj *o)
{
	uint64_t ino;
	int ret;

	memset(o, 0, sizeof(*o));
	if (v->upper) {
		ret = lf_upper_lookup(v->upper, dir, name, &o->id, &o->st);
		if (ret)
			return ret;
		/* one inode number per hardlink group, upper or lower */
		o->st.st_dev = 0;
		ret = lf_upper_in_upper(v->upper, o->id, &o->in_upper);
		if (ret)
			lf_mview_put(v, o);
		return ret;
	}
	ret = lf_tree_lookup(v->tree, dir, name, strlen(name), &ino);
	if (ret)
		return ret == -ENOTDIR ? -ENOENT : ret;
	from_tree(v->tree, ino, o);
	return 0;
}

void lf_mview_put(const struct lf_mview *v, struct lf_mobj *o)
{
	if (v->upper && o->id && o->id != LF_UPPER_ROOT)
		lf_upper_forget(v->upper, o->id, 1);
	o->id = 0;
}

static int cmp_name(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

void lf_mview_names_free(char **names, size_t n)
{
	while (n--)
		free(names[n]);
	free(names);
}

static int names_add(char ***names, size_t *n, size_t *cap, const char *s,
		     size_t len)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 32;
		char **p = realloc(*names, nc * sizeof(*p));

		if (!p)
			return -ENOMEM;
		*names = p;
		*cap = nc;
	}
	if (!((*names)[*n] = strndup(s, len)))
		return -ENOMEM;
	(*n)++;
	return 0;
}

int lf_mview_names(const struct lf_mview *v, uint64_t dir, char ***names,
		   size_t *n)
{
	size_t cap = 0, i, len;
	const char *nm;
	uint64_t dh = 0, ino;
	int ret = 0;

	*names = NULL;
	*n = 0;
	if (v->upper) {
		struct lf_upper_dirent d;

		if ((ret = lf_upper_opendir(v->upper, dir, &dh)))
			return ret;
		for (i = 0; !ret && !lf_upper_readdir(v->upper, dh, i, &d); i++)
			ret = names_add(names, n, &cap, d.name, strlen(d.name));
		lf_upper_releasedir(v->upper, dh);
	} else {
		for (i = 0; !ret && i < lf_tree_dir_count(v->tree, dir); i++) {
			lf_tree_dir_entry(v->tree, dir, i, &nm, &len, &ino);
			ret = names_add(names, n, &cap, nm, len);
		}
	}
	if (ret) {
		lf_mview_names_free(*names, *n);
		*names = NULL;
		*n = 0;
		return ret;
	}
	if (*n)
		qsort(*names, *n, sizeof(**names), cmp_name);
	return 0;
}

static int upper_xattrs(struct lf_upper *up, uint64_t node,
			lf_mview_xattr_fn fn, void *ctx)
{
	char *list = NULL, *val = NULL, *p;
	ssize_t len, vlen;
	int ret = 0;

	len = lf_upper_listxattr(up, node, NULL, 0);
	if (len <= 0)
		return len < 0 && len != -ENOTSUP ? (int)len : 0;
	if (!(list = malloc((size_t)len)) || !(val = malloc(XATTR_VALUE_MAX))) {
		ret = -ENOMEM;
		goto out;
	}
	len = lf_upper_listxattr(up, node, list, (size_t)len);
	if (len < 0) {
		/* -ERANGE: the list grew meanwhile */
		ret = (int)len;
		goto out;
	}
	for (p = list; p < list + len && !ret; p += strlen(p) + 1) {
		vlen = lf_upper_getxattr(up, node, p, val, XATTR_VALUE_MAX);
		if (vlen == -ENODATA)
			continue; /* removed meanwhile */
		ret = vlen < 0 ? (int)vlen : fn(ctx, p, val, (size_t)vlen);
	}
out:
	free(list);
	free(val);
	return ret;
}

int lf_mview_xattrs(const struct lf_mview *v, const struct lf_mobj *o,
		    lf_mview_xattr_fn fn, void *ctx)
{
	size_t k, len;
	const char *name;
	const void *val;
	int ret = 0;

	if (v->upper)
		return upper_xattrs(v->upper, o->id, fn, ctx);
	for (k = 0; !ret && k < lf_tree_xattr_count(v->tree, o->id); k++) {
		lf_tree_xattr(v->tree, o->id, k, &name, &val, &len);
		ret = fn(ctx, name, val, len);
	}
	return ret;
}

int lf_mview_readlink(const struct lf_mview *v, const struct lf_mobj *o,
		      char **buf, const char **target)
{
	size_t size = 4096;
	char *p;
	int ret;

	if (!v->upper) {
		*target = lf_tree_readlink(v->tree, o->id);
		if (!*target)
			*target = "";
		return 0;
	}
	/* a lower target may be longer than any host one */
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
	*target = p;
	return 0;
}

int lf_mview_open(const struct lf_mview *v, const struct lf_mobj *o,
		  struct lf_mview_file *f)
{
	*f = (struct lf_mview_file){ v, o, 0 };
	if (v->upper)
		return lf_upper_open(v->upper, o->id, O_RDONLY, &f->fh);
	return o->entry ? 0 : -EIO;
}

ssize_t lf_mview_read(struct lf_mview_file *f, void *buf, size_t len,
		      uint64_t off, struct lf_err *err)
{
	if (f->v->upper)
		return lf_upper_read(f->v->upper, f->fh, buf, len, (off_t)off);
	return lf_stack_read_file(f->v->stack, f->o->layer, f->o->entry, buf,
				  len, off, err);
}

void lf_mview_close(struct lf_mview_file *f)
{
	if (f->v && f->v->upper && f->fh)
		lf_upper_release(f->v->upper, f->fh);
	f->fh = 0;
}

/* --- the walk ------------------------------------------------------------ */

/* A directory being visited: its sorted names, the next one, its path's
 * length, and its id (with a reference to drop when `owned`). */
struct frame {
	char **names;
	size_t n, i, plen;
	uint64_t id;
	bool owned;
};

struct stack {
	struct frame *f;
	size_t n, cap;
};

static void put_id(const struct lf_mview *v, uint64_t id)
{
	struct lf_mobj o = { .id = id };

	lf_mview_put(v, &o);
}

/* Push directory `id` (an owned reference is the frame's from now on). */
static int frame_push(const struct lf_mview *v, struct stack *s, uint64_t id,
		      bool owned, size_t plen)
{
	struct frame *f;

	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 64;
		struct frame *p = realloc(s->f, nc * sizeof(*p));

		if (!p) {
			if (owned)
				put_id(v, id);
			return -ENOMEM;
		}
		s->f = p;
		s->cap = nc;
	}
	f = &s->f[s->n++];
	*f = (struct frame){ .plen = plen, .id = id, .owned = owned };
	return lf_mview_names(v, id, &f->names, &f->n);
}

static void frame_pop(const struct lf_mview *v, struct stack *s)
{
	struct frame *f = &s->f[--s->n];

	lf_mview_names_free(f->names, f->n);
	if (f->owned)
		put_id(v, f->id);
}

int lf_mview_walk(const struct lf_mview *v, uint64_t dir, struct lf_buf *path,
		  lf_mview_visit_fn fn, void *ctx)
{
	struct stack s = { 0 };
	size_t start = path->len;
	/* the caller holds dir: the root frame takes no reference */
	int ret = frame_push(v, &s, dir, false, start);

	while (!ret && s.n) {
		struct frame *f = &s.f[s.n - 1];
		const char *name;
		struct lf_mobj o;

		if (f->i == f->n) {
			frame_pop(v, &s);
			continue;
		}
		name = f->names[f->i++];
		lf_buf_setlen(path, f->plen);
		if (lf_buf_addch(path, '/') || lf_buf_adds(path, name)) {
			ret = -ENOMEM;
			break;
		}
		ret = lf_mview_lookup(v, f->id, name, &o);
		if (ret == -ENOENT) {
			ret = 0; /* gone meanwhile (upper views) */
			continue;
		}
		if (ret)
			break;
		ret = fn(ctx, path, &o);
		if (!ret && S_ISDIR(o.st.st_mode))
			/* f may move: not used after this */
			ret = frame_push(v, &s, o.id, v->upper != NULL,
					 path->len);
		else
			lf_mview_put(v, &o);
		if (ret == LF_MVIEW_PRUNE)
			ret = 0;
	}
	/* on failure the path names the object the walk stopped at */
	while (s.n)
		frame_pop(v, &s);
	free(s.f);
	if (!ret)
		lf_buf_setlen(path, start);
	return ret;
}

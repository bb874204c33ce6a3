// SPDX-License-Identifier: MIT
/* pathlog.c - a path's history across the layers (pathlog.h). */
#include "layerfs/pathlog.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "layerfs/buf.h"
#include "layerfs/digest.h"
#include "layerfs/tree.h"

/* One path of a view: rel "" is PATH itself, else "a/b" below it. */
struct item {
	char *rel;
	uint64_t ino;
};

struct snap {
	const struct lf_tree *t;
	struct item *it;
	size_t n, cap;
};

static int oom(struct lf_err *err)
{
	return lf_err_set(err, -ENOMEM, "out of memory");
}

static int snap_add(struct snap *s, const char *rel, size_t len, uint64_t ino)
{
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 64;
		struct item *p = realloc(s->it, nc * sizeof(*p));

		if (!p)
			return -ENOMEM;
		s->it = p;
		s->cap = nc;
	}
	if (!(s->it[s->n].rel = strndup(rel, len)))
		return -ENOMEM;
	s->it[s->n++].ino = ino;
	return 0;
}

static void snap_free(struct snap *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		free(s->it[i].rel);
	free(s->it);
	memset(s, 0, sizeof(*s));
}

static int by_rel(const void *a, const void *b)
{
	return strcmp(((const struct item *)a)->rel,
		      ((const struct item *)b)->rel);
}

/* PATH in tree t, and with `recursive` everything below it, sorted. */
static int snap_take(const struct lf_tree *t, const char *path, bool recursive,
		     struct snap *s)
{
	struct lf_buf rel;
	uint64_t ino;
	size_t next = 0;
	int ret;

	s->t = t;
	ret = lf_tree_resolve(t, path, 0, &ino);
	if (ret == -ENOENT || ret == -ENOTDIR || ret == -ELOOP)
		return 0; /* not in this view */
	if (ret || snap_add(s, "", 0, ino))
		return ret ? ret : -ENOMEM;
	lf_buf_init(&rel);
	/* breadth first over the items themselves: item `next` is a
	 * directory whose children are not added yet */
	while (recursive && next < s->n) {
		uint64_t dir = s->it[next].ino;
		const char *base = s->it[next].rel;
		size_t i, cnt = lf_tree_dir_count(t, dir), blen = strlen(base);

		next++;
		for (i = 0; i < cnt; i++) {
			const char *name;
			size_t len;
			uint64_t child;

			lf_tree_dir_entry(t, dir, i, &name, &len, &child);
			lf_buf_reset(&rel);
			if ((blen && (lf_buf_add(&rel, base, blen) ||
				      lf_buf_addch(&rel, '/'))) ||
			    lf_buf_add(&rel, name, len) ||
			    snap_add(s, rel.data, rel.len, child)) {
				lf_buf_release(&rel);
				return -ENOMEM;
			}
			base = s->it[next - 1].rel; /* realloc may move it */
		}
	}
	lf_buf_release(&rel);
	qsort(s->it, s->n, sizeof(*s->it), by_rel);
	return 0;
}

/* ---- what a layer deletes ---- */

struct deletions {
	char **wh; /* whited-out paths, sorted */
	size_t nwh;
	char **opq; /* opaque directories ("" for the root), sorted */
	size_t nopq;
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void deletions_free(struct deletions *d)
{
	size_t i;

	for (i = 0; i < d->nwh; i++)
		free(d->wh[i]);
	for (i = 0; i < d->nopq; i++)
		free(d->opq[i]);
	free(d->wh);
	free(d->opq);
	memset(d, 0, sizeof(*d));
}

static int deletions_of(const struct lf_index *idx, struct deletions *d)
{
	size_t i, n = lf_index_count(idx);

	d->wh = calloc(n ? n : 1, sizeof(*d->wh));
	d->opq = calloc(n ? n : 1, sizeof(*d->opq));
	if (!d->wh || !d->opq)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		const struct lf_idx_entry *e = lf_index_entry(idx, i);
		const char *p = lf_index_path(idx, e), *slash, *base;
		size_t dl, bl;
		char *s;

		if (!(e->flags & LF_IDX_WHITEOUT))
			continue;
		slash = strrchr(p, '/');
		dl = slash ? (size_t)(slash - p) : 0;
		if (e->flags & LF_IDX_OPAQUE) {
			if (!(s = strndup(p, dl)))
				return -ENOMEM;
			d->opq[d->nopq++] = s;
			continue;
		}
		/* "dir/.wh.name" -> "dir/name" */
		base = slash ? slash + 1 : p;
		bl = strlen(base) - 4;
		if (!(s = malloc(dl + 1 + bl + 1)))
			return -ENOMEM;
		if (slash) {
			memcpy(s, p, dl);
			s[dl++] = '/';
		}
		memcpy(s + dl, base + 4, bl);
		s[dl + bl] = '\0';
		d->wh[d->nwh++] = s;
	}
	qsort(d->wh, d->nwh, sizeof(*d->wh), cmp_str);
	qsort(d->opq, d->nopq, sizeof(*d->opq), cmp_str);
	return 0;
}

static bool has(char **v, size_t n, const char *s)
{
	return n && bsearch(&s, v, n, sizeof(*v), cmp_str);
}

/*
 * Why `ipath` (image path without the leading '/', "" = root) left the view
 * in a layer with deletions d and view t after it: *cause, and the parent
 * responsible (image path, or NULL for ipath itself) into *who.
 */
static int why_deleted(const struct deletions *d, const struct lf_tree *t,
		       const char *ipath, const char **cause, char **who)
{
	size_t len = strlen(ipath), k;
	char *p = strdup(ipath);

	*who = NULL;
	if (!p)
		return -ENOMEM;
	if (has(d->wh, d->nwh, p)) {
		*cause = "whiteout";
		free(p);
		return 0;
	}
	/* parents, nearest first */
	for (k = len; k-- > 0;) {
		uint64_t ino;
		struct lf_tree_attr a;

		if (p[k] != '/')
			continue;
		p[k] = '\0';
		if (has(d->wh, d->nwh, p))
			*cause = "whiteout";
		else if (has(d->opq, d->nopq, p))
			*cause = "opaque directory";
		else if (!lf_tree_resolve(t, p, 0, &ino) &&
			 !lf_tree_getattr(t, ino, &a) && !S_ISDIR(a.mode))
			*cause = "parent replaced";
		else
			continue;
		*who = p;
		return 0;
	}
	free(p);
	if (has(d->opq, d->nopq, "")) {
		*cause = "opaque directory";
		*who = strdup("");
		return *who ? 0 : -ENOMEM;
	}
	*cause = "no longer reachable";
	return 0;
}

/* ---- events ---- */

struct run {
	const struct lf_stack *s;
	const char *path; /* as given */
	struct lf_pathlog *out;
	const struct lf_idx_entry **entry; /* per event: the new entry */
	size_t cap;
};

static int add_event(struct run *r, struct lf_plog_event *ev,
		     const struct lf_idx_entry *e)
{
	if (r->out->n == r->cap) {
		size_t nc = r->cap ? r->cap * 2 : 16;
		struct lf_plog_event *p = realloc(r->out->ev, nc * sizeof(*p));
		const struct lf_idx_entry **q;

		if (!p)
			return -ENOMEM;
		r->out->ev = p;
		q = realloc(r->entry, nc * sizeof(*q));
		if (!q)
			return -ENOMEM;
		r->entry = q;
		r->cap = nc;
	}
	r->entry[r->out->n] = e;
	r->out->ev[r->out->n++] = *ev;
	return 0;
}

/* "/" + PATH (normalised) + "/" + rel, into a new string. */
static char *abs_of(const char *path, const char *rel)
{
	struct lf_buf b;
	const char *p = path;

	lf_buf_init(&b);
	while (*p) {
		const char *end = strchr(p, '/');
		size_t n = end ? (size_t)(end - p) : strlen(p);

		if (n && !(n == 1 && *p == '.') &&
		    (lf_buf_addch(&b, '/') || lf_buf_add(&b, p, n)))
			goto nomem;
		p += n + (end ? 1 : 0);
	}
	if (*rel && (lf_buf_addch(&b, '/') || lf_buf_adds(&b, rel)))
		goto nomem;
	if (!b.len && lf_buf_addch(&b, '/'))
		goto nomem;
	return b.data; /* the buffer is NUL-terminated and handed over */
nomem:
	lf_buf_release(&b);
	return NULL;
}

/* sha256 of a regular file of view t. */
static int file_sha(const struct lf_stack *s, const struct lf_tree *t,
		    uint64_t ino, uint64_t size, char out[LF_DIGEST_LEN],
		    struct lf_err *err)
{
	const struct lf_idx_entry *e;
	struct lf_sha256 *h = NULL;
	size_t layer;
	uint64_t off = 0;
	char *buf = malloc(1u << 20);
	int ret = 0;

	if (!buf || lf_sha256_new(&h)) {
		free(buf);
		return oom(err);
	}
	if (lf_tree_data(t, ino, &layer, &e))
		ret = lf_err_set(err, -EIO, "no data entry");
	while (!ret && off < size) {
		size_t want = size - off < (1u << 20) ? (size_t)(size - off)
						      : (1u << 20);
		ssize_t n = lf_stack_read_file(s, layer, e, buf, want, off,
					       err);

		if (n <= 0) {
			ret = n ? (int)n : lf_err_set(err, -EIO, "short read");
			break;
		}
		lf_sha256_update(h, buf, (size_t)n);
		off += (uint64_t)n;
	}
	lf_sha256_final(h, out);
	lf_sha256_free(h);
	free(buf);
	return ret;
}

static int compare(struct run *r, const struct snap *a, uint64_t ia,
		   const struct snap *b, uint64_t ib, unsigned *changes,
		   struct lf_err *err)
{
	struct lf_tree_attr x, y;
	const char *lx, *ly;
	char hx[LF_DIGEST_LEN], hy[LF_DIGEST_LEN];
	int ret;

	lf_tree_getattr(a->t, ia, &x);
	lf_tree_getattr(b->t, ib, &y);
	*changes = 0;
	if ((x.mode & S_IFMT) != (y.mode & S_IFMT))
		*changes |= LF_PLOG_TYPE;
	if ((x.mode & 07777) != (y.mode & 07777))
		*changes |= LF_PLOG_MODE;
	if (x.uid != y.uid || x.gid != y.gid)
		*changes |= LF_PLOG_OWNER;
	if (x.mtime != y.mtime || x.mtime_nsec != y.mtime_nsec)
		*changes |= LF_PLOG_MTIME;
	if ((S_ISCHR(y.mode) || S_ISBLK(y.mode)) &&
	    (x.rdev_major != y.rdev_major || x.rdev_minor != y.rdev_minor))
		*changes |= LF_PLOG_RDEV;
	if (S_ISLNK(x.mode) && S_ISLNK(y.mode)) {
		lx = lf_tree_readlink(a->t, ia);
		ly = lf_tree_readlink(b->t, ib);
		if (!lx || !ly || strcmp(lx, ly))
			*changes |= LF_PLOG_TARGET;
	}
	if (S_ISREG(x.mode) && S_ISREG(y.mode)) {
		if (x.size != y.size)
			*changes |= LF_PLOG_CONTENT;
		else if (x.size) {
			if ((ret = file_sha(r->s, a->t, ia, x.size, hx, err)) ||
			    (ret = file_sha(r->s, b->t, ib, y.size, hy, err)))
				return ret;
			if (strcmp(hx, hy))
				*changes |= LF_PLOG_CONTENT;
		}
	}
	return 0;
}

static void fill(struct lf_plog_event *ev, const struct lf_tree_attr *a)
{
	ev->mode = a->mode;
	ev->uid = a->uid;
	ev->gid = a->gid;
	ev->size = S_ISREG(a->mode) || S_ISLNK(a->mode) ? a->size : 0;
}

/* The events of layer k: prev is the view before it, cur after it. */
static int layer_events(struct run *r, size_t k, const struct snap *prev,
			const struct snap *cur, struct lf_err *err)
{
	struct deletions d = { 0 };
	size_t i = 0, j = 0;
	int ret = 0;

	while (!ret && (i < prev->n || j < cur->n)) {
		int c = i == prev->n  ? 1
			: j == cur->n ? -1
				      : strcmp(prev->it[i].rel, cur->it[j].rel);
		struct lf_plog_event ev = { .layer = k };
		struct lf_tree_attr a, b;
		const char *ipath;
		bool root;

		if (c > 0) { /* only after: added */
			lf_tree_getattr(cur->t, cur->it[j].ino, &b);
			ev.kind = LF_PLOG_ADDED;
			fill(&ev, &b);
			if (!b.entry)
				ev.cause = "implied by paths below it";
			ev.path = abs_of(r->path, cur->it[j].rel);
			/* the root is always there */
			root = ev.path && !strcmp(ev.path, "/");
			if (!ev.path || (!root && add_event(r, &ev, b.entry)))
				ret = -ENOMEM;
			if (root || ret)
				free(ev.path);
			j++;
			continue;
		}
		if (c < 0) { /* only before: deleted */
			lf_tree_getattr(prev->t, prev->it[i].ino, &a);
			ev.kind = LF_PLOG_DELETED;
			fill(&ev, &a);
			if (!d.wh && deletions_of(lf_stack_index(r->s, k), &d))
				ret = -ENOMEM;
			if (!ret &&
			    !(ev.path = abs_of(r->path, prev->it[i].rel)))
				ret = -ENOMEM;
			ipath = ret ? NULL : ev.path + 1;
			if (!ret && why_deleted(&d, cur->t, ipath, &ev.cause,
						&ev.cause_path))
				ret = -ENOMEM;
			if (!ret && ev.cause_path) {
				char *abs = abs_of(ev.cause_path, "");

				free(ev.cause_path);
				ev.cause_path = abs;
				if (!abs)
					ret = -ENOMEM;
			}
			if (!ret && add_event(r, &ev, NULL))
				ret = -ENOMEM;
			if (ret) {
				free(ev.path);
				free(ev.cause_path);
			}
			i++;
			continue;
		}
		lf_tree_getattr(prev->t, prev->it[i].ino, &a);
		lf_tree_getattr(cur->t, cur->it[j].ino, &b);
		if (a.entry != b.entry) { /* another entry shows there */
			ev.kind = LF_PLOG_CHANGED;
			fill(&ev, &b);
			ev.old_mode = a.mode;
			ev.old_uid = a.uid;
			ev.old_gid = a.gid;
			ev.old_size = S_ISREG(a.mode) || S_ISLNK(a.mode)
					      ? a.size
					      : 0;
			ret = compare(r, prev, prev->it[i].ino, cur,
				      cur->it[j].ino, &ev.changes, err);
			if (!ret &&
			    !(ev.path = abs_of(r->path, cur->it[j].rel)))
				ret = -ENOMEM;
			if (!ret && add_event(r, &ev, b.entry)) {
				free(ev.path);
				ret = -ENOMEM;
			}
		}
		i++;
		j++;
	}
	deletions_free(&d);
	return ret == -ENOMEM ? oom(err) : ret;
}

/* Mark the versions whose bytes ship but are not in the final view. */
static void mark_hidden(struct run *r)
{
	const struct lf_tree *top = lf_stack_tree(r->s);
	size_t i;

	for (i = 0; i < r->out->n; i++) {
		struct lf_plog_event *ev = &r->out->ev[i];
		struct lf_tree_attr a;
		uint64_t ino;

		if (ev->kind == LF_PLOG_DELETED || !S_ISREG(ev->mode) ||
		    !ev->size || !r->entry[i])
			continue;
		if (!lf_tree_resolve(top, ev->path, 0, &ino) &&
		    !lf_tree_getattr(top, ino, &a) && a.entry == r->entry[i])
			continue;
		ev->ships_hidden = true;
		r->out->hidden_bytes += ev->size;
	}
}

int lf_pathlog(const struct lf_stack *s, const char *path, bool recursive,
	       struct lf_pathlog *out, struct lf_err *err)
{
	size_t n = lf_stack_count(s), k;
	struct snap prev = { 0 }, cur = { 0 };
	struct lf_tree *owned = NULL, *prev_owned = NULL;
	struct run r = { .s = s, .path = path, .out = out };
	bool seen = false;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	for (k = 0; k < n && !ret; k++) {
		const struct lf_tree *t;

		if (k + 1 == n) {
			t = lf_stack_tree(s);
		} else if ((ret = lf_stack_tree_prefix(s, k + 1, &owned,
						       err))) {
			break;
		} else {
			t = owned;
		}
		if ((ret = snap_take(t, path, recursive, &cur))) {
			ret = oom(err);
			lf_tree_free(owned);
			break;
		}
		seen = seen || cur.n;
		ret = layer_events(&r, k, &prev, &cur, err);
		snap_free(&prev);
		prev = cur;
		memset(&cur, 0, sizeof(cur));
		lf_tree_free(prev_owned);
		prev_owned = owned;
		owned = NULL;
	}
	if (!ret)
		mark_hidden(&r);
	snap_free(&prev);
	snap_free(&cur);
	lf_tree_free(prev_owned);
	free(r.entry);
	if (!ret && !seen)
		ret = lf_err_set(err, -ENOENT, "'%s': no layer has it", path);
	if (ret)
		lf_pathlog_free(out);
	return ret;
}

void lf_pathlog_free(struct lf_pathlog *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free(l->ev[i].path);
		free(l->ev[i].cause_path);
	}
	free(l->ev);
	memset(l, 0, sizeof(*l));
}

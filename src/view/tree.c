// SPDX-License-Identifier: MIT
/* tree.c - build the merged view of layers 1..N (design.md section 3). */
#include "tree_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "layerfs/path.h"

/* A node of the mutable tree used while layers are applied. */
struct mnode {
	const char *name; /* borrowed from an index string */
	uint32_t len;
	uint32_t parent;
	uint32_t first, last; /* children, in insertion (tar) order */
	uint32_t prev, next;  /* siblings */
	uint32_t hnext;	      /* hash chain */
	uint32_t inode;	      /* index into minodes */
	uint8_t alive;
};

/* An inode of the mutable tree: which entry describes it. */
struct minode {
	int32_t layer; /* -1: implicit directory */
	uint32_t entry;
	uint8_t is_dir;
	uint32_t names; /* live nodes naming it */
	uint32_t final; /* inode number once frozen, 0 before */
};

/* A hardlink entry of the layer being applied and the lower inode its
 * target named before the layer's whiteouts ran (held by a reference). */
struct held {
	uint32_t entry;
	uint32_t ino;
};

struct mtree {
	struct mnode *nodes;
	uint32_t nnodes, anodes;
	struct minode *inodes;
	uint32_t ninodes, ainodes;
	uint32_t *buckets; /* hash heads, LF_NIL terminated */
	uint32_t nbuckets; /* power of two */
	uint32_t *stack;   /* scratch for subtree walks */
	uint32_t astack;
	struct lf_index *const *layers;
	int layer;	   /* layer being applied, for messages */
	struct held *held; /* this layer's hardlinks to lower files */
	uint32_t nheld, aheld;
	lf_merge_gone_fn gone; /* told when a file's last name goes */
	void *gone_arg;
	int gone_ret;		 /* first non-zero return of gone() */
	struct lf_hash_key hkey; /* the buckets' and the tree's */
	/* the directory the last entry went into (tar order keeps a
	 * directory's names together, so most entries go where the last
	 * did): its path, borrowed from an index, and its node; forgotten on
	 * any removal, the only way a path's node changes */
	const char *memo_path;
	size_t memo_len;
	uint32_t memo_node;
};

static uint32_t bucket_of(const struct mtree *m, uint32_t parent,
			  const char *name, size_t len)
{
	return (uint32_t)lf_tree_hash(&m->hkey, parent, name, len) &
	       (m->nbuckets - 1);
}

static int grow(void **arr, uint32_t *alloc, uint32_t need, size_t elem)
{
	uint32_t n = *alloc ? *alloc : 1024;
	void *p;

	if (need <= *alloc)
		return 0;
	while (n < need) {
		if (n > UINT32_MAX / 2)
			return -E2BIG;
		n *= 2;
	}
	p = reallocarray(*arr, n, elem);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*alloc = n;
	return 0;
}

/* Twice the buckets, at least 4096 and `want` (rounded up to a power of
 * two, at most 2^28), and every live node hashed again. */
static int rehash(struct mtree *m, size_t want)
{
	uint32_t n = m->nbuckets ? m->nbuckets * 2 : 4096, i;
	uint32_t *b;

	while (n < want && n < (1u << 28))
		n *= 2;
	b = malloc(sizeof(*b) * n);

	if (!b)
		return -ENOMEM;
	memset(b, 0xff, sizeof(*b) * n);
	free(m->buckets);
	m->buckets = b;
	m->nbuckets = n;
	for (i = 0; i < m->nnodes; i++) {
		struct mnode *x = &m->nodes[i];
		uint32_t h;

		if (!x->alive || i == 0)
			continue;
		h = bucket_of(m, x->parent, x->name, x->len);
		x->hnext = b[h];
		b[h] = i;
	}
	return 0;
}

static uint32_t lookup(const struct mtree *m, uint32_t parent, const char *name,
		       size_t len)
{
	uint32_t i = m->buckets[bucket_of(m, parent, name, len)];

	for (; i != LF_NIL; i = m->nodes[i].hnext) {
		const struct mnode *x = &m->nodes[i];

		if (x->parent == parent && x->len == len &&
		    !memcmp(x->name, name, len))
			return i;
	}
	return LF_NIL;
}

static void unhash(struct mtree *m, uint32_t n)
{
	struct mnode *x = &m->nodes[n];
	uint32_t *pp = &m->buckets[bucket_of(m, x->parent, x->name, x->len)];

	while (*pp != LF_NIL && *pp != n)
		pp = &m->nodes[*pp].hnext;
	if (*pp == n)
		*pp = x->hnext;
}

static int new_inode(struct mtree *m, int layer, uint32_t entry, bool dir,
		     uint32_t *out)
{
	int ret = grow((void **)&m->inodes, &m->ainodes, m->ninodes + 1,
		       sizeof(*m->inodes));

	if (ret)
		return ret;
	m->inodes[m->ninodes] = (struct minode){ layer, entry, dir, 0, 0 };
	*out = m->ninodes++;
	return 0;
}

/* Add a child `name` to `parent`, pointing at inode `ino`. */
static int add_node(struct mtree *m, uint32_t parent, const char *name,
		    size_t len, uint32_t ino, uint32_t *out)
{
	struct mnode *x, *p;
	uint32_t n, h;
	int ret;

	if (len > UINT32_MAX)
		return -ENAMETOOLONG;
	ret = grow((void **)&m->nodes, &m->anodes, m->nnodes + 1,
		   sizeof(*m->nodes));
	if (ret)
		return ret;
	if (m->nnodes >= m->nbuckets && (ret = rehash(m, 0)))
		return ret;
	n = m->nnodes++;
	x = &m->nodes[n];
	*x = (struct mnode){ name,   (uint32_t)len, parent, LF_NIL, LF_NIL,
			     LF_NIL, LF_NIL,	    LF_NIL, ino,    1 };
	m->inodes[ino].names++;
	p = &m->nodes[parent];
	x->prev = p->last;
	if (p->last != LF_NIL)
		m->nodes[p->last].next = n;
	else
		p->first = n;
	p->last = n;
	h = bucket_of(m, parent, name, len);
	x->hnext = m->buckets[h];
	m->buckets[h] = n;
	*out = n;
	return 0;
}

static void unlink_child(struct mtree *m, uint32_t n)
{
	struct mnode *x = &m->nodes[n], *p = &m->nodes[x->parent];

	if (x->prev != LF_NIL)
		m->nodes[x->prev].next = x->next;
	else
		p->first = x->next;
	if (x->next != LF_NIL)
		m->nodes[x->next].prev = x->prev;
	else
		p->last = x->prev;
	x->prev = x->next = LF_NIL;
}

/* Drop one reference to inode `in`; tell gone() when it was the last. */
static void inode_unref(struct mtree *m, uint32_t in)
{
	struct minode *mi = &m->inodes[in];

	if (--mi->names || mi->is_dir || mi->layer < 0 || !m->gone ||
	    m->gone_ret)
		return;
	m->gone_ret = m->gone(m->gone_arg, (size_t)mi->layer, mi->entry);
}

/* Node x leaves the view; its inode with it when that was its last name. */
static void node_gone(struct mtree *m, uint32_t x)
{
	m->nodes[x].alive = 0;
	inode_unref(m, m->nodes[x].inode);
}

/* Remove node n and everything below it (rules 3 and 5). */
static int kill_subtree(struct mtree *m, uint32_t n)
{
	uint32_t top = 0, c;
	int ret;

	m->memo_path = NULL;
	unlink_child(m, n);
	unhash(m, n);
	if ((ret = grow((void **)&m->stack, &m->astack, 1, sizeof(uint32_t))))
		return ret;
	m->stack[top++] = n;
	while (top) {
		uint32_t x = m->stack[--top];

		node_gone(m, x);
		for (c = m->nodes[x].first; c != LF_NIL; c = m->nodes[c].next) {
			unhash(m, c);
			ret = grow((void **)&m->stack, &m->astack, top + 1,
				   sizeof(uint32_t));
			if (ret)
				return ret;
			m->stack[top++] = c;
		}
		m->nodes[x].first = m->nodes[x].last = LF_NIL;
	}
	return 0;
}

static bool node_is_dir(const struct mtree *m, uint32_t n)
{
	return m->inodes[m->nodes[n].inode].is_dir;
}

/* Walk dirs of path[0..len) without creating anything; LF_NIL if absent. */
static uint32_t find_dir(const struct mtree *m, const char *path, size_t len)
{
	uint32_t cur = 0;
	size_t i = 0;

	while (i < len) {
		size_t s = i;

		while (i < len && path[i] != '/')
			i++;
		cur = lookup(m, cur, path + s, i - s);
		if (cur == LF_NIL || !node_is_dir(m, cur))
			return LF_NIL;
		i++;
	}
	return cur;
}

/* Rule 2: create missing parents of path[0..len) as implicit directories;
 * a non-directory in the way is replaced (as extraction would). */
static int ensure_dirs(struct mtree *m, const char *path, size_t len,
		       uint32_t *out)
{
	uint32_t cur = 0, next, ino;
	size_t i = 0;
	int ret;

	while (i < len) {
		size_t s = i;

		while (i < len && path[i] != '/')
			i++;
		next = lookup(m, cur, path + s, i - s);
		if (next != LF_NIL && !node_is_dir(m, next)) {
			if ((ret = kill_subtree(m, next)))
				return ret;
			next = LF_NIL;
		}
		if (next == LF_NIL) {
			ret = new_inode(m, -1, 0, true, &ino);
			if (!ret)
				ret = add_node(m, cur, path + s, i - s, ino,
					       &next);
			if (ret)
				return ret;
		}
		cur = next;
		i++;
	}
	*out = cur;
	return 0;
}

/* Rules 3 and 4: a layer's whiteouts act on the layers below it only. */
static int apply_whiteouts(struct mtree *m, const struct lf_index *idx)
{
	size_t i, n = lf_index_count(idx);
	int ret;

	for (i = 0; i < n; i++) {
		const struct lf_idx_entry *e = lf_index_entry(idx, i);
		const char *path, *base;
		uint32_t dir, victim, c;

		if (!(e->flags & LF_IDX_WHITEOUT))
			continue;
		path = lf_index_path(idx, e);
		base = lf_path_basename(path);
		/* rule 6: a whiteout under a non-directory is ignored, and a
		 * whiteout never creates its parent (rule 3) */
		dir = find_dir(m, path, lf_path_dirlen(path));
		if (dir == LF_NIL)
			continue;
		if (e->flags & LF_IDX_OPAQUE) {
			while ((c = m->nodes[dir].first) != LF_NIL)
				if ((ret = kill_subtree(m, c)))
					return ret;
			continue;
		}
		if (!base[4])
			continue;
		victim = lookup(m, dir, base + 4, strlen(base + 4));
		if (victim != LF_NIL && (ret = kill_subtree(m, victim)))
			return ret;
	}
	return 0;
}

/* The non-directory node at path, or LF_NIL. */
static uint32_t find_file(const struct mtree *m, const char *path)
{
	const char *base = lf_path_basename(path);
	uint32_t dir = find_dir(m, path, lf_path_dirlen(path)), n = LF_NIL;

	if (dir != LF_NIL)
		n = lookup(m, dir, base, strlen(base));
	return n != LF_NIL && !node_is_dir(m, n) ? n : LF_NIL;
}

/*
 * Rule 7: a hardlink may name a file of a lower layer that this same layer
 * deletes (`b` linked to `a`, then `.wh.a`, as extraction in tar order
 * allows).  Whiteouts run first here, so before they do, every hardlink of
 * the layer notes the lower inode its target names and holds it alive.
 */
static int hold_link_targets(struct mtree *m, const struct lf_index *idx)
{
	size_t i, n = lf_index_count(idx);
	uint32_t x;
	int ret;

	m->nheld = 0;
	for (i = 0; i < n; i++) {
		const struct lf_idx_entry *e = lf_index_entry(idx, i);

		if (e->kind != LF_KIND_HARDLINK || (e->flags & LF_IDX_WHITEOUT))
			continue;
		x = find_file(m, lf_index_link(idx, e));
		if (x == LF_NIL)
			continue;
		ret = grow((void **)&m->held, &m->aheld, m->nheld + 1,
			   sizeof(*m->held));
		if (ret)
			return ret;
		m->held[m->nheld++] = (struct held){ (uint32_t)i,
						     m->nodes[x].inode };
		m->inodes[m->nodes[x].inode].names++;
	}
	return 0;
}

static void release_held(struct mtree *m)
{
	uint32_t k;

	for (k = 0; k < m->nheld; k++)
		inode_unref(m, m->held[k].ino);
	m->nheld = 0;
}

/* The inode held for hardlink entry i, or LF_NIL (held[] is sorted). */
static uint32_t held_inode(const struct mtree *m, uint32_t i)
{
	uint32_t lo = 0, hi = m->nheld;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (m->held[mid].entry == i)
			return m->held[mid].ino;
		if (m->held[mid].entry < i)
			lo = mid + 1;
		else
			hi = mid;
	}
	return LF_NIL;
}

/* The target as it stands now (an earlier entry of this layer or a lower
 * one), else the lower file this layer's whiteouts removed. */
static int link_target(struct mtree *m, const struct lf_index *idx, uint32_t i,
		       uint32_t *ino, struct lf_err *err)
{
	const struct lf_idx_entry *e = lf_index_entry(idx, i);
	const char *path = lf_index_path(idx, e);
	const char *target = lf_index_link(idx, e);
	const char *tb = lf_path_basename(target);
	uint32_t dir = find_dir(m, target, lf_path_dirlen(target)), n = LF_NIL;

	if (dir != LF_NIL)
		n = lookup(m, dir, tb, strlen(tb));
	if (n != LF_NIL && node_is_dir(m, n))
		return lf_err_set(err, -EINVAL,
				  "layer %d: hardlink '%s' points to directory "
				  "'%s'",
				  m->layer + 1, path, target);
	if (n != LF_NIL) {
		*ino = m->nodes[n].inode;
		return 0;
	}
	*ino = held_inode(m, i);
	if (*ino == LF_NIL)
		return lf_err_set(err, -EINVAL,
				  "layer %d: hardlink '%s' points to '%s', "
				  "which does not exist",
				  m->layer + 1, path, target);
	return 0;
}

/* Directory node n now takes its metadata from entry i of this layer. */
static void set_entry(struct mtree *m, uint32_t n, uint32_t i)
{
	struct minode *mi = &m->inodes[m->nodes[n].inode];

	mi->layer = m->layer;
	mi->entry = i;
}

/* Put entry i at path (parent dirs made); ino: a hardlink's target. */
static int place(struct mtree *m, const struct lf_idx_entry *e, uint32_t i,
		 const char *path, uint32_t ino)
{
	bool dir = e->kind == LF_KIND_DIR;
	uint32_t parent, old, n;
	size_t dl = lf_path_dirlen(path);
	const char *base;
	int ret;

	if (m->memo_path && m->memo_len == dl &&
	    !memcmp(m->memo_path, path, dl)) {
		parent = m->memo_node;
	} else {
		if ((ret = ensure_dirs(m, path, dl, &parent)))
			return ret;
		m->memo_path = path;
		m->memo_len = dl;
		m->memo_node = parent;
	}
	base = lf_path_basename(path);
	old = lookup(m, parent, base, strlen(base));
	if (old != LF_NIL) {
		if (dir && node_is_dir(m, old)) {
			/* a directory over a directory: metadata only */
			set_entry(m, old, i);
			return 0;
		}
		if (e->kind == LF_KIND_HARDLINK && m->nodes[old].inode == ino)
			return 0; /* a link to itself changes nothing */
		if ((ret = kill_subtree(m, old)))
			return ret;
	}
	if (e->kind != LF_KIND_HARDLINK &&
	    (ret = new_inode(m, m->layer, i, dir, &ino)))
		return ret;
	return add_node(m, parent, base, strlen(base), ino, &n);
}

/* Rules 5, 6 and 7 for one entry (not a whiteout). */
static int apply_entry(struct mtree *m, const struct lf_index *idx, uint32_t i,
		       struct lf_err *err)
{
	const struct lf_idx_entry *e = lf_index_entry(idx, i);
	const char *path = lf_index_path(idx, e);
	uint32_t ino = 0;
	int ret;

	if (!path[0]) {
		/* "./": the root's own metadata; anything else is nonsense */
		if (e->kind == LF_KIND_DIR)
			set_entry(m, 0, i);
		return 0;
	}
	if (e->kind != LF_KIND_HARDLINK) {
		ret = place(m, e, i, path, 0);
	} else {
		if ((ret = link_target(m, idx, i, &ino, err)))
			return ret;
		/* the target may lose its last name on the way (`x/y` linked
		 * to a file `x`) and gets this one: it never left the view */
		m->inodes[ino].names++;
		ret = place(m, e, i, path, ino);
		inode_unref(m, ino);
	}
	if (ret)
		return lf_err_set(err, ret, "layer %d: cannot add '%s': %s",
				  m->layer + 1, path, strerror(-ret));
	return 0;
}

static int apply_layer(struct mtree *m, const struct lf_index *idx,
		       struct lf_err *err)
{
	size_t i, n = lf_index_count(idx);
	int ret;

	if (n >= UINT32_MAX)
		return lf_err_set(err, -E2BIG, "layer %d: too many entries",
				  m->layer + 1);
	ret = hold_link_targets(m, idx);
	if (!ret)
		ret = apply_whiteouts(m, idx);
	if (ret) {
		release_held(m);
		return lf_err_set(err, ret, "layer %d: out of memory",
				  m->layer + 1);
	}
	for (i = 0, ret = 0; i < n && !ret; i++)
		if (!(lf_index_entry(idx, i)->flags & LF_IDX_WHITEOUT))
			ret = apply_entry(m, idx, (uint32_t)i, err);
	release_held(m);
	return ret;
}

static int build_slots(struct lf_tree *t)
{
	uint32_t n = 16, d, k;

	while (n <= t->ndirents * 2u) {
		if (n > UINT32_MAX / 4)
			return -E2BIG;
		n *= 2;
	}
	t->slots = malloc(sizeof(*t->slots) * n);
	if (!t->slots)
		return -ENOMEM;
	memset(t->slots, 0xff, sizeof(*t->slots) * n);
	t->nslots = n;
	for (d = 1; d <= t->ninodes; d++) {
		const struct tinode *di = &t->inodes[d];

		for (k = di->first; k < di->first + di->count; k++) {
			const struct tdirent *x = &t->dirents[k];
			uint32_t h =
				(uint32_t)lf_tree_hash(&t->hkey, d,
						       lf_tree_dirent_name(t,
									   x),
						       x->len) &
				(n - 1);

			while (t->slots[h] != LF_NIL)
				h = (h + 1) & (n - 1);
			t->slots[h] = k;
		}
	}
	return 0;
}

/* A symlink inode keeps its target in the tree's names (NUL-terminated). */
static int add_link(const struct mtree *m, const struct minode *mi,
		    struct tinode *ti, struct lf_buf *names)
{
	const struct lf_idx_entry *e;
	const char *target;
	size_t n;

	if (mi->layer < 0)
		return 0;
	e = lf_index_entry(m->layers[mi->layer], mi->entry);
	if (e->kind != LF_KIND_SYMLINK)
		return 0;
	target = lf_index_link(m->layers[mi->layer], e);
	n = strlen(target) + 1;
	if (names->len > UINT32_MAX - n)
		return -E2BIG;
	ti->first = (uint32_t)names->len;
	return lf_buf_add(names, target, n);
}

/*
 * Number the live nodes breadth first: a directory's entries get
 * consecutive dirent slots, hardlinked names the number of their first name.
 */
static int freeze(struct mtree *m, struct lf_tree *t)
{
	uint32_t *queue, head = 0, tail = 0, c;
	struct lf_buf names;
	int ret = -ENOMEM;

	lf_buf_init(&names);
	queue = malloc(sizeof(*queue) * m->nnodes);
	t->inodes = calloc((size_t)m->ninodes + 1, sizeof(*t->inodes));
	t->dirents = malloc(sizeof(*t->dirents) * m->nnodes);
	if (!queue || !t->inodes || !t->dirents)
		goto out;
	m->inodes[m->nodes[0].inode].final = LF_TREE_ROOT;
	t->ninodes = 1;
	t->inodes[1] = (struct tinode){ m->inodes[m->nodes[0].inode].layer,
					m->inodes[m->nodes[0].inode].entry,
					0,
					LF_TREE_ROOT,
					0,
					0 };
	queue[tail++] = 0;
	while (head < tail) {
		uint32_t dn = queue[head++];
		uint32_t dino = m->inodes[m->nodes[dn].inode].final;
		struct tinode *di = &t->inodes[dino];

		di->first = t->ndirents;
		di->nlink = 2;
		for (c = m->nodes[dn].first; c != LF_NIL;
		     c = m->nodes[c].next) {
			struct minode *mi = &m->inodes[m->nodes[c].inode];
			struct tinode *ti;
			const struct mnode *x;

			if (!mi->final) {
				mi->final = ++t->ninodes;
				ti = &t->inodes[mi->final];
				*ti = (struct tinode){
					mi->layer, mi->entry, 0, dino, 0, 0
				};
				if ((ret = add_link(m, mi, ti, &names)))
					goto out;
				if (mi->is_dir)
					queue[tail++] = c;
			}
			ti = &t->inodes[mi->final];
			/* dirs: 2 + subdirectories; others: visible names */
			if (mi->is_dir)
				t->inodes[dino].nlink++;
			else
				ti->nlink++;
			x = &m->nodes[c];
			if (names.len > UINT32_MAX - x->len) {
				ret = -E2BIG;
				goto out;
			}
			t->dirents[t->ndirents++] = (struct tdirent){
				(uint32_t)names.len, x->len, mi->final
			};
			if ((ret = lf_buf_add(&names, x->name, x->len)))
				goto out;
		}
		t->inodes[dino].count = t->ndirents - t->inodes[dino].first;
	}
	t->names = lf_buf_detach(&names, &t->names_len);
	ret = build_slots(t);
out:
	lf_buf_release(&names);
	free(queue);
	return ret;
}

static void mtree_release(struct mtree *m)
{
	free(m->nodes);
	free(m->inodes);
	free(m->buckets);
	free(m->stack);
	free(m->held);
}

struct lf_merge {
	struct mtree m;
	size_t n, next;	 /* layers, and the next one to apply */
	uint32_t *stamp; /* per minode, for lf_merge_dir_bytes() */
	uint32_t astamp, gen;
};

int lf_merge_new(struct lf_index *const *layers, size_t n,
		 lf_merge_gone_fn gone, void *arg, struct lf_merge **out)
{
	struct lf_merge *g = calloc(1, sizeof(*g));
	uint32_t root_ino;
	size_t total = 0, k;

	if (!g)
		return -ENOMEM;
	/* buckets for every entry at once: growing them hashes every name
	 * again each time */
	for (k = 0; k < n; k++)
		total += lf_index_count(layers[k]);
	g->m.layers = layers;
	g->m.gone = gone;
	g->m.gone_arg = arg;
	lf_hash_key(&g->m.hkey);
	g->n = n;
	if (rehash(&g->m, total) || new_inode(&g->m, -1, 0, true, &root_ino) ||
	    grow((void **)&g->m.nodes, &g->m.anodes, 1, sizeof(*g->m.nodes))) {
		lf_merge_free(g);
		return -ENOMEM;
	}
	g->m.nodes[g->m.nnodes++] = (struct mnode){
		"", 0, 0, LF_NIL, LF_NIL, LF_NIL, LF_NIL, LF_NIL, root_ino, 1
	};
	g->m.inodes[root_ino].names = 1;
	*out = g;
	return 0;
}

int lf_merge_apply(struct lf_merge *g, struct lf_err *err)
{
	int ret;

	if (g->next >= g->n)
		return lf_err_set(err, -EINVAL, "no layer left to apply");
	g->m.layer = (int)g->next;
	if ((ret = apply_layer(&g->m, g->m.layers[g->next], err)))
		return ret;
	if ((ret = g->m.gone_ret))
		return lf_err_set(err, ret, "layer %zu: %s", g->next + 1,
				  ret == -ENOMEM ? "out of memory"
						 : strerror(-ret));
	g->next++;
	return 0;
}

int lf_merge_dir_bytes(struct lf_merge *g, const char *path, size_t len,
		       uint64_t *bytes)
{
	struct mtree *m = &g->m;
	uint32_t dir = find_dir(m, path, len), top = 0, c;
	int ret;

	*bytes = 0;
	if (dir == LF_NIL)
		return -ENOENT;
	c = g->astamp;
	if ((ret = grow((void **)&g->stamp, &g->astamp, m->ninodes,
			sizeof(*g->stamp))))
		return ret;
	memset(g->stamp + c, 0, sizeof(*g->stamp) * (g->astamp - c));
	if (++g->gen == 0) { /* wrapped: start clean */
		memset(g->stamp, 0, sizeof(*g->stamp) * g->astamp);
		g->gen = 1;
	}
	if ((ret = grow((void **)&m->stack, &m->astack, 1, sizeof(uint32_t))))
		return ret;
	m->stack[top++] = dir;
	while (top) {
		uint32_t x = m->stack[--top];

		for (c = m->nodes[x].first; c != LF_NIL; c = m->nodes[c].next) {
			uint32_t in = m->nodes[c].inode;
			const struct minode *mi = &m->inodes[in];
			const struct lf_idx_entry *e;

			if (mi->is_dir) {
				ret = grow((void **)&m->stack, &m->astack,
					   top + 1, sizeof(uint32_t));
				if (ret)
					return ret;
				m->stack[top++] = c;
				continue;
			}
			if (g->stamp[in] == g->gen || mi->layer < 0)
				continue;
			g->stamp[in] = g->gen;
			e = lf_index_entry(m->layers[mi->layer], mi->entry);
			if (e->kind == LF_KIND_REG)
				*bytes += e->size;
		}
	}
	return 0;
}

int lf_merge_finish(struct lf_merge *g, struct lf_tree **out,
		    struct lf_err *err)
{
	struct lf_tree *t = calloc(1, sizeof(*t));
	int ret;

	if (!t || !(t->layers = malloc(sizeof(*t->layers) *
				       (g->next ? g->next : 1)))) {
		free(t);
		return lf_err_set(err, -ENOMEM, "out of memory");
	}
	memcpy(t->layers, g->m.layers, sizeof(*t->layers) * g->next);
	t->nlayers = g->next;
	t->hkey = g->m.hkey;
	if ((ret = freeze(&g->m, t))) {
		lf_tree_free(t);
		return lf_err_set(err, ret, "out of memory");
	}
	*out = t;
	return 0;
}

void lf_merge_free(struct lf_merge *g)
{
	if (!g)
		return;
	mtree_release(&g->m);
	free(g->stamp);
	free(g);
}

int lf_tree_build(struct lf_index *const *layers, size_t n,
		  struct lf_tree **out, struct lf_err *err)
{
	struct lf_merge *g;
	size_t i;
	int ret;

	if (lf_merge_new(layers, n, NULL, NULL, &g))
		return lf_err_set(err, -ENOMEM, "out of memory");
	for (i = 0, ret = 0; i < n && !ret; i++)
		ret = lf_merge_apply(g, err);
	if (!ret)
		ret = lf_merge_finish(g, out, err);
	lf_merge_free(g);
	return ret;
}

int lf_tree_build_layer(struct lf_index *const *layers, size_t n, size_t k,
			struct lf_tree **out, struct lf_err *err)
{
	const struct lf_index *idx = layers[k];
	size_t i, cnt = lf_index_count(idx);
	struct lf_merge *g;
	int ret = 0;

	if (k >= n)
		return lf_err_set(err, -EINVAL, "no layer %zu", k + 1);
	if (cnt >= UINT32_MAX)
		return lf_err_set(err, -E2BIG, "layer %zu: too many entries",
				  k + 1);
	if (lf_merge_new(layers, n, NULL, NULL, &g))
		return lf_err_set(err, -ENOMEM, "out of memory");
	g->m.layer = (int)k;
	/* every entry as the tar has it: whiteouts and opaque markers are
	 * empty files; a hardlink to a file of a lower layer is left out */
	for (i = 0; i < cnt && !ret; i++) {
		const struct lf_idx_entry *e = lf_index_entry(idx, i);

		if (e->kind == LF_KIND_HARDLINK &&
		    find_file(&g->m, lf_index_link(idx, e)) == LF_NIL)
			continue;
		ret = apply_entry(&g->m, idx, (uint32_t)i, err);
	}
	g->next = k + 1;
	if (!ret)
		ret = lf_merge_finish(g, out, err);
	lf_merge_free(g);
	return ret;
}

void lf_tree_free(struct lf_tree *t)
{
	if (!t)
		return;
	free(t->layers);
	free(t->checked);
	free(t->path);
	if (t->map) {
		lf_cache_unmap(t->map, t->maplen);
	} else {
		free(t->inodes);
		free(t->dirents);
		free(t->slots);
		free(t->names);
	}
	free(t);
}

// SPDX-License-Identifier: MIT
/* tree_lookup.c - queries on the frozen tree: stat, lookup, readdir, xattrs. */
#include "tree_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "layerfs/path.h"

#define MAX_SYMLINKS 40

uint64_t lf_tree_count(const struct lf_tree *t)
{
	return t->ninodes;
}

static const struct lf_idx_entry *entry_of(const struct lf_tree *t,
					   const struct tinode *ti)
{
	if (ti->layer < 0)
		return NULL;
	return lf_index_entry(t->layers[ti->layer], ti->entry);
}

static uint32_t type_bits(const struct lf_idx_entry *e)
{
	switch (e->kind) {
	case LF_KIND_DIR:
		return S_IFDIR;
	case LF_KIND_SYMLINK:
		return S_IFLNK;
	case LF_KIND_CHR:
		return S_IFCHR;
	case LF_KIND_BLK:
		return S_IFBLK;
	case LF_KIND_FIFO:
		return S_IFIFO;
	case LF_KIND_SOCK:
		return S_IFSOCK;
	default:
		return S_IFREG;
	}
}

static uint64_t stored_bytes(const struct lf_tree *t, const struct tinode *ti,
			     const struct lf_idx_entry *e)
{
	const struct lf_idx_sparse *s;
	uint64_t sum = 0;
	uint32_t k;

	if (!e->sparse_count)
		return e->size;
	s = lf_index_sparse(t->layers[ti->layer], e);
	for (k = 0; k < e->sparse_count; k++)
		sum += s[k].length;
	return sum;
}

int lf_tree_getattr(const struct lf_tree *t, uint64_t ino,
		    struct lf_tree_attr *a)
{
	const struct tinode *ti;
	const struct lf_idx_entry *e;

	if (ino < 1 || ino > t->ninodes)
		return -ENOENT;
	ti = &t->inodes[ino];
	e = entry_of(t, ti);
	memset(a, 0, sizeof(*a));
	a->ino = ino;
	a->nlink = ti->nlink;
	a->layer = ti->layer;
	a->entry = e;
	if (!e) {
		/* rule 2: an implicit directory is 0755 root:root, mtime 0 */
		a->mode = S_IFDIR | 0755;
		return 0;
	}
	a->mode = type_bits(e) | (e->mode & 07777);
	a->uid = e->uid;
	a->gid = e->gid;
	a->mtime = e->mtime;
	a->mtime_nsec = e->mtime_nsec;
	if (e->kind == LF_KIND_REG || e->kind == LF_KIND_HARDLINK) {
		a->size = e->size;
		a->blocks = (stored_bytes(t, ti, e) + 511) / 512;
	} else if (e->kind == LF_KIND_SYMLINK) {
		a->size = strlen(t->names + ti->first);
	} else if (e->kind == LF_KIND_CHR || e->kind == LF_KIND_BLK) {
		a->rdev_major = e->rdev >> 20;
		a->rdev_minor = e->rdev & 0xfffff;
	}
	return 0;
}

int lf_tree_lookup(const struct lf_tree *t, uint64_t dir, const char *name,
		   size_t len, uint64_t *ino)
{
	const struct lf_idx_entry *e;
	uint32_t h, s;

	if (dir < 1 || dir > t->ninodes)
		return -ENOENT;
	e = entry_of(t, &t->inodes[dir]);
	if (e && e->kind != LF_KIND_DIR) /* implicit inodes are directories */
		return -ENOTDIR;
	h = (uint32_t)lf_tree_hash(&t->hkey, dir, name, len) & (t->nslots - 1);
	for (; (s = t->slots[h]) != LF_NIL; h = (h + 1) & (t->nslots - 1)) {
		const struct tdirent *d = &t->dirents[s];

		if (s - t->inodes[dir].first < t->inodes[dir].count &&
		    d->len == len &&
		    !memcmp(lf_tree_dirent_name(t, d), name, len)) {
			*ino = d->ino;
			return 0;
		}
	}
	return -ENOENT;
}

uint64_t lf_tree_parent(const struct lf_tree *t, uint64_t dir)
{
	if (dir < 1 || dir > t->ninodes)
		return LF_TREE_ROOT;
	return t->inodes[dir].parent;
}

static bool is_symlink(const struct lf_tree *t, uint64_t ino)
{
	const struct lf_idx_entry *e = entry_of(t, &t->inodes[ino]);

	return e && e->kind == LF_KIND_SYMLINK;
}

/*
 * Resolution without recursion and without a length limit: `p` walks the
 * path; following a symlink makes a new work string (the target, then what
 * is left of the path) on the heap, at most MAX_SYMLINKS times, so a path
 * or target of any length costs memory in proportion, never stack.
 */
int lf_tree_resolve(const struct lf_tree *t, const char *path, int flags,
		    uint64_t *ino)
{
	uint64_t cur = LF_TREE_ROOT, next;
	const char *p = path, *comp;
	char *work = NULL;
	int links = 0, ret = 0;
	size_t len;

	while (!ret && lf_path_next(&p, &comp, &len)) {
		if (len == 1 && comp[0] == '.')
			continue;
		if (len == 2 && comp[0] == '.' && comp[1] == '.') {
			cur = lf_tree_parent(t, cur);
			continue;
		}
		if ((ret = lf_tree_lookup(t, cur, comp, len, &next)))
			break;
		if (is_symlink(t, next) &&
		    (p[strspn(p, "/")] || (flags & LF_TREE_FOLLOW))) {
			const char *target = lf_tree_readlink(t, next);
			size_t tl = strlen(target), rl = strlen(p);
			char *nw;

			if (++links > MAX_SYMLINKS) {
				ret = -ELOOP;
				break;
			}
			if (!(nw = malloc(tl + rl + 2))) {
				ret = -ENOMEM;
				break;
			}
			memcpy(nw, target, tl);
			nw[tl] = '/';
			memcpy(nw + tl + 1, p, rl + 1);
			free(work);
			p = work = nw;
			/* absolute targets restart at the image root */
			if (target[0] == '/')
				cur = LF_TREE_ROOT;
			continue;
		}
		cur = next;
	}
	free(work);
	if (!ret)
		*ino = cur;
	return ret;
}

size_t lf_tree_dir_count(const struct lf_tree *t, uint64_t dir)
{
	if (dir < 1 || dir > t->ninodes)
		return 0;
	return t->inodes[dir].count;
}

void lf_tree_dir_entry(const struct lf_tree *t, uint64_t dir, size_t i,
		       const char **name, size_t *len, uint64_t *ino)
{
	const struct tdirent *d = &t->dirents[t->inodes[dir].first + i];

	*name = lf_tree_dirent_name(t, d);
	*len = d->len;
	*ino = d->ino;
}

const char *lf_tree_readlink(const struct lf_tree *t, uint64_t ino)
{
	const struct lf_idx_entry *e;

	if (ino < 1 || ino > t->ninodes)
		return NULL;
	e = entry_of(t, &t->inodes[ino]);
	if (!e || e->kind != LF_KIND_SYMLINK)
		return NULL;
	return t->names + t->inodes[ino].first;
}

size_t lf_tree_xattr_count(const struct lf_tree *t, uint64_t ino)
{
	const struct lf_idx_entry *e;

	if (ino < 1 || ino > t->ninodes)
		return 0;
	e = entry_of(t, &t->inodes[ino]);
	return e ? e->xattr_count : 0;
}

void lf_tree_xattr(const struct lf_tree *t, uint64_t ino, size_t k,
		   const char **name, const void **value, size_t *len)
{
	const struct tinode *ti = &t->inodes[ino];

	lf_index_xattr(t->layers[ti->layer], entry_of(t, ti), k, name, value,
		       len);
}

int lf_tree_data(const struct lf_tree *t, uint64_t ino, size_t *layer,
		 const struct lf_idx_entry **e)
{
	const struct tinode *ti;

	if (ino < 1 || ino > t->ninodes)
		return -ENOENT;
	ti = &t->inodes[ino];
	*e = entry_of(t, ti);
	if (!*e || (*e)->kind != LF_KIND_REG)
		return -EINVAL;
	*layer = (size_t)ti->layer;
	return 0;
}

int lf_tree_getxattr(const struct lf_tree *t, uint64_t ino, const char *name,
		     const void **value, size_t *len)
{
	size_t k, n = lf_tree_xattr_count(t, ino);

	for (k = 0; k < n; k++) {
		const char *xn;

		lf_tree_xattr(t, ino, k, &xn, value, len);
		if (!strcmp(xn, name))
			return 0;
	}
	return -ENODATA;
}

void lf_tree_attr_stat(const struct lf_tree_attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = a->ino;
	st->st_mode = a->mode;
	st->st_nlink = a->nlink;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_size = (off_t)a->size;
	st->st_blocks = (blkcnt_t)a->blocks;
	st->st_blksize = 4096;
	st->st_rdev = makedev(a->rdev_major, a->rdev_minor);
	st->st_mtim.tv_sec = a->mtime;
	st->st_mtim.tv_nsec = a->mtime_nsec;
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

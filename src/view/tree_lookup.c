// SPDX-License-Identifier: MIT
/* tree_lookup.c - queries on the frozen tree: stat, lookup, readdir, xattrs. */
#include "tree_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "layerfs/log.h"
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

static bool kind_is_dir(const struct lf_tree *t, const struct tinode *ti)
{
	const struct lf_idx_entry *e = entry_of(t, ti);

	return !e || e->kind == LF_KIND_DIR;
}

/*
 * A mapped record failed its check.  The file passed the hashes, so it was
 * made so on purpose: say it once, and remove the file so that the next
 * open builds the tree again.  Bit 0 of checked[] (inode 0 is never used)
 * marks it said.
 */
static bool refuse(const struct lf_tree *t, const char *why)
{
	if (__atomic_fetch_or(&t->checked[0], 1, __ATOMIC_RELAXED) & 1)
		return false;
	lf_log(LF_LOG_WARN,
	       "tree cache file '%s': %s; removed, built again on next use",
	       t->path ? t->path : "?", why);
	if (t->path)
		unlink(t->path);
	return false;
}

bool lf_tree_inode_sane(const struct lf_tree *t, uint64_t ino)
{
	const struct tinode *ti;
	const struct lf_idx_entry *e;

	if (ino < 1 || ino > t->ninodes)
		return false;
	if (!t->checked)
		return true;
	ti = &t->inodes[ino];
	if (ti->layer < -1 || ti->layer >= (int32_t)t->nlayers ||
	    (ti->layer >= 0 &&
	     ti->entry >= lf_index_count(t->layers[ti->layer])) ||
	    ti->parent < 1 || ti->parent > t->ninodes)
		return false;
	e = entry_of(t, ti);
	if (!e || e->kind == LF_KIND_DIR)
		return ti->first <= t->ndirents &&
		       ti->count <= t->ndirents - ti->first &&
		       (ino == LF_TREE_ROOT || ti->parent < ino);
	if (ti->count)
		return false;
	return e->kind != LF_KIND_SYMLINK ||
	       (ti->first < t->names_len &&
		memchr(t->names + ti->first, '\0', t->names_len - ti->first));
}

bool lf_tree_inode_ok(const struct lf_tree *t, uint64_t ino)
{
	if (lf_tree_inode_sane(t, ino))
		return true;
	/* a number out of range is the caller's; a record, the file's */
	return ino >= 1 && ino <= t->ninodes &&
	       refuse(t, "an inode record out of bounds");
}

/* One path component: the upper dir creates files by these names. */
static bool name_ok(const char *p, size_t len)
{
	return len && !memchr(p, '/', len) && !memchr(p, '\0', len) &&
	       !(len == 1 && p[0] == '.') &&
	       !(len == 2 && p[0] == '.' && p[1] == '.');
}

/* Entry d of good directory `dir` (see tree_internal.h). */
static bool dirent_ok(const struct lf_tree *t, uint64_t dir,
		      const struct tdirent *d)
{
	const struct tinode *ci;

	if (!t->checked)
		return true;
	if (d->ino < 1 || d->ino > t->ninodes)
		return refuse(t, "a directory entry names no inode");
	if (!lf_tree_inode_ok(t, d->ino))
		return false;
	if (lf_range_outside(d->name, d->len, t->names_len) ||
	    !name_ok(t->names + d->name, d->len))
		return refuse(t, "a directory entry whose name is out of "
				 "bounds or not one path component");
	ci = &t->inodes[d->ino];
	if (kind_is_dir(t, ci) && (d->ino <= dir || ci->parent != dir))
		return refuse(t, "a directory loop");
	return true;
}

bool lf_tree_dir_checked(const struct lf_tree *t, uint64_t dir)
{
	const struct tinode *ti;
	uint64_t bit = (uint64_t)1 << (dir % 64);
	uint32_t k;

	if (!lf_tree_inode_ok(t, dir) || !kind_is_dir(t, &t->inodes[dir]))
		return false;
	if (!t->checked ||
	    (__atomic_load_n(&t->checked[dir / 64], __ATOMIC_ACQUIRE) & bit))
		return true;
	ti = &t->inodes[dir];
	for (k = ti->first; k < ti->first + ti->count; k++)
		if (!dirent_ok(t, dir, &t->dirents[k]))
			return false;
	/* a check made twice by two readers at once is harmless */
	__atomic_fetch_or(&t->checked[dir / 64], bit, __ATOMIC_RELEASE);
	return true;
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
	if (!lf_tree_inode_ok(t, ino))
		return -EIO;
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
	const struct tinode *di;
	uint32_t h, s, probes;

	if (dir < 1 || dir > t->ninodes)
		return -ENOENT;
	if (!lf_tree_inode_ok(t, dir))
		return -EIO;
	di = &t->inodes[dir];
	if (!kind_is_dir(t, di)) /* implicit inodes are directories */
		return -ENOTDIR;
	h = (uint32_t)lf_tree_hash(&t->hkey, dir, name, len) & (t->nslots - 1);
	/* at most nslots probes: a mapped table need not hold an empty slot */
	for (probes = 0; probes < t->nslots && (s = t->slots[h]) != LF_NIL;
	     probes++, h = (h + 1) & (t->nslots - 1)) {
		const struct tdirent *d;

		if (s - di->first >= di->count) /* another dir's, or bad */
			continue;
		d = &t->dirents[s];
		if (d->len != len ||
		    (t->checked &&
		     lf_range_outside(d->name, d->len, t->names_len)) ||
		    memcmp(lf_tree_dirent_name(t, d), name, len))
			continue;
		if (!dirent_ok(t, dir, d))
			return -EIO;
		*ino = d->ino;
		return 0;
	}
	return -ENOENT;
}

uint64_t lf_tree_parent(const struct lf_tree *t, uint64_t dir)
{
	if (!lf_tree_inode_ok(t, dir))
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
	/* a mapped directory's entries are checked here, once, so that
	 * lf_tree_dir_entry() below this count needs no check */
	if (!lf_tree_dir_checked(t, dir))
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

	if (!lf_tree_inode_ok(t, ino))
		return NULL;
	e = entry_of(t, &t->inodes[ino]);
	if (!e || e->kind != LF_KIND_SYMLINK)
		return NULL;
	return t->names + t->inodes[ino].first;
}

size_t lf_tree_xattr_count(const struct lf_tree *t, uint64_t ino)
{
	const struct lf_idx_entry *e;

	if (!lf_tree_inode_ok(t, ino))
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
	if (!lf_tree_inode_ok(t, ino))
		return -EIO;
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

// SPDX-License-Identifier: MIT
/*
 * fsops_views.c - the inode numbers of a mount with every prefix at once
 * (--all-layers): which view (tree) an inode belongs to, and the two
 * directories that hold the views.
 */
#include "fsops_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layerfs/log.h"

int lf_views_init(struct lf_fs *fs, struct lf_err *err)
{
	size_t n = lf_stack_count(fs->stack);

	if (!fs->opts.all_layers)
		return 0;
	if (n > LF_VIEWS_MAX_LAYERS)
		return lf_err_set(err, -E2BIG,
				  "--all-layers: %zu layers, more than %d", n,
				  LF_VIEWS_MAX_LAYERS);
	fs->nlayers = n;
	fs->views = calloc(2 * n + 1, sizeof(*fs->views));
	if (!fs->views)
		return lf_err_set(err, -ENOMEM, "out of memory");
	pthread_mutex_init(&fs->vmu, NULL);
	return 0;
}

void lf_views_free(struct lf_fs *fs)
{
	size_t v;

	if (!fs->views)
		return;
	for (v = 1; v <= 2 * fs->nlayers; v++)
		if (fs->views[v] && fs->views[v] != lf_stack_tree(fs->stack))
			lf_tree_free(fs->views[v]);
	free(fs->views);
	pthread_mutex_destroy(&fs->vmu);
}

/* View v's tree, made on first use: 1..N the prefixes, N+1..2N the
 * layers' own entries.  NULL when it cannot be made (logged). */
static struct lf_tree *view_tree(struct lf_fs *fs, unsigned v)
{
	struct lf_tree *t;
	struct lf_err err = { 0 };
	size_t n = fs->nlayers;
	int ret = 0;

	pthread_mutex_lock(&fs->vmu);
	t = __atomic_load_n(&fs->views[v], __ATOMIC_ACQUIRE);
	if (!t) {
		if (v == n)
			t = lf_stack_tree(fs->stack);
		else if (v < n)
			ret = lf_stack_tree_prefix(fs->stack, v, &t, &err);
		else
			ret = lf_tree_build_layer(lf_stack_indexes(fs->stack),
						  n, v - n - 1, &t, &err);
		if (ret)
			lf_log(LF_LOG_ERR, "--all-layers: view %u: %s", v,
			       err.msg);
		else /* published for the lock-free readers */
			__atomic_store_n(&fs->views[v], t, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&fs->vmu);
	return ret ? NULL : t;
}

struct lf_tree *lf_views_tree(struct lf_fs *fs, uint64_t ino, uint64_t *tino,
			      unsigned *view)
{
	struct lf_tree *t;
	unsigned v;

	if (!fs->opts.all_layers) {
		*tino = ino;
		*view = 0;
		return fs->tree;
	}
	v = (unsigned)(ino >> LF_VIEWS_SHIFT);
	*tino = ino & ((1ull << LF_VIEWS_SHIFT) - 1);
	*view = v;
	if (!v || v > 2 * fs->nlayers)
		return NULL;
	/* made by the lookup that gave out this number */
	t = __atomic_load_n(&fs->views[v], __ATOMIC_ACQUIRE);
	return t ? t : view_tree(fs, v);
}

uint64_t lf_views_ino(const struct lf_fs *fs, unsigned view, uint64_t tino)
{
	return fs->opts.all_layers ? ((uint64_t)view << LF_VIEWS_SHIFT) | tino
				   : tino;
}

/* ---- the synthetic directories: / and /layer ---- */

static void dir_stat(const struct lf_fs *fs, uint64_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = S_IFDIR | 0555;
	st->st_nlink = 2 + (uint32_t)fs->nlayers + (ino == LF_VIEWS_ROOT);
	st->st_blksize = 4096;
}

int lf_views_getattr(const struct lf_fs *fs, uint64_t ino, struct stat *st)
{
	if (ino != LF_VIEWS_ROOT && ino != LF_VIEWS_LAYERDIR)
		return -ENOENT;
	dir_stat(fs, ino, st);
	return 0;
}

/* "K" (1..N, no leading zero) as a number, or 0. */
static size_t number(const char *name, size_t n)
{
	size_t k = 0;
	const char *p;

	if (!*name || *name == '0' || strlen(name) > 6)
		return 0;
	for (p = name; *p; p++) {
		if (*p < '0' || *p > '9')
			return 0;
		k = k * 10 + (size_t)(*p - '0');
	}
	return k <= n ? k : 0;
}

int lf_views_lookup(struct lf_fs *fs, uint64_t parent, const char *name,
		    struct fuse_entry_param *e)
{
	size_t k = number(name, fs->nlayers);
	unsigned v;

	memset(e, 0, sizeof(*e));
	e->generation = 1;
	e->attr_timeout = LF_FS_TIMEOUT;
	e->entry_timeout = LF_FS_TIMEOUT;
	if (parent == LF_VIEWS_ROOT && !strcmp(name, "layer")) {
		dir_stat(fs, LF_VIEWS_LAYERDIR, &e->attr);
		e->ino = LF_VIEWS_LAYERDIR;
		return 0;
	}
	if ((parent != LF_VIEWS_ROOT && parent != LF_VIEWS_LAYERDIR) || !k)
		return -ENOENT;
	v = (unsigned)(parent == LF_VIEWS_ROOT ? k : fs->nlayers + k);
	if (!view_tree(fs, v))
		return -EIO;
	e->ino = lf_views_ino(fs, v, LF_TREE_ROOT);
	return 1; /* the caller fills the attributes of the view's root */
}

int lf_views_dirent(const struct lf_fs *fs, uint64_t dir, size_t i, char *name,
		    size_t size, uint64_t *ino, struct stat *st)
{
	size_t n = fs->nlayers;

	if (dir == LF_VIEWS_ROOT && i == n) {
		snprintf(name, size, "layer");
		*ino = LF_VIEWS_LAYERDIR;
		dir_stat(fs, *ino, st);
		return 0;
	}
	if (i >= n)
		return -ENOENT;
	snprintf(name, size, "%zu", i + 1);
	*ino = lf_views_ino(fs,
			    (unsigned)(dir == LF_VIEWS_ROOT ? i + 1
							    : n + i + 1),
			    LF_TREE_ROOT);
	/* a directory; its attributes come with a lookup */
	dir_stat(fs, *ino, st);
	return 0;
}

size_t lf_views_count(const struct lf_fs *fs, uint64_t dir)
{
	return dir == LF_VIEWS_ROOT ? fs->nlayers + 1 : fs->nlayers;
}

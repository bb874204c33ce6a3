// SPDX-License-Identifier: MIT
/* upper_dir.c - merged directory listings: the upper dir over the tree,
 * whiteouts and opacity applied, as snapshots served by handle. */
#include "upper_internal.h"

#include "layerfs/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#ifdef SYS_openat2
#include <linux/openat2.h>
#endif

/* --- directory listings ------------------------------------------------ */

struct dirsnap {
	struct lf_upper_dirent *ents;
	size_t n, cap;
	struct lf_buf names; /* NUL-separated; ents[i].name points in */
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool in_sorted(char **arr, size_t n, const char *s)
{
	return n && bsearch(&s, arr, n, sizeof(*arr), cmp_str);
}

static int snap_add(struct dirsnap *d, const char *name, uint64_t ino,
		    uint32_t type)
{
	if (d->n == d->cap) {
		size_t nc = d->cap ? d->cap * 2 : 64;
		struct lf_upper_dirent *p = realloc(d->ents, nc * sizeof(*p));

		if (!p)
			return -ENOMEM;
		d->ents = p;
		d->cap = nc;
	}
	/* store the offset now, fix up pointers when the buffer is final */
	d->ents[d->n++] = (struct lf_upper_dirent){
		(const char *)(uintptr_t)d->names.len, ino, type
	};
	return lf_buf_add(&d->names, name, strlen(name) + 1);
}

/* Read the upper dir: visible names, whiteout targets, opacity. */
static int scan_upper(int fd, char ***names, size_t *nn, char ***wh, size_t *nw,
		      bool *opaque)
{
	DIR *dp = fdopendir(fd);
	struct dirent *de;
	size_t cn = 0, cw = 0;

	if (!dp) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(dp))) {
		const char *nm = de->d_name;
		char ***arr = names;
		size_t *cnt = nn, *cap = &cn;

		if (!strcmp(nm, ".") || !strcmp(nm, ".."))
			continue;
		if (!strcmp(nm, LF_WH_OPAQUE)) {
			*opaque = true;
			continue;
		}
		if (lf_is_upper_tmp(nm))
			continue;
		if (lf_upper_reserved(nm)) {
			arr = wh;
			cnt = nw;
			cap = &cw;
			nm += strlen(LF_WH_PREFIX);
		}
		if (*cnt == *cap) {
			size_t nc = *cap ? *cap * 2 : 32;
			char **p = realloc(*arr, nc * sizeof(*p));

			if (!p)
				goto nomem;
			*arr = p;
			*cap = nc;
		}
		if (!((*arr)[*cnt] = strdup(nm)))
			goto nomem;
		(*cnt)++;
	}
	closedir(dp);
	if (*nn)
		qsort(*names, *nn, sizeof(char *), cmp_str);
	if (*nw)
		qsort(*wh, *nw, sizeof(char *), cmp_str);
	return 0;
nomem:
	/* a listing cut short would show lower names its whiteouts hide */
	closedir(dp);
	return -ENOMEM;
}

static void free_strs(char **a, size_t n)
{
	while (n--)
		free(a[n]);
	free(a);
}

static int build_snap(struct lf_upper *up, struct node *dir, struct dirsnap *d)
{
	char **names = NULL, **wh = NULL;
	size_t nn = 0, nw = 0, i, cnt;
	bool opaque = false;
	struct view v;
	struct stat st;
	int fd, ret = 0;

	/* no upper dir (-ENOENT): a lower directory only; any other failure
	 * (too deep, I/O) must not pass for an empty upper */
	ret = lf_upper_dirfd(up, dir, &fd);
	if (!ret)
		ret = scan_upper(fd, &names, &nn, &wh, &nw, &opaque);
	if (ret && ret != -ENOENT) {
		free_strs(names, nn);
		free_strs(wh, nw);
		return ret;
	}
	ret = 0;
	for (i = 0; i < nn && !ret; i++) {
		int vr = lf_upper_view(up, dir, names[i], &v);

		if (vr && vr != -ENOENT) {
			ret = vr;
			break;
		}
		if (vr || !v.upper)
			continue; /* vanished meanwhile */
		lf_upper_fill_stat(up, NULL, &v, &st);
		ret = snap_add(d, names[i], st.st_ino, st.st_mode & S_IFMT);
	}
	cnt = dir->lower && !opaque ? lf_tree_dir_count(up->tree, dir->lower)
				    : 0;
	for (i = 0; i < cnt && !ret; i++) {
		struct lf_tree_attr a;
		const char *nm;
		char name[NAME_MAX + 1];
		size_t len;
		uint64_t ino;

		lf_tree_dir_entry(up->tree, dir->lower, i, &nm, &len, &ino);
		if (len > NAME_MAX)
			continue;
		memcpy(name, nm, len);
		name[len] = '\0';
		if (in_sorted(wh, nw, name) || in_sorted(names, nn, name) ||
		    lf_upper_reserved(name))
			continue;
		lf_tree_getattr(up->tree, ino, &a);
		ret = snap_add(d, name, ino, a.mode & S_IFMT);
	}
	free_strs(names, nn);
	free_strs(wh, nw);
	for (i = 0; i < d->n; i++)
		d->ents[i].name = d->names.data + (uintptr_t)d->ents[i].name;
	return ret;
}

int lf_upper_opendir_locked(struct lf_upper *up, struct node *n, uint64_t *dh)
{
	struct dirsnap *d = calloc(1, sizeof(*d));
	struct view v;
	int ret;

	*dh = 0;
	if (!d)
		return -ENOMEM;
	lf_buf_init(&d->names);
	ret = lf_upper_node_view(up, n, &v);
	if (!ret) {
		bool isdir = v.upper ? S_ISDIR(v.ust.st_mode)
				     : (v.lower && S_ISDIR(v.lat.mode));

		ret = isdir ? build_snap(up, n, d) : -ENOTDIR;
	}
	if (ret) {
		lf_upper_releasedir(up, (uint64_t)(uintptr_t)d);
		return ret;
	}
	*dh = (uint64_t)(uintptr_t)d;
	return 0;
}

int lf_upper_opendir(struct lf_upper *up, uint64_t id, uint64_t *dh)
{
	struct node *n;
	int ret;

	pthread_mutex_lock(&up->lock);
	n = lf_upper_node(up, id);
	ret = n ? lf_upper_opendir_locked(up, n, dh) : -ESTALE;
	pthread_mutex_unlock(&up->lock);
	return ret;
}

int lf_upper_readdir(struct lf_upper *up, uint64_t dh, size_t i,
		     struct lf_upper_dirent *out)
{
	struct dirsnap *d = (struct dirsnap *)(uintptr_t)dh;

	(void)up;
	if (i >= d->n)
		return -ENOENT;
	*out = d->ents[i];
	return 0;
}

void lf_upper_releasedir(struct lf_upper *up, uint64_t dh)
{
	struct dirsnap *d = (struct dirsnap *)(uintptr_t)dh;

	(void)up;
	if (!d)
		return;
	free(d->ents);
	lf_buf_release(&d->names);
	free(d);
}

int lf_upper_dir_empty(struct lf_upper *up, struct node *dir, bool *empty)
{
	struct dirsnap d = { 0 };
	int ret;

	lf_buf_init(&d.names);
	ret = build_snap(up, dir, &d);
	*empty = d.n == 0;
	free(d.ents);
	lf_buf_release(&d.names);
	return ret;
}

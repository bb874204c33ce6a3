// SPDX-License-Identifier: MIT
/* upper.c - the merged view of one name (lookup, stat, readlink, xattrs),
 * and creating and freeing the upper. */
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

static bool exists_at(int fd, const char *name)
{
	struct stat st;

	return fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static int wh_name(const char *name, char *buf, size_t size)
{
	if (snprintf(buf, size, LF_WH_PREFIX "%s", name) >= (int)size)
		return -ENAMETOOLONG;
	return 0;
}

static bool dir_is_opaque(int dirfd, const char *name)
{
	int fd = openat(dirfd, name,
			O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	bool ret;

	if (fd < 0)
		return false;
	ret = exists_at(fd, LF_WH_OPAQUE);
	close(fd);
	return ret;
}

int lf_upper_view(struct lf_upper *up, struct node *dir, const char *name,
		  struct view *v)
{
	char wh[NAME_MAX + 8];
	uint64_t lino;
	int fd = -1, ret;
	bool dopaque = false;

	memset(v, 0, sizeof(*v));
	/* a name the host cannot hold (a long lower name) has neither an upper
	 * object nor a whiteout: it is the lower one */
	bool fits = strlen(name) <= NAME_MAX;
	bool wh_fits = !wh_name(name, wh, sizeof(wh)) && strlen(wh) <= NAME_MAX;

	ret = lf_upper_dirfd(up, dir, &fd);
	if (ret && ret != -ENOENT)
		return ret;
	if (!ret) {
		v->upper = fits &&
			   fstatat(fd, name, &v->ust, AT_SYMLINK_NOFOLLOW) == 0;
		if (v->upper) {
			bool reg = S_ISREG(v->ust.st_mode);

			lf_upper_owner_view(up, fd, name, &v->ust);
			v->placeholder = reg && !S_ISREG(v->ust.st_mode);
		}
		v->whiteout = wh_fits && exists_at(fd, wh);
		dopaque = exists_at(fd, LF_WH_OPAQUE);
		if (v->upper && S_ISDIR(v->ust.st_mode))
			v->opaque = dir_is_opaque(fd, name);
		close(fd);
	}
	if (dir->lower && !dopaque && !v->whiteout &&
	    !lf_tree_lookup(up->tree, dir->lower, name, strlen(name), &lino) &&
	    !lf_tree_getattr(up->tree, lino, &v->lat))
		v->lower = lino;
	return 0;
}

int lf_upper_id_view(struct lf_upper *up, uint64_t id, struct node **n,
		     struct view *v)
{
	*n = lf_upper_node(up, id);
	return *n ? lf_upper_node_view(up, *n, v) : -ESTALE;
}

int lf_upper_node_view(struct lf_upper *up, struct node *n, struct view *v)
{
	int fd;

	if (n->deleted)
		return -ENOENT;
	if (n->parent)
		return lf_upper_view(up, n->parent, n->name, v);
	/* the root: the upper dir itself over the tree's root */
	memset(v, 0, sizeof(*v));
	if (fstat(up->root, &v->ust) < 0)
		return -errno;
	lf_upper_owner_view(up, up->root, NULL, &v->ust);
	v->upper = true;
	if (!lf_upper_dirfd(up, n, &fd)) {
		v->opaque = exists_at(fd, LF_WH_OPAQUE);
		close(fd);
	}
	v->lower = LF_TREE_ROOT;
	return lf_tree_getattr(up->tree, LF_TREE_ROOT, &v->lat);
}

/* The lower inode a node falls through to, given its view. */
static uint64_t fall_through(const struct view *v)
{
	if (!v->lower)
		return 0;
	if (!v->upper)
		return v->lower;
	/* only a directory merges with a lower directory */
	if (S_ISDIR(v->ust.st_mode) && S_ISDIR(v->lat.mode) && !v->opaque)
		return v->lower;
	return 0;
}

/* The inode map: an open-addressing table of (dev, upper inode) -> the
 * number reported, at most half full; a slot with ino 0 is free. */
static size_t imap_home(const struct lf_upper *up, dev_t dev, ino_t upper)
{
	uint64_t x = (uint64_t)dev * 0x9e3779b97f4a7c15ull ^ (uint64_t)upper;

	/* splitmix64's finaliser: every bit of the key moves the slot */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return (size_t)x & (up->aimap - 1);
}

static struct ino_map_ent *imap_find(const struct lf_upper *up, dev_t dev,
				     ino_t upper)
{
	size_t k;

	if (!up->aimap)
		return NULL;
	for (k = imap_home(up, dev, upper); up->imap[k].ino;
	     k = (k + 1) & (up->aimap - 1))
		if (up->imap[k].dev == dev && up->imap[k].upper == upper)
			return &up->imap[k];
	return &up->imap[k]; /* the free slot where it would go */
}

/* Rehash into na slots (a power of two, more than twice nimap). */
static int imap_resize(struct lf_upper *up, size_t na)
{
	size_t i, old = up->aimap;
	struct ino_map_ent *prev = up->imap;

	if (!(up->imap = calloc(na, sizeof(*up->imap)))) {
		up->imap = prev;
		return -ENOMEM;
	}
	up->aimap = na;
	for (i = 0; i < old; i++)
		if (prev[i].ino)
			*imap_find(up, prev[i].dev, prev[i].upper) = prev[i];
	free(prev);
	return 0;
}

void lf_upper_map_ino(struct lf_upper *up, const struct stat *ust, uint64_t ino)
{
	struct ino_map_ent *e;

	if (!ino)
		return;
	if ((up->nimap + 1) * 2 > up->aimap &&
	    imap_resize(up, up->aimap ? up->aimap * 2 : 256))
		return; /* only costs inode stability */
	e = imap_find(up, ust->st_dev, ust->st_ino);
	if (!e->ino)
		up->nimap++;
	*e = (struct ino_map_ent){ ust->st_dev, ust->st_ino, ino };
}

void lf_upper_unmap_ino(struct lf_upper *up, const struct stat *ust)
{
	struct ino_map_ent *e = imap_find(up, ust->st_dev, ust->st_ino);
	size_t k, j, h, mask = up->aimap - 1;

	if (!e || !e->ino)
		return;
	/* backward-shift deletion: every entry after the hole that could
	 * sit in it moves up, so probes never stop early */
	k = (size_t)(e - up->imap);
	up->imap[k].ino = 0;
	up->nimap--;
	for (j = (k + 1) & mask; up->imap[j].ino; j = (j + 1) & mask) {
		h = imap_home(up, up->imap[j].dev, up->imap[j].upper);
		/* the entry at j may move to k when k lies cyclically in
		 * [h, j) */
		if (((j - h) & mask) >= ((j - k) & mask)) {
			up->imap[k] = up->imap[j];
			up->imap[j].ino = 0;
			k = j;
		}
	}
	/* a quarter of the slots that load made: give them back */
	if (up->aimap > 256 && up->nimap * 8 < up->aimap)
		(void)imap_resize(up, up->aimap / 2);
}

static uint64_t mapped_ino(struct lf_upper *up, const struct stat *ust)
{
	const struct ino_map_ent *e = imap_find(up, ust->st_dev, ust->st_ino);

	return e ? e->ino : 0;
}

void lf_upper_fill_stat(struct lf_upper *up, struct node *n,
			const struct view *v, struct stat *st)
{
	const struct lf_tree_attr *a = &v->lat;
	uint64_t ino;

	if (v->upper) {
		*st = v->ust;
		/* copied-up objects keep the lower inode number (overlayfs);
		 * after a remount, an upper object of the lower's type at the
		 * lower's path is taken for its copy, unless it has several
		 * names (then all of them must keep agreeing) or is an opaque
		 * directory (made anew over a deleted one, never a copy) */
		ino = mapped_ino(up, &v->ust);
		if (!ino && v->lower &&
		    (v->ust.st_mode & S_IFMT) == (a->mode & S_IFMT) &&
		    (S_ISDIR(a->mode) ? !v->opaque
				      : a->nlink <= 1 && v->ust.st_nlink <= 1))
			ino = v->lower;
		if (!ino)
			ino = UPPER_INO_BIT | (uint64_t)v->ust.st_ino;
		st->st_ino = ino;
		/* like overlayfs: counting subdirs of a merged dir is not
		 * worth it, and 1 keeps find(1) from optimising wrongly */
		if (S_ISDIR(st->st_mode) && fall_through(v))
			st->st_nlink = 1;
	} else {
		lf_tree_attr_stat(a, st);
	}
	if (n)
		n->ino = st->st_ino;
}

int lf_upper_lookup(struct lf_upper *up, uint64_t parent, const char *name,
		    uint64_t *id, struct stat *st)
{
	struct node *dir, *n;
	struct view v;
	int ret;

	pthread_mutex_lock(&up->lock);
	dir = lf_upper_node(up, parent);
	if (!dir) {
		ret = -ESTALE;
		goto out;
	}
	/* whiteouts and our temp files are never part of the view */
	if (lf_upper_reserved(name)) {
		ret = -ENOENT;
		goto out;
	}
	if ((ret = lf_upper_view(up, dir, name, &v)))
		goto out;
	if (!v.upper && !v.lower) {
		ret = -ENOENT;
		goto out;
	}
	ret = lf_upper_get_node(up, dir, name, fall_through(&v), &n);
	if (ret)
		goto out;
	lf_upper_fill_stat(up, n, &v, st);
	*id = n->id;
out:
	pthread_mutex_unlock(&up->lock);
	return ret;
}

int lf_upper_getattr(struct lf_upper *up, uint64_t id, struct stat *st)
{
	struct node *n;
	struct view v;
	int ret;

	pthread_mutex_lock(&up->lock);
	ret = lf_upper_id_view(up, id, &n, &v);
	if (!ret && !v.upper && !v.lower)
		ret = -ENOENT;
	if (!ret)
		lf_upper_fill_stat(up, n, &v, st);
	pthread_mutex_unlock(&up->lock);
	return ret;
}

int lf_upper_in_upper(struct lf_upper *up, uint64_t id, bool *in_upper)
{
	int layer, ret = lf_upper_origin(up, id, &layer);

	if (!ret)
		*in_upper = layer == LF_UPPER_ORIGIN_UPPER;
	return ret;
}

int lf_upper_origin(struct lf_upper *up, uint64_t id, int *layer)
{
	struct node *n;
	struct view v;
	int ret;

	pthread_mutex_lock(&up->lock);
	ret = lf_upper_id_view(up, id, &n, &v);
	if (!ret)
		*layer = v.upper   ? LF_UPPER_ORIGIN_UPPER
			 : v.lower ? v.lat.layer
				   : -1;
	pthread_mutex_unlock(&up->lock);
	return ret;
}

int lf_upper_readlink(struct lf_upper *up, uint64_t id, char *buf, size_t size)
{
	struct node *n;
	struct view v;
	ssize_t len;
	int fd, ret;

	pthread_mutex_lock(&up->lock);
	ret = lf_upper_id_view(up, id, &n, &v);
	if (ret)
		goto out;
	if (v.upper) {
		ret = -EINVAL;
		if (!S_ISLNK(v.ust.st_mode) ||
		    (ret = lf_upper_dirfd(up, n->parent, &fd)))
			goto out;
		len = readlinkat(fd, n->name, buf, size - 1);
		ret = len < 0 ? -errno : 0;
		close(fd);
		if (len >= 0)
			buf[len] = '\0';
	} else if (v.lower && S_ISLNK(v.lat.mode)) {
		snprintf(buf, size, "%s", lf_tree_readlink(up->tree, v.lower));
	} else {
		ret = -EINVAL;
	}
out:
	pthread_mutex_unlock(&up->lock);
	return ret;
}

/* --- xattrs ------------------------------------------------------------ */

int lf_upper_xattr_fd(struct lf_upper *up, struct node *n, const struct view *v,
		      int *out)
{
	int dfd, fd, ret;

	if (!n->parent)
		return (*out = fcntl(up->root, F_DUPFD_CLOEXEC, 0)) < 0 ? -errno
									: 0;
	if (!S_ISREG(v->ust.st_mode) && !S_ISDIR(v->ust.st_mode))
		return -EPERM; /* user.* xattrs exist on files and dirs only */
	if ((ret = lf_upper_dirfd(up, n->parent, &dfd)))
		return ret;
	ret = lf_upper_open_at(dfd, n->name, O_RDONLY, &fd);
	close(dfd);
	*out = ret ? -1 : fd;
	return ret == -EIO || ret == -ELOOP ? -EPERM : ret;
}

ssize_t lf_upper_getxattr(struct lf_upper *up, uint64_t id, const char *name,
			  void *buf, size_t size)
{
	struct node *n;
	struct view v;
	ssize_t ret;
	int fd;

	pthread_mutex_lock(&up->lock);
	ret = lf_upper_id_view(up, id, &n, &v);
	if (ret)
		goto out;
	if (v.upper) {
		ret = lf_upper_xattr_fd(up, n, &v, &fd);
		if (ret == -EPERM)
			ret = -ENODATA;
		if (ret)
			goto out;
		ret = lf_upper_is_override(name)
			      ? (errno = ENODATA, -1)
			      : fgetxattr(fd, name, buf, size);
		ret = ret < 0 ? -errno : ret;
		close(fd);
		goto out;
	}
	{
		const void *val;
		size_t len;

		ret = lf_tree_getxattr(up->tree, v.lower, name, &val, &len);
		if (!ret) {
			ret = (ssize_t)len;
			if (size && size < len)
				ret = -ERANGE;
			else if (size)
				memcpy(buf, val, len);
		}
	}
out:
	pthread_mutex_unlock(&up->lock);
	return ret;
}

/* flistxattr() without the override record. */
static ssize_t list_shown(int fd, char *buf, size_t size)
{
	ssize_t len = flistxattr(fd, NULL, 0), got;
	size_t total = 0;
	char *all, *p;

	if (len <= 0)
		return len < 0 ? -errno : 0;
	/* one spare byte: the list may grow between the two calls */
	if (!(all = malloc((size_t)len + 1)))
		return -ENOMEM;
	got = flistxattr(fd, all, (size_t)len + 1);
	if (got < 0) {
		got = errno == ERANGE ? -EAGAIN : -errno;
		free(all);
		return got;
	}
	for (p = all; p < all + got; p += strlen(p) + 1) {
		size_t l = strlen(p) + 1;

		if (lf_upper_is_override(p))
			continue;
		if (size && total + l > size) {
			free(all);
			return -ERANGE;
		}
		if (size)
			memcpy(buf + total, p, l);
		total += l;
	}
	free(all);
	return (ssize_t)total;
}

ssize_t lf_upper_listxattr(struct lf_upper *up, uint64_t id, char *buf,
			   size_t size)
{
	struct node *n;
	struct view v;
	ssize_t ret;
	size_t total = 0;
	int fd;

	pthread_mutex_lock(&up->lock);
	ret = lf_upper_id_view(up, id, &n, &v);
	if (ret)
		goto out;
	if (v.upper) {
		ret = lf_upper_xattr_fd(up, n, &v, &fd);
		if (ret == -EPERM) {
			ret = 0;
			goto out;
		}
		if (ret)
			goto out;
		ret = list_shown(fd, buf, size);
		close(fd);
		goto out;
	}
	for (size_t k = 0; k < lf_tree_xattr_count(up->tree, v.lower); k++) {
		const char *xn;
		const void *val;
		size_t len, l;

		lf_tree_xattr(up->tree, v.lower, k, &xn, &val, &len);
		l = strlen(xn) + 1;
		if (size && total + l > size) {
			ret = -ERANGE;
			goto out;
		}
		if (size)
			memcpy(buf + total, xn, l);
		total += l;
	}
	ret = (ssize_t)total;
out:
	pthread_mutex_unlock(&up->lock);
	return ret;
}

int lf_upper_statfs(struct lf_upper *up, struct statvfs *sv)
{
	return fstatvfs(up->root, sv) < 0 ? -errno : 0;
}

static bool is_empty_dir(int fd)
{
	int d = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	bool empty = true;
	DIR *dp;

	if (d < 0 || !(dp = fdopendir(d))) {
		if (d >= 0)
			close(d);
		return false;
	}
	while (empty && (de = readdir(dp)))
		empty = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
	closedir(dp);
	return empty;
}

/*
 * The upper dir is the merged view's root: a fresh one takes the image
 * root's owner, mode and times, as a copy-up of the root would.
 */
static void adopt_root(struct lf_upper *up)
{
	struct lf_tree_attr a;
	struct timespec ts[2];

	if (lf_tree_getattr(up->tree, LF_TREE_ROOT, &a))
		return;
	ts[0].tv_sec = ts[1].tv_sec = a.mtime;
	ts[0].tv_nsec = ts[1].tv_nsec = a.mtime_nsec;
	if (up->rootless) {
		struct stat img = { .st_mode = S_IFDIR | (a.mode & 07777),
				    .st_uid = a.uid,
				    .st_gid = a.gid };

		int r = lf_upper_owner_set(up, -1, up->root, NULL, &img);

		if (r)
			lf_log(LF_LOG_WARN,
			       "cannot record the image root's owner on the "
			       "upper directory (user xattrs): %s",
			       strerror(-r));
	} else if (fchown(up->root, a.uid, a.gid) < 0) {
		/* cannot happen as root; the directory stays the user's */
	}
	if (fchmod(up->root, lf_upper_host_mode(up, S_IFDIR, a.mode)) < 0 ||
	    futimens(up->root, ts) < 0)
		lf_log(LF_LOG_WARN,
		       "cannot give the upper directory the "
		       "image root's metadata: %s",
		       strerror(errno));
}

int lf_upper_new(const char *dir, const struct lf_stack *stack,
		 struct lf_upper **out, struct lf_err *err)
{
	struct lf_upper *up = calloc(1, sizeof(*up));
	struct node *root;
	struct stat st;
	bool created = false;

	if (!up || !(up->hash = calloc(NHASH, sizeof(*up->hash))))
		goto nomem;
	up->root = -1;
	pthread_mutex_init(&up->lock, NULL);
	up->stack = stack;
	up->tree = lf_stack_tree(stack);
	up->rootless = geteuid() != 0;
	up->host_uid = geteuid();
	up->host_gid = getegid();
	if (mkdir(dir, 0755) == 0) {
		created = true;
	} else if (errno != EEXIST) {
		lf_err_set(err, -errno,
			   "cannot create upper directory '%s': %s", dir,
			   strerror(errno));
		goto fail;
	}
	up->root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (up->root < 0 || fstat(up->root, &st) < 0) {
		lf_err_set(err, -errno, "cannot open upper directory '%s': %s",
			   dir, strerror(errno));
		goto fail;
	}
	up->dev = st.st_dev;
	/* an upper dir a normal user's mount made (its root has a record):
	 * what that user owns without a record is the owner's, whoever
	 * reads it */
	up->map_owner = up->rootless;
	if (!up->rootless && st.st_uid != 0 &&
	    fgetxattr(up->root, LF_UPPER_OVERRIDE_XATTR, NULL, 0) > 0) {
		up->map_owner = true;
		up->host_uid = st.st_uid;
		up->host_gid = st.st_gid;
	}
	/* only a directory we made: diff and commit open existing ones and
	 * must not change them */
	if (created && is_empty_dir(up->root))
		adopt_root(up);
	/* id 0 is never used: FUSE's root is 1 */
	if (lf_upper_new_node(up, NULL, "", &root) ||
	    lf_upper_new_node(up, NULL, "", &root))
		goto nomem;
	free(up->nodes[0]->name);
	free(up->nodes[0]);
	up->nodes[0] = NULL;
	root->lower = LF_TREE_ROOT;
	root->nlookup = 1;
	if (lf_upper_fdc_init(up))
		goto nomem;
	*out = up;
	return 0;
nomem:
	lf_err_set(err, -ENOMEM, "out of memory");
fail:
	lf_upper_free(up);
	return err ? err->code : -ENOMEM;
}

void lf_upper_free(struct lf_upper *up)
{
	uint64_t i;

	if (!up)
		return;
	for (i = 0; i < up->nnodes; i++) {
		if (up->nodes[i]) {
			free(up->nodes[i]->name);
			free(up->nodes[i]);
		}
	}
	lf_upper_fdc_free(up);
	free(up->nodes);
	free(up->free_ids);
	free(up->hash);
	free(up->imap);
	if (up->root >= 0)
		close(up->root);
	pthread_mutex_destroy(&up->lock);
	free(up);
}

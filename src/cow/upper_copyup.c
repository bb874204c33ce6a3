// SPDX-License-Identifier: MIT
/* upper_copyup.c - copy lower objects into the upper dir, parents first. */
#include "upper_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#define COPY_BUF (1u << 20)

/* A rootless copy's record of the lower object's owner, mode and type
 * (symlinks cannot hold one). */
static int record(struct lf_upper *up, int fd, int dirfd, const char *name,
		  const struct lf_tree_attr *a)
{
	struct stat img = { .st_mode = a->mode,
			    .st_uid = a->uid,
			    .st_gid = a->gid,
			    .st_rdev = makedev(a->rdev_major, a->rdev_minor) };

	if (S_ISLNK(a->mode))
		return 0;
	return lf_upper_owner_set(up, fd, dirfd, name, &img);
}

/* Owner, xattrs, mode and times of a copied object, in that order (chown
 * clears suid bits; times last, after everything that would touch them). */
static int set_meta(struct lf_upper *up, int fd, int dirfd, const char *name,
		    const struct lf_tree_attr *a, uint64_t ino)
{
	struct timespec ts[2] = { { a->mtime, a->mtime_nsec },
				  { a->mtime, a->mtime_nsec } };
	size_t k;
	int ret;

	if (up->rootless && (ret = record(up, fd, dirfd, name, a)))
		return ret;
	if (!up->rootless &&
	    fchownat(dirfd, name, a->uid, a->gid, AT_SYMLINK_NOFOLLOW) < 0 &&
	    errno != EPERM)
		return -errno;
	if (fd >= 0) {
		for (k = 0; k < lf_tree_xattr_count(up->tree, ino); k++) {
			const char *xn;
			const void *v;
			size_t len;

			lf_tree_xattr(up->tree, ino, k, &xn, &v, &len);
			/* trusted.* and security.* need privileges we may not
			 * have; the copy is still a faithful one for users */
			if (lf_upper_is_override(xn))
				continue;
			if (fsetxattr(fd, xn, v, len, 0) < 0 &&
			    errno != EPERM && errno != ENOTSUP)
				return -errno;
		}
		if (fchmod(fd, lf_upper_host_mode(up, a->mode & S_IFMT,
						  a->mode)) < 0)
			return -errno;
	} else if (!S_ISLNK(a->mode) &&
		   (ret = lf_upper_chmod_at(dirfd, name,
					    lf_upper_host_mode(up, S_IFREG,
							       a->mode)))) {
		return ret;
	}
	ret = fd >= 0 ? futimens(fd, ts)
		      : utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW);
	return ret < 0 ? -errno : 0;
}

static int copy_data(struct lf_upper *up, uint64_t ino, int fd)
{
	const struct lf_idx_entry *e;
	struct lf_err err;
	size_t layer;
	uint64_t off = 0;
	char *buf;
	int ret = 0;

	if (lf_tree_data(up->tree, ino, &layer, &e))
		return -EIO;
	buf = malloc(COPY_BUF);
	if (!buf)
		return -ENOMEM;
	while (off < e->size) {
		ssize_t n = lf_stack_read_file(up->stack, layer, e, buf,
					       COPY_BUF, off, &err);
		size_t done = 0;

		if (n <= 0) {
			ret = n < 0 ? (int)n : -EIO;
			break;
		}
		/* keep holes of sparse files: skip all-zero blocks */
		while (done < (size_t)n) {
			size_t m = LF_MIN((size_t)n - done, 65536);
			ssize_t w;

			if (e->sparse_count && buf[done] == 0 &&
			    !memcmp(buf + done, buf + done + 1, m - 1)) {
				done += m;
				continue;
			}
			w = pwrite(fd, buf + done, m, (off_t)(off + done));
			if (w < 0) {
				ret = -errno;
				goto out;
			}
			done += (size_t)w;
		}
		off += (uint64_t)n;
	}
	if (!ret && ftruncate(fd, (off_t)e->size) < 0)
		ret = -errno;
out:
	free(buf);
	return ret;
}

/*
 * A regular file: data into an unnamed temp file (O_TMPFILE) linked into
 * place when complete, or, where the filesystem has no O_TMPFILE, a temp
 * name the merged view never shows, renamed into place.  A crash at any
 * point leaves the old state or the whole copy.  fill_tmp() makes the
 * complete copy (the slow part: it may run without the lock), place_tmp()
 * gives it its name.
 */
struct tmpcopy {
	int fd;
	bool named;
	char tmp[64];
};

static int fill_tmp(struct lf_upper *up, int pfd, uint64_t ino,
		    struct tmpcopy *t)
{
	struct lf_tree_attr a;
	int ret;

	t->named = false;
	if ((ret = lf_tree_getattr(up->tree, ino, &a)))
		return ret;
	t->fd = openat(pfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (t->fd < 0) {
		snprintf(t->tmp, sizeof(t->tmp), LF_UPPER_TMP_PREFIX "%d.%llu",
			 (int)getpid(), (unsigned long long)ino);
		t->fd = openat(pfd, t->tmp,
			       O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC |
				       O_NOFOLLOW,
			       0600);
		if (t->fd < 0)
			return -errno;
		t->named = true;
	}
	ret = copy_data(up, ino, t->fd);
	if (!ret) {
		struct timespec ts[2] = { { a.mtime, a.mtime_nsec },
					  { a.mtime, a.mtime_nsec } };
		size_t k;

		if (up->rootless)
			ret = record(up, t->fd, pfd, NULL, &a);
		else if (fchown(t->fd, a.uid, a.gid) < 0 && errno != EPERM)
			ret = -errno;
		for (k = 0; !ret && k < lf_tree_xattr_count(up->tree, ino);
		     k++) {
			const char *xn;
			const void *v;
			size_t len;

			lf_tree_xattr(up->tree, ino, k, &xn, &v, &len);
			if (lf_upper_is_override(xn))
				continue;
			if (fsetxattr(t->fd, xn, v, len, 0) < 0 &&
			    errno != EPERM && errno != ENOTSUP)
				ret = -errno;
		}
		if (!ret &&
		    fchmod(t->fd, lf_upper_host_mode(up, S_IFREG, a.mode)) < 0)
			ret = -errno;
		if (!ret && futimens(t->fd, ts) < 0)
			ret = -errno;
	}
	if (ret)
		lf_upper_drop_tmp(pfd, t);
	return ret;
}

void lf_upper_drop_tmp(int pfd, struct tmpcopy *t)
{
	if (t->fd < 0)
		return;
	if (t->named)
		unlinkat(pfd, t->tmp, 0);
	close(t->fd);
	t->fd = -1;
}

static int place_tmp(int pfd, const char *name, struct tmpcopy *t)
{
	char proc[64];
	int ret = 0;

	if (!t->named) {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", t->fd);
		if (linkat(AT_FDCWD, proc, pfd, name, AT_SYMLINK_FOLLOW) < 0)
			ret = -errno;
	} else if (renameat(pfd, t->tmp, pfd, name) < 0) {
		ret = -errno;
	} else {
		t->named = false; /* nothing left to unlink */
	}
	lf_upper_drop_tmp(pfd, t);
	return ret;
}

static int copy_file(struct lf_upper *up, int pfd, const char *name,
		     uint64_t ino)
{
	struct tmpcopy t;
	int ret = fill_tmp(up, pfd, ino, &t);

	return ret ? ret : place_tmp(pfd, name, &t);
}

static int copy_one(struct lf_upper *up, int pfd, const char *name,
		    uint64_t ino)
{
	struct lf_tree_attr a;
	const char *target;
	int fd, ret;

	if ((ret = lf_tree_getattr(up->tree, ino, &a)))
		return ret;
	switch (a.mode & S_IFMT) {
	case S_IFREG:
		return copy_file(up, pfd, name, ino);
	case S_IFDIR:
		if (mkdirat(pfd, name, 0700) < 0)
			return -errno;
		fd = openat(pfd, name,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		ret = set_meta(up, fd, pfd, name, &a, ino);
		close(fd);
		return ret;
	case S_IFLNK:
		target = lf_tree_readlink(up->tree, ino);
		if (symlinkat(target ? target : "", pfd, name) < 0)
			return -errno;
		return set_meta(up, -1, pfd, name, &a, ino);
	default:
		if (up->rootless) {
			/* a regular file stands in; its record has the type */
			fd = openat(pfd, name,
				    O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW |
					    O_CLOEXEC,
				    0600);
			if (fd < 0)
				return -errno;
			ret = record(up, fd, pfd, name, &a);
			if (!ret)
				ret = futimens(fd,
					       (struct timespec[2]){
						       { a.mtime,
							 a.mtime_nsec },
						       { a.mtime,
							 a.mtime_nsec } }) < 0
					      ? -errno
					      : 0;
			close(fd);
			return ret;
		}
		if (mknodat(pfd, name, a.mode,
			    makedev(a.rdev_major, a.rdev_minor)) < 0)
			return -errno;
		return set_meta(up, -1, pfd, name, &a, ino);
	}
}

/* After an object was made in pfd: its inode number, the parent's times. */
static int copied(struct lf_upper *up, int pfd, const char *name,
		  const struct view *v, const struct stat *pst)
{
	struct timespec ts[2] = { pst->st_atim, pst->st_mtim };
	struct stat st;

	/* the copy keeps the lower inode number, unless the lower file had
	 * other links: those stay behind, and one number for two different
	 * files would be a lie (overlayfs without index=on does the same) */
	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		lf_upper_map_ino(up, &st,
				 S_ISDIR(v->lat.mode) || v->lat.nlink <= 1
					 ? v->lower
					 : UPPER_INO_BIT | (uint64_t)st.st_ino);
	/* copy-up is not a change of the parent: keep its times (overlayfs
	 * does the same) */
	return futimens(pfd, ts) < 0 ? -errno : 0;
}

int lf_upper_copyup(struct lf_upper *up, struct node *n)
{
	struct view v;
	struct stat pst;
	int pfd, ret;

	if (!n->parent)
		return 0; /* the upper dir itself */
	if ((ret = lf_upper_node_view(up, n, &v)))
		return ret;
	if (v.upper)
		return 0;
	if (!v.lower)
		return -ENOENT;
	if ((ret = lf_upper_parent_fd(up, n->parent, &pfd)))
		return ret;
	if (fstat(pfd, &pst) < 0)
		ret = -errno;
	if (!ret)
		ret = copy_one(up, pfd, n->name, v.lower);
	if (!ret)
		ret = copied(up, pfd, n->name, &v, &pst);
	close(pfd);
	return ret;
}

/*
 * Copy the data of a lower regular file without holding the lock (a huge
 * file takes long, and every other operation on the mount waits for the
 * lock): parents are copied up under the lock, the data goes into a temp
 * file with the lock released, and the copy is linked into place under the
 * lock again if the node still falls through to the same lower file in the
 * same directory.  Otherwise the copy is dropped (lf_upper_copyup() then
 * does whatever is left).  Called and returns with the lock held.
 */
int lf_upper_copyup_unlocked(struct lf_upper *up, uint64_t id)
{
	struct node *n = lf_upper_node(up, id);
	struct stat pst, now;
	struct tmpcopy t;
	struct view v;
	uint64_t lower;
	int pfd, dfd, ret;

	if (!n || !n->parent || lf_upper_node_view(up, n, &v) || v.upper ||
	    !v.lower || !S_ISREG(v.lat.mode))
		return 0;
	lower = v.lower;
	if ((ret = lf_upper_parent_fd(up, n->parent, &pfd)))
		return ret;
	pthread_mutex_unlock(&up->lock);
	ret = fill_tmp(up, pfd, lower, &t);
	pthread_mutex_lock(&up->lock);
	if (ret)
		goto out;
	/* the same node, lower file and parent directory as before? */
	n = lf_upper_node(up, id);
	if (!n || !n->parent || lf_upper_node_view(up, n, &v) || v.upper ||
	    v.lower != lower || lf_upper_dirfd(up, n->parent, &dfd)) {
		lf_upper_drop_tmp(pfd, &t);
		goto out;
	}
	ret = fstat(dfd, &now) < 0 || fstat(pfd, &pst) < 0 ? -errno : 0;
	close(dfd);
	if (!ret && (now.st_ino != pst.st_ino || now.st_dev != pst.st_dev)) {
		lf_upper_drop_tmp(pfd, &t);
		goto out;
	}
	if (!ret)
		ret = place_tmp(pfd, n->name, &t);
	else
		lf_upper_drop_tmp(pfd, &t);
	if (!ret)
		ret = copied(up, pfd, n->name, &v, &pst);
out:
	close(pfd);
	return ret;
}

int lf_upper_parent_fd(struct lf_upper *up, struct node *dir, int *fd)
{
	int ret = lf_upper_copyup(up, dir);

	return ret ? ret : lf_upper_dirfd(up, dir, fd);
}

int lf_upper_copyup_tree(struct lf_upper *up, struct node *n)
{
	uint64_t dh;
	size_t i;
	int ret = lf_upper_copyup(up, n);
	struct lf_upper_dirent d;
	struct view v;

	if (ret || lf_upper_node_view(up, n, &v) || !S_ISDIR(v.ust.st_mode))
		return ret;
	if (!n->lower)
		return 0; /* nothing below to bring up */
	/* lf_upper_opendir takes the lock we hold: build the list directly */
	ret = lf_upper_opendir_locked(up, n, &dh);
	for (i = 0; !ret && !lf_upper_readdir(up, dh, i, &d); i++) {
		struct node *c;
		struct view cv;

		if (lf_upper_view(up, n, d.name, &cv))
			continue;
		ret = lf_upper_get_node(up, n, d.name,
					cv.lower && (!cv.upper ||
						     S_ISDIR(cv.ust.st_mode))
						? cv.lower
						: 0,
					&c);
		if (ret)
			break;
		ret = lf_upper_copyup_tree(up, c);
		lf_upper_put_node(up, c);
	}
	lf_upper_releasedir(up, dh);
	return ret;
}

int lf_upper_clear_whiteouts(int dirfd)
{
	/* not a dup: that would share (and move) dirfd's offset */
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	DIR *dp;
	int ret = 0;

	if (fd < 0 || !(dp = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	/* a whiteout is a name: whatever has one goes (an empty directory
	 * too, one with contents is an error) */
	while ((de = readdir(dp)))
		if (lf_upper_reserved(de->d_name) &&
		    unlinkat(dirfd, de->d_name, 0) < 0 &&
		    (errno != EISDIR ||
		     unlinkat(dirfd, de->d_name, AT_REMOVEDIR) < 0) &&
		    errno != ENOENT)
			ret = -errno;
	closedir(dp);
	return ret;
}

int lf_upper_make_whiteout(int dirfd, const char *name)
{
	char wh[NAME_MAX + 8];
	int fd;

	if (snprintf(wh, sizeof(wh), LF_WH_PREFIX "%s", name) >=
	    (int)sizeof(wh))
		return -ENAMETOOLONG;
	/* anything already named .wh.NAME is the whiteout: never open it */
	fd = openat(dirfd, wh,
		    O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_NONBLOCK |
			    O_CLOEXEC,
		    0644);
	if (fd < 0)
		return errno == EEXIST ? 0 : -errno;
	close(fd);
	return 0;
}

int lf_upper_remove_whiteout(int dirfd, const char *name)
{
	char wh[NAME_MAX + 8];

	if (snprintf(wh, sizeof(wh), LF_WH_PREFIX "%s", name) >=
	    (int)sizeof(wh))
		return -ENAMETOOLONG;
	if (unlinkat(dirfd, wh, 0) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

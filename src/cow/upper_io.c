// SPDX-License-Identifier: MIT
/* upper_io.c - open files, data, attributes and xattr changes. */
#include "upper_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

static int node_view(struct lf_upper *up, uint64_t id, struct node **n,
		     struct view *v)
{
	int ret = lf_upper_id_view(up, id, n, v);

	if (ret)
		return ret;
	return v->upper || v->lower ? 0 : -ENOENT;
}

/* Open the upper object of node n (already copied up) with `flags`. */
static int open_upper(struct lf_upper *up, struct node *n, int flags, int *fd)
{
	int pfd, ret;

	if (!n->parent)
		return lf_upper_open_at(up->root, ".", flags, fd);
	if ((ret = lf_upper_dirfd(up, n->parent, &pfd)))
		return ret;
	ret = lf_upper_open_at(pfd, n->name, flags, fd);
	close(pfd);
	return ret;
}

static int new_ofile(int fd, uint64_t lower, uint64_t *fh)
{
	struct ofile *of = malloc(sizeof(*of));

	if (!of)
		return -ENOMEM;
	of->fd = fd;
	of->lower = lower;
	*fh = (uint64_t)(uintptr_t)of;
	return 0;
}

int lf_upper_open(struct lf_upper *up, uint64_t id, int flags, uint64_t *fh)
{
	bool writing = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
	struct node *n;
	struct view v;
	int fd = -1, ret;

	flags &= ~(O_CREAT | O_EXCL | O_NOCTTY);
	pthread_mutex_lock(&up->lock);
	ret = node_view(up, id, &n, &v);
	if (ret)
		goto out;
	if (S_ISDIR(v.upper ? v.ust.st_mode : v.lat.mode)) {
		ret = writing ? -EISDIR : 0;
		if (!ret)
			ret = open_upper(up, n, O_RDONLY | O_DIRECTORY, &fd);
		goto done;
	}
	if (!v.upper && !writing) {
		/* read-only and not copied up: served from the blob */
		ret = new_ofile(-1, v.lower, fh);
		goto out;
	}
	/* the data without the lock, then whatever is left under it */
	if (writing && (ret = lf_upper_copyup_unlocked(up, id)))
		goto out;
	if (writing && (ret = node_view(up, id, &n, &v)))
		goto out;
	if (writing && (ret = lf_upper_copyup(up, n)))
		goto out;
	ret = open_upper(up, n, flags, &fd);
done:
	if (!ret && (ret = new_ofile(fd, 0, fh)))
		close(fd);
out:
	pthread_mutex_unlock(&up->lock);
	return ret;
}

ssize_t lf_upper_read(struct lf_upper *up, uint64_t fh, void *buf, size_t size,
		      off_t off)
{
	struct ofile *of = (struct ofile *)(uintptr_t)fh;
	const struct lf_idx_entry *e;
	struct lf_err err;
	size_t layer;
	ssize_t n;

	if (of->fd >= 0) {
		n = pread(of->fd, buf, size, off);
		return n < 0 ? -errno : n;
	}
	if (lf_tree_data(up->tree, of->lower, &layer, &e))
		return -EINVAL;
	n = lf_stack_read_file(up->stack, layer, e, buf, size, (uint64_t)off,
			       &err);
	return n < 0 ? -EIO : n;
}

ssize_t lf_upper_write(struct lf_upper *up, uint64_t fh, const void *buf,
		       size_t size, off_t off)
{
	struct ofile *of = (struct ofile *)(uintptr_t)fh;
	ssize_t n;

	(void)up;
	if (of->fd < 0)
		return -EBADF;
	/* an O_APPEND fd appends whatever the offset (pwrite(2) BUGS) */
	n = pwrite(of->fd, buf, size, off);
	return n < 0 ? -errno : n;
}

int lf_upper_fsync(struct lf_upper *up, uint64_t fh, bool datasync)
{
	struct ofile *of = (struct ofile *)(uintptr_t)fh;

	(void)up;
	if (of->fd < 0)
		return 0;
	if ((datasync ? fdatasync(of->fd) : fsync(of->fd)) < 0)
		return -errno;
	return 0;
}

int lf_upper_fallocate(struct lf_upper *up, uint64_t fh, int mode, off_t off,
		       off_t len)
{
	struct ofile *of = (struct ofile *)(uintptr_t)fh;

	(void)up;
	if (of->fd < 0)
		return -EBADF;
	return fallocate(of->fd, mode, off, len) < 0 ? -errno : 0;
}

void lf_upper_release(struct lf_upper *up, uint64_t fh)
{
	struct ofile *of = (struct ofile *)(uintptr_t)fh;

	(void)up;
	if (!of)
		return;
	if (of->fd >= 0)
		close(of->fd);
	free(of);
}

int lf_upper_create(struct lf_upper *up, uint64_t parent, const char *name,
		    mode_t mode, int flags, uid_t uid, gid_t gid, uint64_t *id,
		    struct stat *st, uint64_t *fh)
{
	struct node *n;
	struct view v;
	int fd, ret;

	*id = 0;
	/* mknod makes it (with every check and the whiteout dance), then it
	 * is opened like any upper file */
	ret = lf_upper_mknod(up, parent, name, (mode & 07777) | S_IFREG, 0, uid,
			     gid, id, st);
	if (ret == -EEXIST && !(flags & O_EXCL)) {
		ret = lf_upper_lookup(up, parent, name, id, st);
		if (!ret)
			ret = lf_upper_open(up, *id, flags, fh);
		if (ret && *id)
			lf_upper_forget(up, *id, 1);
		return ret;
	}
	if (ret)
		return ret;
	pthread_mutex_lock(&up->lock);
	ret = node_view(up, *id, &n, &v);
	if (!ret)
		ret = open_upper(up, n, flags & ~(O_CREAT | O_EXCL | O_TRUNC),
				 &fd);
	if (!ret && (ret = new_ofile(fd, 0, fh)))
		close(fd);
	pthread_mutex_unlock(&up->lock);
	if (ret)
		lf_upper_forget(up, *id, 1);
	return ret;
}

static int set_times(int dirfd, const char *name, const struct stat *attr,
		     int what)
{
	struct timespec ts[2];

	ts[0] = attr->st_atim;
	ts[1] = attr->st_mtim;
	if (!(what & LF_SET_ATIME))
		ts[0].tv_nsec = UTIME_OMIT;
	if (!(what & LF_SET_MTIME))
		ts[1].tv_nsec = UTIME_OMIT;
	if (what & LF_SET_ATIME_NOW)
		ts[0].tv_nsec = UTIME_NOW;
	if (what & LF_SET_MTIME_NOW)
		ts[1].tv_nsec = UTIME_NOW;
	if (!name) /* dirfd is the object itself */
		return futimens(dirfd, ts) < 0 ? -errno : 0;
	return utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

/*
 * Change an upper object's attributes: through the open file when there is
 * one, else through an fd of the object itself (never a second lookup of a
 * name that could have become a symlink meanwhile).
 */
/*
 * A rootless daemon's chown and chmod of a file or directory: the record
 * takes the new owner and mode (the view's are the old ones), the host copy
 * the mode with owner access kept.
 */
static int rootless_attrs(struct lf_upper *up, const struct view *v, int fd,
			  int dfd, const char *name, const struct stat *attr,
			  int what)
{
	struct stat img = v->ust;
	int ret;

	if (what & LF_SET_UID)
		img.st_uid = attr->st_uid;
	if (what & LF_SET_GID)
		img.st_gid = attr->st_gid;
	if (what & LF_SET_MODE)
		img.st_mode = (img.st_mode & S_IFMT) | (attr->st_mode & 07777);
	/* like chown(2): a change of owner drops the set-id bits */
	else if ((what & (LF_SET_UID | LF_SET_GID)) && !S_ISDIR(img.st_mode))
		img.st_mode &= ~(mode_t)(S_ISUID | S_ISGID);
	if ((ret = lf_upper_owner_set(up, fd, dfd, name, &img)))
		return ret;
	if (!(what & LF_SET_MODE) || v->placeholder)
		return 0;
	if (fd >= 0)
		return fchmod(fd, lf_upper_host_mode(up, img.st_mode & S_IFMT,
						     img.st_mode)) < 0
			       ? -errno
			       : 0;
	return lf_upper_chmod_at(dfd, name ? name : ".",
				 lf_upper_host_mode(up, img.st_mode & S_IFMT,
						    img.st_mode));
}

static int apply_attrs(struct lf_upper *up, struct node *n, uint64_t fh,
		       const struct view *v, const struct stat *attr, int what)
{
	struct ofile *of = (struct ofile *)(uintptr_t)fh;
	const char *name = n->parent ? n->name : ".";
	uid_t uid = (what & LF_SET_UID) ? attr->st_uid : (uid_t)-1;
	gid_t gid = (what & LF_SET_GID) ? attr->st_gid : (gid_t)-1;
	int dfd, fd = -1, ret = 0;

	if (n->parent) {
		if ((ret = lf_upper_dirfd(up, n->parent, &dfd)))
			return ret;
	} else if ((dfd = fcntl(up->root, F_DUPFD_CLOEXEC, 0)) < 0) {
		return -errno;
	}
	if (of && of->fd >= 0)
		fd = of->fd;
	else if (what & LF_SET_SIZE)
		ret = lf_upper_open_at(dfd, name, O_WRONLY, &fd);
	if (!ret && (what & LF_SET_SIZE) && ftruncate(fd, attr->st_size) < 0)
		ret = -errno;
	if (up->rootless && (what & (LF_SET_UID | LF_SET_GID | LF_SET_MODE)) &&
	    (S_ISREG(v->ust.st_mode) || S_ISDIR(v->ust.st_mode) ||
	     v->placeholder)) {
		if (!ret)
			ret = rootless_attrs(up, v, fd, dfd,
					     n->parent ? name : NULL, attr,
					     what);
		what &= ~(LF_SET_UID | LF_SET_GID | LF_SET_MODE);
	}
	if (!ret && (what & (LF_SET_UID | LF_SET_GID)) &&
	    (fd >= 0 ? fchown(fd, uid, gid)
		     : fchownat(dfd, name, uid, gid, AT_SYMLINK_NOFOLLOW)) < 0)
		ret = -errno;
	if (!ret && (what & LF_SET_MODE)) {
		if (fd >= 0)
			ret = fchmod(fd, attr->st_mode & 07777) < 0 ? -errno
								    : 0;
		else
			ret = lf_upper_chmod_at(dfd, name,
						attr->st_mode & 07777);
	}
	if (!ret && (what & (LF_SET_ATIME | LF_SET_MTIME | LF_SET_ATIME_NOW |
			     LF_SET_MTIME_NOW)))
		ret = set_times(fd >= 0 ? fd : dfd, fd >= 0 ? NULL : name, attr,
				what);
	if (fd >= 0 && !(of && of->fd == fd))
		close(fd);
	close(dfd);
	return ret;
}

int lf_upper_setattr(struct lf_upper *up, uint64_t id, uint64_t fh,
		     const struct stat *attr, int what, struct stat *st)
{
	struct node *n;
	struct view v;
	int ret;

	pthread_mutex_lock(&up->lock);
	ret = node_view(up, id, &n, &v);
	if (!ret && (what & LF_SET_SIZE) &&
	    S_ISDIR(v.upper ? v.ust.st_mode : v.lat.mode))
		ret = -EISDIR;
	/* metadata-only changes copy up too (overlayfs without metacopy);
	 * file data is copied without the lock */
	if (!ret && !(ret = lf_upper_copyup_unlocked(up, id)))
		ret = node_view(up, id, &n, &v);
	if (!ret)
		ret = lf_upper_copyup(up, n);
	if (!ret)
		ret = lf_upper_node_view(up, n, &v);
	if (!ret)
		ret = apply_attrs(up, n, fh, &v, attr, what);
	if (!ret)
		ret = lf_upper_node_view(up, n, &v);
	if (!ret)
		lf_upper_fill_stat(up, n, &v, st);
	pthread_mutex_unlock(&up->lock);
	return ret;
}

static bool lower_has_xattr(struct lf_upper *up, uint64_t ino, const char *name)
{
	const void *v;
	size_t len;

	return lf_tree_getxattr(up->tree, ino, name, &v, &len) == 0;
}

static int xattr_change(struct lf_upper *up, uint64_t id, const char *name,
			const void *value, size_t size, int flags, bool remove)
{
	struct node *n;
	struct view v;
	int fd = -1, ret;

	/* the ownership record is layerfs's, not the image's */
	if (lf_upper_is_override(name))
		return -EPERM;
	pthread_mutex_lock(&up->lock);
	ret = node_view(up, id, &n, &v);
	/* like the kernel: no user.* xattrs on symlinks and special files */
	if (!ret && !S_ISREG(v.upper ? v.ust.st_mode : v.lat.mode) &&
	    !S_ISDIR(v.upper ? v.ust.st_mode : v.lat.mode) &&
	    !strncmp(name, "user.", 5))
		ret = -EPERM;
	/* removing what a lower object does not have changes nothing: no
	 * copy-up, just ENODATA (overlayfs checks the same way) */
	if (!ret && remove && !v.upper && !lower_has_xattr(up, v.lower, name))
		ret = -ENODATA;
	if (!ret && !(ret = lf_upper_copyup_unlocked(up, id)))
		ret = node_view(up, id, &n, &v);
	if (!ret)
		ret = lf_upper_copyup(up, n);
	if (!ret)
		ret = lf_upper_node_view(up, n, &v);
	if (!ret)
		ret = lf_upper_xattr_fd(up, n, &v, &fd);
	if (!ret && (remove ? fremovexattr(fd, name)
			    : fsetxattr(fd, name, value, size, flags)) < 0)
		ret = -errno;
	if (fd >= 0)
		close(fd);
	pthread_mutex_unlock(&up->lock);
	return ret;
}

int lf_upper_setxattr(struct lf_upper *up, uint64_t id, const char *name,
		      const void *value, size_t size, int flags)
{
	return xattr_change(up, id, name, value, size, flags, false);
}

int lf_upper_removexattr(struct lf_upper *up, uint64_t id, const char *name)
{
	return xattr_change(up, id, name, NULL, 0, 0, true);
}

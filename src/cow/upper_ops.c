// SPDX-License-Identifier: MIT
/* upper_ops.c - changes to the merged view, carried out in the upper dir. */
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

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

static bool view_exists(const struct view *v)
{
	return v->upper || v->lower;
}

static mode_t view_mode(const struct view *v)
{
	return v->upper ? v->ust.st_mode : v->lat.mode;
}

static int dir_node(struct lf_upper *up, uint64_t id, struct node **out)
{
	struct node *n = lf_upper_node(up, id);
	struct view v;
	int ret;

	if (!n)
		return -ESTALE;
	if ((ret = lf_upper_node_view(up, n, &v)))
		return ret;
	if (!view_exists(&v))
		return -ENOENT;
	if (!S_ISDIR(view_mode(&v)))
		return -ENOTDIR;
	*out = n;
	return 0;
}

/* The node that a (dir, name) pair currently has, if any. */
static struct node *find_child(struct lf_upper *up, struct node *dir,
			       const char *name)
{
	/* deleted nodes are renamed to "" and never match a real name */
	return lf_upper_find_node(up, dir, name);
}

static void mark_deleted(struct lf_upper *up, struct node *dir,
			 const char *name)
{
	struct node *n = find_child(up, dir, name);

	if (n) {
		/* take it out of the (dir, name) index, keep it for the
		 * kernel's remaining references */
		lf_upper_move_node(up, n, dir, "");
		lf_upper_fdc_forget(up, n->id);
		n->deleted = true;
		n->lower = 0;
	}
}

/*
 * Checks before creating `name` in directory node `dir`, then the upper
 * directory fd (parents copied up).  *whiteout: a whiteout must go once the
 * object exists.
 */
static int prepare_create(struct lf_upper *up, uint64_t parent,
			  const char *name, struct node **dirp, int *pfd,
			  bool *whiteout)
{
	struct view v;
	int ret;

	if ((ret = dir_node(up, parent, dirp)))
		return ret;
	/* a .wh. name in the upper dir would be read as a whiteout */
	if (lf_upper_reserved(name))
		return -EINVAL;
	if (strlen(name) > NAME_MAX - strlen(LF_WH_PREFIX))
		return -ENAMETOOLONG;
	if ((ret = lf_upper_view(up, *dirp, name, &v)))
		return ret;
	if (view_exists(&v))
		return -EEXIST;
	*whiteout = v.whiteout;
	return lf_upper_parent_fd(up, *dirp, pfd);
}

/* Give a new object the caller's owner (as root). */
static int set_owner(int pfd, const char *name, uid_t uid, gid_t gid,
		     mode_t mode)
{
	struct stat pst;

	/* a setgid parent gives its group, as the kernel would */
	if (fstat(pfd, &pst) == 0 && (pst.st_mode & S_ISGID))
		gid = (gid_t)-1;
	if (fstatat(pfd, name, &pst, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (fchownat(pfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0 &&
	    errno != EPERM)
		return -errno;
	/* chown clears set-id bits; the object keeps the mode it was made
	 * with (including a setgid inherited from its directory) */
	if ((mode & 07000 || pst.st_mode & 07000) && !S_ISLNK(mode))
		return lf_upper_chmod_at(pfd, name, pst.st_mode & 07777);
	return 0;
}

/*
 * A rootless daemon's new object belongs to the upper's owner in the image
 * (the group of a setgid parent, which also passes setgid on to a
 * directory); files and directories record it, symlinks cannot.
 */
static int rootless_owner(struct lf_upper *up, int pfd, const char *name,
			  mode_t mode, dev_t rdev)
{
	struct stat img = { .st_mode = mode, .st_rdev = rdev }, pst;

	if (S_ISLNK(mode))
		return 0;
	img.st_uid = up->owner_uid;
	img.st_gid = up->owner_gid;
	if (fstat(pfd, &pst) < 0)
		return -errno;
	lf_upper_owner_view(up, pfd, NULL, &pst);
	if (pst.st_mode & S_ISGID) {
		img.st_gid = pst.st_gid;
		if (S_ISDIR(mode))
			img.st_mode |= S_ISGID;
	}
	if (S_ISREG(mode) || S_ISDIR(mode)) {
		int ret = lf_upper_chmod_at(pfd, name,
					    lf_upper_host_mode(up,
							       mode & S_IFMT,
							       mode));
		if (ret)
			return ret;
	}
	return lf_upper_owner_set(up, -1, pfd, name, &img);
}

/* After creating: drop the whiteout, own the object, make its node. */
static int finish_create(struct lf_upper *up, struct node *dir, int pfd,
			 const char *name, bool whiteout, uid_t uid, gid_t gid,
			 mode_t mode, dev_t rdev, uint64_t *id, struct stat *st)
{
	struct node *n;
	struct view v;
	int ret;

	if (up->rootless)
		ret = rootless_owner(up, pfd, name, mode, rdev);
	else
		ret = set_owner(pfd, name, uid, gid, mode);
	if (ret)
		return ret;
	if (whiteout && (ret = lf_upper_remove_whiteout(pfd, name)))
		return ret;
	if ((ret = lf_upper_view(up, dir, name, &v)))
		return ret;
	if (!v.upper)
		return -EIO;
	/* upper-only: its own inode number (not a lower one by path) */
	lf_upper_map_ino(up, &v.ust, UPPER_INO_BIT | (uint64_t)v.ust.st_ino);
	v.lower = 0;
	if ((ret = lf_upper_get_node(up, dir, name, 0, &n)))
		return ret;
	lf_upper_fill_stat(up, n, &v, st);
	*id = n->id;
	return 0;
}

/* mknod, or for a rootless daemon's special file a regular file standing
 * in for it (its type goes in the record). */
static int make_node(struct lf_upper *up, int pfd, const char *name,
		     mode_t mode, dev_t rdev)
{
	int fd;

	if (!up->rootless || S_ISREG(mode))
		return mknodat(pfd, name, mode, rdev) < 0 ? -errno : 0;
	fd = openat(pfd, name,
		    O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

int lf_upper_mknod(struct lf_upper *up, uint64_t parent, const char *name,
		   mode_t mode, dev_t rdev, uid_t uid, gid_t gid, uint64_t *id,
		   struct stat *st)
{
	struct node *dir;
	bool wh;
	int pfd = -1, ret;

	pthread_mutex_lock(&up->lock);
	ret = prepare_create(up, parent, name, &dir, &pfd, &wh);
	if (!ret)
		ret = make_node(up, pfd, name, mode, rdev);
	if (!ret)
		ret = finish_create(up, dir, pfd, name, wh, uid, gid, mode,
				    rdev, id, st);
	if (pfd >= 0)
		close(pfd);
	pthread_mutex_unlock(&up->lock);
	return ret;
}

/*
 * Whiteout bookkeeping inside a directory is not a change the user made:
 * keep the directory's times (overlayfs keeps such state in xattrs, which
 * do not touch mtime).
 */
static int keep_times(int fd, const struct stat *before)
{
	struct timespec ts[2] = { before->st_atim, before->st_mtim };

	return futimens(fd, ts) < 0 ? -errno : 0;
}

static int make_opaque(int pfd, const char *name)
{
	int fd = openat(pfd, name,
			O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC),
	    m, ret = 0;
	struct stat st;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		ret = -errno;
	/* whatever already has the name marks it opaque (only names count
	 * in an OCI layer); never open it, it may be a FIFO */
	m = ret ? -1
		: openat(fd, LF_WH_OPAQUE,
			 O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_NONBLOCK |
				 O_CLOEXEC,
			 0644);
	if (!ret && m < 0 && errno != EEXIST)
		ret = -errno;
	if (m >= 0)
		close(m);
	if (!ret)
		ret = keep_times(fd, &st);
	close(fd);
	return ret;
}

int lf_upper_mkdir(struct lf_upper *up, uint64_t parent, const char *name,
		   mode_t mode, uid_t uid, gid_t gid, uint64_t *id,
		   struct stat *st)
{
	struct node *dir;
	bool wh;
	int pfd = -1, ret;

	pthread_mutex_lock(&up->lock);
	ret = prepare_create(up, parent, name, &dir, &pfd, &wh);
	if (!ret && mkdirat(pfd, name, mode) < 0)
		ret = -errno;
	/* a directory made where something was deleted must not show what
	 * the lower layers still hold there: opaque, as overlayfs does */
	if (!ret && wh)
		ret = make_opaque(pfd, name);
	if (!ret)
		ret = finish_create(up, dir, pfd, name, wh, uid, gid,
				    mode | S_IFDIR, 0, id, st);
	if (pfd >= 0)
		close(pfd);
	pthread_mutex_unlock(&up->lock);
	return ret;
}

int lf_upper_symlink(struct lf_upper *up, uint64_t parent, const char *name,
		     const char *target, uid_t uid, gid_t gid, uint64_t *id,
		     struct stat *st)
{
	struct node *dir;
	bool wh;
	int pfd = -1, ret;

	pthread_mutex_lock(&up->lock);
	ret = prepare_create(up, parent, name, &dir, &pfd, &wh);
	if (!ret && symlinkat(target, pfd, name) < 0)
		ret = -errno;
	if (!ret)
		ret = finish_create(up, dir, pfd, name, wh, uid, gid, S_IFLNK,
				    0, id, st);
	if (pfd >= 0)
		close(pfd);
	pthread_mutex_unlock(&up->lock);
	return ret;
}

int lf_upper_link(struct lf_upper *up, uint64_t id, uint64_t parent,
		  const char *name, uint64_t *newid, struct stat *st)
{
	struct node *src, *dir, *n;
	struct view v;
	bool wh = false;
	int pfd = -1, sfd = -1, ret;

	pthread_mutex_lock(&up->lock);
	ret = lf_upper_id_view(up, id, &src, &v);
	if (!ret && !view_exists(&v))
		ret = -ENOENT;
	if (!ret && S_ISDIR(view_mode(&v)))
		ret = -EPERM;
	if (!ret)
		ret = prepare_create(up, parent, name, &dir, &pfd, &wh);
	/* a lower file is copied up, then linked (overlayfs does the same) */
	if (!ret)
		ret = lf_upper_copyup(up, src);
	if (!ret)
		ret = lf_upper_dirfd(up, src->parent, &sfd);
	if (!ret && linkat(sfd, src->name, pfd, name, 0) < 0)
		ret = -errno;
	if (!ret && wh)
		ret = lf_upper_remove_whiteout(pfd, name);
	if (!ret)
		ret = lf_upper_view(up, dir, name, &v);
	if (!ret) {
		v.lower = 0;
		ret = lf_upper_get_node(up, dir, name, 0, &n);
	}
	if (!ret) {
		lf_upper_fill_stat(up, n, &v, st);
		*newid = n->id;
	}
	if (pfd >= 0)
		close(pfd);
	if (sfd >= 0)
		close(sfd);
	pthread_mutex_unlock(&up->lock);
	return ret;
}

static int remove_common(struct lf_upper *up, uint64_t parent, const char *name,
			 bool rmdir)
{
	struct node *dir, *c = NULL;
	struct view v;
	bool empty = true;
	int pfd = -1, cfd, ret;

	if ((ret = dir_node(up, parent, &dir)))
		return ret;
	if (lf_upper_reserved(name))
		return -ENOENT;
	if ((ret = lf_upper_view(up, dir, name, &v)))
		return ret;
	if (!view_exists(&v))
		return -ENOENT;
	if (rmdir && !S_ISDIR(view_mode(&v)))
		return -ENOTDIR;
	if (!rmdir && S_ISDIR(view_mode(&v)))
		return -EISDIR;
	if (rmdir) {
		uint64_t ft = v.lower && (!v.upper ||
					  (S_ISDIR(v.lat.mode) && !v.opaque))
				      ? v.lower
				      : 0;

		if ((ret = lf_upper_get_node(up, dir, name, ft, &c)))
			return ret;
		ret = lf_upper_dir_empty(up, c, &empty);
		lf_upper_put_node(up, c);
		if (ret)
			return ret;
		if (!empty)
			return -ENOTEMPTY;
	}
	/* the whiteout needs the parent in the upper dir */
	if ((v.lower || v.upper) && (ret = lf_upper_parent_fd(up, dir, &pfd)))
		return ret;
	if (v.upper && rmdir) {
		cfd = openat(pfd, name,
			     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (cfd >= 0) {
			ret = lf_upper_clear_whiteouts(cfd);
			close(cfd);
		}
	}
	if (!ret && v.upper && unlinkat(pfd, name, rmdir ? AT_REMOVEDIR : 0))
		ret = -errno;
	/* the upper object is gone (its inode number may come back for
	 * another one), and with a directory every cached fd below it */
	if (!ret && v.upper && (rmdir || v.ust.st_nlink <= 1))
		lf_upper_unmap_ino(up, &v.ust);
	if (!ret && v.upper && rmdir)
		lf_upper_fdc_flush(up);
	if (!ret && v.lower)
		ret = lf_upper_make_whiteout(pfd, name);
	if (!ret)
		mark_deleted(up, dir, name);
	close(pfd);
	return ret;
}

int lf_upper_unlink(struct lf_upper *up, uint64_t parent, const char *name)
{
	int ret;

	pthread_mutex_lock(&up->lock);
	ret = remove_common(up, parent, name, false);
	pthread_mutex_unlock(&up->lock);
	return ret;
}

int lf_upper_rmdir(struct lf_upper *up, uint64_t parent, const char *name)
{
	int ret;

	pthread_mutex_lock(&up->lock);
	ret = remove_common(up, parent, name, true);
	pthread_mutex_unlock(&up->lock);
	return ret;
}

/* Descendants of a moved directory no longer fall through to the lower
 * content of the old path (it was all copied up). */
static void cut_lower(struct lf_upper *up, struct node *dir)
{
	uint64_t i;

	dir->lower = 0;
	if (!dir->nchild)
		return; /* a file, or a directory no node lies below */
	for (i = 1; i < up->nnodes; i++) {
		struct node *n = up->nodes[i], *p;

		for (p = n ? n->parent : NULL; p; p = p->parent)
			if (p == dir) {
				n->lower = 0;
				break;
			}
	}
}

/* Bring a rename source fully into the upper dir; dirs lose their
 * whiteouts (nothing below them any more). */
static int lift(struct lf_upper *up, struct node *dir, const char *name,
		const struct view *v, struct node **out)
{
	uint64_t ft = v->lower && (!v->upper ||
				   (S_ISDIR(v->lat.mode) &&
				    S_ISDIR(v->ust.st_mode) && !v->opaque))
			      ? v->lower
			      : 0;
	struct node *n;
	int ret, fd, cfd;

	if ((ret = lf_upper_get_node(up, dir, name, ft, &n)))
		return ret;
	ret = S_ISDIR(view_mode(v)) ? lf_upper_copyup_tree(up, n)
				    : lf_upper_copyup(up, n);
	if (!ret && S_ISDIR(view_mode(v)) && !lf_upper_dirfd(up, dir, &fd)) {
		struct stat cst;

		cfd = openat(fd, name,
			     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (cfd >= 0 && fstat(cfd, &cst) == 0) {
			ret = lf_upper_clear_whiteouts(cfd);
			if (!ret)
				ret = keep_times(cfd, &cst);
		}
		if (cfd >= 0)
			close(cfd);
		close(fd);
	}
	lf_upper_put_node(up, n);
	*out = n;
	return ret;
}

static int check_rename(struct lf_upper *up, struct node *ndir,
			const char *newname, const struct view *v1,
			const struct view *v2, unsigned int flags)
{
	bool empty;
	struct node *c;
	int ret;

	if (flags & RENAME_EXCHANGE)
		return view_exists(v2) ? 0 : -ENOENT;
	if (!view_exists(v2))
		return 0;
	if (flags & RENAME_NOREPLACE)
		return -EEXIST;
	if (S_ISDIR(view_mode(v1)) && !S_ISDIR(view_mode(v2)))
		return -ENOTDIR;
	if (!S_ISDIR(view_mode(v1)) && S_ISDIR(view_mode(v2)))
		return -EISDIR;
	if (!S_ISDIR(view_mode(v2)))
		return 0;
	ret = lf_upper_get_node(up, ndir, newname,
				v2->lower && (!v2->upper || !v2->opaque)
					? v2->lower
					: 0,
				&c);
	if (ret)
		return ret;
	ret = lf_upper_dir_empty(up, c, &empty);
	lf_upper_put_node(up, c);
	return ret ? ret : (empty ? 0 : -ENOTEMPTY);
}

static int do_rename(struct lf_upper *up, struct node *odir, const char *name,
		     struct node *ndir, const char *newname, unsigned int flags)
{
	struct view v1, v2;
	struct node *src, *dst = NULL, *tmp;
	int ofd = -1, nfd = -1, cfd, ret;

	if (lf_upper_reserved(name))
		return -ENOENT;
	if (lf_upper_reserved(newname))
		return -EINVAL;
	if ((ret = lf_upper_view(up, odir, name, &v1)))
		return ret;
	if (!view_exists(&v1))
		return -ENOENT;
	if ((ret = lf_upper_view(up, ndir, newname, &v2)))
		return ret;
	if ((ret = check_rename(up, ndir, newname, &v1, &v2, flags)))
		return ret;
	/* two names of one upper inode: rename(2) does nothing */
	if (v1.upper && v2.upper && v1.ust.st_ino == v2.ust.st_ino &&
	    v1.ust.st_dev == v2.ust.st_dev && !(flags & RENAME_EXCHANGE))
		return 0;
	if ((ret = lift(up, odir, name, &v1, &src)))
		return ret;
	if ((flags & RENAME_EXCHANGE) &&
	    (ret = lift(up, ndir, newname, &v2, &dst)))
		return ret;
	if ((ret = lf_upper_parent_fd(up, odir, &ofd)) ||
	    (ret = lf_upper_parent_fd(up, ndir, &nfd)))
		goto out;
	/* an upper dir being replaced holds only whiteouts: clear them */
	if (!(flags & RENAME_EXCHANGE) && v2.upper && S_ISDIR(v2.ust.st_mode)) {
		cfd = openat(nfd, newname,
			     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (cfd >= 0) {
			ret = lf_upper_clear_whiteouts(cfd);
			close(cfd);
		}
		if (ret)
			goto out;
	}
	if (renameat2(ofd, name, nfd, newname, flags & RENAME_EXCHANGE) < 0) {
		ret = -errno;
		goto out;
	}
	/* a directory moved: cached fds below it name other paths now */
	if (S_ISDIR(view_mode(&v1)) || S_ISDIR(view_mode(&v2)))
		lf_upper_fdc_flush(up);
	/* an upper object replaced by the rename is gone */
	if (!(flags & RENAME_EXCHANGE) && v2.upper &&
	    (S_ISDIR(v2.ust.st_mode) || v2.ust.st_nlink <= 1))
		lf_upper_unmap_ino(up, &v2.ust);
	/* a directory now where the lower layers hold something (shown, or
	 * hidden by a whiteout that goes away below) must not merge with it */
	if (S_ISDIR(view_mode(&v1)) && (v2.lower || v2.whiteout))
		ret = make_opaque(nfd, newname);
	if (!ret && (flags & RENAME_EXCHANGE) && S_ISDIR(view_mode(&v2)) &&
	    v1.lower)
		ret = make_opaque(ofd, name);
	if (!ret && v2.whiteout)
		ret = lf_upper_remove_whiteout(nfd, newname);
	/* what the lower layers hold at the old name stays deleted */
	if (!ret && !(flags & RENAME_EXCHANGE) && v1.lower)
		ret = lf_upper_make_whiteout(ofd, name);
	if (ret)
		goto out;
	/* the node table follows the namespace */
	tmp = find_child(up, ndir, newname);
	if (flags & RENAME_EXCHANGE) {
		src = find_child(up, odir, name);
		if (src)
			lf_upper_move_node(up, src, odir, "\x01");
		if (tmp)
			lf_upper_move_node(up, tmp, odir, name);
		if (src)
			lf_upper_move_node(up, src, ndir, newname);
		if (tmp)
			cut_lower(up, tmp);
	} else {
		if (tmp)
			mark_deleted(up, ndir, newname);
		src = find_child(up, odir, name);
		if (src)
			lf_upper_move_node(up, src, ndir, newname);
	}
	if (src)
		cut_lower(up, src);
out:
	if (ofd >= 0)
		close(ofd);
	if (nfd >= 0)
		close(nfd);
	return ret;
}

int lf_upper_rename(struct lf_upper *up, uint64_t parent, const char *name,
		    uint64_t newparent, const char *newname, unsigned int flags)
{
	struct node *odir, *ndir;
	int ret;

	if (flags & ~(unsigned int)(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	pthread_mutex_lock(&up->lock);
	ret = dir_node(up, parent, &odir);
	if (!ret)
		ret = dir_node(up, newparent, &ndir);
	if (!ret)
		ret = do_rename(up, odir, name, ndir, newname, flags);
	pthread_mutex_unlock(&up->lock);
	return ret;
}

// SPDX-License-Identifier: MIT
/* fsops_ro.c - read-only FUSE handlers: translate requests to tree and blob. */
#include "fsops_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "layerfs/log.h"

static struct lf_fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* Inode tino of view `view`'s tree t, as the kernel sees it. */
static int entry_of(struct lf_fs *fs, const struct lf_tree *t, unsigned view,
		    uint64_t tino, struct fuse_entry_param *e)
{
	struct lf_tree_attr a;
	int ret = lf_tree_getattr(t, tino, &a);

	if (ret)
		return ret;
	memset(e, 0, sizeof(*e));
	e->ino = lf_views_ino(fs, view, tino);
	e->generation = 1;
	e->attr_timeout = LF_FS_TIMEOUT;
	e->entry_timeout = LF_FS_TIMEOUT;
	lf_tree_attr_stat(&a, &e->attr);
	e->attr.st_ino = e->ino;
	return 0;
}

/* The tree of a kernel inode number and the number there (fsops_views.c);
 * NULL for the synthetic directories of an --all-layers mount. */
static struct lf_tree *tree_of(struct lf_fs *fs, uint64_t ino, uint64_t *tino,
			       unsigned *view)
{
	return lf_views_tree(fs, ino, tino, view);
}

static void fsop_init(void *userdata, struct fuse_conn_info *conn)
{
	struct lf_fs *fs = userdata;

	/* libfuse insists that init agrees with the max_read mount option */
	conn->max_read = fs->max_read;
	/* immutable tree: let the kernel cache symlink targets and run
	 * lookups in one directory in parallel */
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	/* nothing ever changes: no open/release round trips per file (the
	 * kernel then keeps the page cache, as keep_cache would), and no
	 * cache invalidation on attribute checks */
	fs->no_open = conn->capable & FUSE_CAP_NO_OPEN_SUPPORT;
	fs->no_opendir = conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT;
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	lf_fs_ready(fs);
}

static void fsop_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct lf_fs *fs = fs_of(req);
	struct fuse_entry_param e;
	uint64_t ino, tino;
	size_t len = strlen(name);
	struct lf_tree *t;
	unsigned view;
	int ret;

	/* the kernel passes names up to 1024 bytes; no Linux program can
	 * use one past NAME_MAX, and readdir never lists them */
	if (len > NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	if (!(t = tree_of(fs, parent, &tino, &view))) {
		ret = lf_views_lookup(fs, parent, name, &e);
		if (ret == 1) {
			/* a view's root: its tree says what it looks like */
			t = tree_of(fs, e.ino, &tino, &view);
			ret = t ? entry_of(fs, t, view, tino, &e) : -EIO;
		}
		if (!ret) {
			fuse_reply_entry(req, &e);
			return;
		}
	} else {
		ret = lf_tree_lookup(t, tino, name, len, &ino);
	}
	if (ret == -ENOENT) {
		/* a negative entry, cached as long as positive ones */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = LF_FS_TIMEOUT;
		fuse_reply_entry(req, &e);
		return;
	}
	if (!ret)
		ret = entry_of(fs, t, view, ino, &e);
	if (ret)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_entry(req, &e);
}

static void fsop_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	/* inodes live as long as the tree: nothing to release */
	(void)ino;
	(void)nlookup;
	fuse_reply_none(req);
}

static void fsop_forget_multi(fuse_req_t req, size_t count,
			      struct fuse_forget_data *forgets)
{
	(void)count;
	(void)forgets;
	fuse_reply_none(req);
}

static void fsop_getattr(fuse_req_t req, fuse_ino_t ino,
			 struct fuse_file_info *fi)
{
	struct lf_fs *fs = fs_of(req);
	struct lf_tree_attr a;
	struct stat st;
	uint64_t tino;
	unsigned view;
	struct lf_tree *t = tree_of(fs, ino, &tino, &view);
	int ret = t ? lf_tree_getattr(t, tino, &a)
		    : lf_views_getattr(fs, ino, &st);

	(void)fi;
	if (ret) {
		fuse_reply_err(req, -ret);
		return;
	}
	if (t) {
		lf_tree_attr_stat(&a, &st);
		st.st_ino = ino;
	}
	fuse_reply_attr(req, &st, LF_FS_TIMEOUT);
}

static void fsop_readlink(fuse_req_t req, fuse_ino_t ino)
{
	uint64_t tino;
	unsigned view;
	struct lf_tree *tr = tree_of(fs_of(req), ino, &tino, &view);
	const char *t = tr ? lf_tree_readlink(tr, tino) : NULL;

	/* the kernel takes at most PATH_MAX - 1 bytes (one page) and answers
	 * EIO past that; a tar target may be longer: say what it is */
	if (t && strlen(t) >= PATH_MAX)
		fuse_reply_err(req, ENAMETOOLONG);
	else if (t)
		fuse_reply_readlink(req, t);
	else
		fuse_reply_err(req, EINVAL);
}

static bool is_dir(struct lf_fs *fs, fuse_ino_t ino, int *err)
{
	struct lf_tree_attr a;
	struct stat st;
	uint64_t tino;
	unsigned view;
	struct lf_tree *t = tree_of(fs, ino, &tino, &view);
	int ret;

	if (!t) {
		ret = lf_views_getattr(fs, ino, &st);
		*err = -ret;
		return !ret;
	}
	ret = lf_tree_getattr(t, tino, &a);

	*err = ret ? -ret : (S_ISDIR(a.mode) ? 0 : ENOTDIR);
	return !*err;
}

static void fsop_opendir(fuse_req_t req, fuse_ino_t ino,
			 struct fuse_file_info *fi)
{
	int err;

	if (!is_dir(fs_of(req), ino, &err)) {
		fuse_reply_err(req, err);
		return;
	}
	if (fs_of(req)->no_opendir) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	fi->cache_readdir = 1;
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

/*
 * readdir and readdirplus: offsets 1 and 2 are "." and "..", then entry i of
 * the directory has offset i + 3.  Entries come in tar order, so a recursive
 * walk reads each blob nearly sequentially.
 */
static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       bool plus)
{
	struct lf_fs *fs = fs_of(req);
	uint64_t tino;
	unsigned view;
	struct lf_tree *t = tree_of(fs, ino, &tino, &view);
	size_t n = t ? lf_tree_dir_count(t, tino) : lf_views_count(fs, ino);
	size_t used = 0;
	char *buf;
	int err;

	if (!is_dir(fs, ino, &err)) {
		fuse_reply_err(req, err);
		return;
	}
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (; off >= 0 && (size_t)off < n + 2; off++) {
		struct fuse_entry_param e;
		char name[NAME_MAX + 1];
		const char *nm;
		size_t len, sz;
		uint64_t child;

		if (!t) { /* a synthetic directory */
			memset(&e, 0, sizeof(e));
			if (off < 2) {
				lf_views_getattr(fs, ino, &e.attr);
				strcpy(name, off == 0 ? "." : "..");
			} else if (lf_views_dirent(fs, ino, (size_t)off - 2,
						   name, sizeof(name), &e.ino,
						   &e.attr)) {
				continue;
			}
			/* no entry for readdirplus: a view is made when it
			 * is looked up, not when its parent is listed */
			e.ino = 0;
		} else if (off < 2) {
			child = off == 0 ? tino : lf_tree_parent(t, tino);
			strcpy(name, off == 0 ? "." : "..");
			if (entry_of(fs, t, view, child, &e))
				continue;
		} else {
			lf_tree_dir_entry(t, tino, (size_t)off - 2, &nm, &len,
					  &child);
			if (len > NAME_MAX)
				continue; /* the kernel could not use it */
			memcpy(name, nm, len);
			name[len] = '\0';
			if (entry_of(fs, t, view, child, &e))
				continue;
		}
		/* "." and "..": no lookup count, so no inode for the kernel */
		if (off < 2)
			e.ino = 0;
		if (plus)
			sz = fuse_add_direntry_plus(req, buf + used,
						    size - used, name, &e,
						    off + 1);
		else
			sz = fuse_add_direntry(req, buf + used, size - used,
					       name, &e.attr, off + 1);
		if (sz > size - used)
			break;
		used += sz;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void fsop_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			 struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, false);
}

static void fsop_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			     off_t off, struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, true);
}

static void fsop_releasedir(fuse_req_t req, fuse_ino_t ino,
			    struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void fsop_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct lf_tree_attr a = { 0 };
	uint64_t tino;
	unsigned view;
	struct lf_tree *t = tree_of(fs_of(req), ino, &tino, &view);
	int ret = t ? lf_tree_getattr(t, tino, &a) : 0;

	if (ret) {
		fuse_reply_err(req, -ret);
		return;
	}
	if (!t)
		a.mode = S_IFDIR;
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (S_ISDIR(a.mode)) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (fs_of(req)->no_open) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	/* the data never changes: keep the page cache across opens */
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

static void fsop_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	struct lf_fs *fs = fs_of(req);
	const struct lf_idx_entry *e;
	struct lf_err err = { 0 };
	size_t layer;
	ssize_t n;
	char *buf;
	uint64_t tino;
	unsigned view;
	struct lf_tree *t = tree_of(fs, ino, &tino, &view);

	(void)fi;
	if (!t || lf_tree_data(t, tino, &layer, &e)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (off < 0 || (uint64_t)off >= e->size) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = lf_stack_read_file(fs->stack, layer, e, buf, size, (uint64_t)off,
			       &err);
	if (n < 0) {
		lf_log_once(&fs->eio_logged, LF_LOG_ERR,
			    "read of inode %llu failed, answering EIO: %s",
			    (unsigned long long)ino, err.msg);
		fuse_reply_err(req, EIO);
	} else {
		fuse_reply_buf(req, buf, (size_t)n);
	}
	free(buf);
}

static void fsop_release(fuse_req_t req, fuse_ino_t ino,
			 struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static uint64_t count_blocks(struct lf_tree *t)
{
	uint64_t ino, n = lf_tree_count(t), blocks = 0;
	struct lf_tree_attr a;

	for (ino = 1; ino <= n; ino++)
		if (!lf_tree_getattr(t, ino, &a))
			blocks += (a.size + 4095) / 4096;
	return blocks;
}

static void fsop_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct lf_fs *fs = fs_of(req);
	uint64_t blocks = atomic_load(&fs->total_blocks);
	struct statvfs sv;

	(void)ino;
	if (blocks == UINT64_MAX) {
		/* two first callers may both count: same answer */
		blocks = count_blocks(fs->tree);
		atomic_store(&fs->total_blocks, blocks);
	}
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_blocks = blocks;
	sv.f_files = lf_tree_count(fs->tree);
	sv.f_namemax = 255;
	sv.f_flag = ST_RDONLY;
	fuse_reply_statfs(req, &sv);
}

/* The layer of inode ino (lf_origin_*'s form); -1 for what cannot carry
 * user.* xattrs (the kernel allows them on files and directories only). */
static int layer_of(struct lf_fs *fs, fuse_ino_t ino)
{
	struct lf_tree_attr a;
	uint64_t tino;
	unsigned view;
	struct lf_tree *t = tree_of(fs, ino, &tino, &view);

	if (!t || lf_tree_getattr(t, tino, &a) ||
	    !(S_ISREG(a.mode) || S_ISDIR(a.mode)))
		return -1;
	return a.layer;
}

static void fsop_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			  size_t size)
{
	struct lf_fs *fs = fs_of(req);
	const void *v;
	size_t len;
	uint64_t tino;
	unsigned view;
	struct lf_tree *t = tree_of(fs, ino, &tino, &view);

	if (lf_origin_name(name)) {
		char buf[128];
		ssize_t n = lf_origin_get(fs, layer_of(fs, ino), name, buf,
					  size < sizeof(buf) ? size
							     : sizeof(buf));

		if (n < 0)
			fuse_reply_err(req, (int)-n);
		else if (!size)
			fuse_reply_xattr(req, (size_t)n);
		else
			fuse_reply_buf(req, buf, (size_t)n);
		return;
	}
	if (!t || lf_tree_getxattr(t, tino, name, &v, &len))
		fuse_reply_err(req, ENODATA);
	else if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, v, len);
}

static void fsop_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct lf_fs *fs = fs_of(req);
	uint64_t tino;
	unsigned view;
	struct lf_tree *t = tree_of(fs, ino, &tino, &view);
	size_t k, n = t ? lf_tree_xattr_count(t, tino) : 0, total = 0;
	size_t extra = lf_origin_list(fs, layer_of(fs, ino), NULL);
	char *buf;

	for (k = 0; k < n; k++) {
		const char *xn;
		const void *v;
		size_t len;

		lf_tree_xattr(t, tino, k, &xn, &v, &len);
		if (!lf_origin_name(xn)) /* ours stand for them */
			total += strlen(xn) + 1;
	}
	total += extra;
	if (size == 0) {
		fuse_reply_xattr(req, total);
		return;
	}
	if (size < total) {
		fuse_reply_err(req, ERANGE);
		return;
	}
	buf = malloc(total ? total : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (total = 0, k = 0; k < n; k++) {
		const char *xn;
		const void *v;
		size_t len;

		lf_tree_xattr(t, tino, k, &xn, &v, &len);
		if (lf_origin_name(xn))
			continue;
		memcpy(buf + total, xn, strlen(xn) + 1);
		total += strlen(xn) + 1;
	}
	total += lf_origin_list(fs, layer_of(fs, ino), buf + total);
	fuse_reply_buf(req, buf, total);
	free(buf);
}

static void fsop_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct lf_tree_attr a = { .mode = S_IFDIR };
	uint64_t tino;
	unsigned view;
	struct lf_tree *t = tree_of(fs_of(req), ino, &tino, &view);
	int ret = t ? lf_tree_getattr(t, tino, &a) : 0;

	/* design.md 3.11: no permission checks of our own (default_permissions
	 * does them when other users may enter); writes are refused, and
	 * like root on a local disk, X_OK needs some execute bit */
	if (ret)
		fuse_reply_err(req, -ret);
	else if (mask & W_OK)
		fuse_reply_err(req, EROFS);
	else if ((mask & X_OK) && !S_ISDIR(a.mode) && !(a.mode & 0111))
		fuse_reply_err(req, EACCES);
	else
		fuse_reply_err(req, 0);
}

/* Everything that would modify the image. */
static void fsop_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
			 int to_set, struct fuse_file_info *fi)
{
	(void)ino;
	(void)attr;
	(void)to_set;
	(void)fi;
	fuse_reply_err(req, EROFS);
}

static void fsop_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		       mode_t mode, dev_t rdev)
{
	(void)parent;
	(void)name;
	(void)mode;
	(void)rdev;
	fuse_reply_err(req, EROFS);
}

static void fsop_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		       mode_t mode)
{
	(void)parent;
	(void)name;
	(void)mode;
	fuse_reply_err(req, EROFS);
}

static void fsop_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent;
	(void)name;
	fuse_reply_err(req, EROFS);
}

static void fsop_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
			 const char *name)
{
	(void)link;
	(void)parent;
	(void)name;
	fuse_reply_err(req, EROFS);
}

static void fsop_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
			fuse_ino_t newparent, const char *newname,
			unsigned int flags)
{
	(void)parent;
	(void)name;
	(void)newparent;
	(void)newname;
	(void)flags;
	fuse_reply_err(req, EROFS);
}

static void fsop_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		      const char *newname)
{
	(void)ino;
	(void)newparent;
	(void)newname;
	fuse_reply_err(req, EROFS);
}

static void fsop_create(fuse_req_t req, fuse_ino_t parent, const char *name,
			mode_t mode, struct fuse_file_info *fi)
{
	(void)parent;
	(void)name;
	(void)mode;
	(void)fi;
	fuse_reply_err(req, EROFS);
}

static void fsop_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			  const char *value, size_t size, int flags)
{
	(void)ino;
	(void)name;
	(void)value;
	(void)size;
	(void)flags;
	fuse_reply_err(req, EROFS);
}

static void fsop_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino;
	(void)name;
	fuse_reply_err(req, EROFS);
}

const struct fuse_lowlevel_ops lf_fsops_ro = {
	.init = fsop_init,
	.lookup = fsop_lookup,
	.forget = fsop_forget,
	.forget_multi = fsop_forget_multi,
	.getattr = fsop_getattr,
	.readlink = fsop_readlink,
	.opendir = fsop_opendir,
	.readdir = fsop_readdir,
	.readdirplus = fsop_readdirplus,
	.releasedir = fsop_releasedir,
	.open = fsop_open,
	.read = fsop_read,
	.release = fsop_release,
	.statfs = fsop_statfs,
	.getxattr = fsop_getxattr,
	.listxattr = fsop_listxattr,
	.access = fsop_access,
	.setattr = fsop_setattr,
	.mknod = fsop_mknod,
	.mkdir = fsop_mkdir,
	.unlink = fsop_unlink,
	.rmdir = fsop_unlink,
	.symlink = fsop_symlink,
	.rename = fsop_rename,
	.link = fsop_link,
	.create = fsop_create,
	.setxattr = fsop_setxattr,
	.removexattr = fsop_removexattr,
};

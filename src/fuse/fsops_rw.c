// SPDX-License-Identifier: MIT
/* fsops_rw.c - FUSE handlers of a copy-on-write mount: each delegates to upper. */
#include "fsops_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "layerfs/upper.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

/*
 * Attributes change under a copy-on-write mount, and two names of one upper
 * inode are two FUSE nodes: attributes are not cached, names briefly.
 */
#define RW_ENTRY_TIMEOUT 1.0
#define RW_ATTR_TIMEOUT 0.0

static struct lf_upper *up_of(fuse_req_t req)
{
	return ((struct lf_fs *)fuse_req_userdata(req))->opts.upper;
}

static void reply_entry(fuse_req_t req, int ret, uint64_t id,
			const struct stat *st)
{
	struct fuse_entry_param e;

	if (ret) {
		fuse_reply_err(req, -ret);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = id;
	e.generation = 1;
	e.attr = *st;
	e.attr_timeout = RW_ATTR_TIMEOUT;
	e.entry_timeout = RW_ENTRY_TIMEOUT;
	fuse_reply_entry(req, &e);
}

static void rw_init(void *userdata, struct fuse_conn_info *conn)
{
	struct lf_fs *fs = userdata;

	conn->max_read = fs->max_read;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	lf_fs_ready(fs);
}

static void rw_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct stat st;
	uint64_t id = 0;
	int ret;

	/* as fsop_lookup: readdir never lists such a name */
	if (strlen(name) > NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	ret = lf_upper_lookup(up_of(req), parent, name, &id, &st);
	if (ret == -ENOENT) {
		struct fuse_entry_param e = { 0 };

		/* negative entries: not cached, they change with creates */
		fuse_reply_entry(req, &e);
		return;
	}
	reply_entry(req, ret, id, &st);
}

static void rw_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	lf_upper_forget(up_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void rw_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *f)
{
	size_t i;

	for (i = 0; i < count; i++)
		lf_upper_forget(up_of(req), f[i].ino, f[i].nlookup);
	fuse_reply_none(req);
}

static void rw_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct stat st;
	int ret = lf_upper_getattr(up_of(req), ino, &st);

	(void)fi;
	if (ret)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_attr(req, &st, RW_ATTR_TIMEOUT);
}

static void rw_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	static const struct {
		int fuse, lf;
	} map[] = {
		{ FUSE_SET_ATTR_MODE, LF_SET_MODE },
		{ FUSE_SET_ATTR_UID, LF_SET_UID },
		{ FUSE_SET_ATTR_GID, LF_SET_GID },
		{ FUSE_SET_ATTR_SIZE, LF_SET_SIZE },
		{ FUSE_SET_ATTR_ATIME, LF_SET_ATIME },
		{ FUSE_SET_ATTR_MTIME, LF_SET_MTIME },
		{ FUSE_SET_ATTR_ATIME_NOW, LF_SET_ATIME_NOW },
		{ FUSE_SET_ATTR_MTIME_NOW, LF_SET_MTIME_NOW },
	};
	struct stat st;
	size_t i;
	int what = 0, ret;

	for (i = 0; i < LF_ARRAY_SIZE(map); i++)
		if (to_set & map[i].fuse)
			what |= map[i].lf;
	ret = lf_upper_setattr(up_of(req), ino, fi ? fi->fh : 0, attr, what,
			       &st);
	if (ret)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_attr(req, &st, RW_ATTR_TIMEOUT);
}

static void rw_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[PATH_MAX + 1];
	int ret = lf_upper_readlink(up_of(req), ino, buf, sizeof(buf));

	/* a lower target longer than the kernel takes comes back cut at
	 * sizeof(buf) - 1 bytes: never serve it cut (see fsop_readlink) */
	if (!ret && strlen(buf) >= PATH_MAX)
		ret = -ENAMETOOLONG;
	if (ret)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_readlink(req, buf);
}

static void rw_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct stat st;
	uint64_t id = 0;
	int ret = lf_upper_mknod(up_of(req), parent, name, mode, rdev, c->uid,
				 c->gid, &id, &st);

	reply_entry(req, ret, id, &st);
}

static void rw_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct stat st;
	uint64_t id = 0;
	int ret = lf_upper_mkdir(up_of(req), parent, name, mode, c->uid, c->gid,
				 &id, &st);

	reply_entry(req, ret, id, &st);
}

static void rw_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct stat st;
	uint64_t id = 0;
	int ret = lf_upper_symlink(up_of(req), parent, name, link, c->uid,
				   c->gid, &id, &st);

	reply_entry(req, ret, id, &st);
}

static void rw_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	struct stat st;
	uint64_t id = 0;
	int ret = lf_upper_link(up_of(req), ino, newparent, newname, &id, &st);

	reply_entry(req, ret, id, &st);
}

static void rw_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, -lf_upper_unlink(up_of(req), parent, name));
}

static void rw_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, -lf_upper_rmdir(up_of(req), parent, name));
}

static void rw_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	fuse_reply_err(req, -lf_upper_rename(up_of(req), parent, name,
					     newparent, newname, flags));
}

static void rw_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	uint64_t fh;
	int ret = lf_upper_open(up_of(req), ino, fi->flags, &fh);

	if (ret) {
		fuse_reply_err(req, -ret);
		return;
	}
	fi->fh = fh;
	fuse_reply_open(req, fi);
}

static void rw_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct fuse_entry_param e;
	struct stat st;
	uint64_t id = 0, fh = 0;
	int ret = lf_upper_create(up_of(req), parent, name, mode, fi->flags,
				  c->uid, c->gid, &id, &st, &fh);

	if (ret) {
		fuse_reply_err(req, -ret);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = id;
	e.generation = 1;
	e.attr = st;
	e.attr_timeout = RW_ATTR_TIMEOUT;
	e.entry_timeout = RW_ENTRY_TIMEOUT;
	fi->fh = fh;
	fuse_reply_create(req, &e, fi);
}

static void rw_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	char *buf = malloc(size ? size : 1);
	ssize_t n;

	(void)ino;
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = lf_upper_read(up_of(req), fi->fh, buf, size, off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void rw_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	ssize_t n = lf_upper_write(up_of(req), fi->fh, buf, size, off);

	(void)ino;
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void rw_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void rw_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	(void)ino;
	lf_upper_release(up_of(req), fi->fh);
	fuse_reply_err(req, 0);
}

static void rw_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	(void)ino;
	fuse_reply_err(req, -lf_upper_fsync(up_of(req), fi->fh, datasync));
}

static void rw_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
			 off_t len, struct fuse_file_info *fi)
{
	(void)ino;
	fuse_reply_err(req,
		       -lf_upper_fallocate(up_of(req), fi->fh, mode, off, len));
}

static void rw_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	uint64_t dh;
	int ret = lf_upper_opendir(up_of(req), ino, &dh);

	if (ret) {
		fuse_reply_err(req, -ret);
		return;
	}
	fi->fh = dh;
	fuse_reply_open(req, fi);
}

static void rw_do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
			  off_t off, struct fuse_file_info *fi, bool plus)
{
	struct lf_upper *up = up_of(req);
	char *buf = malloc(size);
	size_t used = 0;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (; off >= 0; off++) {
		struct lf_upper_dirent d;
		struct fuse_entry_param e;
		const char *name;
		size_t sz;
		uint64_t id;

		memset(&e, 0, sizeof(e));
		if (off < 2) {
			name = off ? ".." : ".";
			e.attr.st_ino = off ? 1 : ino;
			e.attr.st_mode = S_IFDIR;
		} else if (lf_upper_readdir(up, fi->fh, (size_t)off - 2, &d)) {
			break;
		} else {
			name = d.name;
			e.attr.st_ino = d.ino;
			e.attr.st_mode = d.type;
		}
		if (plus && off >= 2) {
			/* readdirplus is a lookup: the kernel keeps a ref */
			if (lf_upper_lookup(up, ino, name, &id, &e.attr))
				continue;
			e.ino = id;
			e.generation = 1;
			e.entry_timeout = RW_ENTRY_TIMEOUT;
			e.attr_timeout = RW_ATTR_TIMEOUT;
			sz = fuse_add_direntry_plus(req, buf + used,
						    size - used, name, &e,
						    off + 1);
			if (sz > size - used) {
				lf_upper_forget(up, id, 1);
				break;
			}
		} else if (plus) {
			sz = fuse_add_direntry_plus(req, buf + used,
						    size - used, name, &e,
						    off + 1);
		} else {
			sz = fuse_add_direntry(req, buf + used, size - used,
					       name, &e.attr, off + 1);
		}
		if (sz > size - used)
			break;
		used += sz;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void rw_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	rw_do_readdir(req, ino, size, off, fi, false);
}

static void rw_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	rw_do_readdir(req, ino, size, off, fi, true);
}

static void rw_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	(void)ino;
	lf_upper_releasedir(up_of(req), fi->fh);
	fuse_reply_err(req, 0);
}

static void rw_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void rw_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;
	int ret = lf_upper_statfs(up_of(req), &sv);

	(void)ino;
	if (ret)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_statfs(req, &sv);
}

static void rw_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	if (lf_origin_name(name)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	fuse_reply_err(req, -lf_upper_setxattr(up_of(req), ino, name, value,
					       size, flags));
}

/* The origin layer of a node (lf_origin_*'s form), -1 if unknown or not
 * a file or directory (the only objects with user.* xattrs). */
static int origin_of(fuse_req_t req, fuse_ino_t ino)
{
	struct stat st;
	int layer = -1;

	if (lf_upper_getattr(up_of(req), ino, &st) ||
	    !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) ||
	    lf_upper_origin(up_of(req), ino, &layer))
		return -1;
	return layer;
}

static void rw_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	char *buf = size ? malloc(size) : NULL;
	ssize_t n;

	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (lf_origin_name(name))
		n = lf_origin_get(fuse_req_userdata(req), origin_of(req, ino),
				  name, buf, size);
	else
		n = lf_upper_getxattr(up_of(req), ino, name, buf, size);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else if (!size)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void rw_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char *buf = size ? malloc(size) : NULL;
	ssize_t n;

	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = lf_upper_listxattr(up_of(req), ino, buf, size);
	if (n >= 0) {
		const struct lf_fs *fs = fuse_req_userdata(req);
		int layer = origin_of(req, ino);
		size_t extra = lf_origin_list(fs, layer, NULL);

		if (size && (size_t)n + extra > size)
			n = -ERANGE;
		else if (size)
			lf_origin_list(fs, layer, buf + n);
		if (n >= 0)
			n += (ssize_t)extra;
	}
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else if (!size)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void rw_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fuse_reply_err(req,
		       lf_origin_name(name)
			       ? EPERM
			       : -lf_upper_removexattr(up_of(req), ino, name));
}

static void rw_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct stat st;
	int ret = lf_upper_getattr(up_of(req), ino, &st);

	/* as for root on a local disk: only X_OK needs a permission bit */
	if (ret)
		fuse_reply_err(req, -ret);
	else if ((mask & X_OK) && !S_ISDIR(st.st_mode) && !(st.st_mode & 0111))
		fuse_reply_err(req, EACCES);
	else
		fuse_reply_err(req, 0);
}

const struct fuse_lowlevel_ops lf_fsops_rw = {
	.init = rw_init,
	.lookup = rw_lookup,
	.forget = rw_forget,
	.forget_multi = rw_forget_multi,
	.getattr = rw_getattr,
	.setattr = rw_setattr,
	.readlink = rw_readlink,
	.mknod = rw_mknod,
	.mkdir = rw_mkdir,
	.symlink = rw_symlink,
	.link = rw_link,
	.unlink = rw_unlink,
	.rmdir = rw_rmdir,
	.rename = rw_rename,
	.open = rw_open,
	.create = rw_create,
	.read = rw_read,
	.write = rw_write,
	.flush = rw_flush,
	.release = rw_release,
	.fsync = rw_fsync,
	.fallocate = rw_fallocate,
	.opendir = rw_opendir,
	.readdir = rw_readdir,
	.readdirplus = rw_readdirplus,
	.releasedir = rw_releasedir,
	.fsyncdir = rw_fsyncdir,
	.statfs = rw_statfs,
	.setxattr = rw_setxattr,
	.getxattr = rw_getxattr,
	.listxattr = rw_listxattr,
	.removexattr = rw_removexattr,
	.access = rw_access,
};

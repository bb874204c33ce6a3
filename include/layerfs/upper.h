/* SPDX-License-Identifier: MIT */
/*
 * upper.h - the copy-on-write view: a host upper directory over the tree.
 *
 * design.md section 4.  The upper directory is a plain directory that uses OCI
 * whiteouts (`.wh.NAME`, `.wh..wh..opq`), so it is itself a valid unpacked
 * layer.  Lookup goes upper first: an upper `.wh.NAME` hides NAME below, an
 * upper directory holding `.wh..wh..opq` hides the lower children of that
 * directory, otherwise the read-only tree shows through.  Any change to a
 * lower object first copies it up (parents first, with their metadata; file
 * data streamed from the blob into an unnamed temp file that is linked into
 * place only when complete), deletions of lower objects leave whiteouts, a
 * directory created over a whiteout is opaque.  Names beginning with ".wh."
 * are never shown and cannot be created.
 *
 * Every host access is relative to a directory fd of the upper directory,
 * opened beneath it without following symlinks, and done with *at() calls
 * that do not follow symlinks; objects are opened without blocking and only
 * when they are regular files or directories: nothing in the image or in
 * the upper directory, even changed from outside meanwhile, can make
 * layerfs read or write outside it or block the mount.  Directory fds are
 * kept in a bounded cache by node (at most 512) and used again only while
 * the kernel still names them at the node's path beneath the root, so a
 * deep path is not walked from the root on every call (see
 * src/cow/upper_fdcache.c for why this keeps the guarantee above).
 *
 * Objects are "nodes" with stable 64-bit ids (the FUSE node ids; 1 = root),
 * created by lookup and dropped by forget (an id the kernel forgot may name
 * a later node).  Functions return 0 or a negative
 * errno (the errno a kernel overlayfs would give, where they differ see
 * docs/architecture.md); struct stat results carry the inode number the
 * object keeps across copy-up (the lower one, as overlayfs does).
 *
 * Rootless: a daemon that is not root cannot give host files the image's
 * owners, nor make device nodes.  It keeps each copied-up or created regular
 * file's and directory's image owner, mode and type in the xattr
 * user.containers.override_stat ("UID:GID:MODE:TYPE", the format
 * fuse-overlayfs and containers-storage use), makes special files as empty
 * regular files whose record holds the type (pipe, socket, char-MAJ-MIN,
 * block-MAJ-MIN), and keeps owner read/write (search on directories) on the
 * host copy.  A record is honoured whoever reads the upper dir; the xattr is
 * never shown nor settable through the view.  Objects without a record
 * (symlinks: Linux keeps no user xattrs on them) that the daemon's user owns
 * show as owned by the upper's owner (lf_upper_set_owner(), default 0:0).
 *
 * Ownership: the stack is borrowed and must outlive the upper.
 * Thread safety: every function may be called from many threads; one mutex
 * (upper->lock) serialises the node table and every namespace change; file
 * I/O and the data copy of a file's copy-up run outside it.
 */
#ifndef LAYERFS_UPPER_H
#define LAYERFS_UPPER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include "layerfs/blob.h"
#include "layerfs/common.h"
#include "layerfs/stack.h"
#include "layerfs/tree.h"

#define LF_UPPER_ROOT 1

struct lf_upper;

/*
 * Open (mkdir if missing) the upper directory `dir` over the stack's merged
 * tree (the stack must have its tree).  A directory made here takes the
 * image root's owner, mode and times (it is the merged view's root); an
 * existing one is left as it is.  Errors name the directory.
 */
int lf_upper_new(const char *dir, const struct lf_stack *stack,
		 struct lf_upper **out, struct lf_err *err);
void lf_upper_free(struct lf_upper *up);

/* The image owner of what a rootless daemon creates (default 0:0). */
void lf_upper_set_owner(struct lf_upper *up, uid_t uid, gid_t gid);

#define LF_UPPER_OVERRIDE_XATTR "user.containers.override_stat"
/*
 * Apply an override value (len bytes, "UID:GID:MODE[:TYPE]", MODE octal) to
 * a host object's stat: 0, or -EINVAL (st unchanged) when it is malformed or
 * its TYPE does not fit the host object.
 */
int lf_upper_override_apply(const char *val, size_t len, struct stat *st);
/* The override value for st (owner, mode bits, type): 0 or -ERANGE. */
int lf_upper_override_format(char *buf, size_t size, const struct stat *st);

/* Name lookup: on success *node has one more lookup reference. */
int lf_upper_lookup(struct lf_upper *up, uint64_t parent, const char *name,
		    uint64_t *node, struct stat *st);
/* Drop n lookup references. */
void lf_upper_forget(struct lf_upper *up, uint64_t node, uint64_t n);

int lf_upper_getattr(struct lf_upper *up, uint64_t node, struct stat *st);

/* Which attributes lf_upper_setattr() changes. */
#define LF_SET_MODE 1
#define LF_SET_UID 2
#define LF_SET_GID 4
#define LF_SET_SIZE 8
#define LF_SET_ATIME 16
#define LF_SET_MTIME 32
#define LF_SET_ATIME_NOW 64
#define LF_SET_MTIME_NOW 128
#define LF_SET_CTIME 256

/* fh: an open file handle of the node or 0. */
int lf_upper_setattr(struct lf_upper *up, uint64_t node, uint64_t fh,
		     const struct stat *attr, int what, struct stat *st);

/* Symlink target into buf (NUL-terminated, truncated to size). */
int lf_upper_readlink(struct lf_upper *up, uint64_t node, char *buf,
		      size_t size);

/* Creation: each returns the new node (with one lookup reference). */
int lf_upper_mknod(struct lf_upper *up, uint64_t parent, const char *name,
		   mode_t mode, dev_t rdev, uid_t uid, gid_t gid,
		   uint64_t *node, struct stat *st);
int lf_upper_mkdir(struct lf_upper *up, uint64_t parent, const char *name,
		   mode_t mode, uid_t uid, gid_t gid, uint64_t *node,
		   struct stat *st);
int lf_upper_symlink(struct lf_upper *up, uint64_t parent, const char *name,
		     const char *target, uid_t uid, gid_t gid, uint64_t *node,
		     struct stat *st);
int lf_upper_link(struct lf_upper *up, uint64_t node, uint64_t parent,
		  const char *name, uint64_t *newnode, struct stat *st);

int lf_upper_unlink(struct lf_upper *up, uint64_t parent, const char *name);
int lf_upper_rmdir(struct lf_upper *up, uint64_t parent, const char *name);
/* flags: 0, RENAME_NOREPLACE or RENAME_EXCHANGE. */
int lf_upper_rename(struct lf_upper *up, uint64_t parent, const char *name,
		    uint64_t newparent, const char *newname,
		    unsigned int flags);

/*
 * Open a file.  Write access or O_TRUNC copies it up first.  *fh is an opaque
 * handle for read/write/release.  With O_CREAT (create), the file is made
 * first (EEXIST with O_EXCL when present) and *node and *st describe it.
 */
int lf_upper_open(struct lf_upper *up, uint64_t node, int flags, uint64_t *fh);
int lf_upper_create(struct lf_upper *up, uint64_t parent, const char *name,
		    mode_t mode, int flags, uid_t uid, gid_t gid,
		    uint64_t *node, struct stat *st, uint64_t *fh);
ssize_t lf_upper_read(struct lf_upper *up, uint64_t fh, void *buf, size_t size,
		      off_t off);
ssize_t lf_upper_write(struct lf_upper *up, uint64_t fh, const void *buf,
		       size_t size, off_t off);
int lf_upper_fsync(struct lf_upper *up, uint64_t fh, bool datasync);
int lf_upper_fallocate(struct lf_upper *up, uint64_t fh, int mode, off_t off,
		       off_t len);
void lf_upper_release(struct lf_upper *up, uint64_t fh);

/* Directory listing: a snapshot of the merged entries, taken at opendir. */
struct lf_upper_dirent {
	const char *name;
	uint64_t ino;  /* == st_ino of the entry */
	uint32_t type; /* S_IF* bits */
};
int lf_upper_opendir(struct lf_upper *up, uint64_t node, uint64_t *dh);
/* Entry i of an open listing, or -ENOENT past the end. */
int lf_upper_readdir(struct lf_upper *up, uint64_t dh, size_t i,
		     struct lf_upper_dirent *d);
void lf_upper_releasedir(struct lf_upper *up, uint64_t dh);

/* xattrs (get: size 0 asks for the length). */
ssize_t lf_upper_getxattr(struct lf_upper *up, uint64_t node, const char *name,
			  void *buf, size_t size);
ssize_t lf_upper_listxattr(struct lf_upper *up, uint64_t node, char *buf,
			   size_t size);
int lf_upper_setxattr(struct lf_upper *up, uint64_t node, const char *name,
		      const void *value, size_t size, int flags);
int lf_upper_removexattr(struct lf_upper *up, uint64_t node, const char *name);

/* Whether a node's object is in the upper dir (copied up or new). */
int lf_upper_in_upper(struct lf_upper *up, uint64_t node, bool *in_upper);

/* The layer a node's object comes from: 0-based, -1 for a directory no
 * layer has, LF_UPPER_ORIGIN_UPPER for the upper dir's. */
#define LF_UPPER_ORIGIN_UPPER (-2)
int lf_upper_origin(struct lf_upper *up, uint64_t node, int *layer);

/* statfs of the upper directory's filesystem. */
int lf_upper_statfs(struct lf_upper *up, struct statvfs *sv);

#endif /* LAYERFS_UPPER_H */

/* SPDX-License-Identifier: MIT */
/* fsops_internal.h - mount state shared by fsops_ro.c and fsops_session.c. */
#ifndef LAYERFS_FSOPS_INTERNAL_H
#define LAYERFS_FSOPS_INTERNAL_H

/* Debian 12 ships libfuse 3.14: pin the API there. */
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <stdatomic.h>

#include "layerfs/fsops.h"

/* The image never changes under a mount: let the kernel cache for a day. */
#define LF_FS_TIMEOUT 86400.0
/* Largest read the kernel may send (and we serve in one reply). */
#define LF_FS_MAX_READ (1u << 20)

struct lf_fs {
	const struct lf_stack *stack; /* borrowed */
	struct lf_tree *tree;	      /* the stack's, immutable */
	struct lf_fs_opts opts;	      /* strings borrowed */
	struct fuse_session *se;      /* owned */
	bool mounted;
	/* statfs: 4 KiB blocks of file data, counted on the first statfs
	 * (a walk of every inode has no place in the mount); UINT64_MAX
	 * until then */
	_Atomic uint64_t total_blocks;
	unsigned int max_read;	  /* as passed to fuse_session_new */
	int ready_fd;		  /* detached child: tell the parent
					 * that INIT arrived, then -1 */
	atomic_bool eio_logged;	  /* lf_log_once for read failures */
	bool no_open, no_opendir; /* zero-message opens negotiated */
	char pidfile[4096];	  /* our pid for layerfs umount, or "" */
};

/*
 * Where an entry came from, as read-only xattrs (fsops_origin.c):
 * user.layerfs.layer is the 1-based layer that supplied it ("upper" for the
 * upper dir's), user.layerfs.digest that layer's blob digest (image layers
 * only).  Always answered by name; listed only with opts.origin_xattrs, so
 * that cp -a, tar --xattrs or rsync -X of the mount do not copy them.
 * layer: 0-based, -1 a directory no layer has, LF_ORIGIN_UPPER.
 */
#define LF_ORIGIN_XATTR_LAYER "user.layerfs.layer"
#define LF_ORIGIN_XATTR_DIGEST "user.layerfs.digest"
#define LF_ORIGIN_UPPER LF_UPPER_ORIGIN_UPPER
bool lf_origin_name(const char *name);
/* Value of `name` into buf (size 0: its length): length, -ENODATA, -ERANGE. */
ssize_t lf_origin_get(const struct lf_fs *fs, int layer, const char *name,
		      char *buf, size_t size);
/* The names to list (NUL-terminated each) into buf (NULL: count only). */
size_t lf_origin_list(const struct lf_fs *fs, int layer, char *buf);

extern const struct fuse_lowlevel_ops lf_fsops_ro;
extern const struct fuse_lowlevel_ops lf_fsops_rw;

/* Called from the init handler: the mount works, release the parent. */
void lf_fs_ready(struct lf_fs *fs);

#endif /* LAYERFS_FSOPS_INTERNAL_H */

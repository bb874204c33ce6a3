/* SPDX-License-Identifier: MIT */
/* fsops_internal.h - mount state shared by fsops_ro.c and fsops_session.c. */
#ifndef LAYERFS_FSOPS_INTERNAL_H
#define LAYERFS_FSOPS_INTERNAL_H

/* Debian 12 ships libfuse 3.14: pin the API there. */
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <pthread.h>
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
	/* --all-layers (fsops_views.c): view 1..N the prefixes, N+1..2N the
	 * layers' own entries, each tree made on first use */
	struct lf_tree **views; /* [2N + 1], [0] unused */
	size_t nlayers;
	pthread_mutex_t vmu;
};

/*
 * --all-layers inode numbers (fsops_views.c): the view in the bits from
 * LF_VIEWS_SHIFT up, the inode in its tree below; view 0 holds the
 * synthetic root (1) and its directory "layer" (2).  A plain mount's
 * numbers are its tree's.  lf_views_tree(): the tree of ino (NULL for the
 * synthetic ones, or a view that cannot be made), *tino its number there.
 */
#define LF_VIEWS_SHIFT 40
#define LF_VIEWS_ROOT 1u
#define LF_VIEWS_LAYERDIR 2u
#define LF_VIEWS_MAX_LAYERS 65535
int lf_views_init(struct lf_fs *fs, struct lf_err *err);
void lf_views_free(struct lf_fs *fs);
struct lf_tree *lf_views_tree(struct lf_fs *fs, uint64_t ino, uint64_t *tino,
			      unsigned *view);
uint64_t lf_views_ino(const struct lf_fs *fs, unsigned view, uint64_t tino);
int lf_views_getattr(const struct lf_fs *fs, uint64_t ino, struct stat *st);
/* 0: a synthetic dir (e filled); 1: a view's root (e->ino set, attributes
 * to fill from its tree); -ENOENT, -EIO. */
int lf_views_lookup(struct lf_fs *fs, uint64_t parent, const char *name,
		    struct fuse_entry_param *e);
size_t lf_views_count(const struct lf_fs *fs, uint64_t dir);
int lf_views_dirent(const struct lf_fs *fs, uint64_t dir, size_t i, char *name,
		    size_t size, uint64_t *ino, struct stat *st);

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

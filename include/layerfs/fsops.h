/* SPDX-License-Identifier: MIT */
/*
 * fsops.h - the FUSE filesystem over a merged tree (read-only).
 *
 * Thin handlers on libfuse's low-level API translate FUSE requests into
 * tree.h and blob.h calls; nothing else in layerfs includes libfuse.
 * Inode numbers are the tree's (1 = root); the tree is immutable, so entry
 * and attribute timeouts are long, forget is a no-op, and file data may be
 * kept in the page cache across opens (FOPEN_KEEP_CACHE).  Every request
 * that would modify answers EROFS.  A read that cannot be served answers EIO
 * and logs the cause once per mount (design.md section 7); nothing aborts.
 *
 * Lifecycle: lf_fs_mount() creates the session and mounts, so every mount
 * error (mountpoint missing, not a directory, already a mount we cannot stack
 * on, no /dev/fuse, fusermount3 missing) happens while the caller still owns
 * the terminal; lf_fs_run() then detaches (unless foreground), serves
 * requests on several threads until unmounted or signalled
 * (SIGINT/SIGTERM/SIGHUP unmount cleanly), and unmounts.
 *
 * Ownership: the tree and blobs are borrowed and must outlive the mount.
 * Thread safety: the handlers run on many threads; the state they share is
 * immutable or has its own lock (the blob chunk cache).
 */
#ifndef LAYERFS_FSOPS_H
#define LAYERFS_FSOPS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "layerfs/blob.h"
#include "layerfs/common.h"
#include "layerfs/stack.h"
#include "layerfs/tree.h"
#include "layerfs/upper.h"

struct lf_fs;

struct lf_fs_opts {
	const char *mountpoint;
	const char *fsname;    /* source shown in /proc/mounts */
	const char *fuse_opts; /* extra comma-separated -o options, or NULL */
	bool foreground;       /* do not detach */
	bool allow_other;   /* implies default_permissions (design.md 3.11) */
	bool debug;	    /* libfuse request tracing (implies foreground) */
	bool origin_xattrs; /* list user.layerfs.layer and .digest */
	/* every prefix at once: MNT/K the view of layers 1..K, MNT/layer/K
	 * layer K's own entries (read-only mounts only) */
	bool all_layers;
	/* copy-on-write: changes go to this upper (borrowed); NULL: ro */
	struct lf_upper *upper;
};

/*
 * Create the session and mount the stack's merged tree (the stack is
 * borrowed and must have its tree).  Returns 0 or a negative errno with a
 * message naming the mountpoint and the cause.
 */
int lf_fs_mount(const struct lf_stack *stack, const struct lf_fs_opts *opts,
		struct lf_fs **out, struct lf_err *err);

/*
 * Detach unless foreground (the parent process exits 0 once the child
 * serves requests), serve until unmounted or signalled, then unmount.
 * Returns 0 or a negative errno.
 */
int lf_fs_run(struct lf_fs *fs, struct lf_err *err);

/* Unmount if still mounted, free the session. */
void lf_fs_free(struct lf_fs *fs);

/*
 * The file system type ("fuse.layerfs", "tmpfs") of the top mount at path,
 * "" when nothing is mounted there, from /proc/self/mountinfo; *dev (may be
 * NULL) its device.  path is made absolute through its parent: a mount
 * whose daemon died cannot be resolved itself.
 */
int lf_fs_mount_type(const char *path, char *type, size_t size, dev_t *dev);

/*
 * Unmount `mountpoint` (umount2 as root, else fusermount3 -u) and, unless
 * lazy, wait (at most 10 s) until its daemon has exited: each daemon leaves
 * its pid in /run/layerfs (root) or $XDG_RUNTIME_DIR/layerfs, named by its
 * mount's device, while it runs.
 */
int lf_fs_umount(const char *mountpoint, bool lazy, struct lf_err *err);

#endif /* LAYERFS_FSOPS_H */

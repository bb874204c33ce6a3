/* SPDX-License-Identifier: MIT */
/* upper_internal.h - node table and helpers shared by upper*.c. */
#ifndef LAYERFS_UPPER_INTERNAL_H
#define LAYERFS_UPPER_INTERNAL_H

#include <limits.h>
#include <pthread.h>

#include "layerfs/buf.h"
#include "layerfs/upper.h"
#include "layerfs/whiteout.h"

/* Reported inode numbers of upper-only objects live above the tree's. */
#define UPPER_INO_BIT (1ull << 62)

struct node {
	uint64_t id;
	struct node *parent; /* NULL for the root */
	char *name;	     /* owned; "" for the root */
	uint64_t nlookup;    /* kernel references */
	uint64_t nchild;     /* nodes whose parent this is */
	uint64_t lower;	     /* tree inode this path falls through to, 0 */
	uint64_t ino;	     /* reported st_ino, 0 until known */
	bool deleted;	     /* unlinked; kept until forgotten */
	struct node *hnext;  /* (parent, name) hash chain */
};

/* What a path shows in the merged view. */
struct view {
	bool upper; /* an upper object exists (ust valid) */
	struct stat ust;
	uint64_t lower;		 /* visible lower tree inode, 0 if none */
	struct lf_tree_attr lat; /* valid when lower */
	bool whiteout;		 /* the upper parent has .wh.NAME */
	bool opaque;		 /* (dirs) upper dir holds .wh..wh..opq */
	bool placeholder;	 /* ust is a special file a regular file stands
			   * in for (its override says so) */
};

struct ino_map_ent {
	dev_t dev;
	ino_t upper;
	uint64_t ino;
};

/* A bounded LRU of upper directory fds by node id (upper_fdcache.c). */
struct fdc_ent {
	uint64_t id;	/* node id; 0 in a free slot */
	int fd;		/* O_PATH|O_DIRECTORY; -1 in a free slot */
	int hnext;	/* bucket chain, -1 ends it */
	int prev, next; /* LRU list (most recent first), -1 ends it */
};

struct upper_fdcache {
	struct fdc_ent *ent; /* cap slots; cap 0: the cache is off */
	size_t cap, used;
	int *bucket; /* nbucket (a power of two) chain heads, -1 empty */
	size_t nbucket;
	int head, tail;
	char root[PATH_MAX]; /* the upper root's path, as /proc names it */
	size_t rootlen;	     /* 0 when the root is "/" */
};

struct lf_upper {
	pthread_mutex_t lock;	      /* protects everything below and all
				 * namespace changes in the upper dir */
	int root;		      /* O_DIRECTORY fd of the upper dir */
	dev_t dev;		      /* its st_dev */
	const struct lf_stack *stack; /* borrowed */
	struct lf_tree *tree;	      /* the stack's */
	struct node **nodes;	      /* id -> node, NULL for free ids */
	uint64_t nnodes, anodes;
	/* ids of freed nodes, reused first (the kernel forgot them), so
	 * nodes[] is as long as the most nodes ever alive at once */
	uint64_t *free_ids;
	size_t nfree, afree;
	size_t nfreed;	    /* nodes freed since the heap was last trimmed */
	struct node **hash; /* (parent id, name) -> node */
	size_t nhash;
	/* upper inode -> reported inode, a hash table of aimap slots (a
	 * power of two) holding nimap (upper.c) */
	struct ino_map_ent *imap;
	size_t nimap, aimap;
	struct upper_fdcache fdc;
	/* a daemon that cannot chown (not root): owners, modes and special
	 * types go in the override xattr (upper_owner.c) */
	bool rootless;
	bool map_owner;		   /* host_uid/gid show as owner_uid/gid */
	uid_t host_uid, owner_uid; /* the daemon's; the image's for it */
	gid_t host_gid, owner_gid;
};

/* Open files: a host fd, or (read-only, not copied up) a lower inode. */
struct ofile {
	int fd; /* -1 for lower */
	uint64_t lower;
};

/* upper_node.c (nodes), upper_fs.c (access beneath the root), upper.c
 * (the merged view of a name), upper_dir.c (listings) */
/* Buckets of the (parent, name) hash of nodes. */
#define NHASH 65536
struct node *lf_upper_node(struct lf_upper *up, uint64_t id);
/* A new node (parent, name), not yet hashed, no reference: 0 or -ENOMEM. */
int lf_upper_new_node(struct lf_upper *up, struct node *parent,
		      const char *name, struct node **out);
/* The nodes from n up to (not including) the root, n first (*out
 * malloc'd); -ENAMETOOLONG past LF_UPPER_MAX_DEPTH. */
int lf_upper_node_chain(struct node *n, struct node ***out, size_t *depth);
/*
 * How deep below the upper root a node may be (deeper: -ENAMETOOLONG).  An
 * upper dir made from outside can be deeper.  An operation opens its
 * object's directory from the nearest cached ancestor (upper_fdcache.c),
 * but a cold one walks from the root, and each builds the node chain.
 */
#define LF_UPPER_MAX_DEPTH 4096

/* Path of a node relative to the upper root ("" for the root). */
int lf_upper_path(struct node *n, struct lf_buf *out);
/*
 * Open the upper directory at a node's path: 0 and *fd, -ENOENT when some
 * component does not exist in the upper dir, -ENOTDIR/-ELOOP when one is not
 * a plain directory.
 */
int lf_upper_dirfd(struct lf_upper *up, struct node *n, int *fd);
/*
 * Open `name` in an upper directory fd for `flags`, never following a
 * symlink and never blocking: only a regular file or a directory is opened
 * (-EIO for anything else, which can only have been swapped in from outside;
 * -ELOOP for a symlink); O_NONBLOCK is cleared again unless asked for.
 */
int lf_upper_open_at(int dirfd, const char *name, int flags, int *fd);
/* chmod of `name` in an upper directory fd, never through a symlink
 * (-EOPNOTSUPP for a symlink itself). */
int lf_upper_chmod_at(int dirfd, const char *name, mode_t mode);
/* The merged view of `name` in directory node `dir`. */
int lf_upper_view(struct lf_upper *up, struct node *dir, const char *name,
		  struct view *v);
/* The merged view of a node itself (through its parent). */
int lf_upper_node_view(struct lf_upper *up, struct node *n, struct view *v);
/* Node `id` and its view: -ESTALE for an unknown id. */
int lf_upper_id_view(struct lf_upper *up, uint64_t id, struct node **n,
		     struct view *v);
/* Fill st for a view; also decides the reported inode number. */
void lf_upper_fill_stat(struct lf_upper *up, struct node *n,
			const struct view *v, struct stat *st);
/* The live node (parent, name), or NULL; no reference taken. */
struct node *lf_upper_find_node(struct lf_upper *up, struct node *parent,
				const char *name);
/* Find or make the node (parent, name), taking one lookup reference. */
int lf_upper_get_node(struct lf_upper *up, struct node *parent,
		      const char *name, uint64_t lower, struct node **out);
/* Drop the reference lf_upper_get_node() took (internal walks). */
void lf_upper_put_node(struct lf_upper *up, struct node *n);
/* Re-hash a node under a new parent and name (rename). */
int lf_upper_move_node(struct lf_upper *up, struct node *n, struct node *parent,
		       const char *name);
/* Remember the reported inode of an upper inode. */
void lf_upper_map_ino(struct lf_upper *up, const struct stat *ust,
		      uint64_t ino);
/* A name layerfs refuses to create or show. */
bool lf_upper_reserved(const char *name);
/* An fd on an upper object for xattr calls (-EPERM: not a file or dir). */
int lf_upper_xattr_fd(struct lf_upper *up, struct node *n, const struct view *v,
		      int *fd);
/* lf_upper_opendir() with the lock already held. */
int lf_upper_opendir_locked(struct lf_upper *up, struct node *n, uint64_t *dh);
/* Merged emptiness of a directory view (for rmdir, rename over). */
int lf_upper_dir_empty(struct lf_upper *up, struct node *dir, bool *empty);

/* upper_fdcache.c: see its header for why a cached fd is safe to use. */
/* Set the cache up (off when /proc cannot name the root): 0 or -ENOMEM. */
int lf_upper_fdc_init(struct lf_upper *up);
void lf_upper_fdc_free(struct lf_upper *up);
/* The cached fd of node id if it is still at path rel (rellen bytes, from
 * the upper root; not read when too long to check), else -1 (an entry that
 * failed the check is dropped).  The fd stays the cache's. */
int lf_upper_fdc_get(struct lf_upper *up, uint64_t id, const char *rel,
		     size_t rellen);
/* Cache a directory fd (its own O_PATH fd; dirfd stays the caller's). */
void lf_upper_fdc_put(struct lf_upper *up, uint64_t id, int dirfd);
/* Drop node id's entry (freed, deleted). */
void lf_upper_fdc_forget(struct lf_upper *up, uint64_t id);
/* Drop every entry (a directory was renamed or removed). */
void lf_upper_fdc_flush(struct lf_upper *up);
/* Forget the reported inode of an upper inode that no longer exists. */
void lf_upper_unmap_ino(struct lf_upper *up, const struct stat *ust);

/* upper_owner.c */
/* Apply name's override (NULL name: dirfd itself) to its host stat; in a
 * rootless upper, the daemon's own uid/gid show as the owner's. */
void lf_upper_owner_view(struct lf_upper *up, int dirfd, const char *name,
			 struct stat *st);
/* Record an object's image owner, mode and type (img) in its override:
 * through fd if >= 0, else name in dirfd (NULL: dirfd itself). */
int lf_upper_owner_set(struct lf_upper *up, int fd, int dirfd, const char *name,
		       const struct stat *img);
/* The mode a host object gets for image mode `mode` (rootless: the owner
 * keeps read and write, and search on directories). */
mode_t lf_upper_host_mode(const struct lf_upper *up, mode_t type, mode_t mode);
/* The override xattr's name (hidden from the view). */
bool lf_upper_is_override(const char *name);

/* upper_copyup.c */
/* Copy a node (and its parents) up; no-op when already upper. */
int lf_upper_copyup(struct lf_upper *up, struct node *n);
/* Copy a directory and its whole merged subtree up (rename of a dir). */
int lf_upper_copyup_tree(struct lf_upper *up, struct node *n);
/*
 * Copy the data of node id (a lower regular file) up with the lock released
 * meanwhile; called and returning with it held.  The node may be gone or
 * changed afterwards: look it up again.  0 also when nothing was copied.
 */
int lf_upper_copyup_unlocked(struct lf_upper *up, uint64_t id);
struct tmpcopy;
/* Discard a temp copy not put in place. */
void lf_upper_drop_tmp(int pfd, struct tmpcopy *t);
/* Make sure the upper dir of `dir` exists (copying up parents); *fd. */
int lf_upper_parent_fd(struct lf_upper *up, struct node *dir, int *fd);
/* Remove every whiteout and the opaque marker inside an upper dir. */
int lf_upper_clear_whiteouts(int dirfd);
/* Create .wh.NAME in an upper dir. */
int lf_upper_make_whiteout(int dirfd, const char *name);
/* Remove .wh.NAME from an upper dir (absent is fine). */
int lf_upper_remove_whiteout(int dirfd, const char *name);

#endif /* LAYERFS_UPPER_INTERNAL_H */

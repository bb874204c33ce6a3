// SPDX-License-Identifier: MIT
/* upper.c - nodes, safe upper paths, merged lookup, stat, readdir, xattrs. */
#include "upper_internal.h"

#include "layerfs/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#ifdef SYS_openat2
#include <linux/openat2.h>
#endif

#define NHASH 65536

bool lf_upper_reserved(const char *name)
{
	return !strncmp(name, WH_PREFIX, strlen(WH_PREFIX));
}

static size_t hash_of(uint64_t parent, const char *name)
{
	uint64_t h = 1469598103934665603ull ^ (parent * 0x9e3779b97f4a7c15ull);

	for (; *name; name++) {
		h ^= (unsigned char)*name;
		h *= 1099511628211ull;
	}
	return (size_t)(h ^ (h >> 29)) & (NHASH - 1);
}

struct node *lf_upper_node(struct lf_upper *up, uint64_t id)
{
	if (id == 0 || id >= up->nnodes)
		return NULL;
	return up->nodes[id];
}

static int new_node(struct lf_upper *up, struct node *parent,
		    const char *name, struct node **out)
{
	struct node *n = calloc(1, sizeof(*n));

	if (!n || !(n->name = strdup(name))) {
		free(n);
		return -ENOMEM;
	}
	if (up->nnodes == up->anodes) {
		uint64_t na = up->anodes ? up->anodes * 2 : 1024;
		struct node **p = realloc(up->nodes, na * sizeof(*p));

		if (!p) {
			free(n->name);
			free(n);
			return -ENOMEM;
		}
		up->nodes = p;
		up->anodes = na;
	}
	n->id = up->nnodes++;
	n->parent = parent;
	if (parent)
		parent->nchild++;
	up->nodes[n->id] = n;
	*out = n;
	return 0;
}

static void hash_add(struct lf_upper *up, struct node *n)
{
	size_t h = hash_of(n->parent ? n->parent->id : 0, n->name);

	n->hnext = up->hash[h];
	up->hash[h] = n;
}

static void hash_del(struct lf_upper *up, struct node *n)
{
	struct node **pp = &up->hash[hash_of(n->parent ? n->parent->id : 0,
					     n->name)];

	while (*pp && *pp != n)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = n->hnext;
	n->hnext = NULL;
}

struct node *lf_upper_find_node(struct lf_upper *up, struct node *parent,
				const char *name)
{
	struct node *n = up->hash[hash_of(parent->id, name)];

	for (; n; n = n->hnext)
		if (n->parent == parent && !strcmp(n->name, name))
			return n;
	return NULL;
}

int lf_upper_get_node(struct lf_upper *up, struct node *parent,
		      const char *name, uint64_t lower, struct node **out)
{
	struct node *n = lf_upper_find_node(up, parent, name);
	int ret;

	if (!n) {
		if ((ret = new_node(up, parent, name, &n)))
			return ret;
		hash_add(up, n);
	}
	n->lower = lower;
	n->nlookup++;
	*out = n;
	return 0;
}

int lf_upper_move_node(struct lf_upper *up, struct node *n,
		       struct node *parent, const char *name)
{
	char *nm = strdup(name);

	if (!nm)
		return -ENOMEM;
	hash_del(up, n);
	free(n->name);
	n->name = nm;
	n->parent->nchild--;
	parent->nchild++;
	n->parent = parent;
	hash_add(up, n);
	return 0;
}

/* Free a node nobody refers to (no kernel reference, no child node). */
static void maybe_free(struct lf_upper *up, struct node *n)
{
	/* a node is freed once neither the kernel nor a child refers to it */
	while (n && n->parent && n->nlookup == 0 && n->nchild == 0) {
		struct node *p = n->parent;

		/* deleted nodes stay hashed under "" (mark_deleted) */
		hash_del(up, n);
		p->nchild--;
		up->nodes[n->id] = NULL;
		free(n->name);
		free(n);
		n = p;
	}
}

void lf_upper_put_node(struct lf_upper *up, struct node *n)
{
	if (n->nlookup)
		n->nlookup--;
	maybe_free(up, n);
}

void lf_upper_forget(struct lf_upper *up, uint64_t id, uint64_t count)
{
	struct node *n;

	pthread_mutex_lock(&up->lock);
	n = lf_upper_node(up, id);
	if (n && n->parent) {
		n->nlookup = count > n->nlookup ? 0 : n->nlookup - count;
		maybe_free(up, n);
	}
	pthread_mutex_unlock(&up->lock);
}

/*
 * The nodes from n up to, not including, the root (n first), in a heap array
 * the caller frees: an upper dir made from outside may be of any depth.
 * Deeper than LF_UPPER_MAX_DEPTH is -ENAMETOOLONG: every operation walks the
 * whole path, so depth costs time on each one.
 */
static int node_chain(struct node *n, struct node ***out, size_t *depth)
{
	struct node **v = NULL, **p;
	size_t len = 0, cap = 0;

	for (; n && n->parent; n = n->parent) {
		if (len == LF_UPPER_MAX_DEPTH) {
			free(v);
			return -ENAMETOOLONG;
		}
		if (len == cap) {
			cap = cap ? cap * 2 : 64;
			p = realloc(v, cap * sizeof(*v));
			if (!p) {
				free(v);
				return -ENOMEM;
			}
			v = p;
		}
		v[len++] = n;
	}
	*out = v;
	*depth = len;
	return 0;
}

int lf_upper_path(struct node *n, struct lf_buf *out)
{
	struct node **stack;
	size_t depth;
	int ret;

	lf_buf_reset(out);
	if ((ret = node_chain(n, &stack, &depth)))
		return ret;
	while (depth-- && !ret) {
		if (out->len)
			ret = lf_buf_addch(out, '/');
		if (!ret)
			ret = lf_buf_adds(out, stack[depth]->name);
	}
	free(stack);
	return ret ? ret : lf_buf_grow(out, 0);
}

#ifdef SYS_openat2
/*
 * The whole path in one openat2(2) that refuses symlinks (and magic links)
 * anywhere and stays beneath the upper root: -ENOSYS where the kernel lacks
 * it (then the caller walks one component at a time).
 */
static int open_beneath(struct lf_upper *up, struct node **stack,
			size_t depth, int *out)
{
	static volatile int missing;
	struct open_how how = {
		.flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
			   RESOLVE_NO_MAGICLINKS,
	};
	char path[PATH_MAX];
	size_t len = 0, l;
	long fd;

	if (missing)
		return -ENOSYS;
	while (depth--) {
		l = strlen(stack[depth]->name);
		if (len + l + 2 > sizeof(path))
			return -ENOSYS; /* too long for one call: walk it */
		memcpy(path + len, stack[depth]->name, l);
		len += l;
		path[len++] = depth ? '/' : '\0';
	}
	fd = syscall(SYS_openat2, up->root, path, &how, sizeof(how));
	if (fd >= 0) {
		*out = (int)fd;
		return 0;
	}
	if (errno == ENOSYS || errno == E2BIG || errno == EPERM) {
		missing = 1; /* old kernel, or a seccomp filter */
		return -ENOSYS;
	}
	if (errno == EAGAIN || errno == EXDEV)
		return -ENOSYS; /* a rename raced: walk it */
	return errno == ELOOP ? -ENOTDIR : -errno;
}
#else
static int open_beneath(struct lf_upper *up, struct node **stack,
			size_t depth, int *out)
{
	(void)up, (void)stack, (void)depth, (void)out;
	return -ENOSYS;
}
#endif

int lf_upper_dirfd(struct lf_upper *up, struct node *n, int *out)
{
	struct node **stack;
	size_t depth;
	int fd, ret;

	if ((ret = node_chain(n, &stack, &depth)))
		return ret;
	if (depth && (ret = open_beneath(up, stack, depth, out)) != -ENOSYS) {
		free(stack);
		return ret;
	}
	/* a new open file description: a dup would share the directory
	 * offset with every other user of the root fd */
	fd = openat(up->root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ret = fd < 0 ? -errno : 0;
	/* one component at a time, never through a symlink */
	while (!ret && depth--) {
		int next = openat(fd, stack[depth]->name,
				  O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
				  O_NONBLOCK | O_CLOEXEC);
		int e = errno;

		close(fd);
		fd = next;
		if (next < 0)
			ret = e == ELOOP ? -ENOTDIR : -e;
	}
	free(stack);
	if (!ret)
		*out = fd;
	return ret;
}

/* An O_PATH fd of `name` in dirfd (never followed) and what it is. */
static int path_fd(int dirfd, const char *name, struct stat *st)
{
	int fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

int lf_upper_open_at(int dirfd, const char *name, int flags, int *out)
{
	char proc[32];
	struct stat st, st2;
	int pfd, fd, fl;

	flags &= ~(O_CREAT | O_EXCL | O_NOCTTY | O_PATH | O_TMPFILE);
	if ((pfd = path_fd(dirfd, name, &st)) < 0)
		return pfd;
	/* only files and directories are ever opened through the view: the
	 * kernel handles special files itself, so anything else here was
	 * swapped in from outside (a FIFO would block, a device would run a
	 * driver's open) */
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
		close(pfd);
		return S_ISLNK(st.st_mode) ? -ELOOP : -EIO;
	}
	if ((flags & O_DIRECTORY) && !S_ISDIR(st.st_mode)) {
		close(pfd);
		return -ENOTDIR;
	}
	/* reopen the very inode checked above (no second name lookup) */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
	fd = open(proc, (flags & ~O_NOFOLLOW) | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) /* no /proc: by name, then compare */
		fd = openat(dirfd, name, flags | O_NOFOLLOW | O_NONBLOCK |
			    O_CLOEXEC);
	fl = errno;
	close(pfd);
	if (fd < 0)
		return -fl;
	if (fstat(fd, &st2) < 0 || st2.st_ino != st.st_ino ||
	    st2.st_dev != st.st_dev) {
		close(fd);
		return -EIO;
	}
	/* O_NONBLOCK was only for the open */
	if (!(flags & O_NONBLOCK) && ((fl = fcntl(fd, F_GETFL)) < 0 ||
				      fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)) {
		fl = errno;
		close(fd);
		return -fl;
	}
	*out = fd;
	return 0;
}

int lf_upper_chmod_at(int dirfd, const char *name, mode_t mode)
{
	char proc[32];
	struct stat st;
	int fd = path_fd(dirfd, name, &st), ret = 0;

	if (fd < 0)
		return fd;
	if (S_ISLNK(st.st_mode)) {
		close(fd);
		return -EOPNOTSUPP; /* symlinks have no mode of their own */
	}
	/* chmod of the O_PATH fd's inode itself, whatever the name is now */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (chmod(proc, mode) < 0)
		ret = errno == ENOENT ? (fchmodat(dirfd, name, mode,
						  AT_SYMLINK_NOFOLLOW) < 0
					 ? -errno : 0)
				      : -errno;
	close(fd);
	return ret;
}

static bool exists_at(int fd, const char *name)
{
	struct stat st;

	return fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static int wh_name(const char *name, char *buf, size_t size)
{
	if (snprintf(buf, size, WH_PREFIX "%s", name) >= (int)size)
		return -ENAMETOOLONG;
	return 0;
}

static bool dir_is_opaque(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			O_CLOEXEC);
	bool ret;

	if (fd < 0)
		return false;
	ret = exists_at(fd, WH_OPAQUE);
	close(fd);
	return ret;
}

int lf_upper_view(struct lf_upper *up, struct node *dir, const char *name,
		  struct view *v)
{
	char wh[NAME_MAX + 8];
	uint64_t lino;
	int fd = -1, ret;
	bool dopaque = false;

	memset(v, 0, sizeof(*v));
	/* a name the host cannot hold (a long lower name) has neither an upper
	 * object nor a whiteout: it is the lower one */
	bool fits = strlen(name) <= NAME_MAX;
	bool wh_fits = !wh_name(name, wh, sizeof(wh)) && strlen(wh) <= NAME_MAX;

	ret = lf_upper_dirfd(up, dir, &fd);
	if (ret && ret != -ENOENT)
		return ret;
	if (!ret) {
		v->upper = fits && fstatat(fd, name, &v->ust,
					   AT_SYMLINK_NOFOLLOW) == 0;
		v->whiteout = wh_fits && exists_at(fd, wh);
		dopaque = exists_at(fd, WH_OPAQUE);
		if (v->upper && S_ISDIR(v->ust.st_mode))
			v->opaque = dir_is_opaque(fd, name);
		close(fd);
	}
	if (dir->lower && !dopaque && !v->whiteout &&
	    !lf_tree_lookup(up->tree, dir->lower, name, strlen(name), &lino) &&
	    !lf_tree_getattr(up->tree, lino, &v->lat))
		v->lower = lino;
	return 0;
}

int lf_upper_id_view(struct lf_upper *up, uint64_t id, struct node **n,
		     struct view *v)
{
	*n = lf_upper_node(up, id);
	return *n ? lf_upper_node_view(up, *n, v) : -ESTALE;
}

int lf_upper_node_view(struct lf_upper *up, struct node *n, struct view *v)
{
	int fd;

	if (n->deleted)
		return -ENOENT;
	if (n->parent)
		return lf_upper_view(up, n->parent, n->name, v);
	/* the root: the upper dir itself over the tree's root */
	memset(v, 0, sizeof(*v));
	if (fstat(up->root, &v->ust) < 0)
		return -errno;
	v->upper = true;
	if (!lf_upper_dirfd(up, n, &fd)) {
		v->opaque = exists_at(fd, WH_OPAQUE);
		close(fd);
	}
	v->lower = LF_TREE_ROOT;
	return lf_tree_getattr(up->tree, LF_TREE_ROOT, &v->lat);
}

/* The lower inode a node falls through to, given its view. */
static uint64_t fall_through(const struct view *v)
{
	if (!v->lower)
		return 0;
	if (!v->upper)
		return v->lower;
	/* only a directory merges with a lower directory */
	if (S_ISDIR(v->ust.st_mode) && S_ISDIR(v->lat.mode) && !v->opaque)
		return v->lower;
	return 0;
}

void lf_upper_map_ino(struct lf_upper *up, const struct stat *ust,
		      uint64_t ino)
{
	size_t i;

	for (i = 0; i < up->nimap; i++)
		if (up->imap[i].dev == ust->st_dev &&
		    up->imap[i].upper == ust->st_ino) {
			up->imap[i].ino = ino;
			return;
		}
	if (up->nimap == up->aimap) {
		size_t na = up->aimap ? up->aimap * 2 : 256;
		struct ino_map_ent *p = realloc(up->imap, na * sizeof(*p));

		if (!p)
			return; /* only costs inode stability */
		up->imap = p;
		up->aimap = na;
	}
	up->imap[up->nimap++] = (struct ino_map_ent){ ust->st_dev,
						      ust->st_ino, ino };
}

static uint64_t mapped_ino(struct lf_upper *up, const struct stat *ust)
{
	size_t i;

	for (i = 0; i < up->nimap; i++)
		if (up->imap[i].dev == ust->st_dev &&
		    up->imap[i].upper == ust->st_ino)
			return up->imap[i].ino;
	return 0;
}

void lf_upper_fill_stat(struct lf_upper *up, struct node *n,
			const struct view *v, struct stat *st)
{
	const struct lf_tree_attr *a = &v->lat;
	uint64_t ino;

	if (v->upper) {
		*st = v->ust;
		/* copied-up objects keep the lower inode number (overlayfs);
		 * after a remount, an upper object of the lower's type at the
		 * lower's path is taken for its copy, unless it has several
		 * names (then all of them must keep agreeing) or is an opaque
		 * directory (made anew over a deleted one, never a copy) */
		ino = mapped_ino(up, &v->ust);
		if (!ino && v->lower &&
		    (v->ust.st_mode & S_IFMT) == (a->mode & S_IFMT) &&
		    (S_ISDIR(a->mode) ? !v->opaque
				      : a->nlink <= 1 && v->ust.st_nlink <= 1))
			ino = v->lower;
		if (!ino)
			ino = UPPER_INO_BIT | (uint64_t)v->ust.st_ino;
		st->st_ino = ino;
		/* like overlayfs: counting subdirs of a merged dir is not
		 * worth it, and 1 keeps find(1) from optimising wrongly */
		if (S_ISDIR(st->st_mode) && fall_through(v))
			st->st_nlink = 1;
	} else {
		lf_tree_attr_stat(a, st);
	}
	if (n)
		n->ino = st->st_ino;
}

int lf_upper_lookup(struct lf_upper *up, uint64_t parent, const char *name,
		    uint64_t *id, struct stat *st)
{
	struct node *dir, *n;
	struct view v;
	int ret;

	pthread_mutex_lock(&up->lock);
	dir = lf_upper_node(up, parent);
	if (!dir) {
		ret = -ESTALE;
		goto out;
	}
	/* whiteouts and our temp files are never part of the view */
	if (lf_upper_reserved(name)) {
		ret = -ENOENT;
		goto out;
	}
	if ((ret = lf_upper_view(up, dir, name, &v)))
		goto out;
	if (!v.upper && !v.lower) {
		ret = -ENOENT;
		goto out;
	}
	ret = lf_upper_get_node(up, dir, name, fall_through(&v), &n);
	if (ret)
		goto out;
	lf_upper_fill_stat(up, n, &v, st);
	*id = n->id;
out:
	pthread_mutex_unlock(&up->lock);
	return ret;
}

int lf_upper_getattr(struct lf_upper *up, uint64_t id, struct stat *st)
{
	struct node *n;
	struct view v;
	int ret;

	pthread_mutex_lock(&up->lock);
	ret = lf_upper_id_view(up, id, &n, &v);
	if (!ret && !v.upper && !v.lower)
		ret = -ENOENT;
	if (!ret)
		lf_upper_fill_stat(up, n, &v, st);
	pthread_mutex_unlock(&up->lock);
	return ret;
}

int lf_upper_in_upper(struct lf_upper *up, uint64_t id, bool *in_upper)
{
	struct node *n;
	struct view v;
	int ret;

	pthread_mutex_lock(&up->lock);
	ret = lf_upper_id_view(up, id, &n, &v);
	if (!ret)
		*in_upper = v.upper;
	pthread_mutex_unlock(&up->lock);
	return ret;
}

int lf_upper_readlink(struct lf_upper *up, uint64_t id, char *buf,
		      size_t size)
{
	struct node *n;
	struct view v;
	ssize_t len;
	int fd, ret;

	pthread_mutex_lock(&up->lock);
	ret = lf_upper_id_view(up, id, &n, &v);
	if (ret)
		goto out;
	if (v.upper) {
		ret = -EINVAL;
		if (!S_ISLNK(v.ust.st_mode) ||
		    (ret = lf_upper_dirfd(up, n->parent, &fd)))
			goto out;
		len = readlinkat(fd, n->name, buf, size - 1);
		ret = len < 0 ? -errno : 0;
		close(fd);
		if (len >= 0)
			buf[len] = '\0';
	} else if (v.lower && S_ISLNK(v.lat.mode)) {
		snprintf(buf, size, "%s", lf_tree_readlink(up->tree, v.lower));
	} else {
		ret = -EINVAL;
	}
out:
	pthread_mutex_unlock(&up->lock);
	return ret;
}

/* --- directory listings ------------------------------------------------ */

struct dirsnap {
	struct lf_upper_dirent *ents;
	size_t n, cap;
	struct lf_buf names;	/* NUL-separated; ents[i].name points in */
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool in_sorted(char **arr, size_t n, const char *s)
{
	return n && bsearch(&s, arr, n, sizeof(*arr), cmp_str);
}

static int snap_add(struct dirsnap *d, const char *name, uint64_t ino,
		    uint32_t type)
{
	if (d->n == d->cap) {
		size_t nc = d->cap ? d->cap * 2 : 64;
		struct lf_upper_dirent *p = realloc(d->ents, nc * sizeof(*p));

		if (!p)
			return -ENOMEM;
		d->ents = p;
		d->cap = nc;
	}
	/* store the offset now, fix up pointers when the buffer is final */
	d->ents[d->n++] = (struct lf_upper_dirent){
		(const char *)(uintptr_t)d->names.len, ino, type };
	return lf_buf_add(&d->names, name, strlen(name) + 1);
}

/* Read the upper dir: visible names, whiteout targets, opacity. */
static int scan_upper(int fd, char ***names, size_t *nn, char ***wh,
		      size_t *nw, bool *opaque)
{
	DIR *dp = fdopendir(fd);
	struct dirent *de;
	size_t cn = 0, cw = 0;

	if (!dp) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(dp))) {
		const char *nm = de->d_name;
		char ***arr = names;
		size_t *cnt = nn, *cap = &cn;

		if (!strcmp(nm, ".") || !strcmp(nm, ".."))
			continue;
		if (!strcmp(nm, WH_OPAQUE)) {
			*opaque = true;
			continue;
		}
		if (!strncmp(nm, TMP_PREFIX, strlen(TMP_PREFIX)))
			continue;
		if (lf_upper_reserved(nm)) {
			arr = wh;
			cnt = nw;
			cap = &cw;
			nm += strlen(WH_PREFIX);
		}
		if (*cnt == *cap) {
			size_t nc = *cap ? *cap * 2 : 32;
			char **p = realloc(*arr, nc * sizeof(*p));

			if (!p)
				goto nomem;
			*arr = p;
			*cap = nc;
		}
		if (!((*arr)[*cnt] = strdup(nm)))
			goto nomem;
		(*cnt)++;
	}
	closedir(dp);
	if (*nn)
		qsort(*names, *nn, sizeof(char *), cmp_str);
	if (*nw)
		qsort(*wh, *nw, sizeof(char *), cmp_str);
	return 0;
nomem:
	/* a listing cut short would show lower names its whiteouts hide */
	closedir(dp);
	return -ENOMEM;
}

static void free_strs(char **a, size_t n)
{
	while (n--)
		free(a[n]);
	free(a);
}

static int build_snap(struct lf_upper *up, struct node *dir,
		      struct dirsnap *d)
{
	char **names = NULL, **wh = NULL;
	size_t nn = 0, nw = 0, i, cnt;
	bool opaque = false;
	struct view v;
	struct stat st;
	int fd, ret = 0;

	/* no upper dir (-ENOENT): a lower directory only; any other failure
	 * (too deep, I/O) must not pass for an empty upper */
	ret = lf_upper_dirfd(up, dir, &fd);
	if (!ret)
		ret = scan_upper(fd, &names, &nn, &wh, &nw, &opaque);
	if (ret && ret != -ENOENT) {
		free_strs(names, nn);
		free_strs(wh, nw);
		return ret;
	}
	ret = 0;
	for (i = 0; i < nn && !ret; i++) {
		int vr = lf_upper_view(up, dir, names[i], &v);

		if (vr && vr != -ENOENT) {
			ret = vr;
			break;
		}
		if (vr || !v.upper)
			continue; /* vanished meanwhile */
		lf_upper_fill_stat(up, NULL, &v, &st);
		ret = snap_add(d, names[i], st.st_ino, st.st_mode & S_IFMT);
	}
	cnt = dir->lower && !opaque ? lf_tree_dir_count(up->tree, dir->lower)
				    : 0;
	for (i = 0; i < cnt && !ret; i++) {
		struct lf_tree_attr a;
		const char *nm;
		char name[NAME_MAX + 1];
		size_t len;
		uint64_t ino;

		lf_tree_dir_entry(up->tree, dir->lower, i, &nm, &len, &ino);
		if (len > NAME_MAX)
			continue;
		memcpy(name, nm, len);
		name[len] = '\0';
		if (in_sorted(wh, nw, name) || in_sorted(names, nn, name) ||
		    lf_upper_reserved(name))
			continue;
		lf_tree_getattr(up->tree, ino, &a);
		ret = snap_add(d, name, ino, a.mode & S_IFMT);
	}
	free_strs(names, nn);
	free_strs(wh, nw);
	for (i = 0; i < d->n; i++)
		d->ents[i].name = d->names.data + (uintptr_t)d->ents[i].name;
	return ret;
}

int lf_upper_opendir_locked(struct lf_upper *up, struct node *n,
			    uint64_t *dh)
{
	struct dirsnap *d = calloc(1, sizeof(*d));
	struct view v;
	int ret;

	*dh = 0;
	if (!d)
		return -ENOMEM;
	lf_buf_init(&d->names);
	ret = lf_upper_node_view(up, n, &v);
	if (!ret) {
		bool isdir = v.upper ? S_ISDIR(v.ust.st_mode)
				     : (v.lower && S_ISDIR(v.lat.mode));

		ret = isdir ? build_snap(up, n, d) : -ENOTDIR;
	}
	if (ret) {
		lf_upper_releasedir(up, (uint64_t)(uintptr_t)d);
		return ret;
	}
	*dh = (uint64_t)(uintptr_t)d;
	return 0;
}

int lf_upper_opendir(struct lf_upper *up, uint64_t id, uint64_t *dh)
{
	struct node *n;
	int ret;

	pthread_mutex_lock(&up->lock);
	n = lf_upper_node(up, id);
	ret = n ? lf_upper_opendir_locked(up, n, dh) : -ESTALE;
	pthread_mutex_unlock(&up->lock);
	return ret;
}

int lf_upper_readdir(struct lf_upper *up, uint64_t dh, size_t i,
		     struct lf_upper_dirent *out)
{
	struct dirsnap *d = (struct dirsnap *)(uintptr_t)dh;

	(void)up;
	if (i >= d->n)
		return -ENOENT;
	*out = d->ents[i];
	return 0;
}

void lf_upper_releasedir(struct lf_upper *up, uint64_t dh)
{
	struct dirsnap *d = (struct dirsnap *)(uintptr_t)dh;

	(void)up;
	if (!d)
		return;
	free(d->ents);
	lf_buf_release(&d->names);
	free(d);
}

int lf_upper_dir_empty(struct lf_upper *up, struct node *dir, bool *empty)
{
	struct dirsnap d = { 0 };
	int ret;

	lf_buf_init(&d.names);
	ret = build_snap(up, dir, &d);
	*empty = d.n == 0;
	free(d.ents);
	lf_buf_release(&d.names);
	return ret;
}

/* --- xattrs ------------------------------------------------------------ */

int lf_upper_xattr_fd(struct lf_upper *up, struct node *n, const struct view *v,
		    int *out)
{
	int dfd, fd, ret;

	if (!n->parent)
		return (*out = fcntl(up->root, F_DUPFD_CLOEXEC, 0)) < 0 ? -errno
									 : 0;
	if (!S_ISREG(v->ust.st_mode) && !S_ISDIR(v->ust.st_mode))
		return -EPERM; /* user.* xattrs exist on files and dirs only */
	if ((ret = lf_upper_dirfd(up, n->parent, &dfd)))
		return ret;
	ret = lf_upper_open_at(dfd, n->name, O_RDONLY, &fd);
	close(dfd);
	*out = ret ? -1 : fd;
	return ret == -EIO || ret == -ELOOP ? -EPERM : ret;
}

ssize_t lf_upper_getxattr(struct lf_upper *up, uint64_t id, const char *name,
			  void *buf, size_t size)
{
	struct node *n;
	struct view v;
	ssize_t ret;
	int fd;

	pthread_mutex_lock(&up->lock);
	ret = lf_upper_id_view(up, id, &n, &v);
	if (ret)
		goto out;
	if (v.upper) {
		ret = lf_upper_xattr_fd(up, n, &v, &fd);
		if (ret == -EPERM)
			ret = -ENODATA;
		if (ret)
			goto out;
		ret = fgetxattr(fd, name, buf, size);
		ret = ret < 0 ? -errno : ret;
		close(fd);
		goto out;
	}
	{
		const void *val;
		size_t len;

		ret = lf_tree_getxattr(up->tree, v.lower, name, &val, &len);
		if (!ret) {
			ret = (ssize_t)len;
			if (size && size < len)
				ret = -ERANGE;
			else if (size)
				memcpy(buf, val, len);
		}
	}
out:
	pthread_mutex_unlock(&up->lock);
	return ret;
}

ssize_t lf_upper_listxattr(struct lf_upper *up, uint64_t id, char *buf,
			   size_t size)
{
	struct node *n;
	struct view v;
	ssize_t ret;
	size_t total = 0;
	int fd;

	pthread_mutex_lock(&up->lock);
	ret = lf_upper_id_view(up, id, &n, &v);
	if (ret)
		goto out;
	if (v.upper) {
		ret = lf_upper_xattr_fd(up, n, &v, &fd);
		if (ret == -EPERM) {
			ret = 0;
			goto out;
		}
		if (ret)
			goto out;
		ret = flistxattr(fd, buf, size);
		ret = ret < 0 ? -errno : ret;
		close(fd);
		goto out;
	}
	for (size_t k = 0; k < lf_tree_xattr_count(up->tree, v.lower); k++) {
		const char *xn;
		const void *val;
		size_t len, l;

		lf_tree_xattr(up->tree, v.lower, k, &xn, &val, &len);
		l = strlen(xn) + 1;
		if (size && total + l > size) {
			ret = -ERANGE;
			goto out;
		}
		if (size)
			memcpy(buf + total, xn, l);
		total += l;
	}
	ret = (ssize_t)total;
out:
	pthread_mutex_unlock(&up->lock);
	return ret;
}

int lf_upper_statfs(struct lf_upper *up, struct statvfs *sv)
{
	return fstatvfs(up->root, sv) < 0 ? -errno : 0;
}

static bool is_empty_dir(int fd)
{
	int d = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	bool empty = true;
	DIR *dp;

	if (d < 0 || !(dp = fdopendir(d))) {
		if (d >= 0)
			close(d);
		return false;
	}
	while (empty && (de = readdir(dp)))
		empty = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
	closedir(dp);
	return empty;
}

/*
 * The upper dir is the merged view's root: a fresh one takes the image
 * root's owner, mode and times, as a copy-up of the root would.
 */
static void adopt_root(struct lf_upper *up)
{
	struct lf_tree_attr a;
	struct timespec ts[2];

	if (lf_tree_getattr(up->tree, LF_TREE_ROOT, &a))
		return;
	ts[0].tv_sec = ts[1].tv_sec = a.mtime;
	ts[0].tv_nsec = ts[1].tv_nsec = a.mtime_nsec;
	if (fchown(up->root, a.uid, a.gid) < 0) {
		/* a normal user keeps their own directory */
	}
	if (fchmod(up->root, a.mode & 07777) < 0 || futimens(up->root, ts) < 0)
		lf_log(LF_LOG_WARN, "cannot give the upper directory the "
				    "image root's metadata: %s",
		       strerror(errno));
}

int lf_upper_new(const char *dir, const struct lf_stack *stack,
		 struct lf_upper **out, struct lf_err *err)
{
	struct lf_upper *up = calloc(1, sizeof(*up));
	struct node *root;
	struct stat st;
	bool created = false;

	if (!up || !(up->hash = calloc(NHASH, sizeof(*up->hash))))
		goto nomem;
	up->root = -1;
	pthread_mutex_init(&up->lock, NULL);
	up->stack = stack;
	up->tree = lf_stack_tree(stack);
	if (mkdir(dir, 0755) == 0) {
		created = true;
	} else if (errno != EEXIST) {
		lf_err_set(err, -errno, "cannot create upper directory '%s': %s",
			   dir, strerror(errno));
		goto fail;
	}
	up->root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (up->root < 0 || fstat(up->root, &st) < 0) {
		lf_err_set(err, -errno, "cannot open upper directory '%s': %s",
			   dir, strerror(errno));
		goto fail;
	}
	up->dev = st.st_dev;
	/* only a directory we made: diff and commit open existing ones and
	 * must not change them */
	if (created && is_empty_dir(up->root))
		adopt_root(up);
	/* id 0 is never used: FUSE's root is 1 */
	if (new_node(up, NULL, "", &root) || new_node(up, NULL, "", &root))
		goto nomem;
	free(up->nodes[0]->name);
	free(up->nodes[0]);
	up->nodes[0] = NULL;
	root->lower = LF_TREE_ROOT;
	root->nlookup = 1;
	*out = up;
	return 0;
nomem:
	lf_err_set(err, -ENOMEM, "out of memory");
fail:
	lf_upper_free(up);
	return err ? err->code : -ENOMEM;
}

void lf_upper_free(struct lf_upper *up)
{
	uint64_t i;

	if (!up)
		return;
	for (i = 0; i < up->nnodes; i++) {
		if (up->nodes[i]) {
			free(up->nodes[i]->name);
			free(up->nodes[i]);
		}
	}
	free(up->nodes);
	free(up->hash);
	free(up->imap);
	if (up->root >= 0)
		close(up->root);
	pthread_mutex_destroy(&up->lock);
	free(up);
}

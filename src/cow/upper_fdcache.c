// SPDX-License-Identifier: MIT
/*
 * upper_fdcache.c - a bounded cache of upper directory fds, by node id, so
 * that an operation on a deep path opens its directory from the nearest
 * cached ancestor instead of walking the upper dir from its root.
 *
 * What it holds.  At most `cap` (512, or a quarter of RLIMIT_NOFILE when
 * that is lower, at least 16) O_PATH|O_DIRECTORY fds, each of the upper
 * directory of one live node, in least-recently-used order.  A fd enters
 * only after lf_upper_dirfd() opened that directory beneath the upper root
 * the way it always does (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, or
 * one O_NOFOLLOW|O_DIRECTORY component at a time), from the root or from a
 * cached ancestor that passed the check below.  The cache is used only
 * under upper->lock, like the node table.
 *
 * When an entry goes.  (1) Its node is freed (forget, or the last internal
 * reference) or marked deleted: node ids are reused, so a freed id must
 * never find the old directory.  (2) Every rmdir of an upper directory, and
 * every rename through the mount where either side is a directory, empties
 * the whole cache: the namespace above cached directories changed, and
 * rebuilding is cheap.
 * (3) The least recently used entry, when the cache is full.  (4) A hit
 * that fails the check below.
 *
 * Why a hit is safe (the guarantees of upper_fs.c stay).  A cached fd names
 * a directory inode, not a path.  Every use of it is an *at() call on a
 * single component that is never `..` and never followed when it is a
 * symlink, so only the directory's own entries are ever reached through it;
 * the only question is whether the directory is still the one at the
 * node's path beneath the root.  Changes through the mount keep that true
 * (or empty the cache, above).  A change from outside (a directory renamed
 * or removed, a symlink swapped in for it) is caught on every hit: the
 * kernel's current path of the fd (readlink of /proc/self/fd/N, which
 * follows nothing) must be exactly the root's current path, `/`, and the
 * node's path; otherwise the entry is dropped and the directory is opened
 * again the slow way, which then answers as it always did (ENOTDIR, ENOENT).
 * Without /proc the cache stays off.  Where the path is longer than
 * PATH_MAX the kernel cannot name it and the hit is taken unchecked: the fd
 * was opened beneath the root without following anything, and a directory
 * moved out of the upper dir from outside can only have been moved by
 * someone allowed to write into it and into its new parent: what layerfs
 * does inside it afterwards, that person could have had done inside it
 * before the move.  Such a path, changed from outside, is seen by the view
 * once its entry leaves the cache (LRU or any directory rename or rmdir
 * through the mount).
 */
#include "upper_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define FDC_MAX 512
#define FDC_MIN 16
#define DELETED_SUFFIX " (deleted)"

static size_t fdc_home(const struct upper_fdcache *c, uint64_t id)
{
	uint64_t x = id * 0x9e3779b97f4a7c15ull;

	return (size_t)(x >> 32) & (c->nbucket - 1);
}

/* The root's current path, as the kernel names it. */
static int read_root(struct lf_upper *up)
{
	struct upper_fdcache *c = &up->fdc;
	char proc[32];
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", up->root);
	n = readlink(proc, c->root, sizeof(c->root) - 1);
	if (n <= 0 || c->root[0] != '/')
		return -ENOENT;
	c->root[n] = '\0';
	/* "/" itself: child paths are "/NAME", not "//NAME" */
	c->rootlen = n == 1 ? 0 : (size_t)n;
	return 0;
}

int lf_upper_fdc_init(struct lf_upper *up)
{
	struct upper_fdcache *c = &up->fdc;
	struct rlimit rl;
	size_t cap = FDC_MAX, i;

	c->head = c->tail = -1;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur / 4 < cap)
		cap = rl.rlim_cur / 4;
	if (cap < FDC_MIN || read_root(up))
		return 0; /* off: every open walks from the root */
	c->ent = calloc(cap, sizeof(*c->ent));
	for (c->nbucket = 1; c->nbucket < cap * 2; c->nbucket *= 2)
		;
	c->bucket = malloc(c->nbucket * sizeof(*c->bucket));
	if (!c->ent || !c->bucket) {
		free(c->ent);
		free(c->bucket);
		c->ent = NULL;
		c->bucket = NULL;
		return -ENOMEM;
	}
	for (i = 0; i < c->nbucket; i++)
		c->bucket[i] = -1;
	for (i = 0; i < cap; i++)
		c->ent[i].fd = -1;
	c->cap = cap;
	return 0;
}

static void lru_unlink(struct upper_fdcache *c, int i)
{
	struct fdc_ent *e = &c->ent[i];

	if (e->prev >= 0)
		c->ent[e->prev].next = e->next;
	else
		c->head = e->next;
	if (e->next >= 0)
		c->ent[e->next].prev = e->prev;
	else
		c->tail = e->prev;
}

static void lru_front(struct upper_fdcache *c, int i)
{
	struct fdc_ent *e = &c->ent[i];

	e->prev = -1;
	e->next = c->head;
	if (c->head >= 0)
		c->ent[c->head].prev = i;
	c->head = i;
	if (c->tail < 0)
		c->tail = i;
}

static int find(const struct upper_fdcache *c, uint64_t id)
{
	int i;

	if (!c->cap)
		return -1;
	for (i = c->bucket[fdc_home(c, id)]; i >= 0; i = c->ent[i].hnext)
		if (c->ent[i].id == id)
			return i;
	return -1;
}

/* Remove entry i (its fd closed) and put its slot on the free list. */
static void drop(struct upper_fdcache *c, int i)
{
	struct fdc_ent *e = &c->ent[i];
	int *pp = &c->bucket[fdc_home(c, e->id)];

	while (*pp != i)
		pp = &c->ent[*pp].hnext;
	*pp = e->hnext;
	lru_unlink(c, i);
	close(e->fd);
	e->fd = -1;
	e->id = 0;
	c->used--;
}

void lf_upper_fdc_forget(struct lf_upper *up, uint64_t id)
{
	int i = find(&up->fdc, id);

	if (i >= 0)
		drop(&up->fdc, i);
}

void lf_upper_fdc_flush(struct lf_upper *up)
{
	struct upper_fdcache *c = &up->fdc;

	while (c->head >= 0)
		drop(c, c->head);
}

void lf_upper_fdc_free(struct lf_upper *up)
{
	if (up->fdc.ent)
		lf_upper_fdc_flush(up);
	free(up->fdc.ent);
	free(up->fdc.bucket);
	up->fdc.ent = NULL;
	up->fdc.bucket = NULL;
	up->fdc.cap = 0;
}

void lf_upper_fdc_put(struct lf_upper *up, uint64_t id, int dirfd)
{
	struct upper_fdcache *c = &up->fdc;
	struct fdc_ent *e;
	size_t h;
	int i, fd;

	if (!c->cap || find(c, id) >= 0)
		return;
	fd = openat(dirfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (c->used == c->cap)
		drop(c, c->tail);
	for (i = 0; c->ent[i].fd >= 0; i++)
		;
	e = &c->ent[i];
	e->id = id;
	e->fd = fd;
	h = fdc_home(c, id);
	e->hnext = c->bucket[h];
	c->bucket[h] = i;
	lru_front(c, i);
	c->used++;
}

/* The kernel's path of fd is the root's path + "/" + rel (relpath bytes). */
static bool at_path(struct lf_upper *up, int fd, const char *rel, size_t rellen,
		    bool retry)
{
	struct upper_fdcache *c = &up->fdc;
	char proc[32], got[PATH_MAX];
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, got, sizeof(got));
	if (n < 0 || (size_t)n >= sizeof(got))
		return false;
	if ((size_t)n == c->rootlen + 1 + rellen &&
	    !memcmp(got, c->root, c->rootlen) && got[c->rootlen] == '/' &&
	    !memcmp(got + c->rootlen + 1, rel, rellen))
		return true;
	/* the upper dir itself may have moved: its new name, once */
	return retry && !read_root(up) && at_path(up, fd, rel, rellen, false);
}

int lf_upper_fdc_get(struct lf_upper *up, uint64_t id, const char *rel,
		     size_t rellen)
{
	struct upper_fdcache *c = &up->fdc;
	int i = find(c, id);

	if (i < 0)
		return -1;
	/* too long for the kernel to name: taken as it is (header) */
	if (c->rootlen + 1 + rellen < PATH_MAX) {
		struct stat st;
		size_t sl = sizeof(DELETED_SUFFIX) - 1;
		bool ok = at_path(up, c->ent[i].fd, rel, rellen, true);

		/* a removed directory reads as "PATH (deleted)": a real name
		 * ending so is checked to still have links */
		if (ok && rellen >= sl &&
		    !memcmp(rel + rellen - sl, DELETED_SUFFIX, sl))
			ok = fstat(c->ent[i].fd, &st) == 0 && st.st_nlink > 0;
		if (!ok) {
			drop(c, i);
			return -1;
		}
	}
	if (c->head != i) {
		lru_unlink(c, i);
		lru_front(c, i);
	}
	return c->ent[i].fd;
}

// SPDX-License-Identifier: MIT
/* commit_tar.c - write a layer (upper dir or merged view) as a gzip PAX tar. */
#include "commit_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "layerfs/mview.h"
#include "layerfs/upper.h"
#include "layerfs/whiteout.h"

#define DATA_CHUNK (1u << 20)

struct xattr {
	char *name;
	void *value;
	size_t len;
};

/* One object about to become a tar member. */
struct centry {
	struct stat st;	     /* type, mode, owner, mtime, size, dev */
	bool link_candidate; /* may share an inode with another name */
	const char *symlink; /* target, for symlinks */
	struct xattr *xa;
	size_t nxa;
};

/* Reads the contents of a regular file entry. */
typedef ssize_t (*read_fn)(void *ctx, void *buf, size_t len, uint64_t off);

/* (dev, ino) -> first path written, for hardlink groups. */
struct link_slot {
	uint64_t dev, ino;
	char *path; /* NULL: empty slot */
};

struct writer {
	const struct commit_src *src;
	struct archive *tar; /* PAX writer; its output goes to gz */
	struct archive *gz;  /* raw format + gzip filter; output to fd */
	struct archive_entry *ae;
	struct lf_sha256 *h_tar, *h_gz;
	int fd;
	const char *fdname;
	uint64_t gz_size;
	int io_err;	    /* errno of a failed write(2) */
	struct lf_buf path; /* the current member's path */
	char shown[256];    /* its start, for messages (shown()) */
	struct link_slot *links;
	size_t nlinks, alinks; /* used, allocated (power of two) */
	int64_t newest;
	uint64_t entries;
	char *buf;		     /* DATA_CHUNK bytes */
	const struct lf_mview *view; /* during walk_view() */
	bool map_owner;		     /* walk_host(): see owner_map() */
	uid_t host_uid;
	gid_t host_gid;
	struct lf_err *err;
};

/* --- the two archive writers --------------------------------------------- */

static la_ssize_t gz_write(struct archive *a, void *ctx, const void *data,
			   size_t len)
{
	struct writer *w = ctx;
	const char *p = data;
	size_t left = len;

	(void)a;
	while (left) {
		ssize_t n = write(w->fd, p, left);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			w->io_err = errno;
			archive_set_error(w->gz, errno, "write failed: %s",
					  strerror(errno));
			return -1;
		}
		p += n;
		left -= (size_t)n;
	}
	lf_sha256_update(w->h_gz, data, len);
	w->gz_size += len;
	return (la_ssize_t)len;
}

/* The tar stream: hashed for the diff_id, then compressed. */
static la_ssize_t tar_write(struct archive *a, void *ctx, const void *data,
			    size_t len)
{
	struct writer *w = ctx;

	(void)a;
	lf_sha256_update(w->h_tar, data, len);
	if (archive_write_data(w->gz, data, len) != (la_ssize_t)len) {
		archive_set_error(w->tar, EIO, "%s",
				  archive_error_string(w->gz)
					  ? archive_error_string(w->gz)
					  : "gzip failed");
		return -1;
	}
	return (la_ssize_t)len;
}

/* w->path is "/a/b" (or "" for the root); the member is "a/b". */
static const char *member(const struct writer *w)
{
	return w->path.len ? w->path.data + 1 : "";
}

/* The current path for a message: its first 200 bytes, "..." when cut
 * (a 64 KiB path would push the cause out of the one-line message). */
static const char *shown(struct writer *w)
{
	if (!w->path.len)
		return ".";
	if (w->path.len <= 201)
		return w->path.data + 1;
	snprintf(w->shown, sizeof(w->shown), "%.200s...", w->path.data + 1);
	return w->shown;
}

static int archive_fail(struct writer *w, struct archive *a, const char *what)
{
	const char *msg = archive_error_string(a);

	return lf_err_set(w->err, w->io_err ? -w->io_err : -EIO,
			  "cannot write layer '%s': %s%s%s", w->fdname, what,
			  msg ? ": " : "", msg ? msg : "");
}

static int writers_open(struct writer *w)
{
	struct archive_entry *raw;
	int ret;

	w->gz = archive_write_new();
	w->tar = archive_write_new();
	w->ae = archive_entry_new();
	raw = archive_entry_new();
	if (!w->gz || !w->tar || !w->ae || !raw) {
		ret = lf_err_set(w->err, -ENOMEM, "out of memory");
		goto out;
	}
	/*
	 * libarchive's gzip filter over its "raw" format compresses the tar
	 * stream for us (zlib stays behind libarchive); without "timestamp"
	 * the header carries mtime 0 and no name, and level 6 is fixed, so
	 * the blob depends on the tar bytes alone.  No padding after the
	 * gzip trailer (bytes_in_last_block 1).
	 */
	if (archive_write_set_format_raw(w->gz) ||
	    archive_write_add_filter_gzip(w->gz) ||
	    archive_write_set_filter_option(w->gz, "gzip", "timestamp", NULL) ||
	    archive_write_set_filter_option(w->gz, "gzip", "compression-level",
					    "6") ||
	    archive_write_set_bytes_in_last_block(w->gz, 1) ||
	    archive_write_open(w->gz, w, NULL, gz_write, NULL)) {
		ret = archive_fail(w, w->gz, "gzip");
		goto out;
	}
	archive_entry_set_pathname(raw, "layer.tar");
	archive_entry_set_filetype(raw, AE_IFREG);
	if (archive_write_header(w->gz, raw)) {
		ret = archive_fail(w, w->gz, "gzip");
		goto out;
	}
	/*
	 * PAX "interchange" rather than "restricted": restricted drops
	 * sub-second mtimes unless a member needs an extended header anyway,
	 * and the view (and umoci unpack) keeps nanoseconds.  atime/ctime
	 * are never set on our entries, so they are never written.  The tar
	 * ends after its two zero blocks, as Go's archive/tar (docker,
	 * buildkit) writes it.  xattrs as SCHILY.xattr.* only: what GNU tar,
	 * Go and umoci read (LIBARCHIVE.xattr.* would be a second copy that
	 * GNU tar warns about).
	 */
	if (archive_write_set_format_pax(w->tar) ||
	    archive_write_set_format_option(w->tar, "pax", "xattrheader",
					    "SCHILY") ||
	    archive_write_set_bytes_in_last_block(w->tar, 1) ||
	    archive_write_open(w->tar, w, NULL, tar_write, NULL)) {
		ret = archive_fail(w, w->tar, "tar");
		goto out;
	}
	ret = 0;
out:
	archive_entry_free(raw);
	return ret;
}

static int writers_close(struct writer *w)
{
	if (archive_write_close(w->tar))
		return archive_fail(w, w->tar, "tar");
	if (archive_write_close(w->gz))
		return archive_fail(w, w->gz, "gzip");
	return 0;
}

/* --- hardlink groups ----------------------------------------------------- */

static size_t link_hash(uint64_t dev, uint64_t ino)
{
	uint64_t h = (dev * 0x9e3779b97f4a7c15ull) ^ ino;

	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	return (size_t)(h ^ (h >> 32));
}

static struct link_slot *link_find(struct writer *w, uint64_t dev, uint64_t ino)
{
	size_t i = link_hash(dev, ino) & (w->alinks - 1);

	while (w->links[i].path &&
	       (w->links[i].dev != dev || w->links[i].ino != ino))
		i = (i + 1) & (w->alinks - 1);
	return &w->links[i];
}

static int link_grow(struct writer *w)
{
	struct link_slot *old = w->links;
	size_t oldn = w->alinks, i;

	w->alinks = oldn ? oldn * 2 : 64;
	w->links = calloc(w->alinks, sizeof(*w->links));
	if (!w->links) {
		w->links = old;
		w->alinks = oldn;
		return -ENOMEM;
	}
	for (i = 0; i < oldn; i++)
		if (old[i].path)
			*link_find(w, old[i].dev, old[i].ino) = old[i];
	free(old);
	return 0;
}

/*
 * The path this object was first written under, or NULL (then it is
 * remembered now and written as a file: the first name of a group carries
 * the data, the others are hardlink members).
 */
static int link_check(struct writer *w, const struct stat *st,
		      const char **first)
{
	struct link_slot *s;

	*first = NULL;
	if ((w->nlinks + 1) * 2 > w->alinks && link_grow(w))
		return -ENOMEM;
	s = link_find(w, (uint64_t)st->st_dev, (uint64_t)st->st_ino);
	if (s->path) {
		*first = s->path;
		return 0;
	}
	if (!(s->path = strdup(member(w))))
		return -ENOMEM;
	s->dev = (uint64_t)st->st_dev;
	s->ino = (uint64_t)st->st_ino;
	w->nlinks++;
	return 0;
}

/* --- members ------------------------------------------------------------- */

static bool xattr_kept(const char *name)
{
	/* what an image layer may carry: user.* and security.* (file
	 * capabilities); trusted.* and system.* (ACLs) are host business */
	return (!strncmp(name, "user.", 5) || !strncmp(name, "security.", 9)) &&
	       strcmp(name, LF_UPPER_OVERRIDE_XATTR) != 0;
}

static int cmp_xattr(const void *a, const void *b)
{
	return strcmp(((const struct xattr *)a)->name,
		      ((const struct xattr *)b)->name);
}

static int xattr_add(struct centry *e, const char *name, const void *value,
		     size_t len)
{
	struct xattr *p = realloc(e->xa, (e->nxa + 1) * sizeof(*p));

	if (!p)
		return -ENOMEM;
	e->xa = p;
	p = &e->xa[e->nxa];
	p->name = strdup(name);
	p->value = malloc(len ? len : 1);
	if (!p->name || !p->value) {
		free(p->name);
		free(p->value);
		return -ENOMEM;
	}
	memcpy(p->value, value, len);
	p->len = len;
	e->nxa++;
	return 0;
}

static void centry_release(struct centry *e)
{
	size_t i;

	for (i = 0; i < e->nxa; i++) {
		free(e->xa[i].name);
		free(e->xa[i].value);
	}
	free(e->xa);
	e->xa = NULL;
	e->nxa = 0;
}

static int write_data(struct writer *w, const struct centry *e, read_fn rd,
		      void *ctx)
{
	uint64_t off = 0, size = (uint64_t)e->st.st_size;

	while (off < size) {
		size_t want = (size_t)LF_MIN((uint64_t)DATA_CHUNK, size - off);
		ssize_t n = rd(ctx, w->buf, want, off);

		if (n < 0)
			return lf_err_set(w->err, (int)n,
					  "cannot read '%s': %s", shown(w),
					  strerror((int)-n));
		if (n == 0)
			/* the header already promised `size` bytes */
			return lf_err_set(w->err, -EIO,
					  "'%s' shrank while "
					  "being committed",
					  shown(w));
		if (archive_write_data(w->tar, w->buf, (size_t)n) != n)
			return archive_fail(w, w->tar, shown(w));
		off += (uint64_t)n;
	}
	return 0;
}

/* Write one member (w->path is its path); rd reads a regular file. */
static int emit(struct writer *w, struct centry *e, read_fn rd, void *ctx)
{
	struct archive_entry *ae = w->ae;
	const struct stat *st = &e->st;
	const char *first = NULL;
	size_t i;
	int ret, r;

	if (e->link_candidate && !S_ISDIR(st->st_mode) &&
	    (ret = link_check(w, st, &first)))
		return lf_err_set(w->err, ret, "out of memory");
	archive_entry_clear(ae);
	/* no leading "./" or "/"; libarchive adds the "/" after a dir */
	archive_entry_set_pathname(ae, member(w));
	archive_entry_set_filetype(ae, st->st_mode & S_IFMT);
	archive_entry_set_perm(ae, st->st_mode & 07777);
	archive_entry_set_uid(ae, st->st_uid);
	archive_entry_set_gid(ae, st->st_gid);
	archive_entry_set_mtime(ae, st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
	if (first) {
		archive_entry_set_hardlink(ae, first);
		archive_entry_set_size(ae, 0);
	} else if (S_ISREG(st->st_mode)) {
		archive_entry_set_size(ae, st->st_size);
	} else if (S_ISLNK(st->st_mode)) {
		archive_entry_set_symlink(ae, e->symlink);
	} else if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)) {
		archive_entry_set_rdevmajor(ae, major(st->st_rdev));
		archive_entry_set_rdevminor(ae, minor(st->st_rdev));
	}
	/* a hardlink member shares the first name's inode: its xattrs too */
	if (e->nxa && !first)
		qsort(e->xa, e->nxa, sizeof(*e->xa), cmp_xattr);
	for (i = 0; i < e->nxa && !first; i++)
		archive_entry_xattr_add_entry(ae, e->xa[i].name, e->xa[i].value,
					      e->xa[i].len);
	/* ARCHIVE_WARN: a name that is not valid UTF-8 is stored as bytes */
	r = archive_write_header(w->tar, ae);
	if (r < ARCHIVE_WARN)
		return archive_fail(w, w->tar, shown(w));
	if (st->st_mtim.tv_sec > w->newest)
		w->newest = st->st_mtim.tv_sec;
	w->entries++;
	if (!first && S_ISREG(st->st_mode) && st->st_size > 0)
		return write_data(w, e, rd, ctx);
	return 0;
}

static int path_push(struct writer *w, const char *name, size_t len)
{
	if (lf_buf_addch(&w->path, '/') || lf_buf_add(&w->path, name, len))
		return lf_err_set(w->err, -ENOMEM, "out of memory");
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
	while (n--)
		free(names[n]);
	free(names);
}

static int names_add(char ***names, size_t *n, size_t *cap, const char *s)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 32;
		char **p = realloc(*names, nc * sizeof(*p));

		if (!p)
			return -ENOMEM;
		*names = p;
		*cap = nc;
	}
	if (!((*names)[*n] = strdup(s)))
		return -ENOMEM;
	(*n)++;
	return 0;
}

/* --- the walk stack ------------------------------------------------------ */

/*
 * The walk of the upper dir as it is is iterative: each directory being
 * written is a frame on a heap stack (its sorted names and the next one to
 * write), so the depth of a tree costs heap, never C stack.  A frame
 * pushes the path length to come back to; popping it restores w->path.
 * (The merged view is walked by lf_mview_walk(), iterative too.)
 */
struct frame {
	char **names; /* sorted */
	size_t n, i;  /* names, next one to write */
	size_t plen;  /* w->path length of the parent */
	int fd;	      /* the directory (-1: closed) */
	dev_t dev;    /* identity, to check a reopen */
	ino_t ino;
};

struct stack {
	struct frame *f;
	size_t n, cap;
	size_t lo; /* host: frames below lo have closed fds */
};

/* A new frame on top (zeroed but for fd = -1); NULL when out of memory. */
static struct frame *frame_push(struct stack *s, size_t plen)
{
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 64;
		struct frame *p = realloc(s->f, nc * sizeof(*p));

		if (!p)
			return NULL;
		s->f = p;
		s->cap = nc;
	}
	s->f[s->n] = (struct frame){ .fd = -1, .plen = plen };
	return &s->f[s->n++];
}

/* --- the upper dir as it is (COMMIT_SRC_DIR) ---------------------------- */

static ssize_t fd_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	ssize_t n;

	do
		n = pread(*(int *)ctx, buf, len, (off_t)off);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static int fd_xattrs(struct writer *w, int fd, struct centry *e)
{
	char *list = NULL, *p;
	ssize_t len, vlen;
	int ret = 0;

	len = flistxattr(fd, NULL, 0);
	if (len <= 0)
		return len < 0 && errno != ENOTSUP ? -errno : 0;
	if (!(list = malloc((size_t)len)))
		return -ENOMEM;
	len = flistxattr(fd, list, (size_t)len);
	if (len < 0) {
		ret = -errno;
		goto out;
	}
	for (p = list; p < list + len && !ret; p += strlen(p) + 1) {
		if (!xattr_kept(p))
			continue;
		vlen = fgetxattr(fd, p, w->buf, DATA_CHUNK);
		if (vlen < 0) {
			if (errno == ENODATA)
				continue; /* removed meanwhile */
			ret = -errno;
			break;
		}
		ret = xattr_add(e, p, w->buf, (size_t)vlen);
	}
out:
	free(list);
	return ret;
}

/*
 * The image owner, mode and type of a host object: a rootless daemon's
 * record (upper.h) when it has one; else what the rootless user owns (the
 * committing user when not root, or the owner of an upper dir whose root
 * has a record) belongs to the owner the commit names (0:0).  True for a
 * socket, which a tar cannot hold.
 */
static bool host_owner(struct writer *w, int fd, struct stat *st)
{
	char val[128];
	ssize_t len = fd >= 0 ? fgetxattr(fd, LF_UPPER_OVERRIDE_XATTR, val,
					  sizeof(val))
			      : -1;

	if (len > 0 && !lf_upper_override_apply(val, (size_t)len, st))
		return S_ISSOCK(st->st_mode);
	if (w->map_owner) {
		if (st->st_uid == w->host_uid)
			st->st_uid = w->src->owner_uid;
		if (st->st_gid == w->host_gid)
			st->st_gid = w->src->owner_gid;
	}
	return false;
}

/* Whose unrecorded objects host_owner() maps (see there). */
static void owner_map(struct writer *w, int rootfd)
{
	struct stat st;

	w->map_owner = geteuid() != 0;
	w->host_uid = geteuid();
	w->host_gid = getegid();
	if (!w->map_owner && fstat(rootfd, &st) == 0 && st.st_uid != 0 &&
	    fgetxattr(rootfd, LF_UPPER_OVERRIDE_XATTR, NULL, 0) > 0) {
		w->map_owner = true;
		w->host_uid = st.st_uid;
		w->host_gid = st.st_gid;
	}
}

/* Names in directory `dfd`, sorted, without "." and our temp files. */
static int dir_names(int dfd, char ***names, size_t *n)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	size_t cap = 0;
	struct dirent *de;
	DIR *dp;
	int ret = 0;

	*names = NULL;
	*n = 0;
	if (fd < 0 || !(dp = fdopendir(fd))) {
		ret = -errno;
		if (fd >= 0)
			close(fd);
		return ret;
	}
	errno = 0;
	while (!ret && (de = readdir(dp))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    lf_is_upper_tmp(de->d_name))
			continue;
		ret = names_add(names, n, &cap, de->d_name);
		errno = 0;
	}
	if (!ret && errno)
		ret = -errno;
	closedir(dp);
	if (*n)
		qsort(*names, *n, sizeof(**names), cmp_name);
	return ret;
}

/* One name of a host directory: stat, open what must be read, emit.  A
 * directory comes back open in *sub (the caller walks it), else -1. */
static int host_entry(struct writer *w, int dfd, const char *name, int *sub)
{
	struct centry e = { 0 };
	char target[PATH_MAX + 1];
	struct stat st;
	ssize_t len;
	int fd = -1, ret;

	*sub = -1;
	if (fstatat(dfd, name, &e.st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return lf_err_set(w->err, -errno,
				  "cannot stat '%s' in the "
				  "upper dir: %s",
				  shown(w), strerror(errno));
	}
	if (S_ISSOCK(e.st.st_mode))
		return 0; /* a tar cannot hold a socket; docker skips them */
	if (S_ISREG(e.st.st_mode) || S_ISDIR(e.st.st_mode)) {
		/* never follow: a symlink swapped in meanwhile fails here */
		fd = openat(dfd, name,
			    O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK |
				    O_CLOEXEC |
				    (S_ISDIR(e.st.st_mode) ? O_DIRECTORY : 0));
		if (fd < 0 || fstat(fd, &st) < 0) {
			ret = lf_err_set(w->err, -errno,
					 "cannot open '%s' in "
					 "the upper dir: %s",
					 shown(w), strerror(errno));
			goto out;
		}
		if ((st.st_mode & S_IFMT) != (e.st.st_mode & S_IFMT) ||
		    st.st_ino != e.st.st_ino) {
			ret = lf_err_set(w->err, -EAGAIN,
					 "'%s' changed while "
					 "being committed",
					 shown(w));
			goto out;
		}
		e.st = st;
		if ((ret = fd_xattrs(w, fd, &e))) {
			lf_err_set(w->err, ret,
				   "cannot read the xattrs of "
				   "'%s': %s",
				   shown(w), strerror(-ret));
			goto out;
		}
		if (host_owner(w, fd, &e.st))
			goto out; /* a socket: a tar cannot hold one */
	} else if (S_ISLNK(e.st.st_mode)) {
		/* Linux symlinks hold at most PATH_MAX - 1 bytes */
		len = readlinkat(dfd, name, target, sizeof(target) - 1);
		if (len < 0) {
			ret = lf_err_set(w->err, -errno,
					 "cannot read symlink "
					 "'%s': %s",
					 shown(w), strerror(errno));
			goto out;
		}
		target[len] = '\0';
		e.symlink = target;
		host_owner(w, -1, &e.st);
	} else {
		host_owner(w, -1, &e.st);
	}
	e.link_candidate = e.st.st_nlink > 1;
	if ((ret = emit(w, &e, fd_read, &fd)))
		goto out;
	if (S_ISDIR(e.st.st_mode)) {
		*sub = fd;
		fd = -1;
	}
out:
	centry_release(&e);
	if (fd >= 0)
		close(fd);
	return ret;
}

/*
 * Open directory fds are few whatever the depth: only the deepest
 * HOST_FDS frames keep theirs.  A frame whose fd was closed gets it back
 * when its child is popped, by opening ".." from the child, and checking
 * it is the same directory (dev, ino) as before, as fts(3) does when it
 * climbs; a directory moved meanwhile is an error, never a walk elsewhere.
 */
#define HOST_FDS 64

/* Push the open directory fd (taken in all cases) and list its names. */
static int host_push(struct writer *w, struct stack *s, int fd)
{
	struct frame *f = frame_push(s, w->path.len);
	struct stat st;
	int ret;

	if (!f) {
		close(fd);
		return lf_err_set(w->err, -ENOMEM, "out of memory");
	}
	f->fd = fd;
	if (fstat(fd, &st) < 0)
		return lf_err_set(w->err, -errno,
				  "cannot stat '%s' in the "
				  "upper dir: %s",
				  shown(w), strerror(errno));
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	if ((ret = dir_names(fd, &f->names, &f->n)))
		return lf_err_set(w->err, ret,
				  "cannot list '%s' in the upper "
				  "dir: %s",
				  shown(w), strerror(-ret));
	while (s->n - s->lo > HOST_FDS) {
		close(s->f[s->lo].fd);
		s->f[s->lo++].fd = -1;
	}
	return 0;
}

/* Pop the top frame; give its parent its fd back if it was closed and the
 * walk goes on (reopen). */
static int host_pop(struct writer *w, struct stack *s, bool reopen)
{
	struct frame *f = &s->f[s->n - 1], *p = s->n > 1 ? f - 1 : NULL;
	struct stat st;
	int ret = 0;

	lf_buf_setlen(&w->path, f->plen);
	if (reopen && p && p->fd < 0 && f->fd >= 0) {
		p->fd = openat(f->fd, "..",
			       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (p->fd < 0 || fstat(p->fd, &st) < 0)
			ret = lf_err_set(w->err, -errno,
					 "cannot reopen '%s' "
					 "in the upper dir: %s",
					 shown(w), strerror(errno));
		else if (st.st_dev != p->dev || st.st_ino != p->ino)
			ret = lf_err_set(w->err, -EAGAIN,
					 "'%s' moved while "
					 "being committed",
					 shown(w));
		s->lo = s->n - 2;
	}
	if (f->fd >= 0)
		close(f->fd);
	free_names(f->names, f->n);
	s->n--;
	if (s->lo > s->n)
		s->lo = s->n;
	return ret;
}

/* The upper dir as it is: dfd (taken) is its root. */
static int walk_host(struct writer *w, int dfd)
{
	struct stack s = { 0 };
	int ret = host_push(w, &s, dfd), sub;

	while (!ret && s.n) {
		struct frame *f = &s.f[s.n - 1];
		const char *name;

		if (f->i == f->n) {
			ret = host_pop(w, &s, true);
			continue;
		}
		name = f->names[f->i++];
		lf_buf_setlen(&w->path, f->plen);
		if ((ret = path_push(w, name, strlen(name))) ||
		    (ret = host_entry(w, f->fd, name, &sub)))
			break;
		if (sub >= 0)
			ret = host_push(w, &s, sub);
	}
	while (s.n)
		host_pop(w, &s, false);
	free(s.f);
	return ret;
}

/* --- the merged view (COMMIT_SRC_UPPER, COMMIT_SRC_TREE) ----------------- */

struct view_file {
	struct lf_mview_file f;
	struct lf_err *err;
};

static ssize_t view_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct view_file *vf = ctx;

	return lf_mview_read(&vf->f, buf, len, off, vf->err);
}

static int view_xattr(void *ctx, const char *name, const void *value,
		      size_t len)
{
	return xattr_kept(name) ? xattr_add(ctx, name, value, len) : 0;
}

/* One object of the view (w->path is its path): emit it. */
static int view_entry(void *ctx, const struct lf_buf *path,
		      const struct lf_mobj *o)
{
	struct writer *w = ctx;
	struct view_file vf = { { 0 }, w->err };
	struct centry e = { .st = o->st };
	char *target = NULL;
	int ret = 0;

	(void)path; /* w->path */
	if (S_ISSOCK(e.st.st_mode))
		return LF_MVIEW_PRUNE;
	e.link_candidate = e.st.st_nlink > 1;
	if (S_ISLNK(e.st.st_mode))
		ret = lf_mview_readlink(w->view, o, &target, &e.symlink);
	if (!ret)
		ret = lf_mview_xattrs(w->view, o, view_xattr, &e);
	if (!ret && S_ISREG(e.st.st_mode))
		ret = lf_mview_open(w->view, o, &vf.f);
	if (ret) {
		lf_err_set(w->err, ret, "cannot read '%s': %s", shown(w),
			   strerror(-ret));
		goto out;
	}
	ret = emit(w, &e, view_read, &vf);
	lf_mview_close(&vf.f);
out:
	centry_release(&e);
	free(target);
	return ret;
}

static int walk_view(struct writer *w, const struct lf_mview *v)
{
	int ret;

	w->view = v;
	ret = lf_mview_walk(v, LF_MVIEW_ROOT, &w->path, view_entry, w);
	if (ret && !w->err->code)
		lf_err_set(w->err, ret, "cannot read '%s': %s", shown(w),
			   strerror(-ret));
	w->view = NULL;
	return ret;
}

/* --- entry point --------------------------------------------------------- */

static int walk(struct writer *w)
{
	const struct commit_src *src = w->src;
	struct lf_mview v = { src->stack, src->tree, NULL };
	int fd, ret;

	switch (src->kind) {
	case COMMIT_SRC_DIR:
		fd = open(src->upper_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return lf_err_set(w->err, -errno,
					  "cannot open upper "
					  "directory '%s': %s",
					  src->upper_dir, strerror(errno));
		owner_map(w, fd);
		return walk_host(w, fd);
	case COMMIT_SRC_UPPER:
		/* read-only use: lookups and reads never copy anything up */
		ret = lf_upper_new(src->upper_dir, src->stack, &v.upper,
				   w->err);
		if (ret)
			return ret;
		lf_upper_set_owner(v.upper, src->owner_uid, src->owner_gid);
		ret = walk_view(w, &v);
		lf_upper_free(v.upper);
		return ret;
	case COMMIT_SRC_TREE:
		return walk_view(w, &v);
	}
	return lf_err_set(w->err, -EINVAL, "unknown layer source");
}

int lf_commit_write_layer(const struct commit_src *src, int fd,
			  const char *fdname, struct commit_layer *out,
			  struct lf_err *err)
{
	struct writer w = {
		.src = src, .fd = fd, .fdname = fdname, .err = err
	};
	size_t i;
	int ret;

	lf_buf_init(&w.path);
	if (lf_sha256_new(&w.h_tar) || lf_sha256_new(&w.h_gz) ||
	    !(w.buf = malloc(DATA_CHUNK))) {
		ret = lf_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	if ((ret = writers_open(&w)) || (ret = walk(&w)) ||
	    (ret = writers_close(&w)))
		goto out;
	lf_sha256_final(w.h_gz, out->digest);
	lf_sha256_final(w.h_tar, out->diff_id);
	out->size = w.gz_size;
	out->newest_mtime = w.newest;
	out->entries = w.entries;
out:
	if (w.tar)
		archive_write_free(w.tar);
	if (w.gz)
		archive_write_free(w.gz);
	archive_entry_free(w.ae);
	lf_sha256_free(w.h_tar);
	lf_sha256_free(w.h_gz);
	for (i = 0; i < w.alinks; i++)
		free(w.links[i].path);
	free(w.links);
	free(w.buf);
	lf_buf_release(&w.path);
	return ret;
}

/* --- docker-archive: a directory as a plain tar -------------------------- */

int lf_commit_write_dir_tar(int dirfd, const char *const *names, size_t n,
			    int64_t mtime, int fd, const char *fdname,
			    struct lf_err *err)
{
	struct archive *a = archive_write_new();
	struct archive_entry *ae = archive_entry_new();
	char *buf = malloc(DATA_CHUNK);
	size_t i;
	int ret = 0;

	if (!a || !ae || !buf) {
		ret = lf_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (archive_write_set_format_pax_restricted(a) ||
	    archive_write_set_bytes_in_last_block(a, 1) ||
	    archive_write_open_fd(a, fd)) {
		ret = lf_err_set(err, -EIO, "cannot write '%s': %s", fdname,
				 archive_error_string(a));
		goto out;
	}
	for (i = 0; i < n && !ret; i++) {
		size_t len = strlen(names[i]);
		bool isdir = len && names[i][len - 1] == '/';
		struct stat st;
		int f = -1;

		if (!isdir) {
			f = openat(dirfd, names[i],
				   O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			if (f < 0 || fstat(f, &st) < 0) {
				ret = lf_err_set(err, -errno,
						 "cannot read "
						 "'%s': %s",
						 names[i], strerror(errno));
				if (f >= 0)
					close(f);
				break;
			}
		}
		archive_entry_clear(ae);
		archive_entry_set_pathname(ae, names[i]);
		archive_entry_set_filetype(ae, isdir ? AE_IFDIR : AE_IFREG);
		archive_entry_set_perm(ae, isdir ? 0755 : 0644);
		archive_entry_set_mtime(ae, mtime, 0);
		if (!isdir)
			archive_entry_set_size(ae, st.st_size);
		if (archive_write_header(a, ae) < ARCHIVE_WARN) {
			ret = lf_err_set(err, -EIO, "cannot write '%s': %s",
					 fdname, archive_error_string(a));
		} else if (!isdir) {
			uint64_t off = 0;

			while (!ret && off < (uint64_t)st.st_size) {
				ssize_t r = fd_read(&f, buf, DATA_CHUNK, off);

				if (r <= 0)
					ret = lf_err_set(err, r ? (int)r : -EIO,
							 "cannot read '%s'",
							 names[i]);
				else if (archive_write_data(a, buf,
							    (size_t)r) != r)
					ret = lf_err_set(err, -EIO,
							 "cannot "
							 "write '%s': %s",
							 fdname,
							 archive_error_string(
								 a));
				else
					off += (uint64_t)r;
			}
		}
		if (f >= 0)
			close(f);
	}
	if (!ret && archive_write_close(a))
		ret = lf_err_set(err, -EIO, "cannot write '%s': %s", fdname,
				 archive_error_string(a));
out:
	if (a)
		archive_write_free(a);
	archive_entry_free(ae);
	free(buf);
	return ret;
}

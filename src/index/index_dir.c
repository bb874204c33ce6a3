// SPDX-License-Identifier: MIT
/* index_dir.c - index a plain host directory as a layer (no cache). */
#include "index_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "layerfs/whiteout.h"

#define MAX_XATTRS 64

/* Hardlinked files seen so far: (dev, ino) -> first path. */
struct seen {
	dev_t dev;
	ino_t ino;
	char *path;
};

struct walker {
	struct index_builder b;
	const char *label;
	struct seen *seen;
	size_t nseen, aseen;
	uint64_t data_off; /* files laid end to end, for the index */
	bool rootfs;	   /* the root is opaque */
	struct lf_buf xnames, xvals;
};

static bool is_overlay_xattr(const char *name)
{
	return !strncmp(name, "trusted.overlay.", 16) ||
	       !strncmp(name, "user.overlay.", 13);
}

/* Read the xattrs of an open file or dir into `x` (values in w->xvals). */
static int read_xattrs(struct walker *w, int fd, struct lf_tar_xattr *x,
		       size_t *nx, bool *opaque)
{
	ssize_t n, len;
	size_t total = 0;
	const char *p;

	*nx = 0;
	lf_buf_reset(&w->xnames);
	lf_buf_reset(&w->xvals);
	n = flistxattr(fd, NULL, 0);
	if (n <= 0)
		return 0; /* none, or not supported: both mean none */
	if (lf_buf_grow(&w->xnames, (size_t)n))
		return -ENOMEM;
	n = flistxattr(fd, w->xnames.data, (size_t)n);
	if (n < 0)
		return 0;
	/* values go in one buffer: size it first, so that the pointers into
	 * it stay valid while it is filled */
	for (p = w->xnames.data; p < w->xnames.data + n; p += strlen(p) + 1) {
		len = fgetxattr(fd, p, NULL, 0);
		if (len > 0)
			total += (size_t)len;
	}
	if (lf_buf_grow(&w->xvals, total))
		return -ENOMEM;
	for (p = w->xnames.data; p < w->xnames.data + n; p += strlen(p) + 1) {
		char *at = w->xvals.data + w->xvals.len;
		size_t room = total - w->xvals.len;

		len = fgetxattr(fd, p, at, room);
		if (len < 0)
			continue;
		if ((!strcmp(p, LF_XATTR_OPAQUE_TRUSTED) ||
		     !strcmp(p, LF_XATTR_OPAQUE_USER)) &&
		    len == 1 && at[0] == 'y')
			*opaque = true;
		if (is_overlay_xattr(p) || *nx == MAX_XATTRS)
			continue;
		x[*nx].name = p;
		x[*nx].value = at;
		x[(*nx)++].len = (size_t)len;
		w->xvals.len += (size_t)len;
	}
	return 0;
}

static int add(struct walker *w, const char *path, struct lf_tar_entry *e,
	       struct lf_err *err)
{
	e->path = path[0] ? path : ".";
	return lf_index_add_entry(&w->b, e, err);
}

/* `.wh.NAME` beside NAME: the OCI form of an overlayfs whiteout. */
static int add_whiteout(struct walker *w, const char *dir, const char *name,
			struct lf_err *err)
{
	struct lf_tar_entry e = { .type = LF_TAR_REG, .mode = 0644 };
	char path[PATH_MAX + 8];

	snprintf(path, sizeof(path), "%s%s" LF_WH_PREFIX "%s", dir,
		 dir[0] ? "/" : "", name);
	return add(w, path, &e, err);
}

static const char *first_link(struct walker *w, const struct stat *st,
			      const char *path)
{
	size_t i;

	for (i = 0; i < w->nseen; i++)
		if (w->seen[i].dev == st->st_dev &&
		    w->seen[i].ino == st->st_ino)
			return w->seen[i].path;
	if (w->nseen == w->aseen) {
		size_t na = w->aseen ? w->aseen * 2 : 64;
		struct seen *p = realloc(w->seen, na * sizeof(*p));

		if (!p)
			return NULL;
		w->seen = p;
		w->aseen = na;
	}
	w->seen[w->nseen++] = (struct seen){ st->st_dev, st->st_ino,
					     strdup(path) };
	return NULL;
}

static int visit(struct walker *w, int dfd, const char *dir, const char *name,
		 struct lf_err *err);

static int walk_dir(struct walker *w, int fd, const char *path,
		    struct lf_err *err)
{
	int dup = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	DIR *dp;
	int ret = 0;

	if (dup < 0 || !(dp = fdopendir(dup))) {
		if (dup >= 0)
			close(dup);
		return lf_err_set(err, -errno, "%s: cannot list '%s': %s",
				  w->label, path[0] ? path : ".",
				  strerror(errno));
	}
	while (!ret && (de = readdir(dp)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			ret = visit(w, fd, path, de->d_name, err);
	closedir(dp);
	return ret;
}

/*
 * Open what fstatat() saw, never following a symlink and never blocking (a
 * FIFO or device swapped in meanwhile is refused, not opened for long).
 */
static int open_seen(struct walker *w, int dfd, const char *name,
		     const char *path, const struct stat *st,
		     struct lf_err *err)
{
	struct stat st2;
	int fd = openat(dfd, name[0] ? name : ".",
			O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC |
				(S_ISDIR(st->st_mode) ? O_DIRECTORY : 0));

	if (fd < 0)
		return lf_err_set(err, -errno, "%s: cannot open '%s': %s",
				  w->label, path, strerror(errno));
	if (fstat(fd, &st2) < 0 || st2.st_ino != st->st_ino ||
	    st2.st_dev != st->st_dev) {
		close(fd);
		return lf_err_set(err, -EIO,
				  "%s: '%s' changed while it was "
				  "read",
				  w->label, path);
	}
	return fd;
}

/* Per-entry buffers, on the heap: a deep directory must not exhaust the
 * stack (the walk recurses once per level, at most PATH_MAX / 2 levels). */
struct frame {
	struct lf_tar_xattr x[MAX_XATTRS];
	char path[PATH_MAX], target[PATH_MAX];
};

static int visit_in(struct walker *w, struct frame *f, int dfd, const char *dir,
		    const char *name, struct lf_err *err);

static int visit(struct walker *w, int dfd, const char *dir, const char *name,
		 struct lf_err *err)
{
	struct frame *f = malloc(sizeof(*f));
	int ret;

	if (!f)
		return lf_err_set(err, -ENOMEM, "out of memory");
	ret = visit_in(w, f, dfd, dir, name, err);
	free(f);
	return ret;
}

static int visit_in(struct walker *w, struct frame *f, int dfd, const char *dir,
		    const char *name, struct lf_err *err)
{
	struct lf_tar_xattr *x = f->x;
	struct lf_tar_entry e = { 0 };
	char *path = f->path, *target = f->target;
	const char *first;
	bool opaque = false;
	struct stat st;
	int fd = -1, ret = 0;
	ssize_t n;

	if (snprintf(path, PATH_MAX, "%s%s%s", dir,
		     dir[0] && name[0] ? "/" : "", name) >= PATH_MAX)
		return lf_err_set(err, -ENAMETOOLONG,
				  "%s: path too long: "
				  "%.200s...",
				  w->label, path);
	if (fstatat(dfd, name[0] ? name : ".", &st, AT_SYMLINK_NOFOLLOW) < 0)
		return lf_err_set(err, -errno, "%s: '%s': %s", w->label, path,
				  strerror(errno));
	/* overlayfs whiteout: a 0/0 character device */
	if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0))
		return add_whiteout(w, dir, name, err);
	e.mode = st.st_mode & 07777;
	e.uid = st.st_uid;
	e.gid = st.st_gid;
	e.mtime = st.st_mtim.tv_sec;
	e.mtime_nsec = (uint32_t)st.st_mtim.tv_nsec;
	if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)) {
		if ((fd = open_seen(w, dfd, name, path, &st, err)) < 0)
			return fd;
		if ((ret = read_xattrs(w, fd, x, &e.nxattrs, &opaque)))
			goto out;
		e.xattrs = x;
	}
	if (S_ISDIR(st.st_mode)) {
		e.type = LF_TAR_DIR;
		ret = add(w, path, &e, err);
		/* overlayfs opaque directory: the OCI marker inside it */
		if (!ret && (opaque || (w->rootfs && !path[0])))
			ret = add_whiteout(w, path, LF_WH_OPQ_NAME, err);
		if (!ret)
			ret = walk_dir(w, fd, path, err);
	} else if (S_ISREG(st.st_mode)) {
		first = st.st_nlink > 1 ? first_link(w, &st, path) : NULL;
		e.type = first ? LF_TAR_HARDLINK : LF_TAR_REG;
		e.link = first;
		e.size = first ? 0 : (uint64_t)st.st_size;
		e.data_offset = w->data_off;
		w->data_off += e.size;
		ret = add(w, path, &e, err);
	} else if (S_ISLNK(st.st_mode)) {
		n = readlinkat(dfd, name, target, PATH_MAX - 1);
		if (n < 0)
			return lf_err_set(err, -errno, "%s: '%s': %s", w->label,
					  path, strerror(errno));
		target[n] = '\0';
		e.type = LF_TAR_SYMLINK;
		e.link = target;
		ret = add(w, path, &e, err);
	} else {
		e.type = S_ISCHR(st.st_mode)	? LF_TAR_CHR
			 : S_ISBLK(st.st_mode)	? LF_TAR_BLK
			 : S_ISFIFO(st.st_mode) ? LF_TAR_FIFO
						: LF_TAR_SOCK;
		e.rdev_major = major(st.st_rdev);
		e.rdev_minor = minor(st.st_rdev);
		ret = add(w, path, &e, err);
	}
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

static int open_dir(const char *dir, const char *label, bool rootfs,
		    struct lf_index **out, struct lf_err *err)
{
	struct walker w = { .label = label ? label : dir, .rootfs = rootfs };
	struct lf_index *idx;
	struct lf_cache_header *h;
	const char *why = NULL;
	size_t i;
	int ret;

	idx = lf_index_alloc();
	if (!idx)
		return lf_err_set(err, -ENOMEM, "out of memory");
	idx->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (idx->dir_fd < 0) {
		ret = lf_err_set(err, -errno,
				 "%s: cannot open directory '%s': "
				 "%s",
				 w.label, dir, strerror(errno));
		goto out;
	}
	lf_index_builder_init(&w.b);
	lf_buf_init(&w.xnames);
	lf_buf_init(&w.xvals);
	w.b.comp = LF_COMP_NONE;
	/* the directory itself is the layer's root entry */
	ret = visit(&w, idx->dir_fd, "", "", err);
	if (!ret) {
		w.b.out_total = w.data_off;
		ret = lf_index_assemble(&w.b, "directory", idx);
		if (ret)
			lf_err_set(err, ret, "out of memory");
	}
	if (!ret) {
		h = idx->map;
		snprintf(h->blob_digest, sizeof(h->blob_digest), "dir:%s", dir);
		lf_cache_seal(idx->map, idx->maplen);
		if ((ret = lf_index_attach(idx, &why)))
			lf_err_set(err, ret, "%s: %s", w.label, why);
	}
	lf_index_builder_release(&w.b);
	lf_buf_release(&w.xnames);
	lf_buf_release(&w.xvals);
	for (i = 0; i < w.nseen; i++)
		free(w.seen[i].path);
	free(w.seen);
out:
	if (ret) {
		lf_index_close(idx);
		return ret;
	}
	*out = idx;
	return 0;
}

int lf_index_open_dir(const char *dir, const char *label, struct lf_index **out,
		      struct lf_err *err)
{
	return open_dir(dir, label, false, out, err);
}

int lf_index_open_rootfs(const char *dir, const char *label,
			 struct lf_index **out, struct lf_err *err)
{
	return open_dir(dir, label, true, out, err);
}

// SPDX-License-Identifier: MIT
/* image_layout.c - the image file store: OCI layout directory or outer tar. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "image_internal.h"
#include "layerfs/path.h"

int lf_image_store_open_dir(struct lf_image_store *st, const char *dir,
			    struct lf_err *err)
{
	int ret;

	memset(st, 0, sizeof(*st));
	lf_buf_init(&st->names);
	st->dirfd = -1;
	st->dir = strdup(dir);
	if (!st->dir)
		return lf_err_set(err, -ENOMEM, "out of memory");
	/* the layout directory itself is the user's choice: follow it */
	st->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (st->dirfd < 0) {
		ret = -errno;
		return lf_err_set(err, ret, "cannot open image '%s': %s", dir,
				  strerror(-ret));
	}
	return 0;
}

void lf_image_store_release(struct lf_image_store *st)
{
	if (st->dir && st->dirfd >= 0)
		close(st->dirfd);
	free(st->dir);
	lf_vfile_close(st->archive);
	free(st->members);
	lf_buf_release(&st->names);
	lf_image_remote_release(st);
	memset(st, 0, sizeof(*st));
	lf_buf_init(&st->names);
}

/* Symlinks followed in one name, as the kernel's own limit (MAXSYMLINKS). */
#define WALK_LINKS 40
/* A file is opened with these: never a controlling tty, never a FIFO wait. */
#define OPEN_FLAGS (O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)

/* Open each component of a resolved path with O_NOFOLLOW. */
static int open_nofollow(int dirfd, const char *path)
{
	const char *pos = path, *comp;
	char name[256];
	size_t clen;
	int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0), next, saved;

	if (fd < 0)
		return -errno;
	while (lf_path_next(&pos, &comp, &clen)) {
		bool last = !*pos || !pos[strspn(pos, "/")];

		if (clen >= sizeof(name)) {
			close(fd);
			return -ENAMETOOLONG;
		}
		memcpy(name, comp, clen);
		name[clen] = '\0';
		next = openat(fd, name,
			      last ? OPEN_FLAGS | O_NOFOLLOW
				   : O_PATH | O_DIRECTORY | O_NOFOLLOW |
					      O_CLOEXEC);
		saved = errno;
		close(fd);
		if (next < 0)
			return -saved;
		fd = next;
	}
	return fd;
}

/*
 * Without openat2: resolve `rel` component by component with lstat and
 * readlink, keeping the resolved path as components under the root; a
 * ".." above the root or an absolute link target is -EXDEV, as
 * RESOLVE_BENEATH says.  Then open the result one O_NOFOLLOW step at a
 * time, so a directory swapped for a symlink meanwhile fails (-ELOOP or
 * -ENOTDIR) instead of leading out.
 */
static int walk_beneath(int dirfd, const char *rel)
{
	struct lf_buf todo, done, next;
	char target[4096];
	int links = 0, ret = 0;
	size_t pos = 0;

	lf_buf_init(&todo);
	lf_buf_init(&done);
	lf_buf_init(&next);
	if (lf_buf_adds(&todo, rel))
		ret = -ENOMEM;
	while (!ret && pos < todo.len) {
		const char *c = todo.data + pos;
		size_t clen = strcspn(c, "/"), keep = done.len;
		struct stat sb;
		ssize_t n;

		pos += clen + (c[clen] == '/');
		if (!clen || (clen == 1 && c[0] == '.'))
			continue;
		if (clen == 2 && c[0] == '.' && c[1] == '.') {
			if (!done.len)
				ret = -EXDEV;
			else
				lf_buf_setlen(&done, lf_path_dirlen(done.data));
			continue;
		}
		if ((done.len && lf_buf_addch(&done, '/')) ||
		    lf_buf_add(&done, c, clen)) {
			ret = -ENOMEM;
		} else if (fstatat(dirfd, done.data, &sb, AT_SYMLINK_NOFOLLOW) <
			   0) {
			ret = -errno;
		} else if (S_ISLNK(sb.st_mode)) {
			n = readlinkat(dirfd, done.data, target,
				       sizeof(target) - 1);
			if (++links > WALK_LINKS)
				ret = -ELOOP;
			else if (n <= 0)
				ret = n < 0 ? -errno : -ENOENT;
			else if (target[0] == '/')
				ret = -EXDEV;
			if (ret)
				break;
			/* the link's target replaces its component */
			lf_buf_setlen(&done, keep);
			lf_buf_reset(&next);
			if (lf_buf_add(&next, target, (size_t)n) ||
			    lf_buf_addch(&next, '/') ||
			    lf_buf_adds(&next, todo.data + pos)) {
				ret = -ENOMEM;
				break;
			}
			lf_buf_reset(&todo);
			if (lf_buf_add(&todo, next.data, next.len))
				ret = -ENOMEM;
			pos = 0;
		}
	}
	if (!ret)
		ret = open_nofollow(dirfd, done.data);
	lf_buf_release(&todo);
	lf_buf_release(&done);
	lf_buf_release(&next);
	return ret;
}

int lf_image_open_beneath(int dirfd, const char *rel, bool walk)
{
#ifdef SYS_openat2
	struct open_how how = {
		.flags = OPEN_FLAGS,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	long fd;

	if (walk)
		return walk_beneath(dirfd, rel);
	fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
	if (fd >= 0)
		return (int)fd;
	/* ENOSYS: kernel < 5.6; EPERM: a seccomp filter that predates it */
	if (errno != ENOSYS && errno != EPERM)
		return -errno;
#else
	(void)walk;
#endif
	return walk_beneath(dirfd, rel);
}

static int open_beneath(int dirfd, const char *rel)
{
	return lf_image_open_beneath(dirfd, rel, false);
}

/*
 * Names come from digests (validated) or from manifest.json (untrusted):
 * either way a name that is absolute or has a ".." component is refused,
 * so no name can point outside the layout or the archive.
 */
static int safe_name(const char *name, struct lf_buf *out)
{
	if (name[0] == '/')
		return -EINVAL;
	return lf_path_normalize(name, strlen(name), out);
}

static int dir_open(const struct lf_image_store *st, const char *name,
		    struct lf_buf *rel)
{
	int ret = safe_name(name, rel);

	if (ret)
		return ret;
	return open_beneath(st->dirfd, rel->data);
}

bool lf_image_store_has(const struct lf_image_store *st, const char *name)
{
	struct lf_buf rel;
	struct stat sb;
	uint64_t off, size;
	bool ok;
	int fd;

	if (st->remote)
		return lf_image_remote_has(st, name);
	if (st->archive)
		return lf_image_archive_find(st, name, &off, &size) == 0;
	lf_buf_init(&rel);
	fd = dir_open(st, name, &rel);
	ok = fd >= 0 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode);
	if (fd >= 0)
		close(fd);
	lf_buf_release(&rel);
	return ok;
}

static int archive_blob(const struct lf_image_store *st, const char *name,
			struct lf_vfile **out, struct lf_err *err)
{
	uint64_t off, size;
	char label[1024];
	int ret = lf_image_archive_find(st, name, &off, &size);

	if (ret == -ENOENT)
		return lf_err_set(err, ret, "'%s': %s is missing", st->label,
				  name);
	if (ret == -ELOOP)
		return lf_err_set(err, ret, "'%s': %s: too many links",
				  st->label, name);
	if (ret)
		return lf_err_set(err, ret,
				  "'%s': %s: an invalid member name, or a link "
				  "leading outside the archive",
				  st->label, name);
	snprintf(label, sizeof(label), "%s:%s", st->label, name);
	/* read in place: a byte range of the archive, nothing extracted */
	return lf_vfile_sub(st->archive, off, size, label, out, err);
}

static int dir_open_err(const struct lf_image_store *st, const char *name,
			int ret, struct lf_err *err)
{
	switch (ret) {
	case -ENOMEM:
		return lf_err_set(err, ret, "out of memory");
	case -EINVAL:
		return lf_err_set(err, ret, "'%s': %s: invalid file name",
				  st->label, name);
	case -ENOENT:
		return lf_err_set(err, ret, "'%s': %s is missing", st->label,
				  name);
	case -EXDEV:
	case -ELOOP:
		/* ELOOP: a link loop, or a /proc magic link */
		return lf_err_set(err, ret,
				  "'%s': %s is a symbolic link leading outside "
				  "the image",
				  st->label, name);
	default:
		return lf_err_set(err, ret, "'%s': cannot open %s: %s",
				  st->label, name, strerror(-ret));
	}
}

/*
 * A file of the layout: opened beneath the layout directory (a symlink out
 * of it, to /etc/passwd or /dev/zero, is refused), without blocking, and
 * only if it is a regular file.
 */
int lf_image_store_blob(const struct lf_image_store *st, const char *name,
			struct lf_vfile **out, struct lf_err *err)
{
	struct lf_buf rel, path;
	int fd, ret;

	if (st->remote)
		return lf_image_remote_blob(st, name, out, err);
	if (st->archive)
		return archive_blob(st, name, out, err);
	lf_buf_init(&rel);
	lf_buf_init(&path);
	fd = dir_open(st, name, &rel);
	if (fd < 0) {
		ret = dir_open_err(st, name, fd, err);
		goto out;
	}
	if (lf_buf_addf(&path, "%s/%s", st->dir, rel.data)) {
		close(fd);
		ret = lf_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	ret = lf_vfile_open_fd(fd, path.data, NULL, out, err);
	if (ret == -EINVAL)
		ret = lf_err_set(err, ret, "'%s': %s is not a regular file",
				 st->label, name);
out:
	lf_buf_release(&rel);
	lf_buf_release(&path);
	return ret;
}

int lf_image_store_read(const struct lf_image_store *st, const char *name,
			char **data, size_t *len, struct lf_err *err)
{
	return lf_image_store_read_max(st, name, LF_IMAGE_JSON_MAX, data, len,
				       err);
}

int lf_image_store_read_max(const struct lf_image_store *st, const char *name,
			    size_t max, char **data, size_t *len,
			    struct lf_err *err)
{
	struct lf_vfile *vf;
	uint64_t size;
	ssize_t n;
	char *p;
	int ret;

	ret = lf_image_store_blob(st, name, &vf, err);
	if (ret)
		return ret;
	size = lf_vfile_size(vf);
	if (size > max) {
		ret = lf_err_set(err, -EFBIG,
				 "'%s': %s is too big (%llu bytes, the limit "
				 "is %zu MiB)",
				 st->label, name, (unsigned long long)size,
				 max >> 20);
		goto out;
	}
	p = malloc((size_t)size + 1);
	if (!p) {
		ret = lf_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	n = lf_vfile_pread(vf, p, (size_t)size, 0);
	if (n != (ssize_t)size) {
		free(p);
		ret = lf_err_set(err, n < 0 ? (int)n : -EIO,
				 "'%s': cannot read %s: %s", st->label, name,
				 strerror(n < 0 ? (int)-n : EIO));
		goto out;
	}
	p[size] = '\0';
	*data = p;
	*len = (size_t)size;
out:
	lf_vfile_close(vf);
	return ret;
}

// SPDX-License-Identifier: MIT
/* vfile.c - random-access byte sources over file ranges or memory. */
#include "layerfs/vfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct lf_vfile {
	int fd;				/* owned, -1 for memory */
	const unsigned char *mem;	/* borrowed, NULL for files */
	uint64_t base;			/* range start in the backing file */
	uint64_t size;			/* range length */
	char *name;			/* owned */
	char *path;			/* owned, NULL for memory */
	const struct lf_vfile_ops *ops; /* a backend, or NULL */
	void *ops_ctx;			/* one reference, owned */
};

static int vfile_alloc(const char *name, const char *path,
		       struct lf_vfile **out)
{
	struct lf_vfile *vf = calloc(1, sizeof(*vf));

	if (!vf)
		return -ENOMEM;
	vf->fd = -1;
	vf->name = strdup(name ? name : (path ? path : "<memory>"));
	vf->path = path ? strdup(path) : NULL;
	if (!vf->name || (path && !vf->path)) {
		lf_vfile_close(vf);
		return -ENOMEM;
	}
	*out = vf;
	return 0;
}

int lf_vfile_open(const char *path, const char *name, struct lf_vfile **out,
		  struct lf_err *err)
{
	/* O_NONBLOCK: a FIFO put where a file should be must not hang us */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0) {
		int ret = -errno;

		return lf_err_set(err, ret, "cannot open '%s': %s", path,
				  strerror(-ret));
	}
	return lf_vfile_open_fd(fd, path, name, out, err);
}

int lf_vfile_open_fd(int fd, const char *path, const char *name,
		     struct lf_vfile **out, struct lf_err *err)
{
	struct lf_vfile *vf;
	struct stat st;
	int ret, fl;

	ret = vfile_alloc(name, path, &vf);
	if (ret) {
		close(fd);
		return lf_err_set(err, ret, "out of memory");
	}
	vf->fd = fd;
	if (fstat(vf->fd, &st) < 0) {
		ret = -errno;
		lf_vfile_close(vf);
		return lf_err_set(err, ret, "cannot stat '%s': %s", path,
				  strerror(-ret));
	}
	if (!S_ISREG(st.st_mode)) {
		lf_vfile_close(vf);
		return lf_err_set(err, -EINVAL, "'%s' is not a regular file",
				  path);
	}
	/* regular files ignore O_NONBLOCK, but leave no surprise behind */
	fl = fcntl(vf->fd, F_GETFL);
	if (fl >= 0 && (fl & O_NONBLOCK))
		(void)fcntl(vf->fd, F_SETFL, fl & ~O_NONBLOCK);
	vf->size = (uint64_t)st.st_size;
	*out = vf;
	return 0;
}

int lf_vfile_sub(const struct lf_vfile *parent, uint64_t off, uint64_t size,
		 const char *name, struct lf_vfile **out, struct lf_err *err)
{
	struct lf_vfile *vf;
	int ret;

	if (lf_range_outside(off, size, parent->size))
		return lf_err_set(err, -EINVAL,
				  "'%s': range %llu+%llu is outside the file",
				  parent->name, (unsigned long long)off,
				  (unsigned long long)size);
	ret = vfile_alloc(name ? name : parent->name, parent->path, &vf);
	if (ret)
		return lf_err_set(err, ret, "out of memory");
	if (parent->fd >= 0) {
		vf->fd = fcntl(parent->fd, F_DUPFD_CLOEXEC, 0);
		if (vf->fd < 0) {
			ret = -errno;
			lf_vfile_close(vf);
			return lf_err_set(err, ret, "'%s': dup: %s",
					  parent->name, strerror(-ret));
		}
	} else if (parent->ops) {
		parent->ops->ref(parent->ops_ctx);
		vf->ops = parent->ops;
		vf->ops_ctx = parent->ops_ctx;
	} else {
		vf->mem = parent->mem;
	}
	vf->base = parent->base + off;
	vf->size = size;
	*out = vf;
	return 0;
}

int lf_vfile_from_mem(const void *mem, size_t size, const char *name,
		      struct lf_vfile **out)
{
	struct lf_vfile *vf;
	int ret = vfile_alloc(name, NULL, &vf);

	if (ret)
		return ret;
	vf->mem = mem;
	vf->size = size;
	*out = vf;
	return 0;
}

int lf_vfile_from_ops(const struct lf_vfile_ops *ops, void *ctx, uint64_t size,
		      const char *name, struct lf_vfile **out)
{
	struct lf_vfile *vf;
	int ret = vfile_alloc(name, NULL, &vf);

	if (ret) {
		ops->unref(ctx);
		return ret;
	}
	vf->ops = ops;
	vf->ops_ctx = ctx;
	vf->size = size;
	*out = vf;
	return 0;
}

const struct lf_vfile_ops *lf_vfile_backend(const struct lf_vfile *vf,
					    void **ctx)
{
	if (ctx)
		*ctx = vf->ops_ctx;
	return vf->ops;
}

ssize_t lf_vfile_pread(const struct lf_vfile *vf, void *buf, size_t len,
		       uint64_t off)
{
	size_t done = 0;
	ssize_t n;

	if (off >= vf->size)
		return 0;
	if (len > vf->size - off)
		len = (size_t)(vf->size - off);
	if (vf->ops) {
		n = vf->ops->pread(vf->ops_ctx, buf, len, vf->base + off);
		return n >= 0 && (size_t)n < len ? -EIO : n;
	}
	if (vf->mem) {
		memcpy(buf, vf->mem + vf->base + off, len);
		return (ssize_t)len;
	}
	while (done < len) {
		n = pread(vf->fd, (char *)buf + done, len - done,
			  (off_t)(vf->base + off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO; /* file shrank under us */
		done += (size_t)n;
	}
	return (ssize_t)done;
}

void lf_vfile_advise(const struct lf_vfile *vf, uint64_t off, uint64_t len)
{
	if (!vf->ops || !vf->ops->advise || off >= vf->size)
		return;
	if (len > vf->size - off)
		len = vf->size - off;
	vf->ops->advise(vf->ops_ctx, vf->base + off, len);
}

bool lf_vfile_far(const struct lf_vfile *vf)
{
	return vf->ops && vf->ops->advise;
}

uint64_t lf_vfile_size(const struct lf_vfile *vf)
{
	return vf->size;
}

const char *lf_vfile_name(const struct lf_vfile *vf)
{
	return vf->name;
}

const char *lf_vfile_path(const struct lf_vfile *vf)
{
	return vf->path;
}

uint64_t lf_vfile_base(const struct lf_vfile *vf)
{
	return vf->base;
}

int lf_vfile_check(const struct lf_vfile *vf)
{
	struct stat st;

	if (vf->ops)
		return vf->ops->check ? vf->ops->check(vf->ops_ctx) : 0;
	if (vf->fd < 0)
		return 0;
	if (fstat(vf->fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size < vf->base + vf->size)
		return -EIO;
	return 0;
}

int lf_vfile_stat(const struct lf_vfile *vf, struct stat *st)
{
	if (vf->fd < 0)
		return -ENOTSUP;
	return fstat(vf->fd, st) < 0 ? -errno : 0;
}

void lf_vfile_close(struct lf_vfile *vf)
{
	if (!vf)
		return;
	if (vf->fd >= 0)
		close(vf->fd);
	if (vf->ops)
		vf->ops->unref(vf->ops_ctx);
	free(vf->name);
	free(vf->path);
	free(vf);
}

ssize_t lf_vfile_cursor_read(void *ctx, void *buf, size_t len)
{
	struct lf_vfile_cursor *c = ctx;
	ssize_t n = lf_vfile_pread(c->file, buf, len, c->pos);

	if (n > 0)
		c->pos += (uint64_t)n;
	return n;
}

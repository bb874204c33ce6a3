// SPDX-License-Identifier: MIT
/* source_dir.c - directory layers: a file's bytes from the host file (a
 * directory layer has no tar stream). */
#include "layerfs/source.h"

struct dir_source {
	struct lf_blob b;
	int fd; /* owned: a dup of the index's directory fd */
};

#include "layerfs/path.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * Directory layers: open the file by its path below the layer directory,
 * one component at a time and never through a symlink, then pread.
 */
static ssize_t dir_read_file(struct lf_blob *b, const struct lf_idx_entry *e,
			     void *buf, size_t len, uint64_t off,
			     struct lf_err *err)
{
	const char *path = lf_index_path(b->idx, e), *p = path, *comp;
	char name[NAME_MAX + 1];
	int fd = openat(((struct dir_source *)b)->fd, ".",
			O_RDONLY | O_DIRECTORY | O_CLOEXEC),
	    next;
	size_t clen;
	ssize_t n;

	while (fd >= 0 && lf_path_next(&p, &comp, &clen)) {
		bool last = !*p;

		if (clen > NAME_MAX) {
			close(fd);
			fd = -1;
			errno = ENAMETOOLONG;
			break;
		}
		memcpy(name, comp, clen);
		name[clen] = '\0';
		next = openat(fd, name,
			      O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
				      (last ? O_NONBLOCK : O_DIRECTORY));
		close(fd);
		fd = next;
	}
	if (fd < 0)
		return lf_err_set(err, -EIO,
				  "cannot open '%s' of directory "
				  "layer: %s",
				  path, strerror(errno));
	n = lf_source_fd_pread(fd, buf, len, off);
	close(fd);
	if (n < 0)
		return lf_err_set(err, (int)n,
				  "cannot read '%s' of directory "
				  "layer: %s",
				  path, strerror((int)-n));
	return n;
}

static ssize_t dir_pread(struct lf_blob *b, void *buf, size_t len, uint64_t off,
			 struct lf_err *err)
{
	(void)b;
	(void)buf;
	(void)len;
	(void)off;
	return lf_err_set(err, -EINVAL, "a directory layer has no tar stream");
}

static bool dir_match(const struct lf_source_loc *loc)
{
	return lf_index_dir_fd(loc->idx) >= 0;
}

static int dir_open(const struct lf_source_loc *loc, struct lf_blob **out,
		    struct lf_err *err)
{
	struct dir_source *s = calloc(1, sizeof(*s));
	int ret;

	if (!s)
		return lf_err_set(err, -ENOMEM, "out of memory");
	lf_source_init(&s->b, &lf_source_dir, loc);
	s->fd = fcntl(lf_index_dir_fd(loc->idx), F_DUPFD_CLOEXEC, 0);
	if (s->fd < 0) {
		ret = lf_err_set(err, -errno, "directory layer: dup: %s",
				 strerror(errno));
		free(s);
		return ret;
	}
	*out = &s->b;
	return 0;
}

static void dir_close(struct lf_blob *b)
{
	struct dir_source *s = (struct dir_source *)b;

	close(s->fd);
	free(s);
}

const struct lf_source_ops lf_source_dir = {
	.name = "dir",
	.match = dir_match,
	.open = dir_open,
	.pread = dir_pread,
	.read_file = dir_read_file,
	.close = dir_close,
};

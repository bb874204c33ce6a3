// SPDX-License-Identifier: MIT
/* source_dir.c - directory layers: a file's bytes from the host file. */
#include "blob_internal.h"

#include "layerfs/path.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

/*
 * Directory layers: open the file by its path below the layer directory,
 * one component at a time and never through a symlink, then pread.
 */
ssize_t lf_dir_read_file(struct lf_blob *b, const struct lf_idx_entry *e,
			 void *buf, size_t len, uint64_t off,
			 struct lf_err *err)
{
	const char *path = lf_index_path(b->idx, e), *p = path, *comp;
	char name[NAME_MAX + 1];
	int fd = openat(lf_index_dir_fd(b->idx), ".", O_RDONLY | O_DIRECTORY |
			O_CLOEXEC), next;
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
		next = openat(fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
			      (last ? O_NONBLOCK : O_DIRECTORY));
		close(fd);
		fd = next;
	}
	if (fd < 0)
		return lf_err_set(err, -EIO, "cannot open '%s' of directory "
				  "layer: %s", path, strerror(errno));
	n = lf_fd_pread(fd, buf, len, off);
	close(fd);
	if (n < 0)
		return lf_err_set(err, (int)n, "cannot read '%s' of directory "
				  "layer: %s", path, strerror((int)-n));
	return n;
}

// SPDX-License-Identifier: MIT
/*
 * source_zstd.c - zstd layers: the decompressed copy indexing left (zstd has
 * no random access), read like a plain blob (lf_flat_pread); a block that
 * fails its check drops the copy, so the next run rebuilds it.
 */
#include "layerfs/source.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct zstd_source {
	struct lf_flat f;
	int fd; /* owned: a dup of the index's copy fd */
};

static ssize_t zstd_raw(struct lf_flat *f, void *buf, size_t len, uint64_t off)
{
	return lf_source_fd_pread(((struct zstd_source *)f)->fd, buf, len, off);
}

static int zstd_damaged(struct lf_flat *f, uint64_t off, struct lf_err *err)
{
	const char *copy = lf_index_copy_path(f->b.idx);

	/* this run keeps its fd and answers EIO; the next one rebuilds it */
	if (copy)
		unlink(copy);
	return lf_err_set(err, -EIO,
			  "'%s': its decompressed copy '%s' "
			  "is damaged at offset %llu (removed: the "
			  "next run rebuilds it)",
			  lf_source_name(&f->b),
			  copy ? copy : "(temporary file)",
			  (unsigned long long)off);
}

static bool zstd_match(const struct lf_source_loc *loc)
{
	return lf_index_compression(loc->idx) == LF_COMP_ZSTD;
}

static int zstd_open(const struct lf_source_loc *loc, struct lf_blob **out,
		     struct lf_err *err)
{
	struct zstd_source *s = calloc(1, sizeof(*s));
	int ret;

	if (!s)
		return lf_err_set(err, -ENOMEM, "out of memory");
	lf_source_init(&s->f.b, &lf_source_zstd, loc);
	s->f.raw = zstd_raw;
	s->f.damaged = zstd_damaged;
	s->fd = -1;
	if (lf_index_tar_fd(loc->idx) < 0) {
		free(s);
		return lf_err_set(err, -EINVAL,
				  "'%s': no decompressed copy of zstd layer",
				  loc->blob ? lf_vfile_name(loc->blob) : "?");
	}
	if ((ret = lf_source_need_sums(&s->f.b,
				       (s->f.b.tar_size - 1) / LF_SPAN_SIZE,
				       err))) {
		free(s);
		return ret;
	}
	s->fd = fcntl(lf_index_tar_fd(loc->idx), F_DUPFD_CLOEXEC, 0);
	if (s->fd < 0) {
		ret = lf_err_set(err, -errno,
				 "'%s': dup of its decompressed "
				 "copy: %s",
				 lf_source_name(&s->f.b), strerror(errno));
		free(s);
		return ret;
	}
	*out = &s->f.b;
	return 0;
}

static void zstd_close(struct lf_blob *b)
{
	struct zstd_source *s = (struct zstd_source *)b;

	close(s->fd);
	free(s);
}

const struct lf_source_ops lf_source_zstd = {
	.name = "zstd",
	.match = zstd_match,
	.open = zstd_open,
	.pread = lf_flat_pread,
	.close = zstd_close,
};

// SPDX-License-Identifier: MIT
/* source.c - what the backends share: the blob file's identity, the
 * checksums, damaged spans, chunks. */
#include "layerfs/source.h"

#include "blob_lru.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void lf_source_init(struct lf_blob *b, const struct lf_source_ops *ops,
		    const struct lf_source_loc *loc)
{
	b->ops = ops;
	b->vf = loc->blob;
	b->idx = loc->idx;
	b->cc = loc->cc;
	b->tar_size = lf_index_tar_size(loc->idx);
	b->id = loc->cc ? lf_chunk_cache_new_id(loc->cc) : 0;
	b->has_id = loc->blob && !lf_vfile_stat(loc->blob, &b->st);
	atomic_init(&b->changed, false);
}

const char *lf_source_name(const struct lf_blob *b)
{
	return b->vf ? lf_vfile_name(b->vf) : "?";
}

int lf_source_need_sums(const struct lf_blob *b, uint64_t last,
			struct lf_err *err)
{
	uint64_t sum;

	if (!b->tar_size || !lf_index_span_sum(b->idx, last, &sum))
		return 0;
	return lf_err_set(err, -EINVAL, "'%s': the index has no checksums",
			  lf_source_name(b));
}

ssize_t lf_source_fd_pread(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done,
				  (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	       a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
	       a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/*
 * Has the blob file been written since the blob was opened?  Called after
 * the bytes are read: a write that could have reached them has already
 * moved mtime and ctime.  A fstat per chunk, not per byte.
 */
int lf_source_check_file(struct lf_blob *b, struct lf_err *err)
{
	struct stat st;

	if (!b->has_id)
		return 0;
	if (!atomic_load(&b->changed) &&
	    (lf_vfile_stat(b->vf, &st) || !same_file(&st, &b->st)))
		atomic_store(&b->changed, true);
	if (!atomic_load(&b->changed))
		return 0;
	lf_err_set(err, -EIO,
		   "'%s': the blob file changed since it was "
		   "opened",
		   lf_source_name(b));
	return err->code;
}

int lf_source_differs(const struct lf_blob *b, uint64_t off, struct lf_err *err)
{
	return lf_err_set(err, -EIO,
			  "'%s': bytes at offset %llu of the "
			  "layer differ from when it was indexed",
			  lf_source_name(b), (unsigned long long)off);
}

struct lf_chunk *lf_source_chunk_new(const struct lf_blob *b, uint64_t no,
				     size_t len)
{
	struct lf_chunk *c = malloc(sizeof(*c) + len);

	if (!c)
		return NULL;
	atomic_init(&c->refs, 1);
	c->blob_id = b->id;
	c->no = no;
	c->len = len;
	c->hnext = c->prev = c->next = NULL;
	return c;
}

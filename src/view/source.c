// SPDX-License-Identifier: MIT
/* source.c - what the plain, gzip and zstd readers share: the blob file's
 * identity, damaged spans, chunks. */
#include "blob_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

ssize_t lf_fd_pread(int fd, void *buf, size_t len, uint64_t off)
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
int lf_blob_check_file(struct lf_blob *b, struct lf_err *err)
{
	struct stat st;

	if (!b->has_id)
		return 0;
	if (!atomic_load(&b->changed) &&
	    (lf_vfile_stat(b->vf, &st) || !same_file(&st, &b->st)))
		atomic_store(&b->changed, true);
	if (!atomic_load(&b->changed))
		return 0;
	lf_err_set(err, -EIO, "'%s': the blob file changed since it was "
		   "opened", lf_blob_name(b));
	return err->code;
}

int lf_blob_span_damaged(struct lf_blob *b, uint64_t off,
			 struct lf_err *err)
{
	char copy[4096];

	if (b->tar_fd >= 0) {
		lf_index_drop_copy(b->idx, copy, sizeof(copy));
		return lf_err_set(err, -EIO, "'%s': its decompressed copy '%s' "
				  "is damaged at offset %llu (removed: the "
				  "next run rebuilds it)", lf_blob_name(b), copy,
				  (unsigned long long)off);
	}
	return lf_err_set(err, -EIO, "'%s': bytes at offset %llu of the "
			  "layer differ from when it was indexed",
			  lf_blob_name(b), (unsigned long long)off);
}

struct lf_chunk *lf_blob_chunk_new(struct lf_blob *b, uint64_t no,
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

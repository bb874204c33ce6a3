/* SPDX-License-Identifier: MIT */
/*
 * vfile.h - a random-access, read-only byte source.
 *
 * A vfile is either a byte range of a host file (a whole blob file, or a
 * blob's range inside an uncompressed outer tar: "read in place") or a
 * borrowed memory region (tests, fuzzers), or bytes produced by a backend
 * (lf_vfile_from_ops: the decompressed stream of a gzip'd archive, see
 * vfile_gzip.h).  Each file-backed vfile owns its own fd (dup'ed), and each
 * backend-backed one a reference, so vfiles are independent of whoever
 * opened them.
 *
 * Thread safety: lf_vfile_pread() may be called from many threads at once
 * (pread has no shared offset).  Open/close are single-owner.
 */
#ifndef LAYERFS_VFILE_H
#define LAYERFS_VFILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "layerfs/common.h"

struct lf_vfile;

/*
 * Open `path` read-only as a vfile covering the whole file.  `name` (copied)
 * is what messages call it; NULL means the path.  Returns 0 or -errno;
 * -EINVAL for anything but a regular file (a FIFO or device is refused
 * without blocking on open).
 */
int lf_vfile_open(const char *path, const char *name, struct lf_vfile **out,
		  struct lf_err *err);

/*
 * The same over an fd the caller opened (ownership of `fd` passes to the
 * vfile, closed on failure too); `path` is what messages and
 * lf_vfile_path() give.  Anything but a regular file is refused (-EINVAL),
 * so open with O_NONBLOCK: a FIFO then neither blocks nor gets through.
 */
int lf_vfile_open_fd(int fd, const char *path, const char *name,
		     struct lf_vfile **out, struct lf_err *err);

/*
 * A new vfile for [off, off+size) of `parent` (which must be file-backed or
 * memory-backed); fails with -EINVAL if the range is outside the parent.
 * The child does not reference the parent afterwards.
 */
int lf_vfile_sub(const struct lf_vfile *parent, uint64_t off, uint64_t size,
		 const char *name, struct lf_vfile **out, struct lf_err *err);

/*
 * A backend: pread must be thread-safe and return len bytes, fewer only at
 * the end, or -errno; ref/unref count the vfiles sharing ctx (sub-ranges
 * take one each); check (may be NULL) is lf_vfile_check's answer; advise
 * (may be NULL) hears that [off, off + len) is about to be read.
 */
struct lf_vfile_ops {
	ssize_t (*pread)(void *ctx, void *buf, size_t len, uint64_t off);
	void (*ref)(void *ctx);
	void (*unref)(void *ctx);
	int (*check)(void *ctx);
	void (*advise)(void *ctx, uint64_t off, uint64_t len);
};

/* A vfile of `size` bytes served by ops; takes over one reference to ctx
 * (dropped with ops->unref on failure too). */
int lf_vfile_from_ops(const struct lf_vfile_ops *ops, void *ctx, uint64_t size,
		      const char *name, struct lf_vfile **out);
/* The backend serving vf and (if ctx) its ctx, or NULL for files and
 * memory: how a layer source recognises a blob its transport made
 * (source.h). */
const struct lf_vfile_ops *lf_vfile_backend(const struct lf_vfile *vf,
					    void **ctx);

/* A vfile over borrowed memory; `mem` must outlive it. */
int lf_vfile_from_mem(const void *mem, size_t size, const char *name,
		      struct lf_vfile **out);

/*
 * Read up to len bytes at off.  Returns the number of bytes read (short only
 * at the end of the range), or -errno.  Retries EINTR and short reads.
 */
ssize_t lf_vfile_pread(const struct lf_vfile *vf, void *buf, size_t len,
		       uint64_t off);

/*
 * A sequential reader over a vfile, for stream consumers (the gzidx builder):
 * lf_vfile_cursor_read(ctx = struct lf_vfile_cursor *) reads at pos and
 * advances it; 0 at the end, -errno on failure.
 */
struct lf_vfile_cursor {
	const struct lf_vfile *file;
	uint64_t pos;
};
ssize_t lf_vfile_cursor_read(void *ctx, void *buf, size_t len);

/*
 * [off, off + len) will be read soon, in pieces: a backend that fetches
 * bytes from far away (a registry) can fetch them in one go.  A hint only:
 * nothing for files and memory, and errors wait for the reads.
 */
void lf_vfile_advise(const struct lf_vfile *vf, uint64_t off, uint64_t len);
/* Its backend takes advice: bytes come from far away (a registry). */
bool lf_vfile_far(const struct lf_vfile *vf);

uint64_t lf_vfile_size(const struct lf_vfile *vf);
/* The name used in messages (valid while vf is open). */
const char *lf_vfile_name(const struct lf_vfile *vf);
/* The host path and the range start, for messages and for pread users. */
const char *lf_vfile_path(const struct lf_vfile *vf);
uint64_t lf_vfile_base(const struct lf_vfile *vf);
/* fstat identity of the backing file (dev, ino, size, mtime) or -errno. */
int lf_vfile_check(const struct lf_vfile *vf);

/* fstat of the backing file (-ENOTSUP for memory and backends). */
struct stat;
int lf_vfile_stat(const struct lf_vfile *vf, struct stat *st);

void lf_vfile_close(struct lf_vfile *vf);

#endif /* LAYERFS_VFILE_H */

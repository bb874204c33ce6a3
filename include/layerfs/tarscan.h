/* SPDX-License-Identifier: MIT */
/*
 * tarscan.h - walk a tar stream with libarchive and report every member with
 * the exact offset of its data in the (uncompressed) tar stream.
 *
 * Two modes:
 *   - streaming: bytes are pulled through a read callback exactly once, in
 *     order, and every byte is read (index.c hashes and checkpoints them);
 *   - seekable: members of an uncompressed outer archive (OCI archive,
 *     docker-archive) are listed from a vfile, skipping member data, so a
 *     multi-GB `docker save` tar is listed without reading its blobs.
 * Formats: ustar, PAX (long names, SCHILY.xattr.* and LIBARCHIVE.xattr.*
 * xattrs, high-resolution mtimes, GNU sparse 0.x/1.0), GNU (long names and
 * links, old sparse).  Compression is never handled here.
 *
 * design.md section 3 rule 6: a tar that ends without its two zero blocks, or
 * without padding after its last member whose data is complete, is read to
 * its last byte and is not an error; a member whose data is cut short is
 * ("truncated tar stream: member 'x' needs N bytes, M left").
 *
 * This is the only libarchive reader in layerfs.  Paths and link targets are
 * the archive's bytes (no charset conversion, no Unicode normalisation:
 * they are read from the header blocks, libarchive's converted names only
 * where those cannot be had) and are not normalised: callers apply
 * lf_path_normalize().  A symlink's mode is 0777, whatever its header says.
 * Thread safety: one scan per thread; no shared state.
 */
#ifndef LAYERFS_TARSCAN_H
#define LAYERFS_TARSCAN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "layerfs/common.h"
#include "layerfs/vfile.h"

enum lf_tar_type {
	LF_TAR_REG = 1,
	LF_TAR_DIR,
	LF_TAR_SYMLINK,
	LF_TAR_HARDLINK,
	LF_TAR_CHR,
	LF_TAR_BLK,
	LF_TAR_FIFO,
	LF_TAR_SOCK,
};

struct lf_tar_xattr {
	const char *name; /* e.g. "user.foo", "security.capability" */
	const void *value;
	size_t len;
};

struct lf_tar_sparse {
	uint64_t offset; /* logical offset in the file */
	uint64_t length; /* bytes of data stored for this region */
};

/* One member.  Every pointer is borrowed and valid only during the callback. */
struct lf_tar_entry {
	const char *path; /* member name, the archive's bytes */
	const char *link; /* symlink target or hardlink target, else NULL */
	enum lf_tar_type type;
	uint32_t mode; /* permission bits (07777); symlinks 0777 */
	int64_t uid, gid;
	int64_t mtime;
	uint32_t mtime_nsec;
	uint64_t size;	      /* logical file size (sparse: with holes) */
	uint64_t data_offset; /* offset of the first data byte in the stream */
	uint64_t data_size; /* bytes stored in the stream (sparse: no holes) */
	uint32_t rdev_major, rdev_minor;
	const struct lf_tar_xattr *xattrs;
	size_t nxattrs;
	const struct lf_tar_sparse *sparse; /* NULL unless a sparse file */
	size_t nsparse;
	uint64_t index; /* 0-based member number in the stream */
};

/* Called once per member; return 0 to go on, or a negative errno to stop
 * (the scan then returns that code; the callback fills err itself). */
typedef int (*lf_tarscan_entry_fn)(void *ctx, const struct lf_tar_entry *e,
				   struct lf_err *err);

/* Streaming source: bytes read, 0 at EOF, -errno on error (message in the
 * callback owner's hands: tarscan reports "read error" plus strerror). */
typedef ssize_t (*lf_tarscan_read_fn)(void *ctx, void *buf, size_t len);

/*
 * Streaming scan: pull the whole stream through rd (every byte, including the
 * end-of-archive blocks and anything after them, until rd returns 0), calling
 * fn for each member.  `name` (borrowed) names the stream in messages.
 * Returns 0, the callback's code, -EIO for a truncated stream or read error,
 * -EINVAL for a damaged header ("'<name>': damaged tar header at offset N").
 */
int lf_tarscan_stream(lf_tarscan_read_fn rd, void *rd_ctx, const char *name,
		      lf_tarscan_entry_fn fn, void *ctx, struct lf_err *err);

/*
 * Seekable scan of an uncompressed tar in `vf` (member data is skipped, not
 * read).  A compressed outer file is refused: "'<name>': compressed archive,
 * decompress it first".  Same return values as lf_tarscan_stream().
 */
int lf_tarscan_vfile(const struct lf_vfile *vf, lf_tarscan_entry_fn fn,
		     void *ctx, struct lf_err *err);

#endif /* LAYERFS_TARSCAN_H */

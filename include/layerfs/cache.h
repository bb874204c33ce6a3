/* SPDX-License-Identifier: MIT */
/*
 * cache.h - the on-disk layer index format and the cache directory.
 *
 * One file per layer blob, `<cache>/<key>.idx`, where key is the blob digest
 * with ':' replaced by '-' ("sha256-<hex>"), or "diffid-sha256-<hex>" when the
 * image does not give the blob digest (legacy docker-archive).  A layer shared
 * by two images is therefore indexed once.  Layout (all little-endian):
 *
 *   struct lf_cache_header
 *   sections, each 8-byte aligned, located by header.sect[]:
 *     ENTRIES   struct lf_idx_entry[nentries], in tar order
 *     STRINGS   NUL-terminated paths and link targets, xattr names and values
 *     XATTRS    struct lf_idx_xattr[]
 *     SPARSE    struct lf_idx_sparse[]
 *     GZPOINTS  struct lf_gzidx_point[] (gzip layers only)
 *     SPANSUMS  uint64_t[]: lf_cache_hash64() of the uncompressed tar
 *               stream, so that bytes read later (the zstd copy, a blob
 *               that changed since) are checked against what was indexed:
 *               gzip layers one per checkpoint span (GZPOINTS[k].out to the
 *               next point's or the end), others one per LF_SPAN_SIZE
 *               block (the last one may be short); none for directories
 *     CHUNKS    struct lf_idx_chunk[] (eStargz layers only, see below)
 *     GZWINDOWS deflated 32 KiB windows (gzip layers only)
 *
 * An eStargz layer indexed from its TOC (LF_CACHE_ESTARGZ, estargz.h) has
 * no GZPOINTS, SPANSUMS or GZWINDOWS: its "stream" is the concatenation of
 * its regular files' contents in TOC order (an entry's data_off is its
 * first byte there, tar_size their total), cut into the TOC's chunks,
 * each a gzip member's bytes in the blob checked by its sha256.
 *
 * The header ends with a checksum: 64-bit XXH64-style hashes of the header
 * before the checksum field, of every byte after the header up to the
 * GZWINDOWS section (which is last), and of that section.  The first two are
 * checked at load; the windows on first use (lf_cache_check_windows(),
 * through lf_index_check_windows() by the gzip source), so a mount does not
 * read them.  The
 * hashes catch corruption; lf_index_attach() checks every offset
 * regardless.  Files are written to a temp file in the cache
 * directory and renamed into place, so readers see a whole file or none; a
 * file with a bad magic, version, key, size or checksum is never trusted.
 *
 * Thread safety: lf_cache_* functions are reentrant.  Ownership is stated per
 * function.
 */
#ifndef LAYERFS_CACHE_H
#define LAYERFS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "layerfs/buf.h"
#include "layerfs/common.h"
#include "layerfs/digest.h"

#define LF_CACHE_MAGIC                                                         \
	"LFIDX\r\n\032" /* 8 bytes, like PNG's: catches text mangling */
#define LF_CACHE_VERSION                                                       \
	6 /* 2: XXH64-style checksums, 3: windows apart,
				 * 4: names as stored, symlinks 0777,
				 * 5: SPANSUMS, 6: CHUNKS (eStargz) */

/* Block of the uncompressed stream one SPANSUMS hash covers (not gzip). */
#define LF_SPAN_SIZE (64u << 10)
/* The longest gzip checkpoint span an index accepts (a deflate block
 * longer than that is refused, and a read never allocates more). */
#define LF_GZ_MAX_SPAN (64u << 20)

enum lf_cache_section {
	LF_SECT_ENTRIES,
	LF_SECT_STRINGS,
	LF_SECT_XATTRS,
	LF_SECT_SPARSE,
	LF_SECT_GZPOINTS,
	LF_SECT_SPANSUMS,
	LF_SECT_CHUNKS,
	LF_SECT_GZWINDOWS, /* last in the file */
	LF_SECT_COUNT,
};

enum lf_compression {
	LF_COMP_NONE = 0,
	LF_COMP_GZIP = 1,
	LF_COMP_ZSTD = 2,
};

/* The index was built with digest verification on (both digests matched;
 * for LF_CACHE_ESTARGZ: the TOC matched the manifest's TOC digest). */
#define LF_CACHE_VERIFIED 1u
/* Indexed from the eStargz TOC: CHUNKS instead of checkpoints; the blob
 * digest and diff_id are the image's word, not computed. */
#define LF_CACHE_ESTARGZ 2u

struct lf_cache_sect {
	uint64_t off; /* from the start of the file, 8-aligned */
	uint64_t len; /* bytes */
};

struct lf_cache_header {
	char magic[8];			 /* LF_CACHE_MAGIC */
	uint32_t version;		 /* LF_CACHE_VERSION */
	uint32_t header_size;		 /* sizeof(struct lf_cache_header) */
	char key[80];			 /* cache key, NUL-padded */
	char blob_digest[LF_DIGEST_LEN]; /* sha256 of the blob as read */
	char diff_id[LF_DIGEST_LEN];	 /* sha256 of the tar stream */
	uint64_t blob_size;		 /* compressed bytes */
	uint64_t tar_size;		 /* uncompressed bytes */
	uint64_t nentries;		 /* members in ENTRIES */
	uint64_t nwhiteouts;  /* members named .wh.* (incl. opaque markers) */
	uint32_t compression; /* enum lf_compression */
	uint32_t flags;	      /* LF_CACHE_VERIFIED */
	struct lf_cache_sect sect[LF_SECT_COUNT];
	uint8_t toc_sha256[32]; /* LF_CACHE_ESTARGZ: the TOC's sha256 (the
				 * manifest's TOC digest), else zero */
	uint8_t checksum[32];	/* two LE 64-bit hashes, then zero; last */
};
_Static_assert(sizeof(struct lf_cache_header) == 472, "cache header size");

/* Entry kinds (struct lf_idx_entry.kind). */
enum lf_idx_kind {
	LF_KIND_REG = 1,
	LF_KIND_DIR,
	LF_KIND_SYMLINK,
	LF_KIND_HARDLINK,
	LF_KIND_CHR,
	LF_KIND_BLK,
	LF_KIND_FIFO,
	LF_KIND_SOCK,
};

/*
 * One chunk of an eStargz layer's file data.  64 bytes.  Chunks are stored
 * in stream order and back to back: chunk k covers [out, out + len) of the
 * stream, the next one starts at out + len.  Its bytes are those after the
 * first `inner` bytes of the gzip member that starts at blob offset `in`,
 * and that member ends at or before `in_end` (the next member holding data,
 * or the TOC).
 */
struct lf_idx_chunk {
	uint64_t out;	     /* first byte in the stream */
	uint64_t in, in_end; /* the compressed bytes to fetch */
	uint32_t inner;	     /* uncompressed bytes to skip in the member */
	uint32_t len;	     /* uncompressed bytes, 1..LF_GZ_MAX_SPAN */
	uint8_t sha256[32];  /* of the chunk's len bytes */
};
_Static_assert(sizeof(struct lf_idx_chunk) == 64, "chunk record size");

/* One tar member.  72 bytes, no pointers: it lives in the mmapped file. */
struct lf_idx_entry {
	uint64_t data_off;   /* first data byte in the uncompressed stream */
	uint64_t size;	     /* logical size (sparse files: with holes) */
	int64_t mtime;	     /* seconds since the epoch */
	uint32_t mtime_nsec; /* nanoseconds */
	uint32_t path;	     /* STRINGS offset: normalised path ("" = root) */
	uint32_t link;	     /* STRINGS offset of symlink/hardlink target,
				 * normalised for hardlinks; UINT32_MAX if none */
	uint32_t mode;	     /* permission bits (07777) */
	uint32_t uid, gid;
	uint32_t rdev;	       /* major << 20 | minor (minor < 2^20) */
	uint32_t xattr_first;  /* first record in XATTRS */
	uint32_t sparse_first; /* first record in SPARSE */
	uint32_t sparse_count; /* records in SPARSE; 0 = not sparse */
	uint16_t xattr_count;  /* records in XATTRS */
	uint8_t kind;	       /* enum lf_idx_kind */
	uint8_t flags;	       /* LF_IDX_* */
};
_Static_assert(sizeof(struct lf_idx_entry) == 72, "index entry size");

/* The entry's basename starts with ".wh." (whiteout or opaque marker). */
#define LF_IDX_WHITEOUT 1
/* The entry is the opaque marker ".wh..wh..opq". */
#define LF_IDX_OPAQUE 2

struct lf_idx_xattr {
	uint32_t name;	/* STRINGS offset, NUL-terminated */
	uint32_t value; /* STRINGS offset of the value bytes */
	uint32_t len;	/* value length */
	uint32_t pad;	/* zero */
};
_Static_assert(sizeof(struct lf_idx_xattr) == 16, "xattr record size");

struct lf_idx_sparse {
	uint64_t offset; /* logical offset of a data region */
	uint64_t length; /* its length; data regions are stored back to
				 * back from the entry's data_off */
};
_Static_assert(sizeof(struct lf_idx_sparse) == 16, "sparse record size");

/*
 * The cache directory: `override` if non-NULL, else $LAYERFS_CACHE, else
 * $XDG_CACHE_HOME/layerfs, else $HOME/.cache/layerfs.  Written into `out`.
 * Returns 0 or -ENOENT when no candidate exists (no HOME).
 */
int lf_cache_dir(const char *override, struct lf_buf *out);

/* "<dir>/<key><suffix>" into out. */
int lf_cache_path(const char *dir, const char *key, const char *suffix,
		  struct lf_buf *out);

/* mkdir -p of `dir` (new directories 0700); 0 or -errno with a message. */
int lf_cache_mkdir(const char *dir, struct lf_err *err);

/*
 * Create "<path><suffix>.tmp.XXXXXX" (mode 0600, O_CLOEXEC) for a file to be
 * renamed to <path><suffix> once complete, after mkdir -p of its directory
 * (0700).  The name goes to `tmp`.  Returns the fd, or -errno with a message
 * naming the directory or the file.
 */
int lf_cache_mkstemp(const char *path, const char *suffix, struct lf_buf *tmp,
		     struct lf_err *err);

/*
 * Write `len` bytes atomically to `path`: mkdir -p of the directory, temp file
 * in the same directory, fsync-free write, rename.  On failure nothing is
 * left behind.  Returns 0 or -errno with a message.
 */
int lf_cache_store(const char *path, const void *data, size_t len,
		   struct lf_err *err);

/*
 * Compute and store the checksum of a complete file image in memory (the
 * header at the start of `data`).
 */
void lf_cache_seal(void *data, size_t len);

/*
 * Check the GZWINDOWS section of a loaded file against its own hash (not
 * done by lf_cache_load(): the windows are most of a file and a mount
 * reads few of them).  0 or -EIO.
 */
int lf_cache_check_windows(const void *data, size_t len);

/* The 64-bit XXH64-style hash the checksums use (not cryptographic). */
uint64_t lf_cache_hash64(const void *data, size_t len);

/*
 * mmap `path` read-only and check magic, version, sizes, key, section bounds
 * and checksum.  On success *map and *len own the mapping (lf_cache_unmap()).
 * -ENOENT when the file does not exist (not an error worth a message);
 * -EINVAL with a message saying what is wrong for a corrupt or foreign file.
 */
int lf_cache_load(const char *path, const char *key, void **map, size_t *len,
		  struct lf_err *err);
void lf_cache_unmap(void *map, size_t len);

#endif /* LAYERFS_CACHE_H */

/* SPDX-License-Identifier: MIT */
/*
 * rblob.h - a registry blob as a vfile: streamed once, then read by
 * verified spans kept in an on-disk span cache.
 *
 * A blob is cut into spans of LF_RBLOB_SPAN compressed bytes.  Until the
 * sha256 of every span is known, reads must go forward from offset 0 (the
 * one-pass index does): they are served from large range GETs that are
 * hashed as they arrive and never stored; when the last byte has arrived
 * and the whole blob matches its digest, the span digests are written to
 * `<cache_dir>/spans/<hex>.sums`.  A read elsewhere before that streams the
 * rest of the blob first (the digests are needed to trust any span).
 *
 * Once the digests are known, a read fetches only the spans it covers (one
 * range GET for a run of missing spans), checks each against its digest
 * (a mismatch is -EIO and a log line, the first for the blob; never wrong
 * bytes), keeps it in
 * `<cache_dir>/spans/<hex>/<n>` and in a small memory LRU.  A reader going
 * forward span after span gets the next spans in the same request
 * (read-ahead, up to LF_RBLOB_READAHEAD spans), and a reader that says
 * what it will read (lf_vfile_advise: the gzip source names a checkpoint
 * span's compressed bytes) gets it in one request; concurrent readers of one
 * span wait for one fetch.  Span files count against cache_max bytes;
 * beyond it the least recently used span files are removed.  Cached spans
 * are checked against their digest each time they are loaded.
 *
 * Thread safety: the vfile may be read from many threads.
 */
#ifndef LAYERFS_RBLOB_H
#define LAYERFS_RBLOB_H

#include <stdint.h>

#include "layerfs/buf.h"
#include "layerfs/common.h"
#include "layerfs/registry.h"
#include "layerfs/vfile.h"

#define LF_RBLOB_SPAN (512u << 10)
#define LF_RBLOB_READAHEAD 8
/* At most this many spans fetched for one lf_vfile_advise(). */
#define LF_RBLOB_ADVISE 16
/* The largest blob read (its span digests take 64 MiB of memory). */
#define LF_RBLOB_MAX_SIZE (1ull << 40)
/* The span cache's cap when none is given. */
#define LF_RBLOB_CACHE_DEFAULT (2ull << 30)
/* cache_max meaning: keep no span on disk. */
#define LF_RBLOB_CACHE_NONE UINT64_MAX

struct lf_rblob_opts {
	const char *cache_dir; /* NULL: no cache, nothing kept on disk */
	uint64_t cache_max;    /* 0: LF_RBLOB_CACHE_DEFAULT */
};

/* A vfile of `size` bytes over blob `digest` ("sha256:<hex>") of r. */
int lf_rblob_open(struct lf_registry *r, const char *digest, uint64_t size,
		  const struct lf_rblob_opts *o, struct lf_vfile **out,
		  struct lf_err *err);

/*
 * Span digests as an index artifact carries them (the `.sums` file's
 * self-checked form: magic, blob size, span size, count, the digests, a
 * sha256 of it all).  lf_rblob_sums(): those of rblob vfile f into out,
 * streaming the blob once first when they are not known (-EINVAL when f
 * is not an rblob).  lf_rblob_sums_valid(): are they such bytes for a
 * blob of `size`?  lf_rblob_sums_install(): check such bytes against a
 * blob of `size` bytes and this build's span size, then store them in the
 * cache (atomically) where lf_rblob_open() of that digest finds them.
 */
int lf_rblob_sums(struct lf_vfile *f, struct lf_buf *out, struct lf_err *err);
bool lf_rblob_sums_valid(const void *data, size_t len, uint64_t size);
int lf_rblob_sums_install(const char *cache_dir, const char *digest,
			  uint64_t size, const void *data, size_t len,
			  struct lf_err *err);

/*
 * Bytes [off, off + len) of vf as stored, unchecked: for a registry blob
 * one range GET (no span digests needed, none checked, nothing cached),
 * for any other vfile lf_vfile_pread().  For readers that check what they
 * read against digests of their own (eStargz chunks, estargz.h).  Returns
 * len (fewer at the end) or -errno; a registry failure is logged.
 */
ssize_t lf_rblob_pread_raw(const struct lf_vfile *vf, void *buf, size_t len,
			   uint64_t off);

#endif /* LAYERFS_RBLOB_H */

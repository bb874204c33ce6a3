/* SPDX-License-Identifier: MIT */
/*
 * estargz.h - eStargz layers: the footer, the TOC, and one chunk's bytes.
 *
 * An eStargz blob (stargz-snapshotter's format) is a gzip'd tar whose
 * every regular file's data, and every chunk of a large one, starts a new
 * gzip member; the tar member `stargz.index.json` (the TOC: JSON listing
 * every tar entry, each chunk's blob offset and sha256) sits in its own
 * member near the end, and the blob ends with a 51-byte footer, an empty
 * gzip member whose extra field is "%016xSTARGZ" with the TOC's offset
 * (the legacy stargz footer is 47 bytes; its TOCs carry no chunk digests,
 * so such layers are streamed).
 *
 * lf_estargz_scan() reads the footer and the TOC through a raw reader (no
 * trust in the bytes: a registry blob's ranges, unchecked), checks the
 * sha256 of the TOC JSON against the digest the image manifest gives for
 * it (LF_ESTARGZ_TOC_ANNOTATION), and reports every entry in TOC (= tar)
 * order as a struct lf_tar_entry, the TOC member itself included (it is a
 * member of the tar stream, so it is a file of the layer; unless the
 * converter kept the layer's end-of-archive blocks before it, as stargz's
 * lossless mode does: the headers after the last chunk are walked to
 * tell, since umoci and the streaming indexer stop there), with each file's
 * data placed in a made-up stream: the files' contents back to back.  The
 * chunks of that stream come out as struct lf_idx_chunk records.
 * lf_estargz_chunk_read() fetches one chunk's member, inflates it and checks
 * its sha256: the trust chain is manifest -> TOC digest -> chunk digests.
 *
 * A hostile TOC is refused with a message, never followed: TOC over
 * LF_ESTARGZ_MAX_TOC bytes (compressed or not), unknown entry types,
 * chunks that overlap, leave gaps or do not add up to the file's size,
 * data offsets out of order or outside the blob before the TOC, members
 * or chunks over LF_GZ_MAX_SPAN, missing or malformed chunk digests.  Entry
 * names are checked by the index (path.h: no "..").
 *
 * Thread safety: reentrant; the reader must be (lf_estargz_chunk_read runs
 * on many threads).
 */
#ifndef LAYERFS_ESTARGZ_H
#define LAYERFS_ESTARGZ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "layerfs/cache.h"
#include "layerfs/common.h"
#include "layerfs/tarscan.h"

#define LF_ESTARGZ_TOC_ANNOTATION "containerd.io/snapshot/stargz/toc.digest"
#define LF_ESTARGZ_FOOTER 51
#define LF_ESTARGZ_LEGACY_FOOTER 47
/* The largest TOC member read, compressed and uncompressed. */
#define LF_ESTARGZ_MAX_TOC (64u << 20)
/* The first read of a blob: its last bytes, up to this many (the footer,
 * and a small TOC with them). */
#define LF_ESTARGZ_TAIL (64u << 10)
/* The TOC's tar member name. */
#define LF_ESTARGZ_TOC_NAME "stargz.index.json"

/* Bytes [off, off + len) of the blob as stored: len, fewer only at the
 * end, or -errno. */
typedef ssize_t (*lf_estargz_read_fn)(void *ctx, void *buf, size_t len,
				      uint64_t off);

/*
 * The TOC offset from the blob's last bytes `tail` (len of them): 0, or
 * -ENOENT when they are no eStargz footer, -EINVAL when the offset cannot
 * be (past the footer).  *footer is the footer's size (51, or 47 legacy).
 */
int lf_estargz_footer(const unsigned char *tail, size_t len, uint64_t blob_size,
		      uint64_t *toc_off, size_t *footer);

struct lf_estargz_sink {
	lf_tarscan_entry_fn entry; /* each entry, tar order */
	int (*chunk)(void *ctx, const struct lf_idx_chunk *c,
		     struct lf_err *err); /* each chunk, stream order */
	void *ctx;
};

/*
 * Read the TOC of a `blob_size`-byte blob named `name` in messages (one
 * read of its last LF_ESTARGZ_TAIL bytes, one more for a TOC or a last
 * member that does not fit in them), check
 * it against `toc_digest` ("sha256:<hex>"), and report its entries and
 * chunks to `sink`.  *stream_size is the made-up stream's size.  Returns 0;
 * -ENOENT when the blob has no eStargz footer (or a legacy one); -EINVAL
 * for a TOC that does not match or is malformed; the reader's errors; the
 * sink's.  Nothing is reported for a TOC that fails its digest.
 */
int lf_estargz_scan(lf_estargz_read_fn rd, void *rd_ctx, uint64_t blob_size,
		    const char *toc_digest, const char *name,
		    const struct lf_estargz_sink *sink, uint64_t *stream_size,
		    struct lf_err *err);

/*
 * Chunk c's c->len bytes into out: one read of [c->in, c->in_end), inflate,
 * skip c->inner bytes, check the sha256.  -EIO "'<name>': chunk at blob
 * offset N does not match its digest" (or is truncated / not gzip), or the
 * reader's error; never other bytes.
 */
int lf_estargz_chunk_read(lf_estargz_read_fn rd, void *rd_ctx,
			  const struct lf_idx_chunk *c, void *out,
			  const char *name, struct lf_err *err);

/* The load-time check of a chunk table (cache files may be hostile):
 * back to back from 0 to stream_size, ranges inside blob_size. */
bool lf_estargz_chunks_ok(const struct lf_idx_chunk *c, size_t n,
			  uint64_t stream_size, uint64_t blob_size);

#endif /* LAYERFS_ESTARGZ_H */

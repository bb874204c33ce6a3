/* SPDX-License-Identifier: MIT */
/*
 * index_remote.h - layer indexes shared through the registry: an OCI
 * artifact tied to the image, so that a machine with an empty cache mounts
 * a docker:// image without streaming any blob.
 *
 * The artifact is an OCI image manifest of artifactType
 * LF_REMOTE_INDEX_TYPE whose `subject` is the image's manifest (the one
 * chosen for the platform) and whose config is the empty descriptor.  Per
 * image layer (gzip or uncompressed; zstd layers need a local copy anyway,
 * eStargz layers carry their own TOC, and both are left out) it holds two
 * blobs, each annotated
 * LF_REMOTE_LAYER_KEY = the layer's digest:
 *   LF_REMOTE_INDEX_MEDIA  the layer's index file (cache.h; its version
 *                          in the media type), built with digest
 *                          verification by the pusher;
 *   LF_REMOTE_SPANS_MEDIA  the sha256 of each LF_RBLOB_SPAN of the blob
 *                          (rblob.h's self-checked form).
 * It is found with the OCI 1.1 referrers API, or where the registry has none,
 * in the tag-schema fallback: the image index tagged `sha256-<manifest hex>`
 * that lists the manifest's referrers.  `index push` writes it there too
 * when the registry did not answer the manifest PUT with OCI-Subject.
 *
 * Trust: the chain checked before anything is installed in the cache is
 * artifact manifest (digest) -> subject = this image's manifest digest ->
 * each blob (digest) -> the index names the layer's digest, size and
 * diff_id, is sealed (cache.h checksums, windows included) and was built
 * verified -> the span digests are for that blob size and span size.
 * Reads then check every fetched span against those digests.  An index
 * artifact is as trustworthy as the repository's push rights: with
 * `--no-remote-index` every blob is streamed and verified locally.
 * Anything that does not check is ignored with a warning (the layer is
 * then indexed by streaming, as without an artifact).
 *
 * Thread safety: one call at a time per image.
 */
#ifndef LAYERFS_INDEX_REMOTE_H
#define LAYERFS_INDEX_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layerfs/cache.h"
#include "layerfs/common.h"
#include "layerfs/digest.h"
#include "layerfs/image.h"
#include "layerfs/index.h"

#define LF_REMOTE_INDEX_TYPE "application/vnd.layerfs.index.v1"
#define LF_REMOTE_STR_(x) #x
#define LF_REMOTE_STR(x) LF_REMOTE_STR_(x)
/* the cache format's version is part of the index's media type */
#define LF_REMOTE_INDEX_MEDIA                                                  \
	"application/vnd.layerfs.layer-index.v" LF_REMOTE_STR(LF_CACHE_VERSION)
#define LF_REMOTE_SPANS_MEDIA "application/vnd.layerfs.span-digests.v1"
#define LF_REMOTE_LAYER_KEY "io.layerfs.layer.digest"
/* The largest index or span-digest blob fetched. */
#define LF_REMOTE_BLOB_MAX (1ull << 30)

struct lf_remote_push {
	char digest[LF_DIGEST_LEN];  /* the artifact manifest's */
	uint64_t size;		     /* its bytes */
	size_t layers;		     /* layers whose index it carries */
	size_t skipped;		     /* layers left out (zstd) */
	uint64_t blob_bytes;	     /* index and span-digest bytes */
	bool referrers_api;	     /* the registry took the subject */
	char tag[LF_DIGEST_LEN + 8]; /* else: the fallback tag updated */
};

/*
 * Push the indexes of img's layers (idx[i] is layer i's, all of them
 * loaded or built with verification) as the artifact above; span digests
 * not yet known are computed by streaming the blob once.  img must be a
 * docker:// image.  The artifact is the same bytes for the same image
 * indexes (no time stamps), so a second push changes nothing.
 */
int lf_index_remote_push(const struct lf_image *img,
			 struct lf_index *const *idx,
			 struct lf_remote_push *res, struct lf_err *err);

struct lf_remote_fetch {
	bool looked;		    /* the registry was asked */
	bool found;		    /* an artifact checked and was used */
	char digest[LF_DIGEST_LEN]; /* its manifest digest */
	size_t installed;	    /* layer indexes installed in the cache */
	uint64_t requests, bytes;   /* asked and received for all this */
};

/*
 * For the first n layers of docker:// image img whose index is not in
 * cache_dir: look for the artifact and install the indexes and span
 * digests it carries for them (nothing is asked when every index is
 * there).  Returns 0 also when there is no artifact, or when it does not
 * check (then with a warning logged); -errno only for local failures
 * (memory).  res may be NULL.
 */
int lf_index_remote_fetch(const struct lf_image *img, size_t n,
			  const char *cache_dir, struct lf_remote_fetch *res,
			  struct lf_err *err);

#endif /* LAYERFS_INDEX_REMOTE_H */

/* SPDX-License-Identifier: MIT */
/*
 * commit.h - turn an upper directory (or a whole merged view) into a new
 * layer and write a new image.
 *
 * lf_commit_upper() tars the upper dir as it is (it already is an OCI layer:
 * `.wh.` whiteouts, `.wh..wh..opq` markers; layerfs's temp names
 * `.wh..wh..lftmp.*` are skipped) into a gzip layer: entries sorted by path,
 * parents first, PAX format, uid/gid/mode/mtime/xattrs/symlink targets/
 * device numbers/hardlinks as on disk, no atime/ctime, gzip header without
 * name or time, so the same directory gives byte-identical blobs and digest.
 * `squash` instead writes the merged view (tree + upper, or tree alone) as a
 * single layer.
 *
 * The new image has the base image's first `nlayers` layers (their blobs
 * copied byte for byte, wherever they are: a layout dir or inside an
 * archive), plus the new layer; a new config (rootfs.diff_ids, a history
 * entry with created_by = message, "created" = the newest mtime in the layer
 * so the output stays reproducible), manifest and index.  Output formats: an
 * OCI image layout directory, or a docker-archive tar (manifest.json +
 * blobs/sha256/, Docker 25+ form, plus oci-layout/index.json).  OUT is
 * written next to its final name and renamed into place, never half-written.
 *
 * This module uses the libarchive writer (the only one) and digest.h.
 * Ownership: everything passed is borrowed.  Not thread-safe.
 */
#ifndef LAYERFS_COMMIT_H
#define LAYERFS_COMMIT_H

#include <stdbool.h>
#include <stddef.h>

#include "layerfs/blob.h"
#include "layerfs/common.h"
#include "layerfs/digest.h"
#include "layerfs/image.h"
#include "layerfs/stack.h"
#include "layerfs/tree.h"

enum lf_commit_format {
	LF_COMMIT_OCI = 0,	      /* OCI image layout directory */
	LF_COMMIT_DOCKER_ARCHIVE = 1, /* docker save style tar */
};

struct lf_commit_opts {
	const char *out; /* output path (must not exist) */
	enum lf_commit_format format;
	const char *tag;     /* NAME:TAG for the ref / RepoTags, or NULL */
	const char *message; /* history created_by; NULL: "layerfs commit" */
	bool squash;	     /* one layer with the whole merged view */
	/* the image owner of upper objects without an ownership record
	 * (upper.h: rootless) that the committing user owns, when the
	 * commit does not run as root; 0:0 by default */
	uid_t owner_uid;
	gid_t owner_gid;
};

struct lf_commit_result {
	char layer_digest[LF_DIGEST_LEN]; /* the new (or squashed) layer */
	char diff_id[LF_DIGEST_LEN];
	char manifest_digest[LF_DIGEST_LEN];
	uint64_t layer_size; /* compressed bytes */
	size_t nlayers;	     /* layers in the new image */
};

/*
 * Commit.  stack: the base image and the prefix of its layers to keep (the
 * --layers prefix), with its merged tree for a squash (borrowed);
 * upper_dir: the upper directory or NULL (squash only).  Errors name the
 * file and the cause.
 */
int lf_commit(const struct lf_stack *stack, const char *upper_dir,
	      const struct lf_commit_opts *opts, struct lf_commit_result *res,
	      struct lf_err *err);

#endif /* LAYERFS_COMMIT_H */

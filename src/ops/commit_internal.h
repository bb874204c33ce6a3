/* SPDX-License-Identifier: MIT */
/*
 * commit_internal.h - shared by commit.c (the image), commit_tar.c (the
 * layer) and commit_image.c (the JSON documents).  Not a public contract:
 * include/layerfs/commit.h is.
 */
#ifndef LAYERFS_COMMIT_INTERNAL_H
#define LAYERFS_COMMIT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layerfs/blob.h"
#include "layerfs/buf.h"
#include "layerfs/common.h"
#include "layerfs/digest.h"
#include "layerfs/tree.h"

#define COMMIT_MT_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define COMMIT_MT_CONFIG "application/vnd.oci.image.config.v1+json"
#define COMMIT_MT_INDEX "application/vnd.oci.image.index.v1+json"
#define COMMIT_MT_LAYER "application/vnd.oci.image.layer.v1.tar"
#define COMMIT_MT_LAYER_GZIP COMMIT_MT_LAYER "+gzip"
#define COMMIT_MT_LAYER_ZSTD COMMIT_MT_LAYER "+zstd"

/* What the new layer is made of: the upper dir as it is, or a merged view
 * (an lf_mview with or without the upper dir), see commit_tar.c. */
enum commit_src_kind {
	COMMIT_SRC_DIR,	  /* the upper dir as it is (whiteouts) */
	COMMIT_SRC_UPPER, /* merged view: tree + upper dir (squash) */
	COMMIT_SRC_TREE,  /* merged view: tree alone (squash) */
};

struct commit_src {
	enum commit_src_kind kind;
	const char *upper_dir;	      /* DIR and UPPER */
	const struct lf_stack *stack; /* UPPER and TREE (borrowed) */
	struct lf_tree *tree;	      /* the stack's, UPPER and TREE */
	uid_t owner_uid; /* the image owner of what the committing user */
	gid_t owner_gid; /* owns without a record (when not root) */
};

/* The layer blob written by lf_commit_write_layer(). */
struct commit_layer {
	char digest[LF_DIGEST_LEN];  /* sha256 of the gzip bytes */
	char diff_id[LF_DIGEST_LEN]; /* sha256 of the tar stream */
	uint64_t size;		     /* gzip bytes */
	int64_t newest_mtime;	     /* 0 for an empty layer */
	uint64_t entries;
};

/*
 * Write the layer of `src` as gzip'd PAX tar to the open, empty file `fd`
 * (not closed).  `fdname` names that file in messages.  Entries are sorted
 * component by component in byte order (so parents come first), and carry
 * nothing the host adds on its own (no atime/ctime, no user names, no
 * gzip name or time), so the same input gives the same bytes.
 */
int lf_commit_write_layer(const struct commit_src *src, int fd,
			  const char *fdname, struct commit_layer *out,
			  struct lf_err *err);

/*
 * Write the directory `dirfd` (an OCI layout being built) as a plain tar
 * to `fd`: the listed names, in this order, each a file or a directory
 * below dirfd (no recursion: list "blobs/", "blobs/sha256/", ... yourself).
 * Every member gets owner 0:0, mode 0644/0755 and mtime `mtime`.
 */
int lf_commit_write_dir_tar(int dirfd, const char *const *names, size_t n,
			    int64_t mtime, int fd, const char *fdname,
			    struct lf_err *err);

/* A descriptor of the new manifest (config, layers). */
struct commit_desc {
	const char *media_type; /* borrowed */
	char digest[LF_DIGEST_LEN];
	uint64_t size;
};

/* Parameters of the new config (commit_image.c). */
struct commit_config {
	const char *base; /* base config JSON (borrowed) */
	size_t base_len;
	const char *const *diff_ids; /* [ndiff]: kept layers, then new */
	size_t ndiff;
	size_t nkept;	     /* layers kept from the base */
	bool all_kept;	     /* nkept is every base layer */
	const char *message; /* created_by */
	const char *created; /* RFC 3339 */
};

/* The JSON documents, compact with sorted keys (deterministic bytes). */
int lf_commit_json_config(const struct commit_config *c, struct lf_buf *out,
			  struct lf_err *err);
int lf_commit_json_manifest(const struct commit_desc *config,
			    const struct commit_desc *layers, size_t n,
			    struct lf_buf *out, struct lf_err *err);
/* ref: the org.opencontainers.image.ref.name value or NULL; name: the
 * full NAME:TAG for io.containerd.image.name (docker-archive) or NULL. */
int lf_commit_json_index(const struct commit_desc *manifest, const char *ref,
			 const char *name, struct lf_buf *out,
			 struct lf_err *err);
/* docker's manifest.json; tag NULL gives "RepoTags": []. */
int lf_commit_json_docker(const char *config_digest,
			  const struct commit_desc *layers, size_t n,
			  const char *tag, struct lf_buf *out,
			  struct lf_err *err);
int lf_commit_json_layout(struct lf_buf *out, struct lf_err *err);

#endif /* LAYERFS_COMMIT_INTERNAL_H */

/* SPDX-License-Identifier: MIT */
/*
 * stack.h - the layer stack every front end reads: an image's layer prefix
 * plus lower images and directories, indexed and merged.
 *
 * lf_stack_open() opens the image and the lowers (bottom first: the image's
 * prefix, then the lowers from the last one to the first, like overlayfs'
 * lowerdir=), installs the indexes a docker:// image's registry shares for
 * layers not in the cache (index_remote.h), indexes every layer on all cores (reporting bytes read through
 * opts->progress), and, if asked, builds or maps the merged tree.  Layer
 * blobs (blob.h) are opened on first use by lf_stack_blob() and share the
 * stack's chunk cache.
 *
 * Ownership: the stack owns its images, indexes, tree, blobs and chunk
 * cache; what the accessors return is borrowed and lives until
 * lf_stack_close().  opts and its strings are only read during open.
 * Thread safety: after open, every accessor may run on many threads at once
 * (lf_stack_blob() opens each blob once under a lock); close runs alone.
 */
#ifndef LAYERFS_STACK_H
#define LAYERFS_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layerfs/blob.h"
#include "layerfs/common.h"
#include "layerfs/image.h"
#include "layerfs/index.h"
#include "layerfs/tree.h"

struct lf_stack;

struct lf_stack_opts {
	const char *ref;	   /* image in a multi-image archive, or NULL */
	const char *platform;	   /* OS/ARCH[/VARIANT] in an index or NULL */
	const char *cache_dir;	   /* resolved index cache dir, NULL: none */
	bool verify;		   /* check layer digests and diff_ids */
	bool no_tls_verify;	   /* docker://: no TLS checks, plain HTTP ok */
	uint64_t cache_max;	   /* docker://: span cache cap, 0 default */
	const char *creds;	   /* docker://: "USER[:PASS]" or NULL */
	const char *cert_dir;	   /* docker://: certificates, or NULL */
	bool no_remote_index;	   /* docker://: do not look for an index
			       * artifact (index_remote.h) */
	long layers;		   /* prefix of IMAGE: N > 0 first N layers,
				 * N < 0 all but the top -N, 0 all */
	const char *const *lowers; /* more layers above IMAGE, top first:
					 * an image or a plain directory each */
	size_t nlowers;
	bool want_tree; /* build or map the merged tree */
	/* indexing progress, serialized, from the indexing threads: bytes
	 * read so far of total, over `layers` layers */
	void (*progress)(void *ctx, size_t layers, uint64_t done,
			 uint64_t total);
	void *progress_ctx;
};

/*
 * Open the stack of IMAGE (path; NULL: the lowers only).  Returns 0, or
 * -ERANGE when opts->layers does not fit the image (err: "--layers N: ..."),
 * or another -errno; err's message names the image.
 */
int lf_stack_open(const char *path, const struct lf_stack_opts *opts,
		  struct lf_stack **out, struct lf_err *err);
void lf_stack_close(struct lf_stack *s);

/* How messages name the stack: IMAGE, or "lowerdir". */
const char *lf_stack_name(const struct lf_stack *s);
/* The IMAGE argument's image, or NULL. */
const struct lf_image *lf_stack_image(const struct lf_stack *s);
/* The index cache directory in use, or NULL. */
const char *lf_stack_cache_dir(const struct lf_stack *s);
/* Layers in the stack, bottom first. */
size_t lf_stack_count(const struct lf_stack *s);
/* Layer i's index; all of them as an array of lf_stack_count(). */
struct lf_index *lf_stack_index(const struct lf_stack *s, size_t i);
struct lf_index *const *lf_stack_indexes(const struct lf_stack *s);
/* Layer i's image layer, or NULL for a directory layer. */
const struct lf_image_layer *lf_stack_layer(const struct lf_stack *s, size_t i);
/* The merged tree (NULL unless opts->want_tree). */
struct lf_tree *lf_stack_tree(const struct lf_stack *s);
/* The merged tree of layers 0..n-1, owned by the caller (lf_tree_free). */
int lf_stack_tree_prefix(const struct lf_stack *s, size_t n,
			 struct lf_tree **out, struct lf_err *err);
/* Layer i's blob, opened on first use; NULL with err set on failure. */
struct lf_blob *lf_stack_blob(const struct lf_stack *s, size_t i,
			      struct lf_err *err);
/* lf_blob_read_file() on layer i's blob (opened on first use). */
ssize_t lf_stack_read_file(const struct lf_stack *s, size_t i,
			   const struct lf_idx_entry *e, void *buf, size_t len,
			   uint64_t off, struct lf_err *err);

#endif /* LAYERFS_STACK_H */

/* SPDX-License-Identifier: MIT */
/*
 * image.h - detect and open a container image, list its layers.
 *
 * IMAGE is a path, auto-detected (design.md section 1):
 *   - a directory with `oci-layout` and `index.json` (OCI image layout);
 *   - a tar holding such a layout (OCI archive), or holding
 *     `manifest.json` (docker-archive: legacy `<id>/layer.tar` members or the
 *     `blobs/sha256/<hex>` form of Docker 25+ and skopeo), or only
 *     `repositories` (the pre-Docker-1.10 save: the layers are the `parent`
 *     chain of the tagged `<id>/json`);  a tar that is gzip'd as a whole is
 *     read through its gzip (vfile_gzip.h), detected by magic.
 * IMAGE may also be written with a transport (imgref.h): oci:, oci-archive:
 * and docker-archive: pick the format (another one found is an error) and
 * the image (REF as opts->ref, @N as opts->index); a docker:// name is read
 * from its registry as if it were an OCI layout (image_registry.c over
 * registry.h): manifests fetched, layer blobs as vfiles of range reads.
 * A containers-storage: image is read from the local store's metadata, its
 * layers being the store's layer directories (image_cstore.h).
 * A manifest that describes an OCI artifact (artifactType, or a config that
 * is not an image config) fails: "not a container image (artifact type X)".
 * Several images in one layout/archive are chosen with opts->ref; an image
 * index is resolved to opts->platform (default: the host, linux/amd64 here).
 * Blobs inside an outer tar are exposed as byte ranges of the archive file
 * (read in place, never extracted); archive members that are symlinks or
 * hardlinks to other members are followed.
 *
 * Nothing outside the image is read: layout files are opened beneath the
 * layout directory (no symlink out, no FIFO or device, never blocking) and
 * archive member links resolve among members.
 *
 * This module parses JSON (it is the only jansson user besides cli_output.c)
 * and validates structure and the digest chain: every index, manifest and
 * config read must match its descriptor's size and digest; JSON sizes and
 * counts are bounded (image_internal.h).  It does not read layer contents
 * and does not verify layer digests (index.c does, while it reads each blob
 * once); it checks a layer's size against its descriptor.
 *
 * Ownership: everything reachable from a struct lf_image is owned by it and
 * valid until lf_image_close().  Thread safety: read-only after open; the
 * layer vfiles may be pread from many threads.
 */
#ifndef LAYERFS_IMAGE_H
#define LAYERFS_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layerfs/common.h"
#include "layerfs/digest.h"
#include "layerfs/vfile.h"

struct lf_image;
struct lf_registry;

struct lf_image_opts {
	const char *ref; /* NAME:TAG or ref annotation, NULL = the only one */
	const char *platform;  /* "os/arch[/variant]", NULL = host platform */
	const char *cache_dir; /* for a gzip'd archive's checkpoints, or NULL */
	bool by_index;	       /* choose the index-th image instead of by ref */
	size_t index;	       /* (index.json manifests / manifest.json) */
	bool no_tls_verify;   /* docker://: no TLS checks, plain HTTP allowed */
	uint64_t cache_max;   /* docker://: span cache cap (lf_rblob_opts) */
	const char *creds;    /* docker://: "USER[:PASS]", NULL: auth files */
	const char *cert_dir; /* docker://: CA and client certificates */
};

struct lf_image_layer {
	/* "sha256:<hex>" the blob must hash to, or "" when the image does not
	 * say (legacy docker-archive `<id>/layer.tar`). */
	char digest[LF_DIGEST_LEN];
	/* "sha256:<hex>" of the uncompressed tar (config rootfs.diff_ids). */
	char diff_id[LF_DIGEST_LEN];
	/* As written in the OCI manifest; "" for docker-archive (its
	 * LayerSources describe the registry's blob, not the archive's file).
	 * Compression is detected from magic bytes, not this. */
	const char *media_type;
	/* Size the manifest declares, or the blob's size when it declares none. */
	uint64_t size;
	/* The blob's bytes (a file, or a range of the archive file). */
	struct lf_vfile *blob;
	/* How messages name the blob, e.g. "blobs/sha256/ab12...". */
	const char *source;
	/* `created_by` of the matching non-empty history entry, or NULL. */
	const char *created_by;
	/* `created` of that history entry (RFC 3339), or NULL. */
	const char *created;
	/* `comment` of that history entry, or NULL. */
	const char *comment;
	/* containers-storage: the store's extracted layer, a directory read
	 * as a directory layer (index.h), and then blob is NULL and digest
	 * is the diff_id (the layer as an uncompressed tar).  dir_full: the directory is the whole root file system as of
	 * this layer (the vfs driver), not the layer's own changes. */
	const char *dir;
	bool dir_full;
	/* The manifest's eStargz TOC digest for the layer
	 * (LF_ESTARGZ_TOC_ANNOTATION), "" when it gives none: the layer is
	 * then indexed from its TOC (estargz.h) instead of streamed. */
	char toc_digest[LF_DIGEST_LEN];
};

/*
 * Open the image at `path`.  On success *out owns everything and must be
 * closed with lf_image_close().  Errors (-ENOENT, -EINVAL, -EIO, -ENOMEM...)
 * come with a message naming the file and the cause, e.g.
 *   "'img.tar': manifest.json: invalid JSON at line 3: ...",
 *   "'img': 2 images, choose one with --ref: a:1, b:2",
 *   "'img': layer 2 (sha256:ab..): blob blobs/sha256/ab.. is missing",
 *   "'img': layer 1: unsupported media type 'application/x-foo'",
 *   "'img': blobs/sha256/ab.. does not match its digest: ...",
 *   "'img': blobs/sha256/ab.. is a symbolic link leading outside the image".
 */
int lf_image_open(const char *path, const struct lf_image_opts *opts,
		  struct lf_image **out, struct lf_err *err);

size_t lf_image_layer_count(const struct lf_image *img);
/* Layer i, 0 = bottom.  i must be < lf_image_layer_count(). */
const struct lf_image_layer *lf_image_layer(const struct lf_image *img,
					    size_t i);

/* "oci-layout", "oci-archive" or "docker-archive". */
const char *lf_image_format(const struct lf_image *img);
/* The path given to lf_image_open(). */
const char *lf_image_path(const struct lf_image *img);
/* Digest of the selected manifest ("" for docker-archive). */
const char *lf_image_manifest_digest(const struct lf_image *img);
/* The selected manifest's media type (NULL for docker-archive) and its
 * size in bytes: with its digest, the descriptor an artifact's `subject`
 * names. */
const char *lf_image_manifest_type(const struct lf_image *img, uint64_t *size);
/* The registry a docker:// image is read from (borrowed: valid until
 * lf_image_close()), or NULL for other transports. */
struct lf_registry *lf_image_registry(const struct lf_image *img);
/* Config blob digest, and its raw JSON bytes (NUL-terminated). */
const char *lf_image_config_digest(const struct lf_image *img);
const char *lf_image_config_json(const struct lf_image *img, size_t *len);
/* The selected reference name (tag) or NULL when the image has none. */
const char *lf_image_ref(const struct lf_image *img);

void lf_image_close(struct lf_image *img);

#endif /* LAYERFS_IMAGE_H */

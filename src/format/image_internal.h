/* SPDX-License-Identifier: MIT */
/*
 * image_internal.h - shared between the image_*.c files only.
 *
 * image.c detects the format and assembles the struct lf_image; the "store"
 * (image_layout.c for a directory, image_archive.c for an outer tar) turns a
 * relative name such as "blobs/sha256/<hex>" into a vfile; image_manifest.c
 * is the only jansson user and turns JSON into the plain structs below;
 * image_platform.c picks one descriptor by --ref and by platform.
 *
 * Every struct here owns its strings (free with the matching _release).
 */
#ifndef LAYERFS_IMAGE_INTERNAL_H
#define LAYERFS_IMAGE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layerfs/buf.h"
#include "layerfs/common.h"
#include "layerfs/digest.h"
#include "layerfs/image.h"
#include "layerfs/vfile.h"

/*
 * Limits on what an image's JSON may make us hold in memory (each is an
 * error naming the file and the limit, never a truncation).  Sizes: index,
 * manifest and docker manifest.json at most LF_IMAGE_JSON_MAX, as
 * registries and containers/image allow for manifests; a config at most
 * LF_IMAGE_CONFIG_MAX (4 times containers/image's limit: long histories).
 * jansson needs up to ~100 bytes per value however small its text ("{}"),
 * so a document may also hold at most LF_IMAGE_JSON_VALUES values, counted
 * on the text before parsing.  Counts: manifests in an index, layers in an
 * image and history entries in a config, each at most the limit below.
 */
#define LF_IMAGE_JSON_MAX (4u << 20)
#define LF_IMAGE_CONFIG_MAX (16u << 20)
#define LF_IMAGE_JSON_VALUES (1u << 20)
#define LF_IMAGE_MAX_MANIFESTS 65536
#define LF_IMAGE_MAX_LAYERS 4096
#define LF_IMAGE_MAX_HISTORY 65536
/* Nested image indexes followed at most this deep. */
#define LF_IMAGE_INDEX_DEPTH 4

struct lf_image_member;
struct lf_image_remote;

/* Where the image's files live: a directory or the members of a tar. */
struct lf_image_store {
	const char *label;		 /* borrowed: the image path */
	char *dir;			 /* owned: layout directory, or NULL */
	int dirfd;			 /* owned: open on dir (when dir) */
	struct lf_vfile *archive;	 /* owned: outer tar, or NULL */
	struct lf_image_member *members; /* owned, sorted by name */
	size_t nmembers;
	struct lf_buf names;		/* string table for members */
	struct lf_image_remote *remote; /* owned: a registry, or NULL */
};

struct lf_image_desc {
	char *media_type;	    /* "" when absent */
	char digest[LF_DIGEST_LEN]; /* validated */
	uint64_t size;
	bool has_size;
	char *os, *arch, *variant; /* platform, NULL when absent */
	char *ref_name;		   /* org.opencontainers.image.ref.name */
	char *ctr_name;		   /* io.containerd.image.name */
	char *artifact_type;	   /* artifactType, NULL when absent */
	/* eStargz TOC digest annotation of a layer, "" when absent/invalid */
	char toc_digest[LF_DIGEST_LEN];
};

struct lf_image_manifest {
	char *media_type;
	struct lf_image_desc config;
	struct lf_image_desc *layers;
	size_t nlayers;
};

struct lf_image_history {
	char *created_by, *created, *comment;
};

struct lf_image_config {
	char **diff_ids; /* validated digests */
	size_t ndiff_ids;
	/* non-empty_layer history entries, in order */
	struct lf_image_history *hist;
	size_t nhist;
};

/* One element of a docker-archive manifest.json. */
struct lf_image_docker {
	char *config;
	char **tags;
	size_t ntags;
	char **layers;
	size_t nlayers;
	/* LayerSources, keyed by diff_id */
	struct lf_image_desc *sources;
	char **source_keys;
	size_t nsources;
};

struct lf_image {
	char *path;
	const char *format;
	const char *want_format; /* a transport's, or NULL */
	char manifest_digest[LF_DIGEST_LEN];
	char *manifest_media_type; /* of the selected manifest, or NULL */
	uint64_t manifest_size;	   /* its bytes */
	char config_digest[LF_DIGEST_LEN];
	char *config_json;
	size_t config_len;
	char *ref;
	struct lf_image_layer *layers;
	size_t nlayers;
	struct lf_image_store store;
	struct lf_image_config config;
	struct lf_image_manifest manifest;
};

/* image_layout.c / image_archive.c: the store */
int lf_image_store_open_dir(struct lf_image_store *st, const char *dir,
			    struct lf_err *err);
/* Takes ownership of `archive` on success. */
int lf_image_store_open_archive(struct lf_image_store *st,
				struct lf_vfile *archive, struct lf_err *err);
void lf_image_store_release(struct lf_image_store *st);
/* Does `name` exist as a regular file (after links)? */
bool lf_image_store_has(const struct lf_image_store *st, const char *name);
/* A vfile for `name`; -ENOENT (with message) when it is missing. */
int lf_image_store_blob(const struct lf_image_store *st, const char *name,
			struct lf_vfile **out, struct lf_err *err);
/* Read a whole small file (at most LF_IMAGE_JSON_MAX), NUL-terminated;
 * -EFBIG (with message) when it is bigger. */
int lf_image_store_read(const struct lf_image_store *st, const char *name,
			char **data, size_t *len, struct lf_err *err);
/* The same with another limit (bytes). */
int lf_image_store_read_max(const struct lf_image_store *st, const char *name,
			    size_t max, char **data, size_t *len,
			    struct lf_err *err);

/*
 * image_registry.c: a registry repository seen as an OCI layout: a made-up
 * `oci-layout` and `index.json` whose one descriptor is the manifest `ref`
 * names (fetched, its digest computed and, for a digest ref, checked), and
 * `blobs/sha256/<hex>`: that manifest, other manifests (fetched from
 * /manifests/ when the registry has no such blob), configs, and layer
 * blobs read by HTTP range.
 */
int lf_image_store_open_registry(struct lf_image_store *st, const char *host,
				 const char *repo, const char *ref,
				 const struct lf_image_opts *o,
				 struct lf_err *err);
bool lf_image_remote_has(const struct lf_image_store *st, const char *name);
int lf_image_remote_blob(const struct lf_image_store *st, const char *name,
			 struct lf_vfile **out, struct lf_err *err);
/* A layer blob of `size` bytes (its descriptor's): no request made. */
int lf_image_remote_layer(const struct lf_image_store *st, const char *name,
			  uint64_t size, struct lf_vfile **out,
			  struct lf_err *err);
void lf_image_remote_release(struct lf_image_store *st);
/* The registry the store reads (borrowed), or NULL for other stores. */
struct lf_registry *lf_image_remote_registry(const struct lf_image_store *st);

/*
 * Open `rel` under dirfd without ever leaving it: symlinks are followed
 * only while they stay beneath dirfd, magic links (/proc) never; flags
 * O_RDONLY|O_NONBLOCK|O_NOCTTY|O_CLOEXEC.  openat2(RESOLVE_BENEATH) when
 * the kernel has it, else (or when `walk`, for tests) a component-wise
 * lstat/readlink walk then an O_NOFOLLOW open of each component.  Returns
 * an fd, or -errno: -EXDEV for a way out, -ELOOP for a loop or magic link.
 */
int lf_image_open_beneath(int dirfd, const char *rel, bool walk);

/* image_archive.c: resolve a member name (links followed) to its range.
 * Returns 0, -ENOENT, -ELOOP, or -EINVAL for a name that escapes. */
int lf_image_archive_find(const struct lf_image_store *st, const char *name,
			  uint64_t *off, uint64_t *size);

/* image_manifest.c: JSON -> structs.  `what` names the file in messages. */
int lf_image_parse_index(const char *json, size_t len, const char *what,
			 struct lf_image_desc **out, size_t *n,
			 struct lf_err *err);
int lf_image_parse_manifest(const char *json, size_t len, const char *what,
			    struct lf_image_manifest *out, struct lf_err *err);
int lf_image_parse_config(const char *json, size_t len, const char *what,
			  struct lf_image_config *out, struct lf_err *err);
int lf_image_parse_docker(const char *json, size_t len, const char *what,
			  struct lf_image_docker **out, size_t *n,
			  struct lf_err *err);
/* Media type of a JSON document ("" when it has none), for index vs
 * manifest dispatch; *out is owned by the caller. */
int lf_image_parse_media_type(const char *json, size_t len, const char *what,
			      char **out, struct lf_err *err);
void lf_image_desc_release(struct lf_image_desc *d);
void lf_image_descs_free(struct lf_image_desc *v, size_t n);
void lf_image_manifest_release(struct lf_image_manifest *m);
void lf_image_config_release(struct lf_image_config *c);
void lf_image_dockers_free(struct lf_image_docker *v, size_t n);

/* image_legacy.c: a pre-Docker-1.10 save (`repositories`, no manifest.json);
 * fills layers, config and ref of img, whose store is open. */
int lf_image_legacy_open(struct lf_image *img, const struct lf_image_opts *opts,
			 struct lf_err *err);

/* image_artifact.c: an OCI artifact is not an image.  -EINVAL with
 * "'<label>': not a container image (artifact type X)" when the manifest
 * `json` has an artifactType or a config that is not an image config. */
int lf_image_check_artifact(const char *json, size_t len,
			    const struct lf_image_manifest *m,
			    const char *label, struct lf_err *err);
/* Drop the descriptors that name an artifact (artifactType set) from an
 * index when at least one image remains. */
void lf_image_drop_artifacts(struct lf_image_desc *v, size_t *n);

/* image_platform.c: selection */
bool lf_image_ref_match(const char *name, const char *ref, bool exact);
bool lf_image_is_index_type(const char *media_type);
/* Host default ("linux/amd64"...) into buf (>= 64 bytes). */
void lf_image_host_platform(char *buf, size_t len);
/*
 * Pick one of v[0..n) for `platform` (NULL = host).  Returns the index, or
 * a negative errno with a message listing the platforms there are.
 */
int lf_image_pick_platform(const struct lf_image_desc *v, size_t n,
			   const char *platform, const char *label,
			   struct lf_err *err);
/*
 * Choose one image among n candidates (index.json descriptors, or
 * docker-archive tags).  names[i] is the candidate's reference or NULL;
 * keys[i] identifies the image (equal keys are the same image, e.g. two tags
 * of one manifest); descs, when not NULL, gives platforms so that several
 * same-named manifests (an index written flat) can be resolved by platform.
 * Returns the chosen index, or a negative errno with a message: unknown ref
 * ("no image 'x' in ..., choose one with --ref: a, b") or an ambiguous choice
 * ("N images, choose one with --ref: a, b").
 */
int lf_image_pick(const char *const *names, const char *const *keys,
		  const struct lf_image_desc *descs, size_t n,
		  const struct lf_image_opts *opts, const char *label,
		  struct lf_err *err);

#endif /* LAYERFS_IMAGE_INTERNAL_H */

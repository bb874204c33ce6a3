/* SPDX-License-Identifier: MIT */
/*
 * imgref.h - an IMAGE argument as skopeo and podman write it
 * (containers-transports(5)):
 *
 *   PATH                          a layout dir or an archive, auto-detected
 *   oci:DIR[:REF|:@N]             an OCI image layout
 *   oci-archive:FILE[:REF|:@N]    a tar of one
 *   docker-archive:FILE[:REF|:@N] a `docker save` tar (REF: NAME[:TAG] of
 *                                 its RepoTags; @N: its N-th image, from 0)
 *   docker://[HOST[:PORT]/]REPO[:TAG][@sha256:HEX]   a registry image
 *   containers-storage:[[DRIVER@][GRAPHROOT][+RUNROOT][:OPTIONS]]IMAGE
 *                                 an image of podman's/buildah's local store
 *
 * The transport name ends at the first ':', and so does the path after it
 * (as containers/image splits them).  An argument that names an existing
 * file or directory is a PATH whatever it looks like, and so is one whose
 * prefix is not a transport name; a known transport this build cannot
 * read (dir:, docker-daemon:...) is an error that names it.  docker:// names follow the distribution reference grammar
 * with Docker's defaults: no host means docker.io, a one-component
 * repository there gets `library/`, no tag and no digest means `latest`.
 *
 * containers-storage: splits its bracketed STORE-SPEC as containers/image's
 * storage transport does: DRIVER before the first '@', OPTIONS after the
 * first ':', RUNROOT after the first '+' of what is left, the rest the
 * GRAPHROOT; each part may be absent (then it comes from storage.conf, see
 * image_cstore.c), GRAPHROOT and RUNROOT must be absolute, "[]" and "[@x]"
 * are errors.  IMAGE is kept as written (non-empty); which image it names
 * (NAME[:TAG], NAME@DIGEST, a full or short ID, @ID) is decided against the
 * store's images when it is opened.
 *
 * Ownership: the strings of a struct lf_imgref are its own, freed by
 * lf_imgref_release().
 */
#ifndef LAYERFS_IMGREF_H
#define LAYERFS_IMGREF_H

#include <stdbool.h>
#include <stddef.h>

#include "layerfs/common.h"

enum lf_imgref_kind {
	LF_IMGREF_PATH = 0,
	LF_IMGREF_OCI,
	LF_IMGREF_OCI_ARCHIVE,
	LF_IMGREF_DOCKER_ARCHIVE,
	LF_IMGREF_DOCKER,
	LF_IMGREF_CSTORE, /* containers-storage: */
};

struct lf_imgref {
	enum lf_imgref_kind kind;
	char *path;    /* PATH and the file transports */
	char *ref;     /* file transports: the REF part, or NULL */
	bool by_index; /* file transports: @N was given */
	size_t index;  /* N */
	char *host;    /* docker: "registry-1.example:5000", "docker.io" */
	char *repo;    /* docker: "library/busybox" */
	char *tag;     /* docker: the tag, or NULL with a digest */
	char *digest;  /* docker: "sha256:<hex>", or NULL */
	/* containers-storage: the STORE-SPEC parts (NULL: not given) and
	 * IMAGE as written */
	char *driver, *graphroot, *runroot, *options, *image;
};

/* Parse `arg`: 0, or -EINVAL with err naming the argument and the fault,
 * or -EPROTONOSUPPORT for a transport this build does not read. */
int lf_imgref_parse(const char *arg, struct lf_imgref *r, struct lf_err *err);
void lf_imgref_release(struct lf_imgref *r);

/* The transport's name as written ("oci", "docker"...; "" for a path). */
const char *lf_imgref_transport(const struct lf_imgref *r);

#endif /* LAYERFS_IMGREF_H */

/* SPDX-License-Identifier: MIT */
/*
 * image_cstore.h - containers-storage (podman's, buildah's local store) as
 * an image source; shared between image.c and the image_cstore*.c files.
 *
 * Where the store is (image_cstore_conf.c): the STORE-SPEC parts that were
 * given, the rest from storage.conf as containers/storage finds it:
 * $CONTAINERS_STORAGE_CONF alone when set; else /etc/containers/ then
 * /usr/share/containers/storage.conf, and for a non-root user
 * $XDG_CONFIG_HOME (or ~/.config)/containers/storage.conf over it (root's
 * graphroot and runroot are not a rootless user's).  Only the [storage]
 * table's string keys driver, graphroot, runroot, rootless_storage_path are
 * read; the rest of the file must still be TOML enough to be skipped
 * (errors say FILE:LINE).  Defaults: root /var/lib/containers/storage and
 * /run/containers/storage; rootless rootless_storage_path ($HOME, $UID,
 * $USER expanded) or $XDG_DATA_HOME (~/.local/share)/containers/storage
 * and $XDG_RUNTIME_DIR/containers.  No driver anywhere: the one of overlay
 * and vfs whose `<driver>-images/images.json` exists.
 *
 * The store (image_cstore.c) is read, never written, without its locks
 * (nothing podman does while we read can make us read outside it) and
 * without following a symbolic link below the graphroot (images.json,
 * layers.json, the config and the layer directories are opened component
 * by component with O_NOFOLLOW).  Each layer becomes an lf_image_layer
 * with no blob and `dir` set: overlay keeps the layer's own changes in
 * `overlay/<id>/diff` (kernel whiteouts: 0/0 char devices, opaque xattrs);
 * vfs keeps in `vfs/dir/<id>` the whole root file system as of that layer,
 * so its layers are `dir_full` (see image.h).
 */
#ifndef LAYERFS_IMAGE_CSTORE_H
#define LAYERFS_IMAGE_CSTORE_H

#include <stddef.h>

#include "image_internal.h"
#include "layerfs/imgref.h"

struct lf_cstore_conf {
	char *driver, *graphroot, *runroot, *rootless_storage_path;
};

/* Parse a storage.conf's text (`file` names it in messages). */
int lf_cstore_conf_parse(const char *text, size_t len, const char *file,
			 struct lf_cstore_conf *c, struct lf_err *err);
void lf_cstore_conf_release(struct lf_cstore_conf *c);
/* The store to read: the given parts (NULL: not given) over the
 * configuration; out->driver may stay NULL (to be detected). */
int lf_cstore_locate(const char *driver, const char *graphroot,
		     const char *runroot, struct lf_cstore_conf *out,
		     struct lf_err *err);

/* Open image r->image of the store r names into img (layers, config). */
int lf_image_cstore_open(struct lf_image *img, const struct lf_imgref *r,
			 struct lf_err *err);

#endif /* LAYERFS_IMAGE_CSTORE_H */

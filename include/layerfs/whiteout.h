/* SPDX-License-Identifier: MIT */
/*
 * whiteout.h - the reserved names of layers and upper dirs, spelled once.
 *
 * A layer deletes NAME with a member `.wh.NAME` and hides everything
 * below a directory with `.wh..wh..opq` in it (the OCI image spec's
 * whiteouts); every other `.wh..wh.` name is reserved (AUFS metadata) and
 * never shown.  Extracted layers mark an opaque directory with the
 * overlayfs xattrs instead.  layerfs's own temporary files in an upper dir
 * use a reserved name, so no listing and no commit ever shows one; files
 * stored atomically elsewhere (the cache, an output image) are written to
 * a temp name beside their final path and renamed into place.
 * Header only: every level may use it.
 */
#ifndef LAYERFS_WHITEOUT_H
#define LAYERFS_WHITEOUT_H

#include <stdbool.h>
#include <string.h>

#define LF_WH_PREFIX ".wh."
#define LF_WH_PREFIX_LEN 4
/* the opaque marker, and the prefix every AUFS-reserved name shares */
#define LF_WH_OPQ_NAME ".wh..opq" /* what the marker "whites out" */
#define LF_WH_OPAQUE LF_WH_PREFIX LF_WH_OPQ_NAME
#define LF_WH_META ".wh..wh."
/* layerfs's temporary files inside an upper dir (never shown) */
#define LF_UPPER_TMP_PREFIX LF_WH_META "lftmp."
/* mkostemp() suffix of a file stored with temp file + rename */
#define LF_TMP_SUFFIX ".tmp.XXXXXX"
/* overlayfs's opaque directory markers (value "y") */
#define LF_XATTR_OPAQUE_TRUSTED "trusted.overlay.opaque"
#define LF_XATTR_OPAQUE_USER "user.overlay.opaque"

/* `base` (one name component) is a whiteout or a reserved `.wh.` name. */
static inline bool lf_is_whiteout_name(const char *base)
{
	return !strncmp(base, LF_WH_PREFIX, LF_WH_PREFIX_LEN);
}

/* `base` is the opaque marker. */
static inline bool lf_is_opaque_marker(const char *base)
{
	return !strcmp(base, LF_WH_OPAQUE);
}

/* `base` is one of layerfs's temporary files in an upper dir. */
static inline bool lf_is_upper_tmp(const char *base)
{
	return !strncmp(base, LF_UPPER_TMP_PREFIX,
			sizeof(LF_UPPER_TMP_PREFIX) - 1);
}

#endif /* LAYERFS_WHITEOUT_H */

/* SPDX-License-Identifier: MIT */
/*
 * pathlog.h - a path's history across an image's layers (`layerfs log`).
 *
 * For PATH (and, recursively, everything below it), every layer K that
 * changes what the merged view of layers 1..K shows there, compared with
 * layers 1..K-1:
 *   added     the path appears (the root never: it is always there; a
 *             directory only implied by paths below it says so in
 *             `cause`);
 *   changed   layer K supplies a new entry for a visible path; `changes`
 *             says what differs (type, mode, owner, content, symlink
 *             target, mtime, device) — none when the layer ships the same
 *             thing again (still an event: its bytes ship again);
 *   deleted   the path disappears; `cause` says how: a whiteout of it or
 *             of a parent, an opaque parent directory, a parent replaced by
 *             something that is not a directory.
 * Directories count only when a layer supplies their own entry (not when
 * only something below them changes).  Content is compared by sha256 of
 * the bytes, read from the blobs, when the sizes agree.  Each added or
 * changed regular file with data says whether its bytes still ship in the
 * image while the final view does not show them (`ships_hidden`).
 *
 * The views are the trees of each prefix (lf_stack_tree_prefix(), cached
 * like any tree), so the rules are exactly the mount's.  PATH is resolved
 * in each view without following a final symlink; events name paths as
 * PATH plus the names below it.
 *
 * Ownership: the result owns its strings (lf_pathlog_free()); the stack is
 * borrowed.  Not thread-safe.
 */
#ifndef LAYERFS_PATHLOG_H
#define LAYERFS_PATHLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layerfs/common.h"
#include "layerfs/stack.h"

enum lf_plog_kind { LF_PLOG_ADDED, LF_PLOG_CHANGED, LF_PLOG_DELETED };

/* What differs (struct lf_plog_event.changes). */
#define LF_PLOG_TYPE 1u
#define LF_PLOG_MODE 2u
#define LF_PLOG_OWNER 4u
#define LF_PLOG_CONTENT 8u
#define LF_PLOG_TARGET 16u
#define LF_PLOG_MTIME 32u
#define LF_PLOG_RDEV 64u

struct lf_plog_event {
	size_t layer; /* 0-based */
	enum lf_plog_kind kind;
	char *path;    /* absolute, "/etc/passwd" */
	uint32_t mode; /* st_mode after (deleted: before) */
	uint32_t uid, gid;
	uint64_t size;	   /* regular files and symlinks */
	uint32_t old_mode; /* changed: before */
	uint32_t old_uid, old_gid;
	uint64_t old_size;
	unsigned changes;  /* LF_PLOG_* (changed) */
	const char *cause; /* deleted: how; added: "implied by paths below
			    * it" for a directory without an entry; static */
	char *cause_path;  /* deleted: the whited-out, opaque or replaced
			    * parent, absolute; NULL when PATH itself */
	bool ships_hidden; /* regular file data in this layer's blob that the
			    * final view does not show */
};

struct lf_pathlog {
	struct lf_plog_event *ev;
	size_t n;
	uint64_t hidden_bytes; /* sum of sizes with ships_hidden */
};

/* History of `path` ("/etc/passwd", "etc", "/") in stack s (which must have
 * its tree).  -ENOENT when no layer ever shows it. */
int lf_pathlog(const struct lf_stack *s, const char *path, bool recursive,
	       struct lf_pathlog *out, struct lf_err *err);
void lf_pathlog_free(struct lf_pathlog *l);

#endif /* LAYERFS_PATHLOG_H */

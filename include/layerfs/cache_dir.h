/* SPDX-License-Identifier: MIT */
/*
 * cache_dir.h - what a cache directory holds, and keeping it under a size.
 *
 * The cache holds, by name: layer indexes `<key>.idx` (key "sha256-<hex>" or
 * "diffid-sha256-<hex>"), the decompressed copy of a zstd layer
 * `<key>.idx.tar`, merged trees `tree-<hex>.tree`, the checkpoints of a
 * gzip'd archive `gzouter-<hex>.gzi`, a registry blob's verified
 * spans `spans/<hex>/<n>` with their digests `spans/<hex>.sums` (one item
 * per blob), registry documents `docs/<hex>`, and temp files of writers
 * (`*.tmp.*`).  Nothing else is ever listed or removed: a file a user put
 * there, a symlink or a directory of another name is left alone.
 *
 * An item is in use when a running process (a mount, another command, this
 * one) has one of its files mapped or open (from /proc/PID/maps and
 * /proc/PID/fd; as a normal user only that user's processes are seen, and
 * their mounts are theirs); a zstd copy and a blob's spans are in use with
 * their index.  Items in use are never removed.  Least recently used is by
 * mtime: lf_cache_touch_used() sets it to now for the files this process
 * uses, which every command does once its images are open.
 *
 * Errors name the directory and the cause; removal failures of single
 * files (a race with another process) are not errors.
 */
#ifndef LAYERFS_CACHE_DIR_H
#define LAYERFS_CACHE_DIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layerfs/common.h"

enum lf_cache_kind {
	LF_CACHE_INDEX,
	LF_CACHE_ZSTD_COPY,
	LF_CACHE_TREE,
	LF_CACHE_SPANS,
	LF_CACHE_DOC,
	LF_CACHE_TMP,
	LF_CACHE_GZIP_POINTS,
	LF_CACHE_NKINDS
};

struct lf_cache_item {
	enum lf_cache_kind kind;
	char *name;	    /* relative to the directory ("spans/<hex>") */
	char digest[80];    /* the blob or document it belongs to, or "" */
	uint64_t size;	    /* bytes (spans: every span file and the sums) */
	int64_t last_use;   /* seconds since the epoch (mtime; newest span) */
	long last_use_nsec; /* and nanoseconds (the LRU order) */
	bool in_use;
};

/* "index", "zstd-copy", "tree", "spans", "doc", "tmp", "gzip-points". */
const char *lf_cache_kind_name(enum lf_cache_kind k);

/*
 * The items of cache directory `dir`, oldest use first, with in_use set
 * (*items malloc'd; free with lf_cache_items_free()).  A directory that
 * does not exist has no items.
 */
int lf_cache_scan(const char *dir, struct lf_cache_item **items, size_t *n,
		  struct lf_err *err);
void lf_cache_items_free(struct lf_cache_item *items, size_t n);

/*
 * Remove items not in use, least recently used first, until the total is at
 * most `max` bytes (0: every item not in use).  *freed and *removed (either
 * may be NULL) say what went.
 */
int lf_cache_evict(const char *dir, const struct lf_cache_item *items, size_t n,
		   uint64_t max, uint64_t *freed, size_t *removed,
		   struct lf_err *err);

/* Set the mtime of every file of `dir` this process has mapped or open to
 * now (their last use). */
void lf_cache_touch_used(const char *dir);

/*
 * Keep `dir` at most `max` bytes: touch what this process uses, and when the
 * total is over, evict least recently used items not in use.  For the end of
 * a command's opening of its images; failures are only logged.
 */
void lf_cache_cap(const char *dir, uint64_t max);

#endif /* LAYERFS_CACHE_DIR_H */

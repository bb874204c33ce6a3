/* SPDX-License-Identifier: MIT */
/*
 * grep.h - search file contents straight from the layer blobs (`layerfs
 * grep`), without a mount.
 *
 * The files searched are the regular files below PATH in the merged view
 * (PATH itself when it is a file), or with `all`, every regular file entry
 * of every layer below PATH — also versions that a later layer overwrote or
 * deleted, each labelled with its layer and whether the final view shows
 * it.  Files are read on all cores through the stack (lf_stack_read_file)
 * in the order of their data (layer by layer, tar order: each checkpoint
 * span is inflated once), and the hits come back in that order, from the
 * calling thread.
 *
 * Matching is grep's, line by line (lines end at '\n'; the last one may
 * not): a POSIX basic regular expression, extended with `extended`, or a
 * fixed string with `fixed`; `icase` ignores case (the locale's LC_CTYPE).
 * As GNU grep does, a pattern without special characters is searched as a
 * string over the whole buffer read, and a regular expression first by the
 * longest literal every match must contain (none with alternation or
 * groups), regexec only on the lines that hold it.
 * A file with a NUL byte in its first 32 KiB, or in a matching line, is
 * binary: NULs end lines too, its first match is reported as such (no
 * line) and the file is not searched further, as GNU grep does.
 *
 * Ownership: the stack is borrowed; a hit's strings live during the
 * callback.  lf_grep() runs its own threads and returns when they are done.
 */
#ifndef LAYERFS_GREP_H
#define LAYERFS_GREP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layerfs/common.h"
#include "layerfs/stack.h"

struct lf_grep_opts {
	const char *pattern;
	bool extended, fixed, icase;
	bool files_only;  /* one hit per matching file, no lines */
	bool all;	  /* every layer's entries, not the merged view */
	const char *path; /* "/" by default */
	unsigned threads; /* 0: the online CPUs */
};

struct lf_grep_hit {
	const char *path; /* absolute */
	size_t layer;	  /* 0-based layer of the entry read */
	bool visible;	  /* all: the final view shows this entry */
	uint64_t lineno;  /* 1-based */
	const char *line; /* without '\n'; NULL for binary and files_only */
	size_t len;
	bool binary;
};

struct lf_grep_stats {
	uint64_t files, bytes, matching_files;
};

/* Return 0 to go on, a negative errno to stop. */
typedef int (*lf_grep_fn)(void *ctx, const struct lf_grep_hit *h);

/* -EINVAL with a message for a pattern that does not compile; -ENOENT or
 * -ENOTDIR for a PATH the view does not have; a read error names the path
 * and stops the search. */
int lf_grep(const struct lf_stack *s, const struct lf_grep_opts *o,
	    lf_grep_fn fn, void *ctx, struct lf_grep_stats *st,
	    struct lf_err *err);

#endif /* LAYERFS_GREP_H */

/* SPDX-License-Identifier: MIT */
/*
 * waste.h - where an image's bytes go: per layer, bytes shipped that a
 * later layer overwrites or deletes; for the image, dive's efficiency score
 * and wasted bytes; and files that hold secrets (secrets.h), invisible in
 * the final view but still readable in the layer that shipped them (or, on
 * request, visible ones too).
 *
 * Definitions (docs/architecture.md states them too):
 *   added        sizes of a layer's regular-file entries (hardlink entries
 *                carry no bytes);
 *   overwritten  of those, the bytes whose path a later entry replaces (in a
 *                later layer, or later in the same layer);
 *   deleted      the bytes a later whiteout, opaque marker or replacement of
 *                a parent directory removes; bytes still reachable through
 *                another hardlink of the same file are hidden by nothing;
 *   efficiency   dive's: over every leaf path (non-directory entries, and
 *                whiteouts counted as the path they delete), cumulative =
 *                the sum of its occurrences' sizes (a whiteout of a file
 *                counts 0, of a directory the bytes below it in the layers
 *                underneath), minimum = its smallest occurrence; score =
 *                sum(minimum) / sum(cumulative), 1 when nothing;
 *   wasted       dive's: the cumulative sizes of paths that occur in two or
 *                more layers; user size = all layers but the first;
 *                wasted ratio = wasted / user size.
 *
 * Ownership: the result owns its strings; indexes and blobs are borrowed
 * during lf_waste_compute() only.  Not thread-safe.
 */
#ifndef LAYERFS_WASTE_H
#define LAYERFS_WASTE_H

#include <stddef.h>
#include <stdint.h>

#include "layerfs/blob.h"
#include "layerfs/common.h"
#include "layerfs/index.h"
#include "layerfs/secrets.h"
#include "layerfs/stack.h"

struct lf_waste_layer {
	uint64_t added, overwritten, deleted;
};

struct lf_waste_path {
	char *path;	     /* "/x/y" */
	uint64_t cumulative; /* dive's cumulative size */
	uint32_t *layers;    /* 1-based layers where it occurs */
	size_t nlayers;
	uint32_t hidden_by; /* layer hiding the first copy, 0 if none */
};

struct lf_waste_secret {
	char *path;
	uint32_t layer;	    /* ships it (1-based) */
	uint32_t hidden_by; /* hides it; 0: visible in the final view */
	uint64_t size;
	const char *reason;		 /* static text */
	const char *rule;		 /* static id, secrets.h */
	char excerpt[LF_SECRET_EXCERPT]; /* redacted */
};

/* Which files lf_waste_scan() judges: none, those a later layer hides
 * (the "RUN rm" trap; the default), or every regular file. */
enum lf_waste_secrets {
	LF_WASTE_SECRETS_NONE,
	LF_WASTE_SECRETS_HIDDEN,
	LF_WASTE_SECRETS_ALL
};

/* Content scanning stops after this many bytes in all (files then judged
 * by name only, and counted in secrets_unscanned). */
#define LF_WASTE_SCAN_TOTAL (256ull << 20)

struct lf_waste {
	size_t nlayers;
	struct lf_waste_layer *layers; /* [nlayers] */
	double efficiency;
	uint64_t wasted_bytes;
	uint64_t total_size;	   /* all layers */
	uint64_t user_size;	   /* all layers but the first */
	double wasted_user_ratio;  /* wasted / user size (0 if none) */
	struct lf_waste_path *top; /* by cumulative size, descending */
	size_t ntop;
	struct lf_waste_secret *secrets;
	size_t nsecrets;
	size_t secrets_unscanned; /* files judged by name: budget spent */
};

/*
 * Account the stack's layers (bottom first), reading hidden files through
 * the stack's blobs to look for secrets (secrets.h: the first
 * LF_SECRET_SCAN_BYTES of each file, streamed from its layer blob).  `top`
 * limits the list of paths.  lf_waste_compute() is lf_waste_scan() with
 * LF_WASTE_SECRETS_HIDDEN.
 */
int lf_waste_compute(const struct lf_stack *stack, size_t top,
		     struct lf_waste **out, struct lf_err *err);
int lf_waste_scan(const struct lf_stack *stack, size_t top,
		  enum lf_waste_secrets which, struct lf_waste **out,
		  struct lf_err *err);
/* Only the per-layer fields (added, overwritten, deleted; the rest is zero,
 * efficiency 0): what `layers` shows, without dive's path accounting. */
int lf_waste_per_layer(struct lf_index *const *layers, size_t n,
		       struct lf_waste **out, struct lf_err *err);
void lf_waste_free(struct lf_waste *w);

#endif /* LAYERFS_WASTE_H */

/* SPDX-License-Identifier: MIT */
/*
 * cli_history.h - the image config's history as `docker history` shows it.
 *
 * Every history entry, in order (bottom first), paired with the layer it
 * made: entries with `empty_layer: true` (ENV, CMD, LABEL...) make none,
 * the others make the next layer.  Layers the history does not describe
 * get a row of their own.  With --layers N only the rows up to layer N's
 * are kept (the trailing empty entries only when every layer is shown).
 * CREATED is printed as docker prints it: go-units HumanDuration + " ago"
 * ("2 weeks ago", "About an hour ago"), or absolute RFC 3339 in UTC.
 */
#ifndef LAYERFS_CLI_HISTORY_H
#define LAYERFS_CLI_HISTORY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "layerfs/image.h"

struct cli_history_row {
	const char *created, *created_by, *comment; /* NULL: absent */
	bool empty_layer;
	long layer; /* 0-based layer it made; -1: none */
};

struct cli_history {
	struct cli_history_row *rows;
	size_t n;
	json_t *root; /* owns the strings */
};

/* Rows for the first `nshown` layers of img.  0 or -ENOMEM. */
int cli_history_load(const struct lf_image *img, size_t nshown,
		     struct cli_history *h);
void cli_history_free(struct cli_history *h);

/* The "history" array of `layers --json` (new references). */
json_t *cli_history_json(const struct cli_history *h);

/* RFC 3339 text to seconds since the epoch; -1 when it is not one. */
int cli_history_parse_time(const char *s, time_t *out);
/* go-units HumanDuration of `secs` ("Less than a second", "2 weeks"). */
void cli_history_duration(double secs, char *out, size_t len);
/* CREATED: "<duration> ago", or absolute "2006-01-02T15:04:05Z"; "-"
 * when the time is absent, unreadable or before 2000 (docker: blank). */
void cli_history_created(const char *created, bool absolute, double now,
			 char *out, size_t len);

#endif /* LAYERFS_CLI_HISTORY_H */

// SPDX-License-Identifier: MIT
/* limits.c - decompression limits: defaults and the environment. */
#include "layerfs/limits.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool lf_parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "KMGT";
	const char *u;
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return false;
	if (*end && (u = strchr(units, *end)) && !end[1]) {
		int shift = 10 * (int)(u - units + 1);

		if (v > UINT64_MAX >> shift)
			return false;
		v <<= shift;
	} else if (*end) {
		return false;
	}
	*out = v;
	return v != 0;
}

static int env_size(const char *name, uint64_t *dst, struct lf_err *err)
{
	const char *v = getenv(name);

	if (*dst || !v || !*v)
		return 0;
	if (!lf_parse_size(v, dst))
		return lf_err_set(err, -EINVAL,
				  "%s: '%s' is not a positive "
				  "size (e.g. 8G)",
				  name, v);
	return 0;
}

int lf_limits_resolve(struct lf_limits *l, struct lf_err *err)
{
	const char *v = getenv("LAYERFS_MAX_RATIO");
	char buf[64], *colon;
	int ret;

	if ((ret = env_size("LAYERFS_MAX_LAYER_SIZE", &l->max_size, err)) ||
	    (ret = env_size("LAYERFS_MAX_ENTRIES", &l->max_entries, err)))
		return ret;
	if (!l->max_ratio && v && *v) {
		snprintf(buf, sizeof(buf), "%s", v);
		colon = strchr(buf, ':');
		if (colon)
			*colon = '\0';
		if (!lf_parse_size(buf, &l->max_ratio) ||
		    (colon && !l->ratio_floor &&
		     !lf_parse_size(colon + 1, &l->ratio_floor)))
			return lf_err_set(err, -EINVAL,
					  "LAYERFS_MAX_RATIO: "
					  "'%s' is not N or N:FLOOR",
					  v);
	}
	if (!l->max_size)
		l->max_size = LF_MAX_LAYER_SIZE;
	if (!l->max_ratio)
		l->max_ratio = LF_MAX_LAYER_RATIO;
	if (!l->ratio_floor)
		l->ratio_floor = LF_MAX_RATIO_FLOOR;
	if (!l->max_entries)
		l->max_entries = LF_MAX_LAYER_ENTRIES;
	return 0;
}

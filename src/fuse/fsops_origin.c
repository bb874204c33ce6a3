// SPDX-License-Identifier: MIT
/* fsops_origin.c - the read-only xattrs that say where an entry came from. */
#include "fsops_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Value of origin xattr `name` for an entry of `layer` into buf. */
static ssize_t value(const struct lf_fs *fs, int layer, const char *name,
		     char *buf, size_t size)
{
	const char *digest = NULL;
	char text[LF_DIGEST_LEN + 16];
	size_t len;

	if (!strcmp(name, LF_ORIGIN_XATTR_LAYER)) {
		if (layer == LF_ORIGIN_UPPER)
			snprintf(text, sizeof(text), "upper");
		else if (layer >= 0)
			snprintf(text, sizeof(text), "%d", layer + 1);
		else
			return -ENODATA; /* a directory no layer has */
	} else if (!strcmp(name, LF_ORIGIN_XATTR_DIGEST)) {
		if (layer >= 0 && lf_stack_layer(fs->stack, (size_t)layer))
			digest = lf_index_blob_digest(
				lf_stack_index(fs->stack, (size_t)layer));
		if (!digest || !*digest)
			return -ENODATA;
		snprintf(text, sizeof(text), "%s", digest);
	} else {
		return -ENODATA;
	}
	len = strlen(text);
	if (!size)
		return (ssize_t)len;
	if (size < len)
		return -ERANGE;
	memcpy(buf, text, len);
	return (ssize_t)len;
}

bool lf_origin_name(const char *name)
{
	return !strcmp(name, LF_ORIGIN_XATTR_LAYER) ||
	       !strcmp(name, LF_ORIGIN_XATTR_DIGEST);
}

ssize_t lf_origin_get(const struct lf_fs *fs, int layer, const char *name,
		      char *buf, size_t size)
{
	return value(fs, layer, name, buf, size);
}

size_t lf_origin_list(const struct lf_fs *fs, int layer, char *buf)
{
	static const char *const names[] = { LF_ORIGIN_XATTR_LAYER,
					     LF_ORIGIN_XATTR_DIGEST };
	size_t i, total = 0;

	if (!fs->opts.origin_xattrs)
		return 0;
	for (i = 0; i < 2; i++) {
		size_t n = strlen(names[i]) + 1;

		if (value(fs, layer, names[i], NULL, 0) < 0)
			continue;
		if (buf)
			memcpy(buf + total, names[i], n);
		total += n;
	}
	return total;
}

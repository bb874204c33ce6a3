// SPDX-License-Identifier: MIT
/* path.c - tar path normalisation (design.md section 3 rule 1). */
#include "layerfs/path.h"

#include <errno.h>
#include <string.h>

int lf_path_normalize(const char *in, size_t len, struct lf_buf *out)
{
	size_t i = 0;
	int ret;

	lf_buf_reset(out);
	if (len == 0)
		return -EINVAL;
	while (i < len) {
		size_t start, clen;

		while (i < len && in[i] == '/')
			i++;
		start = i;
		while (i < len && in[i] != '/')
			i++;
		clen = i - start;
		if (clen == 0 || (clen == 1 && in[start] == '.'))
			continue;
		if (clen == 2 && in[start] == '.' && in[start + 1] == '.')
			return -EINVAL;
		if (memchr(in + start, '\0', clen))
			return -EINVAL;
		if (out->len && (ret = lf_buf_addch(out, '/')))
			return ret;
		if ((ret = lf_buf_add(out, in + start, clen)))
			return ret;
	}
	return lf_buf_grow(out, 0);
}

int lf_path_next(const char **pos, const char **comp, size_t *clen)
{
	const char *p = *pos, *e;

	while (*p == '/')
		p++;
	if (!*p)
		return 0;
	e = strchr(p, '/');
	if (!e)
		e = p + strlen(p);
	*comp = p;
	*clen = (size_t)(e - p);
	*pos = e;
	return 1;
}

const char *lf_path_basename(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

size_t lf_path_dirlen(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? (size_t)(s - path) : 0;
}

bool lf_path_is_normal(const char *p)
{
	const char *c = p;

	if (!*p)
		return true;
	for (;;) {
		const char *e = strchr(c, '/');
		size_t n = e ? (size_t)(e - c) : strlen(c);

		if (!n || (n == 1 && c[0] == '.') ||
		    (n == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		if (!e)
			return true;
		c = e + 1;
	}
}

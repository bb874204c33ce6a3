// SPDX-License-Identifier: MIT
/* fuzz_secrets.c - the secret rules over any bytes: the first line is the
 * file's path (so name rules and name-gated rules run too), the rest its
 * contents.  A hit names a rule and a reason, and its excerpt is short,
 * printable and redacted. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "layerfs/common.h"
#include "layerfs/secrets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *nl = memchr(data, '\n', LF_MIN(size, (size_t)256));
	size_t pl = nl ? (size_t)(nl - (const char *)data) : 0, i, n;
	char path[257];
	char *buf;
	struct lf_secret_hit h;

	memcpy(path, data, pl);
	path[pl] = '\0';
	if (nl)
		pl++;
	/* an exact-size copy, so that reading one byte too far is caught */
	n = size - pl;
	buf = malloc(n ? n : 1);
	if (!buf)
		return 0;
	memcpy(buf, data + pl, n);
	if (lf_secret_check(path, n, buf, n, &h)) {
		size_t len = strnlen(h.excerpt, sizeof(h.excerpt));

		if (!h.rule || !h.reason || len == sizeof(h.excerpt) ||
		    len < 4 || strcmp(h.excerpt + len - 4, "****"))
			abort();
		for (i = 0; i < len; i++)
			if (h.excerpt[i] < ' ' || h.excerpt[i] > '~')
				abort();
	}
	free(buf);
	return 0;
}

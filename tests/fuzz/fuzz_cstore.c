// SPDX-License-Identifier: MIT
/* fuzz_cstore.c - the storage.conf reader of containers-storage:. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "image_cstore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lf_cstore_conf c;
	struct lf_err err;

	memset(&c, 0, sizeof(c));
	if (!lf_cstore_conf_parse((const char *)data, size, "storage.conf", &c,
				  &err)) {
		/* values are C strings of at most a path's length */
		if (c.graphroot && strlen(c.graphroot) > 4096 + 4)
			abort();
	} else if (!err.msg[0]) {
		abort(); /* every failure says why */
	}
	lf_cstore_conf_release(&c);
	return 0;
}

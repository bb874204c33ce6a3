// SPDX-License-Identifier: MIT
/* fuzz_manifest.c - the image JSON parsers: index, manifest, config,
 * docker manifest.json, media type.  Every parser sees every input. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "image_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *j = (const char *)data;
	struct lf_image_desc *descs = NULL;
	struct lf_image_docker *dockers = NULL;
	struct lf_image_manifest m;
	struct lf_image_config c;
	struct lf_err err;
	char *mt = NULL;
	size_t n = 0, i;

	if (!lf_image_parse_index(j, size, "index.json", &descs, &n, &err)) {
		/* digests are validated before anyone builds a path of one */
		for (i = 0; i < n; i++)
			if (!lf_digest_valid(descs[i].digest))
				abort();
		if (n > LF_IMAGE_MAX_MANIFESTS)
			abort();
		lf_image_descs_free(descs, n);
	}
	memset(&m, 0, sizeof(m));
	if (!lf_image_parse_manifest(j, size, "manifest", &m, &err))
		lf_image_manifest_release(&m);
	memset(&c, 0, sizeof(c));
	if (!lf_image_parse_config(j, size, "config", &c, &err)) {
		/* history is kept only as far as there are layers */
		if (c.nhist > c.ndiff_ids || c.ndiff_ids > LF_IMAGE_MAX_LAYERS)
			abort();
		lf_image_config_release(&c);
	}
	n = 0;
	if (!lf_image_parse_docker(j, size, "manifest.json", &dockers, &n,
				   &err))
		lf_image_dockers_free(dockers, n);
	if (!lf_image_parse_media_type(j, size, "blob", &mt, &err))
		free(mt);
	return 0;
}

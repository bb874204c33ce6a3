// SPDX-License-Identifier: MIT
/*
 * image_artifact.c - tell OCI artifacts (a Helm chart, an SBOM, a
 * signature: image-spec 1.1 `artifactType`, or a config that is not an
 * image config, e.g. the empty descriptor) from container images.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "image_internal.h"

static const char *const config_types[] = {
	"application/vnd.oci.image.config.v1+json",
	"application/vnd.docker.container.image.v1+json",
};

static bool image_config_type(const char *mt)
{
	size_t i;

	if (!mt[0]) /* no mediaType: take it for an image config */
		return true;
	for (i = 0; i < LF_ARRAY_SIZE(config_types); i++)
		if (!strcmp(mt, config_types[i]))
			return true;
	return false;
}

int lf_image_check_artifact(const char *json, size_t len,
			    const struct lf_image_manifest *m,
			    const char *label, struct lf_err *err)
{
	json_t *root = json_loadb(json, len, 0, NULL);
	const char *at = json_string_value(
		json_object_get(root, "artifactType"));
	int ret = 0;

	if (at && at[0])
		ret = lf_err_set(err, -EINVAL,
				 "'%s': not a container image (artifact type "
				 "%.200s)",
				 label, at);
	else if (!image_config_type(m->config.media_type))
		ret = lf_err_set(err, -EINVAL,
				 "'%s': not a container image (artifact type "
				 "%.200s)",
				 label, m->config.media_type);
	json_decref(root);
	return ret;
}

void lf_image_drop_artifacts(struct lf_image_desc *v, size_t *n)
{
	size_t i, k = 0, images = 0;

	for (i = 0; i < *n; i++)
		images += !v[i].artifact_type;
	if (!images || images == *n)
		return;
	for (i = 0; i < *n; i++) {
		if (v[i].artifact_type)
			lf_image_desc_release(&v[i]);
		else
			v[k++] = v[i];
	}
	*n = k;
}

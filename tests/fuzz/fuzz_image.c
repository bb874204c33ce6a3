// SPDX-License-Identifier: MIT
/* fuzz_image.c - lf_image_open() over an image archive: the member table
 * (links between members), format detection, the index -> manifest ->
 * config chain with its digest and size checks, the docker manifest.json
 * fallback and the layer list.  The input is the archive's bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "image_internal.h"

static void check_layers(const struct lf_image *img)
{
	size_t i, n = lf_image_layer_count(img);

	if (n > LF_IMAGE_MAX_LAYERS)
		abort();
	for (i = 0; i < n; i++) {
		const struct lf_image_layer *l = lf_image_layer(img, i);

		/* a layer is a readable range with a valid diff_id */
		if (!l->blob || !lf_digest_valid(l->diff_id) ||
		    (l->digest[0] && !lf_digest_valid(l->digest)) ||
		    lf_vfile_size(l->blob) != l->size)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const refs[] = { NULL, "latest" };
	struct lf_image_opts opts = { 0 };
	struct lf_image *img;
	struct lf_err err;
	char path[64];
	size_t r;
	int fd = memfd_create("fuzz_image", MFD_CLOEXEC);

	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	for (r = 0; r < 2; r++) {
		opts.ref = refs[r];
		if (lf_image_open(path, &opts, &img, &err))
			continue;
		check_layers(img);
		lf_image_close(img);
	}
	close(fd);
	return 0;
}

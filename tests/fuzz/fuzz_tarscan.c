// SPDX-License-Identifier: MIT
/* fuzz_tarscan.c - tar headers of every flavour, streamed and seekable. */
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "fuzz.h"
#include "layerfs/common.h"
#include "layerfs/tarscan.h"
#include "layerfs/vfile.h"

struct seen {
	size_t sum;   /* touches every byte the scanner hands out */
	uint64_t end; /* furthest data byte claimed */
};

/* Look at everything the scanner claims about a member. */
static int on_entry(void *ctx, const struct lf_tar_entry *e, struct lf_err *err)
{
	struct seen *s = ctx;
	size_t k, j;

	(void)err;
	s->sum += strlen(e->path);
	if (e->link)
		s->sum += strlen(e->link);
	for (k = 0; k < e->nxattrs; k++) {
		const unsigned char *v = e->xattrs[k].value;

		s->sum += strlen(e->xattrs[k].name);
		for (j = 0; j < e->xattrs[k].len; j++)
			s->sum += v[j];
	}
	for (k = 0; k < e->nsparse; k++)
		s->sum += (size_t)(e->sparse[k].offset + e->sparse[k].length);
	if (e->data_offset + e->data_size > s->end)
		s->end = e->data_offset + e->data_size;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* odd-sized pieces, as a decompressor hands them out */
	struct fuzz_src s = { data, size, 0, 7919 };
	struct seen a = { 0, 0 }, b = { 0, 0 };
	struct lf_vfile *vf;
	struct lf_err err;
	int ra, rb = -1;

	/* a scan that succeeds has every member's data inside the stream */
	ra = lf_tarscan_stream(fuzz_read, &s, "fuzz.tar", on_entry, &a, &err);
	if (!ra && a.end > size)
		abort();
	if (!lf_vfile_from_mem(data, size, "fuzz.tar", &vf)) {
		rb = lf_tarscan_vfile(vf, on_entry, &b, &err);
		if (!rb && b.end > size)
			abort();
		lf_vfile_close(vf);
	}
	/* names come from the header bytes in both modes: the same ones */
	if (!ra && !rb && a.sum != b.sum)
		abort();
	return 0;
}

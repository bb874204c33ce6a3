// SPDX-License-Identifier: MIT
/*
 * index_estargz.c - an eStargz layer's index from its TOC (estargz.h):
 * the entries through the same lf_index_add_entry() as a tar scan, the
 * chunks into CHUNKS, no blob byte but the footer and the TOC read.
 */
#include "index_internal.h"

#include "layerfs/estargz.h"
#include "layerfs/rblob.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static ssize_t raw_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	return lf_rblob_pread_raw(ctx, buf, len, off);
}

static int add_chunk(void *ctx, const struct lf_idx_chunk *c,
		     struct lf_err *err)
{
	struct index_builder *b = ctx;

	if (lf_buf_add(&b->chunks, c, sizeof(*c)))
		return lf_err_set(err, -ENOMEM, "out of memory");
	return 0;
}

/* sha256:<hex> into 32 bytes (the digest is valid: image.c checked it). */
static void raw_digest(const char *d, uint8_t out[32])
{
	for (int i = 0; i < 32; i++) {
		char h[3] = { d[7 + 2 * i], d[8 + 2 * i], 0 };

		out[i] = (uint8_t)strtoul(h, NULL, 16);
	}
}

static int scan(struct index_builder *b, struct lf_index *idx, const char *key,
		struct lf_err *err)
{
	const struct lf_image_layer *l = b->layer;
	const struct lf_estargz_sink sink = { lf_index_add_entry, add_chunk,
					      b };
	struct lf_cache_header *h;
	int ret;

	b->lim = b->opts->limits;
	if ((ret = lf_limits_resolve(&b->lim, err)))
		return ret;
	ret = lf_estargz_scan(raw_read, l->blob, lf_vfile_size(l->blob),
			      l->toc_digest, l->source, &sink, &b->out_total,
			      err);
	if (ret)
		return ret;
	if (b->lim.max_size && b->out_total > b->lim.max_size)
		return lf_err_set(err, -EFBIG,
				  "blob %s: uncompressed size exceeds the "
				  "limit of %llu bytes",
				  l->source,
				  (unsigned long long)b->lim.max_size);
	b->in_pos = lf_vfile_size(l->blob);
	if ((ret = lf_index_assemble(b, key, idx)))
		return lf_err_set(err, ret, "out of memory");
	h = idx->map;
	/* the image's word: the TOC and the chunk digests vouch for what
	 * is read, the whole blob is never hashed */
	memcpy(h->blob_digest, l->digest, LF_DIGEST_LEN);
	memcpy(h->diff_id, l->diff_id, LF_DIGEST_LEN);
	h->flags = lf_le32(LF_CACHE_VERIFIED | LF_CACHE_ESTARGZ);
	raw_digest(l->toc_digest, h->toc_sha256);
	return 0;
}

int lf_index_build_estargz(const struct lf_image_layer *layer,
			   const struct lf_index_opts *opts, const char *key,
			   struct lf_index *idx, struct lf_err *err)
{
	struct index_builder b = { .layer = layer,
				   .opts = opts,
				   .comp = LF_COMP_GZIP,
				   .copy_fd = -1 };
	const char *why = NULL;
	int ret;

	if (!layer->toc_digest[0] || !lf_digest_valid(layer->digest))
		return -ENOENT;
	lf_index_builder_init(&b);
	ret = scan(&b, idx, key, err);
	if (!ret) {
		lf_cache_seal(idx->map, idx->maplen);
		ret = lf_index_attach(idx, &why);
		if (ret)
			lf_err_set(err, ret, "'%s': %s", layer->source, why);
	}
	lf_index_builder_release(&b);
	if (ret && idx->map) {
		free(idx->map);
		idx->map = NULL;
		idx->maplen = 0;
	}
	return ret;
}

// SPDX-License-Identifier: MIT
/* index.c - the one-pass layer pipeline: hash, inflate, hash, scan, cache. */
#include "index_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layerfs/log.h"
#include "layerfs/path.h"
#include "layerfs/tarscan.h"
#include "layerfs/zstdec.h"
#include "layerfs/whiteout.h"

#define PROGRESS_STEP (4u << 20)

/* Hash the uncompressed bytes block by block into the SPANSUMS section. */
static int span_flush(struct index_builder *b)
{
	uint64_t h = lf_le64(lf_cache_hash64(b->span, b->span_fill));

	b->span_fill = 0;
	return lf_buf_add(&b->sums, &h, sizeof(h));
}

/*
 * gzip: one hash per checkpoint span, [point k, point k+1), closed as the
 * builder records the points; `end`: the last span, up to the end.
 */
static int gz_spans(struct index_builder *b, bool end)
{
	size_t n = lf_gzidx_builder_npoints(b->gz);

	for (;;) {
		bool last = b->next_point >= n;
		uint64_t p = last ? b->out_total
				  : lf_gzidx_builder_point_out(b->gz,
							       b->next_point);
		size_t len = (size_t)(p - b->span_start);
		uint64_t h;

		if ((last && !end) || p > b->out_total)
			return 0;
		h = lf_le64(lf_cache_hash64(b->gzspan.data, len));
		if (lf_buf_add(&b->sums, &h, sizeof(h)))
			return lf_err_set(&b->inner, -ENOMEM, "out of memory");
		memmove(b->gzspan.data, b->gzspan.data + len,
			b->gzspan.len - len);
		lf_buf_setlen(&b->gzspan, b->gzspan.len - len);
		b->span_start = p;
		if (last)
			return 0;
		b->next_point++;
	}
}

static int gz_account(struct index_builder *b, const void *buf, size_t len)
{
	int ret;

	if (lf_buf_add(&b->gzspan, buf, len))
		return lf_err_set(&b->inner, -ENOMEM, "out of memory");
	if ((ret = gz_spans(b, false)))
		return ret;
	if (b->gzspan.len > LF_GZ_MAX_SPAN)
		return lf_err_set(&b->inner, -EFBIG,
				  "'%s': a deflate block "
				  "longer than %u MiB (no checkpoint possible)",
				  b->layer->source, LF_GZ_MAX_SPAN >> 20);
	return 0;
}

/*
 * Every uncompressed byte passes here once, in order: count it against the
 * limits (a bomb stops before it fills the disk or memory) and hash it.
 */
static int account(struct index_builder *b, const void *buf, size_t len)
{
	const struct lf_limits *l = &b->lim;
	const char *p = buf;

	b->out_total += len;
	if (l->max_size && b->out_total > l->max_size)
		return lf_err_set(&b->inner, -EFBIG,
				  "'%s': the uncompressed "
				  "layer exceeds the limit of %llu bytes "
				  "(LAYERFS_MAX_LAYER_SIZE)",
				  b->layer->source,
				  (unsigned long long)l->max_size);
	if (l->max_ratio && b->out_total > l->ratio_floor &&
	    b->out_total / l->max_ratio > b->in_pos)
		return lf_err_set(&b->inner, -EFBIG,
				  "'%s': the layer expands "
				  "more than %llu times (%llu bytes from %llu "
				  "compressed; LAYERFS_MAX_RATIO)",
				  b->layer->source,
				  (unsigned long long)l->max_ratio,
				  (unsigned long long)b->out_total,
				  (unsigned long long)b->in_pos);
	if (b->comp == LF_COMP_GZIP)
		return gz_account(b, buf, len);
	while (len) {
		size_t n = LF_MIN(len, LF_SPAN_SIZE - b->span_fill);

		memcpy(b->span + b->span_fill, p, n);
		b->span_fill += n;
		p += n;
		len -= n;
		if (b->span_fill == LF_SPAN_SIZE && span_flush(b))
			return lf_err_set(&b->inner, -ENOMEM, "out of memory");
	}
	return 0;
}

static ssize_t read_compressed(void *ctx, void *buf, size_t len)
{
	struct index_builder *b = ctx;
	ssize_t n = lf_vfile_pread(b->layer->blob, buf, len, b->in_pos);

	if (n <= 0)
		return n;
	lf_sha256_update(b->hc, buf, (size_t)n);
	b->in_pos += (uint64_t)n;
	if (b->opts->progress && b->in_pos >= b->next_progress) {
		b->opts->progress(b->opts->progress_ctx, b->in_pos,
				  lf_vfile_size(b->layer->blob));
		b->next_progress = b->in_pos + PROGRESS_STEP;
	}
	return n;
}

static int write_copy(struct index_builder *b, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(b->copy_fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return lf_err_set(&b->inner, -errno,
					  "cannot write the decompressed copy "
					  "of zstd layer: %s",
					  strerror(errno));
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* tarscan's source: the uncompressed tar stream. */
static ssize_t read_tar(void *ctx, void *buf, size_t len)
{
	struct index_builder *b = ctx;
	size_t got = 0;
	ssize_t n;
	int ret;

	switch (b->comp) {
	case LF_COMP_NONE:
		n = read_compressed(b, buf, len);
		if (n < 0)
			lf_err_set(&b->inner, (int)n, "'%s': read error: %s",
				   b->layer->source, strerror((int)-n));
		if (n > 0 && (ret = account(b, buf, (size_t)n)))
			return ret;
		return n;
	case LF_COMP_GZIP:
		ret = lf_gzidx_builder_read(b->gz, buf, len, &got, &b->inner);
		if (!ret)
			ret = account(b, buf, got);
		break;
	case LF_COMP_ZSTD:
		ret = lf_zstdec_read(b->zd, buf, len, &got, &b->inner);
		if (!ret)
			ret = account(b, buf, got);
		if (!ret && got)
			ret = write_copy(b, buf, got);
		break;
	default:
		ret = -EINVAL;
	}
	if (ret)
		return ret;
	lf_sha256_update(b->hu, buf, got);
	return (ssize_t)got;
}

static int add_string(struct index_builder *b, const void *s, size_t len,
		      uint32_t *off)
{
	int ret;

	/* offsets are 32-bit in the on-disk format */
	if (b->strings.len + len + 1 > UINT32_MAX)
		return -EFBIG;
	*off = (uint32_t)b->strings.len;
	ret = lf_buf_add(&b->strings, s, len);
	return ret ? ret : lf_buf_addch(&b->strings, '\0');
}

static int add_aligned(struct lf_buf *dst, const void *rec, size_t len)
{
	return lf_buf_add(dst, rec, len);
}

static enum lf_idx_kind kind_of(enum lf_tar_type t)
{
	switch (t) {
	case LF_TAR_DIR:
		return LF_KIND_DIR;
	case LF_TAR_SYMLINK:
		return LF_KIND_SYMLINK;
	case LF_TAR_HARDLINK:
		return LF_KIND_HARDLINK;
	case LF_TAR_CHR:
		return LF_KIND_CHR;
	case LF_TAR_BLK:
		return LF_KIND_BLK;
	case LF_TAR_FIFO:
		return LF_KIND_FIFO;
	case LF_TAR_SOCK:
		return LF_KIND_SOCK;
	default:
		return LF_KIND_REG;
	}
}

static int entry_attrs(struct index_builder *b, const struct lf_tar_entry *e,
		       struct lf_idx_entry *ie, struct lf_err *err)
{
	size_t k;
	int ret;

	if (e->uid < 0 || e->uid > UINT32_MAX || e->gid < 0 ||
	    e->gid > UINT32_MAX)
		return lf_err_set(err, -EINVAL,
				  "entry '%s' has an invalid owner %lld:%lld",
				  e->path, (long long)e->uid,
				  (long long)e->gid);
	if (e->rdev_major >= (1u << 12) || e->rdev_minor >= (1u << 20))
		return lf_err_set(err, -EINVAL,
				  "entry '%s' has an invalid device number",
				  e->path);
	if (e->nxattrs > UINT16_MAX)
		return lf_err_set(err, -E2BIG, "entry '%s' has %zu xattrs",
				  e->path, e->nxattrs);
	ie->xattr_first = (uint32_t)(b->xattrs.len /
				     sizeof(struct lf_idx_xattr));
	ie->xattr_count = (uint16_t)e->nxattrs;
	for (k = 0; k < e->nxattrs; k++) {
		struct lf_idx_xattr x = { .len = (uint32_t)e->xattrs[k].len };

		if (e->xattrs[k].len > UINT32_MAX)
			return lf_err_set(err, -E2BIG, "xattr too large");
		ret = add_string(b, e->xattrs[k].name,
				 strlen(e->xattrs[k].name), &x.name);
		if (!ret)
			ret = add_string(b, e->xattrs[k].value,
					 e->xattrs[k].len, &x.value);
		if (!ret)
			ret = add_aligned(&b->xattrs, &x, sizeof(x));
		if (ret)
			return lf_err_set(err, ret, "index too large");
	}
	ie->sparse_first = (uint32_t)(b->sparse.len /
				      sizeof(struct lf_idx_sparse));
	if (e->type == LF_TAR_REG && e->sparse) {
		if (e->nsparse > UINT32_MAX - 1)
			return lf_err_set(err, -E2BIG, "sparse map too large");
		/* a sparse file with no data regions still needs a map, so
		 * that it is not taken for a plain empty-data file */
		struct lf_idx_sparse none = { e->size, 0 };

		ie->sparse_count = (uint32_t)e->nsparse;
		if (!e->nsparse) {
			ie->sparse_count = 1;
			if ((ret = add_aligned(&b->sparse, &none,
					       sizeof(none))))
				return lf_err_set(err, ret, "out of memory");
		}
		for (k = 0; k < e->nsparse; k++) {
			struct lf_idx_sparse s = { e->sparse[k].offset,
						   e->sparse[k].length };

			if ((ret = add_aligned(&b->sparse, &s, sizeof(s))))
				return lf_err_set(err, ret, "out of memory");
		}
	}
	return 0;
}

int lf_index_add_entry(void *ctx, const struct lf_tar_entry *e,
		       struct lf_err *err)
{
	struct index_builder *b = ctx;
	struct lf_idx_entry ie = { 0 };
	const char *base;
	int ret;

	if (b->lim.max_entries && b->nentries >= b->lim.max_entries)
		return lf_err_set(err, -EFBIG,
				  "more than %llu tar members "
				  "(the limit; LAYERFS_MAX_ENTRIES)",
				  (unsigned long long)b->lim.max_entries);
	if (!e->path[0])
		return lf_err_set(err, -EINVAL, "member %llu has an empty name",
				  (unsigned long long)e->index);
	ret = lf_path_normalize(e->path, strlen(e->path), &b->path);
	if (ret == -EINVAL)
		return lf_err_set(err, ret, "entry '%s' has a '..' component",
				  e->path);
	if (ret)
		return lf_err_set(err, ret, "out of memory");
	ie.kind = (uint8_t)kind_of(e->type);
	ie.link = UINT32_MAX;
	if (e->type == LF_TAR_HARDLINK) {
		ret = e->link ? lf_path_normalize(e->link, strlen(e->link),
						  &b->link)
			      : -EINVAL;
		if (ret || !b->link.len)
			return lf_err_set(err, -EINVAL,
					  "hardlink '%s' has an invalid target "
					  "'%s'",
					  e->path, e->link ? e->link : "");
		ret = add_string(b, b->link.data, b->link.len, &ie.link);
	} else if (e->type == LF_TAR_SYMLINK) {
		const char *t = e->link ? e->link : "";

		ret = add_string(b, t, strlen(t), &ie.link);
	}
	if (!ret)
		ret = add_string(b, b->path.data, b->path.len, &ie.path);
	if (ret)
		return lf_err_set(err, ret, "index too large");
	base = lf_path_basename(b->path.data);
	if (lf_is_whiteout_name(base)) {
		ie.flags |= LF_IDX_WHITEOUT;
		if (lf_is_opaque_marker(base))
			ie.flags |= LF_IDX_OPAQUE;
		b->nwhiteouts++;
	}
	ie.data_off = e->data_offset;
	ie.size = e->type == LF_TAR_REG ? e->size : 0;
	ie.mtime = e->mtime;
	ie.mtime_nsec = e->mtime_nsec;
	ie.mode = e->mode & 07777;
	ie.uid = (uint32_t)e->uid;
	ie.gid = (uint32_t)e->gid;
	ie.rdev = e->rdev_major << 20 | e->rdev_minor;
	if ((ret = entry_attrs(b, e, &ie, err)))
		return ret;
	if ((ret = add_aligned(&b->entries, &ie, sizeof(ie))))
		return lf_err_set(err, ret, "out of memory");
	b->nentries++;
	return 0;
}

static int detect(const struct lf_image_layer *layer, enum lf_compression *c,
		  struct lf_err *err)
{
	unsigned char m[6] = { 0 };
	ssize_t n = lf_vfile_pread(layer->blob, m, sizeof(m), 0);

	if (n < 0)
		return lf_err_set(err, (int)n, "'%s': read error: %s",
				  layer->source, strerror((int)-n));
	*c = LF_COMP_NONE;
	if (n >= 2 && m[0] == 0x1f && m[1] == 0x8b)
		*c = LF_COMP_GZIP;
	else if (n >= 4 && !memcmp(m, "\x28\xb5\x2f\xfd", 4))
		*c = LF_COMP_ZSTD;
	else if (n >= 3 && !memcmp(m, "BZh", 3))
		return lf_err_set(err, -ENOTSUP,
				  "'%s': bzip2 layers are not supported",
				  layer->source);
	else if (n >= 6 && !memcmp(m,
				   "\xfd"
				   "7zXZ\0",
				   6))
		return lf_err_set(err, -ENOTSUP,
				  "'%s': xz layers are not supported",
				  layer->source);
	return 0;
}

static size_t align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

/* Lay the sections out behind a header into one malloc'd file image. */
void lf_index_builder_init(struct index_builder *b)
{
	b->copy_fd = -1;
	lf_buf_init(&b->copy_tmp);
	lf_buf_init(&b->entries);
	lf_buf_init(&b->strings);
	lf_buf_init(&b->xattrs);
	lf_buf_init(&b->sparse);
	lf_buf_init(&b->points);
	lf_buf_init(&b->windows);
	lf_buf_init(&b->sums);
	lf_buf_init(&b->chunks);
	lf_buf_init(&b->gzspan);
	b->next_point = 1;
	lf_buf_init(&b->path);
	lf_buf_init(&b->link);
}

int lf_index_assemble(struct index_builder *b, const char *key,
		      struct lf_index *idx)
{
	const struct lf_buf *parts[LF_SECT_COUNT] = {
		&b->entries, &b->strings, &b->xattrs, &b->sparse,
		&b->points,  &b->sums,	  &b->chunks, &b->windows,
	};
	struct lf_cache_header *h;
	size_t total = sizeof(*h), off;
	char *p;
	int i;

	for (i = 0; i < LF_SECT_COUNT; i++)
		total = align8(total) + parts[i]->len;
	total = align8(total);
	p = calloc(1, total);
	if (!p)
		return -ENOMEM;
	h = (struct lf_cache_header *)p;
	memcpy(h->magic, LF_CACHE_MAGIC, 8);
	h->version = lf_le32(LF_CACHE_VERSION);
	h->header_size = lf_le32(sizeof(*h));
	snprintf(h->key, sizeof(h->key), "%s", key);
	h->blob_size = lf_le64(b->in_pos);
	h->tar_size = lf_le64(b->out_total);
	h->nentries = lf_le64(b->nentries);
	h->nwhiteouts = lf_le64(b->nwhiteouts);
	h->compression = lf_le32(b->comp);
	off = sizeof(*h);
	for (i = 0; i < LF_SECT_COUNT; i++) {
		off = align8(off);
		h->sect[i].off = lf_le64(off);
		h->sect[i].len = lf_le64(parts[i]->len);
		if (parts[i]->len)
			memcpy(p + off, parts[i]->data, parts[i]->len);
		off += parts[i]->len;
	}
	idx->map = p;
	idx->maplen = total;
	return 0;
}

static int verify(struct index_builder *b, struct lf_index *idx,
		  struct lf_err *err)
{
	struct lf_cache_header *h = idx->map;
	const struct lf_image_layer *l = b->layer;

	if (l->digest[0] && strcmp(l->digest, h->blob_digest))
		return lf_err_set(err, -EINVAL,
				  "blob %s: digest mismatch: the manifest says "
				  "%s, the blob is %s",
				  l->source, l->digest, h->blob_digest);
	if (l->diff_id[0] && strcmp(l->diff_id, h->diff_id))
		return lf_err_set(err, -EINVAL,
				  "blob %s: diff_id mismatch: the config says "
				  "%s, the uncompressed layer is %s",
				  l->source, l->diff_id, h->diff_id);
	return 0;
}

/*
 * Where a zstd layer's decompressed copy goes: beside the index in the cache
 * (renamed into place by keep_copy), or, without a cache or when it cannot
 * be written, an unlinked scratch file in $TMPDIR that lives as long as the
 * mount: slower next time, still correct.
 */
static int open_copy(struct index_builder *b, const char *cache_path,
		     struct lf_err *err)
{
	const char *tmpdir = getenv("TMPDIR");
	struct lf_err werr;
	int ret;

	if (cache_path) {
		b->copy_fd = lf_cache_mkstemp(cache_path, ".tar", &b->copy_tmp,
					      &werr);
		if (b->copy_fd >= 0)
			return 0;
		lf_log(LF_LOG_WARN,
		       "%s; keeping the decompressed layer in "
		       "a temporary file",
		       werr.msg);
	}
	lf_buf_reset(&b->copy_tmp);
	ret = lf_buf_addf(&b->copy_tmp, "%s/layerfs-zstd.XXXXXX",
			  tmpdir && *tmpdir ? tmpdir : "/tmp");
	if (ret)
		return lf_err_set(err, ret, "out of memory");
	b->copy_fd = mkostemp(b->copy_tmp.data, O_CLOEXEC);
	if (b->copy_fd < 0)
		return lf_err_set(err, -errno, "cannot create '%s': %s",
				  b->copy_tmp.data, strerror(errno));
	/* private scratch copy: gone when the fd closes */
	unlink(b->copy_tmp.data);
	lf_buf_reset(&b->copy_tmp);
	return 0;
}

static int start(struct index_builder *b, const char *cache_path,
		 struct lf_err *err)
{
	int ret;

	b->lim = b->opts->limits;
	if ((ret = lf_limits_resolve(&b->lim, err)))
		return ret;
	b->span = malloc(LF_SPAN_SIZE);
	if (!b->span)
		return lf_err_set(err, -ENOMEM, "out of memory");
	ret = lf_sha256_new(&b->hc);

	if (!ret && b->comp != LF_COMP_NONE)
		ret = lf_sha256_new(&b->hu);
	if (!ret && b->comp == LF_COMP_GZIP)
		ret = lf_gzidx_builder_new(0, read_compressed, b,
					   b->layer->source, &b->gz);
	if (!ret && b->comp == LF_COMP_ZSTD)
		ret = lf_zstdec_new(read_compressed, b, b->layer->source,
				    &b->zd);
	if (ret)
		return lf_err_set(err, ret, "out of memory");
	if (b->comp == LF_COMP_ZSTD)
		return open_copy(b, cache_path, err);
	return 0;
}

static int drain(struct index_builder *b, struct lf_err *err)
{
	char buf[65536];
	ssize_t n;

	/* the digest covers every byte of the blob, also after the tar end */
	while ((n = read_compressed(b, buf, sizeof(buf))) > 0)
		;
	if (n < 0)
		return lf_err_set(err, (int)n, "'%s': read error: %s",
				  b->layer->source, strerror((int)-n));
	return 0;
}

static int run(struct index_builder *b, struct lf_index *idx, const char *key,
	       struct lf_err *err)
{
	struct lf_cache_header *h;
	uint64_t tin = 0, tout = 0;
	int ret;

	lf_err_clear(&b->inner);
	ret = lf_tarscan_stream(read_tar, b, b->layer->source,
				lf_index_add_entry, b, err);
	if (ret && b->inner.code) {
		/* the real cause was below the tar reader */
		*err = b->inner;
		return ret;
	}
	if (ret)
		return ret;
	if (b->comp == LF_COMP_GZIP &&
	    (ret = lf_gzidx_builder_finish(b->gz, &b->points, &b->windows, &tin,
					   &tout, err)))
		return ret;
	if ((ret = drain(b, err)))
		return ret;
	if (b->comp == LF_COMP_GZIP && gz_spans(b, true)) {
		*err = b->inner;
		return err->code;
	}
	if (b->span_fill && (ret = span_flush(b)))
		return lf_err_set(err, ret, "out of memory");
	if ((ret = lf_index_assemble(b, key, idx)))
		return lf_err_set(err, ret, "out of memory");
	h = idx->map;
	lf_sha256_final(b->hc, h->blob_digest);
	if (b->hu)
		lf_sha256_final(b->hu, h->diff_id);
	else
		memcpy(h->diff_id, h->blob_digest, LF_DIGEST_LEN);
	if (b->opts->verify) {
		if ((ret = verify(b, idx, err)))
			return ret;
		h->flags |= lf_le32(LF_CACHE_VERIFIED);
	}
	if (b->opts->progress)
		b->opts->progress(b->opts->progress_ctx, b->in_pos, b->in_pos);
	return 0;
}

void lf_index_builder_release(struct index_builder *b)
{
	lf_sha256_free(b->hc);
	lf_sha256_free(b->hu);
	lf_gzidx_builder_free(b->gz);
	lf_zstdec_free(b->zd);
	if (b->copy_fd >= 0)
		close(b->copy_fd);
	if (b->copy_tmp.len)
		unlink(b->copy_tmp.data);
	lf_buf_release(&b->copy_tmp);
	lf_buf_release(&b->entries);
	lf_buf_release(&b->strings);
	lf_buf_release(&b->xattrs);
	lf_buf_release(&b->sparse);
	lf_buf_release(&b->points);
	lf_buf_release(&b->windows);
	lf_buf_release(&b->sums);
	lf_buf_release(&b->chunks);
	lf_buf_release(&b->gzspan);
	free(b->span);
	lf_buf_release(&b->path);
	lf_buf_release(&b->link);
}

/* Keep the zstd copy: rename it next to the index and reopen read-only. */
static int keep_copy(struct index_builder *b, struct lf_index *idx,
		     const char *cache_path, struct lf_err *err)
{
	struct lf_buf final;
	int ret = 0;

	if (!b->copy_tmp.len) {
		idx->tar_fd = b->copy_fd; /* unlinked scratch file */
		b->copy_fd = -1;
		return 0;
	}
	lf_buf_init(&final);
	if (lf_buf_addf(&final, "%s.tar", cache_path)) {
		ret = lf_err_set(err, -ENOMEM, "out of memory");
	} else if (rename(b->copy_tmp.data, final.data) < 0) {
		ret = lf_err_set(err, -errno, "cannot rename to '%s': %s",
				 final.data, strerror(errno));
	} else {
		lf_buf_reset(&b->copy_tmp);
		idx->tar_fd = b->copy_fd;
		b->copy_fd = -1;
		/* to drop the copy if it is damaged later (NULL: kept) */
		idx->copy_path = strdup(final.data);
	}
	lf_buf_release(&final);
	return ret;
}

static int build(const struct lf_image_layer *layer,
		 const struct lf_index_opts *opts, enum lf_compression comp,
		 const char *key, const char *cache_path, struct lf_index *idx,
		 struct lf_err *err)
{
	struct index_builder b = {
		.layer = layer, .opts = opts, .comp = comp, .copy_fd = -1
	};
	const char *why = NULL;
	struct lf_err werr;
	int ret;

	lf_index_builder_init(&b);
	ret = start(&b, cache_path, err);
	if (!ret)
		ret = run(&b, idx, key, err);
	if (!ret && comp == LF_COMP_ZSTD)
		ret = keep_copy(&b, idx, cache_path, err);
	if (!ret) {
		lf_cache_seal(idx->map, idx->maplen);
		ret = lf_index_attach(idx, &why);
		if (ret)
			lf_err_set(err, ret, "'%s': %s", layer->source, why);
	}
	if (!ret && cache_path) {
		/* a cache we cannot write costs speed, not correctness */
		if (lf_cache_store(cache_path, idx->map, idx->maplen, &werr))
			lf_log(LF_LOG_WARN, "%s", werr.msg);
	}
	lf_index_builder_release(&b);
	return ret;
}

/* The layer's manifest gives the TOC digest an eStargz index was built
 * for (another image's word for the same blob is not this one's). */
static bool toc_named(const struct lf_image_layer *layer,
		      const struct lf_cache_header *h)
{
	static const char hx[] = "0123456789abcdef";
	char want[LF_DIGEST_LEN] = "sha256:";

	for (int i = 0; i < 32; i++) {
		want[7 + 2 * i] = hx[h->toc_sha256[i] >> 4];
		want[8 + 2 * i] = hx[h->toc_sha256[i] & 15];
	}
	want[71] = '\0';
	return !strcmp(layer->toc_digest, want);
}

/*
 * A usable cache file for this layer, or -ENOENT/-EINVAL to rebuild.  want:
 * the blob's compression, or -1 to take the file's word for it (a key made
 * of the blob's digest names its bytes, so its compression too).
 */
static int load(const struct lf_image_layer *layer,
		const struct lf_index_opts *opts, int want, const char *key,
		const char *cache_path, struct lf_index *idx)
{
	const struct lf_cache_header *h;
	enum lf_compression comp;
	const char *why = NULL, *quiet = NULL;
	struct lf_buf copy;
	struct lf_err err;
	struct stat st;
	int ret;

	ret = lf_cache_load(cache_path, key, &idx->map, &idx->maplen, &err);
	if (ret == -ENOENT)
		return ret;
	if (ret) {
		lf_log(LF_LOG_WARN, "ignoring index cache file: %s; rebuilding",
		       err.msg);
		return ret;
	}
	idx->mapped = true;
	h = idx->map;
	comp = (enum lf_compression)lf_le32(h->compression);
	if (lf_le64(h->blob_size) != lf_vfile_size(layer->blob) ||
	    (want >= 0 && comp != (enum lf_compression)want) ||
	    comp > LF_COMP_ZSTD)
		why = "it describes a blob of another size or compression";
	else if (opts->verify && !(lf_le32(h->flags) & LF_CACHE_VERIFIED))
		why = quiet = "it was built with --no-verify";
	else if ((lf_le32(h->flags) & LF_CACHE_ESTARGZ) && !toc_named(layer, h))
		why = quiet = "it was built from an eStargz TOC the image "
			      "does not name";
	else if (lf_index_attach(idx, &why) == 0)
		why = NULL;
	if (!why && comp == LF_COMP_ZSTD) {
		lf_buf_init(&copy);
		if (!lf_buf_addf(&copy, "%s.tar", cache_path))
			idx->tar_fd = lf_open_own_file(copy.data, &st);
		/* to drop the copy if it is damaged later (NULL: kept) */
		if (idx->tar_fd >= 0)
			idx->copy_path = strdup(copy.data);
		lf_buf_release(&copy);
		if (idx->tar_fd < 0)
			idx->tar_fd = -1;
		if (idx->tar_fd < 0 ||
		    (uint64_t)st.st_size != lf_le64(h->tar_size))
			why = "the decompressed copy of the layer is missing";
	}
	if (why) {
		/* --no-verify indexes, and eStargz ones an image without
		 * the same TOC digest cannot use, are replaced silently;
		 * others say so */
		if (why != quiet)
			lf_log(LF_LOG_WARN,
			       "ignoring index cache file '%s': %s; rebuilding",
			       cache_path, why);
		lf_cache_unmap(idx->map, idx->maplen);
		if (idx->tar_fd >= 0)
			close(idx->tar_fd);
		idx->tar_fd = -1;
		free(idx->copy_path);
		idx->copy_path = NULL;
		idx->map = NULL;
		idx->mapped = false;
		return -EINVAL;
	}
	idx->cached = true;
	idx->cache_path = strdup(cache_path); /* NULL: not dropped if bad */
	/* checking the file touched every page; most (checkpoint windows,
	 * entries of paths nobody asks for) are not needed again soon: let
	 * them go from our RSS, the page cache keeps them */
	madvise(idx->map, idx->maplen, MADV_DONTNEED);
	return 0;
}

/* An eStargz layer indexed from its TOC and stored; nonzero (warned
 * about) when it cannot be: the caller streams the layer instead. */
static int from_toc(const struct lf_image_layer *layer,
		    const struct lf_index_opts *opts, const char *key,
		    const char *cache_path, struct lf_index *idx)
{
	const char *label = opts->label ? opts->label : "layer";
	struct lf_err err, werr;
	int ret;

	lf_err_clear(&err);
	ret = lf_index_build_estargz(layer, opts, key, idx, &err);
	if (ret == -ENOENT && !err.code) {
		lf_log(LF_LOG_WARN,
		       "%s: blob %s has no eStargz footer though the manifest "
		       "gives its TOC digest; reading the whole blob",
		       label, layer->source);
		return ret;
	}
	if (ret) {
		lf_log(LF_LOG_WARN,
		       "%s: blob %s: not using its eStargz TOC: %s; reading "
		       "the whole blob",
		       label, layer->source, err.msg);
		return ret;
	}
	if (cache_path &&
	    lf_cache_store(cache_path, idx->map, idx->maplen, &werr))
		lf_log(LF_LOG_WARN, "%s", werr.msg);
	return 0;
}

int lf_index_open(const struct lf_image_layer *layer,
		  const struct lf_index_opts *opts, struct lf_index **out,
		  struct lf_err *err)
{
	const char *label = opts->label ? opts->label : "layer";
	struct lf_index *idx;
	enum lf_compression comp = LF_COMP_NONE;
	struct lf_buf path;
	bool by_digest;
	char key[80];
	int ret;

	if (!layer->blob)
		return lf_err_set(err, -ENOENT, "%s: blob %s is missing", label,
				  layer->source);
	idx = lf_index_alloc();
	if (!idx)
		return lf_err_set(err, -ENOMEM, "out of memory");
	lf_buf_init(&path);
	/* keyed by the blob's digest, a cached index needs no blob byte (a
	 * registry blob is not fetched); by diff_id it must match the blob */
	by_digest = lf_digest_valid(layer->digest);
	if (!by_digest && (ret = detect(layer, &comp, err)))
		goto fail;
	lf_index_key(layer, key);
	if (key[0] && opts->cache_dir &&
	    lf_cache_path(opts->cache_dir, key, ".idx", &path)) {
		ret = lf_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	if (path.len && !load(layer, opts, by_digest ? -1 : (int)comp, key,
			      path.data, idx)) {
		*out = idx;
		lf_buf_release(&path);
		return 0;
	}
	if (by_digest && layer->toc_digest[0] &&
	    !from_toc(layer, opts, key, path.len ? path.data : NULL, idx)) {
		*out = idx;
		lf_buf_release(&path);
		return 0;
	}
	if (by_digest && (ret = detect(layer, &comp, err)))
		goto fail;
	ret = build(layer, opts, comp, key, path.len ? path.data : NULL, idx,
		    err);
	if (ret)
		goto fail;
	lf_buf_release(&path);
	*out = idx;
	return 0;
fail:
	lf_buf_release(&path);
	lf_index_close(idx);
	return lf_err_prefix(err, "%s", label);
}

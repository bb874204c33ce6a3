// SPDX-License-Identifier: MIT
/* vfile_gzip.c - random access to the decompressed bytes of a gzip file. */
#include "layerfs/vfile_gzip.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layerfs/buf.h"
#include "layerfs/digest.h"
#include "layerfs/gzidx.h"
#include "layerfs/limits.h"
#include "layerfs/log.h"
#include "layerfs/whiteout.h"

/* Largest span between two checkpoints we agree to hold in memory. */
#define SPAN_MAX (64u << 20)
/* Output discarded while the checkpoints are built. */
#define SCRATCH (256u << 10)
/* A checkpoint file bigger than this is not ours. */
#define SAVED_MAX (1ull << 32)

/*
 * `<cache>/gzouter-<hex>.gzi`: the checkpoints of one gzip file, hex = the
 * sha256 of its identity (device, inode, size, mtime and ctime to the
 * nanosecond: a file changed in any way gets another name, and ctime
 * cannot be set back).  Little-endian header, then the points, then the
 * windows; `sum` covers all of it (with `sum` zeroed) and every point is
 * checked again at load, so a damaged or forged file is only rebuilt.
 */
#define SAVED_MAGIC "LFGZO\r\n\032"
#define SAVED_VERSION 1

struct saved_header {
	char magic[8];
	uint32_t version;
	uint32_t header_size;
	char key[LF_DIGEST_LEN];
	uint64_t total_in, total_out, npoints, windows_len;
	char sum[LF_DIGEST_LEN];
};
_Static_assert(sizeof(struct saved_header) == 192, "gzouter header size");

struct slot {
	uint64_t no;	     /* checkpoint number */
	unsigned char *data; /* NULL: free slot */
	size_t len;
	uint64_t used; /* LRU clock */
};

struct gzv {
	int refs;	       /* atomic */
	struct lf_vfile *file; /* owned: the compressed bytes */
	struct lf_buf points, windows;
	struct lf_gzidx_view view;
	pthread_mutex_t lock; /* slots and clock */
	struct slot slots[LF_VFILE_GZIP_SLOTS];
	uint64_t clock;
};

bool lf_vfile_is_gzip(const struct lf_vfile *vf)
{
	unsigned char m[2];

	return lf_vfile_pread(vf, m, 2, 0) == 2 && m[0] == 0x1f && m[1] == 0x8b;
}

static void gzv_free(struct gzv *g)
{
	size_t i;

	for (i = 0; i < LF_VFILE_GZIP_SLOTS; i++)
		free(g->slots[i].data);
	lf_buf_release(&g->points);
	lf_buf_release(&g->windows);
	lf_vfile_close(g->file);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

static void gzv_ref(void *ctx)
{
	struct gzv *g = ctx;

	__atomic_add_fetch(&g->refs, 1, __ATOMIC_RELAXED);
}

static void gzv_unref(void *ctx)
{
	struct gzv *g = ctx;

	if (__atomic_sub_fetch(&g->refs, 1, __ATOMIC_ACQ_REL) == 0)
		gzv_free(g);
}

static int gzv_check(void *ctx)
{
	struct gzv *g = ctx;

	return lf_vfile_check(g->file);
}

static uint64_t span_end(const struct gzv *g, size_t i)
{
	return i + 1 < g->view.npoints ? lf_le64(g->view.points[i + 1].out)
				       : g->view.total_out;
}

/* Copy what [off, off+len) needs from a cached span, if there is one. */
static size_t from_slot(struct gzv *g, size_t i, void *buf, size_t len,
			uint64_t skip)
{
	size_t k, n = 0;

	pthread_mutex_lock(&g->lock);
	for (k = 0; k < LF_VFILE_GZIP_SLOTS; k++) {
		struct slot *s = &g->slots[k];

		if (s->data && s->no == i && skip < s->len) {
			n = LF_MIN(len, s->len - (size_t)skip);
			memcpy(buf, s->data + skip, n);
			s->used = ++g->clock;
			break;
		}
	}
	pthread_mutex_unlock(&g->lock);
	return n;
}

/* Keep a freshly inflated span (takes data), evicting the least used. */
static void to_slot(struct gzv *g, size_t i, unsigned char *data, size_t len)
{
	struct slot *victim = &g->slots[0];
	size_t k;

	pthread_mutex_lock(&g->lock);
	for (k = 0; k < LF_VFILE_GZIP_SLOTS; k++) {
		struct slot *s = &g->slots[k];

		if (s->data && s->no == i) { /* another thread was first */
			victim = NULL;
			break;
		}
		if (!s->data || s->used < victim->used)
			victim = s;
		if (!s->data)
			break;
	}
	if (victim) {
		free(victim->data);
		victim->no = i;
		victim->data = data;
		victim->len = len;
		victim->used = ++g->clock;
		data = NULL;
	}
	pthread_mutex_unlock(&g->lock);
	free(data);
}

static ssize_t gzv_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct gzv *g = ctx;
	size_t done = 0;

	while (done < len && off < g->view.total_out) {
		size_t i = lf_gzidx_find(&g->view, off), n, got = 0;
		uint64_t start = lf_le64(g->view.points[i].out);
		uint64_t end = span_end(g, i);
		unsigned char *data;
		struct lf_err err;

		if (off < start || end <= off || end - start > SPAN_MAX)
			return -EIO; /* cannot happen: checked at open */
		n = from_slot(g, i, (char *)buf + done, len - done,
			      off - start);
		if (!n) {
			data = malloc((size_t)(end - start));
			if (!data)
				return -ENOMEM;
			if (lf_gzidx_extract(&g->view, i, g->file, data,
					     (size_t)(end - start), &got,
					     &err) ||
			    got != end - start) {
				free(data);
				lf_log(LF_LOG_ERR, "%s", err.msg);
				return -EIO;
			}
			n = LF_MIN(len - done, (size_t)(end - off));
			memcpy((char *)buf + done, data + (off - start), n);
			to_slot(g, i, data, (size_t)(end - start));
		}
		done += n;
		off += n;
	}
	return (ssize_t)done;
}

static const struct lf_vfile_ops gzv_ops = {
	.pread = gzv_pread,
	.ref = gzv_ref,
	.unref = gzv_unref,
	.check = gzv_check,
};

/* ---- the checkpoint file ------------------------------------------------ */

static int identity_key(const struct lf_vfile *file, char key[LF_DIGEST_LEN])
{
	struct stat st;
	char id[256];
	int n;

	if (lf_vfile_stat(file, &st))
		return -ENOTSUP;
	n = snprintf(id, sizeof(id),
		     "layerfs gzouter %d %llu %llu %lld %lld.%09ld %lld.%09ld",
		     SAVED_VERSION, (unsigned long long)st.st_dev,
		     (unsigned long long)st.st_ino, (long long)st.st_size,
		     (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
		     (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
	return lf_sha256_mem(id, (size_t)n, key) ? -ENOMEM : 0;
}

static int saved_sum(const unsigned char *p, size_t len,
		     char out[LF_DIGEST_LEN])
{
	struct saved_header h;
	struct lf_sha256 *s;

	if (lf_sha256_new(&s))
		return -ENOMEM;
	memcpy(&h, p, sizeof(h));
	memset(h.sum, 0, sizeof(h.sum));
	lf_sha256_update(s, &h, sizeof(h));
	lf_sha256_update(s, p + sizeof(h), len - sizeof(h));
	lf_sha256_final(s, out);
	lf_sha256_free(s);
	return 0;
}

/* Every point could have come from the builder over this file. */
static bool points_ok(const struct gzv *g)
{
	const struct lf_gzidx_view *v = &g->view;
	size_t i;

	if (!v->npoints || v->points[0].out || v->points[0].in ||
	    !(v->points[0].flags & LF_GZIDX_POINT_MEMBER))
		return false;
	for (i = 0; i < v->npoints; i++) {
		const struct lf_gzidx_point *p = &v->points[i];
		uint64_t out = lf_le64(p->out), in = lf_le64(p->in);
		uint32_t wl = lf_le32(p->window_len);

		if ((i && out <= lf_le64(v->points[i - 1].out)) ||
		    (out >= v->total_out && v->total_out) || in > v->total_in ||
		    p->bits > 7 || (p->flags & ~LF_GZIDX_POINT_MEMBER) ||
		    (!(p->flags & LF_GZIDX_POINT_MEMBER) && !wl) ||
		    lf_range_outside(lf_le64(p->window_off), wl,
				     v->windows_len) ||
		    span_end(g, i) - out > SPAN_MAX)
			return false;
	}
	return true;
}

static int read_all(int fd, struct lf_buf *b, size_t len)
{
	size_t done = 0;

	if (lf_buf_addzero(b, len))
		return -ENOMEM;
	while (done < len) {
		ssize_t n = read(fd, b->data + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (size_t)n;
	}
	return 0;
}

/* Load `path` into g; anything wrong is a reason (for the warning). */
static const char *load_saved(struct gzv *g, const char *path, const char *key)
{
	struct saved_header h;
	char sum[LF_DIGEST_LEN];
	struct lf_buf all;
	struct stat st;
	const char *why = NULL;
	uint64_t plen;
	int fd;

	fd = lf_open_own_file(path, &st);
	if (fd < 0 && fd != -EINVAL)
		return fd == -ENOENT ? "" : "cannot be opened";
	lf_buf_init(&all);
	if (fd < 0 || (uint64_t)st.st_size < sizeof(h) ||
	    (uint64_t)st.st_size > SAVED_MAX)
		why = "not a regular file of a plausible size";
	else if (read_all(fd, &all, (size_t)st.st_size))
		why = "cannot be read";
	if (fd >= 0)
		close(fd);
	if (why)
		goto out;
	memcpy(&h, all.data, sizeof(h));
	if (memcmp(h.magic, SAVED_MAGIC, 8) ||
	    lf_le32(h.version) != SAVED_VERSION ||
	    lf_le32(h.header_size) != sizeof(h) ||
	    memcmp(h.key, key, LF_DIGEST_LEN)) {
		why = "not a checkpoint file of this version for this file";
		goto out;
	}
	if (saved_sum((const void *)all.data, all.len, sum) ||
	    memcmp(sum, h.sum, LF_DIGEST_LEN)) {
		why = "its checksum does not match";
		goto out;
	}
	if (lf_mul_overflow(lf_le64(h.npoints), sizeof(struct lf_gzidx_point),
			    &plen) ||
	    plen > all.len - sizeof(h) ||
	    lf_le64(h.windows_len) != all.len - sizeof(h) - plen) {
		why = "its sections do not add up";
		goto out;
	}
	if (lf_buf_add(&g->points, all.data + sizeof(h), (size_t)plen) ||
	    lf_buf_add(&g->windows, all.data + sizeof(h) + plen,
		       (size_t)lf_le64(h.windows_len))) {
		why = "out of memory";
		goto out;
	}
	g->view.total_in = lf_le64(h.total_in);
	g->view.total_out = lf_le64(h.total_out);
	lf_gzidx_view_set(&g->view, &g->points, &g->windows);
	if (g->view.total_in != lf_vfile_size(g->file) || !points_ok(g))
		why = "a checkpoint is impossible for this file";
out:
	lf_buf_release(&all);
	if (why && why[0]) {
		lf_buf_reset(&g->points);
		lf_buf_reset(&g->windows);
		memset(&g->view, 0, sizeof(g->view));
	}
	return why;
}

/* Temp file + rename; a cache we cannot write costs time, not data. */
static void store_saved(const struct gzv *g, const char *path, const char *key)
{
	struct saved_header h = { .magic = SAVED_MAGIC };
	struct lf_buf all, tmp;
	int fd = -1, ret;

	lf_buf_init(&all);
	lf_buf_init(&tmp);
	h.version = lf_le32(SAVED_VERSION);
	h.header_size = lf_le32(sizeof(h));
	memcpy(h.key, key, LF_DIGEST_LEN);
	h.total_in = lf_le64(g->view.total_in);
	h.total_out = lf_le64(g->view.total_out);
	h.npoints = lf_le64(g->view.npoints);
	h.windows_len = lf_le64(g->windows.len);
	ret = lf_buf_add(&all, &h, sizeof(h)) ||
			      lf_buf_add(&all, g->points.data, g->points.len) ||
			      lf_buf_add(&all, g->windows.data,
					 g->windows.len) ||
			      lf_buf_addf(&tmp, "%s" LF_TMP_SUFFIX, path) ||
			      saved_sum((const void *)all.data, all.len, h.sum)
		      ? -ENOMEM
		      : 0;
	if (!ret) {
		memcpy(all.data + offsetof(struct saved_header, sum), h.sum,
		       sizeof(h.sum));
		fd = mkostemp(tmp.data, O_CLOEXEC);
		ret = fd < 0 ? -errno : lf_write_all(fd, all.data, all.len);
	}
	if (!ret && rename(tmp.data, path) < 0)
		ret = -errno;
	if (fd >= 0)
		close(fd);
	if (ret) {
		if (fd >= 0)
			unlink(tmp.data);
		lf_log(LF_LOG_WARN, "cannot store '%s': %s", path,
		       strerror(-ret));
	}
	lf_buf_release(&all);
	lf_buf_release(&tmp);
}

/* The archive is bounded like a layer: a gzip bomb given as the image
 * stops here, before its checkpoints fill memory. */
static int over_limits(const struct lf_limits *l, const struct lf_vfile *f,
		       uint64_t out, uint64_t in, struct lf_err *err)
{
	if (out > l->max_size)
		return lf_err_set(err, -EFBIG,
				  "'%s': the uncompressed archive "
				  "exceeds the limit of %llu bytes "
				  "(LAYERFS_MAX_LAYER_SIZE)",
				  lf_vfile_name(f),
				  (unsigned long long)l->max_size);
	if (out > l->ratio_floor && out / l->max_ratio > in)
		return lf_err_set(err, -EFBIG,
				  "'%s': the archive expands more "
				  "than %llu times (LAYERFS_MAX_RATIO)",
				  lf_vfile_name(f),
				  (unsigned long long)l->max_ratio);
	return 0;
}

/* The one pass: inflate everything, keep the checkpoints. */
static int build(struct gzv *g, struct lf_err *err)
{
	struct lf_vfile_cursor p = { .file = g->file };
	struct lf_gzidx_builder *b;
	unsigned char *scratch = malloc(SCRATCH);
	struct lf_limits lim = { 0 };
	uint64_t total = 0;
	size_t got, i;
	int ret;

	if (!scratch)
		return lf_err_set(err, -ENOMEM, "out of memory");
	if ((ret = lf_limits_resolve(&lim, err))) {
		free(scratch);
		return ret;
	}
	ret = lf_gzidx_builder_new(0, lf_vfile_cursor_read, &p,
				   lf_vfile_name(g->file), &b);
	if (ret) {
		free(scratch);
		return lf_err_set(err, ret, "out of memory");
	}
	do {
		ret = lf_gzidx_builder_read(b, scratch, SCRATCH, &got, err);
		total += got;
		if (!ret)
			ret = over_limits(&lim, g->file, total, p.pos, err);
	} while (!ret && got);
	if (!ret)
		ret = lf_gzidx_builder_finish(b, &g->points, &g->windows,
					      &g->view.total_in,
					      &g->view.total_out, err);
	lf_gzidx_builder_free(b);
	free(scratch);
	if (ret)
		return ret;
	lf_gzidx_view_set(&g->view, &g->points, &g->windows);
	for (i = 0; i < g->view.npoints; i++)
		if (span_end(g, i) - lf_le64(g->view.points[i].out) > SPAN_MAX)
			return lf_err_set(err, -EFBIG,
					  "'%s': a deflate block of more than "
					  "%u MiB at compressed offset %llu",
					  lf_vfile_name(g->file),
					  SPAN_MAX >> 20,
					  (unsigned long long)lf_le64(
						  g->view.points[i].in));
	return 0;
}

/* From the cache when a valid file is there, else one pass (then saved). */
static int load_or_build(struct gzv *g, const char *cache_dir,
			 struct lf_err *err)
{
	char key[LF_DIGEST_LEN];
	struct lf_buf path;
	const char *why;
	int ret;

	if (!cache_dir || identity_key(g->file, key))
		return build(g, err);
	lf_buf_init(&path);
	if (lf_buf_addf(&path, "%s/gzouter-%s.gzi", cache_dir, key + 7)) {
		lf_buf_release(&path);
		return lf_err_set(err, -ENOMEM, "out of memory");
	}
	why = load_saved(g, path.data, key);
	if (why && why[0])
		lf_log(LF_LOG_WARN,
		       "ignoring checkpoint file '%s': %s; rebuilding",
		       path.data, why);
	ret = why ? build(g, err) : 0;
	if (why && !ret)
		store_saved(g, path.data, key);
	lf_buf_release(&path);
	return ret;
}

int lf_vfile_gzip_open(struct lf_vfile *file, const char *cache_dir,
		       struct lf_vfile **out, struct lf_err *err)
{
	struct gzv *g = calloc(1, sizeof(*g));
	int ret;

	if (!g) {
		lf_vfile_close(file);
		return lf_err_set(err, -ENOMEM, "out of memory");
	}
	g->refs = 1;
	lf_buf_init(&g->points);
	lf_buf_init(&g->windows);
	pthread_mutex_init(&g->lock, NULL);
	g->file = file;
	ret = load_or_build(g, cache_dir, err);
	if (!ret) {
		/* from_ops drops our reference if it fails */
		ret = lf_vfile_from_ops(&gzv_ops, g, g->view.total_out,
					lf_vfile_name(file), out);
		if (ret)
			return lf_err_set(err, ret, "out of memory");
		return 0;
	}
	gzv_free(g);
	return ret;
}

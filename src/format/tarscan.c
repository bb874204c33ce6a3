// SPDX-License-Identifier: MIT
/* tarscan.c - list tar members with exact data offsets through libarchive. */
#include "layerfs/tarscan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <archive.h>
#include <archive_entry.h>

#include "layerfs/buf.h"
#include "tarscan_internal.h"

#define TAR_BLOCK 512
#define READ_CHUNK (64 * 1024)
/* Bytes of the stream's end kept to judge a short final block (rule 6). */
#define TAIL_KEEP 1024
/*
 * Header bytes kept per member to read its names.  libarchive takes at most
 * 32 extension headers of 1 MiB; a member with more header bytes than this
 * keeps libarchive's (converted) names.
 */
#define RAW_MAX (8u << 20)

struct scan {
	struct archive *a;
	const char *name; /* borrowed, for messages */
	lf_tarscan_entry_fn fn;
	void *fn_ctx;

	/* streaming source */
	lf_tarscan_read_fn rd;
	void *rd_ctx;
	bool rd_eof;
	unsigned char tail[TAIL_KEEP]; /* last bytes handed to libarchive */
	size_t tail_len;

	/* seekable source */
	const struct lf_vfile *vf;
	uint64_t pos; /* next byte the read callback gives */

	unsigned char *chunk; /* owned READ_CHUNK buffer */
	int src_err;	      /* -errno from the source, 0 if none */
	uint64_t total;	      /* bytes handed to libarchive */

	/* the last member, to tell a clean end from a truncated one */
	uint64_t nmembers;
	uint64_t last_off, last_size;
	struct lf_buf last_name;

	/*
	 * Names are bytes: libarchive converts PAX names from UTF-8 to the
	 * locale (normalising to NFC) and may mangle non-UTF-8 ones, so the
	 * names are read from the header bytes themselves.  Streaming: the
	 * bytes handed to libarchive from the next member's first header on
	 * are kept in win; seekable: they are read again from the file.
	 */
	struct lf_buf win; /* stream bytes from win_start ... */
	size_t win_skip;   /* ... at win.data + win_skip */
	uint64_t win_start;
	uint64_t keep_from;	  /* where the next member's headers start */
	bool win_lost;		  /* win overflowed: names from libarchive */
	struct lf_buf raw;	  /* seekable: one member's header bytes */
	struct lf_buf path, link; /* the names handed to the callback */

	/* per-member arrays, reused so memory stays bounded */
	struct lf_tar_xattr *xattrs;
	size_t xattr_cap;
	struct lf_tar_sparse *sparse;
	size_t sparse_cap;
};

static void keep_tail(struct scan *s, const unsigned char *p, size_t n)
{
	if (n >= TAIL_KEEP) {
		memcpy(s->tail, p + n - TAIL_KEEP, TAIL_KEEP);
		s->tail_len = TAIL_KEEP;
		return;
	}
	if (s->tail_len + n > TAIL_KEEP) {
		size_t drop = s->tail_len + n - TAIL_KEEP;

		memmove(s->tail, s->tail + drop, s->tail_len - drop);
		s->tail_len -= drop;
	}
	memcpy(s->tail + s->tail_len, p, n);
	s->tail_len += n;
}

/* Keep stream bytes p[0..n) (at offset off) that may hold a header. */
static void keep_window(struct scan *s, const unsigned char *p, size_t n,
			uint64_t off)
{
	size_t have = s->win.len - s->win_skip;

	if (off + n <= s->keep_from || s->win_lost)
		return;
	if (off < s->keep_from) {
		p += s->keep_from - off;
		n -= (size_t)(s->keep_from - off);
		off = s->keep_from;
	}
	/* drop what trim_window() released, once per chunk: O(bytes) */
	if (s->win_skip) {
		memmove(s->win.data, s->win.data + s->win_skip, have);
		lf_buf_setlen(&s->win, have);
		s->win_skip = 0;
	}
	if (!have)
		s->win_start = off;
	if (have + n > RAW_MAX + 2 * READ_CHUNK || s->win_start + have != off ||
	    lf_buf_add(&s->win, p, n)) {
		s->win_lost = true;
		lf_buf_reset(&s->win);
	}
}

/* The member just read ends at `next`: release the window's bytes before
 * it (the memory is reused by keep_window()). */
static void trim_window(struct scan *s, uint64_t next)
{
	uint64_t end = s->win_start + (s->win.len - s->win_skip);

	s->keep_from = next;
	if (s->win_lost || next >= end) {
		/* after an overflow, bytes from next on may have gone by:
		 * the next member's names then come from libarchive */
		if (s->win_lost && next < s->total)
			s->keep_from = s->total;
		s->win_lost = false;
		s->win_skip = 0;
		lf_buf_reset(&s->win);
		return;
	}
	if (next > s->win_start) {
		s->win_skip += (size_t)(next - s->win_start);
		s->win_start = next;
	}
}

static ssize_t stream_read_cb(struct archive *a, void *ctx, const void **buf)
{
	struct scan *s = ctx;
	ssize_t n;

	(void)a;
	if (s->rd_eof)
		return 0;
	n = s->rd(s->rd_ctx, s->chunk, READ_CHUNK);
	if (n < 0) {
		s->src_err = (int)n;
		return -1;
	}
	if (n == 0)
		s->rd_eof = true;
	keep_tail(s, s->chunk, (size_t)n);
	keep_window(s, s->chunk, (size_t)n, s->total);
	s->total += (uint64_t)n;
	*buf = s->chunk;
	return n;
}

/* Keep pulling after the archive's end: the caller hashes every byte. */
static int stream_drain(struct scan *s, struct lf_err *err)
{
	while (!s->rd_eof) {
		ssize_t n = s->rd(s->rd_ctx, s->chunk, READ_CHUNK);

		if (n < 0)
			return lf_err_set(err, (int)n, "'%s': read error: %s",
					  s->name, strerror((int)-n));
		if (n == 0)
			s->rd_eof = true;
		keep_tail(s, s->chunk, (size_t)n);
		s->total += (uint64_t)n;
	}
	return 0;
}

static ssize_t vfile_read_cb(struct archive *a, void *ctx, const void **buf)
{
	struct scan *s = ctx;
	ssize_t n;

	(void)a;
	n = lf_vfile_pread(s->vf, s->chunk, READ_CHUNK, s->pos);
	if (n < 0) {
		s->src_err = (int)n;
		return -1;
	}
	s->pos += (uint64_t)n;
	*buf = s->chunk;
	return n;
}

/* Member data is skipped here, never read: the point of seekable mode. */
static int64_t vfile_skip_cb(struct archive *a, void *ctx, int64_t req)
{
	struct scan *s = ctx;
	uint64_t left = s->total - s->pos;

	(void)a;
	if (req <= 0)
		return 0;
	if ((uint64_t)req > left)
		req = (int64_t)left;
	s->pos += (uint64_t)req;
	return req;
}

static int64_t vfile_seek_cb(struct archive *a, void *ctx, int64_t off,
			     int whence)
{
	struct scan *s = ctx;
	int64_t base;

	(void)a;
	if (whence == SEEK_SET)
		base = 0;
	else if (whence == SEEK_CUR)
		base = (int64_t)s->pos;
	else
		base = (int64_t)s->total;
	if (off < -base || base + off > (int64_t)s->total)
		return ARCHIVE_FATAL;
	s->pos = (uint64_t)(base + off);
	return (int64_t)s->pos;
}

static enum lf_tar_type entry_type(struct archive_entry *ae)
{
	if (archive_entry_hardlink(ae) || archive_entry_hardlink_utf8(ae))
		return LF_TAR_HARDLINK;
	switch (archive_entry_filetype(ae)) {
	case AE_IFDIR:
		return LF_TAR_DIR;
	case AE_IFLNK:
		return LF_TAR_SYMLINK;
	case AE_IFCHR:
		return LF_TAR_CHR;
	case AE_IFBLK:
		return LF_TAR_BLK;
	case AE_IFIFO:
		return LF_TAR_FIFO;
	case AE_IFSOCK:
		return LF_TAR_SOCK;
	default:
		/* libarchive maps unknown typeflags to regular files too */
		return LF_TAR_REG;
	}
}

static const char *entry_link(struct archive_entry *ae, enum lf_tar_type t)
{
	const char *l;

	if (t == LF_TAR_HARDLINK) {
		l = archive_entry_hardlink(ae);
		return l ? l : archive_entry_hardlink_utf8(ae);
	}
	if (t == LF_TAR_SYMLINK) {
		l = archive_entry_symlink(ae);
		if (!l)
			l = archive_entry_symlink_utf8(ae);
		return l ? l : "";
	}
	return NULL;
}

static int collect_xattrs(struct scan *s, struct archive_entry *ae,
			  struct lf_tar_entry *e)
{
	const char *name;
	const void *value;
	size_t len, n = 0;
	int count = archive_entry_xattr_reset(ae);

	if (count <= 0)
		return 0;
	if ((size_t)count > s->xattr_cap) {
		void *p = reallocarray(s->xattrs, (size_t)count,
				       sizeof(*s->xattrs));

		if (!p)
			return -ENOMEM;
		s->xattrs = p;
		s->xattr_cap = (size_t)count;
	}
	while (n < (size_t)count &&
	       archive_entry_xattr_next(ae, &name, &value, &len) ==
		       ARCHIVE_OK) {
		s->xattrs[n].name = name;
		s->xattrs[n].value = value;
		s->xattrs[n].len = len;
		n++;
	}
	e->xattrs = s->xattrs;
	e->nxattrs = n;
	return 0;
}

/*
 * The sparse map gives the stored regions; their lengths sum to the bytes
 * stored in the stream.  Zero-length regions (GNU tar ends the map with one
 * at the file size) carry no data and are dropped.
 */
static int collect_sparse(struct scan *s, struct archive_entry *ae,
			  struct lf_tar_entry *e)
{
	la_int64_t off, len;
	size_t n = 0;
	uint64_t stored = 0;
	int count = archive_entry_sparse_reset(ae);

	if (count <= 0)
		return 0;
	if ((size_t)count > s->sparse_cap) {
		void *p = reallocarray(s->sparse, (size_t)count,
				       sizeof(*s->sparse));

		if (!p)
			return -ENOMEM;
		s->sparse = p;
		s->sparse_cap = (size_t)count;
	}
	while (n < (size_t)count &&
	       archive_entry_sparse_next(ae, &off, &len) == ARCHIVE_OK) {
		if (off < 0 || len < 0 ||
		    lf_add_overflow(stored, (uint64_t)len, &stored))
			return -EINVAL;
		if (len == 0)
			continue;
		s->sparse[n].offset = (uint64_t)off;
		s->sparse[n].length = (uint64_t)len;
		n++;
	}
	e->sparse = s->sparse;
	e->nsparse = n;
	e->data_size = stored;
	return 0;
}

/* The member's header bytes [from, to), or NULL when not at hand. */
static const unsigned char *header_bytes(struct scan *s, uint64_t from,
					 uint64_t to)
{
	size_t n = (size_t)(to - from);

	if (to < from || to - from > RAW_MAX)
		return NULL;
	if (!s->vf) {
		if (from < s->win_start ||
		    to > s->win_start + (s->win.len - s->win_skip))
			return NULL;
		return (const unsigned char *)s->win.data + s->win_skip +
		       (from - s->win_start);
	}
	lf_buf_reset(&s->raw);
	if (lf_buf_addzero(&s->raw, n) ||
	    lf_vfile_pread(s->vf, s->raw.data, n, from) != (ssize_t)n)
		return NULL;
	return (const unsigned char *)s->raw.data;
}

static int set_name(struct lf_buf *b, const struct lf_tar_span *sp,
		    const char **out)
{
	lf_buf_reset(b);
	if (lf_buf_add(b, sp->p, sp->len))
		return -ENOMEM;
	*out = b->data;
	return 0;
}

/*
 * Take the path and link target from the header bytes (names are bytes,
 * whatever their charset); where those cannot be had, libarchive's stay.
 */
static int raw_names(struct scan *s, struct lf_tar_entry *e)
{
	unsigned char joined[LF_TAR_JOINED];
	struct lf_tar_span path, link;
	const unsigned char *h;
	uint64_t from = (uint64_t)archive_read_header_position(s->a);
	int ret = 0;

	h = header_bytes(s, from, e->data_offset);
	if (!h || lf_tarscan_raw_names(h, (size_t)(e->data_offset - from),
				       joined, &path, &link))
		return 0;
	if (path.p)
		ret = set_name(&s->path, &path, &e->path);
	if (!ret && link.p && e->link)
		ret = set_name(&s->link, &link, &e->link);
	return ret;
}

static int fill_entry(struct scan *s, struct archive_entry *ae,
		      struct lf_tar_entry *e, struct lf_err *err)
{
	const char *path = archive_entry_pathname(ae);
	int64_t size = archive_entry_size(ae);
	int ret;

	memset(e, 0, sizeof(*e));
	if (!path)
		path = archive_entry_pathname_utf8(ae);
	e->path = path;
	e->type = entry_type(ae);
	e->link = entry_link(ae, e->type);
	if (e->type == LF_TAR_HARDLINK && !e->link)
		e->link = "";
	/* Linux reports 0777 for every symlink, as umoci and docker
	 * export show them, whatever the header stores */
	e->mode = e->type == LF_TAR_SYMLINK
			  ? 0777
			  : (uint32_t)archive_entry_perm(ae) & 07777;
	e->uid = archive_entry_uid(ae);
	e->gid = archive_entry_gid(ae);
	e->mtime = archive_entry_mtime(ae);
	e->mtime_nsec = (uint32_t)archive_entry_mtime_nsec(ae);
	e->size = size > 0 ? (uint64_t)size : 0;
	e->rdev_major = (uint32_t)archive_entry_rdevmajor(ae);
	e->rdev_minor = (uint32_t)archive_entry_rdevminor(ae);
	e->index = s->nmembers;
	/*
	 * libarchive has consumed every header block (PAX, GNU longname,
	 * old-GNU sparse extensions) and, for PAX sparse 1.0, the map at the
	 * start of the data area: the position is the first stored data byte.
	 */
	e->data_offset = (uint64_t)archive_filter_bytes(s->a, 0);
	/* Only regular files and PAX hardlinks with data store bytes. */
	if (e->type == LF_TAR_REG || e->type == LF_TAR_HARDLINK)
		e->data_size = e->size;
	ret = collect_sparse(s, ae, e);
	if (!ret)
		ret = collect_xattrs(s, ae, e);
	if (!ret)
		ret = raw_names(s, e);
	if (ret == -ENOMEM)
		return lf_err_set(err, ret, "'%s': out of memory", s->name);
	if (!e->path)
		return lf_err_set(err, -EINVAL,
				  "'%s': member %llu has no readable name",
				  s->name, (unsigned long long)s->nmembers);
	if (ret)
		return lf_err_set(err, ret,
				  "'%s': member '%s' has a bad sparse map",
				  s->name, e->path);
	return 0;
}

static int remember_member(struct scan *s, const struct lf_tar_entry *e,
			   struct lf_err *err)
{
	lf_buf_reset(&s->last_name);
	if (lf_buf_adds(&s->last_name, e->path))
		return lf_err_set(err, -ENOMEM, "'%s': out of memory", s->name);
	s->last_off = e->data_offset;
	s->last_size = e->data_size;
	s->nmembers++;
	if (!s->vf) {
		uint64_t end = e->data_offset + e->data_size;

		if (end < e->data_offset)
			end = UINT64_MAX - TAR_BLOCK;
		trim_window(s, end + (TAR_BLOCK - end % TAR_BLOCK) % TAR_BLOCK);
	}
	return 0;
}

/* Are the bytes [from, total) all zero?  Only called for a short tail. */
static bool tail_zero(struct scan *s, uint64_t from)
{
	unsigned char blk[TAIL_KEEP];
	const unsigned char *p;
	uint64_t n = s->total - from;
	uint64_t i;

	if (n > TAIL_KEEP)
		return false;
	if (s->vf) {
		if (lf_vfile_pread(s->vf, blk, (size_t)n, from) != (ssize_t)n)
			return false;
		p = blk;
	} else {
		if (n > s->tail_len)
			return false;
		p = s->tail + s->tail_len - n;
	}
	for (i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/*
 * libarchive failed while looking for the next header.  design.md section 3
 * rule 6: if the last member's data is complete and what follows it is at
 * most its padding plus a partial zero block, the writer merely left out the
 * padding or the end blocks (umoci does): a clean end.  Data cut short is a
 * truncated stream; anything else is a damaged header.
 */
static int judge_failure(struct scan *s, struct lf_err *err)
{
	uint64_t end = 0, hdr = 0;
	const char *msg = archive_error_string(s->a);

	if (!msg)
		msg = "unreadable header";
	if (s->src_err)
		return lf_err_set(err, s->src_err, "'%s': read error: %s",
				  s->name, strerror(-s->src_err));
	if (s->nmembers) {
		if (lf_add_overflow(s->last_off, s->last_size, &end) ||
		    end > s->total) {
			uint64_t left = s->total > s->last_off
						? s->total - s->last_off
						: 0;

			return lf_err_set(err, -EIO,
					  "'%s': truncated tar stream: member "
					  "'%s' needs %llu bytes, %llu left",
					  s->name, s->last_name.data,
					  (unsigned long long)s->last_size,
					  (unsigned long long)left);
		}
		hdr = end + ((TAR_BLOCK - end % TAR_BLOCK) % TAR_BLOCK);
	}
	if (s->total <= hdr ||
	    (s->total - hdr < TAR_BLOCK && tail_zero(s, hdr)))
		return 0;
	if (s->total - hdr < TAR_BLOCK)
		return lf_err_set(err, -EIO,
				  "'%s': truncated tar stream: incomplete "
				  "header at offset %llu",
				  s->name, (unsigned long long)hdr);
	return lf_err_set(err, -EINVAL,
			  "'%s': damaged tar header at offset %llu: %s",
			  s->name, (unsigned long long)hdr, msg);
}

static int scan_loop(struct scan *s, struct lf_err *err)
{
	struct archive_entry *ae;
	struct lf_tar_entry e;
	int r, ret;

	for (;;) {
		r = archive_read_next_header(s->a, &ae);
		if (r == ARCHIVE_EOF)
			return 0;
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
			return judge_failure(s, err);
		ret = fill_entry(s, ae, &e, err);
		if (ret)
			return ret;
		ret = remember_member(s, &e, err);
		if (ret)
			return ret;
		ret = s->fn(s->fn_ctx, &e, err);
		if (ret)
			return ret;
	}
}

static int scan_run(struct scan *s, struct lf_err *err)
{
	int r;

	s->a = archive_read_new();
	if (!s->a)
		return lf_err_set(err, -ENOMEM, "'%s': out of memory", s->name);
	/* tar only: compression is index.c's job, never libarchive's */
	archive_read_support_format_tar(s->a);
	if (s->vf) {
		archive_read_set_seek_callback(s->a, vfile_seek_cb);
		r = archive_read_open2(s->a, s, NULL, vfile_read_cb,
				       vfile_skip_cb, NULL);
	} else {
		/* no skip callback: every byte goes through rd, in order */
		r = archive_read_open2(s->a, s, NULL, stream_read_cb, NULL,
				       NULL);
	}
	if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
		/* an empty stream is an empty archive, not a damaged one */
		if (s->src_err || s->total)
			return judge_failure(s, err);
		return 0;
	}
	return scan_loop(s, err);
}

static void scan_release(struct scan *s)
{
	if (s->a)
		archive_read_free(s->a);
	free(s->chunk);
	free(s->xattrs);
	free(s->sparse);
	lf_buf_release(&s->last_name);
	lf_buf_release(&s->win);
	lf_buf_release(&s->raw);
	lf_buf_release(&s->path);
	lf_buf_release(&s->link);
}

static int scan_init(struct scan *s, const char *name, lf_tarscan_entry_fn fn,
		     void *ctx, struct lf_err *err)
{
	memset(s, 0, sizeof(*s));
	s->name = name ? name : "<tar>";
	s->fn = fn;
	s->fn_ctx = ctx;
	lf_buf_init(&s->last_name);
	lf_buf_init(&s->win);
	lf_buf_init(&s->raw);
	lf_buf_init(&s->path);
	lf_buf_init(&s->link);
	s->chunk = malloc(READ_CHUNK);
	if (!s->chunk)
		return lf_err_set(err, -ENOMEM, "'%s': out of memory", s->name);
	return 0;
}

int lf_tarscan_stream(lf_tarscan_read_fn rd, void *rd_ctx, const char *name,
		      lf_tarscan_entry_fn fn, void *ctx, struct lf_err *err)
{
	struct scan s;
	int ret;

	ret = scan_init(&s, name, fn, ctx, err);
	if (ret)
		goto out;
	s.rd = rd;
	s.rd_ctx = rd_ctx;
	ret = scan_run(&s, err);
	if (!ret)
		ret = stream_drain(&s, err);
out:
	scan_release(&s);
	return ret;
}

/* Compression is refused by magic bytes, whatever the file is called. */
static const char *compression_name(const unsigned char *p, ssize_t n)
{
	if (n >= 2 && p[0] == 0x1f && p[1] == 0x8b)
		return "gzip";
	if (n >= 4 && !memcmp(p, "\x28\xb5\x2f\xfd", 4))
		return "zstd";
	if (n >= 3 && !memcmp(p, "BZh", 3))
		return "bzip2";
	if (n >= 6 && !memcmp(p,
			      "\xfd"
			      "7zXZ\0",
			      6))
		return "xz";
	return NULL;
}

int lf_tarscan_vfile(const struct lf_vfile *vf, lf_tarscan_entry_fn fn,
		     void *ctx, struct lf_err *err)
{
	unsigned char magic[6];
	struct scan s;
	ssize_t n;
	int ret;

	ret = scan_init(&s, lf_vfile_name(vf), fn, ctx, err);
	if (ret)
		goto out;
	n = lf_vfile_pread(vf, magic, sizeof(magic), 0);
	if (n < 0) {
		ret = lf_err_set(err, (int)n, "'%s': read error: %s", s.name,
				 strerror((int)-n));
		goto out;
	}
	if (compression_name(magic, n)) {
		ret = lf_err_set(err, -EINVAL,
				 "'%s': compressed archive, decompress it "
				 "first (%s)",
				 s.name, compression_name(magic, n));
		goto out;
	}
	s.vf = vf;
	/* for a file, "bytes available" is known up front */
	s.total = lf_vfile_size(vf);
	ret = scan_run(&s, err);
out:
	scan_release(&s);
	return ret;
}

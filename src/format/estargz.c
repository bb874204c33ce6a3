// SPDX-License-Identifier: MIT
/* estargz.c - eStargz footers, TOCs and chunks (estargz.h). */
#include "layerfs/estargz.h"

#include "layerfs/digest.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <zlib.h>

/* ---- footer ---- */

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* "%016xSTARGZ" at p: the offset, or -1. */
static int64_t stargz_field(const unsigned char *p)
{
	uint64_t v = 0;
	int i, d;

	if (memcmp(p + 16, "STARGZ", 6))
		return -1;
	for (i = 0; i < 16; i++) {
		if ((d = hexval(p[i])) < 0)
			return -1;
		v = v << 4 | (uint64_t)d;
	}
	return v > INT64_MAX ? -1 : (int64_t)v;
}

/* An empty gzip member with FEXTRA, xlen extra bytes, a stored empty
 * final block and a zero trailer, `size` bytes at p. */
static bool empty_member(const unsigned char *p, size_t size, size_t xlen)
{
	static const unsigned char flate[5] = { 1, 0, 0, 0xff, 0xff };
	static const unsigned char zero[8] = { 0 };

	return p[0] == 0x1f && p[1] == 0x8b && p[2] == 8 && p[3] == 4 &&
	       (size_t)(p[10] | p[11] << 8) == xlen &&
	       !memcmp(p + 12 + xlen, flate, 5) &&
	       !memcmp(p + size - 8, zero, 8);
}

int lf_estargz_footer(const unsigned char *tail, size_t len, uint64_t blob_size,
		      uint64_t *toc_off, size_t *footer)
{
	const unsigned char *p;
	int64_t off;

	if (len >= LF_ESTARGZ_FOOTER) {
		p = tail + len - LF_ESTARGZ_FOOTER;
		if (empty_member(p, LF_ESTARGZ_FOOTER, 26) && p[12] == 'S' &&
		    p[13] == 'G' && p[14] == 22 && p[15] == 0 &&
		    (off = stargz_field(p + 16)) >= 0) {
			*footer = LF_ESTARGZ_FOOTER;
			goto found;
		}
	}
	if (len >= LF_ESTARGZ_LEGACY_FOOTER) {
		p = tail + len - LF_ESTARGZ_LEGACY_FOOTER;
		if (empty_member(p, LF_ESTARGZ_LEGACY_FOOTER, 22) &&
		    (off = stargz_field(p + 12)) >= 0) {
			*footer = LF_ESTARGZ_LEGACY_FOOTER;
			goto found;
		}
	}
	return -ENOENT;
found:
	if (blob_size < *footer || (uint64_t)off >= blob_size - *footer)
		return -EINVAL;
	*toc_off = (uint64_t)off;
	return 0;
}

/* ---- reading and inflating ---- */

static int read_all(lf_estargz_read_fn rd, void *ctx, void *buf, size_t len,
		    uint64_t off, const char *name, struct lf_err *err)
{
	ssize_t n = rd(ctx, buf, len, off);

	if (n < 0)
		return lf_err_set(err, (int)n,
				  "'%s': read error at offset %llu", name,
				  (unsigned long long)off);
	if ((size_t)n != len)
		return lf_err_set(err, -EIO, "'%s': blob ends at offset %llu",
				  name,
				  (unsigned long long)(off + (uint64_t)n));
	return 0;
}

/*
 * Inflate the gzip member at the start of in[0, inlen): skip `skip`
 * output bytes, then put `want` bytes into out (or as many as the member
 * has, up to want, when !exact).  Returns the bytes put, or -EIO.
 */
static ssize_t inflate_member(const unsigned char *in, size_t inlen,
			      uint64_t skip, unsigned char *out, size_t want,
			      bool exact)
{
	unsigned char junk[16384];
	z_stream z = { 0 };
	size_t got = 0;
	int zr = Z_OK;

	if (inflateInit2(&z, 16 + 15) != Z_OK)
		return -ENOMEM;
	z.next_in = (unsigned char *)in;
	z.avail_in = (uInt)LF_MIN(inlen, (size_t)UINT32_MAX);
	while (skip && zr == Z_OK) {
		z.next_out = junk;
		z.avail_out = (uInt)LF_MIN(skip, sizeof(junk));
		zr = inflate(&z, Z_NO_FLUSH);
		skip -= (uint64_t)(z.next_out - junk);
		if (zr == Z_BUF_ERROR && z.avail_out)
			break;
	}
	while (!skip && zr == Z_OK && got < want) {
		z.next_out = out + got;
		z.avail_out = (uInt)(want - got);
		zr = inflate(&z, Z_NO_FLUSH);
		got = (size_t)(z.next_out - out);
		if (zr == Z_BUF_ERROR && z.avail_out)
			break;
	}
	inflateEnd(&z);
	if (skip || (exact && got != want) ||
	    (zr != Z_OK && zr != Z_STREAM_END))
		return -EIO;
	return (ssize_t)got;
}

static void to_hex(const uint8_t *raw, char *out)
{
	static const char hx[] = "0123456789abcdef";
	int i;

	memcpy(out, "sha256:", 7);
	for (i = 0; i < 32; i++) {
		out[7 + 2 * i] = hx[raw[i] >> 4];
		out[8 + 2 * i] = hx[raw[i] & 15];
	}
	out[71] = '\0';
}

static bool from_hex(const char *s, uint8_t *raw)
{
	int i, h, l;

	if (!s || strncmp(s, "sha256:", 7) || strlen(s) != 71)
		return false;
	for (i = 0; i < 32; i++) {
		if ((h = hexval((unsigned char)s[7 + 2 * i])) < 0 ||
		    (l = hexval((unsigned char)s[8 + 2 * i])) < 0)
			return false;
		raw[i] = (uint8_t)(h << 4 | l);
	}
	return true;
}

int lf_estargz_chunk_read(lf_estargz_read_fn rd, void *rd_ctx,
			  const struct lf_idx_chunk *c, void *out,
			  const char *name, struct lf_err *err)
{
	size_t inlen = (size_t)(c->in_end - c->in);
	char want[LF_DIGEST_LEN], got[LF_DIGEST_LEN];
	unsigned char *in = malloc(inlen ? inlen : 1);
	ssize_t n;
	int ret;

	if (!in)
		return lf_err_set(err, -ENOMEM, "out of memory");
	ret = read_all(rd, rd_ctx, in, inlen, c->in, name, err);
	if (ret) {
		free(in);
		return ret;
	}
	n = inflate_member(in, inlen, c->inner, out, c->len, true);
	free(in);
	if (n == -ENOMEM)
		return lf_err_set(err, -ENOMEM, "out of memory");
	if (n < 0)
		return lf_err_set(err, -EIO,
				  "'%s': chunk at blob offset %llu is not the "
				  "gzip data its TOC says",
				  name, (unsigned long long)c->in);
	to_hex(c->sha256, want);
	if ((ret = lf_sha256_mem(out, c->len, got)))
		return lf_err_set(err, ret, "out of memory");
	if (strcmp(want, got))
		return lf_err_set(err, -EIO,
				  "'%s': chunk at blob offset %llu does not "
				  "match its digest (TOC: %s, read: %s)",
				  name, (unsigned long long)c->in, want, got);
	return 0;
}

bool lf_estargz_chunks_ok(const struct lf_idx_chunk *c, size_t n,
			  uint64_t stream_size, uint64_t blob_size)
{
	uint64_t out = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (c[i].out != out || !c[i].len || c[i].len > LF_GZ_MAX_SPAN ||
		    c[i].inner > LF_GZ_MAX_SPAN || c[i].in >= c[i].in_end ||
		    c[i].in_end > blob_size ||
		    c[i].in_end - c[i].in > LF_GZ_MAX_SPAN)
			return false;
		out += c[i].len;
	}
	return out == stream_size;
}

/* ---- the TOC ---- */

struct toc {
	const char *name;
	uint64_t toc_off, toc_end; /* the TOC member in the blob */
	/* the TOC's own tar member, found by tarscan */
	struct lf_tar_entry self;
	char *self_path;
	uint64_t self_inner; /* its data in the TOC member, uncompressed */
	bool found;
	uint8_t self_sha[32];
	/* chunks so far */
	struct lf_idx_chunk *chunks;
	size_t nchunks, cap;
	/* the regular file whose chunks come next */
	const char *cur;
	uint64_t cur_size, cur_done, cur_base;
	uint64_t cur_last_end; /* size of the file of the last chunk */
	uint64_t out;	       /* the made-up stream's size so far */
	uint64_t index;
};

static int self_entry(void *ctx, const struct lf_tar_entry *e,
		      struct lf_err *err)
{
	struct toc *t = ctx;

	(void)err;
	if (t->found || e->type != LF_TAR_REG ||
	    strcmp(e->path, LF_ESTARGZ_TOC_NAME))
		return 0;
	t->self = *e;
	t->self.xattrs = NULL;
	t->self.nxattrs = 0;
	t->self.sparse = NULL;
	t->self.nsparse = 0;
	t->self_inner = e->data_offset;
	t->self_path = strdup(e->path);
	t->found = true;
	return t->self_path ? 0 : -ENOMEM;
}

struct mem_rd {
	const unsigned char *p;
	size_t len, pos;
};

static ssize_t mem_read(void *ctx, void *buf, size_t len)
{
	struct mem_rd *m = ctx;
	size_t n = LF_MIN(len, m->len - m->pos);

	memcpy(buf, m->p + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

static const json_t *jget(const json_t *o, const char *k)
{
	return json_object_get(o, k);
}

/* An optional non-negative integer field (absent: 0). */
static int juint(const json_t *o, const char *k, uint64_t max, uint64_t *v)
{
	const json_t *j = jget(o, k);

	*v = 0;
	if (!j)
		return 0;
	if (!json_is_integer(j) || json_integer_value(j) < 0 ||
	    (uint64_t)json_integer_value(j) > max)
		return -EINVAL;
	*v = (uint64_t)json_integer_value(j);
	return 0;
}

static const char *jstr(const json_t *o, const char *k)
{
	const json_t *j = jget(o, k);

	return json_is_string(j) ? json_string_value(j) : NULL;
}

static int digits(const char **p, int n, int *v)
{
	*v = 0;
	while (n--) {
		if (**p < '0' || **p > '9')
			return -1;
		*v = *v * 10 + (*(*p)++ - '0');
	}
	return 0;
}

/* RFC 3339 ("2006-01-02T15:04:05[.frac](Z|+hh:mm)") to seconds. */
static int rfc3339(const char *s, int64_t *sec, uint32_t *nsec)
{
	struct tm tm = { 0 };
	int y, mo, d, h, mi, se, oh, om, sign = 1, k;
	time_t t;

	*sec = 0;
	*nsec = 0;
	if (!s || !*s)
		return 0;
	if (digits(&s, 4, &y) || *s++ != '-' || digits(&s, 2, &mo) ||
	    *s++ != '-' || digits(&s, 2, &d) || (*s != 'T' && *s != 't') ||
	    !*s++ || digits(&s, 2, &h) || *s++ != ':' || digits(&s, 2, &mi) ||
	    *s++ != ':' || digits(&s, 2, &se))
		return -EINVAL;
	if (*s == '.') {
		for (s++, k = 0; *s >= '0' && *s <= '9'; s++, k++)
			if (k < 9)
				*nsec = *nsec * 10 + (uint32_t)(*s - '0');
		for (; k < 9; k++)
			*nsec *= 10;
	}
	oh = om = 0;
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = *s++ == '-' ? -1 : 1;
		if (digits(&s, 2, &oh) || *s++ != ':' || digits(&s, 2, &om))
			return -EINVAL;
	} else {
		return -EINVAL;
	}
	if (*s || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
	    se > 60)
		return -EINVAL;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	t = timegm(&tm);
	*sec = (int64_t)t - sign * (int64_t)(oh * 3600 + om * 60);
	return 0;
}

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Standard base64 (Go's []byte in JSON) into out (len * 3 / 4 bytes). */
static ssize_t b64dec(const char *s, unsigned char *out)
{
	size_t n = 0, len = strlen(s);
	uint32_t acc = 0;
	int bits = 0, v;

	while (len && s[len - 1] == '=')
		len--;
	for (size_t i = 0; i < len; i++) {
		if ((v = b64val((unsigned char)s[i])) < 0)
			return -EINVAL;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(acc >> bits);
		}
	}
	return (ssize_t)n;
}

static int type_of(const char *t, enum lf_tar_type *out)
{
	static const struct {
		const char *name;
		enum lf_tar_type type;
	} types[] = {
		{ "reg", LF_TAR_REG },	       { "dir", LF_TAR_DIR },
		{ "symlink", LF_TAR_SYMLINK }, { "hardlink", LF_TAR_HARDLINK },
		{ "char", LF_TAR_CHR },	       { "block", LF_TAR_BLK },
		{ "fifo", LF_TAR_FIFO },
	};
	size_t i;

	for (i = 0; t && i < sizeof(types) / sizeof(types[0]); i++)
		if (!strcmp(t, types[i].name)) {
			*out = types[i].type;
			return 0;
		}
	return -EINVAL;
}

static int bad(const struct toc *t, struct lf_err *err, size_t i,
	       const char *why)
{
	return lf_err_set(err, -EINVAL, "'%s': eStargz TOC entry %zu: %s",
			  t->name, i, why);
}

/* The regular file whose chunks were being listed is complete. */
static int close_file(struct toc *t, struct lf_err *err, size_t i)
{
	if (t->cur && t->cur_done != t->cur_size)
		return bad(t, err, i,
			   "the chunks of a file do not add up "
			   "to its size");
	t->cur = NULL;
	return 0;
}

/* A "reg" (first chunk) or "chunk" entry's chunk. */
static int add_chunk(struct toc *t, const json_t *o, size_t i,
		     struct lf_err *err)
{
	uint64_t off, inner, coff, csize;
	struct lf_idx_chunk *c;

	if (juint(o, "offset", INT64_MAX, &off) ||
	    juint(o, "innerOffset", LF_GZ_MAX_SPAN, &inner) ||
	    juint(o, "chunkOffset", INT64_MAX, &coff) ||
	    juint(o, "chunkSize", INT64_MAX, &csize))
		return bad(t, err, i,
			   "an offset or size is not a valid number");
	if (coff != t->cur_done)
		return bad(t, err, i, "chunks overlap or leave a gap");
	if (csize > t->cur_size - coff)
		return bad(t, err, i, "a chunk runs past its file's end");
	if (!csize) /* stargz: to the end of the file */
		csize = t->cur_size - coff;
	if (!csize || csize > LF_GZ_MAX_SPAN)
		return bad(t, err, i, "a chunk is empty or too large");
	/* the member at 0 starts with the first tar header: data there
	 * needs an inner offset (entries sharing a member) */
	if ((!off && !inner) || off >= t->toc_off)
		return bad(t, err, i, "data offset outside the blob's data");
	if (t->nchunks && off < t->chunks[t->nchunks - 1].in)
		return bad(t, err, i, "data offsets out of order");
	if (t->nchunks == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		void *p = realloc(t->chunks, cap * sizeof(*c));

		if (!p)
			return lf_err_set(err, -ENOMEM, "out of memory");
		t->chunks = p;
		t->cap = cap;
	}
	c = &t->chunks[t->nchunks];
	memset(c, 0, sizeof(*c));
	if (!from_hex(jstr(o, "chunkDigest"), c->sha256))
		return bad(t, err, i, "a chunk has no valid chunkDigest");
	c->out = t->cur_base + coff;
	c->in = off;
	c->inner = (uint32_t)inner;
	c->len = (uint32_t)csize;
	t->nchunks++;
	t->cur_done += csize;
	t->cur_last_end = t->cur_size;
	return 0;
}

static void free_xattrs(struct lf_tar_xattr *x, size_t n)
{
	for (size_t k = 0; k < n; k++)
		free((void *)x[k].value);
	free(x);
}

static int get_xattrs(const json_t *o, struct lf_tar_xattr **out, size_t *n)
{
	const json_t *xo = jget(o, "xattrs"), *v;
	struct lf_tar_xattr *x;
	const char *k;
	size_t i = 0;

	*out = NULL;
	*n = 0;
	if (!xo)
		return 0;
	if (!json_is_object(xo) || json_object_size(xo) > UINT16_MAX)
		return -EINVAL;
	if (!json_object_size(xo))
		return 0;
	x = calloc(json_object_size(xo), sizeof(*x));
	if (!x)
		return -ENOMEM;
	json_object_foreach((json_t *)xo, k, v)
	{
		unsigned char *val;
		ssize_t len;

		if (!json_is_string(v) || !*k)
			goto fail;
		val = malloc(strlen(json_string_value(v)) * 3 / 4 + 1);
		if (!val) {
			free_xattrs(x, i);
			return -ENOMEM;
		}
		x[i].name = k;
		x[i].value = val;
		i++;
		if ((len = b64dec(json_string_value(v), val)) < 0)
			goto fail;
		x[i - 1].len = (size_t)len;
	}
	*out = x;
	*n = i;
	return 0;
fail:
	free_xattrs(x, i);
	return -EINVAL;
}

/* One TOC entry other than "chunk": report it, and start its chunks. */
static int add_entry(struct toc *t, const json_t *o, size_t i,
		     const struct lf_estargz_sink *sink, struct lf_err *err)
{
	struct lf_tar_entry e = { 0 };
	uint64_t v[6];
	int ret;

	e.path = jstr(o, "name");
	if (!e.path || type_of(jstr(o, "type"), &e.type))
		return bad(t, err, i, "no name or an unknown type");
	if (juint(o, "mode", INT64_MAX, &v[0]) ||
	    juint(o, "uid", INT64_MAX, &v[1]) ||
	    juint(o, "gid", INT64_MAX, &v[2]) ||
	    juint(o, "devMajor", UINT32_MAX, &v[3]) ||
	    juint(o, "devMinor", UINT32_MAX, &v[4]) ||
	    juint(o, "size", INT64_MAX, &v[5]) ||
	    rfc3339(jstr(o, "modtime"), &e.mtime, &e.mtime_nsec))
		return bad(t, err, i, "a field is not a valid value");
	e.mode = e.type == LF_TAR_SYMLINK ? 0777 : (uint32_t)(v[0] & 07777);
	e.uid = (int64_t)v[1];
	e.gid = (int64_t)v[2];
	e.rdev_major = (uint32_t)v[3];
	e.rdev_minor = (uint32_t)v[4];
	if (e.type == LF_TAR_SYMLINK || e.type == LF_TAR_HARDLINK)
		e.link = jstr(o, "linkName");
	if (e.type == LF_TAR_REG) {
		if (v[5] > (1ull << 62) - t->out)
			return bad(t, err, i, "the files are too large");
		e.size = e.data_size = v[5];
	}
	e.data_offset = t->out;
	e.index = t->index++;
	ret = get_xattrs(o, (struct lf_tar_xattr **)&e.xattrs, &e.nxattrs);
	if (ret == -ENOMEM)
		return lf_err_set(err, ret, "out of memory");
	if (ret)
		return bad(t, err, i, "invalid xattrs");
	ret = sink->entry(sink->ctx, &e, err);
	free_xattrs((struct lf_tar_xattr *)e.xattrs, e.nxattrs);
	if (ret)
		return ret;
	if (e.type != LF_TAR_REG || !e.size)
		return 0;
	t->cur = e.path;
	t->cur_size = e.size;
	t->cur_done = 0;
	t->cur_base = t->out;
	t->out += e.size;
	return add_chunk(t, o, i, err);
}

static int walk(struct toc *t, const json_t *root,
		const struct lf_estargz_sink *sink, struct lf_err *err)
{
	const json_t *ents = jget(root, "entries"), *o;
	size_t i;
	int ret;

	if (!json_is_object(root) || !json_is_array(ents))
		return lf_err_set(err, -EINVAL,
				  "'%s': eStargz TOC has no entries", t->name);
	json_array_foreach(ents, i, o)
	{
		const char *type = jstr(o, "type");

		if (!json_is_object(o))
			return bad(t, err, i, "not an object");
		if (type && !strcmp(type, "chunk")) {
			if (!t->cur)
				return bad(t, err, i,
					   "a chunk follows no regular file");
			ret = add_chunk(t, o, i, err);
		} else {
			ret = close_file(t, err, i);
			if (!ret && type && !strcmp(type, "reg") &&
			    jstr(o, "name") &&
			    !strcmp(jstr(o, "name"), LF_ESTARGZ_TOC_NAME))
				ret = bad(t, err, i,
					  "a file takes the TOC's name");
			if (!ret)
				ret = add_entry(t, o, i, sink, err);
		}
		if (ret)
			return ret;
	}
	return close_file(t, err, i);
}

/* A tar header's size field (octal, or base-256), or UINT64_MAX. */
static uint64_t hdr_size(const unsigned char *h)
{
	uint64_t v = 0;
	int i;

	if (h[124] & 0x80) {
		for (i = 125; i < 136; i++)
			v = v << 8 | h[i];
		return v >> 62 ? UINT64_MAX : v;
	}
	for (i = 124; i < 136 && h[i] == ' '; i++)
		;
	for (; i < 136 && h[i] >= '0' && h[i] <= '7'; i++)
		v = v << 3 | (uint64_t)(h[i] - '0');
	return v >> 62 ? UINT64_MAX : v;
}

/*
 * Whether a tar reader reaches the TOC member: a converter that kept the
 * layer's own end-of-archive blocks (stargz's "lossless" mode) put them
 * before it, and then the TOC is no file of the layer (umoci, and the
 * streaming indexer, stop there).  The members after the last chunk's
 * data are inflated and walked header by header to the TOC.
 */
/* The walk of toc_reached(): bytes to skip, then a header to gather. */
struct hwalk {
	uint64_t skip;
	unsigned char hdr[512];
	size_t fill;
	int verdict; /* -1 going on, 0 end of archive first, 1 TOC reached */
};

static void hwalk_feed(struct hwalk *w, const unsigned char *p, size_t n)
{
	static const unsigned char zero[512];

	while (n && w->verdict < 0) {
		size_t k;
		uint64_t size;

		if (w->skip) {
			k = (size_t)LF_MIN((uint64_t)n, w->skip);
			w->skip -= k;
			p += k;
			n -= k;
			continue;
		}
		k = LF_MIN(n, sizeof(w->hdr) - w->fill);
		memcpy(w->hdr + w->fill, p, k);
		w->fill += k;
		p += k;
		n -= k;
		if (w->fill < sizeof(w->hdr))
			continue;
		w->fill = 0;
		if (!memcmp(w->hdr, zero, sizeof(zero))) {
			w->verdict = 0;
		} else if ((size = hdr_size(w->hdr)) == UINT64_MAX) {
			w->verdict = 1;
		} else {
			w->skip = (size + 511) & ~(uint64_t)511;
		}
	}
}

static bool toc_reached(struct toc *t, lf_estargz_read_fn rd, void *rd_ctx)
{
	const struct lf_idx_chunk *c = t->nchunks ? &t->chunks[t->nchunks - 1]
						  : NULL;
	uint64_t from = c ? c->in : 0;
	size_t inlen = (size_t)(t->toc_off - from);
	struct hwalk w = { .verdict = -1 };
	unsigned char *in, out[16384];
	z_stream z = { 0 };
	int zr = Z_OK;

	if (t->toc_off - from > LF_GZ_MAX_SPAN)
		return true;
	w.skip = c ? c->inner + (uint64_t)c->len + (-t->cur_last_end & 511) : 0;
	in = malloc(inlen ? inlen : 1);
	if (!in || rd(rd_ctx, in, inlen, from) != (ssize_t)inlen ||
	    inflateInit2(&z, 16 + 15) != Z_OK) {
		free(in);
		return true;
	}
	z.next_in = in;
	z.avail_in = (uInt)inlen;
	while (z.avail_in && w.verdict < 0) {
		z.next_out = out;
		z.avail_out = sizeof(out);
		zr = inflate(&z, Z_NO_FLUSH);
		hwalk_feed(&w, out, sizeof(out) - z.avail_out);
		if (zr == Z_STREAM_END)
			zr = inflateReset(&z);
		if (zr != Z_OK)
			break;
	}
	inflateEnd(&z);
	free(in);
	return w.verdict != 0;
}

/* The TOC member's own file, then every chunk with its end bound. */
static int finish(struct toc *t, const struct lf_estargz_sink *sink,
		  bool self_too, struct lf_err *err)
{
	struct lf_idx_chunk self = { 0 };
	size_t k;
	int ret;

	if (!self_too)
		goto chunks;

	t->self.path = t->self_path;
	t->self.data_offset = t->out;
	t->self.index = t->index++;
	self.out = t->out;
	self.in = t->toc_off;
	self.in_end = t->toc_end;
	self.inner = (uint32_t)t->self_inner;
	self.len = (uint32_t)t->self.size;
	memcpy(self.sha256, t->self_sha, 32);
	if ((ret = sink->entry(sink->ctx, &t->self, err)))
		return ret;
	t->out += t->self.size;
chunks:
	for (k = 0; k < t->nchunks; k++) {
		struct lf_idx_chunk *c = &t->chunks[k];
		size_t j = k + 1;

		while (j < t->nchunks && t->chunks[j].in == c->in)
			j++;
		c->in_end = j < t->nchunks ? t->chunks[j].in : t->toc_off;
		if (c->in_end - c->in > LF_GZ_MAX_SPAN)
			return lf_err_set(err, -EINVAL,
					  "'%s': eStargz member at offset %llu "
					  "is too large",
					  t->name, (unsigned long long)c->in);
		if ((ret = sink->chunk(sink->ctx, c, err)))
			return ret;
	}
	return self.len ? sink->chunk(sink->ctx, &self, err) : 0;
}

/* The TOC member, inflated (at most LF_ESTARGZ_MAX_TOC bytes). */
static int read_toc(struct toc *t, lf_estargz_read_fn rd, void *rd_ctx,
		    unsigned char **out, size_t *outlen, struct lf_err *err)
{
	size_t inlen = (size_t)(t->toc_end - t->toc_off), cap;
	unsigned char *in, *buf = NULL;
	ssize_t n;
	int ret;

	if (t->toc_end - t->toc_off > LF_ESTARGZ_MAX_TOC)
		return lf_err_set(err, -EFBIG,
				  "'%s': eStargz TOC is over %u bytes", t->name,
				  LF_ESTARGZ_MAX_TOC);
	if (!(in = malloc(inlen ? inlen : 1)))
		return lf_err_set(err, -ENOMEM, "out of memory");
	ret = read_all(rd, rd_ctx, in, inlen, t->toc_off, t->name, err);
	if (ret) {
		free(in);
		return ret;
	}
	/* inflate into a buffer grown as needed; one byte more than
	 * allowed tells "too large" from "fits" */
	for (cap = LF_MIN((size_t)LF_ESTARGZ_MAX_TOC + 1,
			  LF_MAX((size_t)65536, inlen * 4));
	     ; cap = LF_MIN((size_t)LF_ESTARGZ_MAX_TOC + 1, cap * 4)) {
		free(buf);
		if (!(buf = malloc(cap))) {
			free(in);
			return lf_err_set(err, -ENOMEM, "out of memory");
		}
		n = inflate_member(in, inlen, 0, buf, cap, false);
		if (n < 0 || (size_t)n < cap || cap > LF_ESTARGZ_MAX_TOC)
			break;
	}
	free(in);
	if (n < 0 || (size_t)n > LF_ESTARGZ_MAX_TOC) {
		free(buf);
		return lf_err_set(err, n == -ENOMEM ? -ENOMEM : -EINVAL,
				  "'%s': eStargz TOC at offset %llu is %s",
				  t->name, (unsigned long long)t->toc_off,
				  n < 0 ? "not valid gzip" : "too large");
	}
	*out = buf;
	*outlen = (size_t)n;
	return 0;
}

/* The TOC's tar member in buf: found, digest checked, JSON parsed. */
static int parse_toc(struct toc *t, const unsigned char *buf, size_t len,
		     const char *toc_digest, json_t **root, struct lf_err *err)
{
	struct mem_rd m = { buf, len, 0 };
	char got[LF_DIGEST_LEN];
	const unsigned char *json;
	json_error_t jerr;
	int ret;

	ret = lf_tarscan_stream(mem_read, &m, t->name, self_entry, t, err);
	if (ret)
		return lf_err_prefix(err, "eStargz TOC");
	if (!t->found || t->self.size > len - LF_MIN(len, t->self_inner) ||
	    !t->self.size)
		return lf_err_set(err, -EINVAL,
				  "'%s': eStargz TOC member has no %s", t->name,
				  LF_ESTARGZ_TOC_NAME);
	json = buf + t->self_inner;
	if ((ret = lf_sha256_mem(json, (size_t)t->self.size, got)))
		return lf_err_set(err, ret, "out of memory");
	if (strcmp(got, toc_digest))
		return lf_err_set(err, -EINVAL,
				  "'%s': eStargz TOC digest is %s, the "
				  "manifest says %s",
				  t->name, got, toc_digest);
	from_hex(got, t->self_sha);
	*root = json_loadb((const char *)json, (size_t)t->self.size,
			   JSON_REJECT_DUPLICATES, &jerr);
	if (!*root)
		return lf_err_set(err, -EINVAL,
				  "'%s': eStargz TOC: invalid JSON at line "
				  "%d: %s",
				  t->name, jerr.line, jerr.text);
	return 0;
}

/* The blob's last bytes, read once: the footer, and most often the TOC
 * and the member before it too (one request to a registry, not three). */
struct tail {
	lf_estargz_read_fn rd;
	void *ctx;
	unsigned char *buf;
	uint64_t off;
	size_t len;
};

static ssize_t tail_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct tail *t = ctx;

	if (off >= t->off && len <= t->len && off - t->off <= t->len - len) {
		memcpy(buf, t->buf + (off - t->off), len);
		return (ssize_t)len;
	}
	return t->rd(t->ctx, buf, len, off);
}

static int scan(struct tail *tl, uint64_t blob_size, const char *toc_digest,
		const char *name, const struct lf_estargz_sink *sink,
		uint64_t *stream_size, struct lf_err *err)
{
	unsigned char *buf = NULL;
	struct toc t = { .name = name };
	size_t footer = 0, len = 0;
	json_t *root = NULL;
	int ret;

	ret = lf_estargz_footer(tl->buf, tl->len, blob_size, &t.toc_off,
				&footer);
	if (ret == -EINVAL)
		return lf_err_set(err, ret,
				  "'%s': eStargz footer points past the blob",
				  name);
	if (ret || footer != LF_ESTARGZ_FOOTER)
		return -ENOENT;
	t.toc_end = blob_size - footer;
	ret = read_toc(&t, tail_read, tl, &buf, &len, err);
	if (!ret)
		ret = parse_toc(&t, buf, len, toc_digest, &root, err);
	if (!ret)
		ret = walk(&t, root, sink, err);
	if (!ret)
		ret = finish(&t, sink, toc_reached(&t, tail_read, tl), err);
	if (!ret)
		*stream_size = t.out;
	json_decref(root);
	free(buf);
	free(t.chunks);
	free(t.self_path);
	return ret;
}

int lf_estargz_scan(lf_estargz_read_fn rd, void *rd_ctx, uint64_t blob_size,
		    const char *toc_digest, const char *name,
		    const struct lf_estargz_sink *sink, uint64_t *stream_size,
		    struct lf_err *err)
{
	struct tail tl = { rd, rd_ctx, NULL, 0, 0 };
	int ret;

	if (blob_size < LF_ESTARGZ_FOOTER)
		return -ENOENT;
	tl.len = (size_t)LF_MIN(blob_size, (uint64_t)LF_ESTARGZ_TAIL);
	tl.off = blob_size - tl.len;
	if (!(tl.buf = malloc(tl.len)))
		return lf_err_set(err, -ENOMEM, "out of memory");
	ret = read_all(rd, rd_ctx, tl.buf, tl.len, tl.off, name, err);
	if (!ret)
		ret = scan(&tl, blob_size, toc_digest, name, sink, stream_size,
			   err);
	free(tl.buf);
	return ret;
}

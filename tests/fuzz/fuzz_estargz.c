// SPDX-License-Identifier: MIT
/*
 * fuzz_estargz.c - eStargz TOCs (estargz.h).  The input is a TOC's JSON,
 * then optionally a NUL and the bytes the blob holds before the TOC (its
 * chunks' gzip members).  The harness wraps the JSON as the real format
 * does (the tar member stargz.index.json in a gzip member, then the
 * footer) and gives the scan its true digest, so every input reaches the
 * JSON walk.  Invariants: an accepted TOC's chunks pass the load-time
 * check, and reading each chunk gives its bytes or an error, nothing else.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "fuzz.h"
#include "layerfs/digest.h"
#include "layerfs/estargz.h"

struct mem {
	unsigned char *p;
	size_t len;
};

static ssize_t mem_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct mem *m = ctx;

	if (off >= m->len)
		return 0;
	if (len > m->len - off)
		len = m->len - (size_t)off;
	memcpy(buf, m->p + off, len);
	return (ssize_t)len;
}

/* A ustar header + data + padding + end-of-archive for name. */
static size_t tar_of(const uint8_t *data, size_t size, unsigned char *out)
{
	unsigned char *h = out;
	unsigned sum = 0;
	size_t i, padded = (size + 511) & ~(size_t)511;

	memset(out, 0, 512 + padded + 1024);
	strcpy((char *)h, LF_ESTARGZ_TOC_NAME);
	memcpy(h + 100, "0000000", 8);
	memcpy(h + 108, "0000000", 8);
	memcpy(h + 116, "0000000", 8);
	snprintf((char *)h + 124, 12, "%011zo", size);
	memcpy(h + 136, "00000000000", 12);
	h[156] = '0';
	memcpy(h + 257,
	       "ustar\0"
	       "00",
	       8);
	memset(h + 148, ' ', 8);
	for (i = 0; i < 512; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	memcpy(out + 512, data, size);
	return 512 + padded + 1024;
}

static size_t gzip_of(const unsigned char *in, size_t len, unsigned char *out,
		      size_t cap)
{
	z_stream z = { 0 };
	size_t n;

	if (deflateInit2(&z, 1, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY))
		return 0;
	z.next_in = (unsigned char *)in;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	n = deflate(&z, Z_FINISH) == Z_STREAM_END ? cap - z.avail_out : 0;
	deflateEnd(&z);
	return n;
}

static void footer(uint64_t toc_off, unsigned char *out)
{
	static const unsigned char head[12] = { 0x1f, 0x8b, 8, 4,    0,	 0,
						0,    0,    0, 0xff, 26, 0 };
	char sub[23];

	memcpy(out, head, 12);
	out[12] = 'S';
	out[13] = 'G';
	out[14] = 22;
	out[15] = 0;
	snprintf(sub, sizeof(sub), "%016llxSTARGZ",
		 (unsigned long long)toc_off);
	memcpy(out + 16, sub, 22);
	memcpy(out + 38, "\x01\x00\x00\xff\xff", 5);
	memset(out + 43, 0, 8);
}

struct sink {
	struct lf_idx_chunk *c;
	size_t n;
};

static int on_entry(void *ctx, const struct lf_tar_entry *e, struct lf_err *err)
{
	(void)ctx;
	(void)err;
	if (!e->path)
		abort();
	return 0;
}

static int on_chunk(void *ctx, const struct lf_idx_chunk *c, struct lf_err *err)
{
	struct sink *s = ctx;
	void *p = realloc(s->c, (s->n + 1) * sizeof(*c));

	if (!p)
		return lf_err_set(err, -12, "out of memory");
	s->c = p;
	s->c[s->n++] = *c;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t jlen = nul ? (size_t)(nul - data) : size;
	size_t pre = nul ? size - jlen - 1 : 0, tlen, glen, cap;
	unsigned char *tar, *blob;
	char digest[LF_DIGEST_LEN];
	struct sink s = { NULL, 0 };
	const struct lf_estargz_sink sk = { on_entry, on_chunk, &s };
	struct lf_err err;
	uint64_t out = 0;
	struct mem m;
	size_t i;

	if (jlen > (1u << 20))
		return 0;
	tar = malloc(jlen + 2048);
	cap = jlen + 4096 + jlen / 100;
	blob = malloc(pre + cap + LF_ESTARGZ_FOOTER);
	if (!tar || !blob)
		goto out;
	tlen = tar_of(data, jlen, tar);
	if (pre)
		memcpy(blob, nul + 1, pre);
	glen = gzip_of(tar, tlen, blob + pre, cap);
	if (!glen)
		goto out;
	footer(pre, blob + pre + glen);
	m.p = blob;
	m.len = pre + glen + LF_ESTARGZ_FOOTER;
	lf_sha256_mem(data, jlen, digest);
	if (lf_estargz_scan(mem_pread, &m, m.len, digest, "fuzz", &sk, &out,
			    &err))
		goto out;
	if (!lf_estargz_chunks_ok(s.c, s.n, out, m.len))
		abort();
	for (i = 0; i < s.n; i++) {
		unsigned char *buf;

		if (s.c[i].len > (1u << 20))
			continue;
		buf = malloc(s.c[i].len);
		if (!buf)
			break;
		lf_estargz_chunk_read(mem_pread, &m, &s.c[i], buf, "fuzz",
				      &err);
		free(buf);
	}
out:
	free(s.c);
	free(tar);
	free(blob);
	return 0;
}

// SPDX-License-Identifier: MIT
/* test_vfile_gzip.c - a gzip file read as its decompressed bytes. */
#include "layerfs/vfile_gzip.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "lf_test.h"

#define MiB ((size_t)1 << 20)
#define DATA_SIZE (9 * MiB + 12345)

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

/* Half text-like (compressible), half random bytes, deterministic. */
static unsigned char *gen(size_t n)
{
	unsigned char *p = malloc(n);
	uint64_t s = 42;
	size_t i;

	for (i = 0; p && i < n; i++)
		p[i] = (i / 4096) % 2
			       ? (unsigned char)rnd(&s)
			       : (unsigned char)("abcdefgh \n"[rnd(&s) % 10]);
	return p;
}

static unsigned char *gzip_mem(const unsigned char *in, size_t n,
			       size_t *outlen)
{
	z_stream zs = { 0 };
	size_t cap = n + n / 100 + 1024;
	unsigned char *out = malloc(cap);

	if (!out ||
	    deflateInit2(&zs, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return NULL;
	zs.next_in = (unsigned char *)in;
	zs.avail_in = (uInt)n;
	zs.next_out = out;
	zs.avail_out = (uInt)cap;
	if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
		return NULL;
	*outlen = cap - zs.avail_out;
	deflateEnd(&zs);
	return out;
}

/* A memory vfile that counts the compressed bytes read from it. */
struct counted {
	const unsigned char *mem;
	uint64_t read;
	int refs;
};

static ssize_t c_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct counted *c = ctx;

	memcpy(buf, c->mem + off, len);
	__atomic_add_fetch(&c->read, len, __ATOMIC_RELAXED);
	return (ssize_t)len;
}

static void c_ref(void *ctx)
{
	((struct counted *)ctx)->refs++;
}

static void c_unref(void *ctx)
{
	((struct counted *)ctx)->refs--;
}

static const struct lf_vfile_ops counted_ops = { c_pread, c_ref, c_unref,
						 NULL };

LF_TEST(sequential_and_random_reads_are_exact_and_linear)
{
	unsigned char *data = gen(DATA_SIZE), *buf = malloc(MiB);
	size_t gzlen = 0, off, i;
	unsigned char *gz = gzip_mem(data, DATA_SIZE, &gzlen);
	struct counted c = { .mem = gz, .refs = 1 };
	struct lf_vfile *file = NULL, *vf = NULL, *sub = NULL;
	struct lf_err err = { 0 };
	uint64_t s = 7;
	void *ctx = NULL;

	CHECK(data && gz && buf);
	CHECK_EQ_INT(lf_vfile_from_ops(&counted_ops, &c, gzlen, "t.gz", &file),
		     0);
	/* what a layer source matches its transport's blobs by */
	CHECK(lf_vfile_backend(file, &ctx) == &counted_ops && ctx == &c);
	CHECK(lf_vfile_is_gzip(file));
	CHECK_EQ_INT(lf_vfile_gzip_open(file, NULL, &vf, &err), 0);
	CHECK_EQ_INT(lf_vfile_size(vf), DATA_SIZE);
	/* the one pass reads every compressed byte once */
	CHECK_EQ_INT(c.read, gzlen + 2); /* + the magic */
	c.read = 0;
	for (off = 0; off < DATA_SIZE; off += 65536) {
		size_t n = LF_MIN((size_t)65536, DATA_SIZE - off);

		CHECK_EQ_INT(lf_vfile_pread(vf, buf, 65536, off), n);
		CHECK_EQ_MEM(buf, data + off, n);
	}
	/* each checkpoint span inflated once: not quadratic */
	CHECK(c.read <= gzlen + gzlen / 4);
	for (i = 0; i < 300; i++) {
		size_t o = rnd(&s) % DATA_SIZE;
		size_t want = (size_t)(rnd(&s) % MiB);
		size_t n = LF_MIN(want, DATA_SIZE - o);

		CHECK_EQ_INT(lf_vfile_pread(vf, buf, n, o), n);
		CHECK_EQ_MEM(buf, data + o, n);
	}
	/* a sub-range (a layer blob inside the archive) shares the index */
	CHECK_EQ_INT(lf_vfile_sub(vf, 3 * MiB + 5, 2 * MiB, "blob", &sub, &err),
		     0);
	lf_vfile_close(vf);
	CHECK_EQ_INT(lf_vfile_pread(sub, buf, MiB, MiB - 7), MiB);
	CHECK_EQ_MEM(buf, data + 4 * MiB - 2, MiB);
	CHECK_EQ_INT(lf_vfile_pread(sub, buf, MiB, 2 * MiB - 10), 10);
	lf_vfile_close(sub);
	CHECK_EQ_INT(c.refs, 0); /* the file is closed with the last one */
	free(gz);
	free(data);
	free(buf);
}

struct reader {
	const struct lf_vfile *vf;
	const unsigned char *data;
	uint64_t seed;
	int bad;
};

static void *read_random(void *arg)
{
	struct reader *r = arg;
	unsigned char *buf = malloc(256 << 10);
	int i;

	for (i = 0; buf && i < 200; i++) {
		size_t o = rnd(&r->seed) % DATA_SIZE;
		size_t want = (size_t)(rnd(&r->seed) % (256 << 10));
		size_t n = LF_MIN(want, DATA_SIZE - o);

		if (lf_vfile_pread(r->vf, buf, n, o) != (ssize_t)n ||
		    memcmp(buf, r->data + o, n))
			r->bad++;
	}
	free(buf);
	return NULL;
}

/* The span LRU under concurrent readers (FUSE runs up to 16 threads). */
LF_TEST(concurrent_readers_get_the_right_bytes)
{
	unsigned char *data = gen(DATA_SIZE);
	size_t gzlen = 0, i;
	unsigned char *gz = gzip_mem(data, DATA_SIZE, &gzlen);
	struct lf_vfile *file = NULL, *vf = NULL;
	struct lf_err err = { 0 };
	struct reader r[6];
	pthread_t t[6];

	CHECK(data && gz);
	CHECK_EQ_INT(lf_vfile_from_mem(gz, gzlen, "mt.gz", &file), 0);
	CHECK(lf_vfile_backend(file, NULL) == NULL);
	CHECK_EQ_INT(lf_vfile_gzip_open(file, NULL, &vf, &err), 0);
	for (i = 0; i < 6; i++) {
		r[i] = (struct reader){ vf, data, 1000 + i, 0 };
		CHECK_EQ_INT(pthread_create(&t[i], NULL, read_random, &r[i]),
			     0);
	}
	for (i = 0; i < 6; i++) {
		pthread_join(t[i], NULL);
		CHECK_EQ_INT(r[i].bad, 0);
	}
	lf_vfile_close(vf);
	free(gz);
	free(data);
}

LF_TEST(truncated_and_corrupt_streams_are_errors)
{
	unsigned char *data = gen(2 * MiB);
	size_t gzlen = 0;
	unsigned char *gz = gzip_mem(data, 2 * MiB, &gzlen);
	struct lf_vfile *file = NULL, *vf = NULL;
	struct lf_err err = { 0 };

	CHECK(data && gz);
	CHECK_EQ_INT(lf_vfile_from_mem(gz, gzlen / 2, "short.gz", &file), 0);
	CHECK_EQ_INT(lf_vfile_gzip_open(file, NULL, &vf, &err), -EIO);
	CHECK(strstr(err.msg, "truncated gzip stream") != NULL);
	gz[gzlen / 2] ^= 0x55;
	gz[gzlen / 2 + 1] ^= 0xaa;
	CHECK_EQ_INT(lf_vfile_from_mem(gz, gzlen, "bad.gz", &file), 0);
	CHECK(lf_vfile_gzip_open(file, NULL, &vf, &err) < 0);
	CHECK(strstr(err.msg, "bad.gz") != NULL);
	free(gz);
	free(data);
}

int main(int argc, char **argv)
{
	return lf_test_main(argc, argv);
}

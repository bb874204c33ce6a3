// SPDX-License-Identifier: MIT
/* test_blob.c - random access into a gzip layer, checked against gzip -dc. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layerfs/blob.h"
#include "layerfs/index.h"
#include "lf_test.h"

#define BIG (72u << 20)

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *p;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	p = malloc((size_t)n + 1);
	if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
		free(p);
		p = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return p;
}

/* Semi-compressible data: words and random runs, so deflate makes many
 * blocks of varying size. */
static void make_data(const char *path)
{
	static const char *words[] = { "layer ", "blob ", "whiteout ",
				       "tar ",	 "\n",	  "overlay ",
				       "gzip " };
	unsigned char *p = malloc(BIG);
	uint64_t x = 42;
	size_t i = 0;
	FILE *f;

	while (i < BIG) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		if ((x >> 60) < 3) {
			size_t n = (x >> 20) % 4096;

			while (n-- && i < BIG) {
				x = x * 6364136223846793005ull + 1;
				p[i++] = (unsigned char)(x >> 56);
			}
		} else {
			const char *w = words[(x >> 33) % 7];

			while (*w && i < BIG)
				p[i++] = (unsigned char)*w++;
		}
	}
	f = fopen(path, "wb");
	fwrite(p, 1, BIG, f);
	fclose(f);
	free(p);
}

struct shared {
	struct lf_blob *blob;
	const unsigned char *tar; /* gzip -dc output */
	size_t tar_len;
	const struct lf_idx_entry *big;
	const unsigned char *data; /* the file itself */
	int seed;
	int bad;
};

static void *reader(void *arg)
{
	struct shared *s = arg;
	uint64_t x = (uint64_t)s->seed * 7919 + 1;
	unsigned char *buf = malloc(4u << 20);
	struct lf_err err;
	int i;

	for (i = 0; i < 125; i++) {
		uint64_t off, len;
		ssize_t n;

		x = x * 6364136223846793005ull + 1442695040888963407ull;
		len = 1 + (x >> 40) % ((i % 4 == 0) ? (4u << 20) : 70000);
		off = (x >> 7) % s->tar_len;
		if (i % 2) {
			/* tar stream offsets: compare with gzip -dc */
			if (off + len > s->tar_len)
				len = s->tar_len - off;
			n = lf_blob_pread(s->blob, buf, len, off, &err);
			if (n != (ssize_t)len || memcmp(buf, s->tar + off, len))
				s->bad++;
		} else {
			/* file offsets through the entry */
			off %= BIG;
			if (off + len > BIG)
				len = BIG - off;
			n = lf_blob_read_file(s->blob, s->big, buf, len, off,
					      &err);
			if (n != (ssize_t)len ||
			    memcmp(buf, s->data + off, len))
				s->bad++;
		}
	}
	free(buf);
	return NULL;
}

LF_TEST(gzip_random_reads_8_threads)
{
	struct lf_image_layer layer = { .source = "layer.tar.gz" };
	struct lf_index_opts io = { .verify = true, .label = "layer 1" };
	struct lf_chunk_cache *cc = NULL;
	struct lf_index *idx = NULL;
	struct lf_blob *blob = NULL;
	struct shared s[8];
	pthread_t th[8];
	struct lf_err err = { 0 };
	unsigned char *tar, *data;
	size_t tar_len, data_len, i;
	uint64_t hits, misses;

	make_data("big");
	CHECK(system("tar --format=pax -cf layer.tar big && "
		     "gzip -c layer.tar > layer.tar.gz && "
		     "gzip -dc layer.tar.gz > oracle.tar") == 0);
	tar = slurp("oracle.tar", &tar_len);
	data = slurp("big", &data_len);
	CHECK(tar && data && data_len == BIG);
	CHECK_EQ_INT(lf_vfile_open("layer.tar.gz", NULL, &layer.blob, &err), 0);
	CHECK_EQ_INT(lf_index_open(&layer, &io, &idx, &err), 0);
	if (!idx || !tar || !data)
		return;
	CHECK_EQ_INT(lf_index_compression(idx), LF_COMP_GZIP);
	CHECK_EQ_INT(lf_index_tar_size(idx), tar_len);
	/* several checkpoints, so reads straddle them */
	CHECK(lf_index_gzidx(idx)->npoints > 40);
	CHECK_EQ_INT(lf_chunk_cache_new(16u << 20, &cc), 0);
	CHECK_EQ_INT(lf_blob_open(layer.blob, idx, cc, &blob, &err), 0);
	for (i = 0; i < 8; i++) {
		s[i] = (struct shared){ blob,	 tar,
					tar_len, lf_index_entry(idx, 0),
					data,	 (int)i,
					0 };
		pthread_create(&th[i], NULL, reader, &s[i]);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		CHECK_EQ_INT(s[i].bad, 0);
	}
	lf_chunk_cache_stats(cc, &hits, &misses);
	CHECK(hits > 0 && misses > 0);
	lf_blob_close(blob);
	lf_chunk_cache_free(cc);
	lf_index_close(idx);
	lf_vfile_close(layer.blob);
	free(tar);
	free(data);
}

LF_TEST(plain_and_zstd_layers)
{
	static const char *kinds[] = { "cat", "zstd -q -c" };
	int k;

	CHECK(system("mkdir -p d && seq 1 200000 > d/numbers && "
		     "echo hi > d/small && tar -cf l.tar -C d .") == 0);
	for (k = 0; k < 2; k++) {
		struct lf_image_layer layer = { .source = "l" };
		struct lf_index_opts io = { .verify = true,
					    .cache_dir = k ? "cache" : NULL };
		struct lf_index *idx = NULL;
		struct lf_blob *blob = NULL;
		struct lf_err err = { 0 };
		char cmd[128], buf[64];
		size_t i;

		snprintf(cmd, sizeof(cmd), "%s l.tar > l.blob", kinds[k]);
		CHECK(system(cmd) == 0);
		CHECK_EQ_INT(lf_vfile_open("l.blob", NULL, &layer.blob, &err),
			     0);
		CHECK_EQ_INT(lf_index_open(&layer, &io, &idx, &err), 0);
		if (!idx)
			continue;
		CHECK_EQ_INT(lf_index_compression(idx),
			     k ? LF_COMP_ZSTD : LF_COMP_NONE);
		CHECK_EQ_INT(lf_blob_open(layer.blob, idx, NULL, &blob, &err),
			     0);
		for (i = 0; blob && i < lf_index_count(idx); i++) {
			const struct lf_idx_entry *e = lf_index_entry(idx, i);

			if (strcmp(lf_index_path(idx, e), "numbers"))
				continue;
			/* "1\n2\n...": line 100000 starts at byte 588888 */
			CHECK_EQ_INT(lf_blob_read_file(blob, e, buf, 7, 588888,
						       &err),
				     7);
			CHECK_EQ_MEM(buf, "100000\n", 7);
		}
		lf_blob_close(blob);
		lf_index_close(idx);
		lf_vfile_close(layer.blob);
	}
}

/* A blob that is no host file: bytes a transport serves (lf_vfile_from_ops),
 * as a registry reader would give them. */
static ssize_t mem_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	const struct shared *m = ctx;

	if (off >= m->tar_len)
		return 0;
	len = LF_MIN(len, (size_t)(m->tar_len - off));
	memcpy(buf, m->tar + off, len);
	return (ssize_t)len;
}

static void mem_ref(void *ctx)
{
	(void)ctx;
}

static const struct lf_vfile_ops mem_ops = { mem_pread, mem_ref, mem_ref,
					     NULL };

/* The sources read a layer from wherever its transport keeps it, and two
 * sources over one index are independent (each has its own fd). */
LF_TEST(sources_over_a_transport_blob)
{
	static const char *kinds[] = { "cat", "gzip -c", "zstd -q -c" };
	int k;

	CHECK(system("mkdir -p t && seq 1 200000 > t/numbers && "
		     "tar -cf t.tar -C t .") == 0);
	for (k = 0; k < 3; k++) {
		struct lf_image_layer layer = { .source = "t" };
		struct lf_index_opts io = { .verify = true };
		struct lf_index *idx = NULL;
		struct lf_blob *b1 = NULL, *b2 = NULL;
		struct lf_err err = { 0 };
		struct shared m = { 0 };
		char cmd[128], buf[8];
		size_t i;

		snprintf(cmd, sizeof(cmd), "%s t.tar > t.blob", kinds[k]);
		CHECK(system(cmd) == 0);
		m.tar = slurp("t.blob", &m.tar_len);
		CHECK(m.tar != NULL);
		CHECK_EQ_INT(lf_vfile_from_ops(&mem_ops, &m, m.tar_len, "t",
					       &layer.blob),
			     0);
		CHECK_EQ_INT(lf_index_open(&layer, &io, &idx, &err), 0);
		if (!idx)
			continue;
		/* LF_COMP_NONE, _GZIP, _ZSTD */
		CHECK_EQ_INT(lf_index_compression(idx), k);
		CHECK_EQ_INT(lf_blob_open(layer.blob, idx, NULL, &b1, &err), 0);
		CHECK_EQ_INT(lf_blob_open(layer.blob, idx, NULL, &b2, &err), 0);
		lf_blob_close(b1);
		for (i = 0; b2 && i < lf_index_count(idx); i++) {
			const struct lf_idx_entry *e = lf_index_entry(idx, i);

			if (strcmp(lf_index_path(idx, e), "numbers"))
				continue;
			CHECK_EQ_INT(lf_blob_read_file(b2, e, buf, 7, 588888,
						       &err),
				     7);
			CHECK_EQ_MEM(buf, "100000\n", 7);
		}
		lf_blob_close(b2);
		lf_index_close(idx);
		lf_vfile_close(layer.blob);
		free((void *)m.tar);
	}
}

int main(int argc, char **argv)
{
	return lf_test_main(argc, argv);
}

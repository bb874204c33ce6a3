// SPDX-License-Identifier: MIT
/* test_gzidx.c - gzip checkpoint index against the external gzip(1) oracle. */
#include "layerfs/gzidx.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "lf_test.h"

#define MiB ((size_t)1 << 20)
#define BIG_SIZE (64u * MiB)
#define NTHREADS 8
#define NREADS 1000

/* ---- helpers ---------------------------------------------------------- */

static uint64_t rnd(uint64_t *s)
{
	/* xorshift64*: deterministic, fast, good enough for test data */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void gen_text(unsigned char *p, size_t n, uint64_t *s)
{
	static const char *const words[] = {
		"layer",    "blob",	"the ",	    "gzip",    "deflate",
		"window",   "\n",	"usr/lib/", "x86_64",  ".so.1",
		"config",   "manifest", " = ",	    "sha256:", "checkpoint",
		"{\"a\": ", "0123",	"etc/",	    "  ",
	};
	size_t i = 0;

	while (i < n) {
		const char *w = words[rnd(s) % LF_ARRAY_SIZE(words)];
		size_t k = LF_MIN(strlen(w), n - i);

		memcpy(p + i, w, k);
		i += k;
	}
}

/*
 * Semi-compressible data: text-like runs, random runs, copies of earlier
 * data, low-entropy and zero runs, so deflate emits many varied blocks.
 */
static void gen(unsigned char *p, size_t n, uint64_t seed)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
	size_t i = 0, j;

	while (i < n) {
		uint64_t r = rnd(&s);
		size_t run = LF_MIN((size_t)(64 + (r >> 40) % 65536), n - i);

		switch (r & 7) {
		case 0:
		case 1:
			for (j = 0; j + 8 <= run; j += 8) {
				uint64_t v = rnd(&s);

				memcpy(p + i + j, &v, 8);
			}
			memset(p + i + j, 0x5a, run - j);
			break;
		case 5:
			if (i > run) {
				memmove(p + i, p + rnd(&s) % (i - run), run);
				break;
			}
			/* fallthrough */
		case 2:
		case 3:
		case 4:
			gen_text(p + i, run, &s);
			break;
		case 6:
			for (j = 0; j < run; j++)
				p[i + j] = (unsigned char)('a' + (rnd(&s) & 3));
			break;
		default:
			memset(p + i, 0, run);
			break;
		}
		i += run;
	}
}

static int write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	int ok = f && fwrite(p, 1, n, f) == n;

	if (f && fclose(f))
		ok = 0;
	return ok ? 0 : -1;
}

static unsigned char *read_file(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	unsigned char *p = NULL;
	long sz;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) || (sz = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET))
		goto out;
	p = malloc((size_t)sz + 1);
	if (p && fread(p, 1, (size_t)sz, f) != (size_t)sz) {
		free(p);
		p = NULL;
	}
	*n = (size_t)sz;
out:
	fclose(f);
	return p;
}

/* Make `base` (data) and `base`.gz with gzip(1); return the data. */
static unsigned char *make_gz(const char *base, size_t n, uint64_t seed)
{
	unsigned char *p = malloc(n ? n : 1);
	char cmd[256];

	if (!p)
		return NULL;
	gen(p, n, seed);
	snprintf(cmd, sizeof(cmd), "gzip -c %s > %s.gz", base, base);
	if (write_file(base, p, n) || system(cmd)) {
		free(p);
		return NULL;
	}
	return p;
}

/* A reader over memory that hands out short, varying pieces. */
struct mem_rd {
	const unsigned char *p;
	size_t len, pos;
	size_t maxchunk; /* 0: as much as asked */
	uint64_t rng;
	int fail; /* return this once pos reaches fail_at */
	size_t fail_at;
};

static ssize_t mem_read(void *ctx, void *buf, size_t len)
{
	struct mem_rd *m = ctx;
	size_t n = LF_MIN(len, m->len - m->pos);

	if (m->fail && m->pos >= m->fail_at)
		return m->fail;
	if (m->maxchunk) {
		/* one draw: LF_MIN evaluates its arguments twice */
		size_t cap = 1 + (size_t)(rnd(&m->rng) % m->maxchunk);

		n = LF_MIN(n, cap);
	}
	memcpy(buf, m->p + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

/* A built index and everything needed to read through it. */
struct idx {
	struct lf_buf points, windows;
	struct lf_gzidx_view view;
	struct lf_vfile *vf;
};

/*
 * Pull a whole stream through the builder with read sizes cycling through
 * `sizes` (0-terminated), compare the output with `want` when given, and
 * fill ix.  Returns the builder's error code.
 */
static int build(struct mem_rd *m, uint64_t span, const size_t *sizes,
		 const unsigned char *want, size_t want_len, struct idx *ix,
		 struct lf_err *err)
{
	struct lf_gzidx_builder *b;
	unsigned char *buf;
	size_t got, total = 0, k = 0, cap = 0;
	int ret;

	for (k = 0; sizes[k]; k++)
		cap = LF_MAX(cap, sizes[k]);
	buf = malloc(cap);
	lf_buf_init(&ix->points);
	lf_buf_init(&ix->windows);
	ret = lf_gzidx_builder_new(span, mem_read, m, "test.gz", &b);
	if (ret || !buf) {
		free(buf);
		return ret ? ret : -ENOMEM;
	}
	for (k = 0;; k = sizes[k + 1] ? k + 1 : 0) {
		ret = lf_gzidx_builder_read(b, buf, sizes[k], &got, err);
		if (ret || !got)
			break;
		if (want && (total + got > want_len ||
			     memcmp(buf, want + total, got) != 0))
			LF_FAIL("builder output differs near %zu", total);
		total += got;
	}
	if (!ret) {
		CHECK_EQ_INT(total, want_len);
		ret = lf_gzidx_builder_finish(b, &ix->points, &ix->windows,
					      &ix->view.total_in,
					      &ix->view.total_out, err);
		CHECK_EQ_INT(ix->view.total_out, total);
		ix->view.points = (const void *)ix->points.data;
		ix->view.npoints = ix->points.len /
				   sizeof(struct lf_gzidx_point);
		ix->view.windows = (const void *)ix->windows.data;
		ix->view.windows_len = ix->windows.len;
	}
	lf_gzidx_builder_free(b);
	free(buf);
	return ret;
}

static void idx_release(struct idx *ix)
{
	lf_buf_release(&ix->points);
	lf_buf_release(&ix->windows);
	lf_vfile_close(ix->vf);
	ix->vf = NULL;
}

/*
 * Read [off, off+len) via find + extract + discard head; 0 when the bytes
 * (clamped to the stream's end) equal want.  scratch holds >= span + len.
 */
static int read_at(const struct idx *ix, const unsigned char *want,
		   size_t want_len, uint64_t off, size_t len,
		   unsigned char *scratch, struct lf_err *err)
{
	size_t i = lf_gzidx_find(&ix->view, off), got, exp;
	uint64_t head = off - ix->view.points[i].out;
	int ret;

	ret = lf_gzidx_extract(&ix->view, i, ix->vf, scratch, head + len, &got,
			       err);
	if (ret)
		return ret;
	exp = off >= want_len ? 0 : LF_MIN(len, want_len - off);
	if (got != head + exp ||
	    (exp && memcmp(scratch + head, want + off, exp) != 0))
		return lf_err_set(err, -EBADMSG,
				  "mismatch at %llu+%zu (point %zu, got %zu)",
				  (unsigned long long)off, len, i, got);
	return 0;
}

static const size_t big_reads[] = { 1 * MiB, 0 };

/* ---- the big random-access test ---------------------------------------- */

struct worker {
	pthread_t tid;
	const struct idx *ix;
	const unsigned char *data;
	uint64_t seed;
	int nreads, nfail;
	struct lf_err err;
};

/* A length from 1 byte to several MiB, skewed towards small reads. */
static size_t pick_len(uint64_t *s)
{
	switch (rnd(s) % 4) {
	case 0:
		return 1 + rnd(s) % 16;
	case 1:
		return 1 + rnd(s) % (64u << 10);
	case 2:
		return 1 + rnd(s) % MiB;
	default:
		return 1 + rnd(s) % (5 * MiB);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	const struct lf_gzidx_view *v = &w->ix->view;
	unsigned char *scratch = malloc(LF_GZIDX_SPAN + 5 * MiB + 64);
	int k;

	for (k = 0; scratch && k < w->nreads; k++) {
		size_t len = pick_len(&w->seed);
		uint64_t off = rnd(&w->seed) % BIG_SIZE;
		struct lf_err err = { 0 };

		/* every third read starts just before a checkpoint */
		if (k % 3 == 0 && v->npoints > 1) {
			size_t back;
			uint64_t p =
				v->points[1 + rnd(&w->seed) % (v->npoints - 1)]
					.out;

			back = 1 + (size_t)(rnd(&w->seed) % 4096);
			off = p - LF_MIN(p, back);
			len = LF_MAX(len, (size_t)(p - off) + 1);
		}
		if (read_at(w->ix, w->data, BIG_SIZE, off, len, scratch,
			    &err)) {
			if (!w->nfail++)
				w->err = err;
		}
	}
	if (!scratch)
		w->nfail++;
	free(scratch);
	return NULL;
}

/* Time extracting one whole span from random checkpoints. */
static void measure_extract(const struct idx *ix, const unsigned char *data)
{
	unsigned char *buf = malloc(LF_GZIDX_SPAN);
	uint64_t s = 7;
	double t0, t1, t2;
	size_t k, got, n = 40;

	if (!buf)
		return;
	t0 = now();
	for (k = 0; k < n; k++) {
		size_t i = rnd(&s) % ix->view.npoints;

		CHECK_EQ_INT(lf_gzidx_extract(&ix->view, i, ix->vf, buf,
					      LF_GZIDX_SPAN, &got, NULL),
			     0);
		CHECK(!memcmp(buf, data + ix->view.points[i].out, got));
	}
	t1 = now();
	for (k = 0; k < n * 10; k++) {
		size_t i = rnd(&s) % ix->view.npoints;

		CHECK_EQ_INT(lf_gzidx_extract(&ix->view, i, ix->vf, buf, 4096,
					      &got, NULL),
			     0);
	}
	t2 = now();
	printf("# extract: %.2f ms per 1 MiB span, %.3f ms per 4 KiB from a "
	       "point\n",
	       (t1 - t0) * 1e3 / (double)n, (t2 - t1) * 1e3 / (double)(n * 10));
	free(buf);
}

LF_TEST(big_random_reads_8_threads)
{
	struct worker w[NTHREADS];
	struct idx ix = { 0 };
	struct lf_err err = { 0 };
	struct mem_rd m = { 0 };
	unsigned char *data, *gz;
	size_t gzlen = 0, i;
	double t0, t1;

	data = make_gz("data", BIG_SIZE, 1);
	gz = read_file("data.gz", &gzlen);
	CHECK(data && gz);
	if (!data || !gz)
		goto out;
	m.p = gz;
	m.len = gzlen;
	t0 = now();
	CHECK_EQ_INT(build(&m, 0, big_reads, data, BIG_SIZE, &ix, &err), 0);
	t1 = now();
	printf("# builder: %.1f MB/s of output (%zu -> %zu bytes, %zu points, "
	       "%zu bytes of windows)\n",
	       BIG_SIZE / (t1 - t0) / 1e6, gzlen, BIG_SIZE, ix.view.npoints,
	       ix.view.windows_len);
	CHECK_EQ_INT(ix.view.total_in, gzlen);
	/* a point goes at the first block boundary past each span */
	CHECK(ix.view.npoints >= BIG_SIZE / LF_GZIDX_SPAN / 2);
	CHECK(ix.view.npoints <= BIG_SIZE / LF_GZIDX_SPAN + 1);
	CHECK_EQ_INT(lf_vfile_open("data.gz", "data.gz", &ix.vf, &err), 0);
	if (!ix.vf)
		goto out;
	for (i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){ .ix = &ix,
					.data = data,
					.seed = 100 + i,
					.nreads = NREADS / NTHREADS };
		CHECK_EQ_INT(pthread_create(&w[i].tid, NULL, worker_main,
					    &w[i]),
			     0);
	}
	for (i = 0; i < NTHREADS; i++) {
		pthread_join(w[i].tid, NULL);
		if (w[i].nfail)
			LF_FAIL("thread %zu: %d failed reads, first: %s", i,
				w[i].nfail, w[i].err.msg);
	}
	printf("# %d random reads from %d threads: %.2f s\n", NREADS, NTHREADS,
	       now() - t1);
	measure_extract(&ix, data);
out:
	idx_release(&ix);
	free(data);
	free(gz);
}

/* ---- find ------------------------------------------------------------- */

LF_TEST(find_binary_search)
{
	struct lf_gzidx_point pts[5] = { 0 };
	struct lf_gzidx_view v = { .points = pts, .npoints = 5 };
	uint64_t outs[5] = { 0, 10, 20, 1000, 1ull << 40 };
	size_t i;

	for (i = 0; i < 5; i++)
		pts[i].out = lf_le64(outs[i]);
	CHECK_EQ_INT(lf_gzidx_find(&v, 0), 0);
	CHECK_EQ_INT(lf_gzidx_find(&v, 9), 0);
	CHECK_EQ_INT(lf_gzidx_find(&v, 10), 1);
	CHECK_EQ_INT(lf_gzidx_find(&v, 999), 2);
	CHECK_EQ_INT(lf_gzidx_find(&v, 1000), 3);
	CHECK_EQ_INT(lf_gzidx_find(&v, UINT64_MAX), 4);
	v.npoints = 1;
	CHECK_EQ_INT(lf_gzidx_find(&v, 12345), 0);
	v.npoints = 0;
	CHECK_EQ_INT(lf_gzidx_find(&v, 12345), 0);
}

/* ---- spans, read sizes, reader chunking -------------------------------- */

/* Extract from every point to the end of the stream and compare. */
static void check_every_point(const struct idx *ix, const unsigned char *want,
			      size_t want_len)
{
	unsigned char *buf = malloc(want_len + 100);
	struct lf_err err = { 0 };
	size_t i;

	for (i = 0; buf && i < ix->view.npoints; i++) {
		uint64_t o = ix->view.points[i].out;

		if (read_at(ix, want, want_len, o, want_len - o + 100, buf,
			    &err)) {
			LF_FAIL("point %zu: %s", i, err.msg);
			break;
		}
	}
	free(buf);
}

LF_TEST(spans_and_read_sizes)
{
	static const size_t odd[] = { 1, 7, 4093, 40000, 100, 70000, 0 };
	static const uint64_t spans[] = { 64 << 10, 300000, 1, 16 * MiB };
	const size_t n = 6 * MiB;
	struct idx ref = { 0 }, ix = { 0 };
	struct mem_rd m = { 0 };
	unsigned char *data = make_gz("d", n, 2), *gz;
	size_t gzlen = 0, k;

	gz = read_file("d.gz", &gzlen);
	CHECK(data && gz);
	if (!data || !gz)
		goto out;
	for (k = 0; k < LF_ARRAY_SIZE(spans); k++) {
		m = (struct mem_rd){ .p = gz, .len = gzlen };
		CHECK_EQ_INT(build(&m, spans[k], big_reads, data, n, &ix, NULL),
			     0);
		CHECK_EQ_INT(lf_vfile_from_mem(gz, gzlen, "d.gz", &ix.vf), 0);
		printf("# span %llu: %zu points\n",
		       (unsigned long long)spans[k], ix.view.npoints);
		if (spans[k] == 16 * MiB)
			CHECK_EQ_INT(ix.view.npoints, 1);
		else
			CHECK(ix.view.npoints >= n / spans[k] / 4 ||
			      ix.view.npoints > 50);
		if (spans[k] != 1)
			check_every_point(&ix, data, n);
		idx_release(&ix);
	}
	/*
	 * Tiny, odd read sizes and a reader handing out short pieces must give
	 * the very same index: windows come from the ring + caller buffer.
	 */
	m = (struct mem_rd){ .p = gz, .len = gzlen };
	CHECK_EQ_INT(build(&m, 64 << 10, big_reads, data, n, &ref, NULL), 0);
	m = (struct mem_rd){
		.p = gz, .len = gzlen, .maxchunk = 3000, .rng = 5
	};
	CHECK_EQ_INT(build(&m, 64 << 10, odd, data, n, &ix, NULL), 0);
	CHECK_EQ_INT(ix.points.len, ref.points.len);
	CHECK_EQ_INT(ix.windows.len, ref.windows.len);
	if (ix.points.len == ref.points.len &&
	    ix.windows.len == ref.windows.len) {
		CHECK_EQ_MEM(ix.points.data, ref.points.data, ix.points.len);
		CHECK_EQ_MEM(ix.windows.data, ref.windows.data, ix.windows.len);
	}
out:
	idx_release(&ref);
	idx_release(&ix);
	free(data);
	free(gz);
}

/* ---- multi-member, empty, padding -------------------------------------- */

LF_TEST(multi_member)
{
	const size_t na = 3 * MiB + 12345, nb = 2 * MiB;
	unsigned char *a = make_gz("a", na, 3), *b = make_gz("b", nb, 4);
	unsigned char *ab = malloc(na + nb), *gz = NULL;
	struct idx ix = { 0 };
	struct mem_rd m;
	size_t gzlen = 0, i, nmember = 0;

	CHECK(a && b && ab);
	if (!a || !b || !ab)
		goto out;
	memcpy(ab, a, na);
	memcpy(ab + na, b, nb);
	CHECK_EQ_INT(write_file("e", "", 0), 0);
	/* an empty member in the middle must not disturb the points */
	CHECK_EQ_INT(system("gzip -c e > e.gz && cat a.gz e.gz b.gz > ab.gz"),
		     0);
	gz = read_file("ab.gz", &gzlen);
	CHECK(gz != NULL);
	if (!gz)
		goto out;
	m = (struct mem_rd){ .p = gz, .len = gzlen, .maxchunk = 777, .rng = 9 };
	CHECK_EQ_INT(build(&m, 256 << 10, big_reads, ab, na + nb, &ix, NULL),
		     0);
	CHECK_EQ_INT(ix.view.total_in, gzlen);
	for (i = 0; i < ix.view.npoints; i++) {
		const struct lf_gzidx_point *p = &ix.view.points[i];

		if (i)
			CHECK(p->out > ix.view.points[i - 1].out);
		if (p->flags & LF_GZIDX_POINT_MEMBER) {
			nmember++;
			CHECK(p->out == 0 || p->out == na);
			CHECK_EQ_INT(p->window_len, 0);
		}
	}
	CHECK_EQ_INT(nmember, 2);
	CHECK_EQ_INT(lf_vfile_from_mem(gz, gzlen, "ab.gz", &ix.vf), 0);
	/* from every point through the member boundary to the end */
	check_every_point(&ix, ab, na + nb);
out:
	idx_release(&ix);
	free(a);
	free(b);
	free(ab);
	free(gz);
}

LF_TEST(empty_gzip)
{
	static const size_t sizes[] = { 4096, 0 };
	struct idx ix = { 0 };
	struct mem_rd m;
	unsigned char *gz, out[16];
	size_t gzlen = 0, got = 1;

	CHECK_EQ_INT(write_file("e", "", 0), 0);
	CHECK_EQ_INT(system("gzip -c e > e.gz"), 0);
	gz = read_file("e.gz", &gzlen);
	CHECK(gz != NULL);
	if (!gz)
		return;
	m = (struct mem_rd){ .p = gz, .len = gzlen };
	CHECK_EQ_INT(build(&m, 0, sizes, NULL, 0, &ix, NULL), 0);
	CHECK_EQ_INT(ix.view.npoints, 1);
	CHECK_EQ_INT(ix.view.total_out, 0);
	CHECK_EQ_INT(ix.view.total_in, gzlen);
	CHECK_EQ_INT(lf_vfile_from_mem(gz, gzlen, "e.gz", &ix.vf), 0);
	CHECK_EQ_INT(lf_gzidx_extract(&ix.view, 0, ix.vf, out, sizeof(out),
				      &got, NULL),
		     0);
	CHECK_EQ_INT(got, 0);
	idx_release(&ix);
	free(gz);
}

/* Build from gz[0, len) plus `tail`; return the builder's code. */
static int build_tail(const unsigned char *gz, size_t len, const void *tail,
		      size_t tail_len, const unsigned char *want,
		      size_t want_len, struct lf_err *err)
{
	unsigned char *p = malloc(len + tail_len + 1);
	struct mem_rd m = { .p = p, .len = len + tail_len, .maxchunk = 5000 };
	struct idx ix = { 0 };
	int ret;

	if (!p)
		return -ENOMEM;
	memcpy(p, gz, len);
	memcpy(p + len, tail, tail_len);
	lf_err_clear(err);
	ret = build(&m, 128 << 10, big_reads, want, want_len, &ix, err);
	if (!ret) {
		CHECK_EQ_INT(ix.view.total_in, len + tail_len);
		CHECK_EQ_INT(lf_vfile_from_mem(p, len + tail_len, "t.gz",
					       &ix.vf),
			     0);
		check_every_point(&ix, want, want_len);
	}
	idx_release(&ix);
	free(p);
	return ret;
}

LF_TEST(trailing_zeros_and_garbage)
{
	const size_t n = MiB + 333;
	unsigned char *data = make_gz("t", n, 5), *gz, zeros[70000] = { 0 };
	struct lf_err err = { 0 };
	size_t gzlen = 0;

	gz = read_file("t.gz", &gzlen);
	CHECK(data && gz);
	if (!data || !gz)
		goto out;
	CHECK_EQ_INT(build_tail(gz, gzlen, zeros, 1, data, n, &err), 0);
	CHECK_EQ_INT(build_tail(gz, gzlen, zeros, sizeof(zeros), data, n, &err),
		     0);
	zeros[sizeof(zeros) - 1] = 'x';
	CHECK_EQ_INT(build_tail(gz, gzlen, zeros, sizeof(zeros), data, n, &err),
		     -EINVAL);
	CHECK(strstr(err.msg, "trailing garbage") != NULL);
	CHECK(strstr(err.msg, "test.gz") != NULL);
	CHECK_EQ_INT(build_tail(gz, gzlen, "garbage", 7, data, n, &err),
		     -EINVAL);
	CHECK(strstr(err.msg, "trailing garbage") != NULL);
	/* a lone 1f is not a member start either */
	CHECK_EQ_INT(build_tail(gz, gzlen, "\x1f", 1, data, n, &err), -EINVAL);
	printf("# %s\n", err.msg);
out:
	free(data);
	free(gz);
}

/* ---- damaged input ----------------------------------------------------- */

LF_TEST(truncated)
{
	const size_t n = 2 * MiB;
	unsigned char *data = make_gz("t", n, 6), *gz;
	const size_t cuts[] = { 0, 5, 10, 1000, 0 /* half */, 0 /* -3 */ };
	struct lf_err err = { 0 };
	struct idx ix = { 0 };
	unsigned char *scratch = NULL;
	struct mem_rd m;
	size_t gzlen = 0, k, got;

	gz = read_file("t.gz", &gzlen);
	CHECK(data && gz);
	if (!data || !gz)
		goto out;
	for (k = 0; k < LF_ARRAY_SIZE(cuts); k++) {
		size_t cut = k == 4 ? gzlen / 2 : k == 5 ? gzlen - 3 : cuts[k];

		CHECK_EQ_INT(build_tail(gz, cut, "", 0, data, n, &err), -EIO);
		CHECK(strstr(err.msg, "truncated") != NULL);
		CHECK(strstr(err.msg, "test.gz") != NULL);
	}
	printf("# %s\n", err.msg);
	/* a good index over a blob that lost its second half */
	m = (struct mem_rd){ .p = gz, .len = gzlen };
	CHECK_EQ_INT(build(&m, 256 << 10, big_reads, data, n, &ix, NULL), 0);
	CHECK_EQ_INT(lf_vfile_from_mem(gz, gzlen / 2, "short.gz", &ix.vf), 0);
	k = ix.view.npoints / 4;
	lf_err_clear(&err);
	scratch = malloc(n);
	CHECK_EQ_INT(scratch ? lf_gzidx_extract(&ix.view, k, ix.vf, scratch, n,
						&got, &err)
			     : -EIO,
		     -EIO);
	CHECK(strstr(err.msg, "short.gz") && strstr(err.msg, "truncated"));
	/* and a reader error is passed through */
	m = (struct mem_rd){
		.p = gz, .len = gzlen, .fail = -EPIPE, .fail_at = 1000
	};
	idx_release(&ix);
	CHECK_EQ_INT(build(&m, 0, big_reads, data, n, &ix, &err), -EPIPE);
	CHECK(strstr(err.msg, "test.gz") != NULL);
out:
	idx_release(&ix);
	free(scratch);
	free(data);
	free(gz);
}

/* Flip bytes of a copy of gz at `at`; return the builder's code. */
static int build_flipped(const unsigned char *gz, size_t gzlen, size_t at,
			 size_t nflip, struct lf_err *err)
{
	unsigned char *p = malloc(gzlen);
	size_t k;
	int ret;

	if (!p)
		return -ENOMEM;
	memcpy(p, gz, gzlen);
	for (k = 0; k < nflip && at + k < gzlen; k++)
		p[at + k] ^= 0xa5;
	ret = build_tail(p, gzlen, "", 0, NULL, 0, err);
	free(p);
	return ret;
}

LF_TEST(corrupt)
{
	const size_t n = 2 * MiB;
	unsigned char *data = make_gz("c", n, 7), *gz, *bad = NULL;
	struct lf_err err = { 0 };
	struct idx ix = { 0 };
	struct mem_rd m;
	size_t gzlen = 0, got, k;
	int ret;

	gz = read_file("c.gz", &gzlen);
	CHECK(data && gz);
	if (!data || !gz)
		goto out;
	for (k = 2; k <= 5; k++) {
		ret = build_flipped(gz, gzlen, gzlen / k, 16, &err);
		CHECK(ret == -EINVAL || ret == -EIO);
		CHECK(strstr(err.msg, "test.gz") && strstr(err.msg, "offset"));
		printf("# %s\n", err.msg);
	}
	/* bad CRC in the trailer */
	CHECK_EQ_INT(build_flipped(gz, gzlen, gzlen - 8, 1, &err), -EINVAL);
	CHECK(strstr(err.msg, "corrupt") && strstr(err.msg, "test.gz"));
	printf("# %s\n", err.msg);
	/* bad header magic */
	CHECK_EQ_INT(build_flipped(gz, gzlen, 1, 1, &err), -EINVAL);
	CHECK(strstr(err.msg, "corrupt") && strstr(err.msg, "test.gz"));
	/* a good index over a damaged blob: extract names the blob */
	m = (struct mem_rd){ .p = gz, .len = gzlen };
	CHECK_EQ_INT(build(&m, 256 << 10, big_reads, data, n, &ix, NULL), 0);
	bad = malloc(gzlen);
	if (!bad)
		goto out;
	memcpy(bad, gz, gzlen);
	memset(bad + ix.view.points[2].in + 100, 0xff, 64);
	CHECK_EQ_INT(lf_vfile_from_mem(bad, gzlen, "bad.gz", &ix.vf), 0);
	lf_err_clear(&err);
	ret = lf_gzidx_extract(&ix.view, 2, ix.vf, data, n, &got, &err);
	CHECK(ret == -EINVAL || ret == -EIO);
	CHECK(strstr(err.msg, "bad.gz") != NULL);
	printf("# %s\n", err.msg);
	/* a damaged index (window outside the blob) is refused, not trusted */
	((struct lf_gzidx_point *)(void *)ix.points.data)[1].window_off =
		lf_le64(1ull << 40);
	CHECK_EQ_INT(lf_gzidx_extract(&ix.view, 1, ix.vf, data, 10, &got, &err),
		     -EINVAL);
	CHECK_EQ_INT(lf_gzidx_extract(&ix.view, ix.view.npoints, ix.vf, data,
				      10, &got, &err),
		     -EINVAL);
out:
	idx_release(&ix);
	free(bad);
	free(data);
	free(gz);
}

/* ---- both inflaters, every kind of deflate stream ---------------------- */

/*
 * Streams of every block kind and header a gzip writer may emit, made with
 * zlib: stored blocks only, fixed Huffman only, Huffman-only and RLE
 * strategies, sync and full flushes (empty stored blocks mid-stream),
 * parameters switched mid-stream (stored, fixed and dynamic blocks
 * interleaved), and a header with every optional field and its CRC.
 */
enum {
	V_STORED,
	V_FIXED,
	V_HUFF,
	V_RLE,
	V_SYNC,
	V_FULL,
	V_MIXED,
	V_HEADER,
	V_COUNT
};

static int gz_variant(const unsigned char *p, size_t n, int v, struct lf_buf *o)
{
	static unsigned char extra[] = "AB\4\0data";
	gz_header h = { 0 };
	z_stream zs = { 0 };
	int level = v == V_STORED ? 0 : v == V_FULL ? 1 : 6, zret = Z_OK;
	int strategy = v == V_FIXED  ? Z_FIXED
		       : v == V_HUFF ? Z_HUFFMAN_ONLY
		       : v == V_RLE  ? Z_RLE
				     : Z_DEFAULT_STRATEGY;
	size_t off = 0, piece = v == V_MIXED ? 150000 : 100000;
	unsigned char out[65536];
	int k = 0;

	if (deflateInit2(&zs, level, Z_DEFLATED, 31, 8, strategy) != Z_OK)
		return -1;
	if (v == V_HEADER) {
		h.extra = extra;
		h.extra_len = sizeof(extra) - 1;
		h.name = (Bytef *)"name.tar";
		h.comment = (Bytef *)"a comment";
		h.hcrc = 1;
		h.os = 3;
		deflateSetHeader(&zs, &h);
	}
	while (zret != Z_STREAM_END) {
		size_t len = LF_MIN(piece, n - off);
		int flush = off + len == n ? Z_FINISH
			    : v == V_SYNC  ? Z_SYNC_FLUSH
			    : v == V_FULL  ? Z_FULL_FLUSH
					   : Z_NO_FLUSH;

		if (v == V_MIXED && off < n) {
			static const int lv[] = { 0, 1, 9, 6 };
			static const int st[] = { Z_DEFAULT_STRATEGY, Z_FIXED,
						  Z_DEFAULT_STRATEGY, Z_RLE };

			/* deflateParams flushes: give it room to */
			zs.next_out = out;
			zs.avail_out = sizeof(out);
			if (deflateParams(&zs, lv[k % 4], st[k % 4]) != Z_OK ||
			    lf_buf_add(o, out, sizeof(out) - zs.avail_out)) {
				deflateEnd(&zs);
				return -1;
			}
			k++;
		}
		zs.next_in = (Bytef *)(uintptr_t)(p + off);
		zs.avail_in = (uInt)len;
		off += len;
		do {
			zs.next_out = out;
			zs.avail_out = sizeof(out);
			zret = deflate(&zs, flush);
			if (zret == Z_STREAM_ERROR ||
			    lf_buf_add(o, out, sizeof(out) - zs.avail_out)) {
				deflateEnd(&zs);
				return -1;
			}
		} while (zs.avail_out == 0 ||
			 (flush == Z_FINISH && zret != Z_STREAM_END));
	}
	deflateEnd(&zs);
	return 0;
}

LF_TEST(engines_agree_on_every_stream_kind)
{
	static const enum lf_gzidx_engine eng[] = { LF_GZIDX_ZLIB,
						    LF_GZIDX_ISAL };
	const enum lf_gzidx_engine orig = lf_gzidx_engine();
	const size_t n = 3 * MiB + 777;
	unsigned char *data = malloc(3 * n);
	struct lf_buf all;
	size_t ntot = 0;
	int v, a, b;

	lf_buf_init(&all);
	CHECK(data != NULL);
	if (!data)
		return;
	gen(data, n, 21);
	/* the same data again and again: members of all kinds, one stream */
	memcpy(data + n, data, n);
	memcpy(data + 2 * n, data, n);
	if (lf_gzidx_set_engine(LF_GZIDX_ISAL))
		printf("# built without ISA-L: zlib only\n");
	for (v = 0; v <= V_COUNT; v++) {
		struct lf_buf gz;
		const unsigned char *want = data;
		size_t nwant = n, nzlib = 0;

		lf_buf_init(&gz);
		if (v < V_COUNT) {
			CHECK_EQ_INT(gz_variant(data, n, v, &gz), 0);
			if (v == V_FIXED || v == V_HEADER || v == V_STORED)
				lf_buf_add(&all, gz.data, gz.len);
		} else {
			/* stored, fixed and header members, then padding */
			static const unsigned char zeros[1000];

			lf_buf_add(&gz, all.data, all.len);
			lf_buf_add(&gz, zeros, sizeof(zeros));
			want = data;
			nwant = 3 * n;
		}
		ntot += gz.len;
		for (a = 0; a < 2; a++) {
			struct idx ix = { 0 };
			struct lf_err err = { 0 };
			struct mem_rd m = { .p = (void *)gz.data,
					    .len = gz.len,
					    .maxchunk = 5000,
					    .rng = 3 };

			if (lf_gzidx_set_engine(eng[a]))
				continue;
			/* the builder's output is the data, byte for byte */
			if (build(&m, 128 << 10, big_reads, want, nwant, &ix,
				  &err))
				LF_FAIL("stream %d, %s: %s", v,
					lf_gzidx_engine_name(eng[a]), err.msg);
			printf("# stream %d, built by %s: %zu points\n", v,
			       lf_gzidx_engine_name(eng[a]), ix.view.npoints);
			/*
			 * ISA-L cannot stop at some boundaries (a fixed block
			 * whose header shares the last block's final byte);
			 * zlib's replay must keep its points near zlib's
			 */
			if (a == 0)
				nzlib = ix.view.npoints;
			else
				CHECK(ix.view.npoints * 3 >= nzlib * 2);
			CHECK_EQ_INT(lf_vfile_from_mem(gz.data, gz.len, "v.gz",
						       &ix.vf),
				     0);
			/* and every point reads right with either inflater */
			for (b = 0; b < 2; b++) {
				if (lf_gzidx_set_engine(eng[b]))
					continue;
				check_every_point(&ix, want, nwant);
			}
			idx_release(&ix);
		}
		lf_buf_release(&gz);
	}
	printf("# %zu compressed bytes in all\n", ntot);
	lf_gzidx_set_engine(orig);
	lf_buf_release(&all);
	free(data);
}

int main(int argc, char **argv)
{
	return lf_test_main(argc, argv);
}

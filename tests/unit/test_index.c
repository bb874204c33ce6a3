// SPDX-License-Identifier: MIT
/* test_index.c - the one-pass index and its cache: reuse, distrust, verify. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layerfs/index.h"
#include "lf_test.h"

static void layer_of(const char *blob, struct lf_image_layer *l,
		     const char *digest, const char *diff_id)
{
	struct lf_err err;

	memset(l, 0, sizeof(*l));
	l->source = blob;
	snprintf(l->digest, sizeof(l->digest), "%s", digest);
	snprintf(l->diff_id, sizeof(l->diff_id), "%s", diff_id);
	CHECK_EQ_INT(lf_vfile_open(blob, NULL, &l->blob, &err), 0);
}

static void sha(const char *file, char out[LF_DIGEST_LEN])
{
	char cmd[256];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "sha256sum %s", file);
	p = popen(cmd, "r");
	strcpy(out, "sha256:");
	CHECK(p && fscanf(p, "%64s", out + 7) == 1);
	pclose(p);
}

static int open_idx(struct lf_image_layer *l, bool verify,
		    struct lf_index **idx, struct lf_err *err)
{
	struct lf_index_opts io = { .cache_dir = "cache",
				    .verify = verify,
				    .label = "layer 1" };

	return lf_index_open(l, &io, idx, err);
}

static void mklayer(void)
{
	CHECK(system("mkdir -p d/sub && echo one > d/a && echo two > d/sub/b "
		     "&& "
		     "ln -s a d/link && ln d/a d/hard && "
		     "tar --format=pax -cf l.tar -C d . && gzip -nc l.tar > "
		     "l.tgz") == 0);
}

LF_TEST(cache_is_reused)
{
	struct lf_image_layer l;
	struct lf_index *a = NULL, *b = NULL;
	struct lf_err err = { 0 };
	char dg[LF_DIGEST_LEN], di[LF_DIGEST_LEN];

	mklayer();
	sha("l.tgz", dg);
	sha("l.tar", di);
	layer_of("l.tgz", &l, dg, di);
	CHECK_EQ_INT(open_idx(&l, true, &a, &err), 0);
	CHECK_EQ_INT(open_idx(&l, true, &b, &err), 0);
	if (a && b) {
		CHECK(!lf_index_cached(a));
		CHECK(lf_index_cached(b));
		CHECK_EQ_INT(lf_index_count(a), lf_index_count(b));
		CHECK_EQ_STR(lf_index_diff_id(b), di);
		CHECK_EQ_STR(lf_index_blob_digest(b), dg);
		CHECK_EQ_INT(lf_index_count(b),
			     6); /* ./ sub sub/b a hard link */
	}
	lf_index_close(a);
	lf_index_close(b);
	lf_vfile_close(l.blob);
}

/* Flip one byte of the cache file: detected, ignored, rebuilt. */
LF_TEST(corrupt_cache_is_rebuilt)
{
	struct lf_image_layer l;
	struct lf_index *a = NULL;
	struct lf_err err = { 0 };
	char dg[LF_DIGEST_LEN], path[200];
	FILE *f;

	mklayer();
	sha("l.tgz", dg);
	layer_of("l.tgz", &l, dg, "");
	CHECK_EQ_INT(open_idx(&l, true, &a, &err), 0);
	lf_index_close(a);
	a = NULL;
	snprintf(path, sizeof(path), "cache/sha256-%s.idx", dg + 7);
	f = fopen(path, "r+b");
	CHECK(f != NULL);
	if (!f)
		return;
	fseek(f, 600, SEEK_SET);
	fputc(0x5a, f);
	fclose(f);
	CHECK_EQ_INT(open_idx(&l, true, &a, &err), 0);
	CHECK(a && !lf_index_cached(a));
	lf_index_close(a);
	a = NULL;
	/* and the rebuilt file is good again */
	CHECK_EQ_INT(open_idx(&l, true, &a, &err), 0);
	CHECK(a && lf_index_cached(a));
	lf_index_close(a);
	/* garbage of the right size and a foreign file are not trusted */
	CHECK(system("head -c 4096 /dev/urandom > cache/x && mv cache/x cache/"
		     "sha256-$(sha256sum l.tgz | cut -c1-64).idx") == 0);
	a = NULL;
	CHECK_EQ_INT(open_idx(&l, true, &a, &err), 0);
	CHECK(a && !lf_index_cached(a) && lf_index_count(a) == 6);
	lf_index_close(a);
	lf_vfile_close(l.blob);
}

LF_TEST(digest_mismatch)
{
	static const char wrong[] = "sha256:00000000000000000000000000000000"
				    "00000000000000000000000000000000";
	struct lf_image_layer l;
	struct lf_index *a = NULL;
	struct lf_err err = { 0 };
	char dg[LF_DIGEST_LEN];

	mklayer();
	layer_of("l.tgz", &l, wrong, "");
	CHECK_EQ_INT(open_idx(&l, true, &a, &err), -EINVAL);
	CHECK(strstr(err.msg, "digest mismatch") != NULL);
	CHECK(strstr(err.msg, wrong) != NULL);
	/* --no-verify reads it, and the next verifying run does not trust
	 * what --no-verify left in the cache */
	CHECK_EQ_INT(open_idx(&l, false, &a, &err), 0);
	lf_index_close(a);
	a = NULL;
	CHECK_EQ_INT(open_idx(&l, true, &a, &err), -EINVAL);
	lf_vfile_close(l.blob);
	sha("l.tgz", dg);
	layer_of("l.tgz", &l, dg, wrong);
	CHECK_EQ_INT(open_idx(&l, true, &a, &err), -EINVAL);
	CHECK(strstr(err.msg, "diff_id mismatch") != NULL);
	lf_vfile_close(l.blob);
}

LF_TEST(hostile_entries)
{
	struct lf_image_layer l;
	struct lf_index *a = NULL;
	struct lf_err err = { 0 };

	CHECK(system("/usr/bin/python3 -c \"import tarfile,io\n"
		     "t=tarfile.open('h.tar','w')\n"
		     "i=tarfile.TarInfo('../escape'); i.size=1\n"
		     "t.addfile(i, io.BytesIO(b'x'))\"") == 0);
	layer_of("h.tar", &l, "", "");
	CHECK_EQ_INT(open_idx(&l, true, &a, &err), -EINVAL);
	CHECK(strstr(err.msg, "'../escape'") && strstr(err.msg, "'..'"));
	CHECK(strstr(err.msg, "layer 1") != NULL);
	lf_vfile_close(l.blob);
}

int main(int argc, char **argv)
{
	return lf_test_main(argc, argv);
}

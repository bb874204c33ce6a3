// SPDX-License-Identifier: MIT
/*
 * test_cache.c - the index cache file: a sealed image stored atomically
 * loads back byte for byte; every kind of damage or foreign file is refused
 * with a message; a failed store leaves nothing behind.
 */
#include "lf_test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layerfs/cache.h"

#define KEY "sha256-0123456789abcdef"
#define WINLEN 40 /* GZWINDOWS bytes: last, so the file ends 8-aligned */

/* A valid, sealed file image: header, a STRINGS and a SPANSUMS section,
 * and GZWINDOWS last.  Every other section is empty. */
static unsigned char *make_image(size_t *len)
{
	size_t strings = sizeof(struct lf_cache_header), sums = strings + 16;
	size_t win = sums + 16, n = win + WINLEN;
	unsigned char *p = calloc(1, n);
	struct lf_cache_header *h = (struct lf_cache_header *)p;
	int i;

	CHECK(p != NULL);
	memcpy(h->magic, LF_CACHE_MAGIC, 8);
	h->version = LF_CACHE_VERSION;
	h->header_size = sizeof(*h);
	snprintf(h->key, sizeof(h->key), "%s", KEY);
	h->compression = LF_COMP_GZIP;
	for (i = 0; i < LF_SECT_COUNT; i++)
		h->sect[i].off =
			strings; /* empty sections: any in-file place */
	h->sect[LF_SECT_STRINGS].len = 16;
	memcpy(p + strings, "etc\0etc/hostname", 16);
	h->sect[LF_SECT_SPANSUMS].off = sums;
	h->sect[LF_SECT_SPANSUMS].len = 16;
	memset(p + sums, 0xa5, 16);
	h->sect[LF_SECT_GZWINDOWS].off = win;
	h->sect[LF_SECT_GZWINDOWS].len = WINLEN;
	for (i = 0; i < WINLEN; i++)
		p[win + i] = (unsigned char)(i * 7);
	lf_cache_seal(p, n);
	*len = n;
	return p;
}

/* Names in the test directory other than "." and "..". */
static int count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static int load(const char *path, const char *key, struct lf_err *err)
{
	void *map = NULL;
	size_t len = 0;
	int ret = lf_cache_load(path, key, &map, &len, err);

	if (!ret)
		lf_cache_unmap(map, len);
	return ret;
}

LF_TEST(round_trip)
{
	struct lf_err err = { 0 };
	unsigned char *img;
	void *map = NULL;
	size_t len, mlen = 0;

	img = make_image(&len);
	CHECK_EQ_INT(lf_cache_store("c/x.idx", img, len, &err), 0);
	CHECK_EQ_INT(count_files("c"), 1); /* no temp file left */
	CHECK_EQ_INT(lf_cache_load("c/x.idx", KEY, &map, &mlen, &err), 0);
	CHECK_EQ_INT(mlen, len);
	CHECK_EQ_MEM(map, img, len);
	CHECK_EQ_INT(lf_cache_check_windows(map, mlen), 0);
	lf_cache_unmap(map, mlen);
	free(img);
}

LF_TEST(missing_is_enoent)
{
	struct lf_err err = { 0 };

	CHECK_EQ_INT(load("nothing.idx", KEY, &err), -ENOENT);
}

/* One damaged variant of the image, and the message it must give. */
struct damage {
	const char *what;
	size_t off;	 /* byte to flip (SIZE_MAX: none) */
	size_t truncate; /* bytes to cut from the end */
	const char *key; /* key to load with */
	const char *why;
};

LF_TEST(damage_refused)
{
	const struct lf_cache_header *h0 = NULL;
	size_t hdr = sizeof(*h0);
	const struct damage cases[] = {
		{ "magic", 0, 0, KEY, "not a layerfs index" },
		{ "version", offsetof(struct lf_cache_header, version), 0, KEY,
		  "version differs" },
		{ "key byte", offsetof(struct lf_cache_header, key) + 3, 0, KEY,
		  "another blob" },
		{ "other key", SIZE_MAX, 0, "sha256-ffff", "another blob" },
		{ "blob size", offsetof(struct lf_cache_header, blob_size), 0,
		  KEY, "checksum mismatch" },
		{ "strings", hdr + 2, 0, KEY, "checksum mismatch" },
		{ "spansums", hdr + 20, 0, KEY, "checksum mismatch" },
		{ "section offset",
		  offsetof(struct lf_cache_header, sect) +
			  LF_SECT_SPANSUMS * sizeof(struct lf_cache_sect) + 1,
		  0, KEY, "section outside the file" },
		{ "truncated", SIZE_MAX, 16, KEY, "section outside the file" },
		{ "short header", SIZE_MAX, 0, KEY, NULL /* below */ },
	};
	struct lf_err err = { 0 };
	size_t len, i;
	unsigned char *img = make_image(&len);

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct damage *d = &cases[i];
		unsigned char *p = malloc(len);
		size_t n = len - d->truncate;

		CHECK(p != NULL);
		memcpy(p, img, len);
		if (d->off != SIZE_MAX)
			p[d->off] ^= 0x40;
		if (!d->why)
			n = hdr - 1;
		CHECK_EQ_INT(lf_cache_store("d.idx", p, n, &err), 0);
		memset(&err, 0, sizeof(err));
		if (load("d.idx", d->key, &err) != -EINVAL)
			LF_FAIL("%s: loaded", d->what);
		else if (!strstr(err.msg, "d.idx") ||
			 !strstr(err.msg, d->why ? d->why : "not a layerfs"))
			LF_FAIL("%s: message '%s'", d->what, err.msg);
		free(p);
	}
	free(img);
}

LF_TEST(damaged_windows_found_on_demand)
{
	struct lf_err err = { 0 };
	unsigned char *img;
	void *map = NULL;
	size_t len, mlen = 0;

	img = make_image(&len);
	img[len - 5] ^= 1; /* inside GZWINDOWS */
	CHECK_EQ_INT(lf_cache_store("w.idx", img, len, &err), 0);
	/* the load does not read the windows: it succeeds ... */
	CHECK_EQ_INT(lf_cache_load("w.idx", KEY, &map, &mlen, &err), 0);
	/* ... and their own check finds the damage */
	CHECK_EQ_INT(lf_cache_check_windows(map, mlen), -EIO);
	lf_cache_unmap(map, mlen);
	free(img);
}

LF_TEST(not_regular_refused)
{
	struct lf_err err = { 0 };
	unsigned char *img;
	size_t len;

	/* a FIFO must neither block the load nor be read */
	CHECK_EQ_INT(mkfifo("f.idx", 0600), 0);
	CHECK(load("f.idx", KEY, &err) < 0);
	/* nor is a symlink to a valid file followed */
	img = make_image(&len);
	CHECK_EQ_INT(lf_cache_store("real.idx", img, len, &err), 0);
	CHECK_EQ_INT(symlink("real.idx", "link.idx"), 0);
	CHECK(load("link.idx", KEY, &err) < 0);
	CHECK_EQ_INT(load("real.idx", KEY, &err), 0);
	free(img);
}

LF_TEST(failed_store_leaves_nothing)
{
	struct lf_err err = { 0 };
	unsigned char *img;
	size_t len;

	img = make_image(&len);
	CHECK_EQ_INT(mkdir("ro", 0755), 0);
	/* the target is a directory: the rename fails after the write */
	CHECK_EQ_INT(mkdir("ro/x.idx", 0755), 0);
	CHECK(lf_cache_store("ro/x.idx", img, len, &err) < 0);
	CHECK(strstr(err.msg, "ro/x.idx") != NULL);
	CHECK_EQ_INT(count_files("ro"), 1); /* only the directory itself */
	free(img);
}

int main(int argc, char **argv)
{
	return lf_test_main(argc, argv);
}

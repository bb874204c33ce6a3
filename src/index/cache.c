// SPDX-License-Identifier: MIT
/* cache.c - the index cache directory: atomic stores, checked mmap loads. */
#include "layerfs/cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layerfs/path.h"
#include "layerfs/whiteout.h"

int lf_cache_dir(const char *override, struct lf_buf *out)
{
	const char *env;

	lf_buf_reset(out);
	if (override && *override)
		return lf_buf_adds(out, override);
	env = getenv("LAYERFS_CACHE");
	if (env && *env)
		return lf_buf_adds(out, env);
	env = getenv("XDG_CACHE_HOME");
	if (env && *env)
		return lf_buf_addf(out, "%s/layerfs", env);
	env = getenv("HOME");
	if (env && *env)
		return lf_buf_addf(out, "%s/.cache/layerfs", env);
	return -ENOENT;
}

int lf_cache_path(const char *dir, const char *key, const char *suffix,
		  struct lf_buf *out)
{
	lf_buf_reset(out);
	return lf_buf_addf(out, "%s/%s%s", dir, key, suffix);
}

/* mkdir -p, mode 0700 for directories we create (the cache may describe
 * files the user would not want others to list). */
static int mkdirs(const char *dir)
{
	struct lf_buf b;
	size_t i;
	int ret = 0;

	lf_buf_init(&b);
	if ((ret = lf_buf_adds(&b, dir)))
		return ret;
	for (i = 1; i <= b.len; i++) {
		if (b.data[i] != '/' && b.data[i] != '\0')
			continue;
		b.data[i] = '\0';
		if (mkdir(b.data, 0700) < 0 && errno != EEXIST) {
			ret = -errno;
			break;
		}
		if (i < b.len)
			b.data[i] = '/';
	}
	lf_buf_release(&b);
	return ret;
}

int lf_cache_mkdir(const char *dir, struct lf_err *err)
{
	struct stat st;
	int ret = mkdirs(dir);

	if (!ret && (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)))
		ret = -ENOTDIR;
	if (ret)
		return lf_err_set(err, ret,
				  "cannot create cache directory "
				  "'%s': %s",
				  dir, strerror(-ret));
	return 0;
}

int lf_cache_mkstemp(const char *path, const char *suffix, struct lf_buf *tmp,
		     struct lf_err *err)
{
	struct lf_buf dir;
	int fd, ret;

	lf_buf_init(&dir);
	lf_buf_reset(tmp);
	ret = lf_buf_add(&dir, path, lf_path_dirlen(path));
	if (!ret)
		ret = lf_buf_addf(tmp, "%s%s" LF_TMP_SUFFIX, path, suffix);
	if (ret) {
		fd = lf_err_set(err, ret, "out of memory");
	} else if (dir.len && (fd = lf_cache_mkdir(dir.data, err)) < 0) {
		/* err says which directory */
	} else if ((fd = mkostemp(tmp->data, O_CLOEXEC)) < 0) {
		fd = lf_err_set(err, -errno, "cannot create '%s': %s",
				tmp->data, strerror(errno));
	}
	lf_buf_release(&dir);
	if (fd < 0)
		lf_buf_reset(tmp);
	return fd;
}

int lf_cache_store(const char *path, const void *data, size_t len,
		   struct lf_err *err)
{
	struct lf_buf tmp;
	int fd, ret;

	lf_buf_init(&tmp);
	fd = lf_cache_mkstemp(path, "", &tmp, err);
	if (fd < 0) {
		lf_buf_release(&tmp);
		return fd;
	}
	ret = lf_write_all(fd, data, len);
	if (!ret && fchmod(fd, 0644) < 0)
		ret = -errno;
	if (close(fd) < 0 && !ret)
		ret = -errno;
	if (!ret && rename(tmp.data, path) < 0)
		ret = -errno;
	if (ret) {
		lf_err_set(err, ret, "cannot write '%s': %s", path,
			   strerror(-ret));
		unlink(tmp.data);
	}
	lf_buf_release(&tmp);
	return ret;
}

#define P1 0x9E3779B185EBCA87ull
#define P2 0xC2B2AE3D27D4EB4Full
#define P3 0x165667B19E3779F9ull
#define P4 0x85EBCA77C2B2AE63ull
#define P5 0x27D4EB2F165667C5ull

static uint64_t rotl(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static uint64_t rd64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return lf_le64(v);
}

static uint64_t mix(uint64_t acc, uint64_t v)
{
	return rotl(acc + v * P2, 31) * P1;
}

/*
 * XXH64-style hash: the cache checksum guards against corruption, not
 * against forgery (lf_index_attach() checks every offset anyway), so it
 * should cost far less than the load it protects; sha256 was 80 % of a
 * warm `ls -R`.
 */
static uint64_t hash64(const unsigned char *p, size_t len)
{
	const unsigned char *end = p + len;
	uint64_t h;

	if (len >= 32) {
		uint64_t v[4] = { P1 + P2, P2, 0, -P1 };
		int i;

		for (; p + 32 <= end; p += 32)
			for (i = 0; i < 4; i++)
				v[i] = mix(v[i], rd64(p + 8 * i));
		h = rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) +
		    rotl(v[3], 18);
		for (i = 0; i < 4; i++)
			h = (h ^ mix(0, v[i])) * P1 + P4;
	} else {
		h = P5;
	}
	h += len;
	for (; p + 8 <= end; p += 8)
		h = rotl(h ^ mix(0, rd64(p)), 27) * P1 + P4;
	for (; p < end; p++)
		h = rotl(h ^ (*p * P5), 11) * P1;
	h ^= h >> 33;
	h *= P2;
	h ^= h >> 29;
	h *= P3;
	return h ^ (h >> 32);
}

uint64_t lf_cache_hash64(const void *data, size_t len)
{
	return hash64(data, len);
}

/* Where the body stops and the GZWINDOWS section starts (it is last:
 * its hash covers it and the padding after it). */
static size_t windows_start(const struct lf_cache_header *h, size_t len)
{
	uint64_t off = lf_le64(h->sect[LF_SECT_GZWINDOWS].off);

	/* check_header() refuses such offsets; never hash outside anyway */
	if (!lf_le64(h->sect[LF_SECT_GZWINDOWS].len) || off > len ||
	    off < sizeof(*h))
		return len;
	return (size_t)off;
}

/* checksum[0..8) hashes the header before the field, [8..16) the body but
 * the checkpoint windows, [16..24) the windows (checked on first use). */
static void checksum(const void *data, size_t len, bool windows,
		     uint8_t out[32])
{
	const size_t hlen = offsetof(struct lf_cache_header, checksum);
	const size_t body = sizeof(struct lf_cache_header);
	const unsigned char *p = data;
	size_t w = windows_start(data, len);
	uint64_t a = lf_le64(hash64(p, hlen));
	uint64_t b = lf_le64(hash64(p + body, w - body));
	uint64_t c = windows ? lf_le64(hash64(p + w, len - w)) : 0;

	memset(out, 0, 32);
	memcpy(out, &a, 8);
	memcpy(out + 8, &b, 8);
	memcpy(out + 16, &c, 8);
}

int lf_cache_check_windows(const void *data, size_t len)
{
	const struct lf_cache_header *h = data;
	size_t w = windows_start(h, len);
	uint64_t c = lf_le64(hash64((const unsigned char *)data + w, len - w));

	return memcmp(&c, h->checksum + 16, 8) ? -EIO : 0;
}

void lf_cache_seal(void *data, size_t len)
{
	struct lf_cache_header *h = data;

	checksum(data, len, true, h->checksum);
}

static int check_header(const struct lf_cache_header *h, size_t len,
			const char *key, const char **why)
{
	uint8_t sum[32];
	int i;

	if (len < sizeof(*h) || memcmp(h->magic, LF_CACHE_MAGIC, 8)) {
		*why = "not a layerfs index";
		return -EINVAL;
	}
	if (lf_le32(h->version) != LF_CACHE_VERSION ||
	    lf_le32(h->header_size) != sizeof(*h)) {
		*why = "index format version differs";
		return -EINVAL;
	}
	if (strnlen(h->key, sizeof(h->key)) == sizeof(h->key) ||
	    strcmp(h->key, key)) {
		*why = "index belongs to another blob";
		return -EINVAL;
	}
	for (i = 0; i < LF_SECT_COUNT; i++) {
		uint64_t off = lf_le64(h->sect[i].off);

		if (lf_range_outside(off, lf_le64(h->sect[i].len), len) ||
		    (off & 7) || off < sizeof(*h)) {
			*why = "section outside the file";
			return -EINVAL;
		}
	}
	/* the windows come last, then at most 7 bytes of padding */
	if (lf_le64(h->sect[LF_SECT_GZWINDOWS].len) &&
	    len - (lf_le64(h->sect[LF_SECT_GZWINDOWS].off) +
		   lf_le64(h->sect[LF_SECT_GZWINDOWS].len)) >=
		    8) {
		*why = "section outside the file";
		return -EINVAL;
	}
	/* the windows' hash ([16..24)) waits for lf_cache_check_windows() */
	checksum(h, len, false, sum);
	if (memcmp(sum, h->checksum, 16) ||
	    memcmp(sum + 24, h->checksum + 24, 8)) {
		*why = "checksum mismatch";
		return -EINVAL;
	}
	return 0;
}

int lf_cache_load(const char *path, const char *key, void **map, size_t *len,
		  struct lf_err *err)
{
	const char *why = NULL;
	struct stat st;
	void *p;
	int fd, ret;

	fd = lf_open_own_file(path, &st);
	if (fd == -ENOENT)
		return fd;
	if (fd < 0 && fd != -EINVAL)
		return lf_err_set(err, fd, "cannot open '%s': %s", path,
				  strerror(-fd));
	if (fd < 0 || st.st_size < (off_t)sizeof(struct lf_cache_header)) {
		if (fd >= 0)
			close(fd);
		return lf_err_set(err, -EINVAL, "'%s': %s", path,
				  "not a layerfs index");
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	ret = -errno;
	close(fd);
	if (p == MAP_FAILED)
		return lf_err_set(err, ret, "cannot map '%s': %s", path,
				  strerror(-ret));
	ret = check_header(p, (size_t)st.st_size, key, &why);
	if (ret) {
		munmap(p, (size_t)st.st_size);
		return lf_err_set(err, ret, "'%s': %s", path, why);
	}
	*map = p;
	*len = (size_t)st.st_size;
	return 0;
}

void lf_cache_unmap(void *map, size_t len)
{
	if (map)
		munmap(map, len);
}

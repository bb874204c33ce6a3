/* SPDX-License-Identifier: MIT */
/*
 * common.h - shared macros, checked size arithmetic and the error record.
 *
 * Every library function in layerfs returns 0 or a negative errno and may
 * take a `struct lf_err *err` as its last argument (NULL allowed).  On
 * failure the function fills err with one line that names the file, layer or
 * blob and the cause; lf_err_set() returns its code so a failure is a single
 * `return lf_err_set(err, -EINVAL, "...")`.  Only cli.c prints messages.
 *
 * Size arithmetic on values that come from input (tar headers, JSON, cache
 * files) goes through the lf_*_overflow helpers, never through plain `+`/`*`.
 *
 * Thread safety: everything here is reentrant; a struct lf_err belongs to
 * one thread at a time.
 */
#ifndef LAYERFS_COMMON_H
#define LAYERFS_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LF_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define LF_MIN(a, b) ((a) < (b) ? (a) : (b))
#define LF_MAX(a, b) ((a) > (b) ? (a) : (b))
#define lf_likely(x) __builtin_expect(!!(x), 1)
#define lf_unlikely(x) __builtin_expect(!!(x), 0)
#define LF_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define LF_UNUSED __attribute__((unused))

/* Longest message an error record holds; longer ones are truncated. */
#define LF_ERR_MAX 1024

struct lf_err {
	int code;	      /* negative errno, 0 when unset */
	char msg[LF_ERR_MAX]; /* one line, lowercase, no final period */
};

/*
 * Record a failure and return `code` (a negative errno).  err may be NULL, in
 * which case only the code is returned.  An earlier message is overwritten.
 */
int lf_err_set(struct lf_err *err, int code, const char *fmt, ...)
	LF_PRINTF(3, 4);

/*
 * Prefix the message already in err with context ("layer 3: " + old).  Returns
 * err->code (or -EIO when err is NULL or unset), so callers can
 * `return lf_err_prefix(err, "layer %u", n);`.
 */
int lf_err_prefix(struct lf_err *err, const char *fmt, ...) LF_PRINTF(2, 3);

/* Clear an error record before reuse. */
void lf_err_clear(struct lf_err *err);

/* write(2) all of [data, data+len) to fd, retrying EINTR and short writes:
 * 0 or -errno. */
int lf_write_all(int fd, const void *data, size_t len);

struct stat;
/*
 * Open a file layerfs wrote itself (a cache file) for reading: no symlink
 * followed, never blocking on a FIFO planted there, anything but a regular
 * file refused.  The fd (st filled), or -errno: -ENOENT no such file,
 * -EINVAL not a regular file.
 */
int lf_open_own_file(const char *path, struct stat *st);

/* Checked arithmetic: return true on overflow, leaving *r unspecified. */
static inline bool lf_add_overflow(uint64_t a, uint64_t b, uint64_t *r)
{
	return __builtin_add_overflow(a, b, r);
}

static inline bool lf_mul_overflow(uint64_t a, uint64_t b, uint64_t *r)
{
	return __builtin_mul_overflow(a, b, r);
}

/* true when [off, off+len) does not fit inside [0, size). */
static inline bool lf_range_outside(uint64_t off, uint64_t len, uint64_t size)
{
	uint64_t end;

	return lf_add_overflow(off, len, &end) || end > size;
}

/* Read/write helpers for explicit little-endian on-disk fields. */
static inline uint32_t lf_le32(uint32_t v)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	return __builtin_bswap32(v);
#else
	return v;
#endif
}

static inline uint64_t lf_le64(uint64_t v)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	return __builtin_bswap64(v);
#else
	return v;
#endif
}

#endif /* LAYERFS_COMMON_H */

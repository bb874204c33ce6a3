// SPDX-License-Identifier: MIT
/* tarscan_names.c - member names straight from the tar header bytes. */
#include "tarscan_internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define BLOCK 512
/* libarchive gives up after this many headers for one member */
#define MAX_HEADERS 64
/* and refuses a PAX record longer than this */
#define PAX_RECORD_MAX 999999

/* The field f[0..n) up to its first NUL. */
static struct lf_tar_span field(const unsigned char *f, size_t n)
{
	const unsigned char *z = memchr(f, '\0', n);

	return (struct lf_tar_span){ f, z ? (size_t)(z - f) : n };
}

/* The size field (octal, or GNU base-256); -1 when it is not a number. */
static int64_t header_size(const unsigned char *h)
{
	const unsigned char *f = h + 124;
	uint64_t v = 0;
	size_t i = 0;

	if (f[0] & 0x80) {
		/* base-256: a negative or huge size is nonsense here */
		if (f[0] != 0x80)
			return -1;
		for (i = 1; i < 12; i++) {
			if (v >> 55)
				return -1;
			v = v << 8 | f[i];
		}
		return (int64_t)v;
	}
	while (i < 12 && (f[i] == ' ' || f[i] == '\0'))
		i++;
	for (; i < 12 && f[i] >= '0' && f[i] <= '7'; i++)
		v = v << 3 | (uint64_t)(f[i] - '0');
	return (int64_t)v;
}

/*
 * The `path` (or `GNU.sparse.name`) and `linkpath` records of a PAX
 * header body, as libarchive reads it: the body ends at its first NUL, and
 * a malformed record voids the whole header's names.
 */
static void pax_names(const unsigned char *p, size_t n,
		      struct lf_tar_span *path, struct lf_tar_span *link)
{
	struct lf_tar_span pth = { 0 }, sname = { 0 }, lnk = { 0 };
	const unsigned char *z = memchr(p, '\0', n);

	if (z)
		n = (size_t)(z - p);
	while (n) {
		size_t len = 0, i = 0, klen;
		const unsigned char *kv, *eq;
		struct lf_tar_span v;

		for (; i < n && p[i] != ' '; i++) {
			if (p[i] < '0' || p[i] > '9')
				return;
			len = len * 10 + (size_t)(p[i] - '0');
			if (len > PAX_RECORD_MAX)
				return;
		}
		if (i >= n || len < i + 2 || len > n || p[len - 1] != '\n')
			return;
		kv = p + i + 1;
		klen = len - i - 2;
		eq = memchr(kv, '=', klen);
		if (!eq || eq == kv)
			return;
		v = (struct lf_tar_span){ eq + 1,
					  klen - (size_t)(eq + 1 - kv) };
		if (eq - kv == 4 && !memcmp(kv, "path", 4))
			pth = v;
		else if (eq - kv == 8 && !memcmp(kv, "linkpath", 8))
			lnk = v;
		else if (eq - kv == 15 && !memcmp(kv, "GNU.sparse.name", 15))
			sname = v;
		p += len;
		n -= len;
	}
	if (sname.len)
		*path = sname;
	else if (pth.len)
		*path = pth;
	if (lnk.len)
		*link = lnk;
}

/* Name of the final header: ustar's prefix '/' name, else name alone. */
static void final_name(const unsigned char *h, unsigned char *joined,
		       struct lf_tar_span *path)
{
	struct lf_tar_span name = field(h, 100), prefix;

	/* "ustar  \0" is GNU's header, whose prefix field holds times */
	if (memcmp(h + 257, "ustar", 5) || !memcmp(h + 257, "ustar  \0", 8) ||
	    !h[345]) {
		*path = name;
		return;
	}
	prefix = field(h + 345, 155);
	memcpy(joined, prefix.p, prefix.len);
	path->len = prefix.len;
	if (joined[path->len - 1] != '/')
		joined[path->len++] = '/';
	memcpy(joined + path->len, name.p, name.len);
	path->len += name.len;
	path->p = joined;
}

int lf_tarscan_raw_names(const unsigned char *hdr, size_t len,
			 unsigned char joined[LF_TAR_JOINED],
			 struct lf_tar_span *path, struct lf_tar_span *link)
{
	size_t pos = 0;
	int k;

	*path = *link = (struct lf_tar_span){ 0 };
	for (k = 0; k < MAX_HEADERS; k++) {
		const unsigned char *h = hdr + pos;
		struct lf_tar_span pp = { 0 }, pl = { 0 };
		int64_t size;
		size_t body;

		if (pos > len || len - pos < BLOCK)
			return -EINVAL;
		switch (h[156]) {
		case 'V': /* GNU volume label: one block, no body */
			pos += BLOCK;
			continue;
		case 'x':
		case 'X':
		case 'g':
		case 'L':
		case 'K':
		case 'A':
			break;
		default:
			/* the member's own header */
			if (!path->p)
				final_name(h, joined, path);
			if (!link->p)
				*link = field(h + 157, 100);
			return 0;
		}
		size = header_size(h);
		if (size < 0 || (uint64_t)size > len - pos - BLOCK)
			return -EINVAL;
		body = (size_t)size;
		if (h[156] == 'x' || h[156] == 'X')
			pax_names(h + BLOCK, body, &pp, &pl);
		else if (h[156] == 'L')
			pp = field(h + BLOCK, body);
		else if (h[156] == 'K')
			pl = field(h + BLOCK, body);
		/* an earlier extension header wins (libarchive applies the
		 * inner ones first and lets the outer ones override) */
		if (!path->p && pp.p)
			*path = pp;
		if (!link->p && pl.p)
			*link = pl;
		body = (body + BLOCK - 1) / BLOCK * BLOCK;
		if (body > len - pos - BLOCK)
			return -EINVAL;
		pos += BLOCK + body;
	}
	return -EINVAL;
}

/* SPDX-License-Identifier: MIT */
/* tarscan_internal.h - shared by tarscan.c and tarscan_names.c. */
#ifndef LAYERFS_TARSCAN_INTERNAL_H
#define LAYERFS_TARSCAN_INTERNAL_H

#include <stddef.h>

/* A byte string inside a member's header blocks (not NUL-terminated). */
struct lf_tar_span {
	const unsigned char *p; /* NULL: not given */
	size_t len;
};

/* Room for a ustar prefix, '/' and name joined. */
#define LF_TAR_JOINED (155 + 1 + 100)

/*
 * Member names as the archive stores them: the path and the link target of
 * the member whose header chain (PAX `x`/`X`, global `g`, GNU `L`/`K`,
 * `V`, `A` extension headers, then the ustar/GNU/v7 header) starts at
 * hdr[0], bytes taken as they are (no charset conversion, no Unicode
 * normalisation).  Precedence is libarchive's: an extension header wins
 * over the ones after it and over the final header; in a PAX header
 * `GNU.sparse.name` wins over `path`; empty values do not count.
 * Returns 0, or -EINVAL when hdr[0..len) does not hold a whole header chain
 * (the caller then keeps libarchive's names).  Spans point into hdr, or
 * into `joined` for a ustar prefix and name.
 */
int lf_tarscan_raw_names(const unsigned char *hdr, size_t len,
			 unsigned char joined[LF_TAR_JOINED],
			 struct lf_tar_span *path, struct lf_tar_span *link);

#endif /* LAYERFS_TARSCAN_INTERNAL_H */

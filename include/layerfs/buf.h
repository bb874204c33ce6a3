/* SPDX-License-Identifier: MIT */
/*
 * buf.h - growable byte buffer with git strbuf semantics.
 *
 * A struct lf_buf is caller-provided storage: lf_buf_init() before use,
 * lf_buf_release() after.  `data` is always NUL-terminated (also when empty,
 * once initialised), so text built here can be used as a C string; binary
 * content may contain NULs, `len` is authoritative.  Adders return 0 or
 * -ENOMEM and leave the buffer valid on failure.
 *
 * Not thread-safe: one owner at a time.
 */
#ifndef LAYERFS_BUF_H
#define LAYERFS_BUF_H

#include <stddef.h>

#include "layerfs/common.h"

struct lf_buf {
	char *data;   /* owned; never NULL after init */
	size_t len;   /* bytes used, not counting the trailing NUL */
	size_t alloc; /* bytes allocated; 0 while data is the shared "" */
};

void lf_buf_init(struct lf_buf *b);
void lf_buf_release(struct lf_buf *b);
/* Make room for `extra` more bytes (plus the NUL). */
int lf_buf_grow(struct lf_buf *b, size_t extra);
int lf_buf_add(struct lf_buf *b, const void *data, size_t len);
int lf_buf_adds(struct lf_buf *b, const char *s);
int lf_buf_addch(struct lf_buf *b, char c);
int lf_buf_addf(struct lf_buf *b, const char *fmt, ...) LF_PRINTF(2, 3);
/* Append `len` zero bytes. */
int lf_buf_addzero(struct lf_buf *b, size_t len);
void lf_buf_reset(struct lf_buf *b);
void lf_buf_setlen(struct lf_buf *b, size_t len);
/* Hand the allocation to the caller (free() it); b is re-initialised. */
char *lf_buf_detach(struct lf_buf *b, size_t *len);

#endif /* LAYERFS_BUF_H */

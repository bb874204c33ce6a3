// SPDX-License-Identifier: MIT
/* buf.c - growable byte buffer. */
#include "layerfs/buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char empty_buf[1];

void lf_buf_init(struct lf_buf *b)
{
	b->data = empty_buf;
	b->len = 0;
	b->alloc = 0;
}

void lf_buf_release(struct lf_buf *b)
{
	if (b->alloc)
		free(b->data);
	lf_buf_init(b);
}

int lf_buf_grow(struct lf_buf *b, size_t extra)
{
	size_t need, n;
	char *p;

	if (__builtin_add_overflow(b->len, extra, &need) ||
	    __builtin_add_overflow(need, 1, &need))
		return -ENOMEM;
	if (need <= b->alloc)
		return 0;
	n = b->alloc ? b->alloc : 64;
	while (n < need) {
		if (__builtin_mul_overflow(n, 2, &n))
			return -ENOMEM;
	}
	p = b->alloc ? realloc(b->data, n) : malloc(n);
	if (!p)
		return -ENOMEM;
	if (!b->alloc)
		p[0] = '\0';
	b->data = p;
	b->alloc = n;
	return 0;
}

int lf_buf_add(struct lf_buf *b, const void *data, size_t len)
{
	int ret = lf_buf_grow(b, len);

	if (ret)
		return ret;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int lf_buf_adds(struct lf_buf *b, const char *s)
{
	return lf_buf_add(b, s, strlen(s));
}

int lf_buf_addch(struct lf_buf *b, char c)
{
	return lf_buf_add(b, &c, 1);
}

int lf_buf_addzero(struct lf_buf *b, size_t len)
{
	int ret = lf_buf_grow(b, len);

	if (ret)
		return ret;
	memset(b->data + b->len, 0, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int lf_buf_addf(struct lf_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, ret;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	ret = lf_buf_grow(b, (size_t)n);
	if (ret)
		return ret;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

void lf_buf_reset(struct lf_buf *b)
{
	lf_buf_setlen(b, 0);
}

void lf_buf_setlen(struct lf_buf *b, size_t len)
{
	if (!b->alloc)
		return;
	if (len > b->len)
		len = b->len;
	b->len = len;
	b->data[len] = '\0';
}

char *lf_buf_detach(struct lf_buf *b, size_t *len)
{
	char *p;

	if (!b->alloc && lf_buf_grow(b, 0))
		return NULL;
	p = b->data;
	if (len)
		*len = b->len;
	lf_buf_init(b);
	return p;
}

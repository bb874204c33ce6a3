/* SPDX-License-Identifier: MIT */
/*
 * fuzz.h - what every fuzz target defines.  Built twice: with libFuzzer
 * (-Dfuzz=true, clang), and always with replay.c as a plain program that
 * feeds the inputs of tests/data/regress/<target>/ to the same function,
 * so every crash once found stays fixed.  A target returns 0; it abort()s
 * when it catches a wrong answer (the sanitizers catch the rest).
 */
#ifndef LAYERFS_FUZZ_H
#define LAYERFS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input as a pull-style stream, handed out `piece` bytes at a time at
 * most (0: as much as asked), as a decompressor would. */
struct fuzz_src {
	const uint8_t *data;
	size_t size, pos, piece;
};

static inline ssize_t fuzz_read(void *ctx, void *buf, size_t len)
{
	struct fuzz_src *s = ctx;
	size_t n = s->size - s->pos;

	if (n > len)
		n = len;
	if (s->piece && n > s->piece)
		n = s->piece;
	memcpy(buf, s->data + s->pos, n);
	s->pos += n;
	return (ssize_t)n;
}

#endif /* LAYERFS_FUZZ_H */

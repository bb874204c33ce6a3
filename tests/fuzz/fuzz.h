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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif /* LAYERFS_FUZZ_H */

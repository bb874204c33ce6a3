#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""floodnames.py - images that flood the name hash layerfs used to have
(bench material, never a test).

Until the tree hashed names with SipHash under a random key, a name's slot
was FNV-1a over (directory, name) with no seed:

    h = 1469598103934665603 ^ (dir * 0x9e3779b97f4a7c15)
    for each byte c: h = (h ^ c) * 1099511628211      (mod 2^64)
    slot = (h ^ (h >> 29)) & (slots - 1)

The low k bits of h depend only on the low k bits before each step, so two
blocks of bytes that take one state to the same low 49 bits keep doing so
whatever follows: a collision of blocks is found by Pollard's rho (about
2^25 steps), and 17 such pairs in a row give 2^17 names of 153 bytes (one
of the two blocks at each of 17 places) with the same low 49 bits, so the
same slot of every table up to 2^20 slots, both in the merge (chained
buckets keyed by the parent's merge node) and in the frozen tree (linear
probing keyed by the directory's inode).  The names go in directory /a
behind a file /b, so /a is merge node 2 and tree inode 2: one `dir` value
for both tables.

    floodnames.py OUT [--bits 17]    writes OUT/flood (the crafted names) and
                                     OUT/random (random names, same count
                                     and length), OCI layouts, one layer each

The block search is a small C program compiled with cc on first use.
"""

import argparse
import os
import random
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures"))

DIR = 2  # the merge node and the tree inode of /a (see above)
ALPHA = (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")

C_SRC = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#define MASK ((1ull << 49) - 1)
#define BLK 9
static const char A[] =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
static uint64_t S;
static void enc(uint64_t x, char *b)
{
	for (int i = 0; i < BLK; i++, x >>= 6)
		b[i] = A[x & 63];
}
static uint64_t f(uint64_t x)
{
	char b[BLK];
	uint64_t h = S;

	enc(x, b);
	for (int i = 0; i < BLK; i++)
		h = (h ^ (unsigned char)b[i]) * 1099511628211ull;
	return h & MASK;
}
int main(int argc, char **argv)
{
	int stages = atoi(argv[1]);
	uint64_t seed = 1;

	S = strtoull(argv[2], NULL, 0);
	for (int s = 0; s < stages; s++) {
		for (;;) {
			/* Brent: the cycle length, then the tail */
			uint64_t x0 = (seed++ * 0x9e3779b97f4a7c15ull) & MASK;
			uint64_t pw = 1, lam = 1, t = x0, h = f(x0), mu, a, b;

			while (t != h) {
				if (pw == lam) {
					t = h;
					pw *= 2;
					lam = 0;
				}
				h = f(h);
				lam++;
			}
			a = b = x0;
			for (uint64_t i = 0; i < lam; i++)
				b = f(b);
			for (mu = 0; a != b; mu++) {
				uint64_t na = f(a), nb = f(b);
				if (na == nb && a != b) {
					char ba[BLK + 1] = {0}, bb[BLK + 1] = {0};
					uint64_t hs = S;

					enc(a, ba);
					enc(b, bb);
					printf("%s %s\n", ba, bb);
					fflush(stdout);
					for (int i = 0; i < BLK; i++)
						hs = (hs ^ (unsigned char)ba[i]) *
						     1099511628211ull;
					S = hs;
					goto next;
				}
				a = na;
				b = nb;
			}
			/* x0 was on the cycle: no collision, start elsewhere */
		}
	next:;
	}
	return 0;
}
"""


def old_hash(d, name):
    h = 1469598103934665603 ^ ((d * 0x9e3779b97f4a7c15) & (2**64 - 1))
    for c in name:
        h = ((h ^ c) * 1099511628211) & (2**64 - 1)
    return h ^ (h >> 29)


def block_pairs(bits):
    tmp = tempfile.mkdtemp(prefix="floodnames-")
    src, exe = os.path.join(tmp, "rho.c"), os.path.join(tmp, "rho")
    with open(src, "w") as f:
        f.write(C_SRC)
    subprocess.run(["cc", "-O2", "-o", exe, src], check=True)
    start = 1469598103934665603 ^ ((DIR * 0x9e3779b97f4a7c15)
                                    & (2**64 - 1))
    out = subprocess.run([exe, str(bits), str(start)], check=True,
                         stdout=subprocess.PIPE).stdout.split(b"\n")
    os.unlink(exe)
    os.unlink(src)
    os.rmdir(tmp)
    return [tuple(l.split()) for l in out if l]


def flood_names(bits):
    pairs = block_pairs(bits)
    names = [b""]
    for a, b in pairs:
        names = [n + a for n in names] + [n + b for n in names]
    return names


def write(img, names):
    import mkimage as mk
    ops = [mk.file("/b", "before a\n"), mk.dir("/a")]
    ops += [mk.file("/a/" + n.decode(), "") for n in names]
    mk.write_image(mk.Image([mk.Layer(ops, "gzip")]), img, "oci")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--bits", type=int, default=17)
    a = ap.parse_args()
    names = flood_names(a.bits)
    slots = {old_hash(DIR, n) & ((1 << 20) - 1) for n in names}
    print("%d crafted names of %d bytes, %d distinct slot(s) of 2^20 under "
          "the old hash" % (len(names), len(names[0]), len(slots)),
          file=sys.stderr)
    rnd = random.Random(1)
    rand = sorted({bytes(rnd.choice(ALPHA) for _ in names[0])
                   for _ in names})
    os.makedirs(a.out, exist_ok=True)
    write(os.path.join(a.out, "flood"), names)
    write(os.path.join(a.out, "random"), rand)


if __name__ == "__main__":
    main()

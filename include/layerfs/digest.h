/* SPDX-License-Identifier: MIT */
/*
 * digest.h - streaming sha256 (the only module that includes OpenSSL) and
 * OCI digest strings ("sha256:<64 lowercase hex>").
 *
 * Thread safety: a struct lf_sha256 belongs to one thread at a time.
 */
#ifndef LAYERFS_DIGEST_H
#define LAYERFS_DIGEST_H

#include <stddef.h>

#include "layerfs/common.h"

/* "sha256:" + 64 hex + NUL */
#define LF_DIGEST_LEN 72

struct lf_sha256;

int lf_sha256_new(struct lf_sha256 **out);
void lf_sha256_update(struct lf_sha256 *h, const void *data, size_t len);
/* Write "sha256:<hex>" into out (LF_DIGEST_LEN bytes); h may be reused after
 * lf_sha256_reset(). */
void lf_sha256_final(struct lf_sha256 *h, char out[LF_DIGEST_LEN]);
void lf_sha256_reset(struct lf_sha256 *h);
void lf_sha256_free(struct lf_sha256 *h);

/* One-shot digest of a memory region into out ("sha256:<hex>"). */
int lf_sha256_mem(const void *data, size_t len, char out[LF_DIGEST_LEN]);

/*
 * true when `s` is a well-formed "sha256:<64 lowercase hex>" digest.  Only
 * sha256 is accepted: it is what every image tool writes, and a digest string
 * becomes part of cache and blob file names, so it must be validated first.
 */
bool lf_digest_valid(const char *s);

/*
 * Why `s` is not accepted, for messages: "uses the unsupported algorithm
 * 'sha512'" for a digest of the OCI grammar with another algorithm, else
 * "is not a valid digest".  Only for strings lf_digest_valid() refused.
 */
const char *lf_digest_refusal(const char *s);

#endif /* LAYERFS_DIGEST_H */

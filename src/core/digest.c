// SPDX-License-Identifier: MIT
/* digest.c - sha256 through OpenSSL's EVP interface. */
#include "layerfs/digest.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

struct lf_sha256 {
	EVP_MD_CTX *ctx;
};

int lf_sha256_new(struct lf_sha256 **out)
{
	struct lf_sha256 *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx || !EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL)) {
		lf_sha256_free(h);
		return -ENOMEM;
	}
	*out = h;
	return 0;
}

void lf_sha256_update(struct lf_sha256 *h, const void *data, size_t len)
{
	EVP_DigestUpdate(h->ctx, data, len);
}

static void hexify(const unsigned char *md, char out[LF_DIGEST_LEN])
{
	static const char hex[] = "0123456789abcdef";
	int i;

	memcpy(out, "sha256:", 7);
	for (i = 0; i < 32; i++) {
		out[7 + 2 * i] = hex[md[i] >> 4];
		out[8 + 2 * i] = hex[md[i] & 15];
	}
	out[71] = '\0';
}

void lf_sha256_final(struct lf_sha256 *h, char out[LF_DIGEST_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	EVP_DigestFinal_ex(h->ctx, md, &n);
	hexify(md, out);
}

void lf_sha256_reset(struct lf_sha256 *h)
{
	EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL);
}

void lf_sha256_free(struct lf_sha256 *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

int lf_sha256_mem(const void *data, size_t len, char out[LF_DIGEST_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (!EVP_Digest(data, len, md, &n, EVP_sha256(), NULL))
		return -ENOMEM;
	hexify(md, out);
	return 0;
}

bool lf_digest_valid(const char *s)
{
	int i;

	if (strncmp(s, "sha256:", 7) != 0 || strlen(s) != 71)
		return false;
	for (i = 7; i < 71; i++) {
		char c = s[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	return true;
}

const char *lf_digest_refusal(const char *s)
{
	static __thread char buf[80];
	size_t alg = strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789+._-");
	const char *enc = s + alg + 1;

	/* OCI: algorithm ":" encoded, encoded = [a-zA-Z0-9=_-]+ */
	if (!alg || s[alg] != ':' || !*enc ||
	    enc[strspn(enc, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV"
			    "WXYZ0123456789=_-")] ||
	    (alg == 6 && !strncmp(s, "sha256", 6)))
		return "is not a valid digest";
	snprintf(buf, sizeof(buf),
		 "uses the unsupported digest algorithm "
		 "'%.*s' (layerfs reads sha256 images)",
		 (int)(alg > 20 ? 20 : alg), s);
	return buf;
}

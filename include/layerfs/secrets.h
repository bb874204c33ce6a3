/* SPDX-License-Identifier: MIT */
/*
 * secrets.h - does a file hold a secret?  Well-known content rules in the
 * spirit of trivy's and gitleaks' built-in rules (private key blocks, AWS
 * access key ids and secret keys, GitHub/GitLab/Slack/npm/PyPI tokens,
 * docker config.json auths, .git-credentials URLs, kubeconfig client keys,
 * .npmrc _authToken, .pypirc passwords), then a few exact well-known file
 * names (id_rsa, .env, .netrc, .pgpass, .aws/credentials, ...).  Never a
 * substring of a name: secrets.pyc and tokenize.py are not secrets.
 *
 * The caller reads the file (the first LF_SECRET_SCAN_BYTES at most) and
 * hands over the bytes; nothing here does I/O or allocates.  Binary data
 * (a NUL byte in the first 8 KiB) is not scanned, and only names apply to
 * it.  Documented placeholders are not secrets: values holding EXAMPLE
 * (AKIAIOSFODNN7EXAMPLE), one repeated character (glpat-xxxx...), or an
 * unexpanded variable (${NPM_TOKEN}).
 *
 * A hit names its rule (a stable id such as "aws-access-key-id"), a static
 * reason, and a redacted excerpt: the non-secret part (a token prefix, a
 * key name) then at most 4 characters of the secret, no more than a quarter
 * of it, then "****".  The first hit in the file wins; content before names.
 */
#ifndef LAYERFS_SECRETS_H
#define LAYERFS_SECRETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LF_SECRET_SCAN_BYTES (1u << 20) /* scanned per file */
#define LF_SECRET_BINARY_PROBE 8192	/* NUL in these: binary */
#define LF_SECRET_EXCERPT 64		/* excerpt buffer, with the NUL */

struct lf_secret_hit {
	const char *rule;   /* static id */
	const char *reason; /* static text */
	char excerpt[LF_SECRET_EXCERPT];
};

/* True when buf[0..n) looks binary (a NUL among the first bytes). */
bool lf_secret_is_binary(const char *buf, size_t n);
/*
 * Judge the file at `path` ("a/b", no leading slash) of `size` bytes from
 * its first n bytes (n may be 0, buf NULL, when the caller read nothing:
 * then only names apply, and only to a non-empty file); true with *hit
 * filled when it holds or is a secret.
 */
bool lf_secret_check(const char *path, uint64_t size, const char *buf, size_t n,
		     struct lf_secret_hit *hit);

#endif /* LAYERFS_SECRETS_H */

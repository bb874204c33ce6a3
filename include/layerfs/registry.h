/* SPDX-License-Identifier: MIT */
/*
 * registry.h - a client of the OCI distribution API (a registry), on
 * libcurl: manifests by tag or digest, blobs whole or by byte range.
 *
 * One struct lf_registry serves one repository of one host.  Manifests are
 * asked for with every media type layerfs reads (OCI manifest and index,
 * Docker schema 2 manifest and manifest list) and bounded in size; what
 * the caller holds a digest for is checked against it.  Blobs are read by
 * HTTP Range (a 206 with exactly the range asked for, or an error; rblob.h
 * makes a vfile of that).  Every error names the URL and the HTTP status.
 *
 * HTTPS (with `tls_verify` false: without verification, then plain HTTP
 * when the server does not speak TLS); CA certificates and a client
 * certificate from `cert_dir` (containers-certs.d(5); default
 * /etc/containers/certs.d/HOST and /etc/docker/certs.d/HOST).  A 401 is
 * answered once per request: Basic with the credentials, or the Bearer
 * flow (a token from the challenge's realm for its service and scope,
 * asked with the credentials when there are some); credentials come from
 * `creds` or the auth files podman, skopeo and docker write (auth.c).  An
 * Authorization header never follows a redirect to another host.
 * Connections are kept alive in up to 8 idle curl handles per registry
 * (DNS and TLS sessions are shared by all).  Retries: a
 * dropped connection, 429 (after its Retry-After, at most 10 s) or 5xx is
 * retried up to 4 times with backoff, all waits within 60 s; a transfer
 * below 1 KiB/s for 30 s ($LAYERFS_NET_STALL) is dropped and retried.
 * Passwords and tokens appear in no message.
 *
 * Thread safety: a registry may be used from many threads (one curl handle
 * per request).  Ownership: lf_registry_ref() takes a reference (a blob
 * vfile holds one); lf_registry_close() drops one.
 */
#ifndef LAYERFS_REGISTRY_H
#define LAYERFS_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layerfs/buf.h"
#include "layerfs/common.h"

struct lf_registry;

struct lf_registry_opts {
	bool tls_verify;      /* false: no TLS verification, plain HTTP ok */
	const char *creds;    /* "USER[:PASS]", or NULL: the auth files */
	const char *cert_dir; /* containers-certs.d(5) dir, or NULL */
};

/* host: "HOST[:PORT]"; repo: "library/busybox". */
int lf_registry_open(const char *host, const char *repo,
		     const struct lf_registry_opts *o, struct lf_registry **out,
		     struct lf_err *err);
/* Another reference to r (each is dropped by lf_registry_close()). */
struct lf_registry *lf_registry_ref(struct lf_registry *r);
void lf_registry_close(struct lf_registry *r);

/* How messages name it: "HOST/REPO". */
const char *lf_registry_name(const struct lf_registry *r);

/* GET manifest `ref` (tag or digest), at most `max` bytes, into body
 * (NUL-terminated); *media_type (malloc'd) from Content-Type. */
int lf_registry_manifest(struct lf_registry *r, const char *ref, size_t max,
			 struct lf_buf *body, char **media_type,
			 struct lf_err *err);

/* HEAD of a blob: its size; -ENOENT when the registry has none. */
int lf_registry_blob_size(struct lf_registry *r, const char *digest,
			  uint64_t *size, struct lf_err *err);

/* Bytes [off, off + len) of blob `digest` into buf by one range GET (with
 * retries): all of them, or an error (a short or misplaced answer: -EIO). */
int lf_registry_blob_range(struct lf_registry *r, const char *digest,
			   uint64_t off, size_t len, void *buf,
			   struct lf_err *err);

/*
 * Writes (`layerfs index push`; the token asked for then has push scope).
 * lf_registry_blob_put(): upload `len` bytes as blob `digest` (POST an
 * upload, PUT its location with the digest; nothing when the registry has
 * it already); an upload location on another host is refused.
 * lf_registry_manifest_put(): PUT a manifest or index of `media_type`
 * under `ref` (a tag or its digest); *subject_seen tells whether the
 * answer carried OCI-Subject (the registry indexed its subject for the
 * referrers API).  Errors carry the registry's own error code.
 */
int lf_registry_blob_put(struct lf_registry *r, const char *digest,
			 const void *data, size_t len, struct lf_err *err);
int lf_registry_manifest_put(struct lf_registry *r, const char *ref,
			     const char *media_type, const void *data,
			     size_t len, bool *subject_seen,
			     struct lf_err *err);

/* GET the referrers of manifest `digest` (OCI 1.1), filtered to
 * `artifact_type` when not NULL: an image index of at most `max` bytes
 * into body (NUL-terminated); -ENOENT when the registry has no referrers
 * API (404), -EPROTO when the answer is not an image index. */
int lf_registry_referrers(struct lf_registry *r, const char *digest,
			  const char *artifact_type, size_t max,
			  struct lf_buf *body, struct lf_err *err);

/* Requests made and body bytes received so far. */
void lf_registry_stats(const struct lf_registry *r, uint64_t *requests,
		       uint64_t *bytes);

#endif /* LAYERFS_REGISTRY_H */

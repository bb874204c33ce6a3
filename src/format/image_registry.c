// SPDX-License-Identifier: MIT
/* image_registry.c - a registry repository as the store of an OCI layout. */
#include "image_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layerfs/digest.h"
#include "layerfs/registry.h"

#define LAYOUT_JSON "{\"imageLayoutVersion\":\"1.0.0\"}"
#define BLOB_PREFIX "blobs/sha256/"

/* A document held in memory: the vfiles over it borrow its bytes. */
struct doc {
	char name[LF_DIGEST_LEN + 16]; /* store name */
	struct lf_buf body;
};

struct lf_image_remote {
	struct lf_registry *reg;
	struct doc *docs; /* oci-layout, index.json, manifests */
	size_t ndocs;
};

static struct doc *doc_find(const struct lf_image_remote *m, const char *name)
{
	size_t i;

	for (i = 0; i < m->ndocs; i++)
		if (!strcmp(m->docs[i].name, name))
			return &m->docs[i];
	return NULL;
}

/* A new document `name` (its body empty, to be filled). */
static struct doc *doc_add(struct lf_image_remote *m, const char *name)
{
	struct doc *p = realloc(m->docs, (m->ndocs + 1) * sizeof(*p));

	if (!p)
		return NULL;
	m->docs = p;
	p = &m->docs[m->ndocs++];
	snprintf(p->name, sizeof(p->name), "%s", name);
	lf_buf_init(&p->body);
	return p;
}

/* GET manifest `ref`; store it as blobs/sha256/<its digest>. */
static int fetch_manifest(struct lf_image_remote *m, const char *ref,
			  char digest[LF_DIGEST_LEN], char **media_type,
			  struct lf_err *err)
{
	struct lf_buf body;
	struct doc *d;
	char name[LF_DIGEST_LEN + 16];
	int ret;

	lf_buf_init(&body);
	ret = lf_registry_manifest(m->reg, ref, LF_IMAGE_JSON_MAX, &body,
				   media_type, err);
	if (!ret && lf_sha256_mem(body.len ? body.data : "", body.len, digest))
		ret = lf_err_set(err, -ENOMEM, "out of memory");
	if (!ret && !strncmp(ref, "sha256:", 7) && strcmp(ref, digest))
		ret = lf_err_set(err, -EINVAL,
				 "%s: manifest %s hashes to %s: the registry "
				 "sent other bytes",
				 lf_registry_name(m->reg), ref, digest);
	if (ret) {
		lf_buf_release(&body);
		return ret;
	}
	snprintf(name, sizeof(name), BLOB_PREFIX "%s", digest + 7);
	if ((d = doc_find(m, name))) {
		lf_buf_release(&body);
		return 0;
	}
	if (!(d = doc_add(m, name))) {
		lf_buf_release(&body);
		return lf_err_set(err, -ENOMEM, "out of memory");
	}
	d->body = body;
	return 0;
}

static int put_doc(struct lf_image_remote *m, const char *name,
		   const char *text, struct lf_err *err)
{
	struct doc *d = doc_add(m, name);

	if (!d || lf_buf_adds(&d->body, text))
		return lf_err_set(err, -ENOMEM, "out of memory");
	return 0;
}

int lf_image_store_open_registry(struct lf_image_store *st, const char *host,
				 const char *repo, const char *ref,
				 const struct lf_image_opts *o,
				 struct lf_err *err)
{
	struct lf_registry_opts ro = { .tls_verify = !o->no_tls_verify };
	struct lf_image_remote *m = calloc(1, sizeof(*m));
	char digest[LF_DIGEST_LEN], *mt = NULL, index[512];
	struct doc *top;
	int ret;

	if (!m)
		return lf_err_set(err, -ENOMEM, "out of memory");
	st->remote = m;
	if ((ret = lf_registry_open(host, repo, &ro, &m->reg, err)) ||
	    (ret = fetch_manifest(m, ref, digest, &mt, err)))
		goto out;
	top = &m->docs[m->ndocs - 1];
	snprintf(index, sizeof(index),
		 "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"%."
		 "200s\","
		 "\"digest\":\"%s\",\"size\":%zu}]}",
		 mt, digest, top->body.len);
	if ((ret = put_doc(m, "oci-layout", LAYOUT_JSON, err)) ||
	    (ret = put_doc(m, "index.json", index, err)))
		goto out;
out:
	free(mt);
	return ret;
}

bool lf_image_remote_has(const struct lf_image_store *st, const char *name)
{
	return doc_find(st->remote, name) ||
	       !strncmp(name, BLOB_PREFIX, strlen(BLOB_PREFIX));
}

int lf_image_remote_blob(const struct lf_image_store *st, const char *name,
			 struct lf_vfile **out, struct lf_err *err)
{
	struct lf_image_remote *m = st->remote;
	const char *hex = name + strlen(BLOB_PREFIX);
	char digest[LF_DIGEST_LEN + 8], got[LF_DIGEST_LEN], *mt = NULL;
	struct doc *d = doc_find(m, name);
	uint64_t size;
	int ret;

	if (!d && strncmp(name, BLOB_PREFIX, strlen(BLOB_PREFIX)))
		return lf_err_set(err, -ENOENT, "'%s': %s is missing",
				  st->label, name);
	if (!d) {
		snprintf(digest, sizeof(digest), "sha256:%s", hex);
		ret = lf_registry_blob_size(m->reg, digest, &size, err);
		if (!ret)
			return lf_registry_blob_vfile(m->reg, digest, size, out,
						      err);
		if (ret != -ENOENT)
			return ret;
		/* a manifest of an index: registries serve those from
		 * /manifests/ */
		if (err)
			memset(err, 0, sizeof(*err));
		ret = fetch_manifest(m, digest, got, &mt, err);
		free(mt);
		if (ret)
			return ret;
		d = doc_find(m, name);
	}
	return lf_vfile_from_mem(d->body.len ? d->body.data : "", d->body.len,
				 name, out)
		       ? lf_err_set(err, -ENOMEM, "out of memory")
		       : 0;
}

void lf_image_remote_release(struct lf_image_store *st)
{
	struct lf_image_remote *m = st->remote;
	size_t i;

	if (!m)
		return;
	for (i = 0; i < m->ndocs; i++)
		lf_buf_release(&m->docs[i].body);
	free(m->docs);
	lf_registry_close(m->reg);
	free(m);
	st->remote = NULL;
}

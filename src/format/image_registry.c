// SPDX-License-Identifier: MIT
/* image_registry.c - a registry repository as the store of an OCI layout. */
#include "image_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layerfs/digest.h"
#include "layerfs/rblob.h"
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
	struct doc *docs; /* oci-layout, index.json, manifests, configs */
	size_t ndocs;
	char *docs_dir; /* <cache>/docs: documents kept by digest, or NULL */
	struct lf_rblob_opts span_opts;
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

/*
 * The document cache: `<cache>/docs/<hex>` holds "MEDIA-TYPE\n" and the
 * document (a manifest, an index or a config), kept so that a digest
 * reference opens without the network.  Loaded only when the body hashes
 * to the name.
 */
static int doc_load(const struct lf_image_remote *m, const char *hex,
		    struct lf_buf *body, char **media_type)
{
	char path[4200], d[LF_DIGEST_LEN], want[LF_DIGEST_LEN];
	struct stat st;
	char *nl;
	ssize_t n;
	int fd;

	if (!m->docs_dir)
		return -1;
	snprintf(path, sizeof(path), "%s/%s", m->docs_dir, hex);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size > LF_IMAGE_CONFIG_MAX + 256 ||
	    lf_buf_addzero(body, (size_t)st.st_size) ||
	    (n = pread(fd, body->data, (size_t)st.st_size, 0)) !=
		    (ssize_t)st.st_size) {
		close(fd);
		return -1;
	}
	close(fd);
	nl = memchr(body->data, '\n', (size_t)n);
	snprintf(want, sizeof(want), "sha256:%s", hex);
	if (!nl || (size_t)(nl - body->data) > 200 ||
	    lf_sha256_mem(nl + 1, (size_t)n - (size_t)(nl + 1 - body->data),
			  d) ||
	    strcmp(d, want))
		return -1;
	*nl = '\0';
	if (!(*media_type = strdup(body->data)))
		return -1;
	memmove(body->data, nl + 1, (size_t)n - (size_t)(nl + 1 - body->data));
	lf_buf_setlen(body, (size_t)n - (size_t)(nl + 1 - body->data));
	body->data[body->len] = '\0';
	return 0;
}

static void doc_save(const struct lf_image_remote *m, const char *hex,
		     const struct lf_buf *body, const char *media_type)
{
	char path[4200], tmp[4300];
	struct stat st;
	FILE *f;
	int fd;

	if (!m->docs_dir)
		return;
	snprintf(path, sizeof(path), "%s/%s", m->docs_dir, hex);
	snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
	if ((mkdir(m->docs_dir, 0700) && errno != EEXIST) ||
	    lstat(m->docs_dir, &st) || !S_ISDIR(st.st_mode))
		return;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	fprintf(f, "%.200s\n", media_type);
	fwrite(body->len ? body->data : "", 1, body->len, f);
	if (fclose(f) || rename(tmp, path))
		unlink(tmp);
}

/* GET manifest `ref`; store it as blobs/sha256/<its digest>. */
static int fetch_manifest(struct lf_image_remote *m, const char *ref,
			  char digest[LF_DIGEST_LEN], char **media_type,
			  struct lf_err *err)
{
	struct lf_buf body;
	struct doc *d;
	char name[LF_DIGEST_LEN + 16];
	bool cached;
	int ret;

	lf_buf_init(&body);
	cached = !strncmp(ref, "sha256:", 7) && strlen(ref) == 71 &&
		 !doc_load(m, ref + 7, &body, media_type);

	if (cached)
		ret = 0;
	else
		ret = lf_registry_manifest(m->reg, ref, LF_IMAGE_JSON_MAX,
					   &body, media_type, err);
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
	if (!cached)
		doc_save(m, digest + 7, &body, *media_type);
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
	struct lf_registry_opts ro = { .tls_verify = !o->no_tls_verify,
				       .creds = o->creds,
				       .cert_dir = o->cert_dir };
	struct lf_image_remote *m = calloc(1, sizeof(*m));
	char digest[LF_DIGEST_LEN], *mt = NULL, index[512];
	struct doc *top;
	int ret;

	if (!m)
		return lf_err_set(err, -ENOMEM, "out of memory");
	st->remote = m;
	m->span_opts.cache_dir = o->cache_dir;
	m->span_opts.cache_max = o->cache_max;
	if (o->cache_dir && !(m->docs_dir = malloc(strlen(o->cache_dir) + 8)))
		return lf_err_set(err, -ENOMEM, "out of memory");
	if (m->docs_dir)
		sprintf(m->docs_dir, "%s/docs", o->cache_dir);
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

/* A small blob (a config) whole: checked against its digest, kept. */
static int fetch_doc(struct lf_image_remote *m, const char *name,
		     const char *digest, uint64_t size, struct lf_err *err)
{
	struct lf_buf body;
	char got[LF_DIGEST_LEN];
	struct doc *d;
	int ret;

	lf_buf_init(&body);
	if (lf_buf_addzero(&body, (size_t)size))
		return lf_err_set(err, -ENOMEM, "out of memory");
	ret = lf_registry_blob_range(m->reg, digest, 0, (size_t)size, body.data,
				     err);
	if (!ret) {
		if (lf_sha256_mem(body.data, body.len, got))
			ret = lf_err_set(err, -ENOMEM, "out of memory");
		else if (strcmp(got, digest))
			ret = lf_err_set(err, -EINVAL,
					 "%s: blob %s: the registry sent "
					 "other bytes (digest %s)",
					 lf_registry_name(m->reg), digest, got);
	}
	if (!ret && !(d = doc_add(m, name)))
		ret = lf_err_set(err, -ENOMEM, "out of memory");
	if (ret) {
		lf_buf_release(&body);
		return ret;
	}
	doc_save(m, digest + 7, &body, "");
	d->body = body;
	return 0;
}

/* A document from the disk cache into memory: 0, or -1. */
static int doc_from_disk(struct lf_image_remote *m, const char *name)
{
	struct lf_buf body;
	char *mt = NULL;
	struct doc *d;

	lf_buf_init(&body);
	if (doc_load(m, name + strlen(BLOB_PREFIX), &body, &mt) ||
	    !(d = doc_add(m, name))) {
		lf_buf_release(&body);
		free(mt);
		return -1;
	}
	free(mt);
	d->body = body;
	return 0;
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
	if (!d && strlen(hex) == 64 && !doc_from_disk(m, name))
		d = doc_find(m, name);
	if (!d) {
		snprintf(digest, sizeof(digest), "sha256:%s", hex);
		ret = lf_registry_blob_size(m->reg, digest, &size, err);
		if (!ret && size > LF_IMAGE_CONFIG_MAX)
			return lf_rblob_open(m->reg, digest, size,
					     &m->span_opts, out, err);
		if (!ret)
			ret = fetch_doc(m, name, digest, size, err);
		else if (ret == -ENOENT) {
			/* a manifest of an index: registries serve those
			 * from /manifests/ */
			if (err)
				memset(err, 0, sizeof(*err));
			ret = fetch_manifest(m, digest, got, &mt, err);
			free(mt);
		}
		if (ret)
			return ret;
		d = doc_find(m, name);
	}
	return lf_vfile_from_mem(d->body.len ? d->body.data : "", d->body.len,
				 name, out)
		       ? lf_err_set(err, -ENOMEM, "out of memory")
		       : 0;
}

int lf_image_remote_layer(const struct lf_image_store *st, const char *name,
			  uint64_t size, struct lf_vfile **out,
			  struct lf_err *err)
{
	struct lf_image_remote *m = st->remote;
	char digest[LF_DIGEST_LEN + 8];

	if (strncmp(name, BLOB_PREFIX, strlen(BLOB_PREFIX)))
		return lf_err_set(err, -ENOENT, "'%s': %s is missing",
				  st->label, name);
	snprintf(digest, sizeof(digest), "sha256:%s",
		 name + strlen(BLOB_PREFIX));
	return lf_rblob_open(m->reg, digest, size, &m->span_opts, out, err);
}

struct lf_registry *lf_image_remote_registry(const struct lf_image_store *st)
{
	return st->remote->reg;
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
	free(m->docs_dir);
	lf_registry_close(m->reg);
	free(m);
	st->remote = NULL;
}

// SPDX-License-Identifier: MIT
/* index_remote.c - layer indexes as an OCI artifact in the registry. */
#include "layerfs/index_remote.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "index_internal.h"
#include "layerfs/buf.h"
#include "layerfs/cache.h"
#include "layerfs/log.h"
#include "layerfs/rblob.h"
#include "layerfs/registry.h"

#define EMPTY_TYPE "application/vnd.oci.empty.v1+json"
#define EMPTY_DIGEST                                                           \
	"sha256:"                                                              \
	"44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
#define MANIFEST_TYPE "application/vnd.oci.image.manifest.v1+json"
#define INDEX_TYPE "application/vnd.oci.image.index.v1+json"
#define DOC_MAX (4u << 20) /* an artifact manifest or referrers list */
#define MAX_REFERRERS 4096 /* entries of a referrers list looked at */
#define MAX_CANDIDATES 8   /* artifacts tried, newest first */

#define MAX_VALUES (1u << 18) /* JSON values in one document */
#define MAX_LAYERS 16384      /* descriptors in an artifact */

/* JSON of at most MAX_VALUES values (jansson takes ~100 bytes each,
 * whatever the text), or NULL. */
static json_t *load_json(const char *p, size_t len)
{
	size_t i, n = 0;

	for (i = 0; i < len; i++)
		n += p[i] == ',' || p[i] == '[' || p[i] == '{';
	return n > MAX_VALUES ? NULL : json_loadb(p, len, 0, NULL);
}

static int oom(struct lf_err *err)
{
	return lf_err_set(err, -ENOMEM, "out of memory");
}

/* "sha256-<hex>": the tag-schema fallback of a manifest's referrers. */
static void fallback_tag(const char *digest, char *out, size_t size)
{
	snprintf(out, size, "sha256-%s", digest + 7);
}

static json_t *descriptor(const char *type, const char *digest, uint64_t size)
{
	return json_pack("{s:s, s:s, s:I}", "mediaType", type, "digest", digest,
			 "size", (json_int_t)size);
}

/* ---- push ---- */

/* Upload one blob and add its descriptor (annotated with the layer) to
 * `layers`. */
static int push_blob(struct lf_registry *r, json_t *layers, const char *type,
		     const char *layer_digest, const void *data, size_t len,
		     struct lf_err *err)
{
	char digest[LF_DIGEST_LEN];
	json_t *d;
	int ret;

	if (lf_sha256_mem(data, len, digest))
		return oom(err);
	if ((ret = lf_registry_blob_put(r, digest, data, len, err)))
		return ret;
	d = descriptor(type, digest, len);
	if (!d ||
	    json_object_set_new(d, "annotations",
				json_pack("{s:s}", LF_REMOTE_LAYER_KEY,
					  layer_digest)) ||
	    json_array_append_new(layers, d))
		return oom(err);
	return 0;
}

/* Has an earlier layer of img the same digest (pushed once)? */
static bool seen_before(const struct lf_image *img, size_t i)
{
	size_t k;

	for (k = 0; k < i; k++)
		if (!strcmp(lf_image_layer(img, k)->digest,
			    lf_image_layer(img, i)->digest))
			return true;
	return false;
}

static int push_layers(const struct lf_image *img, struct lf_registry *r,
		       struct lf_index *const *idx, json_t *layers,
		       struct lf_remote_push *res, struct lf_err *err)
{
	size_t n = lf_image_layer_count(img), i, len;
	struct lf_buf sums;
	int ret = 0;

	lf_buf_init(&sums);
	for (i = 0; i < n && !ret; i++) {
		const struct lf_image_layer *l = lf_image_layer(img, i);
		enum lf_compression c = lf_index_compression(idx[i]);
		const void *file = lf_index_file(idx[i], &len);

		if (seen_before(img, i))
			continue;
		/* zstd layers need a local copy; eStargz layers are indexed
		 * from their own TOC with one request */
		if ((c != LF_COMP_GZIP && c != LF_COMP_NONE) ||
		    lf_index_chunks(idx[i], NULL)) {
			res->skipped++;
			continue;
		}
		if (!file || !lf_index_verified(idx[i])) {
			ret = lf_err_set(err, -EINVAL,
					 "layer %zu: its index was built "
					 "without digest checks (--no-verify)",
					 i + 1);
			break;
		}
		if ((ret = lf_rblob_sums(l->blob, &sums, err)))
			break;
		ret = push_blob(r, layers, LF_REMOTE_INDEX_MEDIA, l->digest,
				file, len, err);
		if (!ret)
			ret = push_blob(r, layers, LF_REMOTE_SPANS_MEDIA,
					l->digest, sums.data, sums.len, err);
		if (ret)
			ret = lf_err_prefix(err, "layer %zu", i + 1);
		res->layers++;
		res->blob_bytes += len + sums.len;
	}
	lf_buf_release(&sums);
	return ret;
}

/* The tag-schema fallback: add the artifact to the image index tagged
 * sha256-<subject hex> (made when there is none). */
static int push_fallback(struct lf_registry *r, const char *subject,
			 json_t *desc, struct lf_remote_push *res,
			 struct lf_err *err)
{
	struct lf_buf body;
	char *mt = NULL, *text = NULL;
	json_t *list = NULL, *ms;
	struct lf_err e2 = { 0 };
	size_t i;
	int ret;

	fallback_tag(subject, res->tag, sizeof(res->tag));
	lf_buf_init(&body);
	ret = lf_registry_manifest(r, res->tag, DOC_MAX, &body, &mt, &e2);
	if (!ret) {
		if (strcmp(mt, INDEX_TYPE) ||
		    !(list = load_json(body.data, body.len)) ||
		    !json_is_array(json_object_get(list, "manifests"))) {
			ret = lf_err_set(err, -EEXIST,
					 "%s:%s holds something other than a "
					 "referrers index (%s); not replacing "
					 "it",
					 lf_registry_name(r), res->tag, mt);
			goto out;
		}
	} else if (ret == -ENOENT) {
		list = json_pack("{s:i, s:s, s:[]}", "schemaVersion", 2,
				 "mediaType", INDEX_TYPE, "manifests");
	} else {
		*err = e2;
		goto out;
	}
	ms = json_object_get(list, "manifests");
	if (!ms) {
		ret = oom(err);
		goto out;
	}
	for (i = json_array_size(ms); i-- > 0;)
		if (json_equal(json_object_get(json_array_get(ms, i), "digest"),
			       json_object_get(desc, "digest")))
			json_array_remove(ms, i);
	if (json_array_append(ms, desc) ||
	    !(text = json_dumps(list, JSON_COMPACT))) {
		ret = oom(err);
		goto out;
	}
	ret = lf_registry_manifest_put(r, res->tag, INDEX_TYPE, text,
				       strlen(text), NULL, err);
out:
	free(text);
	free(mt);
	json_decref(list);
	lf_buf_release(&body);
	return ret;
}

int lf_index_remote_push(const struct lf_image *img,
			 struct lf_index *const *idx,
			 struct lf_remote_push *res, struct lf_err *err)
{
	struct lf_registry *r = lf_image_registry(img);
	const char *subject = lf_image_manifest_digest(img);
	uint64_t msize;
	const char *mtype = lf_image_manifest_type(img, &msize);
	json_t *m = NULL, *layers = json_array(), *desc = NULL;
	char *text = NULL;
	int ret;

	memset(res, 0, sizeof(*res));
	if (!r || !mtype || !lf_digest_valid(subject)) {
		json_decref(layers);
		return lf_err_set(err, -EINVAL,
				  "%s: index push needs a docker:// image",
				  lf_image_path(img));
	}
	if (!layers) {
		ret = oom(err);
		goto out;
	}
	if ((ret = push_layers(img, r, idx, layers, res, err)))
		goto out;
	if (!res->layers) {
		ret = lf_err_set(err, -EINVAL,
				 "%s: no layer whose index can be shared (zstd "
				 "layers are left out)",
				 lf_image_path(img));
		goto out;
	}
	if ((ret = lf_registry_blob_put(r, EMPTY_DIGEST, "{}", 2, err)))
		goto out;
	m = json_pack("{s:i, s:s, s:s, s:o, s:O, s:o}", "schemaVersion", 2,
		      "mediaType", MANIFEST_TYPE, "artifactType",
		      LF_REMOTE_INDEX_TYPE, "config",
		      descriptor(EMPTY_TYPE, EMPTY_DIGEST, 2), "layers", layers,
		      "subject", descriptor(mtype, subject, msize));
	if (!m || !(text = json_dumps(m, JSON_COMPACT))) {
		ret = oom(err);
		goto out;
	}
	res->size = strlen(text);
	if (lf_sha256_mem(text, res->size, res->digest)) {
		ret = oom(err);
		goto out;
	}
	if ((ret = lf_registry_manifest_put(r, res->digest, MANIFEST_TYPE, text,
					    res->size, &res->referrers_api,
					    err)))
		goto out;
	if (res->referrers_api)
		goto out;
	desc = descriptor(MANIFEST_TYPE, res->digest, res->size);
	if (!desc || json_object_set_new(desc, "artifactType",
					 json_string(LF_REMOTE_INDEX_TYPE))) {
		ret = oom(err);
		goto out;
	}
	ret = push_fallback(r, subject, desc, res, err);
out:
	json_decref(desc);
	json_decref(m);
	json_decref(layers);
	free(text);
	return ret;
}

/* ---- fetch ---- */

/* What one layer needs, and what the artifact gave for it. */
struct want {
	const struct lf_image_layer *layer;
	char key[80];
	struct lf_buf idx, sums; /* fetched and checked */
	bool have;
};

/* The referrers of `subject` of our type, newest last: from the API, or
 * from the fallback tag; NULL (no error) when there are none. */
static json_t *referrers(struct lf_registry *r, const char *subject)
{
	struct lf_buf body;
	struct lf_err e = { 0 };
	char tag[LF_DIGEST_LEN + 8], *mt = NULL;
	json_t *j = NULL;
	int ret;

	lf_buf_init(&body);
	ret = lf_registry_referrers(r, subject, LF_REMOTE_INDEX_TYPE, DOC_MAX,
				    &body, &e);
	if (ret == -ENOENT || ret == -EPROTO) {
		fallback_tag(subject, tag, sizeof(tag));
		memset(&e, 0, sizeof(e));
		ret = lf_registry_manifest(r, tag, DOC_MAX, &body, &mt, &e);
		if (!ret && strcmp(mt, INDEX_TYPE))
			ret = -ENOENT; /* some other tool's tag */
	}
	if (!ret)
		j = load_json(body.data, body.len);
	else if (ret != -ENOENT)
		lf_log(LF_LOG_WARN, "looking for an index artifact: %s", e.msg);
	free(mt);
	lf_buf_release(&body);
	return j;
}

static const char *annotation(json_t *desc, const char *key)
{
	return json_string_value(
		json_object_get(json_object_get(desc, "annotations"), key));
}

/* The whole blob of descriptor d (of `type`, annotated for `layer`) into
 * out, checked against its digest. */
static int fetch_blob(struct lf_registry *r, json_t *d, struct lf_buf *out,
		      struct lf_err *err)
{
	const char *digest = json_string_value(json_object_get(d, "digest"));
	json_int_t size = json_integer_value(json_object_get(d, "size"));
	char got[LF_DIGEST_LEN];
	int ret;

	if (!digest || !lf_digest_valid(digest) ||
	    strncmp(digest, "sha256:", 7) || size <= 0 ||
	    (uint64_t)size > LF_REMOTE_BLOB_MAX)
		return lf_err_set(err, -EINVAL,
				  "a descriptor with a bad digest or size");
	lf_buf_reset(out);
	if (lf_buf_addzero(out, (size_t)size))
		return oom(err);
	if ((ret = lf_registry_blob_range(r, digest, 0, (size_t)size, out->data,
					  err)))
		return ret;
	if (lf_sha256_mem(out->data, out->len, got))
		return oom(err);
	if (strcmp(got, digest))
		return lf_err_set(err, -EINVAL,
				  "blob %s: the registry sent other bytes",
				  digest);
	return 0;
}

/* An index file for layer w: sealed, for that blob, built verified. */
static int check_index(const char *cache_dir, struct want *w,
		       struct lf_err *err)
{
	const struct lf_cache_header *h;
	struct lf_buf tmp;
	void *map = NULL;
	size_t len = 0;
	int fd, ret;

	/* lf_cache_load() checks a file: a temporary one in the cache */
	lf_buf_init(&tmp);
	fd = lf_cache_mkstemp(cache_dir, "/remote-index", &tmp, err);
	if (fd < 0)
		return fd;
	ret = write(fd, w->idx.data, w->idx.len) == (ssize_t)w->idx.len ? 0
									: -EIO;
	close(fd);
	if (!ret)
		ret = lf_cache_load(tmp.data, w->key, &map, &len, err);
	else
		lf_err_set(err, ret, "%s: cannot write", tmp.data);
	unlink(tmp.data);
	lf_buf_release(&tmp);
	if (ret)
		return ret;
	h = map;
	if (strcmp(h->blob_digest, w->layer->digest) ||
	    lf_le64(h->blob_size) != w->layer->size ||
	    (w->layer->diff_id[0] && strcmp(h->diff_id, w->layer->diff_id)))
		ret = lf_err_set(err, -EINVAL,
				 "its index is for another blob (%.80s)",
				 h->blob_digest);
	else if (lf_le32(h->compression) != LF_COMP_GZIP &&
		 lf_le32(h->compression) != LF_COMP_NONE)
		ret = lf_err_set(err, -EINVAL,
				 "its index is of a compression it cannot "
				 "serve remotely");
	else if (!(lf_le32(h->flags) & LF_CACHE_VERIFIED))
		ret = lf_err_set(err, -EINVAL,
				 "its index was built without digest checks");
	else if (lf_le32(h->flags) & LF_CACHE_ESTARGZ)
		ret = lf_err_set(err, -EINVAL,
				 "its index is an eStargz TOC's (read that "
				 "from the layer itself)");
	else if (lf_cache_check_windows(map, len))
		ret = lf_err_set(err, -EINVAL,
				 "its index's checkpoint windows are damaged");
	lf_cache_unmap(map, len);
	return ret;
}

static int check_sums(const struct want *w, struct lf_err *err)
{
	if (!lf_rblob_sums_valid(w->sums.data, w->sums.len, w->layer->size))
		return lf_err_set(err, -EINVAL,
				  "its span digests are damaged or for another "
				  "blob size or span size");
	return 0;
}

/* Fetch and check what artifact `m` has for each wanted layer. */
static int take(struct lf_registry *r, const char *cache_dir, json_t *m,
		struct want *w, size_t n, struct lf_err *err)
{
	json_t *layers = json_object_get(m, "layers"), *d;
	size_t i, k;
	int ret;

	for (k = 0; k < n; k++) {
		json_t *di = NULL, *ds = NULL;

		json_array_foreach(layers, i, d)
		{
			const char *mt = json_string_value(
				json_object_get(d, "mediaType"));
			const char *ld = annotation(d, LF_REMOTE_LAYER_KEY);

			if (!mt || !ld || strcmp(ld, w[k].layer->digest))
				continue;
			if (!strcmp(mt, LF_REMOTE_INDEX_MEDIA))
				di = d;
			else if (!strcmp(mt, LF_REMOTE_SPANS_MEDIA))
				ds = d;
		}
		if (!di || !ds)
			continue; /* not carried: indexed by streaming */
		if ((ret = fetch_blob(r, di, &w[k].idx, err)) ||
		    (ret = fetch_blob(r, ds, &w[k].sums, err)) ||
		    (ret = check_sums(&w[k], err)) ||
		    (ret = check_index(cache_dir, &w[k], err)))
			return lf_err_prefix(err, "layer %s",
					     w[k].layer->digest);
		w[k].have = true;
	}
	return 0;
}

/* Artifact `digest`: its manifest checked, then its blobs for w. */
static int try_artifact(struct lf_registry *r, const char *cache_dir,
			const char *digest, const char *subject, struct want *w,
			size_t n, struct lf_err *err)
{
	struct lf_buf body;
	char *mt = NULL, got[LF_DIGEST_LEN];
	json_t *m = NULL;
	const char *at, *sd;
	int ret;

	lf_buf_init(&body);
	if ((ret = lf_registry_manifest(r, digest, DOC_MAX, &body, &mt, err)))
		goto out;
	if (lf_sha256_mem(body.data, body.len, got)) {
		ret = oom(err);
		goto out;
	}
	if (strcmp(got, digest)) {
		ret = lf_err_set(err, -EINVAL,
				 "the registry sent another manifest");
		goto out;
	}
	m = load_json(body.data, body.len);
	at = json_string_value(json_object_get(m, "artifactType"));
	sd = json_string_value(
		json_object_get(json_object_get(m, "subject"), "digest"));
	if (!m || !at || strcmp(at, LF_REMOTE_INDEX_TYPE) ||
	    !json_is_array(json_object_get(m, "layers")) ||
	    json_array_size(json_object_get(m, "layers")) > MAX_LAYERS)
		ret = lf_err_set(err, -EINVAL, "not a layerfs index artifact");
	else if (!sd || strcmp(sd, subject))
		ret = lf_err_set(err, -EINVAL,
				 "its subject is another manifest (%.80s)",
				 sd ? sd : "none");
	else
		ret = take(r, cache_dir, m, w, n, err);
out:
	json_decref(m);
	free(mt);
	lf_buf_release(&body);
	return ret;
}

/* Sums first: an index in the cache then always has its span digests. */
static size_t install(const char *cache_dir, struct want *w, size_t n)
{
	struct lf_buf path;
	struct lf_err e = { 0 };
	size_t k, done = 0;

	lf_buf_init(&path);
	for (k = 0; k < n; k++) {
		if (!w[k].have)
			continue;
		lf_buf_reset(&path);
		if (lf_rblob_sums_install(cache_dir, w[k].layer->digest,
					  w[k].layer->size, w[k].sums.data,
					  w[k].sums.len, &e) ||
		    lf_cache_path(cache_dir, w[k].key, ".idx", &path) ||
		    lf_cache_store(path.data, w[k].idx.data, w[k].idx.len,
				   &e)) {
			lf_log(LF_LOG_WARN,
			       "cannot install a fetched index: %s",
			       e.msg[0] ? e.msg : "out of memory");
			continue;
		}
		done++;
	}
	lf_buf_release(&path);
	return done;
}

/* The layers of the prefix whose index is not in the cache yet. */
static size_t wanted(const struct lf_image *img, size_t n,
		     const char *cache_dir, struct want *w)
{
	struct lf_buf path;
	struct stat st;
	size_t i, k = 0;

	lf_buf_init(&path);
	for (i = 0; i < n; i++) {
		const struct lf_image_layer *l = lf_image_layer(img, i);
		size_t j;

		if (!lf_digest_valid(l->digest) ||
		    strncmp(l->digest, "sha256:", 7))
			continue;
		for (j = 0; j < k && strcmp(w[j].layer->digest, l->digest); j++)
			;
		if (j < k)
			continue;
		w[k].layer = l;
		lf_index_key(l, w[k].key);
		lf_buf_reset(&path);
		if (lf_cache_path(cache_dir, w[k].key, ".idx", &path) ||
		    !stat(path.data, &st))
			continue;
		lf_buf_init(&w[k].idx);
		lf_buf_init(&w[k].sums);
		k++;
	}
	lf_buf_release(&path);
	return k;
}

int lf_index_remote_fetch(const struct lf_image *img, size_t n,
			  const char *cache_dir, struct lf_remote_fetch *res,
			  struct lf_err *err)
{
	struct lf_registry *r = lf_image_registry(img);
	const char *subject = lf_image_manifest_digest(img);
	struct lf_remote_fetch none;
	uint64_t req0 = 0, bytes0 = 0, req1 = 0, bytes1 = 0;
	json_t *list = NULL, *ms;
	struct want *w;
	size_t k, nw, tried = 0;

	if (!res)
		res = &none;
	memset(res, 0, sizeof(*res));
	if (!r || !cache_dir || !lf_digest_valid(subject))
		return 0;
	if (n > lf_image_layer_count(img))
		n = lf_image_layer_count(img);
	if (!(w = calloc(n ? n : 1, sizeof(*w))))
		return oom(err);
	nw = wanted(img, n, cache_dir, w);
	if (!nw)
		goto out;
	lf_registry_stats(r, &req0, &bytes0);
	res->looked = true;
	list = referrers(r, subject);
	ms = json_object_get(list, "manifests");
	/* newest (last listed) first; a few at most */
	for (k = json_array_size(ms); k-- > 0 && tried < MAX_CANDIDATES &&
				      json_array_size(ms) <= MAX_REFERRERS;) {
		json_t *d = json_array_get(ms, k);
		const char *at = json_string_value(
			json_object_get(d, "artifactType"));
		const char *digest = json_string_value(
			json_object_get(d, "digest"));
		struct lf_err e = { 0 };
		size_t i;

		if (!at || strcmp(at, LF_REMOTE_INDEX_TYPE) || !digest ||
		    !lf_digest_valid(digest))
			continue;
		tried++;
		if (try_artifact(r, cache_dir, digest, subject, w, nw, &e)) {
			lf_log(LF_LOG_WARN,
			       "%s: index artifact %.80s ignored: %s",
			       lf_image_path(img), digest, e.msg);
			for (i = 0; i < nw; i++)
				w[i].have = false;
			continue;
		}
		snprintf(res->digest, sizeof(res->digest), "%s", digest);
		res->installed = install(cache_dir, w, nw);
		res->found = res->installed > 0;
		break;
	}
	lf_registry_stats(r, &req1, &bytes1);
	res->requests = req1 - req0;
	res->bytes = bytes1 - bytes0;
out:
	for (k = 0; k < nw; k++) {
		lf_buf_release(&w[k].idx);
		lf_buf_release(&w[k].sums);
	}
	free(w);
	json_decref(list);
	return 0;
}

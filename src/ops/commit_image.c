// SPDX-License-Identifier: MIT
/* commit_image.c - the new image's JSON: config, manifest, index, docker's. */
#include "commit_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/*
 * Every document is dumped compact with sorted keys: the same inputs give
 * the same bytes, hence the same digests, run after run.
 */
static int dump(json_t *doc, struct lf_buf *out, const char *what,
		struct lf_err *err)
{
	char *s;
	int ret;

	if (!doc)
		return lf_err_set(err, -ENOMEM, "out of memory building %s",
				  what);
	s = json_dumps(doc, JSON_SORT_KEYS | JSON_COMPACT);
	json_decref(doc);
	if (!s)
		return lf_err_set(err, -ENOMEM, "out of memory writing %s",
				  what);
	lf_buf_reset(out);
	ret = lf_buf_adds(out, s);
	free(s);
	return ret ? lf_err_set(err, ret, "out of memory") : 0;
}

/*
 * json_object_set_new / json_array_append_new that remember a failure in
 * *bad, so a document is built without a check per line.  Both steal v (and
 * free it) even when obj is NULL, so nothing leaks on the way out.
 */
static void set(json_t *obj, const char *key, json_t *v, bool *bad)
{
	if (json_object_set_new(obj, key, v))
		*bad = true;
}

static void push(json_t *arr, json_t *v, bool *bad)
{
	if (json_array_append_new(arr, v))
		*bad = true;
}

static bool is_empty_layer(json_t *h)
{
	return json_is_true(json_object_get(h, "empty_layer"));
}

/*
 * History of the kept layers: the base's entries up to the one of the last
 * kept layer, empty_layer entries between them included (ENV, CMD... steps
 * whose effect is in the config we keep).  When every base layer is kept,
 * the trailing empty_layer entries stay too: they describe the config the
 * new image still has.  An image with less history than layers gets an
 * empty entry per missing layer, so history and rootfs.diff_ids stay
 * aligned for the tools that pair them (docker history).
 */
static json_t *kept_history(json_t *base, size_t nkept, bool all_kept,
			    bool *bad)
{
	json_t *hist = json_array(), *old = json_object_get(base, "history");
	size_t seen = 0, i;

	for (i = 0; json_is_array(old) && i < json_array_size(old); i++) {
		json_t *h = json_array_get(old, i);

		if (!json_is_object(h))
			continue;
		if (is_empty_layer(h)) {
			if (seen < nkept || all_kept)
				push(hist, json_deep_copy(h), bad);
			continue;
		}
		if (seen == nkept)
			break;
		push(hist, json_deep_copy(h), bad);
		seen++;
	}
	for (; seen < nkept; seen++)
		push(hist, json_object(), bad);
	return hist;
}

int lf_commit_json_config(const struct commit_config *c, struct lf_buf *out,
			  struct lf_err *err)
{
	json_t *cfg, *rootfs, *ids, *hist, *entry;
	json_error_t jerr;
	bool bad = false;
	size_t i;

	cfg = json_loadb(c->base, c->base_len, 0, &jerr);
	if (!json_is_object(cfg)) {
		json_decref(cfg);
		return lf_err_set(err, -EINVAL, "base image config: %s",
				  cfg ? "not a JSON object" : jerr.text);
	}
	rootfs = json_object();
	ids = json_array();
	for (i = 0; i < c->ndiff; i++)
		push(ids, json_string(c->diff_ids[i]), &bad);
	set(rootfs, "type", json_string("layers"), &bad);
	set(rootfs, "diff_ids", ids, &bad);
	set(cfg, "rootfs", rootfs, &bad);
	hist = kept_history(cfg, c->nkept, c->all_kept, &bad);
	entry = json_object();
	set(entry, "created", json_string(c->created), &bad);
	set(entry, "created_by", json_string(c->message), &bad);
	set(entry, "comment", json_string("layerfs"), &bad);
	push(hist, entry, &bad);
	set(cfg, "history", hist, &bad);
	set(cfg, "created", json_string(c->created), &bad);
	if (bad) {
		json_decref(cfg);
		cfg = NULL;
	}
	return dump(cfg, out, "the config", err);
}

static json_t *descriptor(const struct commit_desc *d, bool *bad)
{
	json_t *o = json_object();

	set(o, "mediaType", json_string(d->media_type), bad);
	set(o, "digest", json_string(d->digest), bad);
	set(o, "size", json_integer((json_int_t)d->size), bad);
	return o;
}

int lf_commit_json_manifest(const struct commit_desc *config,
			    const struct commit_desc *layers, size_t n,
			    struct lf_buf *out, struct lf_err *err)
{
	json_t *m = json_object(), *arr = json_array();
	bool bad = false;
	size_t i;

	set(m, "schemaVersion", json_integer(2), &bad);
	set(m, "mediaType", json_string(COMMIT_MT_MANIFEST), &bad);
	set(m, "config", descriptor(config, &bad), &bad);
	for (i = 0; i < n; i++)
		push(arr, descriptor(&layers[i], &bad), &bad);
	set(m, "layers", arr, &bad);
	if (bad) {
		json_decref(m);
		m = NULL;
	}
	return dump(m, out, "the manifest", err);
}

int lf_commit_json_index(const struct commit_desc *manifest, const char *ref,
			 const char *name, struct lf_buf *out,
			 struct lf_err *err)
{
	json_t *idx = json_object(), *arr = json_array(), *d;
	bool bad = false;

	d = descriptor(manifest, &bad);

	if (ref || name) {
		json_t *ann = json_object();

		if (name)
			set(ann, "io.containerd.image.name", json_string(name),
			    &bad);
		if (ref)
			set(ann, "org.opencontainers.image.ref.name",
			    json_string(ref), &bad);
		set(d, "annotations", ann, &bad);
	}
	push(arr, d, &bad);
	set(idx, "schemaVersion", json_integer(2), &bad);
	set(idx, "mediaType", json_string(COMMIT_MT_INDEX), &bad);
	set(idx, "manifests", arr, &bad);
	if (bad) {
		json_decref(idx);
		idx = NULL;
	}
	return dump(idx, out, "index.json", err);
}

static json_t *blob_path(const char *digest)
{
	/* "sha256:<hex>" -> "blobs/sha256/<hex>" */
	char p[LF_DIGEST_LEN + 16];

	snprintf(p, sizeof(p), "blobs/sha256/%s", digest + 7);
	return json_string(p);
}

int lf_commit_json_docker(const char *config_digest,
			  const struct commit_desc *layers, size_t n,
			  const char *tag, struct lf_buf *out,
			  struct lf_err *err)
{
	json_t *arr = json_array(), *m = json_object(), *ls = json_array();
	json_t *tags = json_array();
	bool bad = false;
	size_t i;

	set(m, "Config", blob_path(config_digest), &bad);
	if (tag)
		push(tags, json_string(tag), &bad);
	set(m, "RepoTags", tags, &bad);
	for (i = 0; i < n; i++)
		push(ls, blob_path(layers[i].digest), &bad);
	set(m, "Layers", ls, &bad);
	push(arr, m, &bad);
	if (bad) {
		json_decref(arr);
		arr = NULL;
	}
	return dump(arr, out, "manifest.json", err);
}

int lf_commit_json_layout(struct lf_buf *out, struct lf_err *err)
{
	json_t *o = json_object();
	bool bad = false;

	set(o, "imageLayoutVersion", json_string("1.0.0"), &bad);
	if (bad) {
		json_decref(o);
		o = NULL;
	}
	return dump(o, out, "oci-layout", err);
}

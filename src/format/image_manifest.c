// SPDX-License-Identifier: MIT
/* image_manifest.c - index, manifest, config and manifest.json via jansson. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "image_internal.h"
#include "layerfs/estargz.h"

/*
 * Roughly how many values jansson would allocate for this text: one per
 * '{', '[', ',' and ':' outside strings (members count twice, key and
 * value).  One pass, no allocation: a document is refused before jansson
 * builds a tree a hundred times the size of the text.
 */
static size_t count_values(const char *text, size_t len)
{
	size_t i, n = 1;
	bool in_str = false;

	for (i = 0; i < len; i++) {
		char c = text[i];

		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = false;
		} else if (c == '"') {
			in_str = true;
		} else if (c == '{' || c == '[' || c == ',' || c == ':') {
			n++;
		}
	}
	return n;
}

static json_t *load(const char *text, size_t len, const char *what,
		    struct lf_err *err)
{
	json_error_t je;
	json_t *root;

	if (count_values(text, len) > LF_IMAGE_JSON_VALUES) {
		lf_err_set(err, -EFBIG,
			   "%s: too many JSON values (the limit is %u)", what,
			   LF_IMAGE_JSON_VALUES);
		return NULL;
	}
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);

	if (!root)
		lf_err_set(err, -EINVAL, "%s: invalid JSON at line %d: %s",
			   what, je.line, je.text);
	return root;
}

/* NULL when absent or not a string: callers decide whether that is fatal. */
static const char *get_str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static int dup_opt(const char *s, char **out)
{
	*out = NULL;
	if (!s)
		return 0;
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

static int oom(struct lf_err *err)
{
	return lf_err_set(err, -ENOMEM, "out of memory");
}

/* The code load() set (err may be NULL: then say -EINVAL). */
static int err_code(const struct lf_err *err)
{
	return err && err->code ? err->code : -EINVAL;
}

static int too_many(const char *what, const char *key, size_t n, size_t max,
		    struct lf_err *err)
{
	return lf_err_set(err, -EFBIG,
			  "%s: %s has %zu entries (the limit is %zu)", what,
			  key, n, max);
}

void lf_image_desc_release(struct lf_image_desc *d)
{
	free(d->media_type);
	free(d->os);
	free(d->arch);
	free(d->variant);
	free(d->ref_name);
	free(d->ctr_name);
	free(d->artifact_type);
	memset(d, 0, sizeof(*d));
}

void lf_image_descs_free(struct lf_image_desc *v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++)
		lf_image_desc_release(&v[i]);
	free(v);
}

/* The eStargz TOC digest of a layer descriptor: kept only when it is a
 * valid digest (else the layer is read by streaming, as without it). */
static void toc_digest(const char *s, struct lf_image_desc *d)
{
	if (s && lf_digest_valid(s) && strlen(s) < sizeof(d->toc_digest))
		memcpy(d->toc_digest, s, strlen(s) + 1);
}

/*
 * A descriptor: the digest is validated here, before anyone builds a path
 * from it ("sha256:../../x" must never reach a file name).
 */
static int parse_desc(const json_t *o, const char *what, const char *where,
		      struct lf_image_desc *d, struct lf_err *err)
{
	const char *digest = get_str(o, "digest");
	const json_t *size = json_object_get(o, "size");
	const json_t *plat = json_object_get(o, "platform");
	const json_t *ann = json_object_get(o, "annotations");
	int ret = 0;

	memset(d, 0, sizeof(*d));
	if (!json_is_object(o))
		return lf_err_set(err, -EINVAL, "%s: %s is not an object", what,
				  where);
	if (!digest)
		return lf_err_set(err, -EINVAL, "%s: %s has no digest", what,
				  where);
	if (!lf_digest_valid(digest))
		return lf_err_set(err, -EINVAL, "%s: %s digest '%.80s' %s",
				  what, where, digest,
				  lf_digest_refusal(digest));
	memcpy(d->digest, digest, strlen(digest) + 1);
	if (size && (!json_is_integer(size) || json_integer_value(size) < 0))
		return lf_err_set(err, -EINVAL, "%s: %s has an invalid size",
				  what, where);
	d->has_size = size != NULL;
	d->size = size ? (uint64_t)json_integer_value(size) : 0;
	d->media_type = strdup(get_str(o, "mediaType") ? get_str(o, "mediaType")
						       : "");
	if (!d->media_type)
		ret = -ENOMEM;
	if (!ret)
		ret = dup_opt(get_str(o, "artifactType"), &d->artifact_type);
	if (!ret && json_is_object(plat))
		ret = dup_opt(get_str(plat, "os"), &d->os) ||
		      dup_opt(get_str(plat, "architecture"), &d->arch) ||
		      dup_opt(get_str(plat, "variant"), &d->variant);
	if (!ret && json_is_object(ann))
		ret = dup_opt(get_str(ann, "org.opencontainers.image.ref.name"),
			      &d->ref_name) ||
		      dup_opt(get_str(ann, "io.containerd.image.name"),
			      &d->ctr_name);
	if (!ret && json_is_object(ann))
		toc_digest(get_str(ann, LF_ESTARGZ_TOC_ANNOTATION), d);
	if (ret) {
		lf_image_desc_release(d);
		return oom(err);
	}
	return 0;
}

static int parse_descs(const json_t *arr, const char *what, const char *key,
		       size_t max, struct lf_image_desc **out, size_t *n,
		       struct lf_err *err)
{
	struct lf_image_desc *v;
	size_t i, cnt = json_array_size(arr);
	char where[64];
	int ret;

	*out = NULL;
	*n = 0;
	if (!json_is_array(arr))
		return lf_err_set(err, -EINVAL, "%s: '%s' is not an array",
				  what, key);
	if (cnt > max)
		return too_many(what, key, cnt, max, err);
	v = calloc(cnt ? cnt : 1, sizeof(*v));
	if (!v)
		return oom(err);
	for (i = 0; i < cnt; i++) {
		snprintf(where, sizeof(where), "%s[%zu]", key, i);
		ret = parse_desc(json_array_get(arr, i), what, where, &v[i],
				 err);
		if (ret) {
			lf_image_descs_free(v, i);
			return ret;
		}
	}
	*out = v;
	*n = cnt;
	return 0;
}

int lf_image_parse_index(const char *json, size_t len, const char *what,
			 struct lf_image_desc **out, size_t *n,
			 struct lf_err *err)
{
	json_t *root = load(json, len, what, err);
	const json_t *arr;
	int ret;

	*out = NULL;
	*n = 0;
	if (!root)
		return err_code(err);
	arr = json_object_get(root, "manifests");
	if (!json_is_object(root))
		ret = lf_err_set(err, -EINVAL, "%s: not a JSON object", what);
	else if (json_is_null(arr))
		ret = 0; /* Docker 25+ may write null: no image here */
	else
		ret = parse_descs(arr, what, "manifests",
				  LF_IMAGE_MAX_MANIFESTS, out, n, err);
	json_decref(root);
	return ret;
}

int lf_image_parse_media_type(const char *json, size_t len, const char *what,
			      char **out, struct lf_err *err)
{
	json_t *root = load(json, len, what, err);
	const char *mt;

	if (!root)
		return err_code(err);
	mt = get_str(root, "mediaType");
	/* an index without mediaType is still recognisable by its manifests */
	if (!mt && json_is_array(json_object_get(root, "manifests")))
		mt = "application/vnd.oci.image.index.v1+json";
	*out = strdup(mt ? mt : "");
	json_decref(root);
	return *out ? 0 : oom(err);
}

void lf_image_manifest_release(struct lf_image_manifest *m)
{
	free(m->media_type);
	lf_image_desc_release(&m->config);
	lf_image_descs_free(m->layers, m->nlayers);
	memset(m, 0, sizeof(*m));
}

int lf_image_parse_manifest(const char *json, size_t len, const char *what,
			    struct lf_image_manifest *m, struct lf_err *err)
{
	json_t *root = load(json, len, what, err);
	const json_t *cfg;
	int ret;

	memset(m, 0, sizeof(*m));
	if (!root)
		return err_code(err);
	cfg = json_object_get(root, "config");
	if (!json_is_object(root) || !json_is_object(cfg)) {
		/* e.g. a docker schema 1 manifest: no config, no diff_ids */
		ret = lf_err_set(err, -EINVAL,
				 "%s: not an image manifest (no config)", what);
		goto out;
	}
	m->media_type = strdup(
		get_str(root, "mediaType") ? get_str(root, "mediaType") : "");
	if (!m->media_type) {
		ret = oom(err);
		goto out;
	}
	ret = parse_desc(cfg, what, "config", &m->config, err);
	if (!ret)
		ret = parse_descs(json_object_get(root, "layers"), what,
				  "layers", LF_IMAGE_MAX_LAYERS, &m->layers,
				  &m->nlayers, err);
out:
	if (ret)
		lf_image_manifest_release(m);
	json_decref(root);
	return ret;
}

void lf_image_config_release(struct lf_image_config *c)
{
	size_t i;

	for (i = 0; c->diff_ids && i < c->ndiff_ids; i++)
		free(c->diff_ids[i]);
	for (i = 0; c->hist && i < c->nhist; i++) {
		free(c->hist[i].created_by);
		free(c->hist[i].created);
		free(c->hist[i].comment);
	}
	free(c->diff_ids);
	free(c->hist);
	memset(c, 0, sizeof(*c));
}

static int parse_diff_ids(const json_t *arr, const char *what,
			  struct lf_image_config *c, struct lf_err *err)
{
	size_t i, n = json_array_size(arr);

	if (!json_is_array(arr))
		return lf_err_set(err, -EINVAL,
				  "%s: rootfs.diff_ids is missing", what);
	if (n > LF_IMAGE_MAX_LAYERS)
		return too_many(what, "rootfs.diff_ids", n, LF_IMAGE_MAX_LAYERS,
				err);
	c->diff_ids = calloc(n ? n : 1, sizeof(*c->diff_ids));
	if (!c->diff_ids)
		return oom(err);
	for (i = 0; i < n; i++) {
		const char *d = json_string_value(json_array_get(arr, i));

		if (!d || !lf_digest_valid(d))
			return lf_err_set(err, -EINVAL,
					  "%s: rootfs.diff_ids[%zu] %s", what,
					  i,
					  d ? lf_digest_refusal(d)
					    : "is not a string");
		c->diff_ids[i] = strdup(d);
		if (!c->diff_ids[i])
			return oom(err);
		c->ndiff_ids = i + 1;
	}
	return 0;
}

/*
 * Only history entries that made a layer line up with the layers, and only
 * as many as there are layers are kept (a long history past them costs no
 * copy).
 */
static int parse_history(const json_t *arr, const char *what,
			 struct lf_image_config *c, struct lf_err *err)
{
	size_t i, n = json_array_size(arr);

	if (n > LF_IMAGE_MAX_HISTORY)
		return too_many(what, "history", n, LF_IMAGE_MAX_HISTORY, err);
	c->hist = calloc(c->ndiff_ids ? c->ndiff_ids : 1, sizeof(*c->hist));
	if (!c->hist)
		return oom(err);
	for (i = 0; i < n && c->nhist < c->ndiff_ids; i++) {
		const json_t *h = json_array_get(arr, i);
		struct lf_image_history *o = &c->hist[c->nhist];

		if (!json_is_object(h) ||
		    json_is_true(json_object_get(h, "empty_layer")))
			continue;
		c->nhist++;
		if (dup_opt(get_str(h, "created_by"), &o->created_by) ||
		    dup_opt(get_str(h, "created"), &o->created) ||
		    dup_opt(get_str(h, "comment"), &o->comment))
			return oom(err);
	}
	return 0;
}

int lf_image_parse_config(const char *json, size_t len, const char *what,
			  struct lf_image_config *c, struct lf_err *err)
{
	json_t *root = load(json, len, what, err);
	int ret;

	memset(c, 0, sizeof(*c));
	if (!root)
		return err_code(err);
	if (!json_is_object(root)) {
		ret = lf_err_set(err, -EINVAL, "%s: not a JSON object", what);
		goto out;
	}
	ret = parse_diff_ids(json_object_get(json_object_get(root, "rootfs"),
					     "diff_ids"),
			     what, c, err);
	if (!ret)
		ret = parse_history(json_object_get(root, "history"), what, c,
				    err);
out:
	if (ret)
		lf_image_config_release(c);
	json_decref(root);
	return ret;
}

static void strv_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

void lf_image_dockers_free(struct lf_image_docker *v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++) {
		free(v[i].config);
		strv_free(v[i].tags, v[i].ntags);
		strv_free(v[i].layers, v[i].nlayers);
		lf_image_descs_free(v[i].sources, v[i].nsources);
		strv_free(v[i].source_keys, v[i].nsources);
	}
	free(v);
}

/* An array of strings (NULL or JSON null = empty). */
static int parse_strv(const json_t *arr, const char *what, const char *key,
		      size_t max, char ***out, size_t *n, struct lf_err *err)
{
	size_t i, cnt = json_array_size(arr);

	*n = 0;
	*out = NULL;
	if (cnt > max)
		return too_many(what, key, cnt, max, err);
	*out = calloc(cnt ? cnt : 1, sizeof(**out));
	if (!*out)
		return oom(err);
	if (arr && !json_is_null(arr) && !json_is_array(arr))
		return lf_err_set(err, -EINVAL, "%s: '%s' is not an array",
				  what, key);
	for (i = 0; i < cnt; i++) {
		const char *s = json_string_value(json_array_get(arr, i));

		if (!s)
			return lf_err_set(err, -EINVAL,
					  "%s: %s[%zu] is not a string", what,
					  key, i);
		(*out)[i] = strdup(s);
		if (!(*out)[i])
			return oom(err);
		*n = i + 1;
	}
	return 0;
}

static int parse_sources(const json_t *obj, const char *what,
			 struct lf_image_docker *d, struct lf_err *err)
{
	size_t n = json_object_size(obj), i = 0;
	const char *key;
	json_t *val;
	int ret;

	if (!json_is_object(obj))
		return 0;
	if (n > LF_IMAGE_MAX_LAYERS)
		return too_many(what, "LayerSources", n, LF_IMAGE_MAX_LAYERS,
				err);
	d->sources = calloc(n ? n : 1, sizeof(*d->sources));
	d->source_keys = calloc(n ? n : 1, sizeof(*d->source_keys));
	if (!d->sources || !d->source_keys)
		return oom(err);
	json_object_foreach((json_t *)obj, key, val)
	{
		ret = parse_desc(val, what, "LayerSources", &d->sources[i],
				 err);
		if (ret)
			return ret;
		d->source_keys[i] = strdup(key);
		d->nsources = ++i;
		if (!d->source_keys[i - 1])
			return oom(err);
	}
	return 0;
}

static int parse_docker_one(const json_t *o, const char *what, size_t i,
			    struct lf_image_docker *d, struct lf_err *err)
{
	const char *cfg = get_str(o, "Config");
	int ret;

	if (!json_is_object(o) || !cfg)
		return lf_err_set(err, -EINVAL, "%s: entry %zu has no Config",
				  what, i);
	d->config = strdup(cfg);
	if (!d->config)
		return oom(err);
	ret = parse_strv(json_object_get(o, "RepoTags"), what, "RepoTags",
			 LF_IMAGE_MAX_MANIFESTS, &d->tags, &d->ntags, err);
	if (!ret)
		ret = parse_strv(json_object_get(o, "Layers"), what, "Layers",
				 LF_IMAGE_MAX_LAYERS, &d->layers, &d->nlayers,
				 err);
	if (!ret)
		ret = parse_sources(json_object_get(o, "LayerSources"), what, d,
				    err);
	return ret;
}

int lf_image_parse_docker(const char *json, size_t len, const char *what,
			  struct lf_image_docker **out, size_t *n,
			  struct lf_err *err)
{
	json_t *root = load(json, len, what, err);
	struct lf_image_docker *v = NULL;
	size_t i, cnt;
	int ret = 0;

	*out = NULL;
	*n = 0;
	if (!root)
		return err_code(err);
	if (!json_is_array(root)) {
		ret = lf_err_set(err, -EINVAL, "%s: not a JSON array", what);
		goto out;
	}
	cnt = json_array_size(root);
	if (cnt > LF_IMAGE_MAX_MANIFESTS) {
		ret = too_many(what, "the image list", cnt,
			       LF_IMAGE_MAX_MANIFESTS, err);
		goto out;
	}
	v = calloc(cnt ? cnt : 1, sizeof(*v));
	if (!v) {
		ret = oom(err);
		goto out;
	}
	for (i = 0; i < cnt && !ret; i++)
		ret = parse_docker_one(json_array_get(root, i), what, i, &v[i],
				       err);
	if (ret) {
		lf_image_dockers_free(v, cnt);
		goto out;
	}
	*out = v;
	*n = cnt;
out:
	json_decref(root);
	return ret;
}

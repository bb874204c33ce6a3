// SPDX-License-Identifier: MIT
/*
 * image_legacy.c - `docker save` before Docker 1.10 (image spec v1.0/v1.1):
 * `repositories` ({repo: {tag: id}}) and, per image, `<id>/json` (with
 * `parent`), `<id>/layer.tar` and `<id>/VERSION`; no manifest.json.
 *
 * The layers are the parent chain of the tagged id, bottom first.  v1 JSON
 * states no diff_ids, so each layer.tar is hashed here (it is the
 * uncompressed layer: its sha256 is the diff_id, which keys the index cache
 * as `diffid-sha256-<hex>` and is checked again while indexing).  A config
 * in the OCI form is made up from the top image's JSON (its `config`,
 * `architecture`, `os`, `created`) and one history entry per layer
 * (`created_by` = container_config.Cmd joined by spaces, as docker history
 * shows it), so `layers` and `commit` work as for other images.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "image_internal.h"

/* Longest parent chain followed (docker's own limit was 127). */
#define LEGACY_DEPTH 1024
/* Most tags in `repositories`. */
#define LEGACY_TAGS 65536
#define HASH_CHUNK (1u << 20)

struct v1 {
	char id[65];
	json_t *json; /* owned: the parsed <id>/json */
};

struct legacy {
	struct lf_image *img;
	struct v1 *chain; /* top first while walking */
	size_t n;
};

static int oom(struct lf_err *err)
{
	return lf_err_set(err, -ENOMEM, "out of memory");
}

/* v1 ids are 256 bits as 64 lowercase hex digits: safe as a file name. */
static bool id_valid(const char *s)
{
	size_t i;

	for (i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[64] == '\0';
}

static json_t *read_json(const struct lf_image *img, const char *name,
			 struct lf_err *err)
{
	json_error_t je;
	json_t *root;
	char *text = NULL;
	size_t len = 0;

	if (lf_image_store_read(&img->store, name, &text, &len, err))
		return NULL;
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	free(text);
	if (!root)
		lf_err_set(err, -EINVAL,
			   "'%s': %s: invalid JSON at line %d: %s", img->path,
			   name, je.line, je.text);
	else if (!json_is_object(root)) {
		json_decref(root);
		root = NULL;
		lf_err_set(err, -EINVAL, "'%s': %s: not a JSON object",
			   img->path, name);
	}
	return root;
}

/* `repositories` -> one candidate per repo:tag; pick one by --ref. */
static int pick(struct lf_image *img, const struct lf_image_opts *opts,
		char id[65], struct lf_err *err)
{
	json_t *root = read_json(img, "repositories", err), *tags, *v;
	const char *repo, *tag;
	char **names = NULL;
	const char **keys = NULL;
	size_t n = 0, cap = 0, i;
	int ret = 0;

	if (!root)
		return err->code ? err->code : -EINVAL;
	json_object_foreach(root, repo, tags)
	{
		if (!json_is_object(tags))
			continue;
		json_object_foreach(tags, tag, v)
		{
			const char *s = json_string_value(v);

			if (!s || !id_valid(s)) {
				ret = lf_err_set(err, -EINVAL,
						 "'%s': repositories: %s:%s: "
						 "invalid image id",
						 img->path, repo, tag);
				goto out;
			}
			if (n == LEGACY_TAGS) {
				ret = lf_err_set(err, -E2BIG,
						 "'%s': repositories: more "
						 "than %d tags",
						 img->path, LEGACY_TAGS);
				goto out;
			}
			if (n == cap) {
				size_t c = cap ? 2 * cap : 16;
				void *a = realloc(names, c * sizeof(*names));
				void *b = a ? realloc(keys, c * sizeof(*keys))
					    : NULL;

				if (a)
					names = a;
				if (b)
					keys = b;
				if (!a || !b) {
					ret = oom(err);
					goto out;
				}
				cap = c;
			}
			keys[n] = s;
			names[n] = malloc(strlen(repo) + strlen(tag) + 2);
			if (!names[n]) {
				ret = oom(err);
				goto out;
			}
			sprintf(names[n++], "%s:%s", repo, tag);
		}
	}
	if (!n) {
		ret = lf_err_set(err, -EINVAL,
				 "'%s': repositories names no image",
				 img->path);
		goto out;
	}
	ret = lf_image_pick((const char *const *)names, keys, NULL, n, opts,
			    img->path, err);
	if (ret >= 0) {
		memcpy(id, keys[ret], 65);
		img->ref = strdup(names[ret]);
		ret = img->ref ? 0 : oom(err);
	}
out:
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(keys);
	json_decref(root);
	return ret;
}

/* The parent chain from `top` down, bounded and loop-safe. */
static int walk(struct legacy *lg, const char *top, struct lf_err *err)
{
	const char *path = lg->img->path, *parent;
	char name[80], id[65];
	size_t k;

	memcpy(id, top, 65);
	lg->chain = calloc(LEGACY_DEPTH, sizeof(*lg->chain));
	if (!lg->chain)
		return oom(err);
	for (;;) {
		struct v1 *v = &lg->chain[lg->n];

		for (k = 0; k < lg->n; k++)
			if (!strcmp(lg->chain[k].id, id))
				return lf_err_set(err, -ELOOP,
						  "'%s': %s/json: parent loop "
						  "(%.12s is its own ancestor)",
						  path, lg->chain[lg->n - 1].id,
						  id);
		if (lg->n == LEGACY_DEPTH)
			return lf_err_set(err, -ELOOP,
					  "'%s': more than %d images in the "
					  "parent chain of %.12s",
					  path, LEGACY_DEPTH, top);
		snprintf(name, sizeof(name), "%s/json", id);
		if (!lf_image_store_has(&lg->img->store, name))
			return lf_err_set(err, -ENOENT,
					  lg->n ? "'%s': %s is missing (the "
						  "parent of %s)"
						: "'%s': %s is missing (the "
						  "tagged image%s)",
					  path, name,
					  lg->n ? lg->chain[lg->n - 1].id : "");
		v->json = read_json(lg->img, name, err);
		if (!v->json)
			return err->code ? err->code : -EINVAL;
		memcpy(v->id, id, 65);
		lg->n++;
		parent = json_string_value(json_object_get(v->json, "parent"));
		if (!parent || !parent[0])
			return 0;
		if (!id_valid(parent))
			return lf_err_set(err, -EINVAL,
					  "'%s': %s: invalid parent id '%.80s'",
					  path, name, parent);
		memcpy(id, parent, 65);
	}
}

/* sha256 of a plain layer.tar: its diff_id. */
static int hash_layer(const struct lf_image *img, const char *name,
		      const struct lf_vfile *vf, char out[LF_DIGEST_LEN],
		      struct lf_err *err)
{
	unsigned char *buf = malloc(HASH_CHUNK);
	uint64_t off = 0, size = lf_vfile_size(vf);
	struct lf_sha256 *h = NULL;
	int ret = 0;

	if (!buf || lf_sha256_new(&h)) {
		free(buf);
		return oom(err);
	}
	if (size >= 2) {
		ssize_t n = lf_vfile_pread(vf, buf, 4, 0);

		if (n >= 2 && ((buf[0] == 0x1f && buf[1] == 0x8b) ||
			       (n == 4 && !memcmp(buf, "\x28\xb5\x2f\xfd", 4))))
			ret = lf_err_set(err, -ENOTSUP,
					 "'%s': %s is compressed; a v1 docker "
					 "save has plain tars",
					 img->path, name);
	}
	while (!ret && off < size) {
		ssize_t n = lf_vfile_pread(vf, buf,
					   (size_t)LF_MIN((uint64_t)HASH_CHUNK,
							  size - off),
					   off);

		if (n <= 0) {
			ret = lf_err_set(err, n < 0 ? (int)n : -EIO,
					 "'%s': cannot read %s: %s", img->path,
					 name, strerror(n < 0 ? (int)-n : EIO));
			break;
		}
		lf_sha256_update(h, buf, (size_t)n);
		off += (uint64_t)n;
	}
	if (!ret)
		lf_sha256_final(h, out);
	lf_sha256_free(h);
	free(buf);
	return ret;
}

/* Docker's history line: container_config.Cmd joined by spaces. */
static json_t *created_by(const json_t *v)
{
	const json_t *cmd = json_object_get(json_object_get(v,
							    "container_config"),
					    "Cmd");
	json_t *s;
	char *text = NULL;
	size_t i, len = 0;

	if (!json_is_array(cmd) || !json_array_size(cmd))
		return NULL;
	for (i = 0; i < json_array_size(cmd); i++) {
		const char *w = json_string_value(json_array_get(cmd, i));
		size_t wl = w ? strlen(w) : 0;
		char *p = realloc(text, len + wl + 2);

		if (!p) {
			free(text);
			return NULL;
		}
		text = p;
		if (i)
			text[len++] = ' ';
		memcpy(text + len, w ? w : "", wl);
		len += wl;
		text[len] = '\0';
	}
	s = json_stringn(text, len);
	free(text);
	return s;
}

static int put(json_t *o, const char *key, json_t *v)
{
	return v ? json_object_set_new(o, key, v) : 0;
}

static json_t *copy_key(const json_t *from, const char *key)
{
	json_t *v = json_object_get(from, key);

	return v ? json_deep_copy(v) : NULL;
}

/* The OCI-form config; diff_ids[i] for layer i, bottom first. */
static int make_config(struct legacy *lg, char (*diff_ids)[LF_DIGEST_LEN],
		       struct lf_err *err)
{
	struct lf_image *img = lg->img;
	const json_t *top = lg->chain[0].json;
	json_t *c = json_object(), *ids = json_array(), *hist = json_array();
	json_t *rootfs = json_object(), *os = copy_key(top, "os");
	json_t *arch = copy_key(top, "architecture");
	size_t i;
	int bad = !c || !ids || !hist || !rootfs;

	bad |= put(c, "architecture", arch ? arch : json_string("amd64"));
	bad |= put(c, "os", os ? os : json_string("linux"));
	bad |= put(c, "created", copy_key(top, "created"));
	bad |= put(c, "author", copy_key(top, "author"));
	bad |= put(c, "config", copy_key(top, "config"));
	for (i = 0; !bad && i < lg->n; i++) {
		const json_t *v = lg->chain[lg->n - 1 - i].json;
		json_t *h = json_object();

		bad |= !h ||
		       json_array_append_new(ids, json_string(diff_ids[i]));
		bad |= put(h, "created", copy_key(v, "created"));
		bad |= put(h, "created_by", created_by(v));
		bad |= put(h, "comment", copy_key(v, "comment"));
		bad |= json_array_append_new(hist, h);
	}
	bad |= put(rootfs, "type", json_string("layers"));
	bad |= put(rootfs, "diff_ids", ids);
	bad |= put(c, "rootfs", rootfs);
	bad |= put(c, "history", hist);
	if (!bad) {
		img->config_json = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS);
		bad = !img->config_json;
	}
	json_decref(c);
	if (bad)
		return oom(err);
	img->config_len = strlen(img->config_json);
	if (lf_sha256_mem(img->config_json, img->config_len,
			  img->config_digest))
		return oom(err);
	if (lf_image_parse_config(img->config_json, img->config_len,
				  "the config made from the v1 JSON",
				  &img->config, err))
		return lf_err_prefix(err, "'%s'", img->path);
	return 0;
}

/* Layer i (bottom = 0) is chain[n-1-i]; its blob and diff_id. */
static int open_layers(struct legacy *lg, char (*diff_ids)[LF_DIGEST_LEN],
		       struct lf_err *err)
{
	struct lf_image *img = lg->img;
	char name[80];
	size_t i;
	int ret;

	img->layers = calloc(lg->n, sizeof(*img->layers));
	if (!img->layers)
		return oom(err);
	img->nlayers = lg->n;
	for (i = 0; i < lg->n; i++) {
		struct lf_image_layer *l = &img->layers[i];

		snprintf(name, sizeof(name), "%s/layer.tar",
			 lg->chain[lg->n - 1 - i].id);
		l->media_type = strdup("");
		l->source = strdup(name);
		if (!l->media_type || !l->source)
			return oom(err);
		ret = lf_image_store_blob(&img->store, name, &l->blob, err);
		if (ret == -ENOENT)
			return lf_err_set(err, ret,
					  "'%s': layer %zu (%.12s): %s is "
					  "missing",
					  img->path, i + 1,
					  lg->chain[lg->n - 1 - i].id, name);
		if (ret)
			return ret;
		l->size = lf_vfile_size(l->blob);
		ret = hash_layer(img, name, l->blob, diff_ids[i], err);
		if (ret)
			return ret;
	}
	return 0;
}

int lf_image_legacy_open(struct lf_image *img, const struct lf_image_opts *opts,
			 struct lf_err *err)
{
	struct legacy lg = { .img = img };
	char(*diff_ids)[LF_DIGEST_LEN] = NULL;
	char id[65];
	size_t i;
	int ret;

	ret = pick(img, opts, id, err);
	if (!ret)
		ret = walk(&lg, id, err);
	if (!ret && !(diff_ids = calloc(lg.n, sizeof(*diff_ids))))
		ret = oom(err);
	if (!ret)
		ret = open_layers(&lg, diff_ids, err);
	if (!ret)
		ret = make_config(&lg, diff_ids, err);
	for (i = 0; !ret && i < img->nlayers; i++) {
		const struct lf_image_history *h = &img->config.hist[i];

		memcpy(img->layers[i].diff_id, img->config.diff_ids[i],
		       LF_DIGEST_LEN);
		img->layers[i].created_by = h->created_by;
		img->layers[i].created = h->created;
		img->layers[i].comment = h->comment;
	}
	for (i = 0; i < lg.n; i++)
		json_decref(lg.chain[i].json);
	free(lg.chain);
	free(diff_ids);
	return ret;
}

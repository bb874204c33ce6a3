// SPDX-License-Identifier: MIT
/* image.c - detect an image (OCI layout or archive, docker-archive). */
#include "layerfs/image.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "image_cstore.h"
#include "image_internal.h"

#include "layerfs/imgref.h"
#include "layerfs/vfile_gzip.h"

#define BLOB_DIR "blobs/sha256/"

static const char *const layer_types[] = {
	"application/vnd.oci.image.layer.v1.tar",
	"application/vnd.oci.image.layer.v1.tar+gzip",
	"application/vnd.oci.image.layer.v1.tar+zstd",
	"application/vnd.oci.image.layer.nondistributable.v1.tar",
	"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
	"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
	"application/vnd.docker.image.rootfs.diff.tar.gzip",
	"application/vnd.docker.image.rootfs.diff.tar",
	"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
};

static bool layer_type_ok(const char *mt)
{
	size_t i;

	for (i = 0; i < LF_ARRAY_SIZE(layer_types); i++)
		if (!strcmp(mt, layer_types[i]))
			return true;
	return false;
}

/* Layers the registry may not ship: their blob is often absent. */
static bool is_foreign(const char *mt)
{
	return strstr(mt, "nondistributable") || strstr(mt, "foreign");
}

static void blob_name(const char *digest, char *out, size_t len)
{
	/* digest was validated by lf_digest_valid: 64 hex, nothing else */
	snprintf(out, len, BLOB_DIR "%s", digest + 7);
}

static int oom(struct lf_err *err)
{
	return lf_err_set(err, -ENOMEM, "out of memory");
}

/*
 * A JSON document must be the bytes its descriptor names: same size (when
 * the descriptor gives one) and same digest.  `ref` says which descriptor,
 * e.g. "index.json manifests[1]".  Checked always, --no-verify or not: these
 * are small, and a manifest that is not the one named would serve other
 * layers than the image's.
 */
static int check_desc(struct lf_image *img, const struct lf_image_desc *d,
		      const char *name, const char *ref, const char *data,
		      size_t len, struct lf_err *err)
{
	char got[LF_DIGEST_LEN];

	if (d->has_size && d->size != len)
		return lf_err_set(err, -EINVAL,
				  "'%s': %s is %zu bytes, %s says %llu",
				  img->path, name, len, ref,
				  (unsigned long long)d->size);
	if (lf_sha256_mem(data, len, got))
		return oom(err);
	if (strcmp(got, d->digest))
		return lf_err_set(err, -EINVAL,
				  "'%s': %s does not match its digest: %s says "
				  "%s, the file hashes to %s",
				  img->path, name, ref, d->digest, got);
	return 0;
}

/* Read one OCI blob by digest (an index or a manifest), checked. */
static int read_blob(struct lf_image *img, const struct lf_image_desc *d,
		     const char *ref, char **json, size_t *len,
		     struct lf_err *err)
{
	char name[128];
	int ret;

	blob_name(d->digest, name, sizeof(name));
	/* a size known too big is refused before reading anything */
	if (d->has_size && d->size > LF_IMAGE_JSON_MAX)
		return lf_err_set(err, -EFBIG,
				  "'%s': %s is too big (%s says %llu bytes, "
				  "the limit is %u MiB)",
				  img->path, name, ref,
				  (unsigned long long)d->size,
				  LF_IMAGE_JSON_MAX >> 20);
	ret = lf_image_store_read(&img->store, name, json, len, err);
	if (ret)
		return ret;
	ret = check_desc(img, d, name, ref, *json, *len, err);
	if (ret) {
		free(*json);
		*json = NULL;
	}
	return ret;
}

static int resolve_manifest(struct lf_image *img, const struct lf_image_desc *d,
			    const char *ref, const struct lf_image_opts *opts,
			    int depth, struct lf_err *err);

/* An image index: pick the manifest for the platform, then recurse. */
static int resolve_index(struct lf_image *img, const char *json, size_t len,
			 const char *what, const struct lf_image_opts *opts,
			 int depth, struct lf_err *err)
{
	struct lf_image_desc *v = NULL;
	size_t n = 0;
	char ref[160];
	int ret, i;

	if (depth >= LF_IMAGE_INDEX_DEPTH)
		return lf_err_set(err, -ELOOP,
				  "'%s': %s: image indexes nested too deep",
				  img->path, what);
	ret = lf_image_parse_index(json, len, what, &v, &n, err);
	if (ret)
		return lf_err_prefix(err, "'%s'", img->path);
	lf_image_drop_artifacts(v, &n);
	/* one entry without a platform needs no choice */
	if (n == 1 && !v[0].os)
		i = 0;
	else
		i = lf_image_pick_platform(v, n, opts->platform, img->path,
					   err);
	if (i >= 0)
		snprintf(ref, sizeof(ref), "%s manifests[%d]", what, i);
	ret = i < 0 ? i
		    : resolve_manifest(img, &v[i], ref, opts, depth + 1, err);
	lf_image_descs_free(v, n);
	return ret;
}

static bool manifest_type_ok(const char *mt)
{
	return !mt[0] ||
	       !strcmp(mt, "application/vnd.oci.image.manifest.v1+json") ||
	       !strcmp(mt,
		       "application/vnd.docker.distribution.manifest.v2+json");
}

static int resolve_manifest(struct lf_image *img, const struct lf_image_desc *d,
			    const char *ref, const struct lf_image_opts *opts,
			    int depth, struct lf_err *err)
{
	char *json = NULL, *mt = NULL, what[128];
	size_t len = 0;
	int ret;

	blob_name(d->digest, what, sizeof(what));
	ret = read_blob(img, d, ref, &json, &len, err);
	if (ret)
		return ret;
	/* trust the descriptor's media type; peek when it gives none */
	if (d->media_type[0]) {
		mt = strdup(d->media_type);
		if (!mt)
			ret = oom(err);
	} else if (lf_image_parse_media_type(json, len, what, &mt, err)) {
		ret = lf_err_prefix(err, "'%s'", img->path);
	}
	if (ret)
		goto out;
	if (lf_image_is_index_type(mt)) {
		ret = resolve_index(img, json, len, what, opts, depth, err);
	} else if (!manifest_type_ok(mt)) {
		ret = lf_err_set(err, -EINVAL,
				 "'%s': %s: unsupported manifest media type "
				 "'%s'",
				 img->path, what, mt);
	} else {
		ret = lf_image_parse_manifest(json, len, what, &img->manifest,
					      err);
		if (ret)
			ret = lf_err_prefix(err, "'%s'", img->path);
		else /* an artifact (SBOM, chart...) is not an image */
			ret = lf_image_check_artifact(json, len, &img->manifest,
						      img->path, err);
		if (!ret) {
			memcpy(img->manifest_digest, d->digest, LF_DIGEST_LEN);
			img->manifest_size = len;
			free(img->manifest_media_type);
			if (!(img->manifest_media_type = strdup(mt)))
				ret = oom(err);
		}
	}
out:
	free(mt);
	free(json);
	return ret;
}

/* @N of a transport: image N of the n listed, whose name is `name`. */
static int by_index(struct lf_image *img, const struct lf_image_opts *opts,
		    size_t n, const char *name, struct lf_err *err)
{
	if (opts->index >= n)
		return lf_err_set(err, -ENOENT,
				  "'%s': no image @%zu: it lists %zu image%s",
				  img->path, opts->index, n, n == 1 ? "" : "s");
	if (name && !(img->ref = strdup(name)))
		return oom(err);
	return (int)opts->index;
}

/* index.json: choose by --ref (ref.name or containerd name annotation). */
static int select_top(struct lf_image *img, const struct lf_image_desc *v,
		      size_t n, const struct lf_image_opts *opts,
		      struct lf_err *err)
{
	const char **names = calloc(2 * n + 1, sizeof(*names));
	const char **keys = calloc(2 * n + 1, sizeof(*keys));
	struct lf_image_desc *descs = calloc(2 * n + 1, sizeof(*descs));
	size_t *owner = calloc(2 * n + 1, sizeof(*owner));
	size_t i, m = 0;
	int ret;

	if (!names || !keys || !descs || !owner) {
		ret = oom(err);
		goto out;
	}
	for (i = 0; i < n; i++) {
		/* one candidate per name a descriptor answers to */
		names[m] = v[i].ref_name ? v[i].ref_name : v[i].ctr_name;
		keys[m] = v[i].digest;
		owner[m] = i;
		descs[m++] = v[i]; /* shallow: platform fields only */
		if (v[i].ref_name && v[i].ctr_name) {
			names[m] = v[i].ctr_name;
			keys[m] = v[i].digest;
			owner[m] = i;
			descs[m++] = v[i];
		}
	}
	ret = lf_image_pick(names, keys, descs, m, opts, img->path, err);
	if (ret >= 0 && names[ret] && !(img->ref = strdup(names[ret])))
		ret = oom(err);
	else if (ret >= 0)
		ret = (int)owner[ret];
out:
	free(names);
	free(keys);
	free(descs);
	free(owner);
	return ret;
}

/*
 * The config: raw JSON kept for lf_image_config_json(), then parsed.  When
 * a descriptor names it (OCI), its size and digest are checked first.
 */
static int load_config(struct lf_image *img, const char *name,
		       const struct lf_image_desc *d, struct lf_err *err)
{
	int ret;

	if (d && d->has_size && d->size > LF_IMAGE_CONFIG_MAX)
		return lf_err_set(err, -EFBIG,
				  "'%s': config %s is too big (the manifest "
				  "says %llu bytes, the limit is %u MiB)",
				  img->path, name, (unsigned long long)d->size,
				  LF_IMAGE_CONFIG_MAX >> 20);
	ret = lf_image_store_read_max(&img->store, name, LF_IMAGE_CONFIG_MAX,
				      &img->config_json, &img->config_len, err);
	if (ret)
		return ret;
	if (d)
		ret = check_desc(img, d, name, "the manifest's config",
				 img->config_json, img->config_len, err);
	if (ret)
		return ret;
	ret = lf_image_parse_config(img->config_json, img->config_len, name,
				    &img->config, err);
	if (ret)
		return lf_err_prefix(err, "'%s'", img->path);
	return 0;
}

static int alloc_layers(struct lf_image *img, size_t n, struct lf_err *err)
{
	if (img->config.ndiff_ids != n)
		return lf_err_set(err, -EINVAL,
				  "'%s': the config lists %zu diff_ids for %zu "
				  "layers",
				  img->path, img->config.ndiff_ids, n);
	img->layers = calloc(n ? n : 1, sizeof(*img->layers));
	if (!img->layers)
		return oom(err);
	img->nlayers = n;
	return 0;
}

/*
 * Fill layer i from its blob.  digest may be "" (legacy docker-archive);
 * declared is the size a manifest gives, or -1.
 */
static int fill_layer(struct lf_image *img, size_t i, const char *digest,
		      const char *mt, const char *source, int64_t declared,
		      struct lf_err *err)
{
	struct lf_image_layer *l = &img->layers[i];
	const struct lf_image_history *h = NULL;
	int ret;

	snprintf(l->digest, sizeof(l->digest), "%s", digest);
	memcpy(l->diff_id, img->config.diff_ids[i], LF_DIGEST_LEN);
	l->media_type = strdup(mt);
	l->source = strdup(source);
	if (!l->media_type || !l->source)
		return oom(err);
	if (img->store.remote && declared >= 0)
		ret = lf_image_remote_layer(&img->store, source,
					    (uint64_t)declared, &l->blob, err);
	else
		ret = lf_image_store_blob(&img->store, source, &l->blob, err);
	if (ret == -ENOENT)
		return lf_err_set(err, ret,
				  "'%s': layer %zu (%s): blob %s is missing%s",
				  img->path, i + 1, digest[0] ? digest : source,
				  source,
				  is_foreign(mt)
					  ? " (a non-distributable "
					    "layer, not shipped with the image)"
					  : "");
	if (ret)
		return ret;
	l->size = lf_vfile_size(l->blob);
	if (declared >= 0 && (uint64_t)declared != l->size)
		return lf_err_set(err, -EINVAL,
				  "'%s': layer %zu (%s): blob %s is %llu "
				  "bytes, the manifest says %lld",
				  img->path, i + 1, digest[0] ? digest : source,
				  source, (unsigned long long)l->size,
				  (long long)declared);
	/* history entries that made a layer, in order (empty_layer skipped) */
	if (i < img->config.nhist)
		h = &img->config.hist[i];
	l->created_by = h ? h->created_by : NULL;
	l->created = h ? h->created : NULL;
	l->comment = h ? h->comment : NULL;
	return 0;
}

static int oci_layers(struct lf_image *img, struct lf_err *err)
{
	const struct lf_image_manifest *m = &img->manifest;
	char name[128];
	size_t i;
	int ret;

	blob_name(m->config.digest, name, sizeof(name));
	memcpy(img->config_digest, m->config.digest, LF_DIGEST_LEN);
	ret = load_config(img, name, &m->config, err);
	if (!ret)
		ret = alloc_layers(img, m->nlayers, err);
	for (i = 0; !ret && i < m->nlayers; i++) {
		const struct lf_image_desc *d = &m->layers[i];

		if (!layer_type_ok(d->media_type))
			return lf_err_set(err, -EINVAL,
					  "'%s': layer %zu: unsupported media "
					  "type '%s'",
					  img->path, i + 1, d->media_type);
		blob_name(d->digest, name, sizeof(name));
		ret = fill_layer(img, i, d->digest, d->media_type, name,
				 d->has_size ? (int64_t)d->size : -1, err);
		memcpy(img->layers[i].toc_digest, d->toc_digest, LF_DIGEST_LEN);
	}
	return ret;
}

static int oci_open(struct lf_image *img, const struct lf_image_opts *opts,
		    struct lf_err *err)
{
	struct lf_image_desc *v = NULL;
	char *json = NULL, ref[64];
	size_t len = 0, n = 0;
	int ret, i;

	ret = lf_image_store_read(&img->store, "index.json", &json, &len, err);
	if (ret)
		return ret;
	ret = lf_image_parse_index(json, len, "index.json", &v, &n, err);
	if (ret) {
		ret = lf_err_prefix(err, "'%s'", img->path);
		goto out;
	}
	/* "manifests": null or []: the caller may have a manifest.json */
	if (!n) {
		ret = lf_err_set(err, -ENODATA,
				 "'%s': index.json lists no image", img->path);
		goto out;
	}
	if (opts->by_index) {
		/* @N: the N-th entry as listed, whatever it is */
		i = by_index(img, opts, n,
			     v[opts->index < n ? opts->index : 0].ref_name,
			     err);
	} else {
		lf_image_drop_artifacts(v, &n);
		i = select_top(img, v, n, opts, err);
	}
	if (i >= 0)
		snprintf(ref, sizeof(ref), "index.json manifests[%d]", i);
	ret = i < 0 ? i : resolve_manifest(img, &v[i], ref, opts, 0, err);
	if (!ret)
		ret = oci_layers(img, err);
out:
	lf_image_descs_free(v, n);
	free(json);
	return ret;
}

/* docker-archive: `blobs/sha256/<hex>` members are named by their digest. */
static void docker_digest(const char *path, char out[LF_DIGEST_LEN])
{
	out[0] = '\0';
	if (strncmp(path, BLOB_DIR, strlen(BLOB_DIR)))
		return;
	snprintf(out, LF_DIGEST_LEN, "sha256:%s", path + strlen(BLOB_DIR));
	if (!lf_digest_valid(out))
		out[0] = '\0';
}

/*
 * LayerSources (keyed by diff_id) describe the layer as a registry serves
 * it, compressed, with its registry digest, size and media type: not the
 * archive's file, which docker save writes uncompressed.  So nothing of it
 * is checked against the file (the diff_id is, by index.c); it only
 * explains why a foreign layer's file may be absent.
 */
static bool docker_foreign(const struct lf_image_docker *e, const char *diff_id)
{
	size_t k;

	for (k = 0; k < e->nsources; k++)
		if (!strcmp(e->source_keys[k], diff_id))
			return is_foreign(e->sources[k].media_type);
	return false;
}

static int docker_layers(struct lf_image *img, const struct lf_image_docker *e,
			 struct lf_err *err)
{
	char digest[LF_DIGEST_LEN];
	size_t i;
	int ret;

	ret = alloc_layers(img, e->nlayers, err);
	for (i = 0; !ret && i < e->nlayers; i++) {
		docker_digest(e->layers[i], digest);
		ret = fill_layer(img, i, digest, "", e->layers[i], -1, err);
		/* looked up on this error path only: never layers x sources */
		if (ret == -ENOENT &&
		    docker_foreign(e, img->config.diff_ids[i]))
			ret = lf_err_set(err, ret,
					 "'%s': layer %zu (%s): blob %s is "
					 "missing (a non-distributable layer, "
					 "not shipped with the image)",
					 img->path, i + 1,
					 img->config.diff_ids[i], e->layers[i]);
	}
	return ret;
}

/* Say what the image is; a transport that named another format fails. */
static int set_format(struct lf_image *img, const char *format,
		      struct lf_err *err)
{
	const char *want = img->want_format;

	img->format = format;
	if (!want || !strcmp(want, format))
		return 0;
	return lf_err_set(err, -EINVAL, "'%s' is %s %s, not %s %s", img->path,
			  format[0] == 'o' ? "an" : "a", format,
			  want[0] == 'o' ? "an" : "a", want);
}

/* A Config named blobs/sha256/<hex> is content-addressed: hold it to that. */
static int docker_config_name(struct lf_image *img, const char *name,
			      struct lf_err *err)
{
	char named[LF_DIGEST_LEN];

	docker_digest(name, named);
	if (named[0] && strcmp(named, img->config_digest))
		return lf_err_set(err, -EINVAL,
				  "'%s': %s does not match its digest: "
				  "manifest.json Config says %s, the file "
				  "hashes to %s",
				  img->path, name, named, img->config_digest);
	return 0;
}

static int docker_pick(struct lf_image *img, const struct lf_image_docker *v,
		       size_t n, const struct lf_image_opts *opts,
		       struct lf_err *err)
{
	size_t i, k, m = 0, total = 0;
	const char **names, **keys;
	size_t *owner;
	int ret;

	for (i = 0; i < n; i++)
		total += v[i].ntags ? v[i].ntags : 1;
	names = calloc(total + 1, sizeof(*names));
	keys = calloc(total + 1, sizeof(*keys));
	owner = calloc(total + 1, sizeof(*owner));
	if (!names || !keys || !owner) {
		ret = oom(err);
		goto out;
	}
	/* one candidate per RepoTag; the Config file identifies the image */
	for (i = 0; i < n; i++) {
		for (k = 0; k < (v[i].ntags ? v[i].ntags : 1); k++) {
			names[m] = v[i].ntags ? v[i].tags[k] : NULL;
			keys[m] = v[i].config;
			owner[m++] = i;
		}
	}
	ret = lf_image_pick(names, keys, NULL, m, opts, img->path, err);
	if (ret >= 0 && names[ret] && !(img->ref = strdup(names[ret])))
		ret = oom(err);
	else if (ret >= 0)
		ret = (int)owner[ret];
out:
	free(names);
	free(keys);
	free(owner);
	return ret;
}

static int docker_open(struct lf_image *img, const struct lf_image_opts *opts,
		       struct lf_err *err)
{
	struct lf_image_docker *v = NULL;
	char *json = NULL;
	size_t len = 0, n = 0;
	int ret, i;

	ret = lf_image_store_read(&img->store, "manifest.json", &json, &len,
				  err);
	if (ret)
		return ret;
	ret = lf_image_parse_docker(json, len, "manifest.json", &v, &n, err);
	if (ret) {
		ret = lf_err_prefix(err, "'%s'", img->path);
		goto out;
	}
	if (opts->by_index)
		i = by_index(img, opts, n,
			     opts->index < n && v[opts->index].ntags
				     ? v[opts->index].tags[0]
				     : NULL,
			     err);
	else
		i = docker_pick(img, v, n, opts, err);
	ret = i < 0 ? i : load_config(img, v[i].config, NULL, err);
	/* the config digest is what the config bytes hash to */
	if (!ret && lf_sha256_mem(img->config_json, img->config_len,
				  img->config_digest))
		ret = oom(err);
	if (!ret)
		ret = docker_config_name(img, v[i].config, err);
	if (!ret)
		ret = docker_layers(img, &v[i], err);
out:
	lf_image_dockers_free(v, n);
	free(json);
	return ret;
}

static int open_archive(struct lf_image *img, const struct lf_image_opts *opts,
			struct lf_err *err)
{
	struct lf_vfile *vf;
	int ret;

	ret = lf_vfile_open(img->path, NULL, &vf, err);
	if (ret)
		return ret;
	/* `docker save | gzip`, a gzip'd OCI archive: read through the gzip */
	if (lf_vfile_is_gzip(vf) &&
	    (ret = lf_vfile_gzip_open(vf, opts->cache_dir, &vf, err)))
		return ret;
	ret = lf_image_store_open_archive(&img->store, vf, err);
	if (ret) {
		lf_vfile_close(vf);
		return ret;
	}
	img->store.label = img->path;
	/* Docker 25+ writes both: the OCI layout is the richer description */
	if (lf_image_store_has(&img->store, "oci-layout") &&
	    lf_image_store_has(&img->store, "index.json")) {
		if ((ret = set_format(img, "oci-archive", err)))
			return ret;
		ret = oci_open(img, opts, err);
		/* but its index.json may say "manifests": null, where docker
		 * load, skopeo and go-containerregistry read manifest.json */
		if (ret != -ENODATA ||
		    !lf_image_store_has(&img->store, "manifest.json"))
			return ret;
	}
	if (lf_image_store_has(&img->store, "manifest.json")) {
		if ((ret = set_format(img, "docker-archive", err)))
			return ret;
		return docker_open(img, opts, err);
	}
	/* docker save before Docker 1.10: `repositories` + `<id>/json` */
	if (lf_image_store_has(&img->store, "repositories")) {
		if ((ret = set_format(img, "docker-archive", err)))
			return ret;
		if (opts->by_index)
			return lf_err_set(err, -EINVAL,
					  "'%s': @%zu counts the images of a "
					  "manifest.json, and this save "
					  "(before "
					  "Docker 1.10) has none",
					  img->path, opts->index);
		return lf_image_legacy_open(img, opts, err);
	}
	return lf_err_set(err, -EINVAL,
			  "'%s': not an image archive (no oci-layout and "
			  "index.json, no manifest.json, no repositories)",
			  img->path);
}

/* Why a layout file that exists cannot be used; 0 when it is fine or
 * simply absent. */
static int layout_file_refusal(struct lf_image *img, const char *name,
			       struct lf_err *err)
{
	struct lf_vfile *vf = NULL;
	int ret = lf_image_store_blob(&img->store, name, &vf, err);

	lf_vfile_close(vf);
	return ret == -ENOENT ? 0 : ret;
}

static int detect_and_open(struct lf_image *img,
			   const struct lf_image_opts *opts, struct lf_err *err)
{
	struct stat sb;
	int ret;

	if (stat(img->path, &sb) < 0) {
		ret = -errno;
		return lf_err_set(err, ret, "cannot open image '%s': %s",
				  img->path, strerror(-ret));
	}
	if (S_ISREG(sb.st_mode))
		return open_archive(img, opts, err);
	if (!S_ISDIR(sb.st_mode))
		return lf_err_set(err, -EINVAL,
				  "'%s' is neither a directory nor a file",
				  img->path);
	ret = lf_image_store_open_dir(&img->store, img->path, err);
	if (ret)
		return ret;
	img->store.label = img->path;
	if (!lf_image_store_has(&img->store, "oci-layout") ||
	    !lf_image_store_has(&img->store, "index.json")) {
		/* present but refused (a link out, a FIFO): say that */
		ret = layout_file_refusal(img, "oci-layout", err);
		if (!ret)
			ret = layout_file_refusal(img, "index.json", err);
		return ret ? ret
			   : lf_err_set(err, -EINVAL,
					"'%s': not an OCI image layout (no "
					"oci-layout or index.json)",
					img->path);
	}
	if ((ret = set_format(img, "oci-layout", err)))
		return ret;
	return oci_open(img, opts, err);
}

/* The options of a transport's image: its REF or @N on top of opts. */
static int transport_opts(const char *arg, const struct lf_imgref *r,
			  struct lf_image_opts *o, struct lf_err *err)
{
	if (r->ref && o->ref && strcmp(r->ref, o->ref))
		return lf_err_set(err, -EINVAL,
				  "'%.200s' names image '%.200s' but --ref "
				  "says "
				  "'%.200s'",
				  arg, r->ref, o->ref);
	if (r->by_index && o->ref)
		return lf_err_set(err, -EINVAL,
				  "'%.200s' names image @%zu but --ref says "
				  "'%.200s'",
				  arg, r->index, o->ref);
	if (r->ref)
		o->ref = r->ref;
	o->by_index = o->by_index || r->by_index;
	if (r->by_index)
		o->index = r->index;
	return 0;
}

/* docker://: the registry's repository, read as an OCI layout. */
static int registry_open(struct lf_image *img, const struct lf_imgref *r,
			 const struct lf_image_opts *o, struct lf_err *err)
{
	int ret = lf_image_store_open_registry(&img->store, r->host, r->repo,
					       r->digest ? r->digest : r->tag,
					       o, err);

	img->store.label = img->path;
	img->format = "docker";
	return ret ? ret : oci_open(img, o, err);
}

int lf_image_open(const char *path, const struct lf_image_opts *opts,
		  struct lf_image **out, struct lf_err *err)
{
	static const struct lf_image_opts none;
	struct lf_image_opts o = opts ? *opts : none;
	struct lf_image *img;
	struct lf_imgref r;
	int ret = lf_imgref_parse(path, &r, err);

	if (ret)
		return ret;
	if ((ret = transport_opts(path, &r, &o, err)))
		goto out;
	img = calloc(1, sizeof(*img));
	if (!img || !(img->path = strdup(r.path ? r.path : path))) {
		free(img);
		ret = oom(err);
		goto out;
	}
	lf_buf_init(&img->store.names);
	if (r.kind == LF_IMGREF_DOCKER) {
		ret = registry_open(img, &r, &o, err);
		goto opened;
	}
	if (r.kind == LF_IMGREF_CSTORE) {
		ret = lf_image_cstore_open(img, &r, err);
		goto opened;
	}
	img->want_format = r.kind == LF_IMGREF_OCI	     ? "oci-layout"
			   : r.kind == LF_IMGREF_OCI_ARCHIVE ? "oci-archive"
			   : r.kind == LF_IMGREF_DOCKER_ARCHIVE
				   ? "docker-archive"
				   : NULL;
	ret = detect_and_open(img, &o, err);
opened:
	if (ret) {
		lf_image_close(img);
		goto out;
	}
	*out = img;
out:
	lf_imgref_release(&r);
	return ret;
}

size_t lf_image_layer_count(const struct lf_image *img)
{
	return img->nlayers;
}

const struct lf_image_layer *lf_image_layer(const struct lf_image *img,
					    size_t i)
{
	return &img->layers[i];
}

const char *lf_image_format(const struct lf_image *img)
{
	return img->format;
}

const char *lf_image_path(const struct lf_image *img)
{
	return img->path;
}

const char *lf_image_manifest_type(const struct lf_image *img, uint64_t *size)
{
	*size = img->manifest_size;
	return img->manifest_media_type;
}

struct lf_registry *lf_image_registry(const struct lf_image *img)
{
	return img->store.remote ? lf_image_remote_registry(&img->store) : NULL;
}

const char *lf_image_manifest_digest(const struct lf_image *img)
{
	return img->manifest_digest;
}

const char *lf_image_config_digest(const struct lf_image *img)
{
	return img->config_digest;
}

const char *lf_image_config_json(const struct lf_image *img, size_t *len)
{
	if (len)
		*len = img->config_len;
	return img->config_json;
}

const char *lf_image_ref(const struct lf_image *img)
{
	return img->ref;
}

void lf_image_close(struct lf_image *img)
{
	size_t i;

	if (!img)
		return;
	for (i = 0; i < img->nlayers; i++) {
		lf_vfile_close(img->layers[i].blob);
		free((char *)img->layers[i].media_type);
		free((char *)img->layers[i].source);
		free((char *)img->layers[i].dir);
	}
	free(img->layers);
	lf_image_config_release(&img->config);
	lf_image_manifest_release(&img->manifest);
	lf_image_store_release(&img->store);
	free(img->config_json);
	free(img->ref);
	free(img->manifest_media_type);
	free(img->path);
	free(img);
}

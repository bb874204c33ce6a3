// SPDX-License-Identifier: MIT
/* image_cstore.c - an image of a containers-storage store, its layers as
 * the store's extracted layer directories. */
#include "image_cstore.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layerfs/digest.h"

/* images.json and layers.json list the whole store: allow big ones. */
#define STORE_JSON_MAX (256u << 20)
#define MIN_ID_PREFIX 3 /* containers/image's minimumTruncatedIDLength */
#define ID_LEN 64

struct layer_rec {
	const char *id, *parent, *diff_digest;
	uint64_t diff_size;
	bool incomplete; /* flags.incomplete: an interrupted pull or build */
};

struct cstore {
	struct lf_image *img;
	const char *label;
	struct lf_cstore_conf conf;
	int gfd, rfd;	  /* graphroot, runroot (-1: none) */
	json_t *images;	  /* images.json */
	json_t *ljson[3]; /* layers.json, volatile-layers.json (x2) */
	struct layer_rec *recs;
	size_t nrecs;
	json_t *image; /* the chosen entry of images.json (borrowed) */
};

static int oom(struct lf_err *err)
{
	return lf_err_set(err, -ENOMEM, "out of memory");
}

static bool is_hex_id(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]) &&
		    !(s[i] >= 'a' && s[i] <= 'f'))
			return false;
	return n > 0;
}

/*
 * Open `rel` below dfd, no component a symlink, intermediate ones
 * directories; the last with O_DIRECTORY when `dir`.  fd or -errno.
 */
static int open_below(int dfd, const char *rel, bool dir)
{
	char part[256];
	const char *p = rel, *slash;
	int fd = dfd, next;

	for (;;) {
		size_t n;

		slash = strchr(p, '/');
		n = slash ? (size_t)(slash - p) : strlen(p);
		if (!n || n >= sizeof(part) || (n == 2 && !strncmp(p, "..", 2)))
			next = -EINVAL;
		else {
			memcpy(part, p, n);
			part[n] = '\0';
			next = openat(fd, part,
				      O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
					      O_NOCTTY | O_CLOEXEC |
					      (slash || dir ? O_DIRECTORY : 0));
			if (next < 0)
				next = -errno;
		}
		if (fd != dfd)
			close(fd);
		if (next < 0 || !slash)
			return next;
		fd = next;
		p = slash + 1;
	}
}

/* Why open_below() failed, in words. */
static const char *why(int ret)
{
	if (ret == -ELOOP)
		return "a symbolic link (not followed in a store)";
	if (ret == -ENOTDIR)
		return "not a directory, or a symbolic link (not followed in "
		       "a store)";
	return strerror(-ret);
}

static const char *graphroot(const struct cstore *c)
{
	return c->conf.graphroot;
}

/* Read a JSON file below dfd (`root` names dfd in messages). */
static int read_json(struct cstore *c, int dfd, const char *root,
		     const char *rel, size_t max, bool optional, json_t **out,
		     char **raw, size_t *rawlen, struct lf_err *err)
{
	int fd = open_below(dfd, rel, false);
	json_error_t je;
	struct stat st;
	char *text;
	ssize_t n;

	*out = NULL;
	if (fd == -ENOENT && optional)
		return 0;
	if (fd < 0)
		return lf_err_set(err, fd, "'%s': %s/%s: %s", c->label, root,
				  rel, why(fd));
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return lf_err_set(err, -EINVAL,
				  "'%s': %s/%s: not a regular file", c->label,
				  root, rel);
	}
	if ((uint64_t)st.st_size > max) {
		close(fd);
		return lf_err_set(err, -EFBIG,
				  "'%s': %s/%s: bigger than the limit of %zu "
				  "MiB",
				  c->label, root, rel, max >> 20);
	}
	if (!(text = malloc((size_t)st.st_size + 1))) {
		close(fd);
		return oom(err);
	}
	n = pread(fd, text, (size_t)st.st_size, 0);
	close(fd);
	if (n != st.st_size) {
		free(text);
		return lf_err_set(err, -EIO, "'%s': %s/%s: short read",
				  c->label, root, rel);
	}
	text[n] = '\0';
	*out = json_loadb(text, (size_t)n, JSON_REJECT_DUPLICATES, &je);
	if (raw && *out) {
		*raw = text;
		*rawlen = (size_t)n;
	} else {
		free(text);
	}
	if (!*out)
		return lf_err_set(err, -EINVAL,
				  "'%s': %s/%s: invalid JSON at line %d: %s",
				  c->label, root, rel, je.line, je.text);
	return 0;
}

static const char *str_field(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* The driver: as given or configured, else the one with images.json. */
static int pick_driver(struct cstore *c, struct lf_err *err)
{
	static const char *const known[] = { "overlay", "vfs" };
	struct stat st;
	size_t i;

	if (c->conf.driver && !strcmp(c->conf.driver, "overlay2")) {
		free(c->conf.driver); /* containers/storage's alias */
		c->conf.driver = NULL;
		if (!(c->conf.driver = strdup("overlay")))
			return oom(err);
	}
	if (c->conf.driver && c->conf.driver[0]) {
		for (i = 0; i < LF_ARRAY_SIZE(known); i++)
			if (!strcmp(c->conf.driver, known[i]))
				return 0;
		return lf_err_set(err, -EPROTONOSUPPORT,
				  "'%s': storage driver '%.40s' is not "
				  "supported (layerfs reads overlay and vfs "
				  "stores)",
				  c->label, c->conf.driver);
	}
	for (i = 0; i < LF_ARRAY_SIZE(known); i++) {
		char rel[64];

		snprintf(rel, sizeof(rel), "%s-images/images.json", known[i]);
		if (!fstatat(c->gfd, rel, &st, AT_SYMLINK_NOFOLLOW)) {
			free(c->conf.driver);
			return (c->conf.driver = strdup(known[i])) ? 0
								   : oom(err);
		}
	}
	return lf_err_set(err, -ENOENT,
			  "'%s': no images in store %s (no overlay-images/ or "
			  "vfs-images/images.json)",
			  c->label, graphroot(c));
}

static int open_roots(struct cstore *c, struct lf_err *err)
{
	c->gfd = open(graphroot(c), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->gfd < 0)
		return lf_err_set(err, -errno, "'%s': store %s: %s", c->label,
				  graphroot(c), strerror(errno));
	c->rfd = c->conf.runroot ? open(c->conf.runroot,
					O_RDONLY | O_DIRECTORY | O_CLOEXEC)
				 : -1;
	return 0;
}

/* --- choosing the image ---------------------------------------------- */

static size_t nimages(const struct cstore *c)
{
	return json_array_size(c->images);
}

static const char *image_id(const struct cstore *c, size_t i)
{
	const char *id = str_field(json_array_get(c->images, i), "id");

	return id ? id : "";
}

/* The one image whose ID starts with `p` (n bytes): its index, -ENOENT,
 * or -EEXIST when several do. */
static int by_id_prefix(const struct cstore *c, const char *p, size_t n)
{
	size_t i;
	int found = -ENOENT;

	for (i = 0; i < nimages(c); i++) {
		if (strncmp(image_id(c, i), p, n))
			continue;
		if (found >= 0)
			return -EEXIST;
		found = (int)i;
	}
	return found;
}

/* Does image i list `digest` (its digest or one of its digests)? */
static bool has_digest(const struct cstore *c, size_t i, const char *digest)
{
	json_t *o = json_array_get(c->images, i), *v;
	const char *d = str_field(o, "digest");
	size_t k;

	if (d && !strcmp(d, digest))
		return true;
	json_array_foreach(json_object_get(o, "digests"), k,
			   v) if (json_is_string(v) &&
				  !strcmp(json_string_value(v),
					  digest)) return true;
	return false;
}

/* The repository of a stored name "host/repo:tag" (length). */
static size_t repo_len(const char *name)
{
	size_t n = strcspn(name, "@");
	const char *slash = memrchr(name, '/', n);
	const char *colon = memrchr(slash ? slash : name, ':',
				    n - (size_t)((slash ? slash : name) -
						 name));

	return colon ? (size_t)(colon - name) : n;
}

/*
 * How well stored `name` matches what was asked: 3 the normalized name
 * (docker.io/library/x:latest), 2 localhost/NAME, 1 any registry's
 * .../NAME (podman's short names), 0 not.  `full` is "host/repo" and
 * `tag` the tag (NULL with a digest); `shortp` the name as written when it
 * had no registry, else NULL.
 */
static int name_rank(const char *name, const char *full, const char *shortp,
		     const char *tag)
{
	size_t rl = repo_len(name), fl = strlen(full), sl;
	const char *ntag = name[rl] == ':' ? name + rl + 1 : NULL;
	bool tag_ok = !tag || (ntag && !strcmp(ntag, tag));

	if (!tag_ok)
		return 0;
	if (rl == fl && !strncmp(name, full, fl))
		return 3;
	if (!shortp)
		return 0;
	sl = strlen(shortp);
	if (rl == sl + 10 && !strncmp(name, "localhost/", 10) &&
	    !strncmp(name + 10, shortp, sl))
		return 2;
	if (rl > sl && name[rl - sl - 1] == '/' &&
	    !strncmp(name + rl - sl, shortp, sl))
		return 1;
	return 0;
}

/* The image a name (NAME[:TAG][@DIGEST]) names: its index or -errno. */
static int by_name(struct cstore *c, const char *ref, struct lf_err *err)
{
	struct lf_imgref d;
	char *arg = NULL, *full = NULL, *shortp = NULL;
	int best = 0, found = -ENOENT, ret;
	size_t i, k;
	json_t *v;

	if (asprintf(&arg, "docker://%s", ref) < 0)
		return oom(err);
	ret = lf_imgref_parse(arg, &d, err);
	free(arg);
	if (ret)
		return lf_err_set(err, -EINVAL,
				  "'%s': '%.200s' is not an image name, ID or "
				  "digest",
				  c->label, ref);
	if (asprintf(&full, "%s/%s", d.host, d.repo) < 0)
		goto nomem;
	/* no registry written: a short name, matched as podman does */
	if (!strcmp(d.host, "docker.io") && strncmp(ref, "docker.io/", 10)) {
		size_t n = strcspn(ref, "@");
		const char *slash = memrchr(ref, '/', n);
		const char *colon = memrchr(slash ? slash : ref, ':',
					    n - (size_t)((slash ? slash : ref) -
							 ref));

		if (!(shortp = strndup(ref, colon ? (size_t)(colon - ref) : n)))
			goto nomem;
	}
	for (i = 0; i < nimages(c); i++) {
		json_array_foreach(json_object_get(json_array_get(c->images, i),
						   "names"),
				   k, v)
		{
			int r = json_is_string(v)
					? name_rank(json_string_value(v), full,
						    shortp, d.tag)
					: 0;

			if (r && d.digest && !has_digest(c, i, d.digest))
				r = 0;
			if (r > best) {
				best = r;
				found = (int)i;
			} else if (r && r == best && found != (int)i) {
				found = -EEXIST;
			}
		}
	}
	if (found == -EEXIST)
		ret = lf_err_set(err, -EINVAL,
				 "'%s': '%.200s' names several images of store "
				 "%s: write its registry or its ID",
				 c->label, ref, graphroot(c));
	else
		ret = found;
	goto out;
nomem:
	ret = oom(err);
out:
	lf_imgref_release(&d);
	free(full);
	free(shortp);
	return ret;
}

/*
 * IMAGE as containers/image's storage transport reads it: a trailing @ID
 * (full, or a prefix of an image's), or a whole ID or ID prefix (3+ hex
 * digits, no '@' or ':'), else a name with an optional tag and digest.
 */
static int choose(struct cstore *c, const char *image, struct lf_err *err)
{
	const char *at = strrchr(image, '@');
	char *name = NULL;
	int i = -ENOENT;

	if (at && !strchr(at + 1, ':')) {
		size_t n = strlen(at + 1);

		if (n < MIN_ID_PREFIX || n > ID_LEN || !is_hex_id(at + 1, n) ||
		    (i = by_id_prefix(c, at + 1, n)) == -EEXIST)
			return lf_err_set(err, -EINVAL,
					  "'%s': '%.80s' does not look like an "
					  "image ID or digest, or names "
					  "several images",
					  c->label, at + 1);
		if (i < 0)
			goto none;
		c->image = json_array_get(c->images, (size_t)i);
		return 0;
	}
	if (strlen(image) >= MIN_ID_PREFIX && strlen(image) <= ID_LEN &&
	    is_hex_id(image, strlen(image)) &&
	    (i = by_id_prefix(c, image, strlen(image))) >= 0) {
		c->image = json_array_get(c->images, (size_t)i);
		return 0;
	}
	if (!(name = strdup(image)))
		return oom(err);
	i = by_name(c, name, err);
	free(name);
	if (i >= 0) {
		c->image = json_array_get(c->images, (size_t)i);
		return 0;
	}
	if (i != -ENOENT)
		return i;
none:
	return lf_err_set(err, -ENOENT, "'%s': no image '%.200s' in store %s",
			  c->label, image, graphroot(c));
}

/* The name the image was found by, for lf_image_ref(). */
static int set_ref(struct cstore *c, struct lf_err *err)
{
	json_t *names = json_object_get(c->image, "names");
	json_t *first = json_array_get(names, 0);

	if (!json_is_string(first))
		return 0;
	return (c->img->ref = strdup(json_string_value(first))) ? 0 : oom(err);
}

/* --- the config -------------------------------------------------------- */

/* containers/storage's file name for a "big data" key: the key itself
 * when it is all [0-9a-z.], else '=' and its base64. */
static int bigdata_name(const char *key, char *out, size_t len)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqr"
				  "stuvwxyz0123456789+/";
	size_t n = strlen(key), i, o = 0;
	bool plain = true;

	for (i = 0; i < n; i++)
		if (key[i] != '.' && !isdigit((unsigned char)key[i]) &&
		    !(key[i] >= 'a' && key[i] <= 'z'))
			plain = false;
	if (plain)
		return snprintf(out, len, "%s", key) < (int)len ? 0 : -1;
	if (len < 2 + (n + 2) / 3 * 4)
		return -1;
	out[o++] = '=';
	for (i = 0; i < n; i += 3) {
		unsigned v = (unsigned char)key[i] << 16;

		v |= i + 1 < n ? (unsigned)(unsigned char)key[i + 1] << 8 : 0;
		v |= i + 2 < n ? (unsigned char)key[i + 2] : 0;
		out[o++] = b64[(v >> 18) & 63];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? b64[v & 63] : '=';
	}
	out[o] = '\0';
	return 0;
}

static int load_config(struct cstore *c, const char *id, struct lf_err *err)
{
	struct lf_image *img = c->img;
	char key[80], name[128], rel[256], want[LF_DIGEST_LEN];
	json_t *doc = NULL;
	int ret;

	snprintf(key, sizeof(key), "sha256:%s", id);
	if (bigdata_name(key, name, sizeof(name)))
		return lf_err_set(err, -EINVAL, "'%s': bad image ID", c->label);
	snprintf(rel, sizeof(rel), "%s-images/%s/%s", c->conf.driver, id, name);
	ret = read_json(c, c->gfd, graphroot(c), rel, LF_IMAGE_CONFIG_MAX,
			false, &doc, &img->config_json, &img->config_len, err);
	json_decref(doc);
	if (ret)
		return ret;
	if (lf_sha256_mem(img->config_json, img->config_len,
			  img->config_digest))
		return oom(err);
	/* the image ID is its config's digest */
	snprintf(want, sizeof(want), "sha256:%s", id);
	if (strcmp(want, img->config_digest))
		return lf_err_set(err, -EINVAL,
				  "'%s': %s/%s does not match its digest: the "
				  "image ID says %s, the file hashes to %s",
				  c->label, graphroot(c), rel, want,
				  img->config_digest);
	ret = lf_image_parse_config(img->config_json, img->config_len, rel,
				    &img->config, err);
	return ret ? lf_err_prefix(err, "'%s'", c->label) : 0;
}

/* --- the layers -------------------------------------------------------- */

/* Append the records of a layers.json (an array of objects). */
static int add_records(struct cstore *c, json_t *a, const char *what,
		       struct lf_err *err)
{
	size_t i, n = json_array_size(a);
	struct layer_rec *p;
	json_t *o;

	if (!a)
		return 0;
	if (!json_is_array(a))
		return lf_err_set(err, -EINVAL, "'%s': %s: not a JSON array",
				  c->label, what);
	p = realloc(c->recs, (c->nrecs + n + 1) * sizeof(*p));
	if (!p)
		return oom(err);
	c->recs = p;
	json_array_foreach(a, i, o)
	{
		json_t *sz = json_object_get(o, "diff-size");
		struct layer_rec *r = &c->recs[c->nrecs];

		r->id = str_field(o, "id");
		r->parent = str_field(o, "parent");
		r->diff_digest = str_field(o, "diff-digest");
		r->incomplete = json_is_true(
			json_object_get(json_object_get(o, "flags"),
					"incomplete"));
		r->diff_size = json_is_integer(sz) && json_integer_value(sz) > 0
				       ? (uint64_t)json_integer_value(sz)
				       : 0;
		if (!r->id)
			return lf_err_set(err, -EINVAL,
					  "'%s': %s: layer %zu has no id",
					  c->label, what, i + 1);
		c->nrecs++;
	}
	return 0;
}

static int load_layers(struct cstore *c, struct lf_err *err)
{
	char rel[3][96];
	int ret = 0;
	size_t k;

	snprintf(rel[0], sizeof(rel[0]), "%s-layers/layers.json",
		 c->conf.driver);
	snprintf(rel[1], sizeof(rel[1]), "%s-layers/volatile-layers.json",
		 c->conf.driver);
	ret = read_json(c, c->gfd, graphroot(c), rel[0], STORE_JSON_MAX, false,
			&c->ljson[0], NULL, NULL, err);
	if (!ret)
		ret = read_json(c, c->gfd, graphroot(c), rel[1], STORE_JSON_MAX,
				true, &c->ljson[1], NULL, NULL, err);
	/* a transient store keeps its volatile layers in the runroot */
	if (!ret && c->rfd >= 0)
		ret = read_json(c, c->rfd, c->conf.runroot, rel[1],
				STORE_JSON_MAX, true, &c->ljson[2], NULL, NULL,
				err);
	for (k = 0; !ret && k < 3; k++)
		ret = add_records(c, c->ljson[k], k ? rel[1] : rel[0], err);
	return ret;
}

static const struct layer_rec *find_rec(const struct cstore *c, const char *id)
{
	size_t i;

	for (i = 0; i < c->nrecs; i++)
		if (!strcmp(c->recs[i].id, id))
			return &c->recs[i];
	return NULL;
}

/* The layer chain of the image, bottom first, into *out (n of them). */
static int chain(struct cstore *c, const struct layer_rec ***out, size_t *n,
		 struct lf_err *err)
{
	const char *id = str_field(c->image, "layer");
	const struct layer_rec **v = NULL, *r;
	size_t k = 0, i;

	*out = NULL;
	*n = 0;
	if (!id || !id[0])
		return 0; /* an image of no layer */
	v = calloc(c->nrecs + 1, sizeof(*v));
	if (!v)
		return oom(err);
	for (; id && id[0]; id = r->parent) {
		if (!(r = find_rec(c, id))) {
			free(v);
			return lf_err_set(err, -EINVAL,
					  "'%s': layer %.80s is not in "
					  "%s/%s-layers/layers.json",
					  c->label, id, graphroot(c),
					  c->conf.driver);
		}
		if (k == c->nrecs || k == LF_IMAGE_MAX_LAYERS) {
			free(v);
			return lf_err_set(err, -ELOOP,
					  "'%s': %s/%s-layers/layers.json: the "
					  "parent chain of layer %.80s loops "
					  "or "
					  "is longer than %d layers",
					  c->label, graphroot(c),
					  c->conf.driver,
					  str_field(c->image, "layer"),
					  LF_IMAGE_MAX_LAYERS);
		}
		v[k++] = r;
	}
	for (i = 0; i < k / 2; i++) {
		r = v[i];
		v[i] = v[k - 1 - i];
		v[k - 1 - i] = r;
	}
	*out = v;
	*n = k;
	return 0;
}

/* The layer's directory below the graphroot: checked to be a directory
 * reached without a symlink; its full path into *path. */
static int layer_dir(struct cstore *c, const char *rel, char **path,
		     struct lf_err *err)
{
	int fd = open_below(c->gfd, rel, true);
	struct stat a, b;

	if (fd < 0)
		return lf_err_set(err, fd == -ENOENT ? -ENOENT : fd,
				  "'%s': %s/%s: %s", c->label, graphroot(c),
				  rel, why(fd));
	if (asprintf(path, "%s/%s", graphroot(c), rel) < 0) {
		*path = NULL;
		close(fd);
		return oom(err);
	}
	/* the path lf_index_open_dir() will open must be this directory */
	if (fstat(fd, &a) || stat(*path, &b) || a.st_dev != b.st_dev ||
	    a.st_ino != b.st_ino) {
		close(fd);
		return lf_err_set(err, -EXDEV,
				  "'%s': %s changed while it was read",
				  c->label, *path);
	}
	close(fd);
	return 0;
}

static int fill_layers(struct cstore *c, struct lf_err *err)
{
	struct lf_image *img = c->img;
	const struct layer_rec **v = NULL;
	bool vfs = !strcmp(c->conf.driver, "vfs");
	size_t n, i;
	int ret;

	if ((ret = chain(c, &v, &n, err)))
		return ret;
	if (img->config.ndiff_ids != n) {
		ret = lf_err_set(err, -EINVAL,
				 "'%s': the config lists %zu diff_ids, the "
				 "store "
				 "has %zu layers for the image",
				 c->label, img->config.ndiff_ids, n);
		goto out;
	}
	img->layers = calloc(n ? n : 1, sizeof(*img->layers));
	if (!img->layers) {
		ret = oom(err);
		goto out;
	}
	img->nlayers = n;
	for (i = 0; !ret && i < n; i++) {
		struct lf_image_layer *l = &img->layers[i];
		const struct lf_image_history *h =
			i < img->config.nhist ? &img->config.hist[i] : NULL;
		char rel[160];
		char *dir = NULL;

		if (strlen(v[i]->id) != ID_LEN ||
		    !is_hex_id(v[i]->id, ID_LEN)) {
			ret = lf_err_set(err, -EINVAL,
					 "'%s': layer %zu: bad layer ID "
					 "'%.80s'",
					 c->label, i + 1, v[i]->id);
			break;
		}
		if (v[i]->incomplete) {
			ret = lf_err_set(err, -EINVAL,
					 "'%s': layer %zu (%s) is incomplete "
					 "in "
					 "the store (an interrupted pull or "
					 "build)",
					 c->label, i + 1, v[i]->id);
			break;
		}
		if (v[i]->diff_digest &&
		    strcmp(v[i]->diff_digest, img->config.diff_ids[i])) {
			ret = lf_err_set(err, -EINVAL,
					 "'%s': layer %zu (%s): the store says "
					 "its diff digest is %.80s, the config "
					 "says %s",
					 c->label, i + 1, v[i]->id,
					 v[i]->diff_digest,
					 img->config.diff_ids[i]);
			break;
		}
		snprintf(rel, sizeof(rel),
			 vfs ? "vfs/dir/%s" : "overlay/%s/diff", v[i]->id);
		memcpy(l->diff_id, img->config.diff_ids[i], LF_DIGEST_LEN);
		memcpy(l->digest, l->diff_id, LF_DIGEST_LEN);
		l->media_type = strdup("");
		l->source = strdup(rel);
		if (!l->media_type || !l->source) {
			ret = oom(err);
			break;
		}
		if ((ret = layer_dir(c, rel, &dir, err))) {
			free(dir);
			break;
		}
		l->dir = dir;
		l->dir_full = vfs;
		l->size = v[i]->diff_size;
		l->created_by = h ? h->created_by : NULL;
		l->created = h ? h->created : NULL;
		l->comment = h ? h->comment : NULL;
	}
out:
	free(v);
	return ret;
}

static int open_store(struct cstore *c, const struct lf_imgref *r,
		      struct lf_err *err)
{
	const char *id, *digest;
	char rel[96];
	int ret;

	if ((ret = lf_cstore_locate(r->driver, r->graphroot, r->runroot,
				    &c->conf, err)))
		return lf_err_prefix(err, "'%s'", c->label);
	if ((ret = open_roots(c, err)) || (ret = pick_driver(c, err)))
		return ret;
	snprintf(rel, sizeof(rel), "%s-images/images.json", c->conf.driver);
	ret = read_json(c, c->gfd, graphroot(c), rel, STORE_JSON_MAX, false,
			&c->images, NULL, NULL, err);
	if (ret)
		return ret;
	if (!json_is_array(c->images))
		return lf_err_set(err, -EINVAL, "'%s': %s/%s: not a JSON array",
				  c->label, graphroot(c), rel);
	if ((ret = choose(c, r->image, err)))
		return ret;
	id = str_field(c->image, "id");
	if (!id || strlen(id) != ID_LEN || !is_hex_id(id, ID_LEN))
		return lf_err_set(err, -EINVAL,
				  "'%s': %s/%s: an image has a bad ID '%.80s'",
				  c->label, graphroot(c), rel, id ? id : "");
	digest = str_field(c->image, "digest");
	if (digest && lf_digest_valid(digest))
		snprintf(c->img->manifest_digest,
			 sizeof(c->img->manifest_digest), "%s", digest);
	if ((ret = set_ref(c, err)) || (ret = load_config(c, id, err)) ||
	    (ret = load_layers(c, err)))
		return ret;
	return fill_layers(c, err);
}

int lf_image_cstore_open(struct lf_image *img, const struct lf_imgref *r,
			 struct lf_err *err)
{
	struct cstore c = {
		.img = img, .label = img->path, .gfd = -1, .rfd = -1
	};
	size_t k;
	int ret;

	img->format = "containers-storage";
	ret = open_store(&c, r, err);
	if (c.gfd >= 0)
		close(c.gfd);
	if (c.rfd >= 0)
		close(c.rfd);
	json_decref(c.images);
	for (k = 0; k < LF_ARRAY_SIZE(c.ljson); k++)
		json_decref(c.ljson[k]);
	free(c.recs);
	lf_cstore_conf_release(&c.conf);
	return ret;
}

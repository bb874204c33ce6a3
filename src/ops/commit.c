// SPDX-License-Identifier: MIT
/* commit.c - a new image from kept base layers plus one new layer. */
#include "layerfs/commit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "commit_internal.h"
#include "layerfs/whiteout.h"

#define COPY_CHUNK (1u << 20)
#define TMP_BLOB ".blob.tmp"

/* Everything one commit holds while it builds the image. */
struct job {
	const struct lf_commit_opts *opts;
	struct lf_err *err;
	struct lf_buf stage;	    /* OUT.tmp.XXXXXX: the layout being built */
	struct lf_buf tarpath;	    /* docker-archive: the tar, OUT.tmp.* */
	int sfd;		    /* stage dir */
	int bfd;		    /* stage/blobs/sha256 */
	struct commit_desc *layers; /* kept layers, then the new one */
	size_t nlayers;
	struct commit_desc config, manifest;
	char *tag;	 /* --tag, with ":latest" added when bare */
	const char *ref; /* the OCI ref.name: NAME:TAG whole */
	char created[32];
	int64_t mtime; /* of the docker-archive members */
};

/* --- host helpers -------------------------------------------------------- */

/* rm -r of a directory we made ourselves (dirfd-relative, no following). */
static void remove_tree(int dfd, const char *name)
{
	int fd = openat(dfd, name,
			O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct dirent *de;
	DIR *dp;

	if (fd < 0) {
		unlinkat(dfd, name, 0);
		return;
	}
	if (!(dp = fdopendir(fd))) {
		close(fd);
		return;
	}
	while ((de = readdir(dp))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (unlinkat(fd, de->d_name, 0) < 0 && errno == EISDIR)
			remove_tree(fd, de->d_name);
	}
	closedir(dp);
	unlinkat(dfd, name, AT_REMOVEDIR);
}

/* Move the finished OUT.tmp.* into place, never over something that is
 * there by now (another process may have created OUT meanwhile). */
static int publish(const char *from, const char *to, struct lf_err *err)
{
	struct stat st;

	if (!renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE))
		return 0;
	if (errno == EEXIST)
		return lf_err_set(err, -EEXIST, "'%s' exists", to);
	if (errno != EINVAL && errno != ENOSYS)
		return lf_err_set(err, -errno, "cannot rename '%s' to '%s': %s",
				  from, to, strerror(errno));
	/* a filesystem without RENAME_NOREPLACE: check, then rename */
	if (!lstat(to, &st))
		return lf_err_set(err, -EEXIST, "'%s' exists", to);
	if (rename(from, to) < 0)
		return lf_err_set(err, -errno, "cannot rename '%s' to '%s': %s",
				  from, to, strerror(errno));
	return 0;
}

/* Rename blobs/sha256/TMP_BLOB to its digest (after fsync). */
static int seal_blob(struct job *j, int fd, const char *digest)
{
	int ret = 0;

	if (fsync(fd) < 0)
		ret = -errno;
	if (close(fd) < 0 && !ret)
		ret = -errno;
	if (!ret && renameat(j->bfd, TMP_BLOB, j->bfd, digest + 7) < 0)
		ret = -errno;
	if (ret)
		return lf_err_set(j->err, ret, "'%s': cannot write blob %s: %s",
				  j->stage.data, digest, strerror(-ret));
	return 0;
}

static int new_blob_fd(struct job *j, int *fd)
{
	*fd = openat(j->bfd, TMP_BLOB,
		     O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
		     0644);
	if (*fd < 0)
		return lf_err_set(j->err, -errno,
				  "'%s': cannot create a blob: "
				  "%s",
				  j->stage.data, strerror(errno));
	return 0;
}

/* A JSON document as a blob; its descriptor goes to *d. */
static int put_blob(struct job *j, const struct lf_buf *b,
		    const char *media_type, struct commit_desc *d)
{
	int fd, ret;

	if ((ret = new_blob_fd(j, &fd)))
		return ret;
	if ((ret = lf_write_all(fd, b->data, b->len))) {
		close(fd);
		return lf_err_set(j->err, ret, "'%s': cannot write a blob: %s",
				  j->stage.data, strerror(-ret));
	}
	d->media_type = media_type;
	d->size = b->len;
	lf_sha256_mem(b->data, b->len, d->digest);
	return seal_blob(j, fd, d->digest);
}

static int put_file(struct job *j, const char *name, const struct lf_buf *b)
{
	int fd = openat(j->sfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			0644);
	int ret;

	if (fd < 0)
		return lf_err_set(j->err, -errno, "'%s': cannot create %s: %s",
				  j->stage.data, name, strerror(errno));
	ret = lf_write_all(fd, b->data, b->len);
	if (!ret && fsync(fd) < 0)
		ret = -errno;
	close(fd);
	if (ret)
		return lf_err_set(j->err, ret, "'%s': cannot write %s: %s",
				  j->stage.data, name, strerror(-ret));
	return 0;
}

/* --- the layers ---------------------------------------------------------- */

/* A kept layer's media type: as the base manifest says, else (legacy
 * docker-archive, which states none) by its magic bytes. */
static const char *sniff_media_type(const unsigned char *p, size_t n)
{
	if (n >= 2 && p[0] == 0x1f && p[1] == 0x8b)
		return COMMIT_MT_LAYER_GZIP;
	if (n >= 4 && p[0] == 0x28 && p[1] == 0xb5 && p[2] == 0x2f &&
	    p[3] == 0xfd)
		return COMMIT_MT_LAYER_ZSTD;
	return COMMIT_MT_LAYER;
}

/*
 * Copy layer i's blob byte for byte (from a layout file or from its range
 * inside an archive) and hash it on the way: legacy docker-archive layers
 * state no digest, and a stated one is checked, so a damaged base never
 * becomes a new image that lies about its content.
 */
static int copy_layer(struct job *j, const struct lf_image_layer *l, size_t i,
		      unsigned char *buf, struct commit_desc *d)
{
	uint64_t off = 0, size;
	struct lf_sha256 *h;
	int fd, ret;

	/* a containers-storage layer is a directory: there is no blob */
	if (!l->blob)
		return lf_err_set(j->err, -EOPNOTSUPP,
				  "layer %zu (%s) is a directory of a "
				  "containers-storage store, not a blob that "
				  "commit can copy",
				  i + 1, l->source);
	size = lf_vfile_size(l->blob);
	if (lf_sha256_new(&h))
		return lf_err_set(j->err, -ENOMEM, "out of memory");
	if ((ret = new_blob_fd(j, &fd)))
		goto out;
	while (off < size) {
		ssize_t n = lf_vfile_pread(l->blob, buf, COPY_CHUNK, off);

		if (n <= 0) {
			ret = lf_err_set(j->err, n ? (int)n : -EIO,
					 "layer %zu:"
					 " cannot read blob %s: %s",
					 i + 1, l->source,
					 n ? strerror((int)-n)
					   : "unexpected end");
			goto fail;
		}
		if (!off)
			d->media_type = sniff_media_type(buf, (size_t)n);
		lf_sha256_update(h, buf, (size_t)n);
		if ((ret = lf_write_all(fd, buf, (size_t)n))) {
			lf_err_set(j->err, ret,
				   "'%s': cannot write layer %zu:"
				   " %s",
				   j->stage.data, i + 1, strerror(-ret));
			goto fail;
		}
		off += (uint64_t)n;
	}
	lf_sha256_final(h, d->digest);
	if (l->digest[0] && strcmp(l->digest, d->digest)) {
		ret = lf_err_set(j->err, -EIO,
				 "layer %zu: blob %s: digest "
				 "mismatch: manifest says %s, blob is %s",
				 i + 1, l->source, l->digest, d->digest);
		goto fail;
	}
	if (l->media_type && l->media_type[0])
		d->media_type = l->media_type;
	else if (!size)
		d->media_type = COMMIT_MT_LAYER;
	d->size = size;
	ret = seal_blob(j, fd, d->digest);
	goto out;
fail:
	close(fd);
out:
	lf_sha256_free(h);
	return ret;
}

static int new_layer(struct job *j, const struct commit_src *src,
		     struct commit_layer *cl)
{
	struct commit_desc *d = &j->layers[j->nlayers - 1];
	int fd, ret;

	if ((ret = new_blob_fd(j, &fd)))
		return ret;
	ret = lf_commit_write_layer(src, fd, j->stage.data, cl, j->err);
	if (ret) {
		close(fd);
		return ret;
	}
	d->media_type = COMMIT_MT_LAYER_GZIP;
	memcpy(d->digest, cl->digest, LF_DIGEST_LEN);
	d->size = cl->size;
	return seal_blob(j, fd, d->digest);
}

/* --- the documents ------------------------------------------------------- */

/* RFC 3339 of the newest mtime in the new layer: reproducible, unlike now */
static void format_created(int64_t t, char out[32])
{
	struct tm tm;
	time_t tt;

	if (t < 0)
		t = 0;
	if (t > 253402300799LL) /* 9999-12-31T23:59:59Z */
		t = 253402300799LL;
	tt = (time_t)t;
	if (!gmtime_r(&tt, &tm) ||
	    !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, 32, "1970-01-01T00:00:00Z");
}

static int documents(struct job *j, const struct lf_image *img, size_t nkept,
		     const char *new_diff_id)
{
	const char **ids = calloc(nkept + 1, sizeof(*ids));
	struct commit_config c = { 0 };
	struct lf_buf b;
	size_t i;
	int ret;

	lf_buf_init(&b);
	if (!ids) {
		ret = lf_err_set(j->err, -ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < nkept; i++)
		ids[i] = lf_image_layer(img, i)->diff_id;
	ids[nkept] = new_diff_id;
	c.base = lf_image_config_json(img, &c.base_len);
	c.diff_ids = ids;
	c.ndiff = nkept + 1;
	c.nkept = nkept;
	c.all_kept = !j->opts->squash && nkept == lf_image_layer_count(img);
	c.message = j->opts->message ? j->opts->message : "layerfs commit";
	c.created = j->created;
	if ((ret = lf_commit_json_config(&c, &b, j->err)) ||
	    (ret = put_blob(j, &b, COMMIT_MT_CONFIG, &j->config)))
		goto out;
	if ((ret = lf_commit_json_manifest(&j->config, j->layers, j->nlayers,
					   &b, j->err)) ||
	    (ret = put_blob(j, &b, COMMIT_MT_MANIFEST, &j->manifest)))
		goto out;
	/* docker-archive: Docker 25 also names the image in full */
	if ((ret = lf_commit_json_index(&j->manifest, j->ref,
					j->opts->format ==
							LF_COMMIT_DOCKER_ARCHIVE
						? j->tag
						: NULL,
					&b, j->err)) ||
	    (ret = put_file(j, "index.json", &b)))
		goto out;
	if ((ret = lf_commit_json_layout(&b, j->err)) ||
	    (ret = put_file(j, "oci-layout", &b)))
		goto out;
	if (j->opts->format == LF_COMMIT_DOCKER_ARCHIVE &&
	    ((ret = lf_commit_json_docker(j->config.digest, j->layers,
					  j->nlayers, j->tag, &b, j->err)) ||
	     (ret = put_file(j, "manifest.json", &b))))
		goto out;
out:
	free(ids);
	lf_buf_release(&b);
	return ret;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* docker-archive: the staged layout as one tar, members in a fixed order */
static int write_archive(struct job *j)
{
	size_t n = 0, i, nb = j->nlayers + 2;
	char **names = calloc(nb + 5, sizeof(*names));
	char tmpl[] = "XXXXXX";
	int fd = -1, ret = 0;

	if (!names ||
	    lf_buf_addf(&j->tarpath, "%s.tmp.%s", j->opts->out, tmpl)) {
		ret = lf_err_set(j->err, -ENOMEM, "out of memory");
		goto out;
	}
	fd = mkostemp(j->tarpath.data, O_CLOEXEC);
	if (fd < 0) {
		ret = lf_err_set(j->err, -errno, "cannot create '%s': %s",
				 j->tarpath.data, strerror(errno));
		lf_buf_reset(&j->tarpath);
		goto out;
	}
	names[n++] = strdup("blobs/");
	names[n++] = strdup("blobs/sha256/");
	for (i = 0; i < j->nlayers; i++)
		names[n++] = strdup(j->layers[i].digest + 7);
	names[n++] = strdup(j->config.digest + 7);
	names[n++] = strdup(j->manifest.digest + 7);
	for (i = 0; i < n; i++)
		if (!names[i]) {
			ret = lf_err_set(j->err, -ENOMEM, "out of memory");
			goto out;
		}
	/* blobs by name, each once (a base may list one blob twice) */
	qsort(names + 2, nb, sizeof(*names), cmp_str);
	for (i = 3, n = 3; i < nb + 2; i++) {
		if (!strcmp(names[i], names[n - 1])) {
			free(names[i]);
			continue;
		}
		names[n++] = names[i];
	}
	for (i = n; i < nb + 2; i++)
		names[i] = NULL; /* moved or freed above */
	for (i = 2; i < n; i++) {
		char *p = malloc(strlen(names[i]) + 14);

		if (!p) {
			ret = lf_err_set(j->err, -ENOMEM, "out of memory");
			goto out;
		}
		sprintf(p, "blobs/sha256/%s", names[i]);
		free(names[i]);
		names[i] = p;
	}
	names[n++] = strdup("index.json");
	names[n++] = strdup("manifest.json");
	names[n++] = strdup("oci-layout");
	for (i = n - 3; i < n; i++)
		if (!names[i]) {
			ret = lf_err_set(j->err, -ENOMEM, "out of memory");
			goto out;
		}
	ret = lf_commit_write_dir_tar(j->sfd, (const char *const *)names, n,
				      j->mtime, fd, j->tarpath.data, j->err);
	if (!ret && fsync(fd) < 0)
		ret = lf_err_set(j->err, -errno, "cannot write '%s': %s",
				 j->tarpath.data, strerror(errno));
out:
	if (fd >= 0)
		close(fd);
	for (i = 0; names && i < nb + 5; i++)
		free(names[i]);
	free(names);
	return ret;
}

/* --- setup --------------------------------------------------------------- */

/*
 * --tag NAME[:TAG]: docker's reading, a bare NAME means NAME:latest (a ':'
 * before the last '/' is a registry port).  The OCI ref.name annotation
 * gets NAME:TAG whole, as skopeo and podman write `oci:DIR:NAME:TAG`: then
 * `skopeo ... oci:OUT:NAME:TAG`, umoci's `--image OUT:NAME:TAG` and
 * `podman load` (which takes a bare tag for a name) all find it.
 */
static int parse_tag(struct job *j, const char *tag)
{
	const char *slash, *colon;

	if (!tag)
		return 0;
	if (!*tag || strchr(tag, '@') || strpbrk(tag, " \t\n"))
		return lf_err_set(j->err, -EINVAL, "invalid tag '%s'", tag);
	slash = strrchr(tag, '/');
	colon = strrchr(tag, ':');
	if (colon && (!slash || colon > slash)) {
		if (!colon[1] || colon == tag)
			return lf_err_set(j->err, -EINVAL, "invalid tag '%s'",
					  tag);
		j->tag = strdup(tag);
	} else if (asprintf(&j->tag, "%s:latest", tag) < 0) {
		j->tag = NULL;
	}
	if (!j->tag)
		return lf_err_set(j->err, -ENOMEM, "out of memory");
	j->ref = j->tag;
	return 0;
}

static int check_args(const struct lf_image *img, size_t nlayers,
		      const char *upper_dir, const struct lf_tree *tree,
		      const struct lf_commit_opts *opts, struct lf_err *err)
{
	struct stat st;

	if (!opts->out || !*opts->out)
		return lf_err_set(err, -EINVAL, "no output path");
	if (nlayers > lf_image_layer_count(img))
		return lf_err_set(err, -EINVAL, "'%s' has %zu layers, not %zu",
				  lf_image_path(img), lf_image_layer_count(img),
				  nlayers);
	if (!opts->squash && !upper_dir)
		return lf_err_set(err, -EINVAL, "no upper directory to commit");
	if (opts->squash && !tree)
		return lf_err_set(err, -EINVAL, "squash needs the merged view");
	if (!lstat(opts->out, &st))
		return lf_err_set(err, -EEXIST, "'%s' exists", opts->out);
	/* lf_upper_new() would create a missing upper dir: a typo must not
	 * commit an empty layer */
	if (upper_dir && stat(upper_dir, &st) < 0)
		return lf_err_set(err, -errno, "upper directory '%s': %s",
				  upper_dir, strerror(errno));
	if (upper_dir && !S_ISDIR(st.st_mode))
		return lf_err_set(err, -ENOTDIR, "upper directory '%s': %s",
				  upper_dir, strerror(ENOTDIR));
	return 0;
}

static int stage(struct job *j)
{
	if (lf_buf_addf(&j->stage, "%s" LF_TMP_SUFFIX, j->opts->out))
		return lf_err_set(j->err, -ENOMEM, "out of memory");
	if (!mkdtemp(j->stage.data)) {
		int e = errno;

		lf_buf_reset(&j->stage);
		return lf_err_set(j->err, -e, "cannot create '%s.tmp.*': %s",
				  j->opts->out, strerror(e));
	}
	j->sfd = open(j->stage.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (j->sfd < 0 || mkdirat(j->sfd, "blobs", 0755) < 0 ||
	    mkdirat(j->sfd, "blobs/sha256", 0755) < 0 ||
	    (j->bfd = openat(j->sfd, "blobs/sha256",
			     O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return lf_err_set(j->err, -errno, "cannot create '%s': %s",
				  j->stage.data, strerror(errno));
	return 0;
}

int lf_commit(const struct lf_stack *stack, const char *upper_dir,
	      const struct lf_commit_opts *opts, struct lf_commit_result *res,
	      struct lf_err *err)
{
	const struct lf_image *img = lf_stack_image(stack);
	size_t nlayers = lf_stack_count(stack);
	struct lf_tree *tree = lf_stack_tree(stack);
	struct job j = { .opts = opts, .err = err, .sfd = -1, .bfd = -1 };
	struct commit_src src = { .owner_uid = opts->owner_uid,
				  .owner_gid = opts->owner_gid,
				  .upper_dir = upper_dir,
				  .stack = stack,
				  .tree = tree };
	struct commit_layer cl = { 0 };
	size_t nkept = opts->squash ? 0 : nlayers, i;
	unsigned char *buf = NULL;
	int ret;

	lf_buf_init(&j.stage);
	lf_buf_init(&j.tarpath);
	if ((ret = check_args(img, nlayers, upper_dir, tree, opts, err)) ||
	    (ret = parse_tag(&j, opts->tag)))
		goto out;
	j.nlayers = nkept + 1;
	j.layers = calloc(j.nlayers, sizeof(*j.layers));
	if (!j.layers || !(buf = malloc(COPY_CHUNK))) {
		ret = lf_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	if ((ret = stage(&j)))
		goto out;
	/* the new layer first: it fails most often (unreadable upper files) */
	if (opts->squash)
		src.kind = upper_dir ? COMMIT_SRC_UPPER : COMMIT_SRC_TREE;
	else
		src.kind = COMMIT_SRC_DIR;
	if ((ret = new_layer(&j, &src, &cl)))
		goto out;
	for (i = 0; i < nkept; i++)
		if ((ret = copy_layer(&j, lf_image_layer(img, i), i, buf,
				      &j.layers[i])))
			goto out;
	format_created(cl.newest_mtime, j.created);
	j.mtime = cl.newest_mtime > 0 ? cl.newest_mtime : 0;
	if ((ret = documents(&j, img, nkept, cl.diff_id)))
		goto out;
	if (fsync(j.bfd) < 0 || fsync(j.sfd) < 0) {
		ret = lf_err_set(err, -errno, "cannot write '%s': %s",
				 j.stage.data, strerror(errno));
		goto out;
	}
	if (opts->format == LF_COMMIT_DOCKER_ARCHIVE)
		ret = write_archive(&j);
	if (!ret)
		ret = publish(opts->format == LF_COMMIT_DOCKER_ARCHIVE
				      ? j.tarpath.data
				      : j.stage.data,
			      opts->out, err);
	if (ret)
		goto out;
	if (opts->format == LF_COMMIT_OCI)
		lf_buf_reset(&j.stage); /* it is OUT now */
	else
		lf_buf_reset(&j.tarpath);
	memcpy(res->layer_digest, cl.digest, LF_DIGEST_LEN);
	memcpy(res->diff_id, cl.diff_id, LF_DIGEST_LEN);
	memcpy(res->manifest_digest, j.manifest.digest, LF_DIGEST_LEN);
	res->layer_size = cl.size;
	res->nlayers = j.nlayers;
out:
	if (j.bfd >= 0)
		close(j.bfd);
	if (j.sfd >= 0)
		close(j.sfd);
	if (j.stage.len)
		remove_tree(AT_FDCWD, j.stage.data);
	if (j.tarpath.len)
		unlink(j.tarpath.data);
	lf_buf_release(&j.stage);
	lf_buf_release(&j.tarpath);
	free(j.layers);
	free(j.tag);
	free(buf);
	return ret;
}

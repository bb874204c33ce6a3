// SPDX-License-Identifier: MIT
/* image_layout.c - the image file store: OCI layout directory or outer tar. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "image_internal.h"
#include "layerfs/path.h"

int lf_image_store_open_dir(struct lf_image_store *st, const char *dir,
			    struct lf_err *err)
{
	memset(st, 0, sizeof(*st));
	lf_buf_init(&st->names);
	st->dir = strdup(dir);
	if (!st->dir)
		return lf_err_set(err, -ENOMEM, "out of memory");
	return 0;
}

void lf_image_store_release(struct lf_image_store *st)
{
	free(st->dir);
	lf_vfile_close(st->archive);
	free(st->members);
	lf_buf_release(&st->names);
	memset(st, 0, sizeof(*st));
	lf_buf_init(&st->names);
}

/*
 * Names come from digests (validated) or from manifest.json (untrusted):
 * either way a name that is absolute or has a ".." component is refused,
 * so no name can point outside the layout or the archive.
 */
static int safe_name(const char *name, struct lf_buf *out)
{
	if (name[0] == '/')
		return -EINVAL;
	return lf_path_normalize(name, strlen(name), out);
}

static int dir_path(const struct lf_image_store *st, const char *name,
		    struct lf_buf *path)
{
	struct lf_buf rel;
	int ret;

	lf_buf_init(&rel);
	ret = safe_name(name, &rel);
	if (!ret)
		ret = lf_buf_addf(path, "%s/%s", st->dir, rel.data);
	lf_buf_release(&rel);
	return ret;
}

bool lf_image_store_has(const struct lf_image_store *st, const char *name)
{
	struct lf_buf path;
	struct stat sb;
	uint64_t off, size;
	bool ok;

	if (st->archive)
		return lf_image_archive_find(st, name, &off, &size) == 0;
	lf_buf_init(&path);
	ok = !dir_path(st, name, &path) && stat(path.data, &sb) == 0 &&
	     S_ISREG(sb.st_mode);
	lf_buf_release(&path);
	return ok;
}

static int archive_blob(const struct lf_image_store *st, const char *name,
			struct lf_vfile **out, struct lf_err *err)
{
	uint64_t off, size;
	char label[1024];
	int ret = lf_image_archive_find(st, name, &off, &size);

	if (ret == -ENOENT)
		return lf_err_set(err, ret, "'%s': %s is missing", st->label,
				  name);
	if (ret == -ELOOP)
		return lf_err_set(err, ret, "'%s': %s: too many links",
				  st->label, name);
	if (ret)
		return lf_err_set(err, ret, "'%s': %s: invalid member name",
				  st->label, name);
	snprintf(label, sizeof(label), "%s:%s", st->label, name);
	/* read in place: a byte range of the archive, nothing extracted */
	return lf_vfile_sub(st->archive, off, size, label, out, err);
}

int lf_image_store_blob(const struct lf_image_store *st, const char *name,
			struct lf_vfile **out, struct lf_err *err)
{
	struct lf_buf path;
	struct stat sb;
	int ret;

	if (st->archive)
		return archive_blob(st, name, out, err);
	lf_buf_init(&path);
	ret = dir_path(st, name, &path);
	if (ret) {
		ret = lf_err_set(err, ret == -ENOMEM ? ret : -EINVAL,
				 "'%s': %s: invalid file name", st->label, name);
		goto out;
	}
	/* say "missing" rather than open()'s wording, as for archives */
	if (stat(path.data, &sb) < 0 && errno == ENOENT) {
		ret = lf_err_set(err, -ENOENT, "'%s': %s is missing",
				 st->label, name);
		goto out;
	}
	ret = lf_vfile_open(path.data, NULL, out, err);
out:
	lf_buf_release(&path);
	return ret;
}

int lf_image_store_read(const struct lf_image_store *st, const char *name,
			char **data, size_t *len, struct lf_err *err)
{
	struct lf_vfile *vf;
	uint64_t size;
	ssize_t n;
	char *p;
	int ret;

	ret = lf_image_store_blob(st, name, &vf, err);
	if (ret)
		return ret;
	size = lf_vfile_size(vf);
	if (size > LF_IMAGE_JSON_MAX) {
		ret = lf_err_set(err, -EFBIG, "'%s': %s is too big (%llu bytes)",
				 st->label, name, (unsigned long long)size);
		goto out;
	}
	p = malloc((size_t)size + 1);
	if (!p) {
		ret = lf_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	n = lf_vfile_pread(vf, p, (size_t)size, 0);
	if (n != (ssize_t)size) {
		free(p);
		ret = lf_err_set(err, n < 0 ? (int)n : -EIO,
				 "'%s': cannot read %s: %s", st->label, name,
				 strerror(n < 0 ? (int)-n : EIO));
		goto out;
	}
	p[size] = '\0';
	*data = p;
	*len = (size_t)size;
out:
	lf_vfile_close(vf);
	return ret;
}

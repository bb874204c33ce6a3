// SPDX-License-Identifier: MIT
/* image_platform.c - choose an image by --ref and a manifest by platform. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "image_internal.h"

bool lf_image_is_index_type(const char *mt)
{
	return !strcmp(mt, "application/vnd.oci.image.index.v1+json") ||
	       !strcmp(mt, "application/"
			   "vnd.docker.distribution.manifest.list.v2+json");
}

/* "docker.io/library/alpine:3" and "alpine:3" name the same image, and
 * so do podman's "localhost/app:1" and "app:1". */
static const char *strip_registry(const char *s)
{
	if (!strncmp(s, "docker.io/library/", 18))
		return s + 18;
	if (!strncmp(s, "docker.io/", 10))
		return s + 10;
	if (!strncmp(s, "localhost/", 10))
		return s + 10;
	return s;
}

/* The tag of "name:tag" (after the last '/'), or NULL. */
static const char *tag_of(const char *s)
{
	const char *slash = strrchr(s, '/');
	const char *colon = strrchr(slash ? slash : s, ':');

	if (strchr(s, '@'))
		return NULL;
	return colon ? colon + 1 : NULL;
}

static bool same_with_latest(const char *a, const char *b)
{
	size_t la = strlen(a);

	/* docker's implicit ":latest" when a name has no tag */
	return !tag_of(a) && !strncmp(a, b, la) && !strcmp(b + la, ":latest");
}

/*
 * exact: the annotation, containerd name or RepoTag as written.  Loose: a
 * "docker.io/[library/]" prefix on either side, an implicit ":latest", or a
 * ref.name annotation that is a bare tag ("3.19") equal to the ref's tag.
 */
bool lf_image_ref_match(const char *name, const char *ref, bool exact)
{
	const char *a, *b, *tag;

	if (!name || !ref)
		return false;
	if (!strcmp(name, ref))
		return true;
	if (exact)
		return false;
	a = strip_registry(name);
	b = strip_registry(ref);
	if (!strcmp(a, b) || same_with_latest(a, b) || same_with_latest(b, a))
		return true;
	tag = tag_of(ref);
	return !strchr(name, '/') && !strchr(name, ':') && tag &&
	       !strcmp(tag, name);
}

void lf_image_host_platform(char *buf, size_t len)
{
	static const struct {
		const char *machine, *platform;
	} map[] = {
		{ "x86_64", "linux/amd64" },
		{ "aarch64", "linux/arm64" },
		{ "arm64", "linux/arm64" },
		{ "armv7l", "linux/arm/v7" },
		{ "armv6l", "linux/arm/v6" },
		{ "i686", "linux/386" },
		{ "i386", "linux/386" },
		{ "ppc64le", "linux/ppc64le" },
		{ "s390x", "linux/s390x" },
		{ "riscv64", "linux/riscv64" },
		{ "mips64", "linux/mips64" },
		{ "loongarch64", "linux/loong64" },
	};
	struct utsname u;
	size_t i;

	snprintf(buf, len, "linux/amd64");
	if (uname(&u) < 0)
		return;
	for (i = 0; i < LF_ARRAY_SIZE(map); i++) {
		if (!strcmp(u.machine, map[i].machine)) {
			snprintf(buf, len, "%s", map[i].platform);
			return;
		}
	}
	snprintf(buf, len, "linux/%s", u.machine);
}

static bool str_eq(const char *a, const char *b)
{
	return !strcmp(a ? a : "", b ? b : "");
}

/* arm64 manifests carry variant "v8" or none: the same thing. */
static bool variant_eq(const char *arch, const char *a, const char *b)
{
	if (str_eq(a, b))
		return true;
	if (strcmp(arch, "arm64"))
		return false;
	return (str_eq(a, "") || str_eq(a, "v8")) &&
	       (str_eq(b, "") || str_eq(b, "v8"));
}

static void list_platforms(const struct lf_image_desc *v, size_t n,
			   struct lf_buf *b)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (!v[i].os || !v[i].arch || !strcmp(v[i].os, "unknown"))
			continue; /* attestation manifests, not images */
		lf_buf_addf(b, "%s%s/%s%s%s", b->len ? ", " : "", v[i].os,
			    v[i].arch, v[i].variant ? "/" : "",
			    v[i].variant ? v[i].variant : "");
	}
	if (!b->len)
		lf_buf_adds(b, "none");
}

int lf_image_pick_platform(const struct lf_image_desc *v, size_t n,
			   const char *platform, const char *label,
			   struct lf_err *err)
{
	char host[64], want[128], *os, *arch, *variant;
	struct lf_buf list;
	int best = -1;
	size_t i;

	if (!platform) {
		lf_image_host_platform(host, sizeof(host));
		platform = host;
	}
	snprintf(want, sizeof(want), "%s", platform);
	os = want;
	arch = strchr(os, '/');
	if (!arch || !arch[1])
		return lf_err_set(err, -EINVAL,
				  "bad platform '%s', expected "
				  "os/arch[/variant]",
				  platform);
	*arch++ = '\0';
	variant = strchr(arch, '/');
	if (variant)
		*variant++ = '\0';
	for (i = 0; i < n && best < 0; i++) {
		if (!str_eq(v[i].os, os) || !str_eq(v[i].arch, arch))
			continue;
		if (!variant || variant_eq(arch, v[i].variant, variant))
			best = (int)i;
	}
	if (best >= 0)
		return best;
	lf_buf_init(&list);
	list_platforms(v, n, &list);
	lf_err_set(err, -ENOENT,
		   "'%s': no image for platform %s, available: %s", label,
		   platform, list.data);
	lf_buf_release(&list);
	return -ENOENT;
}

/* Names listed in a "choose one with --ref" message, at most. */
#define LIST_MAX 32

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* How many distinct keys among the selected: sorted, so n log n. */
static size_t count_images(const char *const *keys, const bool *sel, size_t n)
{
	const char **v = calloc(n ? n : 1, sizeof(*v));
	size_t i, m = 0, images = 0;

	if (!v)
		return 0;
	for (i = 0; i < n; i++)
		if (sel[i])
			v[m++] = keys[i];
	qsort(v, m, sizeof(*v), str_cmp);
	for (i = 0; i < m; i++)
		images += !i || strcmp(v[i], v[i - 1]);
	free(v);
	return images;
}

/*
 * "a:1, b:2" for the distinct images among the selected candidates, the
 * first LIST_MAX of them (then "..."): each candidate is compared with the
 * listed ones only, so a huge index costs n * LIST_MAX, not n * n.
 */
static size_t list_choices(const char *const *names, const char *const *keys,
			   const bool *sel, size_t n, struct lf_buf *b)
{
	size_t listed[LIST_MAX];
	size_t i, j, nl = 0;

	for (i = 0; i < n; i++) {
		bool dup = false;

		if (!sel[i])
			continue;
		for (j = 0; j < nl && !dup; j++) {
			size_t k = listed[j];

			dup = names[i] ? names[k] && !strcmp(names[i], names[k])
				       : !strcmp(keys[i], keys[k]);
		}
		if (dup)
			continue;
		if (nl == LIST_MAX) {
			lf_buf_adds(b, ", ...");
			break;
		}
		listed[nl++] = i;
		lf_buf_addf(b, "%s%s", b->len ? ", " : "",
			    names[i] ? names[i] : keys[i]);
	}
	return count_images(keys, sel, n);
}

static bool all_same_key(const char *const *keys, const bool *sel, size_t n,
			 size_t *first)
{
	size_t i;

	*first = n;
	for (i = 0; i < n; i++) {
		if (!sel[i])
			continue;
		if (*first == n)
			*first = i;
		else if (strcmp(keys[i], keys[*first]))
			return false;
	}
	return *first < n;
}

/* Same-named manifests that all carry platforms: a flattened index. */
static int by_platform(const char *const *names,
		       const struct lf_image_desc *descs, const bool *sel,
		       size_t n, const struct lf_image_opts *opts,
		       const char *label, struct lf_err *err)
{
	struct lf_image_desc *sub;
	const char *name = NULL;
	size_t i, m = 0, *idx;
	int ret = -ENOMEM;

	for (i = 0; i < n; i++) {
		if (!sel[i])
			continue;
		/* different names: a --ref choice, not a platform one */
		if (m++ && !str_eq(names[i], name))
			return -EAGAIN;
		name = names[i];
	}
	m = 0;

	sub = calloc(n, sizeof(*sub));
	idx = calloc(n, sizeof(*idx));
	if (!sub || !idx) {
		lf_err_set(err, ret, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (!sel[i])
			continue;
		if (!descs[i].os) {
			ret = -EAGAIN; /* not a platform set: ambiguous */
			goto out;
		}
		sub[m] = descs[i];
		idx[m++] = i;
	}
	ret = lf_image_pick_platform(sub, m, opts->platform, label, err);
	if (ret >= 0)
		ret = (int)idx[ret];
out:
	free(sub);
	free(idx);
	return ret;
}

static void select_by_ref(const char *const *names, size_t n, const char *ref,
			  bool *sel, size_t *count)
{
	size_t i;

	*count = 0;
	/* exact names first, so a loose match cannot make a choice ambiguous */
	for (i = 0; i < n; i++) {
		sel[i] = lf_image_ref_match(names[i], ref, true);
		*count += sel[i];
	}
	if (*count)
		return;
	for (i = 0; i < n; i++) {
		sel[i] = lf_image_ref_match(names[i], ref, false);
		*count += sel[i];
	}
}

int lf_image_pick(const char *const *names, const char *const *keys,
		  const struct lf_image_desc *descs, size_t n,
		  const struct lf_image_opts *opts, const char *label,
		  struct lf_err *err)
{
	struct lf_buf list;
	size_t i, count = n, first, images;
	bool *sel = calloc(n ? n : 1, sizeof(*sel));
	int ret;

	if (!sel)
		return lf_err_set(err, -ENOMEM, "out of memory");
	lf_buf_init(&list);
	if (!n) {
		ret = lf_err_set(err, -ENOENT, "'%s': the index lists no image",
				 label);
		goto out;
	}
	for (i = 0; i < n; i++)
		sel[i] = true;
	if (opts->ref)
		select_by_ref(names, n, opts->ref, sel, &count);
	if (!count) {
		for (i = 0; i < n; i++)
			sel[i] = true;
		list_choices(names, keys, sel, n, &list);
		ret = lf_err_set(err, -ENOENT,
				 "'%s': no image '%s', choose one with --ref: "
				 "%s",
				 label, opts->ref, list.data);
		goto out;
	}
	if (all_same_key(keys, sel, n, &first)) {
		ret = (int)first;
		goto out;
	}
	if (descs) {
		ret = by_platform(names, descs, sel, n, opts, label, err);
		if (ret != -EAGAIN)
			goto out;
	}
	images = list_choices(names, keys, sel, n, &list);
	ret = lf_err_set(err, -EINVAL,
			 "'%s': %zu images, choose one with --ref: %s", label,
			 images, list.data);
out:
	lf_buf_release(&list);
	free(sel);
	return ret;
}

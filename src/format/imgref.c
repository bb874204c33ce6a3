// SPDX-License-Identifier: MIT
/* imgref.c - IMAGE arguments: paths, file transports, docker:// names. */
#include "layerfs/imgref.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define NAME_MAX_LEN 255 /* the distribution spec's limit on a name */
#define TAG_MAX_LEN 128

static const struct {
	const char *name;
	enum lf_imgref_kind kind;
} transports[] = {
	{ "oci", LF_IMGREF_OCI },
	{ "oci-archive", LF_IMGREF_OCI_ARCHIVE },
	{ "docker-archive", LF_IMGREF_DOCKER_ARCHIVE },
	{ "docker", LF_IMGREF_DOCKER },
	{ "containers-storage", LF_IMGREF_CSTORE },
};

/* Known to skopeo and podman, not read here. */
static const char *const unsupported[] = {
	"dir", "docker-daemon", "ostree", "sif", "tarball",
};

const char *lf_imgref_transport(const struct lf_imgref *r)
{
	size_t i;

	for (i = 0; i < LF_ARRAY_SIZE(transports); i++)
		if (transports[i].kind == r->kind)
			return transports[i].name;
	return "";
}

void lf_imgref_release(struct lf_imgref *r)
{
	free(r->path);
	free(r->ref);
	free(r->host);
	free(r->repo);
	free(r->tag);
	free(r->digest);
	free(r->driver);
	free(r->graphroot);
	free(r->runroot);
	free(r->options);
	free(r->image);
	memset(r, 0, sizeof(*r));
}

static int oom(struct lf_err *err)
{
	return lf_err_set(err, -ENOMEM, "out of memory");
}

/* Shown in messages: the argument's first 200 bytes. */
#define SHOWN "'%.200s%s'"
#define SHOWN_ARGS(a) (a), strlen(a) > 200 ? "..." : ""

static bool lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* A repository path component: [a-z0-9]+ ((.|_|__|-+) [a-z0-9]+)*. */
static bool path_component_ok(const char *s, size_t n)
{
	size_t i = 0, j;

	while (i < n) {
		if (!lower_alnum(s[i]))
			return false;
		while (i < n && lower_alnum(s[i]))
			i++;
		if (i == n)
			return true;
		j = i;
		if (s[i] == '.') {
			i++;
		} else if (s[i] == '_') {
			i += i + 1 < n && s[i + 1] == '_' ? 2 : 1;
		} else if (s[i] == '-') {
			while (i < n && s[i] == '-')
				i++;
		} else {
			return false;
		}
		if (i == n || i == j)
			return false; /* a separator ends the component */
	}
	return n > 0;
}

/* A domain: components of [A-Za-z0-9-] not starting or ending with '-',
 * joined by '.', an optional :port; or a bracketed IPv6 address. */
static bool domain_ok(const char *s, size_t n)
{
	const char *colon = NULL;
	size_t i, start = 0, end = n;

	if (n && s[0] == '[') {
		const char *rb = memchr(s, ']', n);

		if (!rb || rb == s + 1)
			return false;
		for (i = 1; s + i < rb; i++)
			if (!isxdigit((unsigned char)s[i]) && s[i] != ':')
				return false;
		end = (size_t)(rb - s) + 1;
		start = end;
		if (end == n)
			return true;
		colon = s + end;
		if (*colon != ':')
			return false;
	} else {
		colon = memchr(s, ':', n);
		end = colon ? (size_t)(colon - s) : n;
		for (i = 0; i <= end; i++) {
			if (i < end &&
			    (isalnum((unsigned char)s[i]) || s[i] == '-'))
				continue;
			if (i < end && s[i] != '.')
				return false;
			/* a component s[start, i) */
			if (i == start || s[start] == '-' || s[i - 1] == '-')
				return false;
			start = i + 1;
		}
	}
	if (colon) {
		size_t p = (size_t)(colon - s) + 1;

		if (p == n || n - p > 5)
			return false;
		for (; p < n; p++)
			if (!isdigit((unsigned char)s[p]))
				return false;
	}
	return true;
}

static bool tag_ok(const char *s)
{
	size_t i, n = strlen(s);

	if (!n || n > TAG_MAX_LEN || s[0] == '.' || s[0] == '-')
		return false;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' &&
		    s[i] != '.' && s[i] != '-')
			return false;
	return true;
}

static int digest_ok(const char *arg, const char *d, struct lf_err *err)
{
	const char *colon = strchr(d, ':');
	size_t i;

	if (!colon || colon == d)
		return lf_err_set(err, -EINVAL, SHOWN ": bad digest '%.80s'",
				  SHOWN_ARGS(arg), d);
	if ((size_t)(colon - d) != 6 || strncmp(d, "sha256", 6)) {
		for (i = 0; d + i < colon; i++)
			if (!isalnum((unsigned char)d[i]) &&
			    !strchr("+._-", d[i]))
				return lf_err_set(err, -EINVAL,
						  SHOWN ": bad digest '%.80s'",
						  SHOWN_ARGS(arg), d);
		return lf_err_set(err, -EPROTONOSUPPORT,
				  SHOWN ": unsupported digest algorithm "
					"'%.*s'",
				  SHOWN_ARGS(arg), (int)(colon - d), d);
	}
	for (i = 0; colon[1 + i]; i++)
		if (!isdigit((unsigned char)colon[1 + i]) &&
		    !(colon[1 + i] >= 'a' && colon[1 + i] <= 'f'))
			break;
	if (i != 64 || colon[1 + i])
		return lf_err_set(err, -EINVAL,
				  SHOWN ": bad digest '%.80s' (sha256: and 64 "
					"lowercase hex digits)",
				  SHOWN_ARGS(arg), d);
	return 0;
}

/* docker://NAME: [domain/]path[:tag][@digest]. */
static int parse_docker(const char *arg, const char *name, struct lf_imgref *r,
			struct lf_err *err)
{
	const char *at = strchr(name, '@'), *slash, *p, *tagc = NULL;
	size_t nlen, dlen = 0;
	char *buf;
	int ret;

	if (at) {
		if (!(r->digest = strdup(at + 1)))
			return oom(err);
		if ((ret = digest_ok(arg, r->digest, err)))
			return ret;
	}
	nlen = at ? (size_t)(at - name) : strlen(name);
	/* the domain: a first component with '.' or ':', or localhost */
	slash = memchr(name, '/', nlen);
	if (slash) {
		size_t first = (size_t)(slash - name);

		if (memchr(name, '.', first) || memchr(name, ':', first) ||
		    (first == 9 && !strncmp(name, "localhost", 9)) ||
		    (first && name[0] == '['))
			dlen = first;
		else
			for (p = name; p < slash; p++)
				if (isupper((unsigned char)*p))
					dlen = first;
	}
	if (dlen && !domain_ok(name, dlen))
		return lf_err_set(err, -EINVAL,
				  SHOWN ": bad registry host "
					"'%.*s'",
				  SHOWN_ARGS(arg), (int)dlen, name);
	p = dlen ? name + dlen + 1 : name;
	/* the tag: after the last ':' of the path part */
	for (const char *q = p; q < name + nlen; q++)
		if (*q == ':')
			tagc = q;
		else if (*q == '/')
			tagc = NULL;
	if (!(buf = strndup(p, (size_t)((tagc ? tagc : name + nlen) - p))))
		return oom(err);
	r->repo = buf;
	if (tagc &&
	    !(r->tag = strndup(tagc + 1, (size_t)(name + nlen - tagc - 1))))
		return oom(err);
	if (tagc && !tag_ok(r->tag))
		return lf_err_set(err, -EINVAL,
				  SHOWN ": bad tag '%.140s' (up to 128 of "
					"A-Z a-z 0-9 _ . -, not starting with "
					". or -)",
				  SHOWN_ARGS(arg), r->tag);
	for (p = r->repo;; p = slash + 1) {
		slash = strchr(p, '/');
		if (!path_component_ok(p,
				       slash ? (size_t)(slash - p) : strlen(p)))
			return lf_err_set(err, -EINVAL,
					  SHOWN
					  ": bad repository name "
					  "'%.200s' (lowercase letters, digits "
					  "and . _ __ - between them, / "
					  "between "
					  "components)",
					  SHOWN_ARGS(arg), r->repo);
		if (!slash)
			break;
	}
	if (dlen + 1 + strlen(r->repo) > NAME_MAX_LEN)
		return lf_err_set(err, -EINVAL,
				  SHOWN ": name longer than %d bytes",
				  SHOWN_ARGS(arg), NAME_MAX_LEN);
	r->host = dlen ? strndup(name, dlen) : strdup("docker.io");
	if (!r->host)
		return oom(err);
	if (!dlen && !strchr(r->repo, '/')) {
		buf = malloc(strlen(r->repo) + 9);
		if (!buf)
			return oom(err);
		strcpy(buf, "library/");
		strcat(buf, r->repo);
		free(r->repo);
		r->repo = buf;
	}
	if (!r->tag && !r->digest && !(r->tag = strdup("latest")))
		return oom(err);
	return 0;
}

/* A STORE-SPEC part [from, to) as a string, NULL when empty. */
static int spec_part(const char *from, const char *to, char **out)
{
	*out = NULL;
	if (to == from)
		return 0;
	return (*out = strndup(from, (size_t)(to - from))) ? 0 : -ENOMEM;
}

/*
 * containers-storage:[[DRIVER@][GRAPHROOT][+RUNROOT][:OPTIONS]]IMAGE, split
 * as containers/image's storage transport (ParseReference) splits it.
 */
static int parse_cstore(const char *arg, const char *rest, struct lf_imgref *r,
			struct lf_err *err)
{
	const char *spec, *end, *at, *colon, *plus;

	if (rest[0] == '[') {
		spec = rest + 1;
		end = strchr(spec, ']');
		if (!end || end == spec)
			return lf_err_set(err, -EINVAL,
					  SHOWN
					  ": a store is written "
					  "[[DRIVER@][GRAPHROOT][+RUNROOT]"
					  "[:OPTIONS]]",
					  SHOWN_ARGS(arg));
		at = memchr(spec, '@', (size_t)(end - spec));
		if (at && (at == spec || at + 1 == end))
			return lf_err_set(err, -EINVAL,
					  SHOWN ": empty %s in the store "
						"specification",
					  SHOWN_ARGS(arg),
					  at == spec
						  ? "driver"
						  : "store after the driver");
		if (at && spec_part(spec, at, &r->driver))
			return oom(err);
		spec = at ? at + 1 : spec;
		colon = memchr(spec, ':', (size_t)(end - spec));
		if (colon && spec_part(colon + 1, end, &r->options))
			return oom(err);
		plus = memchr(spec, '+',
			      (size_t)((colon ? colon : end) - spec));
		if (spec_part(spec,
			      plus    ? plus
			      : colon ? colon
				      : end,
			      &r->graphroot) ||
		    (plus &&
		     spec_part(plus + 1, colon ? colon : end, &r->runroot)))
			return oom(err);
		if ((r->graphroot && r->graphroot[0] != '/') ||
		    (r->runroot && r->runroot[0] != '/'))
			return lf_err_set(err, -EINVAL,
					  SHOWN ": the store's paths must be "
						"absolute",
					  SHOWN_ARGS(arg));
		rest = end + 1;
	}
	if (!rest[0])
		return lf_err_set(err, -EINVAL,
				  SHOWN ": no image after 'containers-storage:'"
					" (NAME[:TAG], NAME@DIGEST or an ID)",
				  SHOWN_ARGS(arg));
	return (r->image = strdup(rest)) ? 0 : oom(err);
}

/* FILE[:REF|:@N] of a file transport. */
static int parse_file(const char *arg, const char *rest, struct lf_imgref *r,
		      struct lf_err *err)
{
	const char *colon = strchr(rest, ':');
	size_t plen = colon ? (size_t)(colon - rest) : strlen(rest);
	char *end;

	if (!plen)
		return lf_err_set(err, -EINVAL, SHOWN ": no path after '%s:'",
				  SHOWN_ARGS(arg), lf_imgref_transport(r));
	if (!(r->path = strndup(rest, plen)))
		return oom(err);
	if (!colon)
		return 0;
	if (colon[1] == '@') {
		errno = 0;
		r->index = (size_t)strtoul(colon + 2, &end, 10);
		if (errno || end == colon + 2 || *end ||
		    !isdigit((unsigned char)colon[2]))
			return lf_err_set(err, -EINVAL,
					  SHOWN ": '@%.40s' is not an image "
						"index (@0, @1...)",
					  SHOWN_ARGS(arg), colon + 2);
		r->by_index = true;
		return 0;
	}
	if (!colon[1])
		return lf_err_set(err, -EINVAL,
				  SHOWN ": empty image name "
					"after the path",
				  SHOWN_ARGS(arg));
	return (r->ref = strdup(colon + 1)) ? 0 : oom(err);
}

int lf_imgref_parse(const char *arg, struct lf_imgref *r, struct lf_err *err)
{
	const char *colon = strchr(arg, ':');
	size_t tlen = colon ? (size_t)(colon - arg) : 0, i;
	struct stat st;
	int ret = 0;

	memset(r, 0, sizeof(*r));
	r->kind = LF_IMGREF_PATH;
	/* an existing file or directory is a path, whatever its name */
	if (!colon || lstat(arg, &st) == 0)
		goto path;
	for (i = 0; i < LF_ARRAY_SIZE(unsupported); i++)
		if (strlen(unsupported[i]) == tlen &&
		    !strncmp(arg, unsupported[i], tlen))
			return lf_err_set(err, -EPROTONOSUPPORT,
					  SHOWN
					  ": unsupported transport '%s' "
					  "(layerfs reads oci:, oci-archive:, "
					  "docker-archive:, docker://, "
					  "containers-storage: and paths)",
					  SHOWN_ARGS(arg), unsupported[i]);
	for (i = 0; i < LF_ARRAY_SIZE(transports); i++)
		if (strlen(transports[i].name) == tlen &&
		    !strncmp(arg, transports[i].name, tlen))
			break;
	if (i == LF_ARRAY_SIZE(transports))
		goto path;
	r->kind = transports[i].kind;
	if (r->kind == LF_IMGREF_DOCKER) {
		if (strncmp(colon, "://", 3) || !colon[3])
			ret = lf_err_set(err, -EINVAL,
					 SHOWN
					 ": a registry image is "
					 "docker://[HOST[:PORT]/]NAME[:TAG]"
					 "[@DIGEST]",
					 SHOWN_ARGS(arg));
		else
			ret = parse_docker(arg, colon + 3, r, err);
	} else if (r->kind == LF_IMGREF_CSTORE) {
		ret = parse_cstore(arg, colon + 1, r, err);
	} else {
		ret = parse_file(arg, colon + 1, r, err);
	}
	if (ret)
		lf_imgref_release(r);
	return ret;
path:
	return (r->path = strdup(arg)) ? 0 : oom(err);
}

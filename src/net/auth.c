// SPDX-License-Identifier: MIT
/* auth.c - registry credentials: --creds, the terminal, auth files. */
#include "net_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <jansson.h>

#include "layerfs/log.h"

#define AUTH_FILE_MAX (1u << 20)
#define PASS_MAX 1024

static const char B64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *lf_net_base64(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	char *out = malloc(4 * (n / 3 + 1) + 1);
	size_t i, o = 0;

	if (!out)
		return NULL;
	for (i = 0; i < n; i += 3) {
		unsigned v = (unsigned)u[i] << 16;

		if (i + 1 < n)
			v |= (unsigned)u[i + 1] << 8;
		if (i + 2 < n)
			v |= u[i + 2];
		out[o++] = B64[(v >> 18) & 63];
		out[o++] = B64[(v >> 12) & 63];
		out[o++] = i + 1 < n ? B64[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? B64[v & 63] : '=';
	}
	out[o] = '\0';
	return out;
}

/* Decode base64 (padding optional); NULL when malformed. */
static char *unbase64(const char *s)
{
	size_t n = strlen(s), o = 0, i;
	char *out = malloc(n / 4 * 3 + 4);
	unsigned v = 0;
	int bits = 0;

	for (i = 0; out && i < n && s[i] != '='; i++) {
		const char *q = strchr(B64, s[i]);

		if (!q || !s[i]) {
			free(out);
			return NULL;
		}
		v = (v << 6) | (unsigned)(q - B64);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)((v >> bits) & 0xff);
		}
	}
	if (out)
		out[o] = '\0';
	return out;
}

void lf_net_free_secret(char *s)
{
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

/* The password for user, asked on the terminal with echo off. */
static int ask_password(const char *user, const char *host, char **out,
			struct lf_err *err)
{
	struct termios old, quiet;
	char buf[PASS_MAX];
	ssize_t n;
	int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	bool echo_off;

	if (fd < 0)
		return lf_err_set(err, -EINVAL,
				  "--creds %s: no password given, and no "
				  "terminal to ask for one (give USER:PASS)",
				  user);
	dprintf(fd, "Password for %s@%s: ", user, host);
	echo_off = !tcgetattr(fd, &old);
	if (echo_off) {
		quiet = old;
		quiet.c_lflag &= (tcflag_t)~ECHO;
		tcsetattr(fd, TCSAFLUSH, &quiet);
	}
	n = read(fd, buf, sizeof(buf) - 1);
	if (echo_off)
		tcsetattr(fd, TCSAFLUSH, &old);
	dprintf(fd, "\n");
	close(fd);
	if (n < 0)
		return lf_err_set(err, -EIO, "cannot read the password: %s",
				  strerror(errno));
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (asprintf(out, "%s:%s", user, buf) < 0)
		*out = NULL;
	explicit_bzero(buf, sizeof(buf));
	return *out ? 0 : lf_err_set(err, -ENOMEM, "out of memory");
}

/* "https://index.docker.io/v1/" -> "index.docker.io" (into out). */
static void normalise(const char *key, char *out, size_t size)
{
	size_t n;

	if (!strncmp(key, "https://", 8))
		key += 8;
	else if (!strncmp(key, "http://", 7))
		key += 7;
	snprintf(out, size, "%s", key);
	n = strlen(out);
	while (n && out[n - 1] == '/')
		out[--n] = '\0';
	if (n > 3 &&
	    (!strcmp(out + n - 3, "/v1") || !strcmp(out + n - 3, "/v2")))
		out[n - 3] = '\0';
}

static bool is_docker_hub(const char *h)
{
	return !strcmp(h, "docker.io") || !strcmp(h, "index.docker.io") ||
	       !strcmp(h, "registry-1.docker.io");
}

/* The entry of `auths` for host/repo, most specific key first. */
static json_t *find_entry(json_t *auths, const char *host, const char *repo)
{
	char want[1024], k[1024];
	json_t *best = NULL, *v;
	size_t best_len = 0;
	const char *key;

	snprintf(want, sizeof(want), "%s/%s",
		 is_docker_hub(host) ? "docker.io" : host, repo);
	json_object_foreach(auths, key, v)
	{
		char norm[1024], h[256];
		const char *slash;
		size_t n;

		normalise(key, norm, sizeof(norm));
		slash = strchr(norm, '/');
		snprintf(h, sizeof(h), "%.*s",
			 (int)(slash ? (size_t)(slash - norm) : strlen(norm)),
			 norm);
		/* docker.io has several names: one for all */
		if (is_docker_hub(host) && !is_docker_hub(h))
			continue;
		snprintf(k, sizeof(k), "%s%s",
			 is_docker_hub(host) ? "docker.io" : h,
			 slash ? slash : "");
		n = strlen(k);
		/* a prefix of HOST/REPO ending at a component boundary */
		if (strncmp(want, k, n) || (want[n] && want[n] != '/'))
			continue;
		if (!best || n > best_len) {
			best = v;
			best_len = n;
		}
	}
	return best;
}

/* Read an auth file: NULL with *missing when it does not exist. */
static json_t *load_file(const char *path, bool *missing, struct lf_err *err)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	json_error_t je;
	json_t *j = NULL;
	char *buf = NULL;
	ssize_t n;

	*missing = fd < 0 && (errno == ENOENT || errno == ENOTDIR);
	if (fd < 0) {
		if (!*missing)
			lf_err_set(err, -errno, "auth file '%s': %s", path,
				   strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) ||
	    st.st_size > AUTH_FILE_MAX) {
		close(fd);
		lf_err_set(err, -EINVAL,
			   "auth file '%s': not a regular file of at most "
			   "1 MiB",
			   path);
		return NULL;
	}
	buf = malloc((size_t)st.st_size + 1);
	n = buf ? pread(fd, buf, (size_t)st.st_size, 0) : -1;
	close(fd);
	if (n >= 0)
		j = json_loadb(buf, (size_t)n, 0, &je);
	if (buf)
		explicit_bzero(buf, (size_t)st.st_size);
	free(buf);
	if (!j || !json_is_object(j)) {
		lf_err_set(err, -EINVAL, "auth file '%s': %s", path,
			   j ? "not a JSON object" : je.text);
		json_decref(j);
		return NULL;
	}
	return j;
}

/* Credentials for host/repo from one file: 0 (maybe none), or -errno. */
static int from_file(const char *path, const char *host, const char *repo,
		     bool legacy, char **userpwd, struct lf_err *err)
{
	bool missing;
	json_t *j = load_file(path, &missing, err), *auths, *e;
	const char *a;
	char *up;

	if (!j)
		return missing ? 0 : err->code;
	auths = legacy ? j : json_object_get(j, "auths");
	e = json_is_object(auths) ? find_entry(auths, host, repo) : NULL;
	a = json_string_value(json_object_get(e, "auth"));
	if (!e && (json_object_get(j, "credsStore") ||
		   json_object_get(json_object_get(j, "credHelpers"), host)))
		lf_log(LF_LOG_WARN,
		       "auth file '%s': credential helpers are not supported "
		       "(give --creds)",
		       path);
	if (e && (!a || !*a)) {
		json_decref(j);
		return json_object_get(e, "identitytoken")
			       ? lf_err_set(err, -ENOTSUP,
					    "auth file '%s': %s has an "
					    "identity "
					    "token only, which layerfs does "
					    "not use (give --creds)",
					    path, host)
			       : 0;
	}
	up = a ? unbase64(a) : NULL;
	json_decref(j);
	if (a && (!up || !strchr(up, ':'))) {
		lf_net_free_secret(up);
		return lf_err_set(err, -EINVAL,
				  "auth file '%s': the entry for %s is not "
				  "base64 of USER:PASS",
				  path, host);
	}
	*userpwd = up;
	return 0;
}

int lf_net_creds(const char *creds, const char *host, const char *repo,
		 char **userpwd, struct lf_err *err)
{
	const char *env = getenv("REGISTRY_AUTH_FILE");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	const char *cfg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	char path[4200];
	int ret;

	*userpwd = NULL;
	if (creds) {
		if (!*creds || *creds == ':')
			return lf_err_set(err, -EINVAL,
					  "--creds wants USER[:PASS]");
		if (strchr(creds, ':'))
			return (*userpwd = strdup(creds))
				       ? 0
				       : lf_err_set(err, -ENOMEM,
						    "out of memory");
		return ask_password(creds, host, userpwd, err);
	}
	if (env && *env)
		return from_file(env, host, repo, false, userpwd, err);
	if (xdg && *xdg) {
		snprintf(path, sizeof(path), "%s/containers/auth.json", xdg);
		if ((ret = from_file(path, host, repo, false, userpwd, err)) ||
		    *userpwd)
			return ret;
	}
	if (cfg && *cfg)
		snprintf(path, sizeof(path), "%s/containers/auth.json", cfg);
	else if (home)
		snprintf(path, sizeof(path), "%s/.config/containers/auth.json",
			 home);
	if (((cfg && *cfg) || home) &&
	    ((ret = from_file(path, host, repo, false, userpwd, err)) ||
	     *userpwd))
		return ret;
	if (!home)
		return 0;
	snprintf(path, sizeof(path), "%s/.docker/config.json", home);
	if ((ret = from_file(path, host, repo, false, userpwd, err)) ||
	    *userpwd)
		return ret;
	snprintf(path, sizeof(path), "%s/.dockercfg", home);
	return from_file(path, host, repo, true, userpwd, err);
}

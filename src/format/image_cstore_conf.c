// SPDX-License-Identifier: MIT
/* image_cstore_conf.c - where a containers-storage store is: storage.conf. */
#include "image_cstore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONF_MAX (1u << 20) /* a storage.conf is a few KiB */
#define VALUE_MAX 4096	    /* a path */

static int oom(struct lf_err *err)
{
	return lf_err_set(err, -ENOMEM, "out of memory");
}

/* The reader: a position in the file's bytes and the line it is on. */
struct toml {
	const char *file;
	const char *p, *end;
	unsigned line;
	struct lf_err *err;
};

static int bad(struct toml *t, const char *why)
{
	return lf_err_set(t->err, -EINVAL, "%s:%u: %s", t->file, t->line, why);
}

static void skip_blank(struct toml *t)
{
	while (t->p < t->end && (*t->p == ' ' || *t->p == '\t'))
		t->p++;
}

/* Blanks, a comment, then the end of the line (or of the file). */
static int end_of_line(struct toml *t)
{
	skip_blank(t);
	if (t->p < t->end && *t->p == '#')
		while (t->p < t->end && *t->p != '\n')
			t->p++;
	if (t->p < t->end && *t->p == '\r')
		t->p++;
	if (t->p == t->end)
		return 0;
	if (*t->p != '\n')
		return bad(t, "garbage after a value");
	t->p++;
	t->line++;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* \uXXXX or \UXXXXXXXX (n digits) as UTF-8 into out. */
static int unicode_escape(struct toml *t, int n, struct lf_buf *out)
{
	unsigned long cp = 0;
	int i, v;

	for (i = 0; i < n; i++) {
		if (t->p == t->end || (v = hexval(*t->p)) < 0)
			return bad(t, "bad \\u escape in a string");
		cp = cp * 16 + (unsigned long)v;
		t->p++;
	}
	if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || !cp)
		return bad(t, "bad \\u escape in a string");
	if (cp < 0x80)
		return lf_buf_addch(out, (char)cp) ? oom(t->err) : 0;
	if (cp < 0x800)
		return lf_buf_addch(out, (char)(0xc0 | (cp >> 6))) ||
				       lf_buf_addch(out,
						    (char)(0x80 | (cp & 0x3f)))
			       ? oom(t->err)
			       : 0;
	if (cp < 0x10000)
		return lf_buf_addch(out, (char)(0xe0 | (cp >> 12))) ||
				       lf_buf_addch(out,
						    (char)(0x80 | ((cp >> 6) &
								   0x3f))) ||
				       lf_buf_addch(out,
						    (char)(0x80 | (cp & 0x3f)))
			       ? oom(t->err)
			       : 0;
	return lf_buf_addch(out, (char)(0xf0 | (cp >> 18))) ||
			       lf_buf_addch(out, (char)(0x80 |
							((cp >> 12) & 0x3f))) ||
			       lf_buf_addch(out, (char)(0x80 |
							((cp >> 6) & 0x3f))) ||
			       lf_buf_addch(out, (char)(0x80 | (cp & 0x3f)))
		       ? oom(t->err)
		       : 0;
}

/* A one-line "basic" or 'literal' string at t->p, into out (may be NULL:
 * skipped).  Multi-line strings are refused. */
static int string(struct toml *t, struct lf_buf *out)
{
	char q = *t->p++;
	static const char esc_in[] = "btnfr\"\\", esc_out[] = "\b\t\n\f\r\"\\";
	struct lf_buf dummy;
	int ret = 0;

	lf_buf_init(&dummy);
	if (!out)
		out = &dummy;
	if (t->end - t->p >= 2 && t->p[0] == q && t->p[1] == q) {
		lf_buf_release(&dummy);
		return bad(t, "multi-line strings are not supported here");
	}
	while (!ret) {
		const char *e;

		if (t->p == t->end || *t->p == '\n') {
			ret = bad(t, "unterminated string");
			break;
		}
		if (*t->p == q) {
			t->p++;
			break;
		}
		if (q == '"' && *t->p == '\\') {
			t->p++;
			if (t->p < t->end && (*t->p == 'u' || *t->p == 'U')) {
				int n = *t->p++ == 'u' ? 4 : 8;

				ret = unicode_escape(t, n, out);
				continue;
			}
			if (t->p == t->end || !(e = strchr(esc_in, *t->p)) ||
			    !*t->p) {
				ret = bad(t, "bad escape in a string");
				break;
			}
			ret = lf_buf_addch(out, esc_out[e - esc_in])
				      ? oom(t->err)
				      : 0;
			t->p++;
			continue;
		}
		if ((unsigned char)*t->p < 0x20 && *t->p != '\t') {
			ret = bad(t, "control character in a string");
			break;
		}
		ret = lf_buf_addch(out, *t->p++) ? oom(t->err) : 0;
		if (!ret && out->len > VALUE_MAX)
			ret = bad(t, "string too long");
	}
	lf_buf_release(&dummy);
	return ret;
}

/* An array or inline table, which may span lines: skipped, its brackets
 * balanced outside strings and comments. */
static int skip_nested(struct toml *t)
{
	unsigned start = t->line;
	char stack[64];
	size_t depth = 0;

	do {
		if (t->p == t->end) {
			t->line = start; /* where it began */
			return bad(t, "unterminated array or inline table");
		}
		switch (*t->p) {
		case '[':
		case '{':
			if (depth == sizeof(stack))
				return bad(t, "arrays nested too deep");
			stack[depth++] = *t->p == '[' ? ']' : '}';
			t->p++;
			break;
		case ']':
		case '}':
			if (!depth || stack[depth - 1] != *t->p)
				return bad(t, "unbalanced brackets");
			depth--;
			t->p++;
			break;
		case '"':
		case '\'': {
			int ret = string(t, NULL);

			if (ret)
				return ret;
			break;
		}
		case '#':
			while (t->p < t->end && *t->p != '\n')
				t->p++;
			break;
		case '\n':
			t->line++;
			t->p++;
			break;
		default:
			t->p++;
		}
	} while (depth);
	return 0;
}

/* A key: bare (A-Za-z0-9_-) or quoted; dotted keys are kept as written. */
static int key(struct toml *t, char *out, size_t len)
{
	size_t n = 0;

	while (t->p < t->end && *t->p != '=' && *t->p != '\n' && *t->p != '#') {
		if (n + 1 >= len)
			return bad(t, "key too long");
		out[n++] = *t->p++;
	}
	while (n && (out[n - 1] == ' ' || out[n - 1] == '\t'))
		n--;
	out[n] = '\0';
	if (!n)
		return bad(t, "expected a key");
	if (t->p == t->end || *t->p != '=')
		return bad(t, "expected '=' after a key");
	t->p++;
	return 0;
}

/* A [table] or [[array of tables]] header: its name into out. */
static int header(struct toml *t, char *out, size_t len)
{
	bool twice = t->end - t->p >= 2 && t->p[1] == '[';
	size_t n = 0;

	t->p += twice ? 2 : 1;
	while (t->p < t->end && *t->p != ']' && *t->p != '\n') {
		if (*t->p != ' ' && *t->p != '\t') {
			if (n + 1 >= len)
				return bad(t, "table name too long");
			out[n++] = *t->p;
		}
		t->p++;
	}
	out[n] = '\0';
	if (t->p == t->end || *t->p != ']' ||
	    (twice && (t->end - t->p < 2 || t->p[1] != ']')) || !n)
		return bad(t, "bad table header");
	t->p += twice ? 2 : 1;
	return 0;
}

static const char *const conf_keys[] = { "driver", "graphroot", "runroot",
					 "rootless_storage_path" };

static char **conf_slot(struct lf_cstore_conf *c, size_t i)
{
	char **slots[] = { &c->driver, &c->graphroot, &c->runroot,
			   &c->rootless_storage_path };

	return slots[i];
}

/* key = value: kept when it is one of ours in [storage]. */
static int assignment(struct toml *t, bool in_storage, struct lf_cstore_conf *c)
{
	char name[128];
	struct lf_buf v;
	size_t i;
	int ret;

	if ((ret = key(t, name, sizeof(name))))
		return ret;
	skip_blank(t);
	for (i = 0; in_storage && i < LF_ARRAY_SIZE(conf_keys); i++)
		if (!strcmp(name, conf_keys[i]))
			break;
	if (t->p == t->end || *t->p == '\n' || *t->p == '#')
		return bad(t, "expected a value after '='");
	if (!in_storage || i == LF_ARRAY_SIZE(conf_keys)) {
		/* not ours: skipped, but it must be well formed enough */
		if (*t->p == '"' || *t->p == '\'')
			return string(t, NULL);
		if (*t->p == '[' || *t->p == '{')
			return skip_nested(t);
		while (t->p < t->end && *t->p != '\n' && *t->p != '#')
			t->p++;
		return 0;
	}
	if (*t->p != '"' && *t->p != '\'')
		return lf_err_set(t->err, -EINVAL, "%s:%u: %s must be a string",
				  t->file, t->line, name);
	lf_buf_init(&v);
	ret = string(t, &v);
	if (!ret && lf_buf_addzero(&v, 0))
		ret = oom(t->err);
	if (ret) {
		lf_buf_release(&v);
		return ret;
	}
	free(*conf_slot(c, i));
	*conf_slot(c, i) = lf_buf_detach(&v, NULL);
	return 0;
}

int lf_cstore_conf_parse(const char *text, size_t len, const char *file,
			 struct lf_cstore_conf *c, struct lf_err *err)
{
	struct toml t = { file, text, text + len, 1, err };
	bool in_storage = false;
	char table[128];
	int ret = 0;

	if (memchr(text, '\0', len))
		return bad(&t, "NUL byte in the file");
	while (!ret && t.p < t.end) {
		skip_blank(&t);
		if (t.p == t.end)
			break;
		if (*t.p == '[') {
			ret = header(&t, table, sizeof(table));
			in_storage = !ret && !strcmp(table, "storage");
		} else if (*t.p != '#' && *t.p != '\n' && *t.p != '\r') {
			ret = assignment(&t, in_storage, c);
		}
		if (!ret)
			ret = end_of_line(&t);
	}
	return ret;
}

void lf_cstore_conf_release(struct lf_cstore_conf *c)
{
	size_t i;

	for (i = 0; i < LF_ARRAY_SIZE(conf_keys); i++)
		free(*conf_slot(c, i));
	memset(c, 0, sizeof(*c));
}

/* Read `path` into c: 0, -ENOENT when it does not exist, or an error. */
static int read_conf(const char *path, struct lf_cstore_conf *c,
		     struct lf_err *err)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	struct stat st;
	char *text;
	ssize_t n;
	int ret;

	if (fd < 0 && errno == ENOENT)
		return -ENOENT;
	if (fd < 0)
		return lf_err_set(err, -errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return lf_err_set(err, -EINVAL, "%s: not a regular file", path);
	}
	if ((uint64_t)st.st_size > CONF_MAX) {
		close(fd);
		return lf_err_set(err, -EFBIG, "%s: bigger than %u KiB", path,
				  CONF_MAX >> 10);
	}
	if (!(text = malloc((size_t)st.st_size + 1))) {
		close(fd);
		return oom(err);
	}
	n = pread(fd, text, (size_t)st.st_size, 0);
	close(fd);
	if (n != st.st_size) {
		free(text);
		return lf_err_set(err, -EIO, "%s: short read", path);
	}
	ret = lf_cstore_conf_parse(text, (size_t)n, path, c, err);
	free(text);
	return ret;
}

/* $VAR or else `def`, as a fresh "VALUE/suffix". */
static char *env_path(const char *var, const char *def, const char *suffix)
{
	const char *v = var ? getenv(var) : NULL;
	char *out = NULL;

	if (!v || v[0] != '/')
		v = def;
	if (!v || asprintf(&out, "%s%s", v, suffix) < 0)
		return NULL;
	return out;
}

/* rootless_storage_path's $HOME, $UID and $USER. */
static char *expand(const char *s)
{
	const char *home = getenv("HOME"), *user = getenv("USER");
	struct lf_buf b;
	char uid[32];

	snprintf(uid, sizeof(uid), "%u", (unsigned)geteuid());
	lf_buf_init(&b);
	while (*s) {
		const char *v = NULL;
		size_t skip = 0;

		if (!strncmp(s, "$HOME", 5))
			v = home ? home : "", skip = 5;
		else if (!strncmp(s, "$UID", 4))
			v = uid, skip = 4;
		else if (!strncmp(s, "$USER", 5))
			v = user ? user : "", skip = 5;
		if (skip ? lf_buf_adds(&b, v) : lf_buf_addch(&b, *s)) {
			lf_buf_release(&b);
			return NULL;
		}
		s += skip ? skip : 1;
	}
	if (lf_buf_addzero(&b, 0)) {
		lf_buf_release(&b);
		return NULL;
	}
	return lf_buf_detach(&b, NULL);
}

/* A non-root user's store is never root's: graphroot and runroot of a
 * file other than the user's own are not used (rootless_storage_path is). */
static void drop_roots(struct lf_cstore_conf *c)
{
	free(c->graphroot);
	free(c->runroot);
	c->graphroot = c->runroot = NULL;
}

/* The storage.conf files in the order containers-storage reads them. */
static int load(struct lf_cstore_conf *c, bool rootless, char **used,
		struct lf_err *err)
{
	const char *env = getenv("CONTAINERS_STORAGE_CONF");
	const char *sys[] = { "/etc/containers/storage.conf",
			      "/usr/share/containers/storage.conf" };
	char *user = NULL;
	size_t i;
	int ret = -ENOENT;

	if (env && env[0]) {
		ret = read_conf(env, c, err);
		if (ret == -ENOENT)
			return lf_err_set(err, ret,
					  "CONTAINERS_STORAGE_CONF: %s does "
					  "not "
					  "exist",
					  env);
		if (!ret && !(*used = strdup(env)))
			return oom(err);
		if (!ret && rootless)
			drop_roots(c);
		return ret;
	}
	for (i = 0; ret == -ENOENT && i < LF_ARRAY_SIZE(sys); i++)
		if (!(ret = read_conf(sys[i], c, err)) &&
		    !(*used = strdup(sys[i])))
			return oom(err);
	if (ret && ret != -ENOENT)
		return ret;
	if (!rootless)
		return 0;
	/* rootless: the system's paths are root's, never used; the user's
	 * file is read over the rest */
	drop_roots(c);
	if (getenv("XDG_CONFIG_HOME") && getenv("XDG_CONFIG_HOME")[0] == '/')
		user = env_path("XDG_CONFIG_HOME", NULL,
				"/containers/storage.conf");
	else
		user = env_path("HOME", "/",
				"/.config/containers/storage.conf");
	if (!user)
		return oom(err);
	ret = read_conf(user, c, err);
	if (!ret) {
		free(*used);
		*used = user;
		return 0;
	}
	free(user);
	return ret == -ENOENT ? 0 : ret;
}

int lf_cstore_locate(const char *driver, const char *graphroot,
		     const char *runroot, struct lf_cstore_conf *out,
		     struct lf_err *err)
{
	bool rootless = geteuid() != 0;
	struct lf_cstore_conf c = { 0 };
	char *used = NULL, uid[64];
	int ret = 0;

	/* a store named in full needs no configuration */
	if (!graphroot || !runroot || !driver)
		ret = load(&c, rootless, &used, err);
	if (ret)
		goto out;
	snprintf(uid, sizeof(uid), "/run/user/%u", (unsigned)geteuid());
	if (graphroot) {
		free(c.graphroot);
		c.graphroot = strdup(graphroot);
	} else if (c.graphroot) {
		/* root's or the user's own file said */
	} else if (rootless && c.rootless_storage_path) {
		char *g = expand(c.rootless_storage_path);

		free(c.graphroot);
		c.graphroot = g;
	} else if (rootless) {
		c.graphroot =
			getenv("XDG_DATA_HOME") &&
					getenv("XDG_DATA_HOME")[0] == '/'
				? env_path("XDG_DATA_HOME", NULL,
					   "/containers/storage")
				: env_path("HOME", "/",
					   "/.local/share/containers/storage");
	} else {
		c.graphroot = strdup("/var/lib/containers/storage");
	}
	if (runroot) {
		free(c.runroot);
		c.runroot = strdup(runroot);
	} else if (rootless && !c.runroot) {
		c.runroot = env_path("XDG_RUNTIME_DIR", uid, "/containers");
	} else if (!c.runroot) {
		c.runroot = strdup("/run/containers/storage");
	}
	if (driver) {
		free(c.driver);
		c.driver = strdup(driver);
	}
	if (!c.graphroot || !c.runroot || (driver && !c.driver)) {
		ret = oom(err);
		goto out;
	}
	if (c.graphroot[0] != '/')
		ret = lf_err_set(err, -EINVAL,
				 "%s: graphroot '%.200s' is not an absolute "
				 "path",
				 used ? used : "storage.conf", c.graphroot);
out:
	free(used);
	if (ret)
		lf_cstore_conf_release(&c);
	else
		*out = c;
	return ret;
}

// SPDX-License-Identifier: MIT
/* secrets.c - well-known secret rules over a file's first bytes and name. */
#include "layerfs/secrets.h"

#include <stdio.h>
#include <string.h>

#include "layerfs/common.h"
#include "layerfs/path.h"

/* The bytes under scan. */
struct scan {
	const char *b;
	size_t n;
	const char *base; /* file name */
};

/* A rule: the first match in s, at *at, filling h; false when none. */
typedef bool (*rule_fn)(const struct scan *s, size_t *at,
			struct lf_secret_hit *h);

static bool is_alnum(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

static bool is_upnum(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_word(int c)
{
	return is_alnum(c) || c == '_';
}

static bool is_tok(int c) /* [A-Za-z0-9_-] */
{
	return is_word(c) || c == '-';
}

static bool is_b64(int c)
{
	return is_alnum(c) || c == '+' || c == '/';
}

static bool is_ident(int c)
{
	return is_word(c) || c == '-' || c == '.';
}

static bool is_blank(int c)
{
	return c == ' ' || c == '\t';
}

static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* The length of the run of `ok` bytes at i, at most max: rules cap it just
 * beyond their longest match, so that overlapping candidates (AKIAAKIA...)
 * cost no more than the cap each. */
static size_t span(const struct scan *s, size_t i, bool (*ok)(int), size_t max)
{
	size_t k = i;

	while (k < s->n && k - i < max && ok((unsigned char)s->b[k]))
		k++;
	return k - i;
}

static int at(const struct scan *s, size_t i)
{
	return i < s->n ? (unsigned char)s->b[i] : -1;
}

/* The previous byte, -1 at the start. */
static int before(const struct scan *s, size_t i)
{
	return i ? (unsigned char)s->b[i - 1] : -1;
}

static const char *find(const struct scan *s, size_t from, const char *lit)
{
	if (from >= s->n)
		return NULL;
	return memmem(s->b + from, s->n - from, lit, strlen(lit));
}

/* Case-insensitive find of a lower-case literal. */
static const char *find_ci(const struct scan *s, size_t from, const char *lit)
{
	size_t m = strlen(lit), i, k;

	for (i = from; i + m <= s->n; i++) {
		for (k = 0;
		     k < m && lower((unsigned char)s->b[i + k]) == lit[k]; k++)
			;
		if (k == m)
			return s->b + i;
	}
	return NULL;
}

/* A documented placeholder rather than a secret. */
static bool placeholder(const char *v, size_t n)
{
	static const char ex[] = "example";
	size_t i, k;

	if (!n || v[0] == '$' || v[0] == '<' || v[0] == '{' || v[0] == '%')
		return true;
	for (i = 1; i < n && v[i] == v[0]; i++)
		;
	if (i == n)
		return true;
	for (i = 0; i + 7 <= n; i++) {
		for (k = 0; k < 7 && lower((unsigned char)v[i + k]) == ex[k];
		     k++)
			;
		if (k == 7)
			return true;
	}
	return false;
}

/* Printable ASCII only (and spaces when `space`), else '?'. */
static void put_clean(char *out, size_t cap, size_t *len, const char *p,
		      size_t n, bool space)
{
	size_t i;

	for (i = 0; i < n && *len + 1 < cap; i++) {
		unsigned char c = (unsigned char)p[i];

		out[(*len)++] = (c > 0x20 && c < 0x7f) || (space && c == ' ')
					? (char)c
					: '?';
	}
	out[*len] = '\0';
}

/* label (at most 40 bytes), then a little of the secret, then "****". */
static void excerpt(struct lf_secret_hit *h, const char *label, size_t ln,
		    const char *secret, size_t sn)
{
	size_t len = 0, show = LF_MIN((size_t)4, sn / 4);

	h->excerpt[0] = '\0';
	put_clean(h->excerpt, sizeof(h->excerpt), &len, label,
		  LF_MIN(ln, (size_t)40), true);
	put_clean(h->excerpt, sizeof(h->excerpt), &len, secret, show, false);
	put_clean(h->excerpt, sizeof(h->excerpt), &len, "****", 4, false);
}

static bool hit(struct lf_secret_hit *h, const char *rule, const char *why)
{
	h->rule = rule;
	h->reason = why;
	return true;
}

/* The end of the line at k, before `to`: a newline, or "\n" as a JSON or
 * C string writes it; *next: where the next line starts. */
static size_t eol(const struct scan *s, size_t k, size_t to, size_t *next)
{
	for (; k < to; k++) {
		if (s->b[k] == '\n') {
			*next = k + 1;
			return k;
		}
		if (s->b[k] == '\\' && k + 1 < to && s->b[k + 1] == 'n') {
			*next = k + 2;
			return k;
		}
	}
	*next = to;
	return to;
}

static bool pem_filler(int c)
{
	return c == '=' || c == ' ' || c == '\t' || c == '\r' || c == '"' ||
	       c == '\'';
}

/* The base64 bytes of a key body in b[from..to), header lines
 * ("Proc-Type: ...") aside; 0 when another line holds anything but base64
 * (code or prose between a BEGIN and an END is no key).  *ex: the first. */
static size_t pem_body(const struct scan *s, size_t from, size_t to,
		       const char **ex)
{
	size_t k, j, e, next, nb = 0;

	*ex = NULL;
	for (k = from; k < to; k = next) {
		e = eol(s, k, to, &next);
		if (memchr(s->b + k, ':', e - k))
			continue;
		for (j = k; j < e; j++) {
			int c = (unsigned char)s->b[j];

			if (is_b64(c)) {
				if (!*ex)
					*ex = s->b + j;
				nb++;
			} else if (!pem_filler(c)) {
				return 0;
			}
		}
	}
	return nb;
}

/* The label of a "-----BEGIN LABEL-----" line at p: its length when it
 * names a private key, else 0. */
static size_t pem_private_label(const struct scan *s, size_t lab)
{
	size_t ln = 0;

	while (ln < 64 && (is_upnum(at(s, lab + ln)) ||
			   at(s, lab + ln) == ' ' || at(s, lab + ln) == '_'))
		ln++;
	if (s->n - lab - ln < 5 || memcmp(s->b + lab + ln, "-----", 5))
		return 0;
	if ((ln >= 11 && !memcmp(s->b + lab + ln - 11, "PRIVATE KEY", 11)) ||
	    (ln >= 17 &&
	     !memcmp(s->b + lab + ln - 17, "PRIVATE KEY BLOCK", 17)))
		return ln;
	return 0;
}

/*
 * -----BEGIN ... PRIVATE KEY[ BLOCK]----- then at least 32 base64 bytes
 * before an END line (and before any other BEGIN: each byte is looked at
 * once or twice, however many BEGIN lines there are).
 */
static bool r_private_key(const struct scan *s, size_t *pos,
			  struct lf_secret_hit *h)
{
	const char *p, *end = NULL, *next, *ex;
	size_t i, lab, ln, body, stop;
	char label[48];

	for (i = 0; (p = find(s, i, "-----BEGIN "));
	     i = (size_t)(p - s->b) + 1) {
		lab = (size_t)(p - s->b) + 11;
		if (!(ln = pem_private_label(s, lab)))
			continue;
		body = lab + ln + 5;
		if ((!end || end < s->b + body) &&
		    !(end = find(s, body, "-----END ")))
			return false; /* no END after this, nor after later ones */
		next = find(s, body, "-----BEGIN ");
		stop = (size_t)((next && next < end ? next : end) - s->b);
		if (pem_body(s, body, stop, &ex) < 32)
			continue;
		*pos = (size_t)(p - s->b);
		snprintf(label, sizeof(label), "%.*s: ", (int)LF_MIN(ln, 38),
			 p + 11);
		excerpt(h, label, strlen(label), ex, 32);
		return hit(h, "private-key", "it holds a private key");
	}
	return false;
}

/* AKIA... : a prefix and 16 upper-case letters or digits, on word bounds. */
static bool r_aws_key_id(const struct scan *s, size_t *pos,
			 struct lf_secret_hit *h)
{
	static const char *const pre[] = { "AKIA", "ASIA", "AGPA", "AIDA",
					   "AROA", "AIPA", "ANPA", "ANVA" };
	bool found = false;
	size_t k, i;
	const char *p;

	for (k = 0; k < LF_ARRAY_SIZE(pre); k++) {
		for (i = 0; (p = find(s, i, pre[k]));
		     i = (size_t)(p - s->b) + 1) {
			size_t o = (size_t)(p - s->b);

			if (found && o >= *pos)
				break;
			if (is_alnum(before(s, o)) ||
			    span(s, o + 4, is_upnum, 17) != 16 ||
			    placeholder(p, 20))
				continue;
			*pos = o;
			found = true;
			excerpt(h, p, 4, p + 4, 16);
			break;
		}
	}
	return found &&
	       hit(h, "aws-access-key-id", "it holds an AWS access key id");
}

/* The value after an identifier: ["'] blanks (= : := =>) blanks ["']. */
static size_t assigned(const struct scan *s, size_t i)
{
	if (at(s, i) == '"' || at(s, i) == '\'')
		i++;
	while (is_blank(at(s, i)))
		i++;
	if (at(s, i) != '=' && at(s, i) != ':')
		return 0;
	i++;
	if ((at(s, i - 1) == ':' && at(s, i) == '=') ||
	    (at(s, i - 1) == '=' && at(s, i) == '>'))
		i++;
	while (is_blank(at(s, i)))
		i++;
	if (at(s, i) == '"' || at(s, i) == '\'')
		i++;
	return i;
}

/* Does the identifier name an AWS secret key?  Separators and case aside:
 * "secretaccesskey", or both "aws" and "secret". */
static bool aws_secret_name(const char *p, size_t n)
{
	char id[64];
	size_t i, k = 0;

	for (i = 0; i < n && k + 1 < sizeof(id); i++)
		if (is_alnum((unsigned char)p[i]))
			id[k++] = (char)lower((unsigned char)p[i]);
	id[k] = '\0';
	return strstr(id, "secretaccesskey") ||
	       (strstr(id, "aws") && strstr(id, "secret"));
}

static bool r_aws_secret(const struct scan *s, size_t *pos,
			 struct lf_secret_hit *h)
{
	const char *p;
	size_t i;

	for (i = 0; (p = find_ci(s, i, "secret")); i = (size_t)(p - s->b) + 1) {
		size_t a = (size_t)(p - s->b), z = a + 6, v, vn;

		while (a && a + 64 > (size_t)(p - s->b) &&
		       is_ident(before(s, a)))
			a--;
		z += span(s, z, is_ident, 64);
		if (z - a > 60 || !aws_secret_name(s->b + a, z - a) ||
		    !(v = assigned(s, z)))
			continue;
		vn = span(s, v, is_b64, 41);
		if (vn != 40 || at(s, v + vn) == '=' ||
		    placeholder(s->b + v, vn))
			continue;
		*pos = a;
		{
			char lab[48];

			snprintf(lab, sizeof(lab),
				 "%.*s=", (int)LF_MIN(z - a, 40), s->b + a);
			excerpt(h, lab, strlen(lab), s->b + v, vn);
		}
		return hit(h, "aws-secret-access-key",
			   "it holds an AWS secret access key");
	}
	return false;
}

struct prefixed {
	const char *prefix, *rule, *why;
	bool (*ok)(int);
	size_t min, max; /* length after the prefix */
};

static const struct prefixed tokens[] = {
	{ "ghp_", "github-pat", "it holds a GitHub token", is_alnum, 36, 36 },
	{ "gho_", "github-oauth", "it holds a GitHub token", is_alnum, 36, 36 },
	{ "ghu_", "github-app-token", "it holds a GitHub token", is_alnum, 36,
	  36 },
	{ "ghs_", "github-app-token", "it holds a GitHub token", is_alnum, 36,
	  36 },
	{ "ghr_", "github-refresh-token", "it holds a GitHub token", is_alnum,
	  36, 36 },
	{ "github_pat_", "github-fine-grained-pat", "it holds a GitHub token",
	  is_word, 82, 82 },
	{ "glpat-", "gitlab-pat", "it holds a GitLab token", is_tok, 20, 64 },
	{ "xoxb-", "slack-token", "it holds a Slack token", is_tok, 20, 255 },
	{ "xoxa-", "slack-token", "it holds a Slack token", is_tok, 20, 255 },
	{ "xoxp-", "slack-token", "it holds a Slack token", is_tok, 20, 255 },
	{ "xoxr-", "slack-token", "it holds a Slack token", is_tok, 20, 255 },
	{ "xoxs-", "slack-token", "it holds a Slack token", is_tok, 20, 255 },
	{ "npm_", "npm-access-token", "it holds an npm token", is_alnum, 36,
	  36 },
	{ "pypi-AgEIcHlwaS5vcmc", "pypi-upload-token",
	  "it holds a PyPI upload token", is_tok, 50, 1024 },
};

static bool has_digit(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] >= '0' && p[i] <= '9')
			return true;
	return false;
}

/* The token rules: a literal prefix on a word start, then a run. */
static bool r_tokens(const struct scan *s, size_t *pos, struct lf_secret_hit *h)
{
	bool found = false;
	size_t k, i;
	const char *p;

	for (k = 0; k < LF_ARRAY_SIZE(tokens); k++) {
		const struct prefixed *t = &tokens[k];
		size_t pl = strlen(t->prefix);

		for (i = 0; (p = find(s, i, t->prefix));
		     i = (size_t)(p - s->b) + 1) {
			size_t o = (size_t)(p - s->b), n;

			if (found && o >= *pos)
				break;
			n = span(s, o + pl, t->ok, t->max + 1);
			if (is_word(before(s, o)) || n < t->min || n > t->max ||
			    is_alnum(at(s, o + pl + n)) ||
			    placeholder(p + pl, n) || !has_digit(p + pl, n))
				continue;
			*pos = o;
			found = true;
			excerpt(h, p, pl, p + pl, n);
			hit(h, t->rule, t->why);
			break;
		}
	}
	return found;
}

/* hooks.slack.com/services/T.../B.../24 */
static bool r_slack_webhook(const struct scan *s, size_t *pos,
			    struct lf_secret_hit *h)
{
	static const char lit[] = "hooks.slack.com/services/";
	const char *p;
	size_t i;

	for (i = 0; (p = find(s, i, lit)); i = (size_t)(p - s->b) + 1) {
		size_t o = (size_t)(p - s->b) + sizeof(lit) - 1, t, b, x;

		t = at(s, o) == 'T' ? span(s, o, is_word, 14) : 0;
		if (t < 9 || t > 13 || at(s, o + t) != '/')
			continue;
		b = at(s, o + t + 1) == 'B' ? span(s, o + t + 1, is_word, 14)
					    : 0;
		if (b < 9 || b > 13 || at(s, o + t + 1 + b) != '/')
			continue;
		x = span(s, o + t + b + 2, is_word, 64);
		if (x < 24 || placeholder(s->b + o + t + b + 2, x))
			continue;
		*pos = (size_t)(p - s->b);
		excerpt(h, p, sizeof(lit) - 1, s->b + o, t + b + x);
		return hit(h, "slack-webhook-url", "it holds a Slack webhook");
	}
	return false;
}

/* `"KEY"` [blanks] : [blanks] "VALUE": the first with a non-empty value. */
static bool json_value(const struct scan *s, const char *key, size_t *pos,
		       size_t *v, size_t *vn)
{
	const char *p;
	size_t i;

	for (i = 0; (p = find(s, i, key)); i = (size_t)(p - s->b) + 1) {
		size_t k = (size_t)(p - s->b) + strlen(key);

		while (is_blank(at(s, k)) || at(s, k) == '\n' ||
		       at(s, k) == '\r')
			k++;
		if (at(s, k++) != ':')
			continue;
		while (is_blank(at(s, k)) || at(s, k) == '\n' ||
		       at(s, k) == '\r')
			k++;
		if (at(s, k++) != '"')
			continue;
		*vn = span(s, k, is_b64, s->n);
		while (at(s, k + *vn) == '=')
			(*vn)++;
		if (*vn < 4 || at(s, k + *vn) != '"' ||
		    placeholder(s->b + k, *vn))
			continue;
		*pos = (size_t)(p - s->b);
		*v = k;
		return true;
	}
	return false;
}

/* docker's config.json: "auths" with a non-empty "auth". */
static bool r_docker_auth(const struct scan *s, size_t *pos,
			  struct lf_secret_hit *h)
{
	size_t v, vn;

	if (!find(s, 0, "\"auths\"") ||
	    !json_value(s, "\"auth\"", pos, &v, &vn))
		return false;
	excerpt(h, "\"auth\": \"", 9, s->b + v, vn);
	return hit(h, "docker-config-auth",
		   "it holds docker registry credentials");
}

/* kubeconfig: client-key-data: BASE64 (YAML) or "client-key-data": "...". */
static bool r_kube_key(const struct scan *s, size_t *pos,
		       struct lf_secret_hit *h)
{
	static const char lit[] = "client-key-data";
	const char *p;
	size_t i;

	for (i = 0; (p = find(s, i, lit)); i = (size_t)(p - s->b) + 1) {
		size_t v = assigned(s, (size_t)(p - s->b) + sizeof(lit) - 1),
		       vn;

		if (!v)
			continue;
		vn = span(s, v, is_b64, s->n);
		if (vn < 16 || placeholder(s->b + v, vn))
			continue;
		*pos = (size_t)(p - s->b);
		excerpt(h, "client-key-data: ", 17, s->b + v, vn);
		return hit(h, "kubeconfig-client-key",
			   "it holds a kubeconfig client key");
	}
	return false;
}

#define VALUE_MAX 512 /* a token or password value, at most */

static bool not_space(int c)
{
	return c > ' ' && c != '"' && c != '\'' && c != 0x7f;
}

/* .npmrc: [//registry/:]_authToken=VALUE */
static bool r_npmrc(const struct scan *s, size_t *pos, struct lf_secret_hit *h)
{
	const char *p;
	size_t i;

	for (i = 0; (p = find(s, i, "_authToken"));
	     i = (size_t)(p - s->b) + 1) {
		size_t v = assigned(s, (size_t)(p - s->b) + 10), vn;

		if (!v)
			continue;
		vn = span(s, v, not_space, VALUE_MAX);
		if (vn < 8 || placeholder(s->b + v, vn))
			continue;
		*pos = (size_t)(p - s->b);
		excerpt(h, "_authToken=", 11, s->b + v, vn);
		return hit(h, "npmrc-auth-token", "it holds an npm auth token");
	}
	return false;
}

static bool line_start(const struct scan *s, size_t o)
{
	while (o && is_blank(before(s, o)))
		o--;
	return !o || before(s, o) == '\n';
}

/* .pypirc: a `password = VALUE` line. */
static bool r_pypirc(const struct scan *s, size_t *pos, struct lf_secret_hit *h)
{
	const char *p;
	size_t i;

	if (strcmp(s->base, ".pypirc"))
		return false;
	for (i = 0; (p = find(s, i, "password")); i = (size_t)(p - s->b) + 1) {
		size_t o = (size_t)(p - s->b), v, vn;

		if (!line_start(s, o) || !(v = assigned(s, o + 8)))
			continue;
		vn = span(s, v, not_space, VALUE_MAX);
		if (!vn || placeholder(s->b + v, vn))
			continue;
		*pos = o;
		excerpt(h, "password = ", 11, s->b + v, vn);
		return hit(h, "pypirc-password", "it holds a PyPI password");
	}
	return false;
}

static bool userinfo(int c)
{
	return c > ' ' && c != ':' && c != '/' && c != '@' && c != 0x7f;
}

static bool passinfo(int c)
{
	return c > ' ' && c != '/' && c != '@' && c != 0x7f;
}

/* git's credential store: https://USER:PASSWORD@HOST lines. */
static bool r_git_credentials(const struct scan *s, size_t *pos,
			      struct lf_secret_hit *h)
{
	const char *p;
	size_t i;

	if (strcmp(s->base, ".git-credentials") &&
	    strcmp(s->base, "credentials"))
		return false;
	for (i = 0; (p = find(s, i, "://")); i = (size_t)(p - s->b) + 1) {
		size_t u = (size_t)(p - s->b) + 3,
		       un = span(s, u, userinfo, s->n), pw, pn;

		if (!un || at(s, u + un) != ':')
			continue;
		pw = u + un + 1;
		pn = span(s, pw, passinfo, s->n);
		if (!pn || at(s, pw + pn) != '@' || placeholder(s->b + pw, pn))
			continue;
		*pos = (size_t)(p - s->b);
		while (*pos && is_alnum(before(s, *pos)))
			(*pos)--;
		{
			char lab[48];

			snprintf(lab, sizeof(lab),
				 "%.*s:", (int)LF_MIN(pw - 1 - *pos, 40),
				 s->b + *pos);
			excerpt(h, lab, strlen(lab), s->b + pw, pn);
		}
		return hit(h, "git-credentials",
			   "it holds a password in a URL (git credentials)");
	}
	return false;
}

static const rule_fn rules[] = {
	r_private_key, r_aws_key_id, r_aws_secret, r_tokens, r_slack_webhook,
	r_docker_auth, r_kube_key,   r_npmrc,	   r_pypirc, r_git_credentials,
};

bool lf_secret_is_binary(const char *buf, size_t n)
{
	return n &&
	       memchr(buf, '\0', LF_MIN(n, (size_t)LF_SECRET_BINARY_PROBE));
}

static bool name_in(const char *base, const char *const *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(base, v[i]))
			return true;
	return false;
}

static bool dotenv(const char *base)
{
	static const char *const tmpl[] = { "example",	"sample",
					    "template", "dist",
					    "defaults", "tmpl",
					    "schema",	"local.example" };

	if (!strcmp(base, ".env"))
		return true;
	return !strncmp(base, ".env.", 5) && base[5] &&
	       !name_in(base + 5, tmpl, LF_ARRAY_SIZE(tmpl));
}

static bool ends_with_dir(const char *path, const char *tail)
{
	size_t n = strlen(path), t = strlen(tail);

	return n >= t && !strcmp(path + n - t, tail) &&
	       (n == t || path[n - t - 1] == '/');
}

/* The first `KEY=VALUE` line, redacted, or just "****". */
static void name_excerpt(const struct scan *s, struct lf_secret_hit *h)
{
	size_t i = 0;

	while (i < s->n) {
		size_t k = i + span(s, i, is_blank, s->n);
		size_t key = span(s, k, is_ident, s->n);

		if (key && at(s, k + key) == '=') {
			size_t v = k + key + 1,
			       vn = span(s, v, not_space, s->n);
			char lab[48];

			snprintf(lab, sizeof(lab),
				 "%.*s=", (int)LF_MIN(key, 40), s->b + k);
			excerpt(h, lab, strlen(lab), s->b + v, vn);
			return;
		}
		while (i < s->n && s->b[i] != '\n')
			i++;
		i++;
	}
	excerpt(h, "", 0, "", 0);
}

static bool by_name(const char *path, const struct scan *s,
		    struct lf_secret_hit *h)
{
	static const char *const ssh[] = { "id_rsa",	  "id_dsa",
					   "id_ecdsa",	  "id_ed25519",
					   "id_ecdsa_sk", "id_ed25519_sk" };
	const char *b = s->base;

	if (name_in(b, ssh, LF_ARRAY_SIZE(ssh)))
		hit(h, "ssh-private-key-file",
		    "the name is an ssh private key's");
	else if (dotenv(b))
		hit(h, "dotenv-file", "the name is a .env file's");
	else if (!strcmp(b, ".git-credentials"))
		hit(h, "git-credentials-file",
		    "the name is git's credential store's");
	else if (!strcmp(b, ".pgpass"))
		hit(h, "pgpass-file",
		    "the name is a PostgreSQL password file's");
	else if (!strcmp(b, ".netrc") || !strcmp(b, "_netrc"))
		hit(h, "netrc-file", "the name is a .netrc file's");
	else if (ends_with_dir(path, ".aws/credentials"))
		hit(h, "aws-credentials-file",
		    "the name is an AWS credentials file's");
	else
		return false;
	name_excerpt(s, h);
	return true;
}

bool lf_secret_check(const char *path, uint64_t size, const char *buf, size_t n,
		     struct lf_secret_hit *hit_out)
{
	struct scan s = { buf, n, lf_path_basename(path) };
	struct lf_secret_hit best = { 0 }, h;
	size_t k, pos, best_pos = (size_t)-1;

	if (lf_secret_is_binary(buf, n))
		s.n = 0;
	for (k = 0; k < LF_ARRAY_SIZE(rules) && s.n; k++)
		if (rules[k](&s, &pos, &h) && pos < best_pos) {
			best = h;
			best_pos = pos;
		}
	if (best.rule) {
		*hit_out = best;
		return true;
	}
	return size && by_name(path, &s, hit_out);
}

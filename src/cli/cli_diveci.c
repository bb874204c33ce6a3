// SPDX-License-Identifier: MIT
/* cli_diveci.c - dive's CI rules: value forms, the .dive-ci file, verdicts. */
#include "cli_diveci.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIVECI_MAX_FILE (64 * 1024)

static const char *const rule_names[DIVECI_NRULES] = {
	"lowestEfficiency", "highestWastedBytes", "highestUserWastedPercent"
};
/* the snake-case names newer dive versions use in their config */
static const char *const rule_alt[DIVECI_NRULES] = {
	"lowest-efficiency", "highest-wasted-bytes",
	"highest-user-wasted-percent"
};

const char *cli_diveci_name(int rule)
{
	return rule_names[rule];
}

void cli_diveci_defaults(struct cli_diveci *c)
{
	char why[8];

	memset(c, 0, sizeof(*c));
	cli_diveci_value(DIVECI_EFF, "0.9", &c->r[DIVECI_EFF], why, 8);
	cli_diveci_value(DIVECI_BYTES, "disabled", &c->r[DIVECI_BYTES], why, 8);
	cli_diveci_value(DIVECI_PCT, "0.1", &c->r[DIVECI_PCT], why, 8);
	for (int i = 0; i < DIVECI_NRULES; i++)
		c->r[i].set = false;
}

static bool is_disabled(const char *v)
{
	return !strcasecmp(v, "disabled") || !strcasecmp(v, "off") ||
	       !strcasecmp(v, "false");
}

int cli_diveci_parse_bytes(const char *s, uint64_t *out)
{
	static const struct {
		const char *unit;
		double mult;
	} table[] = {
		{ "", 1 },
		{ "b", 1 },
		{ "k", 1e3 },
		{ "kb", 1e3 },
		{ "ki", 1024.0 },
		{ "kib", 1024.0 },
		{ "m", 1e6 },
		{ "mb", 1e6 },
		{ "mi", 1048576.0 },
		{ "mib", 1048576.0 },
		{ "g", 1e9 },
		{ "gb", 1e9 },
		{ "gi", 1073741824.0 },
		{ "gib", 1073741824.0 },
		{ "t", 1e12 },
		{ "tb", 1e12 },
		{ "ti", 0x1p40 },
		{ "tib", 0x1p40 },
		{ "p", 1e15 },
		{ "pb", 1e15 },
		{ "pi", 0x1p50 },
		{ "pib", 0x1p50 },
		{ "e", 1e18 },
		{ "eb", 1e18 },
		{ "ei", 0x1p60 },
		{ "eib", 0x1p60 },
	};
	char num[64], unit[8];
	size_t n = 0, k = 0, i;
	const char *p = s, *e;
	double f;
	char *end;

	for (; isdigit((unsigned char)*p) || *p == '.' || *p == ','; p++)
		if (*p != ',' && n < sizeof(num) - 1)
			num[n++] = *p;
	num[n] = 0;
	/* Go's ParseFloat: digits with at most one '.', nothing else */
	if (!n || n == sizeof(num) - 1 || !strcmp(num, "."))
		return -EINVAL;
	errno = 0;
	f = strtod(num, &end);
	if (errno || *end)
		return -EINVAL;
	while (isspace((unsigned char)*p))
		p++;
	e = p + strlen(p);
	while (e > p && isspace((unsigned char)e[-1]))
		e--;
	if ((size_t)(e - p) >= sizeof(unit))
		return -EINVAL;
	for (; p < e; p++)
		unit[k++] = (char)tolower((unsigned char)*p);
	unit[k] = 0;
	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (!strcmp(unit, table[i].unit)) {
			f *= table[i].mult;
			if (f >= 0x1p64)
				return -EINVAL;
			*out = (uint64_t)f;
			return 0;
		}
	return -EINVAL;
}

/* Go's strconv.ParseFloat for the values people write: no spaces. */
static int parse_ratio(const char *v, double *out)
{
	char *end;

	if (!*v || isspace((unsigned char)*v))
		return -EINVAL;
	errno = 0;
	*out = strtod(v, &end);
	if (errno || *end || isnan(*out))
		return -EINVAL;
	return 0;
}

int cli_diveci_value(int rule, const char *val, struct cli_diveci_rule *out,
		     char *why, size_t whylen)
{
	struct cli_diveci_rule r = { .set = true };

	snprintf(r.text, sizeof(r.text), "%s", val);
	if (strlen(val) >= sizeof(r.text)) {
		snprintf(why, whylen, "is too long");
		return -EINVAL;
	}
	if (is_disabled(val)) {
		r.disabled = true;
	} else if (rule == DIVECI_BYTES) {
		if (cli_diveci_parse_bytes(val, &r.bytes)) {
			snprintf(why, whylen,
				 "'%s' is not a size (bytes, or a number with "
				 "a unit: 20MB, 1.5 GB, 512KiB), nor "
				 "'disabled'",
				 val);
			return -EINVAL;
		}
	} else if (parse_ratio(val, &r.ratio)) {
		snprintf(why, whylen, "'%s' is not a number, nor 'disabled'",
			 val);
		return -EINVAL;
	} else if (r.ratio < 0 || r.ratio > 1) {
		snprintf(why, whylen,
			 "'%s' is outside the allowed range 0..1 (a ratio, "
			 "as dive takes it: 0.95 for 95%%)",
			 val);
		return -EINVAL;
	}
	*out = r;
	return 0;
}

/* --- the YAML subset ---------------------------------------------------- */

struct yline {
	const char *file;
	unsigned lineno;
	char *msg;
	size_t msglen;
};

static int yerr(const struct yline *y, const char *fmt, const char *arg)
{
	int n = snprintf(y->msg, y->msglen, "%s:%u: ", y->file, y->lineno);

	if (n >= 0 && (size_t)n < y->msglen)
		snprintf(y->msg + n, y->msglen - (size_t)n, fmt, arg);
	return -EINVAL;
}

/* Cut a trailing comment (" #..." outside quotes) and trailing spaces. */
static void cut_comment(char *s)
{
	char q = 0, *p, *e;

	for (p = s; *p; p++) {
		if (q) {
			if (*p == q)
				q = 0;
		} else if (*p == '\'' || *p == '"') {
			q = *p;
		} else if (*p == '#' &&
			   (p == s || isspace((unsigned char)p[-1]))) {
			*p = 0;
			break;
		}
	}
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = 0;
}

/* A scalar: plain, 'single' ('' is a quote) or "double" (\" \\ only). */
static int scalar(const struct yline *y, char *v)
{
	char q = v[0], *w = v, *p;

	if (q != '\'' && q != '"') {
		if (strchr("[{&*!|>%@`", q) && q)
			return yerr(y,
				    "'%s': only plain or quoted scalars "
				    "are supported here",
				    v);
		return 0;
	}
	for (p = v + 1; *p; p++) {
		if (q == '\'' && *p == '\'' && p[1] == '\'') {
			*w++ = *p++;
		} else if (*p == q) {
			if (p[1])
				return yerr(y,
					    "text after the closing quote "
					    "in %s",
					    v);
			*w = 0;
			return 0;
		} else if (q == '"' && *p == '\\') {
			if (p[1] != '"' && p[1] != '\\')
				return yerr(y, "unsupported escape in %s", v);
			*w++ = *++p;
		} else {
			*w++ = *p;
		}
	}
	return yerr(y, "unterminated quote in %s", v);
}

static int rule_of(const char *key)
{
	for (int i = 0; i < DIVECI_NRULES; i++)
		if (!strcasecmp(key, rule_names[i]) ||
		    !strcasecmp(key, rule_alt[i]))
			return i;
	return -1;
}

/* Split "key: value" (value may be ""); the key may be quoted. */
static int split_key(const struct yline *y, char *s, char **key, char **val)
{
	char *c = s;

	if (*s == '\'' || *s == '"') {
		c = strchr(s + 1, *s);
		if (!c)
			return yerr(y, "unterminated quote in %s", s);
	}
	c = strchr(c, ':');
	while (c && c[1] && !isspace((unsigned char)c[1]))
		c = strchr(c + 1, ':');
	if (!c)
		return yerr(y, "expected 'key: value', not '%s'", s);
	*c = 0;
	*key = s;
	*val = c + 1;
	while (isspace((unsigned char)**val))
		(*val)++;
	return scalar(y, *key);
}

struct yparse {
	struct cli_diveci *c;
	bool in_rules, rules_seen, skipping, seen[DIVECI_NRULES];
	unsigned rules_indent;
};

static int rule_line(struct yparse *st, const struct yline *y, char *s,
		     unsigned indent)
{
	char why[256], *key, *val;
	int r, ret;

	if (!st->rules_indent)
		st->rules_indent = indent;
	if (indent != st->rules_indent)
		return yerr(y, "%s: unexpected indentation", "rules");
	if (*s == '-')
		return yerr(y, "'%s': rules is a mapping, not a list", s);
	ret = split_key(y, s, &key, &val);
	if (ret)
		return ret;
	r = rule_of(key);
	if (r < 0) {
		fprintf(stderr, "layerfs: %s:%u: unknown rule '%s' ignored\n",
			y->file, y->lineno, key);
		return 0;
	}
	if (st->seen[r])
		return yerr(y, "%s is given twice", rule_names[r]);
	st->seen[r] = true;
	if (!*val)
		return yerr(y, "%s has no value", rule_names[r]);
	ret = scalar(y, val);
	if (ret)
		return ret;
	if (cli_diveci_value(r, val, &st->c->r[r], why, sizeof(why))) {
		char m[320];

		snprintf(m, sizeof(m), "%s: %s", rule_names[r], why);
		return yerr(y, "%s", m);
	}
	return 0;
}

static int top_line(struct yparse *st, const struct yline *y, char *s)
{
	char *key, *val;
	int ret;

	if (*s == '-')
		return yerr(y, "'%s': the top level is a mapping", s);
	ret = split_key(y, s, &key, &val);
	if (ret)
		return ret;
	st->in_rules = st->skipping = false;
	if (strcmp(key, "rules")) {
		/* dive reads only `rules`; others (plugins, ci...) are
		 * skipped with what is nested under them */
		st->skipping = true;
		return 0;
	}
	if (st->rules_seen)
		return yerr(y, "%s is given twice", "rules");
	st->rules_seen = true;
	if (*val)
		return yerr(y,
			    "rules: expected its keys on the next lines, "
			    "not '%s'",
			    val);
	st->in_rules = true;
	return 0;
}

static int parse_line(struct yparse *st, const struct yline *y, char *s)
{
	unsigned indent = 0;

	for (; *s == ' '; s++)
		indent++;
	if (*s == '\t')
		return yerr(y, "%s",
			    "tabs are not allowed in YAML indentation");
	cut_comment(s);
	if (!*s)
		return 0;
	if (!indent && y->lineno == 1 && !strcmp(s, "---"))
		return 0;
	if (!indent)
		return top_line(st, y, s);
	if (st->skipping)
		return 0;
	if (!st->in_rules)
		return yerr(y, "'%s': indented, but under no key", s);
	return rule_line(st, y, s, indent);
}

static int read_small(const char *path, char **out, char *msg, size_t msglen)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	char *buf;
	ssize_t n;

	if (fd < 0) {
		int e = errno;

		snprintf(msg, msglen, "%s: %s", path, strerror(e));
		return e == ENOENT ? -ENOENT : -EINVAL;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) ||
	    st.st_size > DIVECI_MAX_FILE) {
		snprintf(msg, msglen,
			 "%s: not a regular file of at most %d "
			 "bytes",
			 path, DIVECI_MAX_FILE);
		close(fd);
		return -EINVAL;
	}
	buf = malloc((size_t)st.st_size + 1);
	n = buf ? read(fd, buf, (size_t)st.st_size) : -1;
	close(fd);
	if (n < 0) {
		free(buf);
		snprintf(msg, msglen, "%s: cannot read it", path);
		return -EINVAL;
	}
	buf[n] = 0;
	if (strlen(buf) != (size_t)n) {
		free(buf);
		snprintf(msg, msglen, "%s: holds a NUL byte", path);
		return -EINVAL;
	}
	*out = buf;
	return 0;
}

int cli_diveci_load(const char *path, struct cli_diveci *c, char *msg,
		    size_t msglen)
{
	struct yparse st = { .c = c };
	struct yline y = { path, 0, msg, msglen };
	char *buf, *line, *next;
	int ret = read_small(path, &buf, msg, msglen);

	if (ret)
		return ret;
	for (line = buf; !ret && line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		y.lineno++;
		if (*line && line[strlen(line) - 1] == '\r')
			line[strlen(line) - 1] = 0;
		ret = parse_line(&st, &y, line);
	}
	free(buf);
	return ret;
}

/* --- verdicts ------------------------------------------------------------ */

void cli_diveci_gofloat(double v, char *out, size_t len)
{
	char buf[64];
	int p, exp;

	if (isinf(v)) {
		snprintf(out, len, "%s", v > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (isnan(v)) {
		snprintf(out, len, "NaN");
		return;
	}
	if (v == 0) {
		snprintf(out, len, "0");
		return;
	}
	for (p = 0; p < 17; p++) {
		snprintf(buf, sizeof(buf), "%.*e", p, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	exp = (int)strtol(strchr(buf, 'e') + 1, NULL, 10);
	if (exp < -4 || exp >= 6)
		snprintf(out, len, "%.*e", p, v);
	else
		snprintf(out, len, "%.*f", p - exp > 0 ? p - exp : 0, v);
}

bool cli_diveci_eval(const struct cli_diveci *c, double efficiency,
		     uint64_t wasted, double user_ratio,
		     struct cli_diveci_result res[DIVECI_NRULES])
{
	const struct cli_diveci_rule *r = c->r;
	char a[40], b[40];
	bool pass = true;

	for (int i = 0; i < DIVECI_NRULES; i++) {
		res[i].status = r[i].disabled ? DIVECI_SKIP : DIVECI_PASS;
		snprintf(res[i].message, sizeof(res[i].message), "%s",
			 r[i].disabled ? "rule disabled" : "");
	}
	if (!r[DIVECI_EFF].disabled && r[DIVECI_EFF].ratio > efficiency) {
		cli_diveci_gofloat(efficiency, a, sizeof(a));
		cli_diveci_gofloat(r[DIVECI_EFF].ratio, b, sizeof(b));
		res[DIVECI_EFF].status = DIVECI_FAIL;
		snprintf(res[DIVECI_EFF].message, sizeof(res[0].message),
			 "image efficiency is too low (efficiency=%s < "
			 "threshold=%s)",
			 a, b);
	}
	if (!r[DIVECI_BYTES].disabled && wasted > r[DIVECI_BYTES].bytes) {
		res[DIVECI_BYTES].status = DIVECI_FAIL;
		snprintf(res[DIVECI_BYTES].message, sizeof(res[0].message),
			 "too many bytes wasted (wasted-bytes=%llu > "
			 "threshold=%llu)",
			 (unsigned long long)wasted,
			 (unsigned long long)r[DIVECI_BYTES].bytes);
	}
	if (!r[DIVECI_PCT].disabled && r[DIVECI_PCT].ratio < user_ratio) {
		cli_diveci_gofloat(user_ratio, a, sizeof(a));
		cli_diveci_gofloat(r[DIVECI_PCT].ratio, b, sizeof(b));
		res[DIVECI_PCT].status = DIVECI_FAIL;
		snprintf(res[DIVECI_PCT].message, sizeof(res[0].message),
			 "too many bytes wasted, relative to the user bytes "
			 "added (%%-user-wasted-bytes=%s > threshold=%s)",
			 a, b);
	}
	for (int i = 0; i < DIVECI_NRULES; i++)
		pass = pass && res[i].status != DIVECI_FAIL;
	return pass;
}

void cli_diveci_print(FILE *f, const struct cli_diveci_result *res)
{
	/* dive sorts by name: highestUserWastedPercent, highestWastedBytes,
	 * lowestEfficiency */
	static const int order[] = { DIVECI_PCT, DIVECI_BYTES, DIVECI_EFF };
	static const char *const word[] = { "PASS", "FAIL", "SKIP" };
	int tally[3] = { 0, 0, 0 };

	fputs("Results:\n", f);
	for (int k = 0; k < DIVECI_NRULES; k++) {
		const struct cli_diveci_result *r = &res[order[k]];

		tally[r->status]++;
		if (r->message[0])
			fprintf(f, "  %s: %s: %s\n", word[r->status],
				rule_names[order[k]], r->message);
		else
			fprintf(f, "  %s: %s\n", word[r->status],
				rule_names[order[k]]);
	}
	fprintf(f,
		"Result:%s [Total:%d] [Passed:%d] [Failed:%d] [Warn:0] "
		"[Skipped:%d]\n",
		tally[DIVECI_FAIL] ? "FAIL" : "PASS", DIVECI_NRULES,
		tally[DIVECI_PASS], tally[DIVECI_FAIL], tally[DIVECI_SKIP]);
}

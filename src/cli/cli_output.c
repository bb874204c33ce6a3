// SPDX-License-Identifier: MIT
/* cli_output.c - text and --json emitters, the progress line. */
#include "cli_internal.h"

#include <stdarg.h>
#include <string.h>

#include <jansson.h>

#include "layerfs/buf.h"
#include "layerfs/diff.h"
#include "cli_history.h"
#include "layerfs/waste.h"

/* Set once in lf_cli_main() before any thread starts. */
static bool progress_on;
static bool progress_shown;

void cli_set_progress(bool on)
{
	progress_on = on;
}

bool cli_progress_enabled(void)
{
	return progress_on;
}

void cli_progress(const char *fmt, ...)
{
	char line[256];
	va_list ap;

	if (!progress_on)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "\rlayerfs: %s\033[K", line);
	progress_shown = true;
}

void cli_progress_done(void)
{
	if (progress_shown)
		fprintf(stderr, "\r\033[K");
	progress_shown = false;
}

void cli_mode_string(uint32_t mode, char out[11])
{
	static const char rwx[] = "rwxrwxrwx";
	int i;

	switch (mode & S_IFMT) {
	case S_IFDIR:
		out[0] = 'd';
		break;
	case S_IFLNK:
		out[0] = 'l';
		break;
	case S_IFCHR:
		out[0] = 'c';
		break;
	case S_IFBLK:
		out[0] = 'b';
		break;
	case S_IFIFO:
		out[0] = 'p';
		break;
	case S_IFSOCK:
		out[0] = 's';
		break;
	default:
		out[0] = '-';
	}
	for (i = 0; i < 9; i++)
		out[1 + i] = (mode & (0400 >> i)) ? rwx[i] : '-';
	if (mode & S_ISUID)
		out[3] = (mode & S_IXUSR) ? 's' : 'S';
	if (mode & S_ISGID)
		out[6] = (mode & S_IXGRP) ? 's' : 'S';
	if (mode & S_ISVTX)
		out[9] = (mode & S_IXOTH) ? 't' : 'T';
	out[10] = '\0';
}

const char *cli_type_name(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFDIR:
		return "dir";
	case S_IFLNK:
		return "symlink";
	case S_IFCHR:
		return "chr";
	case S_IFBLK:
		return "blk";
	case S_IFIFO:
		return "fifo";
	case S_IFSOCK:
		return "sock";
	default:
		return "file";
	}
}

void cli_human_size(uint64_t n, char out[16])
{
	static const char *units[] = { "B", "kB", "MB", "GB", "TB" };
	double v = (double)n;
	int u = 0;

	while (v >= 1000 && u < 4) {
		v /= 1000;
		u++;
	}
	if (u == 0)
		snprintf(out, 16, "%llu B", (unsigned long long)n);
	else
		snprintf(out, 16, "%.1f %s", v, units[u]);
}

static json_t *hex_value(const void *v, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = v;
	char *s = malloc(len * 2 + 1);
	json_t *j;
	size_t i;

	if (!s)
		return NULL;
	for (i = 0; i < len; i++) {
		s[2 * i] = hex[p[i] >> 4];
		s[2 * i + 1] = hex[p[i] & 15];
	}
	s[2 * len] = '\0';
	j = json_string(s);
	free(s);
	return j;
}

/* Length of the valid UTF-8 sequence at p[0..n) (as jansson checks it:
 * no overlong forms, surrogates or code points past U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len, i;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (p[0] == 0xe0)
		lo = 0xa0;
	else if (p[0] == 0xed)
		hi = 0x9f;
	else if (p[0] == 0xf0)
		lo = 0x90;
	else if (p[0] == 0xf4)
		hi = 0x8f;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

/*
 * Names in images are bytes, and JSON strings hold only Unicode.  A name
 * that is valid UTF-8 is `key` as it is (NFC and NFD stay apart: they are
 * different strings).  Any other name is `key` with U+FFFD for each byte
 * that is not part of valid UTF-8, for display, plus `key_hex` holding
 * the exact bytes in hex (as xattr values are given).
 */
static void set_name(json_t *o, const char *key, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), i = 0, k;
	struct lf_buf lossy, hkey;
	bool bad = false;

	lf_buf_init(&lossy);
	lf_buf_init(&hkey);
	while (i < n) {
		k = utf8_seq(p + i, n - i);
		if (k) {
			lf_buf_add(&lossy, p + i, k);
			i += k;
			continue;
		}
		bad = true;
		lf_buf_adds(&lossy, "\xef\xbf\xbd");
		i++;
	}
	if (!bad) {
		json_object_set_new(o, key, json_stringn(s, n));
	} else {
		json_object_set_new(o, key,
				    json_stringn(lossy.data, lossy.len));
		lf_buf_addf(&hkey, "%s_hex", key);
		json_object_set_new(o, hkey.data, hex_value(s, n));
	}
	lf_buf_release(&lossy);
	lf_buf_release(&hkey);
}

json_t *cli_json_top(void)
{
	json_t *o = json_object();

	if (o)
		json_object_set_new(o, "schema", json_integer(CLI_JSON_SCHEMA));
	return o;
}

json_t *cli_json_ratio(double v)
{
	/* printed with 10 significant digits (CLI_JSON_*): 0.9 is "0.9",
	 * not the nearest double's 17 digits */
	return json_real(v);
}

void cli_json_name(json_t *o, const char *key, const char *s)
{
	set_name(o, key, s);
}

int cli_json_inode(FILE *f, const struct lf_stack *ci, const char *path,
		   const char *name, uint64_t ino, bool top)
{
	struct lf_tree_attr a;
	json_t *o, *x;
	size_t k, n;
	int ret;

	if (lf_tree_getattr(lf_stack_tree(ci), ino, &a))
		return -1;
	o = top ? cli_json_top() : json_object();
	x = json_object();
	if (!o || !x)
		return -1;
	set_name(o, "path", path);
	if (name)
		set_name(o, "name", name);
	json_object_set_new(o, "type", json_string(cli_type_name(a.mode)));
	json_object_set_new(o, "mode", json_integer(a.mode & 07777));
	json_object_set_new(o, "uid", json_integer(a.uid));
	json_object_set_new(o, "gid", json_integer(a.gid));
	json_object_set_new(o, "size", json_integer((json_int_t)a.size));
	json_object_set_new(o, "mtime", json_integer(a.mtime));
	json_object_set_new(o, "mtime_nsec", json_integer(a.mtime_nsec));
	json_object_set_new(o, "ino", json_integer((json_int_t)a.ino));
	json_object_set_new(o, "nlink", json_integer(a.nlink));
	json_object_set_new(o, "blocks", json_integer((json_int_t)a.blocks));
	if (S_ISLNK(a.mode))
		set_name(o, "target", lf_tree_readlink(lf_stack_tree(ci), ino));
	if (S_ISCHR(a.mode) || S_ISBLK(a.mode)) {
		json_object_set_new(o, "rdev_major",
				    json_integer(a.rdev_major));
		json_object_set_new(o, "rdev_minor",
				    json_integer(a.rdev_minor));
	}
	n = lf_tree_xattr_count(lf_stack_tree(ci), ino);
	for (k = 0; k < n; k++) {
		const char *xn;
		const void *v;
		size_t len;

		lf_tree_xattr(lf_stack_tree(ci), ino, k, &xn, &v, &len);
		json_object_set_new(x, xn, hex_value(v, len));
	}
	json_object_set_new(o, "xattrs", x);
	json_object_set_new(o, "layer",
			    a.layer < 0 ? json_null()
					: json_integer(a.layer + 1));
	ret = json_dumpf(o, f, CLI_JSON_COMPACT);
	json_decref(o);
	return ret;
}

/* The per-layer waste fields, shared by `layers --json` and `waste --json`. */
static void add_waste_fields(json_t *e, const struct lf_waste_layer *l)
{
	json_object_set_new(e, "added", json_integer((json_int_t)l->added));
	json_object_set_new(e, "overwritten",
			    json_integer((json_int_t)l->overwritten));
	json_object_set_new(e, "deleted", json_integer((json_int_t)l->deleted));
}

/* A layer object: the same fields in `layers --json` and `waste --json`. */
static json_t *layer_object(const struct lf_stack *ci, size_t i,
			    const struct lf_waste *w)
{
	const struct lf_image_layer *l = lf_stack_layer(ci, i);
	const struct lf_index *x = lf_stack_index(ci, i);
	json_t *e = json_object();

	if (!e)
		return NULL;
	json_object_set_new(e, "index", json_integer((json_int_t)i + 1));
	json_object_set_new(e, "digest",
			    json_string(l->digest[0]
						? l->digest
						: lf_index_blob_digest(x)));
	json_object_set_new(e, "diff_id",
			    json_string(lf_index_diff_id(x)[0] || !l->diff_id[0]
						? lf_index_diff_id(x)
						: l->diff_id));
	json_object_set_new(e, "media_type",
			    json_string(l->media_type ? l->media_type : ""));
	json_object_set_new(e, "compression",
			    json_string(lf_compression_name(
				    lf_index_compression(x))));
	json_object_set_new(e, "size",
			    json_integer((json_int_t)lf_index_blob_size(x)));
	json_object_set_new(e, "uncompressed_size",
			    json_integer((json_int_t)lf_index_tar_size(x)));
	json_object_set_new(e, "entries",
			    json_integer((json_int_t)lf_index_count(x)));
	json_object_set_new(e, "whiteouts",
			    json_integer((json_int_t)lf_index_whiteouts(x)));
	json_object_set_new(e, "created_by",
			    l->created_by ? json_string(l->created_by)
					  : json_null());
	json_object_set_new(e, "created",
			    l->created ? json_string(l->created) : json_null());
	add_waste_fields(e, &w->layers[i]);
	return e;
}

int cli_json_layers(FILE *f, const struct lf_stack *ci,
		    const struct lf_waste *w, const struct cli_history *h)
{
	const struct lf_image *img = lf_stack_image(ci);
	json_t *o = cli_json_top(), *arr = json_array();
	size_t i;
	int ret;

	if (!o || !arr)
		return -1;
	set_name(o, "image", lf_image_path(img));
	json_object_set_new(o, "format", json_string(lf_image_format(img)));
	json_object_set_new(o, "manifest_digest",
			    json_string(lf_image_manifest_digest(img)));
	json_object_set_new(o, "config_digest",
			    json_string(lf_image_config_digest(img)));
	for (i = 0; i < lf_stack_count(ci); i++)
		json_array_append_new(arr, layer_object(ci, i, w));
	json_object_set_new(o, "layers", arr);
	json_object_set_new(o, "history", cli_history_json(h));
	ret = json_dumpf(o, f, CLI_JSON_INDENT);
	fputc('\n', f);
	json_decref(o);
	return ret;
}
int cli_json_commit(FILE *f, const char *layer, const char *diff_id,
		    uint64_t layer_size, const char *manifest, size_t nlayers,
		    const char *format, const char *out)
{
	json_t *o = cli_json_top();
	int ret;

	if (!o)
		return -1;
	json_object_set_new(o, "layer_digest", json_string(layer));
	json_object_set_new(o, "diff_id", json_string(diff_id));
	json_object_set_new(o, "layer_size",
			    json_integer((json_int_t)layer_size));
	json_object_set_new(o, "manifest_digest", json_string(manifest));
	json_object_set_new(o, "layer_count",
			    json_integer((json_int_t)nlayers));
	json_object_set_new(o, "format", json_string(format));
	set_name(o, "out", out);
	/* the names before schema 1, kept for scripts */
	json_object_set_new(o, "layer", json_string(layer));
	json_object_set_new(o, "manifest", json_string(manifest));
	json_object_set_new(o, "layers", json_integer((json_int_t)nlayers));
	ret = json_dumpf(o, f, CLI_JSON_COMPACT);
	fputc('\n', f);
	json_decref(o);
	return ret;
}

int cli_json_change(FILE *f, const struct lf_diff_change *c)
{
	char kind[2] = { c->kind, 0 };
	json_t *o = json_object();
	int ret;

	if (!o)
		return -1;
	json_object_set_new(o, "kind", json_string(kind));
	set_name(o, "path", c->path);
	json_object_set_new(o, "type", json_string(cli_type_name(c->mode)));
	json_object_set_new(o, "size", json_integer((json_int_t)c->size));
	ret = json_dumpf(o, f, CLI_JSON_COMPACT);
	json_decref(o);
	return ret;
}

int cli_json_diff_stat(FILE *f, const uint64_t paths[3],
		       const uint64_t bytes[3])
{
	static const char *names[] = { "added", "changed", "deleted" };
	json_t *o = json_object();
	int k, ret;

	if (!o)
		return -1;
	for (k = 0; k < 3; k++) {
		json_t *e = json_object();

		json_object_set_new(e, "paths",
				    json_integer((json_int_t)paths[k]));
		json_object_set_new(e, "bytes",
				    json_integer((json_int_t)bytes[k]));
		json_object_set_new(o, names[k], e);
	}
	ret = json_dumpf(o, f, CLI_JSON_COMPACT);
	json_decref(o);
	return ret;
}

/* A gate's value or limit: bytes are integers, the rest ratios. */
static json_t *gate_number(const struct cli_gate_result *g, double v)
{
	if (!strcmp(g->name, "highestWastedBytes"))
		return json_integer((json_int_t)v);
	return cli_json_ratio(v);
}

int cli_json_waste(FILE *f, const struct lf_stack *stack,
		   const struct lf_waste *w, const struct cli_gate_result *g,
		   size_t ng, bool ci)
{
	json_t *o = cli_json_top(), *layers = json_array(), *top = json_array();
	json_t *sec = json_array();
	size_t i, k;
	int ret;

	if (!o || !layers || !top || !sec)
		return -1;
	for (i = 0; i < w->nlayers; i++)
		json_array_append_new(layers, layer_object(stack, i, w));
	for (i = 0; i < w->ntop; i++) {
		json_t *e = json_object(), *l = json_array();

		for (k = 0; k < w->top[i].nlayers; k++)
			json_array_append_new(l, json_integer(
							 w->top[i].layers[k]));
		set_name(e, "path", w->top[i].path);
		json_object_set_new(e, "cumulative",
				    json_integer(
					    (json_int_t)w->top[i].cumulative));
		json_object_set_new(e, "layers", l);
		json_object_set_new(e, "hidden_by",
				    w->top[i].hidden_by
					    ? json_integer(w->top[i].hidden_by)
					    : json_null());
		json_array_append_new(top, e);
	}
	for (i = 0; i < w->nsecrets; i++) {
		json_t *e = json_object();

		set_name(e, "path", w->secrets[i].path);
		json_object_set_new(e, "layer",
				    json_integer(w->secrets[i].layer));
		json_object_set_new(e, "hidden_by",
				    w->secrets[i].hidden_by
					    ? json_integer(
						      w->secrets[i].hidden_by)
					    : json_null());
		json_object_set_new(e, "size",
				    json_integer(
					    (json_int_t)w->secrets[i].size));
		json_object_set_new(e, "reason",
				    json_string(w->secrets[i].reason));
		json_object_set_new(e, "rule", json_string(w->secrets[i].rule));
		json_object_set_new(e, "excerpt",
				    json_string(w->secrets[i].excerpt));
		json_array_append_new(sec, e);
	}
	json_object_set_new(o, "layers", layers);
	json_object_set_new(o, "efficiency", cli_json_ratio(w->efficiency));
	json_object_set_new(o, "wasted_bytes",
			    json_integer((json_int_t)w->wasted_bytes));
	json_object_set_new(o, "total_size",
			    json_integer((json_int_t)w->total_size));
	json_object_set_new(o, "user_size",
			    json_integer((json_int_t)w->user_size));
	json_object_set_new(o, "wasted_user_percent",
			    cli_json_ratio(w->wasted_user_ratio));
	json_object_set_new(o, "top", top);
	json_object_set_new(o, "secrets", sec);
	json_object_set_new(o, "secrets_unscanned",
			    json_integer((json_int_t)w->secrets_unscanned));
	if (ci) {
		json_t *c = json_object(), *rules = json_array();
		bool pass = true;

		for (i = 0; i < ng; i++) {
			json_t *r = json_object();

			json_object_set_new(r, "name", json_string(g[i].name));
			json_object_set_new(r, "value",
					    gate_number(&g[i], g[i].v));
			json_object_set_new(r, "limit",
					    g[i].skip ? json_null()
						      : gate_number(&g[i],
								    g[i].lim));
			json_object_set_new(r, "pass", json_boolean(g[i].pass));
			json_object_set_new(r, "status",
					    json_string(g[i].skip   ? "skip"
							: g[i].pass ? "pass"
								    : "fail"));
			json_array_append_new(rules, r);
			pass = pass && g[i].pass;
		}
		json_object_set_new(c, "pass", json_boolean(pass));
		json_object_set_new(c, "rules", rules);
		json_object_set_new(o, "ci", c);
	}
	ret = json_dumpf(o, f, CLI_JSON_INDENT);
	fputc('\n', f);
	json_decref(o);
	return ret;
}

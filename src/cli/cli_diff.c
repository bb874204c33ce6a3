// SPDX-License-Identifier: MIT
/* cli_diff.c - `layerfs diff`: A/C/D lines between prefixes or with an upper. */
#include "cli_internal.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "layerfs/diff.h"
#include "layerfs/tree_cache.h"
#include "layerfs/upper.h"

static const char diff_help[] =
	"usage: layerfs diff [options] IMAGE [--from A] [--to B]\n"
	"       layerfs diff [options] IMAGE [--layers N] --upper DIR\n"
	"       layerfs diff [options] IMAGE_A IMAGE_B [--from A] [--to B]\n\n"
	"What changes between the view of layers 1..A and of layers 1..B (B\n"
	"defaults to all layers, A to B-1; 0 is the empty view), or what an\n"
	"upper directory changes in the view of layers 1..N, or from IMAGE_A\n"
	"(its layers 1..A) to IMAGE_B (its layers 1..B; both default to all;\n"
	"any transports).  One line per changed path, as docker diff prints\n"
	"them: 'A /path' added, 'C /path' changed, 'D /path' deleted; parents\n"
	"before children.  Two images that share layers (by digest) read no\n"
	"byte of what they share; --stat also counts the layers shared.\n\n"
	"options:\n"
	"      --from A         the view before (a layer count; of IMAGE_A)\n"
	"      --to B           the view after (a layer count; of IMAGE_B)\n"
	"      --upper DIR      compare the view with DIR on top to the view\n"
	"      --stat           counts and bytes per kind instead of "
	"lines\n" CLI_COMMON_HELP;

enum { OPT_FROM = 2000, OPT_TO, OPT_UPPER, OPT_STAT };

struct out {
	struct cli_opts *o;
	bool stat;
	uint64_t paths[3], bytes[3];
	bool first;
	/* two images: layers in the common base, shared anywhere by digest,
	 * and in one image only */
	bool two;
	size_t base, shared, only_a, only_b;
};

static int kind_slot(char k)
{
	return k == 'A' ? 0 : k == 'C' ? 1 : 2;
}

static int on_change(void *ctx, const struct lf_diff_change *c)
{
	struct out *out = ctx;
	int k = kind_slot(c->kind);

	out->paths[k]++;
	out->bytes[k] += c->size;
	if (out->stat)
		return 0;
	if (out->o->json) {
		printf("%s", out->first ? "" : ",\n");
		cli_json_change(stdout, c);
		out->first = false;
	} else {
		printf("%c %s\n", c->kind, c->path);
	}
	return ferror(stdout) ? -EIO : 0;
}

static void print_stat(const struct out *out)
{
	static const char *names[] = { "added", "changed", "deleted" };
	int k;

	for (k = 0; k < 3; k++)
		printf("%s: %llu paths, %llu bytes\n", names[k],
		       (unsigned long long)out->paths[k],
		       (unsigned long long)out->bytes[k]);
	if (out->two)
		printf("layers: %zu shared (the bottom %zu in common), %zu "
		       "only "
		       "in the first image, %zu only in the second\n",
		       out->shared, out->base, out->only_a, out->only_b);
}

/* Is layer digest d among the first n layers of s? */
static bool has_layer(const struct lf_stack *s, size_t n, const char *d)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const struct lf_image_layer *l = lf_stack_layer(s, i);

		if (l && l->digest[0] && !strcmp(l->digest, d))
			return true;
	}
	return false;
}

/* Which layers of prefixes a[0..na) and b[0..nb) are shared by digest. */
static void count_layers(const struct lf_stack *a, size_t na,
			 const struct lf_stack *b, size_t nb, struct out *out)
{
	size_t i;

	for (i = 0; i < na && i < nb; i++) {
		const struct lf_image_layer *x = lf_stack_layer(a, i);
		const struct lf_image_layer *y = lf_stack_layer(b, i);

		if (!x || !y || !x->digest[0] || strcmp(x->digest, y->digest))
			break;
	}
	out->base = i;
	for (i = 0; i < na; i++) {
		const struct lf_image_layer *l = lf_stack_layer(a, i);

		if (l && l->digest[0] && has_layer(b, nb, l->digest))
			out->shared++;
		else
			out->only_a++;
	}
	for (i = 0; i < nb; i++) {
		const struct lf_image_layer *l = lf_stack_layer(b, i);

		if (!(l && l->digest[0] && has_layer(a, na, l->digest)))
			out->only_b++;
	}
}

/* Two images: IMAGE_A's layers 1..from against IMAGE_B's 1..to. */
static int run_images(struct cli_opts *o, const char *pa, const char *pb,
		      long from, long to, struct out *out)
{
	struct lf_stack *a = NULL, *b = NULL;
	struct lf_tree *ta = NULL, *tb = NULL;
	struct lf_err err = { 0 };
	size_t na, nb;
	int ret;

	if ((ret = cli_open(o, pa, true, false, &a)) ||
	    (ret = cli_open(o, pb, true, false, &b)))
		goto out;
	na = from < 0 ? lf_stack_count(a) : (size_t)from;
	nb = to < 0 ? lf_stack_count(b) : (size_t)to;
	if (na > lf_stack_count(a) || nb > lf_stack_count(b)) {
		ret = cli_usage("diff",
				"--from %ld --to %ld: '%s' has %zu layers, "
				"'%s' %zu",
				from, to, pa, lf_stack_count(a), pb,
				lf_stack_count(b));
		goto out;
	}
	count_layers(a, na, b, nb, out);
	if (lf_stack_tree_prefix(a, na, &ta, &err) ||
	    lf_stack_tree_prefix(b, nb, &tb, &err)) {
		cli_error("%s: %s", ta ? pb : pa, err.msg);
		ret = CLI_ERR;
		goto out;
	}
	{
		struct lf_mview va = { a, ta, NULL };
		struct lf_mview vb = { b, tb, NULL };

		if (o->json && !out->stat)
			printf("{\"schema\":%d,\"changes\": [\n",
			       CLI_JSON_SCHEMA);
		if (lf_diff_run(&va, &vb, on_change, out, &err)) {
			cli_error("%s: %s", pb, err.msg);
			ret = CLI_ERR;
		}
	}
out:
	lf_tree_free(ta);
	lf_tree_free(tb);
	lf_stack_close(a);
	lf_stack_close(b);
	return ret;
}

static int parse_count(const char *arg, const char *what, long *out)
{
	char *end;

	errno = 0;
	*out = strtol(arg, &end, 10);
	if (errno || !*arg || *end || *out < 0)
		return cli_usage("diff", "%s wants a layer count, not '%s'",
				 what, arg);
	return 0;
}

static int run_prefixes(const struct lf_stack *ci, long from, long to,
			struct out *out)
{
	struct lf_tree *ta = NULL, *tb = NULL;
	struct lf_err err = { 0 };
	size_t i;
	int ret = CLI_OK;

	for (i = 0; i < (size_t)to; i++)
		if (!lf_stack_blob(ci, i, &err)) {
			cli_error("%s: %s", lf_stack_name(ci), err.msg);
			return CLI_ERR;
		}
	if (lf_stack_tree_prefix(ci, (size_t)from, &ta, &err) ||
	    lf_stack_tree_prefix(ci, (size_t)to, &tb, &err)) {
		cli_error("%s: %s", lf_stack_name(ci), err.msg);
		ret = CLI_ERR;
	} else {
		struct lf_mview a = { ci, ta, NULL };
		struct lf_mview b = { ci, tb, NULL };

		if (lf_diff_run(&a, &b, on_change, out, &err)) {
			cli_error("%s: %s", lf_stack_name(ci), err.msg);
			ret = CLI_ERR;
		}
	}
	lf_tree_free(ta);
	lf_tree_free(tb);
	return ret;
}

static int run_upper(const struct lf_stack *ci, const char *dir,
		     struct out *out)
{
	struct lf_upper *up = NULL;
	struct lf_err err = { 0 };
	struct stat st;
	size_t i;
	int ret = CLI_OK;

	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		cli_error("upper directory '%s': %s", dir,
			  errno == 0 || S_ISDIR(st.st_mode)
				  ? strerror(errno)
				  : "not a directory");
		return CLI_ERR;
	}
	for (i = 0; i < lf_stack_count(ci); i++)
		if (!lf_stack_blob(ci, i, &err)) {
			cli_error("%s: %s", lf_stack_name(ci), err.msg);
			return CLI_ERR;
		}
	if (lf_upper_new(dir, ci, &up, &err)) {
		cli_error("%s", err.msg);
		return CLI_ERR;
	} else {
		struct lf_mview a = { ci, lf_stack_tree(ci), NULL };
		struct lf_mview b = { ci, lf_stack_tree(ci), up };

		if (lf_diff_run(&a, &b, on_change, out, &err)) {
			cli_error("%s: %s", dir, err.msg);
			ret = CLI_ERR;
		}
	}
	lf_upper_free(up);
	return ret;
}

int cli_cmd_diff(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "from", required_argument, NULL, OPT_FROM },
		{ "to", required_argument, NULL, OPT_TO },
		{ "upper", required_argument, NULL, OPT_UPPER },
		{ "stat", no_argument, NULL, OPT_STAT },
		{ 0, 0, 0, 0 },
	};
	struct cli_opts o = { 0 };
	struct out out = { &o, false, { 0 }, { 0 }, true };
	const char *upper = NULL;
	long from = -1, to = -1, count;
	struct lf_stack *ci = NULL;
	int c, ret;

	while ((c = getopt_long(argc, argv, ":q", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_HELP:
			fputs(diff_help, stdout);
			return CLI_OK;
		case OPT_FROM:
			if (parse_count(optarg, "--from", &from))
				return CLI_USAGE;
			continue;
		case OPT_TO:
			if (parse_count(optarg, "--to", &to))
				return CLI_USAGE;
			continue;
		case OPT_UPPER:
			upper = optarg;
			continue;
		case OPT_STAT:
			out.stat = true;
			continue;
		}
		ret = cli_common_opt(c, optarg, &o);
		if (ret < 0)
			return CLI_USAGE;
		if (!ret)
			return cli_bad_option("diff", c, argv);
	}
	if (argc - optind == 2) {
		if (upper || o.has_layers)
			return cli_usage("diff", "two images are compared "
						 "with --from/--to, not "
						 "--upper or --layers");
		if (o.quiet)
			cli_set_progress(false);
		out.two = true;
		ret = run_images(&o, argv[optind], argv[optind + 1], from, to,
				 &out);
		goto done;
	}
	if (argc - optind != 1)
		return cli_usage("diff", "expected IMAGE, or IMAGE_A IMAGE_B");
	if (upper && (from >= 0 || to >= 0))
		return cli_usage("diff", "--upper compares with --layers N, "
					 "not --from/--to");
	if (o.quiet)
		cli_set_progress(false);
	ret = cli_open(&o, argv[optind], !upper, upper != NULL, &ci);
	if (ret)
		goto out;
	count = (long)lf_stack_count(ci);
	if (!upper) {
		if (to < 0)
			to = count;
		if (from < 0)
			from = to > 0 ? to - 1 : 0;
		if (to > count || from > to) {
			ret = cli_usage("diff",
					"--from %ld --to %ld: '%s' has "
					"%ld layers (want 0 <= from <= to <= "
					"%ld)",
					from, to, argv[optind], count, count);
			goto out;
		}
	}
	if (o.json && !out.stat)
		printf("{\"schema\":%d,\"changes\": [\n", CLI_JSON_SCHEMA);
	ret = upper ? run_upper(ci, upper, &out)
		    : run_prefixes(ci, from, to, &out);
done:
	if (ret == CLI_OK && o.json) {
		if (!out.stat)
			fputs(out.first ? "]" : "\n]", stdout);
		if (out.stat)
			printf("{\"schema\":%d,\"stat\": ", CLI_JSON_SCHEMA);
		else
			fputs(", \"stat\": ", stdout);
		cli_json_diff_stat(stdout, out.paths, out.bytes);
		if (out.two)
			printf(", \"layers\": {\"base\": %zu, \"shared\": %zu, "
			       "\"only_a\": %zu, \"only_b\": %zu}",
			       out.base, out.shared, out.only_a, out.only_b);
		fputs("}\n", stdout);
	} else if (ret == CLI_OK && out.stat) {
		print_stat(&out);
	}
out:
	lf_stack_close(ci);
	return cli_flush(ret);
}

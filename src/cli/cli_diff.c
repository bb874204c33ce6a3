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
	"       layerfs diff [options] IMAGE [--layers N] --upper DIR\n\n"
	"What changes between the view of layers 1..A and of layers 1..B (B\n"
	"defaults to all layers, A to B-1; 0 is the empty view), or what an\n"
	"upper directory changes in the view of layers 1..N.  One line per\n"
	"changed path, as docker diff prints them: 'A /path' added, 'C /path'\n"
	"changed, 'D /path' deleted; parents before children.\n\n"
	"options:\n"
	"      --from A         the view before (a layer count)\n"
	"      --to B           the view after (a layer count)\n"
	"      --upper DIR      compare the view with DIR on top to the view\n"
	"      --stat           counts and bytes per kind instead of "
	"lines\n" CLI_COMMON_HELP;

enum { OPT_FROM = 2000, OPT_TO, OPT_UPPER, OPT_STAT };

struct out {
	struct cli_opts *o;
	bool stat;
	uint64_t paths[3], bytes[3];
	bool first;
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
	if (argc - optind != 1)
		return cli_usage("diff", "expected one IMAGE");
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
	if (ret == CLI_OK && o.json) {
		if (!out.stat)
			fputs(out.first ? "]" : "\n]", stdout);
		if (out.stat)
			printf("{\"schema\":%d,\"stat\": ", CLI_JSON_SCHEMA);
		else
			fputs(", \"stat\": ", stdout);
		cli_json_diff_stat(stdout, out.paths, out.bytes);
		fputs("}\n", stdout);
	} else if (ret == CLI_OK && out.stat) {
		print_stat(&out);
	}
out:
	lf_stack_close(ci);
	return cli_flush(ret);
}

// SPDX-License-Identifier: MIT
/* cli_waste.c - `layerfs waste`: bytes shipped but hidden, dive's CI gates. */
#include "cli_internal.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli_diveci.h"
#include "layerfs/waste.h"

static const char waste_help[] =
	"usage: layerfs waste [options] IMAGE\n\n"
	"Where the image's bytes go: per layer, bytes added and how many of\n"
	"them a later layer overwrites or deletes; dive's efficiency score "
	"and\n"
	"wasted bytes; the paths that waste most, with the layers that ship\n"
	"and hide them; and files that hold secrets (private keys, cloud and\n"
	"registry tokens, credential files: well-known rules on the first\n"
	"MiB of each file) that are invisible in the final view but readable\n"
	"in a layer.\n\n"
	"options:\n"
	"      --top N          list the N most wasteful paths (default 10)\n"
	"      --secrets WHICH  files to judge: hidden (default), all (the\n"
	"                       visible ones too), none\n"
	"      --ci             exit 1 when a gate fails (dive's CI rules,\n"
	"                       read from ./.dive-ci when it exists; the\n"
	"                       options below override the file):\n"
	"      --ci-config FILE       dive's .dive-ci file to use (implies "
	"--ci)\n"
	"      --min-efficiency F     efficiency below F fails (a ratio 0..1,\n"
	"                             default 0.9)\n"
	"      --max-wasted-bytes N   wasted bytes above N fail (20MB = "
	"20*1000^2,\n"
	"                             20MiB = 20*1024^2; default disabled)\n"
	"      --max-wasted-percent R wasted / user bytes above R fails (a\n"
	"                             ratio 0..1 as dive takes it; default "
	"0.1)\n"
	"                       each also takes 'disabled' or 'off'; dive's\n"
	"                       --lowestEfficiency, --highestWastedBytes and\n"
	"                       --highestUserWastedPercent are the same "
	"options.\n"
	"Exit status with --ci: 0 all gates pass, 1 a gate fails, 2 a bad\n"
	"option or CI file.\n" CLI_COMMON_HELP;

enum {
	OPT_TOP = 3000,
	OPT_SECRETS,
	OPT_CI,
	OPT_MIN_EFF,
	OPT_MAX_BYTES,
	OPT_MAX_PCT,
	OPT_CI_CONFIG
};

struct gates {
	bool ci;
	const char *config;	 /* --ci-config FILE */
	struct cli_diveci cmd;	 /* rules given on the command line */
	struct cli_diveci rules; /* in force: defaults < file < command line */
	const char *used;	 /* the CI file read, or NULL */
	struct cli_diveci_result res[DIVECI_NRULES];
};

static int parse_double(const char *arg, const char *what, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(arg, &end);
	if (errno || !*arg || *end || *out < 0)
		return cli_usage("waste", "%s wants a number, not '%s'", what,
				 arg);
	return 0;
}

/* The secrets a later layer hides, or those still visible. */
static void print_secrets(const struct lf_waste *w, bool hidden)
{
	bool head = false;
	size_t i;

	for (i = 0; i < w->nsecrets; i++) {
		const struct lf_waste_secret *s = &w->secrets[i];

		if (!s->hidden_by != !hidden)
			continue;
		if (!head)
			printf(hidden ? "\nhidden but shipped, and it looks "
					"like "
					"a secret:\n"
				      : "\nvisible, and it looks like a "
					"secret:\n");
		head = true;
		if (hidden)
			printf("  %s: shipped in layer %u, hidden by layer %u "
			       "(%s) %s %s\n",
			       s->path, s->layer, s->hidden_by, s->reason,
			       s->rule, s->excerpt);
		else
			printf("  %s: shipped in layer %u (%s) %s %s\n",
			       s->path, s->layer, s->reason, s->rule,
			       s->excerpt);
	}
}

static void print_text(const struct lf_waste *w, const struct lf_stack *ci,
		       const struct cli_gate_result *g, size_t ng,
		       const struct gates *gt)
{
	char a[16], o[16], d[16], t[16];
	size_t i, k;

	printf("%-3s %10s %12s %10s  %s\n", "#", "ADDED", "OVERWRITTEN",
	       "DELETED", "CREATED BY");
	for (i = 0; i < w->nlayers; i++) {
		const struct lf_image_layer *l = lf_stack_layer(ci, i);

		cli_human_size(w->layers[i].added, a);
		cli_human_size(w->layers[i].overwritten, o);
		cli_human_size(w->layers[i].deleted, d);
		printf("%-3zu %10s %12s %10s  %s\n", i + 1, a, o, d,
		       l->created_by ? l->created_by : "");
	}
	cli_human_size(w->wasted_bytes, a);
	cli_human_size(w->user_size, t);
	printf("\nefficiency: %.4f\nwasted bytes: %llu (%s)\n"
	       "user bytes: %llu (%s), wasted: %.2f%%\n",
	       w->efficiency, (unsigned long long)w->wasted_bytes, a,
	       (unsigned long long)w->user_size, t,
	       100.0 * w->wasted_user_ratio);
	if (w->ntop)
		printf("\n%12s  %-14s %-9s %s\n", "WASTED", "LAYERS",
		       "HIDDEN BY", "PATH");
	for (i = 0; i < w->ntop; i++) {
		char layers[64] = "";
		size_t len = 0;

		for (k = 0; k < w->top[i].nlayers && len < sizeof(layers) - 12;
		     k++)
			len += (size_t)snprintf(layers + len,
						sizeof(layers) - len, "%s%u",
						k ? "," : "",
						w->top[i].layers[k]);
		char hid[16] = "-";

		if (w->top[i].hidden_by)
			snprintf(hid, sizeof(hid), "%u", w->top[i].hidden_by);
		printf("%12llu  %-14s %-9s %s\n",
		       (unsigned long long)w->top[i].cumulative, layers, hid,
		       w->top[i].path);
	}
	print_secrets(w, true);
	print_secrets(w, false);
	if (w->secrets_unscanned)
		printf("\n%zu files judged by name only: the scan budget is "
		       "spent\n",
		       w->secrets_unscanned);
	for (i = 0, k = 0; i < ng; i++)
		if (!g[i].skip)
			printf("%s%s: %s (%s %s %s)\n", k++ ? "" : "\n",
			       g[i].name, g[i].pass ? "PASS" : "FAIL",
			       g[i].value, g[i].pass ? "within" : "beyond",
			       g[i].limit);
	if (!ng)
		return;
	/* dive's own lines, for scripts written against dive */
	if (gt->used)
		printf("\nUsing CI config: %s\n", gt->used);
	else
		printf("\nUsing default CI config\n");
	cli_diveci_print(stdout, gt->res);
}

/* One gate per rule for the table and the JSON (dive's verdicts in res). */
static size_t run_gates(const struct lf_waste *w, struct gates *gt,
			struct cli_gate_result *g)
{
	const struct cli_diveci_rule *r = gt->rules.r;
	double v[DIVECI_NRULES] = { w->efficiency, (double)w->wasted_bytes,
				    w->wasted_user_ratio };
	size_t i;

	cli_diveci_eval(&gt->rules, w->efficiency, w->wasted_bytes,
			w->wasted_user_ratio, gt->res);
	for (i = 0; i < DIVECI_NRULES; i++) {
		bool bytes = i == DIVECI_BYTES;

		g[i] = (struct cli_gate_result){
			cli_diveci_name((int)i),
			gt->res[i].status != DIVECI_FAIL,
			"",
			"",
			v[i],
			bytes ? (double)r[i].bytes : r[i].ratio,
			gt->res[i].status == DIVECI_SKIP,
		};
		if (bytes) {
			snprintf(g[i].value, sizeof(g[i].value), "%llu",
				 (unsigned long long)w->wasted_bytes);
			snprintf(g[i].limit, sizeof(g[i].limit), "%llu",
				 (unsigned long long)r[i].bytes);
		} else {
			snprintf(g[i].value, sizeof(g[i].value), "%.4f", v[i]);
			snprintf(g[i].limit, sizeof(g[i].limit), "%.4f",
				 r[i].ratio);
		}
	}
	return DIVECI_NRULES;
}

static int rule_opt(struct gates *gt, int rule, const char *opt,
		    const char *arg)
{
	char why[256];

	if (cli_diveci_value(rule, arg, &gt->cmd.r[rule], why, sizeof(why)))
		return cli_usage("waste", "%s: %s", opt, why);
	return 0;
}

/* The rules in force: dive's defaults, then the CI file (--ci-config, or
 * ./.dive-ci when there is one), then the command line. */
static int ci_rules(struct gates *gt)
{
	char msg[512];
	const char *path = gt->config ? gt->config : ".dive-ci";
	int ret, i;

	cli_diveci_defaults(&gt->rules);
	ret = cli_diveci_load(path, &gt->rules, msg, sizeof(msg));
	if (ret == -ENOENT && !gt->config) {
		cli_diveci_defaults(&gt->rules);
		ret = 0;
	} else if (ret) {
		cli_error("%s", msg);
		return CLI_USAGE;
	} else {
		gt->used = path;
	}
	for (i = 0; i < DIVECI_NRULES; i++)
		if (gt->cmd.r[i].set)
			gt->rules.r[i] = gt->cmd.r[i];
	return CLI_OK;
}

int cli_cmd_waste(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "top", required_argument, NULL, OPT_TOP },
		{ "secrets", required_argument, NULL, OPT_SECRETS },
		{ "ci", no_argument, NULL, OPT_CI },
		{ "min-efficiency", required_argument, NULL, OPT_MIN_EFF },
		{ "max-wasted-bytes", required_argument, NULL, OPT_MAX_BYTES },
		{ "max-wasted-percent", required_argument, NULL, OPT_MAX_PCT },
		{ "ci-config", required_argument, NULL, OPT_CI_CONFIG },
		/* dive's own names */
		{ "lowestEfficiency", required_argument, NULL, OPT_MIN_EFF },
		{ "highestWastedBytes", required_argument, NULL,
		  OPT_MAX_BYTES },
		{ "highestUserWastedPercent", required_argument, NULL,
		  OPT_MAX_PCT },
		{ 0, 0, 0, 0 },
	};
	struct gates gt = { 0 };
	enum lf_waste_secrets which = LF_WASTE_SECRETS_HIDDEN;
	struct cli_gate_result g[DIVECI_NRULES];
	struct cli_opts o = { 0 };
	struct lf_waste *w = NULL;
	struct lf_err err = { 0 };
	struct lf_stack *ci = NULL;
	double v;
	size_t top = 10, i, ng = 0;
	int c, ret;

	while ((c = getopt_long(argc, argv, ":q", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_HELP:
			fputs(waste_help, stdout);
			return CLI_OK;
		case OPT_TOP:
			if (parse_double(optarg, "--top", &v))
				return CLI_USAGE;
			top = (size_t)v;
			continue;
		case OPT_SECRETS:
			if (!strcmp(optarg, "hidden"))
				which = LF_WASTE_SECRETS_HIDDEN;
			else if (!strcmp(optarg, "all"))
				which = LF_WASTE_SECRETS_ALL;
			else if (!strcmp(optarg, "none"))
				which = LF_WASTE_SECRETS_NONE;
			else
				return cli_usage("waste",
						 "--secrets wants hidden, all "
						 "or none, not '%s'",
						 optarg);
			continue;
		case OPT_CI:
			gt.ci = true;
			continue;
		case OPT_CI_CONFIG:
			gt.config = optarg;
			gt.ci = true;
			continue;
		case OPT_MIN_EFF:
			if (rule_opt(&gt, DIVECI_EFF, "--min-efficiency",
				     optarg))
				return CLI_USAGE;
			continue;
		case OPT_MAX_BYTES:
			if (rule_opt(&gt, DIVECI_BYTES, "--max-wasted-bytes",
				     optarg))
				return CLI_USAGE;
			continue;
		case OPT_MAX_PCT:
			if (rule_opt(&gt, DIVECI_PCT, "--max-wasted-percent",
				     optarg))
				return CLI_USAGE;
			continue;
		}
		ret = cli_common_opt(c, optarg, &o);
		if (ret < 0)
			return CLI_USAGE;
		if (!ret)
			return cli_bad_option("waste", c, argv);
	}
	if (argc - optind != 1)
		return cli_usage("waste", "expected one IMAGE");
	if (gt.ci && ci_rules(&gt))
		return CLI_USAGE;
	if (o.quiet)
		cli_set_progress(false);
	ret = cli_open(&o, argv[optind], false, false, &ci);
	for (i = 0; ret == CLI_OK && i < lf_stack_count(ci); i++)
		if (!lf_stack_blob(ci, i, &err)) {
			cli_error("%s: %s", lf_stack_name(ci), err.msg);
			ret = CLI_ERR;
		}
	if (ret == CLI_OK && lf_waste_scan(ci, top, which, &w, &err)) {
		cli_error("%s: %s", lf_stack_name(ci), err.msg);
		ret = CLI_ERR;
	}
	if (ret == CLI_OK) {
		if (gt.ci)
			ng = run_gates(w, &gt, g);
		if (o.json)
			cli_json_waste(stdout, ci, w, g, ng, gt.ci);
		else
			print_text(w, ci, g, ng, &gt);
		for (i = 0; i < ng; i++)
			if (!g[i].pass)
				ret = CLI_ERR;
	}
	lf_waste_free(w);
	lf_stack_close(ci);
	return cli_flush(ret);
}

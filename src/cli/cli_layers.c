// SPDX-License-Identifier: MIT
/* cli_layers.c - `layerfs layers IMAGE`: one row per layer. */
#include "cli_internal.h"

#include <errno.h>
#include <getopt.h>
#include <string.h>

#include "layerfs/waste.h"

static const char layers_help[] =
	"usage: layerfs layers [options] IMAGE\n\n"
	"One row per layer, bottom first: digest, compressed and uncompressed\n"
	"size, tar entries, whiteouts and the command that created it.\n"
	"Indexes every layer (once: the index is cached by blob digest).\n\n"
	"options:\n" CLI_COMMON_HELP;

static void print_table(const struct lf_stack *ci, const struct lf_waste *w)
{
	size_t i;

	printf("%-3s %-19s %-6s %10s %10s %8s %5s %10s %10s  %s\n", "#",
	       "DIGEST", "COMP", "SIZE", "UNPACKED", "ENTRIES", "WH",
	       "OVERWRITN", "DELETED", "CREATED BY");
	for (i = 0; i < lf_stack_count(ci); i++) {
		const struct lf_image_layer *l = lf_stack_layer(ci, i);
		const struct lf_index *x = lf_stack_index(ci, i);
		const char *d = l->digest[0] ? l->digest
					     : lf_index_blob_digest(x);
		char cs[16], us[16], os[16], ds[16];

		cli_human_size(lf_index_blob_size(x), cs);
		cli_human_size(lf_index_tar_size(x), us);
		cli_human_size(w->layers[i].overwritten, os);
		cli_human_size(w->layers[i].deleted, ds);
		printf("%-3zu %.19s %-6s %10s %10s %8zu %5llu %10s %10s  %s\n",
		       i + 1, d, lf_compression_name(lf_index_compression(x)),
		       cs, us, lf_index_count(x),
		       (unsigned long long)lf_index_whiteouts(x), os, ds,
		       l->created_by ? l->created_by : "");
	}
}

int cli_cmd_layers(int argc, char **argv)
{
	static const struct option longopts[] = { CLI_COMMON_LONGOPTS,
						  { 0, 0, 0, 0 } };
	struct cli_opts o = { 0 };
	struct lf_waste *w = NULL;
	struct lf_err err = { 0 };
	struct lf_stack *ci = NULL;
	int c, ret;

	while ((c = getopt_long(argc, argv, ":q", longopts, NULL)) != -1) {
		if (c == OPT_HELP) {
			fputs(layers_help, stdout);
			return CLI_OK;
		}
		ret = cli_common_opt(c, optarg, &o);
		if (ret < 0)
			return CLI_USAGE;
		if (!ret)
			return cli_bad_option("layers", c, argv);
	}
	if (optind + 1 != argc)
		return cli_usage("layers", "expected one IMAGE");
	if (o.quiet)
		cli_set_progress(false);
	ret = cli_open(&o, argv[optind], o.has_layers ? false : true, false,
		       &ci);
	/* the waste columns: bytes each layer ships that later ones hide */
	if (ret == CLI_OK && lf_waste_per_layer(lf_stack_indexes(ci),
						lf_stack_count(ci), &w, &err)) {
		cli_error("%s: %s", lf_stack_name(ci), err.msg);
		ret = CLI_ERR;
	}
	if (ret == CLI_OK) {
		if (o.json)
			cli_json_layers(stdout, ci, w);
		else
			print_table(ci, w);
	}
	lf_waste_free(w);
	lf_stack_close(ci);
	return cli_flush(ret);
}

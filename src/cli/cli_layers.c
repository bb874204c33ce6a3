// SPDX-License-Identifier: MIT
/* cli_layers.c - `layerfs layers IMAGE`: one row per layer. */
#include "cli_internal.h"

#include <errno.h>
#include <getopt.h>
#include <string.h>
#include <time.h>

#include "cli_history.h"
#include "layerfs/waste.h"

static const char layers_help[] =
	"usage: layerfs layers [options] IMAGE\n\n"
	"One row per layer, bottom first: digest, compressed and uncompressed\n"
	"size, tar entries, whiteouts, when and by which command it was\n"
	"created.  Like `docker history`, the image's history entries that\n"
	"made no layer (ENV, CMD, LABEL...) are rows too, with 0 B and '-'\n"
	"for the layer's fields; CREATED is relative (\"2 weeks ago\") and\n"
	"CREATED BY cut to 45 characters with '\xe2\x80\xa6'.\n"
	"--json lists the layers as before, plus \"history\": every entry\n"
	"with created, created_by, comment, empty_layer and layer (its\n"
	"index, or null).\n"
	"Indexes every layer (once: the index is cached by blob digest).\n\n"
	"options:\n"
	"      --no-trunc       whole CREATED BY, CREATED as RFC 3339 (UTC)\n"
	"      --layers-only    no rows for history entries without a layer\n"
	"      --classic        the previous table: no CREATED column, no\n"
	"                       history-only rows, CREATED BY "
	"uncut\n" CLI_COMMON_HELP;

enum { OPT_NO_TRUNC = 3100, OPT_LAYERS_ONLY, OPT_CLASSIC };

struct layers_fmt {
	bool no_trunc, layers_only, classic;
	double now;
};

static void print_classic(const struct lf_stack *ci, const struct lf_waste *w)
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

/* docker's CREATED BY: tabs (and, here, other controls) become spaces;
 * cut to 45 characters, the last one an ellipsis. */
static void print_created_by(const char *s, bool trunc)
{
	size_t chars = 0, i, cut = 0;

	for (i = 0; s && s[i]; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80 && ++chars == 45)
			cut = i;
	for (i = 0; s && s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		if (trunc && chars > 45 && i == cut) {
			fputs("\xe2\x80\xa6", stdout);
			break;
		}
		putchar(c < 0x20 || c == 0x7f ? ' ' : c);
	}
	putchar('\n');
}

static void print_row(const struct lf_stack *ci, const struct lf_waste *w,
		      const struct cli_history_row *r,
		      const struct layers_fmt *f)
{
	char created[48], cs[16] = "0 B", us[16] = "0 B", os[16] = "0 B",
			  ds[16] = "0 B";

	cli_history_created(r->created, f->no_trunc, f->now, created,
			    sizeof(created));
	if (r->layer < 0) {
		printf("%-3s %-19s %-6s %10s %10s %8d %5d %10s %10s  %-20s ",
		       "-", "-", "-", cs, us, 0, 0, os, ds, created);
	} else {
		size_t i = (size_t)r->layer;
		const struct lf_image_layer *l = lf_stack_layer(ci, i);
		const struct lf_index *x = lf_stack_index(ci, i);
		const char *d = l->digest[0] ? l->digest
					     : lf_index_blob_digest(x);

		cli_human_size(lf_index_blob_size(x), cs);
		cli_human_size(lf_index_tar_size(x), us);
		cli_human_size(w->layers[i].overwritten, os);
		cli_human_size(w->layers[i].deleted, ds);
		printf("%-3zu %.19s %-6s %10s %10s %8zu %5llu %10s %10s  "
		       "%-20s ",
		       i + 1, d, lf_compression_name(lf_index_compression(x)),
		       cs, us, lf_index_count(x),
		       (unsigned long long)lf_index_whiteouts(x), os, ds,
		       created);
	}
	print_created_by(r->created_by, !f->no_trunc);
}

static int print_table(const struct lf_stack *ci, const struct lf_waste *w,
		       const struct cli_history *h, const struct layers_fmt *f)
{
	size_t i;

	if (f->classic) {
		print_classic(ci, w);
		return 0;
	}
	printf("%-3s %-19s %-6s %10s %10s %8s %5s %10s %10s  %-20s %s\n", "#",
	       "DIGEST", "COMP", "SIZE", "UNPACKED", "ENTRIES", "WH",
	       "OVERWRITN", "DELETED", "CREATED", "CREATED BY");
	for (i = 0; i < h->n; i++)
		if (!f->layers_only || h->rows[i].layer >= 0)
			print_row(ci, w, &h->rows[i], f);
	return 0;
}

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int cli_cmd_layers(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "no-trunc", no_argument, NULL, OPT_NO_TRUNC },
		{ "layers-only", no_argument, NULL, OPT_LAYERS_ONLY },
		{ "classic", no_argument, NULL, OPT_CLASSIC },
		{ 0, 0, 0, 0 }
	};
	struct layers_fmt f = { .now = now_seconds() };
	struct cli_history h = { 0 };
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
		if (c == OPT_NO_TRUNC || c == OPT_LAYERS_ONLY ||
		    c == OPT_CLASSIC) {
			f.no_trunc |= c == OPT_NO_TRUNC;
			f.layers_only |= c == OPT_LAYERS_ONLY;
			f.classic |= c == OPT_CLASSIC;
			continue;
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
	if (ret == CLI_OK &&
	    cli_history_load(lf_stack_image(ci), lf_stack_count(ci), &h)) {
		cli_error("%s: out of memory", lf_stack_name(ci));
		ret = CLI_ERR;
	}
	if (ret == CLI_OK) {
		if (o.json)
			cli_json_layers(stdout, ci, w, &h);
		else
			print_table(ci, w, &h, &f);
	}
	cli_history_free(&h);
	lf_waste_free(w);
	lf_stack_close(ci);
	return cli_flush(ret);
}

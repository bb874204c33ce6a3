// SPDX-License-Identifier: MIT
/* cli_grep.c - `layerfs grep`: search the files of an image, no mount. */
#include "cli_internal.h"

#include <errno.h>
#include <getopt.h>
#include <locale.h>
#include <string.h>

#include "layerfs/grep.h"

static const char grep_help[] =
	"usage: layerfs grep [options] PATTERN IMAGE [PATH]\n\n"
	"Search the regular files below PATH (default /) of the merged view\n"
	"for lines matching PATTERN, as grep -r does, reading the layer blobs\n"
	"on all cores: no mount, no extraction.  Lines print as PATH:LINE\n"
	"(PATH absolute in the image).  With --all, every layer's files are\n"
	"searched, also versions a later layer overwrote or deleted, and each\n"
	"line starts with the layer and whether the image shows that file:\n"
	"LAYER:visible:PATH:LINE or LAYER:hidden:PATH:LINE -- the way to "
	"prove\n"
	"that a deleted secret still ships.  A binary file (a NUL byte in its\n"
	"first 32 KiB or in the matching line) is reported once, on stderr.\n"
	"Exit status as grep's: 0 a line matched, 1 none did, 2 an error.\n\n"
	"options:\n"
	"  -r, --recursive      accepted (a directory PATH is always searched\n"
	"                       recursively)\n"
	"  -E, --extended-regexp  PATTERN is an extended regular expression\n"
	"  -F, --fixed-strings  PATTERN is a string, not a regular expression\n"
	"  -i, --ignore-case    ignore case\n"
	"  -n, --line-number    the line number after the path\n"
	"  -l, --files-with-matches  only the names of matching files\n"
	"      --all            every layer's files, labelled (see above)\n"
	"      --layers N       search the view of layers "
	"1..N\n" CLI_COMMON_HELP;

struct out {
	const struct cli_opts *o;
	bool all, numbers, files_only;
	bool matched;
};

static int on_hit(void *ctx, const struct lf_grep_hit *h)
{
	struct out *out = ctx;

	out->matched = true;
	if (h->binary && !out->files_only) {
		fflush(stdout);
		if (out->all)
			fprintf(stderr,
				"layerfs grep: %zu:%s:%s: binary file "
				"matches\n",
				h->layer + 1, h->visible ? "visible" : "hidden",
				h->path);
		else
			fprintf(stderr,
				"layerfs grep: %s: binary file matches\n",
				h->path);
		return 0;
	}
	if (out->all)
		printf("%zu:%s:", h->layer + 1,
		       h->visible ? "visible" : "hidden");
	if (!h->line) {
		printf("%s\n", h->path);
	} else {
		printf("%s:", h->path);
		if (out->numbers)
			printf("%llu:", (unsigned long long)h->lineno);
		fwrite(h->line, 1, h->len, stdout);
		putchar('\n');
	}
	return ferror(stdout) ? -EIO : 0;
}

int cli_cmd_grep(int argc, char **argv)
{
	enum { OPT_ALL = 3200 };
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "recursive", no_argument, NULL, 'r' },
		{ "extended-regexp", no_argument, NULL, 'E' },
		{ "fixed-strings", no_argument, NULL, 'F' },
		{ "ignore-case", no_argument, NULL, 'i' },
		{ "line-number", no_argument, NULL, 'n' },
		{ "files-with-matches", no_argument, NULL, 'l' },
		{ "all", no_argument, NULL, OPT_ALL },
		{ 0, 0, 0, 0 },
	};
	struct cli_opts o = { 0 };
	struct lf_grep_opts go = { 0 };
	struct out out = { &o, false, false, false, false };
	struct lf_grep_stats st;
	struct lf_err err = { 0 };
	struct lf_stack *s;
	int c, ret;

	/* the user's locale decides what a character is, as for grep */
	setlocale(LC_CTYPE, "");
	while ((c = getopt_long(argc, argv, ":rEFinlq", longopts, NULL)) !=
	       -1) {
		switch (c) {
		case OPT_HELP:
			fputs(grep_help, stdout);
			return cli_flush(CLI_OK);
		case 'r':
			continue;
		case 'E':
			go.extended = true;
			continue;
		case 'F':
			go.fixed = true;
			continue;
		case 'i':
			go.icase = true;
			continue;
		case 'n':
			out.numbers = true;
			continue;
		case 'l':
			go.files_only = out.files_only = true;
			continue;
		case OPT_ALL:
			go.all = out.all = true;
			continue;
		}
		ret = cli_common_opt(c, optarg, &o);
		if (ret < 0)
			return CLI_USAGE;
		if (!ret)
			return cli_bad_option("grep", c, argv);
	}
	if (o.quiet)
		cli_set_progress(false);
	if (o.json)
		return cli_usage("grep", "grep has no JSON form");
	if (argc - optind < 2 || argc - optind > 3)
		return cli_usage("grep", "expected PATTERN IMAGE [PATH]");
	go.pattern = argv[optind];
	go.path = argc - optind == 3 ? argv[optind + 2] : "/";
	if ((ret = cli_open(&o, argv[optind + 1], false, true, &s)))
		return 2; /* grep's status for an error, usage or not */
	ret = lf_grep(s, &go, on_hit, &out, &st, &err);
	if (ret)
		cli_error("%s: %s", cli_image_path(s),
			  err.msg[0] ? err.msg : "cannot write output");
	lf_stack_close(s);
	if (cli_flush(CLI_OK) != CLI_OK)
		return 2;
	return ret ? 2 : out.matched ? 0 : 1;
}

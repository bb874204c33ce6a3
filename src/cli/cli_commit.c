// SPDX-License-Identifier: MIT
/* cli_commit.c - `layerfs commit`: an upper dir (or a squash) -> new image. */
#include "cli_internal.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "layerfs/commit.h"

static const char commit_help[] =
	"usage: layerfs commit [options] IMAGE --upper DIR -o OUT\n"
	"       layerfs commit [options] IMAGE --squash [--upper DIR] "
	"-o OUT\n\n"
	"Write a new image: the layers of IMAGE (or its layers 1..N with\n"
	"--layers), copied as they are, plus one new layer holding the\n"
	"upper directory of `layerfs mount --upper DIR` (whiteouts and all).\n"
	"With --squash, the new image has one layer: the whole merged view\n"
	"(IMAGE's layers, plus DIR when given).  The same input gives the\n"
	"same bytes and digests.  OUT must not exist; it appears only when\n"
	"complete.\n\n"
	"options:\n"
	"      --upper DIR      the upper directory to commit\n"
	"  -o, --output OUT     where to write the new image\n"
	"      --format FMT     oci (an OCI image layout directory, the\n"
	"                       default) or docker-archive (docker load)\n"
	"  -t, --tag NAME:TAG   name the image (ref annotation, RepoTags)\n"
	"  -m, --message TEXT   history created_by (\"layerfs commit\")\n"
	"      --squash         one layer with the whole merged view\n"
	"      --owner UID:GID  committing as a normal user: the image owner "
	"of\n"
	"                       upper files you own that have no ownership\n"
	"                       record (default 0:0)\n" CLI_COMMON_HELP;

enum {
	OPT_UPPER = 2000,
	OPT_FORMAT,
	OPT_SQUASH,
	OPT_OWNER,
};

struct commit_args {
	struct cli_opts o;
	struct lf_commit_opts co;
	const char *upper;
};

/* Returns -1 to go on, else an exit code. */
static int parse(int argc, char **argv, struct commit_args *a)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "upper", required_argument, NULL, OPT_UPPER },
		{ "output", required_argument, NULL, 'o' },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "tag", required_argument, NULL, 't' },
		{ "message", required_argument, NULL, 'm' },
		{ "squash", no_argument, NULL, OPT_SQUASH },
		{ "owner", required_argument, NULL, OPT_OWNER },
		{ 0, 0, 0, 0 }
	};
	int c, ret;

	while ((c = getopt_long(argc, argv, ":o:t:m:q", longopts, NULL)) !=
	       -1) {
		switch (c) {
		case OPT_HELP:
			fputs(commit_help, stdout);
			return CLI_OK;
		case OPT_UPPER:
			a->upper = optarg;
			continue;
		case 'o':
			a->co.out = optarg;
			continue;
		case OPT_FORMAT:
			if (!strcmp(optarg, "oci"))
				a->co.format = LF_COMMIT_OCI;
			else if (!strcmp(optarg, "docker-archive"))
				a->co.format = LF_COMMIT_DOCKER_ARCHIVE;
			else
				return cli_usage("commit",
						 "--format wants oci "
						 "or docker-archive, not '%s'",
						 optarg);
			continue;
		case 't':
			a->co.tag = optarg;
			continue;
		case 'm':
			a->co.message = optarg;
			continue;
		case OPT_SQUASH:
			a->co.squash = true;
			continue;
		case OPT_OWNER:
			if (cli_parse_owner("commit", optarg, &a->co.owner_uid,
					    &a->co.owner_gid))
				return CLI_USAGE;
			continue;
		}
		ret = cli_common_opt(c, optarg, &a->o);
		if (ret < 0)
			return CLI_USAGE;
		if (!ret)
			return cli_bad_option("commit", c, argv);
	}
	if (optind + 1 != argc)
		return cli_usage("commit", "expected one IMAGE");
	if (!a->co.out)
		return cli_usage("commit", "no output: give -o OUT");
	if (!a->upper && !a->co.squash)
		return cli_usage("commit", "nothing to commit: give --upper "
					   "DIR, or --squash");
	if (a->o.quiet)
		cli_set_progress(false);
	return -1;
}

static void print_result(const struct commit_args *a,
			 const struct lf_commit_result *r)
{
	if (!a->o.json) {
		printf("layer %s, manifest %s, %zu layer%s -> %s\n",
		       r->layer_digest, r->manifest_digest, r->nlayers,
		       r->nlayers == 1 ? "" : "s", a->co.out);
		return;
	}
	cli_json_commit(stdout, r->layer_digest, r->diff_id, r->layer_size,
			r->manifest_digest, r->nlayers,
			a->co.format == LF_COMMIT_OCI ? "oci"
						      : "docker-archive",
			a->co.out);
}

int cli_cmd_commit(int argc, char **argv)
{
	struct commit_args a = { 0 };
	struct lf_commit_result r = { 0 };
	struct lf_err err = { 0 };
	struct lf_stack *ci = NULL;
	size_t i;
	int ret;

	ret = parse(argc, argv, &a);
	if (ret >= 0)
		return ret;
	/* the merged view (indexes, tree, blobs) only matters to a squash;
	 * a plain commit copies the kept blobs and tars the upper dir */
	ret = cli_open(&a.o, argv[optind], false, a.co.squash, &ci);
	if (ret)
		goto out;
	for (i = 0; a.co.squash && i < lf_stack_count(ci); i++) {
		if (!lf_stack_blob(ci, i, &err)) {
			cli_error("%s: %s", lf_stack_name(ci), err.msg);
			ret = CLI_ERR;
			goto out;
		}
	}
	if (lf_commit(ci, a.upper, &a.co, &r, &err)) {
		cli_error("%s", err.msg);
		ret = CLI_ERR;
		goto out;
	}
	print_result(&a, &r);
out:
	lf_stack_close(ci);
	return cli_flush(ret);
}

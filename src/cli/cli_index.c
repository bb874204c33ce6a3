// SPDX-License-Identifier: MIT
/* cli_index.c - `layerfs index push`: share an image's layer indexes in
 * its registry (index_remote.h). */
#include "cli_internal.h"

#include <getopt.h>
#include <jansson.h>
#include <string.h>

#include "layerfs/index_remote.h"

static const char index_help[] =
	"usage: layerfs index [options] push IMAGE\n\n"
	"IMAGE is a registry image (docker://HOST/NAME:TAG).  'push' indexes\n"
	"its layers here (each blob streamed once, every digest checked; "
	"what\n"
	"the cache holds already is used) and uploads the indexes to the\n"
	"registry as an OCI artifact whose subject is the image's manifest.\n"
	"Any machine that then mounts or reads the image with an empty cache\n"
	"fetches those small indexes instead of streaming every blob, and\n"
	"reads file data by verified range requests.  The artifact is found\n"
	"through the OCI 1.1 referrers API, or where the registry has none, "
	"the\n"
	"tag sha256-<manifest hex> (an image index of referrers), which push\n"
	"updates then.  zstd layers are left out (they are read from a local\n"
	"copy).  Pushing the same image twice uploads nothing new.\n\n"
	"options:\n"
	"      --platform OS/ARCH[/VARIANT]  choose from an image index\n"
	"      --tls-verify=false  no TLS checks, plain HTTP allowed\n"
	"      --creds USER[:PASS]  credentials with push rights (default: "
	"the\n"
	"                       auth files of podman, skopeo and docker)\n"
	"      --cert-dir DIR   CA certificates and a client certificate\n"
	"      --cache DIR      index cache (default $LAYERFS_CACHE,\n"
	"                       $XDG_CACHE_HOME/layerfs, ~/.cache/layerfs)\n"
	"      --json           machine-readable output\n"
	"  -q, --quiet          no progress line\n"
	"      --help           show this help\n";

static int print(const struct lf_stack *s, const struct lf_remote_push *p,
		 bool json)
{
	const struct lf_image *img = lf_stack_image(s);
	json_t *o;

	if (!json) {
		printf("%s: pushed index artifact %s (%zu layer%s, %llu bytes "
		       "of indexes",
		       cli_image_path(s), p->digest, p->layers,
		       p->layers == 1 ? "" : "s",
		       (unsigned long long)p->blob_bytes);
		if (p->skipped)
			printf(", %zu zstd layer%s left out", p->skipped,
			       p->skipped == 1 ? "" : "s");
		if (p->referrers_api)
			printf("), found through the referrers API\n");
		else
			printf("), listed in tag %s\n", p->tag);
		return 0;
	}
	o = cli_json_top();
	if (o)
		cli_json_name(o, "image", cli_image_path(s));
	if (!o ||
	    json_object_set_new(o, "subject",
				json_string(lf_image_manifest_digest(img))) ||
	    json_object_set_new(o, "artifact_digest", json_string(p->digest)) ||
	    json_object_set_new(o, "size", json_integer((json_int_t)p->size)) ||
	    json_object_set_new(o, "layers",
				json_integer((json_int_t)p->layers)) ||
	    json_object_set_new(o, "skipped_layers",
				json_integer((json_int_t)p->skipped)) ||
	    json_object_set_new(o, "index_bytes",
				json_integer((json_int_t)p->blob_bytes)) ||
	    json_object_set_new(o, "referrers_api",
				json_boolean(p->referrers_api)) ||
	    json_object_set_new(o, "tag",
				p->referrers_api ? json_null()
						 : json_string(p->tag)) ||
	    json_dumpf(o, stdout, CLI_JSON_COMPACT)) {
		json_decref(o);
		cli_error("out of memory");
		return -1;
	}
	json_decref(o);
	putchar('\n');
	return 0;
}

static int push(const struct cli_opts *o, const char *image)
{
	struct lf_remote_push res;
	struct lf_err err = { 0 };
	struct cli_opts po = *o;
	struct lf_stack *s;
	int ret;

	/* what is pushed is built here, verified: not someone's artifact */
	po.no_remote_index = true;
	if ((ret = cli_open(&po, image, true, false, &s)))
		return ret;
	if (!lf_image_registry(lf_stack_image(s))) {
		lf_stack_close(s);
		return cli_usage("index",
				 "'%s' is not a registry image "
				 "(docker://HOST/NAME:TAG)",
				 image);
	}
	if (cli_progress_enabled())
		cli_progress("pushing layer indexes");
	ret = lf_index_remote_push(lf_stack_image(s), lf_stack_indexes(s), &res,
				   &err);
	cli_progress_done();
	if (ret) {
		cli_error("%s: index push: %s", cli_image_path(s), err.msg);
		lf_stack_close(s);
		return CLI_ERR;
	}
	ret = print(s, &res, o->json) ? CLI_ERR : CLI_OK;
	lf_stack_close(s);
	return cli_flush(ret);
}

int cli_cmd_index(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ 0, 0, 0, 0 },
	};
	struct cli_opts o = { 0 };
	int c, ret;

	while ((c = getopt_long(argc, argv, ":q", longopts, NULL)) != -1) {
		if (c == OPT_HELP) {
			fputs(index_help, stdout);
			return cli_flush(CLI_OK);
		}
		ret = cli_common_opt(c, optarg, &o);
		if (ret < 0)
			return CLI_USAGE;
		if (!ret)
			return cli_bad_option("index", c, argv);
	}
	if (o.quiet)
		cli_set_progress(false);
	if (argc - optind < 1)
		return cli_usage("index", "expected 'push IMAGE'");
	if (strcmp(argv[optind], "push"))
		return cli_usage("index",
				 "unknown subcommand '%s' (expected "
				 "push)",
				 argv[optind]);
	if (argc - optind != 2)
		return cli_usage("index", "expected 'push IMAGE'");
	if (o.no_verify)
		return cli_usage("index", "push checks every digest: "
					  "--no-verify does not apply");
	if (o.has_layers || o.ref || o.no_cache)
		return cli_usage("index", "push shares every layer's index "
					  "through the cache: --layers, --ref "
					  "and --no-cache do not apply");
	return push(&o, argv[optind + 1]);
}

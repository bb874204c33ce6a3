// SPDX-License-Identifier: MIT
/* cli_cache.c - `layerfs cache`: list, measure, prune and clear the cache. */
#include "cli_internal.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "layerfs/cache.h"
#include "layerfs/cache_dir.h"
#include "layerfs/limits.h"

static const char cache_help[] =
	"usage: layerfs cache [options] ls|du|prune|clear\n\n"
	"The cache directory: layer indexes, merged trees, decompressed "
	"copies\n"
	"of zstd layers, a registry's verified spans and documents.  Every\n"
	"command keeps it under --cache-max (default 2G), least recently used\n"
	"first; what a running layerfs (a mount, another command) uses is\n"
	"never removed, and nothing but the cache's own files is touched.\n\n"
	"  ls       one line per item: kind, bytes, last use, in use, name\n"
	"  du       bytes and items per kind, and the total\n"
	"  prune    remove least recently used items not in use until the\n"
	"           total is at most --max-size (default: the cap)\n"
	"  clear    remove every item not in use\n\n"
	"options:\n"
	"      --max-size SIZE  prune down to SIZE bytes (K, M, G)\n"
	"      --cache DIR      the cache directory (default $LAYERFS_CACHE,\n"
	"                       $XDG_CACHE_HOME/layerfs, ~/.cache/layerfs)\n"
	"      --cache-max SIZE  the cap prune uses by default (default 2G)\n"
	"      --json           machine-readable output (ls, du)\n"
	"      --help           show this help\n";

enum { OPT_MAX_SIZE = 4000 };

struct cache_args {
	struct cli_opts o;
	uint64_t max_size;
	bool has_max;
	const char *sub;
};

static int parse(int argc, char **argv, struct cache_args *a)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "max-size", required_argument, NULL, OPT_MAX_SIZE },
		{ 0, 0, 0, 0 },
	};
	int c, ret;

	while ((c = getopt_long(argc, argv, ":q", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_HELP:
			fputs(cache_help, stdout);
			return CLI_OK;
		case OPT_MAX_SIZE:
			if (!lf_parse_size(optarg, &a->max_size))
				return cli_usage("cache",
						 "--max-size wants a size "
						 "(K, M, G), not '%s'",
						 optarg);
			a->has_max = true;
			continue;
		}
		ret = cli_common_opt(c, optarg, &a->o);
		if (ret < 0)
			return CLI_USAGE;
		if (!ret)
			return cli_bad_option("cache", c, argv);
	}
	if (argc - optind != 1)
		return cli_usage("cache", "expected one of ls, du, prune, "
					  "clear");
	a->sub = argv[optind];
	if (strcmp(a->sub, "ls") && strcmp(a->sub, "du") &&
	    strcmp(a->sub, "prune") && strcmp(a->sub, "clear"))
		return cli_usage("cache",
				 "unknown subcommand '%s' (ls, du, "
				 "prune, clear)",
				 a->sub);
	if (a->has_max && strcmp(a->sub, "prune"))
		return cli_usage("cache", "--max-size is for prune");
	if (a->o.json && (!strcmp(a->sub, "prune") || !strcmp(a->sub, "clear")))
		return cli_usage("cache", "--json: %s has no JSON output",
				 a->sub);
	return -1;
}

static void when(int64_t t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!localtime_r(&tt, &tm) || !strftime(out, 32, "%Y-%m-%d %H:%M", &tm))
		snprintf(out, 32, "%lld", (long long)t);
}

static int print_ls(const char *dir, const struct lf_cache_item *it, size_t n,
		    bool json)
{
	size_t i;

	if (!json) {
		for (i = 0; i < n; i++) {
			char t[32];

			when(it[i].last_use, t);
			printf("%-11s %12llu  %s  %-6s %s\n",
			       lf_cache_kind_name(it[i].kind),
			       (unsigned long long)it[i].size, t,
			       it[i].in_use ? "in-use" : "-", it[i].name);
		}
		return 0;
	}
	{
		json_t *o = cli_json_top(), *arr = json_array();
		int ret;

		if (!o || !arr)
			return -1;
		cli_json_name(o, "cache_dir", dir);
		for (i = 0; i < n; i++) {
			json_t *e = json_object();

			json_object_set_new(e, "kind",
					    json_string(lf_cache_kind_name(
						    it[i].kind)));
			json_object_set_new(e, "name", json_string(it[i].name));
			json_object_set_new(e, "digest",
					    it[i].digest[0]
						    ? json_string(it[i].digest)
						    : json_null());
			json_object_set_new(e, "size",
					    json_integer(
						    (json_int_t)it[i].size));
			json_object_set_new(e, "last_use",
					    json_integer(it[i].last_use));
			json_object_set_new(e, "in_use",
					    json_boolean(it[i].in_use));
			json_array_append_new(arr, e);
		}
		json_object_set_new(o, "items", arr);
		ret = json_dumpf(o, stdout, CLI_JSON_INDENT);
		putchar('\n');
		json_decref(o);
		return ret;
	}
}

static int print_du(const char *dir, const struct lf_cache_item *it, size_t n,
		    uint64_t cap, bool json)
{
	uint64_t bytes[LF_CACHE_NKINDS] = { 0 }, total = 0, used = 0;
	size_t count[LF_CACHE_NKINDS] = { 0 }, i;
	int k;

	for (i = 0; i < n; i++) {
		bytes[it[i].kind] += it[i].size;
		count[it[i].kind]++;
		total += it[i].size;
		if (it[i].in_use)
			used += it[i].size;
	}
	if (!json) {
		for (k = 0; k < LF_CACHE_NKINDS; k++)
			printf("%-11s %12llu bytes  %zu item%s\n",
			       lf_cache_kind_name(k),
			       (unsigned long long)bytes[k], count[k],
			       count[k] == 1 ? "" : "s");
		printf("%-11s %12llu bytes  %zu item%s, %llu in use, cap "
		       "%llu\n",
		       "total", (unsigned long long)total, n, n == 1 ? "" : "s",
		       (unsigned long long)used, (unsigned long long)cap);
		return 0;
	}
	{
		json_t *o = cli_json_top(), *kinds = json_object();
		int ret;

		if (!o || !kinds)
			return -1;
		cli_json_name(o, "cache_dir", dir);
		for (k = 0; k < LF_CACHE_NKINDS; k++) {
			json_t *e = json_object();

			json_object_set_new(e, "bytes",
					    json_integer((json_int_t)bytes[k]));
			json_object_set_new(e, "items",
					    json_integer((json_int_t)count[k]));
			json_object_set_new(kinds, lf_cache_kind_name(k), e);
		}
		json_object_set_new(o, "kinds", kinds);
		json_object_set_new(o, "total_bytes",
				    json_integer((json_int_t)total));
		json_object_set_new(o, "items", json_integer((json_int_t)n));
		json_object_set_new(o, "in_use_bytes",
				    json_integer((json_int_t)used));
		json_object_set_new(o, "cap_bytes",
				    json_integer((json_int_t)cap));
		ret = json_dumpf(o, stdout, CLI_JSON_INDENT);
		putchar('\n');
		json_decref(o);
		return ret;
	}
}

int cli_cmd_cache(int argc, char **argv)
{
	struct cache_args a = { 0 };
	struct lf_cache_item *it = NULL;
	struct lf_err err = { 0 };
	struct lf_buf dir;
	uint64_t cap, freed = 0;
	size_t n = 0, removed = 0;
	int ret;

	ret = parse(argc, argv, &a);
	if (ret >= 0)
		return ret;
	if (a.o.no_cache)
		return cli_usage("cache", "--no-cache: there is no cache to "
					  "look at");
	lf_buf_init(&dir);
	if (lf_cache_dir(a.o.cache, &dir)) {
		cli_error("no cache directory: give --cache DIR, or set "
			  "LAYERFS_CACHE or HOME");
		lf_buf_release(&dir);
		return CLI_ERR;
	}
	cap = cli_cache_cap(&a.o);
	if (lf_cache_scan(dir.data, &it, &n, &err)) {
		cli_error("%s", err.msg);
		ret = CLI_ERR;
	} else if (!strcmp(a.sub, "ls")) {
		ret = print_ls(dir.data, it, n, a.o.json) ? CLI_ERR : CLI_OK;
	} else if (!strcmp(a.sub, "du")) {
		ret = print_du(dir.data, it, n, cap, a.o.json) ? CLI_ERR
							       : CLI_OK;
	} else {
		uint64_t max = !strcmp(a.sub, "clear") ? 0
			       : a.has_max	       ? a.max_size
						       : cap;

		if (lf_cache_evict(dir.data, it, n, max, &freed, &removed,
				   &err)) {
			cli_error("%s", err.msg);
			ret = CLI_ERR;
		} else {
			if (!a.o.quiet)
				printf("removed %zu item%s, %llu bytes\n",
				       removed, removed == 1 ? "" : "s",
				       (unsigned long long)freed);
			ret = CLI_OK;
		}
	}
	lf_cache_items_free(it, n);
	lf_buf_release(&dir);
	return cli_flush(ret);
}

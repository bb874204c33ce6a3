// SPDX-License-Identifier: MIT
/* cli.c - subcommand table, common options, opening an image for reading. */
#include "cli_internal.h"

#include <errno.h>
#include <getopt.h>
#include <locale.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layerfs/cache_dir.h"
#include "layerfs/limits.h"
#include "layerfs/rblob.h"
#include "layerfs/log.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "layers", cli_cmd_layers, "list the layers of an image" },
	{ "ls", cli_cmd_ls, "list a directory of the merged view" },
	{ "cat", cli_cmd_cat, "print files of the merged view" },
	{ "stat", cli_cmd_stat, "show the metadata of a path" },
	{ "grep", cli_cmd_grep,
	  "search file contents, also of hidden versions" },
	{ "log", cli_cmd_log,
	  "every layer that added, changed or deleted a path" },
	{ "diff", cli_cmd_diff,
	  "what changes between layer prefixes, or an upper "
	  "dir" },
	{ "waste", cli_cmd_waste,
	  "bytes shipped but hidden, efficiency, hidden "
	  "secrets" },
	{ "commit", cli_cmd_commit,
	  "write an upper dir as a new layer of a new "
	  "image" },
	{ "mount", cli_cmd_mount,
	  "mount an image (or a layer prefix) with FUSE" },
	{ "umount", cli_cmd_umount, "unmount a layerfs mount" },
	{ "cache", cli_cmd_cache, "list, measure, prune the cache directory" },
	{ "index", cli_cmd_index,
	  "share a registry image's layer indexes in the "
	  "registry" },
};

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: layerfs <command> [options] IMAGE ...\n\n"
		   "Read container images (OCI layout, OCI archive, docker "
		   "save tar) without\nextracting them.  IMAGE is a path, "
		   "or as skopeo writes it: oci:DIR[:REF],\n"
		   "oci-archive:FILE[:REF], docker-archive:FILE[:REF|@N], "
		   "docker://HOST/NAME:TAG.\n"
		   "\ncommands:\n");
	for (i = 0; i < LF_ARRAY_SIZE(commands); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name,
			commands[i].summary);
	fprintf(f, "\nRun 'layerfs <command> --help' for its options, "
		   "'layerfs --version' (-V) for\nthe version.\n");
}

void cli_error(const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	cli_progress_done();
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "layerfs: %s\n", msg);
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "layerfs: %s: %s\nTry 'layerfs %s --help'.\n", cmd, msg,
		cmd);
	return CLI_USAGE;
}

static bool parse_id(const char *s, const char *end, uint32_t *out)
{
	uint64_t v = 0;

	if (s == end)
		return false;
	for (; s < end; s++) {
		if (*s < '0' || *s > '9' ||
		    (v = v * 10 + (uint64_t)(*s - '0')) > UINT32_MAX - 1)
			return false;
	}
	*out = (uint32_t)v;
	return true;
}

int cli_parse_owner(const char *cmd, const char *arg, uid_t *uid, gid_t *gid)
{
	const char *colon = strchr(arg, ':');
	uint32_t u, g;

	if (!colon || !parse_id(arg, colon, &u) ||
	    !parse_id(colon + 1, colon + strlen(colon), &g))
		return cli_usage(cmd,
				 "--owner wants numeric UID:GID (the image's "
				 "ids, not the host's names), not '%s'",
				 arg);
	*uid = u;
	*gid = g;
	return CLI_OK;
}

uint64_t cli_cache_cap(const struct cli_opts *o)
{
	if (!o->cache_max)
		return LF_RBLOB_CACHE_DEFAULT;
	return o->cache_max == LF_RBLOB_CACHE_NONE ? 0 : o->cache_max;
}

int cli_no_json(const char *cmd, const struct cli_opts *o)
{
	if (!o->json)
		return 0;
	return cli_usage(cmd, "--json: %s has no JSON output", cmd);
}

int cli_bad_option(const char *cmd, int c, char **argv)
{
	if (c == ':')
		return cli_usage(cmd, "option '%s' needs a value",
				 argv[optind - 1]);
	if (optopt && optopt < 256)
		return cli_usage(cmd, "unknown option '-%c'", optopt);
	return cli_usage(cmd, "unknown option '%s'", argv[optind - 1]);
}

int cli_flush(int ret)
{
	/* a full disk or a closed pipe must not pass for success */
	if (fflush(stdout) && ret == CLI_OK) {
		cli_error("cannot write output: %s", strerror(errno));
		return CLI_ERR;
	}
	return ret;
}

int cli_common_opt(int c, const char *arg, struct cli_opts *o)
{
	char *end;

	switch (c) {
	case OPT_REF:
		o->ref = arg;
		return 1;
	case OPT_PLATFORM:
		o->platform = arg;
		return 1;
	case OPT_CACHE:
		o->cache = arg;
		return 1;
	case OPT_NO_CACHE:
		o->no_cache = true;
		return 1;
	case OPT_NO_VERIFY:
		o->no_verify = true;
		return 1;
	case OPT_JSON:
		o->json = true;
		return 1;
	case OPT_TLS_VERIFY:
		if (strcmp(arg, "true") && strcmp(arg, "false")) {
			fprintf(stderr,
				"layerfs: --tls-verify takes true or false, "
				"not '%s'\n",
				arg);
			return -1;
		}
		o->no_tls_verify = !strcmp(arg, "false");
		return 1;
	case OPT_CREDS:
		o->creds = arg;
		return 1;
	case OPT_CERT_DIR:
		o->cert_dir = arg;
		return 1;
	case OPT_NO_REMOTE_INDEX:
		o->no_remote_index = true;
		return 1;
	case OPT_CACHE_MAX:
		if (!strcmp(arg, "0")) {
			o->cache_max = LF_RBLOB_CACHE_NONE;
			return 1;
		}
		if (!lf_parse_size(arg, &o->cache_max)) {
			fprintf(stderr,
				"layerfs: --cache-max wants a size such as "
				"500M or 2G, not '%s'\n",
				arg);
			return -1;
		}
		return 1;
	case 'q':
		o->quiet = true;
		return 1;
	case OPT_LAYERS:
		errno = 0;
		o->layers = strtol(arg, &end, 10);
		if (errno || !*arg || *end || o->layers == 0) {
			fprintf(stderr,
				"layerfs: --layers wants a non-zero "
				"integer, not '%s'\n",
				arg);
			return -1;
		}
		o->has_layers = true;
		return 1;
	}
	return 0;
}

static void on_progress(void *ctx, size_t layers, uint64_t done, uint64_t total)
{
	(void)ctx;
	if (!cli_progress_enabled())
		return;
	cli_progress("indexing %zu layer%s: %3d%% of %llu MB", layers,
		     layers == 1 ? "" : "s",
		     total ? (int)(done * 100 / total) : 100,
		     (unsigned long long)(total >> 20));
}

int cli_open(const struct cli_opts *o, const char *path, bool all_layers,
	     bool want_tree, struct lf_stack **out)
{
	struct lf_stack_opts so = {
		.ref = o->ref,
		.platform = o->platform,
		.verify = !o->no_verify,
		.no_tls_verify = o->no_tls_verify,
		.cache_max = o->cache_max,
		.creds = o->creds,
		.cert_dir = o->cert_dir,
		.no_remote_index = o->no_remote_index,
		.layers = o->has_layers && !all_layers ? o->layers : 0,
		.lowers = o->lowers,
		.nlowers = o->nlowers,
		.want_tree = want_tree,
		.progress = on_progress,
	};
	struct lf_buf cache_dir;
	struct lf_err err = { 0 };
	int ret;

	lf_buf_init(&cache_dir);
	if (!o->no_cache && lf_cache_dir(o->cache, &cache_dir))
		lf_buf_reset(&cache_dir); /* no HOME: work uncached */
	so.cache_dir = cache_dir.len ? cache_dir.data : NULL;
	ret = lf_stack_open(path, &so, out, &err);
	/* what this command wrote counts against the cap at once; what it
	 * uses is marked used now and stays */
	if (!ret && so.cache_dir)
		lf_cache_cap(so.cache_dir, cli_cache_cap(o));
	lf_buf_release(&cache_dir);
	cli_progress_done();
	if (ret == -ERANGE && !strncmp(err.msg, "--layers ", 9)) {
		fprintf(stderr, "layerfs: %s\n", err.msg);
		return CLI_USAGE;
	}
	if (ret) {
		cli_error("%s", err.msg);
		return CLI_ERR;
	}
	return CLI_OK;
}

/* An overlayfs-style "-o ...lowerdir=..." among the arguments: then the
 * first word is mount(8)'s source, whatever it is. */
static bool has_lowerdir(int argc, char **argv)
{
	int k;

	for (k = 2; k < argc; k++) {
		const char *o = argv[k];

		if (!strncmp(o, "-o", 2))
			o = o[2] ? o + 2 : (k + 1 < argc ? argv[k + 1] : "");
		else
			continue;
		if (!strncmp(o, "lowerdir=", 9) || strstr(o, ",lowerdir="))
			return true;
	}
	return false;
}

/* `layerfs version [--json]` (also --version, -V). */
static int version(int argc, char **argv)
{
	if (argc == 1) {
		printf("layerfs %s\n", LAYERFS_VERSION);
		return CLI_OK;
	}
	if (argc == 2 && !strcmp(argv[1], "--json")) {
		printf("{\"schema\":%d,\"version\":\"%s\"}\n", CLI_JSON_SCHEMA,
		       LAYERFS_VERSION);
		return CLI_OK;
	}
	if (argc == 2 && !strcmp(argv[1], "--help")) {
		fputs("usage: layerfs version [--json]\n\n"
		      "Print the version (also: layerfs --version, -V).\n\n"
		      "options:\n"
		      "      --json           machine-readable output\n"
		      "      --help           show this help\n",
		      stdout);
		return CLI_OK;
	}
	return cli_usage("version", "unexpected '%s'", argv[1]);
}

int lf_cli_main(int argc, char **argv)
{
	size_t i;

	/* names are read from the tar headers' bytes (tarscan); the locale only
	 * tells commit's libarchive writer how to store them: UTF-8 names as
	 * they are, others as PAX hdrcharset=BINARY */
	if (!setlocale(LC_CTYPE, "C.UTF-8"))
		setlocale(LC_CTYPE, "");
	/* ls sorts names as ls(1) does, by the user's collation */
	setlocale(LC_COLLATE, "");
	cli_set_progress(isatty(STDERR_FILENO));
	opterr = 0; /* cli_bad_option() words the message */
	if (argc < 2) {
		usage(stderr);
		return CLI_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		usage(stdout);
		return CLI_OK;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V") ||
	    !strcmp(argv[1], "version"))
		return version(argc - 1, argv + 1);
	for (i = 0; i < LF_ARRAY_SIZE(commands); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	/* mount(8) runs "layerfs SOURCE MOUNTPOINT -o OPTS" for fuse.layerfs */
	if (argc >= 3 && argv[1][0] != '-' &&
	    (strchr(argv[1], '/') || !strcmp(argv[1], "none") ||
	     access(argv[1], F_OK) == 0 || has_lowerdir(argc, argv)))
		return cli_mount_helper(argc, argv);
	fprintf(stderr, "layerfs: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return CLI_USAGE;
}

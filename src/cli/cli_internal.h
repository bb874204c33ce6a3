/* SPDX-License-Identifier: MIT */
/* cli_internal.h - shared by the cli_*.c files: options, the opened image. */
#ifndef LAYERFS_CLI_INTERNAL_H
#define LAYERFS_CLI_INTERNAL_H

#include <stdbool.h>
#include <stdio.h>

#include "layerfs/blob.h"
#include "layerfs/buf.h"
#include "layerfs/cli.h"
#include "layerfs/image.h"
#include "layerfs/index.h"
#include "layerfs/stack.h"
#include "layerfs/tree.h"

/* Exit codes (design.md section 7). */
#define CLI_OK 0
#define CLI_ERR 1
#define CLI_USAGE 2

/* Options shared by the image-reading subcommands. */
struct cli_opts {
	const char *ref;
	const char *platform;
	const char *cache; /* --cache DIR */
	bool no_verify;
	bool no_tls_verify;   /* --tls-verify=false */
	uint64_t cache_max;   /* --cache-max, 0: the default */
	const char *creds;    /* --creds */
	const char *cert_dir; /* --cert-dir */
	bool no_cache;	      /* --no-cache: index in memory only */
	bool no_remote_index; /* --no-remote-index */
	bool has_layers;
	long layers; /* --layers N as given */
	bool json;
	bool quiet;
	bool long_fmt;	/* ls -l */
	bool recursive; /* ls -R */
	bool unsorted;	/* ls -U */
	bool origin;	/* ls --origin */
	/* mount: more layers above IMAGE, top first (like lowerdir=): each
	 * an image (all its layers) or a plain directory (one layer) */
	const char **lowers;
	size_t nlowers;
};

/*
 * Common option handling.  cli_common_opt() handles one getopt_long result
 * (returns 1 if it was a common option, 0 if not, -1 on a bad value after
 * printing the message).  CLI_COMMON_LONGOPTS goes into each option table.
 */
enum {
	OPT_REF = 1000,
	OPT_PLATFORM,
	OPT_CACHE,
	OPT_NO_VERIFY,
	OPT_NO_CACHE,
	OPT_LAYERS,
	OPT_JSON,
	OPT_TLS_VERIFY,
	OPT_CACHE_MAX,
	OPT_CREDS,
	OPT_CERT_DIR,
	OPT_NO_REMOTE_INDEX,
	OPT_HELP,
};
#define CLI_COMMON_LONGOPTS                                                    \
	{ "ref", required_argument, NULL, OPT_REF },                           \
		{ "platform", required_argument, NULL, OPT_PLATFORM },         \
		{ "cache", required_argument, NULL, OPT_CACHE },               \
		{ "no-cache", no_argument, NULL, OPT_NO_CACHE },               \
		{ "no-verify", no_argument, NULL, OPT_NO_VERIFY },             \
		{ "layers", required_argument, NULL, OPT_LAYERS },             \
		{ "json", no_argument, NULL, OPT_JSON },                       \
		{ "tls-verify", required_argument, NULL, OPT_TLS_VERIFY },     \
		{ "cache-max", required_argument, NULL, OPT_CACHE_MAX },       \
		{ "creds", required_argument, NULL, OPT_CREDS },               \
		{ "cert-dir", required_argument, NULL, OPT_CERT_DIR },         \
		{ "no-remote-index", no_argument, NULL, OPT_NO_REMOTE_INDEX }, \
		{ "quiet", no_argument, NULL, 'q' },                           \
	{                                                                      \
		"help", no_argument, NULL, OPT_HELP                            \
	}
/* The common options' help (CLI_COMMON_HELP_NOJSON: for the commands
 * that have no JSON form and refuse --json). */
#define CLI_COMMON_HELP CLI_COMMON_HELP_HEAD CLI_JSON_HELP CLI_COMMON_HELP_TAIL
#define CLI_COMMON_HELP_NOJSON CLI_COMMON_HELP_HEAD CLI_COMMON_HELP_TAIL
#define CLI_JSON_HELP "      --json           machine-readable output\n"
#define CLI_COMMON_HELP_HEAD                                                   \
	"      --layers N       use layers 1..N only (negative: from the "     \
	"top,\n"                                                               \
	"                       -1 = all but the top layer)\n"                 \
	"      --ref NAME:TAG   choose an image in a multi-image archive\n"    \
	"      --platform OS/ARCH[/VARIANT]  choose from an image index\n"     \
	"      --cache DIR      index cache (default $LAYERFS_CACHE,\n"        \
	"                       $XDG_CACHE_HOME/layerfs, ~/.cache/layerfs)\n"  \
	"      --no-cache       do not read or write the index cache\n"        \
	"      --no-verify      do not check layer digests and diff_ids\n"     \
	"      --tls-verify=false  docker://: no TLS checks, plain HTTP "      \
	"allowed\n"                                                            \
	"      --creds USER[:PASS]  docker://: credentials (no PASS: asked "   \
	"on\n"                                                                 \
	"                       the terminal; default: the auth files of "     \
	"podman,\n"                                                            \
	"                       skopeo and docker)\n"                          \
	"      --cert-dir DIR   docker://: CA certificates (*.crt) and a "     \
	"client\n"                                                             \
	"                       certificate (*.cert, *.key)\n"                 \
	"      --no-remote-index  docker://: do not use layer indexes the "    \
	"registry\n"                                                           \
	"                       shares (see 'layerfs index push'): stream "    \
	"and\n"                                                                \
	"                       index every layer here\n"                      \
	"      --cache-max SIZE  keep the cache directory under SIZE "         \
	"(K, M, G;\n"                                                          \
	"                       default 2G; least recently used first, "       \
	"never\n"                                                              \
	"                       what a running layerfs uses; 0: nothing "      \
	"else)\n"

#define CLI_COMMON_HELP_TAIL                                                   \
	"  -q, --quiet          no progress line\n"                            \
	"      --help           show this help\n"                              \
	"Layer limits (environment): LAYERFS_MAX_LAYER_SIZE (default 1T),\n"   \
	"LAYERFS_MAX_RATIO (1000:4G), LAYERFS_MAX_ENTRIES (4000000).\n"

int cli_common_opt(int c, const char *arg, struct cli_opts *o);
/* The cache directory's size cap from --cache-max (default 2G; 0: keep
 * nothing not in use). */
uint64_t cli_cache_cap(const struct cli_opts *o);
/* A command without JSON output given --json: usage error (2), else 0. */
int cli_no_json(const char *cmd, const struct cli_opts *o);

/* --owner UID:GID (numeric): CLI_OK, or a usage error (2). */
int cli_parse_owner(const char *cmd, const char *arg, uid_t *uid, gid_t *gid);
/* Usage error for getopt_long's '?' or ':' result; returns 2. */
int cli_bad_option(const char *cmd, int c, char **argv);
/* Flush stdout at the end of a command: a write error turns CLI_OK into
 * CLI_ERR with a message; other codes are returned as they are. */
int cli_flush(int ret);
/* Print "layerfs: <msg>" for a failure. */
void cli_error(const char *fmt, ...) LF_PRINTF(1, 2);
/* Print a usage error plus "try 'layerfs CMD --help'" and return 2. */
int cli_usage(const char *cmd, const char *fmt, ...) LF_PRINTF(2, 3);

/*
 * Open the stack of IMAGE (path) and o's lowers: its first --layers layers
 * (all of them if all_layers), indexed in parallel with a progress line on
 * a terminal, and merged if want_tree.  Returns CLI_OK, CLI_ERR (message
 * printed) or CLI_USAGE (bad --layers).  Close with lf_stack_close().
 */
int cli_open(const struct cli_opts *o, const char *path, bool all_layers,
	     bool want_tree, struct lf_stack **out);

/* The path of the stack's image, as messages name it. */
static inline const char *cli_image_path(const struct lf_stack *s)
{
	return lf_image_path(lf_stack_image(s));
}

/* Output (cli_output.c). */
void cli_progress(const char *fmt, ...) LF_PRINTF(1, 2);
void cli_progress_done(void);
bool cli_progress_enabled(void);
void cli_set_progress(bool on);
/* "-rw-r--r--" from st_mode into out[11]. */
void cli_mode_string(uint32_t mode, char out[11]);
const char *cli_type_name(uint32_t mode);
/* Human-readable size ("12.3 MB") into out. */
void cli_human_size(uint64_t n, char out[16]);
/*
 * JSON output (docs/json.md): every top-level object starts with "schema":
 * CLI_JSON_SCHEMA; bytes and counts are integers, ratios have at most 10
 * significant digits, paths are absolute in the image ("/etc/passwd"), with a
 * KEY_hex twin holding the exact bytes when they are not UTF-8.
 */
#define CLI_JSON_SCHEMA 1
#define CLI_JSON_COMPACT                                                       \
	(JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(10))
#define CLI_JSON_INDENT                                                        \
	(JSON_INDENT(2) | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(10))
typedef struct json_t json_t;
/* {"schema": CLI_JSON_SCHEMA}, or NULL. */
json_t *cli_json_top(void);
/* A ratio (printed with 10 significant digits). */
json_t *cli_json_ratio(double v);
/* o[key] = s (a name: bytes; KEY_hex too when s is not UTF-8). */
void cli_json_name(json_t *o, const char *key, const char *s);
/* One JSON object describing an inode (ls --json, stat --json): path is
 * absolute; name (ls: the name as listed) is added when not NULL; top:
 * a top-level object (with "schema"). */
int cli_json_inode(FILE *f, const struct lf_stack *ci, const char *path,
		   const char *name, uint64_t ino, bool top);
/* One CI gate of `waste --ci`. */
struct cli_gate_result {
	const char *name; /* dive's rule name */
	bool pass;
	char value[32], limit[32]; /* as text */
	double v, lim;		   /* as numbers */
	bool skip;		   /* the rule is disabled */
};
struct lf_waste;
int cli_json_waste(FILE *f, const struct lf_stack *stack,
		   const struct lf_waste *w, const struct cli_gate_result *g,
		   size_t ng, bool ci);

/* diff --json: one change object; the stat object. */
struct lf_diff_change;
int cli_json_change(FILE *f, const struct lf_diff_change *c);
int cli_json_diff_stat(FILE *f, const uint64_t paths[3],
		       const uint64_t bytes[3]);
/* commit --json. */
int cli_json_commit(FILE *f, const char *layer, const char *diff_id,
		    uint64_t layer_size, const char *manifest, size_t nlayers,
		    const char *format, const char *out);
/* `layers --json` (w: the waste columns, h: the config history). */
struct cli_history;
int cli_json_layers(FILE *f, const struct lf_stack *ci,
		    const struct lf_waste *w, const struct cli_history *h);

/* Subcommands. */
int cli_cmd_layers(int argc, char **argv);
int cli_cmd_ls(int argc, char **argv);
int cli_cmd_cat(int argc, char **argv);
int cli_cmd_stat(int argc, char **argv);
int cli_cmd_mount(int argc, char **argv);
/* mount(8)'s form: layerfs SOURCE MNT -o OPTS */
int cli_mount_helper(int argc, char **argv);
int cli_cmd_diff(int argc, char **argv);
int cli_cmd_waste(int argc, char **argv);
int cli_cmd_commit(int argc, char **argv);
int cli_cmd_umount(int argc, char **argv);
int cli_cmd_cache(int argc, char **argv);
int cli_cmd_index(int argc, char **argv);
int cli_cmd_log(int argc, char **argv);
int cli_cmd_grep(int argc, char **argv);

#endif /* LAYERFS_CLI_INTERNAL_H */

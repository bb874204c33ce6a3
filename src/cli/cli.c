// SPDX-License-Identifier: MIT
/* cli.c - subcommand table, common options, opening an image for reading. */
#include "cli_internal.h"

#include <errno.h>
#include <getopt.h>
#include <locale.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layerfs/log.h"
#include "layerfs/tree_cache.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "layers", cli_cmd_layers, "list the layers of an image" },
	{ "ls", cli_cmd_ls, "list a directory of the merged view" },
	{ "cat", cli_cmd_cat, "print files of the merged view" },
	{ "stat", cli_cmd_stat, "show the metadata of a path" },
	{ "diff", cli_cmd_diff, "what changes between layer prefixes, or an upper "
	  "dir" },
	{ "waste", cli_cmd_waste, "bytes shipped but hidden, efficiency, hidden "
	  "secrets" },
	{ "commit", cli_cmd_commit, "write an upper dir as a new layer of a new "
	  "image" },
	{ "mount", cli_cmd_mount, "mount an image (or a layer prefix) with FUSE" },
	{ "umount", cli_cmd_umount, "unmount a layerfs mount" },
};

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: layerfs <command> [options] IMAGE ...\n\n"
		   "Read container images (OCI layout, OCI archive, docker "
		   "save tar) without\nextracting them.\n\ncommands:\n");
	for (i = 0; i < LF_ARRAY_SIZE(commands); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name,
			commands[i].summary);
	fprintf(f, "\nRun 'layerfs <command> --help' for its options.\n");
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
	fprintf(stderr, "layerfs: %s: %s\nTry 'layerfs %s --help'.\n", cmd,
		msg, cmd);
	return CLI_USAGE;
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
	case 'q':
		o->quiet = true;
		return 1;
	case OPT_LAYERS:
		errno = 0;
		o->layers = strtol(arg, &end, 10);
		if (errno || !*arg || *end || o->layers == 0) {
			fprintf(stderr, "layerfs: --layers wants a non-zero "
					"integer, not '%s'\n", arg);
			return -1;
		}
		o->has_layers = true;
		return 1;
	}
	return 0;
}

struct progress {
	pthread_mutex_t lock;
	size_t n;
	_Atomic uint64_t *done;	/* [n] bytes read per layer */
	uint64_t total;
	atomic_size_t finished;
};

struct slot {
	struct progress *pg;
	size_t i;
};

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct slot *s = ctx;
	struct progress *pg = s->pg;
	uint64_t sum = 0;
	size_t i;

	(void)total;
	atomic_store(&pg->done[s->i], done);
	if (!cli_progress_enabled() || pthread_mutex_trylock(&pg->lock))
		return;
	for (i = 0; i < pg->n; i++)
		sum += atomic_load(&pg->done[i]);
	cli_progress("indexing %zu layer%s: %3d%% of %llu MB", pg->n,
		     pg->n == 1 ? "" : "s",
		     pg->total ? (int)(sum * 100 / pg->total) : 100,
		     (unsigned long long)(pg->total >> 20));
	pthread_mutex_unlock(&pg->lock);
}

struct job {
	struct cli_image *ci;
	const struct cli_opts *o;
	struct progress *pg;
	struct slot *slots;
	struct lf_err *errs;	/* [n] */
	int *rets;		/* [n] */
	atomic_size_t next;
};

static void *index_worker(void *arg)
{
	struct job *j = arg;
	size_t i;

	while ((i = atomic_fetch_add(&j->next, 1)) < j->ci->n) {
		struct lf_index_opts io = { 0 };
		char label[64];

		snprintf(label, sizeof(label), "layer %zu", i + 1);
		io.cache_dir = cli_cache_dir(j->ci);
		io.verify = !j->o->no_verify;
		io.label = label;
		io.progress = on_progress;
		io.progress_ctx = &j->slots[i];
		if (j->ci->src[i].dir)
			j->rets[i] = lf_index_open_dir(j->ci->src[i].dir, label,
						       &j->ci->idx[i],
						       &j->errs[i]);
		else
			j->rets[i] = lf_index_open(j->ci->src[i].layer, &io,
						   &j->ci->idx[i],
						   &j->errs[i]);
	}
	return NULL;
}

/* Index layers 0..n-1 on all cores; the first failing layer is reported. */
static int index_layers(struct cli_image *ci, const struct cli_opts *o)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	size_t nthreads = ncpu > 0 ? (size_t)ncpu : 1, i, t;
	struct progress pg = { .n = ci->n };
	struct job j = { .ci = ci, .o = o, .pg = &pg };
	pthread_t *th = NULL;
	int ret = CLI_ERR;

	pthread_mutex_init(&pg.lock, NULL);
	pg.done = calloc(ci->n ? ci->n : 1, sizeof(*pg.done));
	j.slots = calloc(ci->n ? ci->n : 1, sizeof(*j.slots));
	j.errs = calloc(ci->n ? ci->n : 1, sizeof(*j.errs));
	j.rets = calloc(ci->n ? ci->n : 1, sizeof(*j.rets));
	if (nthreads > ci->n)
		nthreads = ci->n;
	th = calloc(nthreads ? nthreads : 1, sizeof(*th));
	if (!pg.done || !j.slots || !j.errs || !j.rets || !th) {
		cli_error("out of memory");
		goto out;
	}
	for (i = 0; i < ci->n; i++) {
		j.slots[i] = (struct slot){ &pg, i };
		pg.total += ci->src[i].layer ? ci->src[i].layer->size : 0;
	}
	for (t = 0; t < nthreads; t++)
		if (pthread_create(&th[t], NULL, index_worker, &j))
			break;
	if (t == 0)
		index_worker(&j); /* no threads: do it here */
	for (i = 0; i < t; i++)
		pthread_join(th[i], NULL);
	cli_progress_done();
	ret = CLI_OK;
	for (i = 0; i < ci->n; i++) {
		if (j.rets[i]) {
			cli_error("%s: %s", ci->name, j.errs[i].msg);
			ret = CLI_ERR;
			break;
		}
	}
out:
	pthread_mutex_destroy(&pg.lock);
	free(pg.done);
	free(j.slots);
	free(j.errs);
	free(j.rets);
	free(th);
	return ret;
}

/* A lowerdir element: an image (archive file or OCI layout) or a dir? */
static bool is_image(const char *path)
{
	struct stat st;
	char buf[4096];

	if (stat(path, &st) < 0)
		return false;
	if (S_ISREG(st.st_mode))
		return true;
	snprintf(buf, sizeof(buf), "%s/oci-layout", path);
	return access(buf, F_OK) == 0;
}

static int add_src(struct cli_image *ci, size_t *cap, struct cli_src s)
{
	if (ci->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		struct cli_src *p = realloc(ci->src, nc * sizeof(*p));

		if (!p)
			return -ENOMEM;
		ci->src = p;
		*cap = nc;
	}
	ci->src[ci->n++] = s;
	return 0;
}

/* The layers of IMAGE's prefix, then each lower (bottom first). */
static int gather(const struct cli_opts *o, const char *path,
		  bool all_layers, struct cli_image *ci)
{
	struct lf_image_opts io = { o->ref, o->platform, cli_cache_dir(ci) };
	struct lf_err err = { 0 };
	size_t cap = 0, count, n, i, k;

	if (path) {
		if (lf_image_open(path, &io, &ci->img, &err)) {
			cli_error("%s", err.msg);
			return CLI_ERR;
		}
		count = n = lf_image_layer_count(ci->img);
		if (o->has_layers && !all_layers) {
			long want = o->layers > 0 ? o->layers
						  : (long)count + o->layers;

			if (o->layers > (long)count || want < 1) {
				fprintf(stderr, "layerfs: --layers %ld: '%s' "
						"has %zu layer%s\n", o->layers,
					path, count, count == 1 ? "" : "s");
				return CLI_USAGE;
			}
			n = (size_t)want;
		}
		for (i = 0; i < n; i++)
			if (add_src(ci, &cap, (struct cli_src){
				    lf_image_layer(ci->img, i), NULL }))
				goto nomem;
	}
	ci->imgs = calloc(o->nlowers ? o->nlowers : 1, sizeof(*ci->imgs));
	if (!ci->imgs)
		goto nomem;
	/* lowerdir order: the first one is the top */
	for (k = o->nlowers; k-- > 0;) {
		const char *l = o->lowers[k];

		if (!is_image(l)) {
			if (add_src(ci, &cap, (struct cli_src){ NULL, l }))
				goto nomem;
			continue;
		}
		if (lf_image_open(l, &io, &ci->imgs[ci->nimgs], &err)) {
			cli_error("%s", err.msg);
			return CLI_ERR;
		}
		n = lf_image_layer_count(ci->imgs[ci->nimgs]);
		for (i = 0; i < n; i++)
			if (add_src(ci, &cap, (struct cli_src){
				    lf_image_layer(ci->imgs[ci->nimgs], i),
				    NULL }))
				goto nomem;
		ci->nimgs++;
	}
	return CLI_OK;
nomem:
	cli_error("out of memory");
	return CLI_ERR;
}

int cli_open(const struct cli_opts *o, const char *path, bool all_layers,
	     bool want_tree, struct cli_image *ci)
{
	struct lf_err err = { 0 };
	int ret;

	memset(ci, 0, sizeof(*ci));
	lf_buf_init(&ci->cache_dir);
	ci->name = path ? path : "lowerdir";
	if (!o->no_cache && lf_cache_dir(o->cache, &ci->cache_dir))
		lf_buf_reset(&ci->cache_dir); /* no HOME: work uncached */
	if (ci->cache_dir.len && lf_cache_mkdir(ci->cache_dir.data, &err)) {
		/* one warning, not one per layer: speed is lost, not data */
		lf_log(LF_LOG_WARN, "%s; working without a cache", err.msg);
		lf_buf_reset(&ci->cache_dir);
	}
	/* after the cache dir: a gzip'd archive keeps its checkpoints there */
	if ((ret = gather(o, path, all_layers, ci)))
		return ret;
	ci->idx = calloc(ci->n ? ci->n : 1, sizeof(*ci->idx));
	ci->blobs = calloc(ci->n ? ci->n : 1, sizeof(*ci->blobs));
	if (!ci->idx || !ci->blobs ||
	    lf_chunk_cache_new(LF_CHUNK_CACHE_DEFAULT, &ci->cc)) {
		cli_error("out of memory");
		return CLI_ERR;
	}
	if ((ret = index_layers(ci, o)))
		return ret;
	if (want_tree && lf_tree_open(ci->idx, ci->n, cli_cache_dir(ci),
				      &ci->tree, &err)) {
		cli_error("%s: %s", ci->name, err.msg);
		return CLI_ERR;
	}
	return CLI_OK;
}

struct lf_blob *cli_blob(struct cli_image *ci, size_t i, struct lf_err *err)
{
	if (!ci->blobs[i] &&
	    lf_blob_open(ci->src[i].layer ? ci->src[i].layer->blob : NULL,
			 ci->idx[i], ci->cc, &ci->blobs[i], err))
		return NULL;
	return ci->blobs[i];
}

void cli_close(struct cli_image *ci)
{
	size_t i;

	lf_tree_free(ci->tree);
	for (i = 0; ci->idx && i < ci->n; i++) {
		if (ci->blobs)
			lf_blob_close(ci->blobs[i]);
		lf_index_close(ci->idx[i]);
	}
	free(ci->idx);
	free(ci->blobs);
	lf_chunk_cache_free(ci->cc);
	lf_image_close(ci->img);
	for (i = 0; i < ci->nimgs; i++)
		lf_image_close(ci->imgs[i]);
	free(ci->imgs);
	free(ci->src);
	lf_buf_release(&ci->cache_dir);
	memset(ci, 0, sizeof(*ci));
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

int lf_cli_main(int argc, char **argv)
{
	size_t i;

	/* names are read from the tar headers' bytes (tarscan); the locale only
	 * tells commit's libarchive writer how to store them: UTF-8 names as
	 * they are, others as PAX hdrcharset=BINARY */
	if (!setlocale(LC_CTYPE, "C.UTF-8"))
		setlocale(LC_CTYPE, "");
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
	if (!strcmp(argv[1], "--version")) {
		printf("layerfs %s\n", LAYERFS_VERSION);
		return CLI_OK;
	}
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

// SPDX-License-Identifier: MIT
/* cli_read.c - `ls`, `cat` and `stat`: read the merged view without FUSE. */
#include "cli_internal.h"

#include <errno.h>
#include <getopt.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char ls_help[] =
	"usage: layerfs ls [options] IMAGE [PATH]\n\n"
	"List PATH (default: the root) of the merged view of the image, one\n"
	"name per line.\n\n"
	"options:\n"
	"  -l                   long format: mode, links, uid, gid, size,\n"
	"                       mtime, name (and symlink target)\n"
	"  -R                   recursive: every path below PATH, relative\n"
	"                       to it, parents before children\n"
	"  -U                   do not sort: names in archive order (else\n"
	"                       sorted as ls(1) sorts them, by the locale's\n"
	"                       collation; LC_ALL=C: byte "
	"order)\n"
	"      --origin         a LAYER column first: the layer that "
	"supplied\n"
	"                       the entry (1 = bottom; - for a directory no\n"
	"                       layer has); in --json always, as "
	"\"layer\"\n" CLI_COMMON_HELP;

static const char cat_help[] =
	"usage: layerfs cat [options] IMAGE PATH...\n\n"
	"Write the contents of files of the merged view to standard output.\n"
	"Symlinks are followed inside the image.  A PATH that cannot be read\n"
	"is reported and the others are still written; the exit status is\n"
	"then 1.\n\n"
	"options:\n" CLI_COMMON_HELP_NOJSON;

static const char stat_help[] =
	"usage: layerfs stat [options] IMAGE PATH\n\n"
	"Show the metadata of PATH in the merged view, and the layer it\n"
	"comes from.\n\n"
	"options:\n"
	"  -L                   follow a final symlink\n" CLI_COMMON_HELP;

/* Parse options for ls/cat/stat.  Returns -1 to go on, else an exit code. */
static int parse(const char *cmd, const char *help, const char *shortopts,
		 int argc, char **argv, struct cli_opts *o, bool *follow)
{
	enum { OPT_ORIGIN = 3000 };
	static const struct option longopts[] = { CLI_COMMON_LONGOPTS,
						  { "origin", no_argument, NULL,
						    OPT_ORIGIN },
						  { 0, 0, 0, 0 } };
	int c, ret;

	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		switch (c) {
		case OPT_HELP:
			fputs(help, stdout);
			return CLI_OK;
		case 'l':
			o->long_fmt = true;
			continue;
		case 'R':
			o->recursive = true;
			continue;
		case 'U':
			o->unsorted = true;
			continue;
		case 'L':
			*follow = true;
			continue;
		case OPT_ORIGIN:
			if (strcmp(cmd, "ls"))
				return cli_bad_option(cmd, c, argv);
			o->origin = true;
			continue;
		}
		ret = cli_common_opt(c, optarg, o);
		if (ret < 0)
			return CLI_USAGE;
		if (!ret)
			return cli_bad_option(cmd, c, argv);
	}
	if (o->quiet)
		cli_set_progress(false);
	return -1;
}

/* A path in a message: its first SHOWN bytes, then "..." if cut. */
#define SHOWN 200
#define SHOWN_FMT "'%.200s%s'"
#define SHOWN_ARGS(p) (p), strlen(p) > SHOWN ? "..." : ""

static int resolve(const struct lf_stack *ci, const char *path, int flags,
		   uint64_t *ino)
{
	int ret = lf_tree_resolve(lf_stack_tree(ci), path, flags, ino);

	if (ret)
		cli_error("%s: " SHOWN_FMT ": %s", cli_image_path(ci),
			  SHOWN_ARGS(path), strerror(-ret));
	return ret;
}

static void print_long(const struct lf_stack *ci, const char *name,
		       uint64_t ino)
{
	struct lf_tree_attr a;
	char mode[11], when[32];
	time_t t;
	struct tm tm;

	lf_tree_getattr(lf_stack_tree(ci), ino, &a);
	cli_mode_string(a.mode, mode);
	t = (time_t)a.mtime;
	if (!gmtime_r(&t, &tm) ||
	    !strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm))
		snprintf(when, sizeof(when), "%lld", (long long)a.mtime);
	if (S_ISCHR(a.mode) || S_ISBLK(a.mode))
		printf("%s %3u %5u %5u %5u, %5u %s %s", mode, a.nlink, a.uid,
		       a.gid, a.rdev_major, a.rdev_minor, when, name);
	else
		printf("%s %3u %5u %5u %12llu %s %s", mode, a.nlink, a.uid,
		       a.gid, (unsigned long long)a.size, when, name);
	if (S_ISLNK(a.mode))
		printf(" -> %s", lf_tree_readlink(lf_stack_tree(ci), ino));
	putchar('\n');
}

struct walk {
	const struct lf_stack *ci;
	const struct cli_opts *o;
	struct lf_buf path;
	struct lf_buf abs;  /* --json: the listed path, absolute */
	struct lf_buf full; /* and the current one */
	bool first;	    /* no JSON object printed yet */
};

/*
 * PATH as an absolute path in the image: "/" and its components without
 * empty ones and ".", ".." taking the previous one off (as the image's own
 * root has no parent).
 */
static int abs_path(const char *in, struct lf_buf *out)
{
	lf_buf_setlen(out, 0);
	while (*in) {
		const char *end = strchr(in, '/');
		size_t n = end ? (size_t)(end - in) : strlen(in);

		if (n == 2 && !memcmp(in, "..", 2)) {
			char *slash = out->len ? memrchr(out->data, '/',
							 out->len)
					       : NULL;

			lf_buf_setlen(out,
				      slash ? (size_t)(slash - out->data) : 0);
		} else if (n && !(n == 1 && in[0] == '.')) {
			if (lf_buf_addch(out, '/') || lf_buf_add(out, in, n))
				return -ENOMEM;
		}
		in += n + (end ? 1 : 0);
	}
	return out->len ? 0 : lf_buf_addch(out, '/');
}

/* The absolute path of `rel` (a path below the listed one). */
static const char *json_path(struct walk *w, const char *rel)
{
	size_t base = w->abs.len;

	lf_buf_setlen(&w->full, 0);
	if (lf_buf_add(&w->full, w->abs.data, base) ||
	    (*rel && base > 1 && lf_buf_addch(&w->full, '/')) ||
	    lf_buf_adds(&w->full, rel))
		return NULL;
	return w->full.data;
}

/* ls --origin: the layer that supplied the entry (1 = bottom), "-" for a
 * directory no layer has. */
static void print_origin(const struct lf_stack *ci, uint64_t ino)
{
	struct lf_tree_attr a;

	if (lf_tree_getattr(lf_stack_tree(ci), ino, &a) || a.layer < 0)
		printf("%5s ", "-");
	else
		printf("%5d ", a.layer + 1);
}

static void emit(struct walk *w, const char *name, uint64_t ino)
{
	if (w->o->origin && !w->o->json)
		print_origin(w->ci, ino);
	if (w->o->json) {
		const char *p = json_path(w, w->path.len ? w->path.data : "");

		fputs(w->first ? "[\n" : ",\n", stdout);
		cli_json_inode(stdout, w->ci, p ? p : name, name, ino, false);
		w->first = false;
	} else if (w->o->long_fmt) {
		print_long(w->ci, name, ino);
	} else {
		puts(name);
	}
}

/* One name of a directory, for sorting. */
struct dent {
	const char *name;
	size_t len;
	uint64_t ino;
};

/* Sorting by the locale's collation (strcoll), not bytes alone. */
static bool collate;

static int cmp_dent(const void *pa, const void *pb)
{
	const struct dent *a = pa, *b = pb;
	size_t n = a->len < b->len ? a->len : b->len;
	int c;

	/* as ls(1): the locale's collation (names are NUL-terminated
	 * copies then), bytes break ties; the C locale is byte order */
	if (collate && (c = strcoll(a->name, b->name)))
		return c;
	c = memcmp(a->name, b->name, n);
	return c ? c : (a->len > b->len) - (a->len < b->len);
}

/*
 * The entries of dir, sorted unless -U (archive order): *out malloc'd, and
 * *names (NUL-terminated copies for strcoll, or NULL) too.
 */
static int dir_entries(const struct walk *w, uint64_t dir, struct dent **out,
		       size_t *n, char **names)
{
	const struct lf_tree *t = lf_stack_tree(w->ci);
	size_t i, cnt = lf_tree_dir_count(t, dir), total = 0;
	struct dent *d = malloc((cnt ? cnt : 1) * sizeof(*d));
	char *p;

	*names = NULL;
	if (!d)
		return -ENOMEM;
	for (i = 0; i < cnt; i++) {
		lf_tree_dir_entry(t, dir, i, &d[i].name, &d[i].len, &d[i].ino);
		total += d[i].len + 1;
	}
	if (!w->o->unsorted && cnt > 1 && collate) {
		if (!(p = *names = malloc(total))) {
			free(d);
			return -ENOMEM;
		}
		for (i = 0; i < cnt; i++) {
			memcpy(p, d[i].name, d[i].len);
			p[d[i].len] = '\0';
			d[i].name = p;
			p += d[i].len + 1;
		}
	}
	if (!w->o->unsorted && cnt > 1)
		qsort(d, cnt, sizeof(*d), cmp_dent);
	*out = d;
	*n = cnt;
	return 0;
}

/* Depth-first walk with an explicit stack of directories being listed. */
static int walk_dir(struct walk *w, uint64_t dir)
{
	struct frame {
		struct dent *d;
		char *names;
		size_t n, i;
		size_t plen;
	} *st = NULL;
	size_t depth = 0, cap = 64;
	int ret = 0;

	if (!(st = malloc(sizeof(*st) * cap)))
		return -ENOMEM;
	st[0].plen = w->path.len;
	st[0].i = 0;
	if ((ret = dir_entries(w, dir, &st[0].d, &st[0].n, &st[0].names))) {
		free(st);
		return ret;
	}
	depth = 1;
	while (depth) {
		struct frame *f = &st[depth - 1];
		const struct dent *e;
		struct lf_tree_attr a;

		if (f->i >= f->n) {
			lf_buf_setlen(&w->path, f->plen);
			free(f->d);
			free(f->names);
			depth--;
			continue;
		}
		e = &f->d[f->i++];
		lf_buf_setlen(&w->path, f->plen);
		if (w->path.len)
			lf_buf_addch(&w->path, '/');
		lf_buf_add(&w->path, e->name, e->len);
		emit(w,
		     w->o->recursive ? w->path.data
				     : w->path.data + w->path.len - e->len,
		     e->ino);
		lf_tree_getattr(lf_stack_tree(w->ci), e->ino, &a);
		if (!w->o->recursive || !S_ISDIR(a.mode))
			continue;
		if (depth == cap) {
			struct frame *nf = realloc(st, sizeof(*st) * cap * 2);

			if (!nf) {
				ret = -ENOMEM;
				break;
			}
			st = nf;
			cap *= 2;
		}
		st[depth].plen = w->path.len;
		st[depth].i = 0;
		if ((ret = dir_entries(w, e->ino, &st[depth].d, &st[depth].n,
				       &st[depth].names)))
			break;
		depth++;
	}
	while (depth) {
		depth--;
		free(st[depth].d);
		free(st[depth].names);
	}
	free(st);
	return ret;
}

int cli_cmd_ls(int argc, char **argv)
{
	struct cli_opts o = { 0 };
	struct lf_stack *ci = NULL;
	struct walk w = { .o = &o, .first = true };
	const char *path;
	struct lf_tree_attr a;
	uint64_t ino;
	bool follow = false;
	int ret;

	ret = parse("ls", ls_help, ":lRUq", argc, argv, &o, &follow);
	if (ret >= 0)
		return ret;
	if (optind >= argc || argc - optind > 2)
		return cli_usage("ls", "expected IMAGE [PATH]");
	path = optind + 1 < argc ? argv[optind + 1] : "";
	{
		const char *c = setlocale(LC_COLLATE, NULL);

		collate = c && strcmp(c, "C") && strcmp(c, "POSIX");
	}
	ret = cli_open(&o, argv[optind], false, true, &ci);
	if (ret)
		goto out;
	w.ci = ci;
	lf_buf_init(&w.path);
	lf_buf_init(&w.abs);
	lf_buf_init(&w.full);
	/* like ls(1): a symlink to a directory is listed as the directory */
	if (resolve(ci, path, LF_TREE_FOLLOW, &ino)) {
		ret = CLI_ERR;
	} else if (abs_path(path, &w.abs)) {
		cli_error("out of memory");
		ret = CLI_ERR;
	} else {
		lf_tree_getattr(lf_stack_tree(ci), ino, &a);
		if (S_ISDIR(a.mode)) {
			if (walk_dir(&w, ino))
				ret = CLI_ERR;
		} else {
			lf_tree_resolve(lf_stack_tree(ci), path, 0, &ino);
			emit(&w, path, ino);
		}
		if (o.json)
			fputs(w.first ? "[]\n" : "\n]\n", stdout);
	}
	lf_buf_release(&w.path);
	lf_buf_release(&w.abs);
	lf_buf_release(&w.full);
out:
	lf_stack_close(ci);
	return cli_flush(ret);
}

/* cat_one()'s answer when standard output failed: no use going on. */
#define CAT_OUTPUT_FAILED (-1)

/* One file to stdout: CLI_OK, CLI_ERR (said why), or CAT_OUTPUT_FAILED. */
static int cat_one(const struct lf_stack *ci, const char *path)
{
	const struct lf_idx_entry *e;
	struct lf_err err = { 0 };
	struct lf_blob *b;
	static char buf[1 << 20];
	uint64_t ino, off = 0;
	size_t layer;
	int ret;

	if (resolve(ci, path, LF_TREE_FOLLOW, &ino))
		return CLI_ERR;
	ret = lf_tree_data(lf_stack_tree(ci), ino, &layer, &e);
	if (ret) {
		struct lf_tree_attr a;

		lf_tree_getattr(lf_stack_tree(ci), ino, &a);
		cli_error("%s: " SHOWN_FMT ": %s", cli_image_path(ci),
			  SHOWN_ARGS(path),
			  S_ISDIR(a.mode) ? "is a directory"
					  : "not a regular file");
		return CLI_ERR;
	}
	if (!(b = lf_stack_blob(ci, layer, &err))) {
		cli_error("%s: %s", cli_image_path(ci), err.msg);
		return CLI_ERR;
	}
	while (off < e->size) {
		ssize_t n = lf_blob_read_file(b, e, buf, sizeof(buf), off,
					      &err);

		if (n <= 0) {
			cli_error("%s: " SHOWN_FMT ": %s", cli_image_path(ci),
				  SHOWN_ARGS(path),
				  n < 0 ? err.msg : "unexpected end of data");
			return CLI_ERR;
		}
		if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n) {
			cli_error("cannot write output: %s", strerror(errno));
			return CAT_OUTPUT_FAILED;
		}
		off += (uint64_t)n;
	}
	return CLI_OK;
}

int cli_cmd_cat(int argc, char **argv)
{
	struct cli_opts o = { 0 };
	struct lf_stack *ci = NULL;
	bool follow = false;
	int ret, i;

	ret = parse("cat", cat_help, ":q", argc, argv, &o, &follow);
	if (ret >= 0)
		return ret;
	if (cli_no_json("cat", &o))
		return CLI_USAGE;
	if (argc - optind < 2)
		return cli_usage("cat", "expected IMAGE PATH...");
	ret = cli_open(&o, argv[optind], false, true, &ci);
	/* as cat(1): a path that fails is reported, the others still go out,
	 * and the exit status says something failed */
	for (i = optind + 1; ci && i < argc; i++) {
		int r = cat_one(ci, argv[i]);

		if (r != CLI_OK)
			ret = CLI_ERR;
		if (r == CAT_OUTPUT_FAILED)
			break;
	}
	lf_stack_close(ci);
	return cli_flush(ret);
}

/* A time as stat(1) prints it: local time, nanoseconds, UTC offset. */
static void print_time(const char *what, int64_t sec, unsigned nsec)
{
	time_t t = (time_t)sec;
	char day[64], zone[16];
	struct tm tm;

	if ((int64_t)t != sec || !localtime_r(&t, &tm) ||
	    !strftime(day, sizeof(day), "%Y-%m-%d %H:%M:%S", &tm) ||
	    !strftime(zone, sizeof(zone), "%z", &tm))
		printf("%s: %lld.%09u\n", what, (long long)sec, nsec);
	else
		printf("%s: %s.%09u %s\n", what, day, nsec, zone);
}

static void print_stat(const struct lf_stack *ci, const char *path,
		       uint64_t ino)
{
	struct lf_tree_attr a;
	char mode[11];
	size_t k, n;

	lf_tree_getattr(lf_stack_tree(ci), ino, &a);
	cli_mode_string(a.mode, mode);
	printf("  File: %s", path);
	if (S_ISLNK(a.mode))
		printf(" -> %s", lf_tree_readlink(lf_stack_tree(ci), ino));
	printf("\n  Type: %s\n  Size: %llu\tBlocks: %llu\tInode: %llu\t"
	       "Links: %u\n",
	       cli_type_name(a.mode), (unsigned long long)a.size,
	       (unsigned long long)a.blocks, (unsigned long long)a.ino,
	       a.nlink);
	printf("  Mode: %04o (%s)\tUid: %u\tGid: %u\n", a.mode & 07777, mode,
	       a.uid, a.gid);
	if (S_ISCHR(a.mode) || S_ISBLK(a.mode))
		printf("Device: %u,%u\n", a.rdev_major, a.rdev_minor);
	print_time("Modify", a.mtime, a.mtime_nsec);
	if (a.layer < 0)
		printf(" Layer: none (implicit directory)\n");
	else
		printf(" Layer: %d (%s)\n", a.layer + 1,
		       lf_index_blob_digest(lf_stack_index(ci, a.layer)));
	n = lf_tree_xattr_count(lf_stack_tree(ci), ino);
	for (k = 0; k < n; k++) {
		const char *name;
		const void *v;
		size_t len, i;

		lf_tree_xattr(lf_stack_tree(ci), ino, k, &name, &v, &len);
		printf(" Xattr: %s=0x", name);
		for (i = 0; i < len; i++)
			printf("%02x", ((const unsigned char *)v)[i]);
		putchar('\n');
	}
}

int cli_cmd_stat(int argc, char **argv)
{
	struct cli_opts o = { 0 };
	struct lf_stack *ci = NULL;
	bool follow = false;
	uint64_t ino;
	int ret;

	ret = parse("stat", stat_help, ":Lq", argc, argv, &o, &follow);
	if (ret >= 0)
		return ret;
	if (argc - optind != 2)
		return cli_usage("stat", "expected IMAGE PATH");
	ret = cli_open(&o, argv[optind], false, true, &ci);
	if (ret == CLI_OK &&
	    resolve(ci, argv[optind + 1], follow ? LF_TREE_FOLLOW : 0, &ino))
		ret = CLI_ERR;
	if (ret == CLI_OK) {
		struct lf_buf abs;

		lf_buf_init(&abs);
		if (o.json && abs_path(argv[optind + 1], &abs)) {
			cli_error("out of memory");
			ret = CLI_ERR;
		} else if (o.json) {
			cli_json_inode(stdout, ci, abs.data, NULL, ino, true);
			putchar('\n');
		} else {
			print_stat(ci, argv[optind + 1], ino);
		}
		lf_buf_release(&abs);
	}
	lf_stack_close(ci);
	return cli_flush(ret);
}

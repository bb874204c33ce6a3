// SPDX-License-Identifier: MIT
/*
 * fuzz_upper.c - what reads an upper directory without FUSE, over whatever
 * someone could leave in one.  The input is a little program that builds two
 * small trees in a private temp dir, a lower one and an upper one: files,
 * directories (up to MAX_DEPTH deep), symlinks (absolute, `..`, dangling),
 * FIFOs, `.wh.` whiteouts and `.wh..wh..opq` markers of every type, names
 * of arbitrary bytes.  Then:
 *   - the directory-layer indexer (index_dir.c) reads both trees, and the
 *     tree merges them as two layers (`.wh.` names as whiteouts);
 *   - the upper API (upper.c, as `diff --upper` and `commit` use it) walks
 *     the lower tree with the upper dir on top: readdir, lookup, getattr,
 *     readlink, xattrs, and open/read of files.
 * A listed `.wh.` name, a d_ino that differs from the lookup's st_ino, or a
 * listed name that lookup does not find abort()s; a FIFO opened would hang
 * (libFuzzer's -timeout).  Everything made is removed after each input.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "layerfs/blob.h"
#include "layerfs/index.h"
#include "layerfs/log.h"
#include "layerfs/tree.h"
#include "layerfs/upper.h"

#define MAX_DEPTH 12
#define MAX_ENTRIES 256
#define MAX_VISIT 4096

static char base[64];

static void remove_base(void)
{
	if (base[0])
		rmdir(base);
}

/* Remove everything below dirfd (never following a symlink), then name. */
static void rm_tree(int dirfd, const char *name, int depth)
{
	int fd;

	if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
		return;
	fd = openat(dirfd, name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	/* rescan until empty: removing while listing may skip entries */
	while (fd >= 0 && depth < 64) {
		int dup = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		DIR *dp = dup >= 0 ? fdopendir(dup) : NULL;
		struct dirent *de;
		int seen = 0;

		if (!dp) {
			if (dup >= 0)
				close(dup);
			break;
		}
		while ((de = readdir(dp)))
			if (strcmp(de->d_name, ".") &&
			    strcmp(de->d_name, "..")) {
				rm_tree(fd, de->d_name, depth + 1);
				seen = 1;
			}
		closedir(dp);
		if (!seen)
			break;
	}
	if (fd >= 0)
		close(fd);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		abort(); /* the target must leave nothing behind */
}

/* --- the input program ---------------------------------------------------- */

struct prog {
	const uint8_t *p, *end;
	int fd[2][MAX_DEPTH + 1]; /* open dirs per side, [0] = top */
	int depth[2];
	int side;
	int entries;
};

static unsigned byte(struct prog *g)
{
	return g->p < g->end ? *g->p++ : 0;
}

static const char *const NAMES[] = {
	"a",	     "b",     "etc",
	"d",	     ".wh.a", ".wh..wh..opq",
	".wh.",	     ".wh.d", ".wh..wh..lftmp.1",
	".wh..wh.a", "..a",   ".hidden",
};

/* A name: one of the table, or 1..16 input bytes (no NUL, no '/'). */
static void name_of(struct prog *g, char *buf)
{
	unsigned k = byte(g), len, i;

	if (k < 0x80) {
		strcpy(buf, NAMES[k % LF_ARRAY_SIZE(NAMES)]);
		return;
	}
	len = 1 + (k & 15);
	for (i = 0; i < len; i++) {
		unsigned c = byte(g);

		buf[i] = (char)(c == 0 || c == '/' ? 'x' : c);
	}
	buf[len] = '\0';
	if (!strcmp(buf, ".") || !strcmp(buf, ".."))
		strcpy(buf, "dot");
}

static const char *const TARGETS[] = {
	"/etc/passwd",	   "..", "../..", "../../../..", "/", "a", "d/a",
	"/proc/self/fd/0", "",	 ".wh.a", "/dev/zero",	 ".",
};

static void make(struct prog *g, int type, const char *name)
{
	int dfd = g->fd[g->side][g->depth[g->side]], fd;
	unsigned n;

	switch (type) {
	case 0: /* file with up to 255 bytes from the input */
		fd = openat(dfd, name,
			    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
				    O_CLOEXEC,
			    0644);
		if (fd < 0)
			return;
		n = byte(g);
		if (n > (unsigned)(g->end - g->p))
			n = (unsigned)(g->end - g->p);
		if (n && write(fd, g->p, n) < 0)
			n = 0;
		g->p += n;
		close(fd);
		break;
	case 1: /* directory, entered */
		if (mkdirat(dfd, name, 0755) < 0 ||
		    g->depth[g->side] == MAX_DEPTH)
			return;
		fd = openat(dfd, name,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0)
			g->fd[g->side][++g->depth[g->side]] = fd;
		break;
	case 2: /* symlink */
		n = byte(g);
		if (symlinkat(TARGETS[n % LF_ARRAY_SIZE(TARGETS)], dfd, name) <
		    0)
			return;
		break;
	default: /* FIFO */
		mkfifoat(dfd, name, 0644);
		break;
	}
}

static void run_prog(struct prog *g)
{
	char name[32], wh[40];
	unsigned op;

	while (g->p < g->end && g->entries < MAX_ENTRIES) {
		op = byte(g);
		g->entries++;
		switch (op & 7) {
		case 0:
		case 1:
		case 2:
		case 3:
			name_of(g, name);
			make(g, (int)(op & 3), name);
			break;
		case 4: /* leave a directory */
			if (g->depth[g->side])
				close(g->fd[g->side][g->depth[g->side]--]);
			break;
		case 5: /* a whiteout of some type */
			name_of(g, name);
			snprintf(wh, sizeof(wh), ".wh.%s", name);
			make(g, (int)(op >> 3) & 3, wh);
			break;
		case 6: /* an opaque marker of some type */
			make(g, (int)(op >> 3) & 3, ".wh..wh..opq");
			break;
		default:
			g->side ^= 1;
			break;
		}
	}
}

/* --- the readers ---------------------------------------------------------- */

static volatile uint64_t sink; /* keeps the reads from being dropped */

static void walk_tree(const struct lf_tree *t)
{
	uint64_t n = lf_tree_count(t), ino, sum = 0;

	for (ino = 1; ino <= n; ino++) {
		struct lf_tree_attr a;
		const char *l;

		if (lf_tree_getattr(t, ino, &a))
			abort();
		if ((l = lf_tree_readlink(t, ino)))
			sum += strlen(l);
		sum += lf_tree_dir_count(t, ino);
	}
	sink = sum;
}

static void read_file(struct lf_upper *up, uint64_t id)
{
	char buf[512];
	uint64_t fh;
	off_t off = 0;
	ssize_t n;

	if (lf_upper_open(up, id, O_RDONLY, &fh))
		return;
	while ((n = lf_upper_read(up, fh, buf, sizeof(buf), off)) > 0)
		off += n;
	lf_upper_release(up, fh);
}

static void node_extras(struct lf_upper *up, uint64_t id, mode_t mode)
{
	char buf[4096];
	bool in;

	lf_upper_listxattr(up, id, buf, sizeof(buf));
	lf_upper_getxattr(up, id, "user.x", buf, sizeof(buf));
	lf_upper_in_upper(up, id, &in);
	if (S_ISLNK(mode))
		lf_upper_readlink(up, id, buf, sizeof(buf));
	if (S_ISREG(mode))
		read_file(up, id);
}

/* Breadth-first over the merged view; every listed name must look up. */
static void walk_upper(struct lf_upper *up)
{
	uint64_t *queue = malloc(MAX_VISIT * sizeof(*queue));
	size_t head = 0, tail = 0, visits = 0;

	if (!queue)
		abort();
	queue[tail++] = LF_UPPER_ROOT;
	while (head < tail) {
		uint64_t dir = queue[head++], dh, id;
		struct lf_upper_dirent d;
		struct stat st;
		size_t i;

		if (lf_upper_getattr(up, dir, &st) ||
		    lf_upper_opendir(up, dir, &dh))
			continue;
		for (i = 0; !lf_upper_readdir(up, dh, i, &d); i++) {
			if (!strncmp(d.name, ".wh.", 4))
				abort(); /* whiteouts are never shown */
			if (lf_upper_lookup(up, dir, d.name, &id, &st))
				abort(); /* listed, so it must look up */
			if (st.st_ino != d.ino ||
			    (st.st_mode & S_IFMT) != d.type)
				abort();
			node_extras(up, id, st.st_mode);
			if (S_ISDIR(st.st_mode) && tail < MAX_VISIT &&
			    ++visits < MAX_VISIT)
				queue[tail++] = id; /* keeps its reference */
			else
				lf_upper_forget(up, id, 1);
		}
		lf_upper_releasedir(up, dh);
		/* whiteouts and temp names never look up */
		if (!lf_upper_lookup(up, dir, ".wh.a", &id, &st) ||
		    !lf_upper_lookup(up, dir, ".wh..wh..opq", &id, &st))
			abort();
	}
	for (head = 1; head < tail; head++)
		lf_upper_forget(up, queue[head], 1);
	free(queue);
}

static void read_all(const char *lower, const char *upper)
{
	struct lf_index *idx[2] = { NULL, NULL };
	const char *lowers[1] = { lower };
	struct lf_stack_opts so = { .lowers = lowers,
				    .nlowers = 1,
				    .want_tree = true };
	struct lf_stack *stack = NULL;
	struct lf_tree *tree = NULL;
	struct lf_upper *up = NULL;
	struct lf_err err;
	size_t n = 0;

	/* both trees as directory layers, merged */
	if (!lf_index_open_dir(lower, "lower", &idx[0], &err))
		n = 1;
	if (n && !lf_index_open_dir(upper, "upper", &idx[1], &err)) {
		if (!lf_tree_build(idx, 2, &tree, &err)) {
			walk_tree(tree);
			lf_tree_free(tree);
			tree = NULL;
		}
		lf_index_close(idx[1]);
	}
	if (idx[0])
		lf_index_close(idx[0]);
	/* the upper API over the lower layer (or the empty view) */
	so.nlowers = n;
	if (lf_stack_open(NULL, &so, &stack, &err))
		return;
	if (!lf_upper_new(upper, stack, &up, &err)) {
		walk_upper(up);
		lf_upper_free(up);
	}
	lf_stack_close(stack);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct prog g = { .p = data, .end = data + size };
	char lower[96], upper[96];
	int bfd, s;

	if (!base[0]) {
		const char *tmp = getenv("TMPDIR");

		lf_log_set_level(LF_LOG_ERR);
		snprintf(base, sizeof(base), "%s/lfz-upper-XXXXXX",
			 tmp && strlen(tmp) < 40 ? tmp : "/tmp");
		if (!mkdtemp(base))
			abort();
		atexit(remove_base);
	}
	bfd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (bfd < 0 || mkdirat(bfd, "lower", 0755) < 0 ||
	    mkdirat(bfd, "upper", 0755) < 0)
		abort();
	for (s = 0; s < 2; s++) {
		g.fd[s][0] = openat(bfd, s ? "upper" : "lower",
				    O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (g.fd[s][0] < 0)
			abort();
	}
	run_prog(&g);
	for (s = 0; s < 2; s++)
		while (g.depth[s] >= 0)
			close(g.fd[s][g.depth[s]--]);
	snprintf(lower, sizeof(lower), "%s/lower", base);
	snprintf(upper, sizeof(upper), "%s/upper", base);
	read_all(lower, upper);
	rm_tree(bfd, "lower", 0);
	rm_tree(bfd, "upper", 0);
	close(bfd);
	return 0;
}

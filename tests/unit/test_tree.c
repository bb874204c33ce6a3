// SPDX-License-Identifier: MIT
/*
 * test_tree.c - the incremental merge (lf_merge_*) against an oracle made of
 * whole trees: for every prefix of a stack of tar layers, lf_tree_build()
 * says which files are visible, so the difference between two prefixes says
 * what gone() must report while the layer between them is applied; a walk of
 * the prefix tree says what lf_merge_dir_bytes() must answer; and the tree
 * lf_merge_finish() freezes must be the one lf_tree_build() makes.  Random
 * stacks (fixed seeds) and hand-written stacks with known answers.
 *
 * The layers are ustar files written here member by member, so that a stack
 * can hold what a directory walk cannot: the same path twice in one layer,
 * hardlinks to lower layers, members in any order, devices without root.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "layerfs/cache.h"
#include "layerfs/digest.h"
#include "layerfs/index.h"
#include "layerfs/tree.h"
#include "layerfs/tree_cache.h"
#include "layerfs/vfile.h"
#include "lf_test.h"
#include "tree_internal.h"

#define MAXL 6	/* layers in a stack */
#define MAXE 64 /* members in a layer */
#define NSEEDS 300

/* One tar member; type is the ustar typeflag: '0' file, '1' hardlink,
 * '2' symlink, '3' character device, '5' directory, '6' fifo. */
struct ment {
	char type;
	char name[64];
	char link[64];
	uint32_t size, mode, uid;
	int64_t mtime;
};

/* A zero-padded octal field of `width` bytes, NUL last. */
static void oct(unsigned char *dst, size_t width, uint64_t v)
{
	size_t i;

	dst[width - 1] = '\0';
	for (i = width - 1; i-- > 0; v >>= 3)
		dst[i] = (unsigned char)('0' + (v & 7));
}

static int write_tar(const char *file, const struct ment *v, size_t n)
{
	static const char zero[1024];
	char data[4096];
	FILE *f = fopen(file, "wb");
	size_t i, k;

	if (!f)
		return -1;
	for (i = 0; i < n; i++) {
		const struct ment *m = &v[i];
		uint32_t size = m->type == '0' ? m->size : 0;
		unsigned char h[512];
		unsigned int sum = 0;

		memset(h, 0, sizeof(h));
		snprintf((char *)h, 100, "%s", m->name);
		oct(h + 100, 8, m->mode);
		oct(h + 108, 8, m->uid);
		oct(h + 116, 8, m->uid + 1);
		oct(h + 124, 12, size);
		oct(h + 136, 12, (uint64_t)m->mtime);
		h[156] = (unsigned char)m->type;
		snprintf((char *)h + 157, 100, "%s", m->link);
		memcpy(h + 257, "ustar", 6);
		memcpy(h + 263, "00", 2);
		oct(h + 329, 8, m->type == '3' ? 1 : 0);
		oct(h + 337, 8, m->type == '3' ? 3 : 0);
		memset(h + 148, ' ', 8);
		for (k = 0; k < 512; k++)
			sum += h[k];
		snprintf((char *)h + 148, 8, "%06o", sum);
		fwrite(h, 1, 512, f);
		if (size > sizeof(data))
			size = sizeof(data);
		memset(data, 'a' + (int)(i % 26), size);
		fwrite(data, 1, size, f);
		fwrite(zero, 1, (512 - size % 512) % 512, f);
	}
	fwrite(zero, 1, sizeof(zero), f);
	return fclose(f);
}

/* A stack of layers l0.tar .. l<n-1>.tar, indexed (no verify, cached). */
struct stack {
	size_t n;
	char file[MAXL][16];
	struct lf_image_layer l[MAXL];
	struct lf_index *idx[MAXL];
};

static int open_layer(struct stack *s, size_t i, struct lf_err *err)
{
	struct lf_index_opts io = { .cache_dir = "cache",
				    .verify = false,
				    .label = s->file[i] };
	struct lf_image_layer *l = &s->l[i];
	char *data = NULL;
	long len;
	FILE *f;
	int ret;

	memset(l, 0, sizeof(*l));
	l->source = s->file[i];
	/* a real digest, so that the index goes through the cache */
	f = fopen(s->file[i], "rb");
	if (!f || fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) || !(data = malloc((size_t)len + 1)) ||
	    fread(data, 1, (size_t)len, f) != (size_t)len) {
		if (f)
			fclose(f);
		free(data);
		return lf_err_set(err, -EIO, "cannot read %s", s->file[i]);
	}
	fclose(f);
	ret = lf_sha256_mem(data, (size_t)len, l->digest);
	free(data);
	if (ret)
		return lf_err_set(err, ret, "sha256 failed");
	if ((ret = lf_vfile_open(s->file[i], NULL, &l->blob, err)))
		return ret;
	return lf_index_open(l, &io, &s->idx[i], err);
}

static void stack_close(struct stack *s)
{
	size_t i;

	for (i = 0; i < s->n; i++) {
		lf_index_close(s->idx[i]);
		lf_vfile_close(s->l[i].blob);
	}
	memset(s, 0, sizeof(*s));
}

/* Write and index the layers v[l][0..cnt[l]); 0 or -errno. */
static int stack_make(struct stack *s, struct ment (*v)[MAXE],
		      const size_t *cnt, size_t n)
{
	struct lf_err err = { 0 };
	size_t i;
	int ret;

	memset(s, 0, sizeof(*s));
	for (i = 0; i < n; i++) {
		snprintf(s->file[i], sizeof(s->file[i]), "l%zu.tar", i);
		if (write_tar(s->file[i], v[i], cnt[i])) {
			LF_FAIL("cannot write %s", s->file[i]);
			stack_close(s);
			return -EIO;
		}
		s->n = i + 1;
		if ((ret = open_layer(s, i, &err))) {
			LF_FAIL("%s", err.msg);
			stack_close(s);
			return ret;
		}
	}
	return 0;
}

/* ---- the oracle: facts read from whole trees only ---- */

/* Global numbering of all entries of all layers. */
struct numbering {
	struct lf_index *const *idx;
	size_t n;
	size_t base[MAXL + 1];
};

static void number(struct numbering *nb, struct lf_index *const *idx, size_t n)
{
	size_t l;

	nb->idx = idx;
	nb->n = n;
	nb->base[0] = 0;
	for (l = 0; l < n; l++)
		nb->base[l + 1] = nb->base[l] + lf_index_count(idx[l]);
}

/* Mark the (layer, entry) of every non-directory inode of t in `in`. */
static void visible_files(const struct lf_tree *t, const struct numbering *nb,
			  uint8_t *in, const char *what)
{
	uint64_t ino, n = lf_tree_count(t);

	for (ino = 1; ino <= n; ino++) {
		struct lf_tree_attr a;
		size_t i;

		if (lf_tree_getattr(t, ino, &a)) {
			LF_FAIL("%s: getattr(%" PRIu64 ") failed", what, ino);
			continue;
		}
		if (S_ISDIR(a.mode))
			continue;
		if (a.layer < 0 || (size_t)a.layer >= nb->n || !a.entry) {
			LF_FAIL("%s: inode %" PRIu64 " has no entry", what,
				ino);
			continue;
		}
		i = (size_t)(a.entry - lf_index_entry(nb->idx[a.layer], 0));
		if (i >= lf_index_count(nb->idx[a.layer])) {
			LF_FAIL("%s: inode %" PRIu64 ": bad entry", what, ino);
			continue;
		}
		if (in[nb->base[a.layer] + i])
			LF_FAIL("%s: two inodes share entry %zu of layer %d",
				what, i, a.layer);
		in[nb->base[a.layer] + i] = 1;
	}
}

/* An entry that makes a new inode when applied: a non-directory that is
 * neither a whiteout nor a hardlink (which shares its target's inode). */
static bool makes_inode(const struct lf_index *idx, size_t i)
{
	const struct lf_idx_entry *e = lf_index_entry(idx, i);

	return !(e->flags & LF_IDX_WHITEOUT) && e->kind != LF_KIND_DIR &&
	       e->kind != LF_KIND_HARDLINK && lf_index_path(idx, e)[0];
}

/* The directory at `path` walking names only (no symlinks), or 0. */
static uint64_t tree_dir(const struct lf_tree *t, const char *path, size_t len)
{
	uint64_t cur = LF_TREE_ROOT;
	size_t i = 0;

	while (i < len) {
		struct lf_tree_attr a;
		size_t s = i;

		while (i < len && path[i] != '/')
			i++;
		if (lf_tree_lookup(t, cur, path + s, i - s, &cur) ||
		    lf_tree_getattr(t, cur, &a) || !S_ISDIR(a.mode))
			return 0;
		i++;
	}
	return cur;
}

/* Bytes of the regular-file inodes below dir, each once (seen[ino]). */
static uint64_t tree_bytes(const struct lf_tree *t, uint64_t dir, uint8_t *seen)
{
	size_t i, n = lf_tree_dir_count(t, dir);
	uint64_t sum = 0;

	for (i = 0; i < n; i++) {
		struct lf_tree_attr a;
		const char *name;
		uint64_t ino;
		size_t len;

		lf_tree_dir_entry(t, dir, i, &name, &len, &ino);
		if (lf_tree_getattr(t, ino, &a))
			continue;
		if (S_ISDIR(a.mode)) {
			sum += tree_bytes(t, ino, seen);
		} else if (S_ISREG(a.mode) && !seen[ino]) {
			seen[ino] = 1;
			sum += a.size;
		}
	}
	return sum;
}

/* Paths to ask lf_merge_dir_bytes() about. */
struct paths {
	char (*p)[128];
	size_t n, cap;
};

static void paths_add(struct paths *ps, const char *p, size_t len)
{
	if (len >= sizeof(ps->p[0]))
		return;
	if (ps->n == ps->cap) {
		size_t cap = ps->cap ? ps->cap * 2 : 64;
		void *q = realloc(ps->p, cap * sizeof(ps->p[0]));

		if (!q)
			return;
		ps->p = q;
		ps->cap = cap;
	}
	memcpy(ps->p[ps->n], p, len);
	ps->p[ps->n++][len] = '\0';
}

/* Every name of the tree below dir, as a path. */
static void tree_paths(const struct lf_tree *t, uint64_t dir, char *buf,
		       size_t blen, struct paths *ps)
{
	size_t i, n = lf_tree_dir_count(t, dir);

	for (i = 0; i < n; i++) {
		const char *name;
		uint64_t ino;
		size_t len, l2;

		lf_tree_dir_entry(t, dir, i, &name, &len, &ino);
		l2 = blen + (blen ? 1 : 0) + len;
		if (l2 >= 128)
			continue;
		if (blen)
			buf[blen] = '/';
		memcpy(buf + l2 - len, name, len);
		buf[l2] = '\0';
		paths_add(ps, buf, l2);
		tree_paths(t, ino, buf, l2, ps);
		buf[blen] = '\0';
	}
}

/* The view's names, every entry path of the stack and its parents, and a
 * path that never exists. */
static void candidate_paths(const struct lf_tree *t, const struct numbering *nb,
			    struct paths *ps)
{
	char buf[128] = "";
	size_t l, i;

	paths_add(ps, "", 0);
	paths_add(ps, "zz/nope", 7);
	tree_paths(t, LF_TREE_ROOT, buf, 0, ps);
	for (l = 0; l < nb->n; l++) {
		for (i = 0; i < lf_index_count(nb->idx[l]); i++) {
			const char *p = lf_index_path(nb->idx[l],
						      lf_index_entry(nb->idx[l],
								     i));
			size_t k, len = strlen(p);

			paths_add(ps, p, len);
			for (k = 0; k < len; k++)
				if (p[k] == '/')
					paths_add(ps, p, k);
		}
	}
}

struct stats {
	size_t stacks, layers, entries, gone, dirbytes, errors;
};

/* Check lf_merge_dir_bytes() on the current view, which must be t. */
static void check_dir_bytes(struct lf_merge *g, const struct lf_tree *t,
			    const struct numbering *nb, const char *what,
			    size_t applied, struct stats *st)
{
	struct paths ps = { 0 };
	uint8_t *seen = calloc(lf_tree_count(t) + 1, 1);
	size_t i;

	if (!seen) {
		LF_FAIL("out of memory");
		return;
	}
	candidate_paths(t, nb, &ps);
	for (i = 0; i < ps.n; i++) {
		const char *p = ps.p[i];
		size_t len = strlen(p), cut;

		/* the whole path, and (len honoured, no NUL needed) its
		 * first component */
		for (cut = 0; cut < 2; cut++) {
			uint64_t dir, want = 0, got = 12345;
			int ret;

			if (cut) {
				const char *sl = strchr(p, '/');

				if (!sl)
					break;
				len = (size_t)(sl - p);
			}
			dir = tree_dir(t, p, len);
			ret = lf_merge_dir_bytes(g, p, len, &got);
			st->dirbytes++;
			if (dir) {
				memset(seen, 0, lf_tree_count(t) + 1);
				want = tree_bytes(t, dir, seen);
			}
			if (!dir && ret != -ENOENT)
				LF_FAIL("%s, %zu layers applied: dir_bytes("
					"'%.*s') = %d, want -ENOENT (not a "
					"directory)",
					what, applied, (int)len, p, ret);
			else if (dir && (ret || got != want))
				LF_FAIL("%s, %zu layers applied: dir_bytes("
					"'%.*s') = %d, %" PRIu64 " bytes; want "
					"%" PRIu64,
					what, applied, (int)len, p, ret, got,
					want);
		}
	}
	free(ps.p);
	free(seen);
}

static bool attr_equal(const struct lf_tree_attr *a,
		       const struct lf_tree_attr *b)
{
	return a->ino == b->ino && a->mode == b->mode && a->nlink == b->nlink &&
	       a->uid == b->uid && a->gid == b->gid && a->size == b->size &&
	       a->blocks == b->blocks && a->mtime == b->mtime &&
	       a->mtime_nsec == b->mtime_nsec &&
	       a->rdev_major == b->rdev_major &&
	       a->rdev_minor == b->rdev_minor && a->layer == b->layer &&
	       a->entry == b->entry;
}

/* Same inode numbers, attributes, directory entries (in order), links. */
static void compare_trees(const struct lf_tree *a, const struct lf_tree *b,
			  const char *what)
{
	uint64_t ino, n = lf_tree_count(a);

	if (n != lf_tree_count(b)) {
		LF_FAIL("%s: finished tree has %" PRIu64 " inodes, "
			"lf_tree_build %" PRIu64,
			what, n, lf_tree_count(b));
		return;
	}
	for (ino = 1; ino <= n; ino++) {
		struct lf_tree_attr x, y;
		const char *la, *lb;
		size_t i, c;

		if (lf_tree_getattr(a, ino, &x) ||
		    lf_tree_getattr(b, ino, &y) || !attr_equal(&x, &y)) {
			LF_FAIL("%s: inode %" PRIu64 " differs", what, ino);
			return;
		}
		c = lf_tree_dir_count(a, ino);
		if (c != lf_tree_dir_count(b, ino) ||
		    (S_ISDIR(x.mode) &&
		     lf_tree_parent(a, ino) != lf_tree_parent(b, ino))) {
			LF_FAIL("%s: directory %" PRIu64 " differs", what, ino);
			return;
		}
		for (i = 0; i < c; i++) {
			const char *na, *nb;
			size_t lena, lenb;
			uint64_t ia, ib;

			lf_tree_dir_entry(a, ino, i, &na, &lena, &ia);
			lf_tree_dir_entry(b, ino, i, &nb, &lenb, &ib);
			if (lena != lenb || memcmp(na, nb, lena) || ia != ib) {
				LF_FAIL("%s: entry %zu of directory %" PRIu64
					": '%.*s' -> %" PRIu64
					" vs '%.*s' -> %" PRIu64,
					what, i, ino, (int)lena, na, ia,
					(int)lenb, nb, ib);
				return;
			}
		}
		la = lf_tree_readlink(a, ino);
		lb = lf_tree_readlink(b, ino);
		if (!la != !lb || (la && strcmp(la, lb)) ||
		    lf_tree_xattr_count(a, ino) !=
			    lf_tree_xattr_count(b, ino)) {
			LF_FAIL("%s: link or xattrs of %" PRIu64 " differ",
				what, ino);
			return;
		}
	}
}

/* What gone() saw. */
struct rec {
	struct numbering *nb;
	uint32_t *count; /* per global entry */
	size_t calls, bad;
	size_t applying; /* layer being applied */
	int fail;	 /* what gone() returns */
	char log[4096];	 /* "APPLYING/LAYER:path#entry ..." */
};

static int on_gone(void *arg, size_t layer, uint32_t entry)
{
	struct rec *r = arg;
	size_t len = strlen(r->log);
	const struct lf_index *idx;

	r->calls++;
	if (layer >= r->nb->n || layer > r->applying ||
	    entry >= lf_index_count(r->nb->idx[layer])) {
		r->bad++;
		return r->fail;
	}
	idx = r->nb->idx[layer];
	if (r->count)
		r->count[r->nb->base[layer] + entry]++;
	snprintf(r->log + len, sizeof(r->log) - len, "%s%zu/%zu:%s#%u",
		 len ? " " : "", r->applying, layer,
		 lf_index_path(idx, lf_index_entry(idx, entry)), entry);
	return r->fail;
}

/*
 * The differential check of one stack: trees of every prefix first, then
 * one merge with gone() recorded and dir_bytes asked before each layer.
 */
static void check_stack(struct lf_index *const *idx, size_t n, const char *what,
			struct stats *st)
{
	struct lf_tree *t[MAXL + 1] = { 0 }, *ft = NULL;
	uint8_t *in[MAXL + 1] = { 0 };
	struct lf_err berr = { 0 }, err = { 0 };
	struct numbering nb;
	struct rec r = { 0 };
	struct lf_merge *g = NULL;
	size_t built, k, l, i, total;
	int bret = 0, ret;

	number(&nb, idx, n);
	total = nb.base[n];
	st->stacks++;
	st->layers += n;
	st->entries += total;
	/* t[0..built) exist; prefix `built` (if <= n) is an error */
	for (built = 0; built <= n; built++) {
		if ((bret = lf_tree_build(idx, built, &t[built], &berr)))
			break;
		in[built] = calloc(total + 1, 1);
		if (!in[built]) {
			LF_FAIL("out of memory");
			goto out;
		}
		visible_files(t[built], &nb, in[built], what);
	}
	if (!built) {
		LF_FAIL("%s: the empty prefix fails: %s", what, berr.msg);
		goto out;
	}
	if (built <= n) {
		st->errors++;
		if (getenv("LF_TREE_DEBUG"))
			printf("# %s: %s\n", what, berr.msg);
	}
	r.nb = &nb;
	r.count = calloc(total + 1, sizeof(*r.count));
	if (!r.count || lf_merge_new(idx, n, on_gone, &r, &g)) {
		LF_FAIL("%s: lf_merge_new failed", what);
		goto out;
	}
	for (k = 0; k < n; k++) {
		check_dir_bytes(g, t[k], &nb, what, k, st);
		memset(r.count, 0, sizeof(*r.count) * (total + 1));
		r.applying = k;
		r.log[0] = '\0';
		memset(&err, 0, sizeof(err));
		ret = lf_merge_apply(g, &err);
		if (k + 1 == built) {
			/* the same failure as lf_tree_build, then stop */
			if (ret != bret || strcmp(err.msg, berr.msg))
				LF_FAIL("%s: layer %zu: apply says %d '%s', "
					"build says %d '%s'",
					what, k, ret, err.msg, bret, berr.msg);
			goto out;
		}
		if (ret) {
			LF_FAIL("%s: apply layer %zu: %s", what, k, err.msg);
			goto out;
		}
		st->gone += r.calls;
		if (r.bad)
			LF_FAIL("%s: layer %zu: %zu gone() calls with a bad "
				"layer or entry",
				what, k, r.bad);
		for (l = 0; l <= k; l++) {
			for (i = 0; i < lf_index_count(idx[l]); i++) {
				const struct lf_idx_entry *e;
				size_t gi = nb.base[l] + i;
				bool added = l == k && makes_inode(idx[l], i);
				unsigned int want = !in[k + 1][gi] &&
						    (in[k][gi] || added);

				/* the oracle itself: nothing comes back */
				if (in[k + 1][gi] && !in[k][gi] && !added)
					LF_FAIL("%s: layer %zu brings back "
						"entry %zu of layer %zu",
						what, k, i, l);
				if (r.count[gi] == want)
					continue;
				e = lf_index_entry(idx[l], i);
				LF_FAIL("%s: applying layer %zu: gone(%zu, %zu"
					" '%s') called %u times, want %u",
					what, k, l, i, lf_index_path(idx[l], e),
					r.count[gi], want);
			}
		}
	}
	check_dir_bytes(g, t[n], &nb, what, n, st);
	memset(&err, 0, sizeof(err));
	if (lf_merge_apply(g, &err) != -EINVAL)
		LF_FAIL("%s: an apply past the last layer did not fail", what);
	if ((ret = lf_merge_finish(g, &ft, &err))) {
		LF_FAIL("%s: finish: %s", what, err.msg);
		goto out;
	}
	compare_trees(ft, t[n], what);
out:
	lf_tree_free(ft);
	lf_merge_free(g);
	free(r.count);
	for (k = 0; k <= n; k++) {
		lf_tree_free(t[k]);
		free(in[k]);
	}
}

/* ---- random stacks ---- */

struct gen {
	uint64_t s;
	char pool[MAXL * MAXE][64]; /* non-directory names so far */
	size_t npool;
};

static uint32_t rnd(struct gen *g, uint32_t n)
{
	g->s ^= g->s >> 12;
	g->s ^= g->s << 25;
	g->s ^= g->s >> 27;
	return (uint32_t)((g->s * 0x2545f4914f6cdd1dull) >> 33) % n;
}

/* a, b or c, joined, between min and max components deep. */
static void rand_path(struct gen *g, char *out, unsigned int min,
		      unsigned int max)
{
	static const char *const names[] = { "a", "b", "c" };
	unsigned int d = min + rnd(g, max - min + 1), k;

	out[0] = '\0';
	for (k = 0; k < d; k++) {
		if (k)
			strcat(out, "/");
		strcat(out, names[rnd(g, 3)]);
	}
}

static void pool_add(struct gen *g, const char *name)
{
	if (g->npool < MAXL * MAXE)
		snprintf(g->pool[g->npool++], sizeof(g->pool[0]), "%s", name);
}

/* Members of one random layer; `first` is where this layer's names start
 * in the pool. */
static size_t gen_layer(struct gen *g, struct ment *v)
{
	size_t n = 1 + rnd(g, 10), i, first = g->npool;
	char d[48];

	for (i = 0; i < n; i++) {
		struct ment *m = &v[i];
		uint32_t r = rnd(g, 100);

		memset(m, 0, sizeof(*m));
		m->mode = rnd(g, 01000);
		m->uid = rnd(g, 3);
		m->mtime = rnd(g, 1000000000);
		if (r >= 95 && i) {
			/* the same path again in this layer */
			*m = v[rnd(g, (uint32_t)i)];
			m->size = rnd(g, 300);
			continue;
		}
		if (r < 22) {
			m->type = '5';
			m->mode = 0755;
			rand_path(g, d, 1, 3);
			snprintf(m->name, sizeof(m->name), "%s/", d);
		} else if (r < 47 || r >= 95 || (r < 67 && first == g->npool)) {
			m->type = '0';
			m->size = rnd(g, 5) ? 1 + rnd(g, 2000) : 0;
			rand_path(g, m->name, 1, 3);
			pool_add(g, m->name);
		} else if (r < 55) {
			m->type = '2';
			rand_path(g, m->name, 1, 3);
			rand_path(g, d, 0, 3);
			snprintf(m->link, sizeof(m->link), "%s%s",
				 rnd(g, 3) ? "" : "/", d);
			pool_add(g, m->name);
		} else if (r < 67) {
			m->type = '1';
			rand_path(g, m->name, 1, 3);
			/* mostly the last non-directory of this layer, so
			 * that most stacks stay valid; sometimes any name
			 * seen so far (lower layers too), or anything */
			r = rnd(g, 30);
			if (!g->npool || !r)
				rand_path(g, m->link, 1, 3);
			else if (first < g->npool && r > 6)
				snprintf(m->link, sizeof(m->link), "%s",
					 g->pool[g->npool - 1]);
			else
				snprintf(m->link, sizeof(m->link), "%s",
					 g->pool[rnd(g, (uint32_t)g->npool)]);
			pool_add(g, m->name);
		} else if (r < 79) {
			m->type = '0';
			rand_path(g, d, 0, 2);
			rand_path(g, m->link, 1, 1);
			snprintf(m->name, sizeof(m->name), "%s%s.wh.%s", d,
				 d[0] ? "/" : "", m->link);
			m->link[0] = '\0';
		} else if (r < 85) {
			m->type = '0';
			rand_path(g, d, 0, 2);
			snprintf(m->name, sizeof(m->name), "%s%s.wh..wh..opq",
				 d, d[0] ? "/" : "");
		} else if (r < 90) {
			m->type = '6';
			rand_path(g, m->name, 1, 3);
			pool_add(g, m->name);
		} else if (r < 92) {
			m->type = '3';
			rand_path(g, m->name, 1, 3);
			pool_add(g, m->name);
		} else {
			m->type = '5';
			m->mode = 0700 + rnd(g, 0100);
			snprintf(m->name, sizeof(m->name), "./");
		}
	}
	return n;
}

static void print_stack(struct ment (*v)[MAXE], const size_t *cnt, size_t n)
{
	size_t l, i;

	for (l = 0; l < n; l++) {
		printf("#   layer %zu:", l);
		for (i = 0; i < cnt[l]; i++) {
			const struct ment *m = &v[l][i];

			printf(" %c %s", m->type, m->name);
			if (m->link[0] || m->type == '2')
				printf(" -> '%s'", m->link);
			if (m->type == '0' && m->size)
				printf(" (%u)", m->size);
			printf(";");
		}
		printf("\n");
	}
}

LF_TEST(random_stacks)
{
	static struct ment v[MAXL][MAXE];
	struct stats st = { 0 };
	const char *only = getenv("LF_TREE_SEED");
	unsigned int seed, first = 1, last = NSEEDS, nfail = 0;
	struct timespec t0, t1;

	if (only)
		first = last = (unsigned int)atoi(only);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (seed = first; seed <= last && nfail < 5; seed++) {
		struct gen *g = calloc(1, sizeof(*g));
		int was_failed = lf_test_failed_now;
		size_t cnt[MAXL], n, l;
		struct stack s;
		char what[32];

		if (!g) {
			LF_FAIL("out of memory");
			return;
		}
		g->s = seed * 0x9e3779b97f4a7c15ull + 0x2545f4914f6cdd1dull;
		n = 2 + rnd(g, 4);
		for (l = 0; l < n; l++)
			cnt[l] = gen_layer(g, v[l]);
		free(g);
		lf_test_failed_now = 0;
		if (!stack_make(&s, v, cnt, n)) {
			snprintf(what, sizeof(what), "seed %u", seed);
			check_stack(s.idx, n, what, &st);
			stack_close(&s);
		}
		if (lf_test_failed_now || getenv("LF_TREE_DUMP")) {
			printf("# seed %u %s (LF_TREE_SEED=%u to rerun):\n",
			       seed, lf_test_failed_now ? "failed" : "is",
			       seed);
			print_stack(v, cnt, n);
			nfail += lf_test_failed_now;
		}
		lf_test_failed_now |= was_failed;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("# %zu stacks, %zu layers, %zu entries, %zu gone() calls, "
	       "%zu dir_bytes checks, %zu stacks end in a build error; "
	       "%.2f s\n",
	       st.stacks, st.layers, st.entries, st.gone, st.dirbytes,
	       st.errors,
	       (double)(t1.tv_sec - t0.tv_sec) +
		       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	/* a full run: the generator must keep most stacks valid, and make
	 * files go, to be worth anything */
	if (!only && !nfail) {
		CHECK(st.errors * 3 < st.stacks);
		CHECK(st.gone > st.stacks);
	}
}

/* ---- hand-written stacks ---- */

/*
 * A layer from a one-line spec, members separated by ';':
 *   "f PATH [SIZE]"  file        "d PATH"         directory
 *   "l PATH TARGET"  symlink     "h PATH TARGET"  hardlink
 *   "c PATH"         char device "p PATH"         fifo
 * Whiteouts are files: "f d/.wh.x", "f d/.wh..wh..opq".
 */
static size_t parse_layer(const char *spec, struct ment *v)
{
	char buf[1024], *save = NULL, *tok;
	size_t n = 0;

	snprintf(buf, sizeof(buf), "%s", spec);
	for (tok = strtok_r(buf, ";", &save); tok && n < MAXE;
	     tok = strtok_r(NULL, ";", &save)) {
		struct ment *m = &v[n];
		char t = 0, a[64] = "", b[64] = "";

		if (sscanf(tok, " %c %63s %63s", &t, a, b) < 2)
			continue;
		memset(m, 0, sizeof(*m));
		m->mode = 0644;
		m->mtime = 1000 + (int64_t)n;
		snprintf(m->name, sizeof(m->name), "%s", a);
		switch (t) {
		case 'f':
			m->type = '0';
			m->size = (uint32_t)atoi(b);
			break;
		case 'd':
			m->type = '5';
			m->mode = 0755;
			snprintf(m->name, sizeof(m->name), "%s/", a);
			break;
		case 'l':
			m->type = '2';
			snprintf(m->link, sizeof(m->link), "%s", b);
			break;
		case 'h':
			m->type = '1';
			snprintf(m->link, sizeof(m->link), "%s", b);
			break;
		case 'c':
			m->type = '3';
			break;
		default:
			m->type = '6';
			break;
		}
		n++;
	}
	return n;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The words of `in`, sorted, joined by one space. */
static void sort_words(const char *in, char *out, size_t cap)
{
	char buf[4096], *w[256], *save = NULL, *tok;
	size_t n = 0, i, len = 0;

	snprintf(buf, sizeof(buf), "%s", in);
	for (tok = strtok_r(buf, " ", &save); tok && n < 256;
	     tok = strtok_r(NULL, " ", &save))
		w[n++] = tok;
	qsort(w, n, sizeof(w[0]), cmp_str);
	out[0] = '\0';
	for (i = 0; i < n && len < cap; i++)
		len += (size_t)snprintf(out + len, cap - len, "%s%s",
					i ? " " : "", w[i]);
}

static int stack_of(struct stack *s, const char *const *spec, size_t n)
{
	static struct ment v[MAXL][MAXE];
	size_t cnt[MAXL], l;

	for (l = 0; l < n; l++)
		cnt[l] = parse_layer(spec[l], v[l]);
	return stack_make(s, v, cnt, n);
}

/*
 * Apply the layers of `spec` one by one; while applying layer k, gone()
 * must report exactly the words of want[k] ("K/L:path#entry", any order).
 * The stack also goes through the differential check.
 */
static void run_case(const char *const *spec, const char *const *want, size_t n)
{
	struct stats st = { 0 };
	struct numbering nb;
	struct rec r = { 0 };
	struct lf_err err = { 0 };
	struct lf_merge *g = NULL;
	struct lf_tree *t = NULL;
	struct stack s;
	size_t k;

	if (stack_of(&s, spec, n))
		return;
	check_stack(s.idx, n, "hand-written stack", &st);
	number(&nb, s.idx, n);
	r.nb = &nb;
	CHECK_EQ_INT(lf_merge_new(s.idx, n, on_gone, &r, &g), 0);
	for (k = 0; g && k < n; k++) {
		char a[4096], b[4096];

		r.applying = k;
		r.log[0] = '\0';
		CHECK_EQ_INT(lf_merge_apply(g, &err), 0);
		sort_words(r.log, a, sizeof(a));
		sort_words(want[k], b, sizeof(b));
		if (strcmp(a, b))
			LF_FAIL("applying layer %zu: gone reported \"%s\", "
				"want \"%s\"",
				k, a, b);
	}
	CHECK_EQ_INT(r.bad, 0);
	if (g && !lf_merge_finish(g, &t, &err))
		lf_tree_free(t);
	lf_merge_free(g);
	stack_close(&s);
}

LF_TEST(whiteout)
{
	static const char *const spec[] = {
		"f a 10; f b 3; d d; f d/x 4",
		"f .wh.a; f d/.wh.nothing",
		"f d/.wh.x; f .wh.zz",
	};
	static const char *const want[] = { "", "1/0:a#0", "2/0:d/x#3" };

	run_case(spec, want, 3);
}

/* A file is gone with its last name, and once. */
LF_TEST(hardlinks)
{
	static const char *const spec[] = {
		"f a 5; h h a; f b 1; h k b; f c 2; h m c",
		"f .wh.a",
		"f .wh.h; f .wh.b; f .wh.k",
		"f m 9; f .wh.c",
	};
	static const char *const want[] = {
		"",
		"",
		"2/0:a#0 2/0:b#2",
		"3/0:c#4",
	};

	run_case(spec, want, 4);
}

/* Hardlinks made in an upper layer to a lower file keep it alive. */
LF_TEST(hardlink_to_lower_layer)
{
	static const char *const spec[] = {
		"f a 5; f b 6",
		"h x a; f a 7; h b a",
		"f .wh.x",
	};
	/* layer 1: a replaced (x still names it), then b replaced by a link
	 * to the new a; layer 2: x was the old a's last name */
	static const char *const want[] = { "", "1/0:b#1", "2/0:a#0" };

	run_case(spec, want, 3);
}

LF_TEST(directory_replaced_by_file)
{
	static const char *const spec[] = {
		("d d; f d/x 1; d d/sub; f d/sub/y 2; l d/l x; p d/sub/f; "
		 "d d/e; h d/z d/x; f keep 1"),
		"f d 7",
		"d d; f d/x 1",
		"l d d/x",
	};
	static const char *const want[] = {
		"",
		"1/0:d/x#1 1/0:d/sub/y#3 1/0:d/l#4 1/0:d/sub/f#5",
		"2/1:d#0",
		"3/2:d/x#1",
	};

	run_case(spec, want, 4);
}

/* Opaque markers hide the layers below only, whatever their tar order. */
LF_TEST(opaque_directory)
{
	static const char *const spec[] = {
		"f d/x 1; f d/y 2; f e/z 3; d d/s; f d/s/w 4; h e/k d/y",
		"f d/x 9; f d/.wh..wh..opq; f d/n 1",
		"f .wh..wh..opq; f top 1",
	};
	static const char *const want[] = {
		"",
		"1/0:d/x#0 1/0:d/s/w#4",
		"2/1:d/x#0 2/1:d/n#2 2/0:d/y#1 2/0:e/z#2",
	};

	run_case(spec, want, 3);
}

LF_TEST(overwritten_twice_in_one_layer)
{
	static const char *const spec[] = {
		"f f 1; f g 1",
		"f f 2; f f 3; l f x; d g; f g 4; f g/h 1; f g 5",
	};
	static const char *const want[] = {
		"",
		"1/0:f#0 1/1:f#0 1/1:f#1 1/0:g#1 1/1:g#4 1/1:g/h#5",
	};

	run_case(spec, want, 2);
}

/* A non-directory in the way of a deeper path is replaced by a directory. */
LF_TEST(file_in_the_way)
{
	static const char *const spec[] = {
		"f a 1; l b a; c c",
		"f a/x 1; d b/y; f c/z/w 2",
	};
	static const char *const want[] = { "", "1/0:a#0 1/0:b#1 1/0:c#2" };

	run_case(spec, want, 2);
}

/*
 * A hardlink whose target is a name the same member is about to replace:
 * "x/y" -> "x" replaces the file x by a directory, yet x/y keeps the old
 * x's inode, which therefore never left the view.
 */
LF_TEST(hardlink_to_replaced_name)
{
	static const char *const spec[] = {
		"f x 3; d d; f d/f 4",
		"h x/y x; h d d/f",
	};
	static const char *const want[] = { "", "" };

	run_case(spec, want, 2);
}

LF_TEST(dir_bytes_known)
{
	static const char *const spec[] = {
		("f d/a 10; h d/h d/a; d d/s; f d/s/b 5; l d/l s; f e/c 7; "
		 "p d/p; c d/c; l big 1234567"),
		"f d/.wh.a",
		"f d/.wh.h; f e/c 100",
	};
	static const struct {
		size_t before; /* layers applied */
		const char *path;
		size_t len;
		int ret;
		uint64_t bytes;
	} q[] = {
		{ 0, "", 0, 0, 0 },
		{ 0, "d", 1, -ENOENT, 0 },
		{ 1, "", 0, 0, 22 },
		{ 1, "d", 1, 0, 15 },
		{ 1, "d/s", 3, 0, 5 },
		{ 1, "e", 1, 0, 7 },
		{ 1, "d/s", 1, 0, 15 },
		{ 1, "d/l", 3, -ENOENT, 0 },
		{ 1, "d/l/b", 5, -ENOENT, 0 },
		{ 1, "d/a", 3, -ENOENT, 0 },
		{ 1, "d/p", 3, -ENOENT, 0 },
		{ 1, "x", 1, -ENOENT, 0 },
		{ 1, "big", 3, -ENOENT, 0 },
		{ 2, "d", 1, 0, 15 },
		{ 3, "", 0, 0, 105 },
		{ 3, "d", 1, 0, 5 },
		{ 3, "e", 1, 0, 100 },
	};
	struct lf_err err = { 0 };
	struct lf_merge *g = NULL;
	struct stack s;
	size_t i, applied = 0;

	if (stack_of(&s, spec, 3))
		return;
	CHECK_EQ_INT(lf_merge_new(s.idx, 3, NULL, NULL, &g), 0);
	for (i = 0; g && i < sizeof(q) / sizeof(q[0]); i++) {
		uint64_t bytes = 999;
		int ret;

		while (applied < q[i].before) {
			CHECK_EQ_INT(lf_merge_apply(g, &err), 0);
			applied++;
		}
		ret = lf_merge_dir_bytes(g, q[i].path, q[i].len, &bytes);
		if (ret != q[i].ret || (!ret && bytes != q[i].bytes))
			LF_FAIL("after %zu layers: dir_bytes('%.*s') = %d, "
				"%" PRIu64 "; want %d, %" PRIu64,
				applied, (int)q[i].len, q[i].path, ret, bytes,
				q[i].ret, q[i].bytes);
	}
	lf_merge_free(g);
	stack_close(&s);
}

/* A non-zero return of gone() stops the apply with that error. */
LF_TEST(gone_error)
{
	static const char *const spec[] = {
		"f a 1; f b 1; f c 1",
		"f .wh.a; f .wh.b; f c 2",
	};
	struct numbering nb;
	struct rec r = { 0 };
	struct lf_err err = { 0 };
	struct lf_merge *g = NULL;
	struct stack s;

	if (stack_of(&s, spec, 2))
		return;
	number(&nb, s.idx, 2);
	r.nb = &nb;
	r.fail = -EIO;
	CHECK_EQ_INT(lf_merge_new(s.idx, 2, on_gone, &r, &g), 0);
	if (g) {
		CHECK_EQ_INT(lf_merge_apply(g, &err), 0);
		CHECK_EQ_INT(r.calls, 0);
		r.applying = 1;
		CHECK_EQ_INT(lf_merge_apply(g, &err), -EIO);
		CHECK_EQ_INT(err.code, -EIO);
		CHECK(strstr(err.msg, "layer 2") != NULL);
		CHECK_EQ_INT(r.calls, 1);
	}
	lf_merge_free(g);
	stack_close(&s);
}

/* Finishing early gives the tree of the prefix; past the end is an error;
 * a hardlink to nothing fails the apply as it fails the build. */
LF_TEST(finish_prefix)
{
	static const char *const spec[] = {
		"d a; f a/b 3; h a/c a/b; l s a",
		"f .wh.a; d a; f a/x 1; f ./ 0",
		"f q 1; h r nothing",
	};
	struct lf_err err = { 0 }, berr = { 0 };
	struct lf_tree *t = NULL, *want = NULL;
	struct lf_merge *g = NULL;
	struct stack s;
	size_t k;

	if (stack_of(&s, spec, 3))
		return;
	for (k = 0; k <= 2; k++) {
		size_t i;

		CHECK_EQ_INT(lf_merge_new(s.idx, 3, NULL, NULL, &g), 0);
		for (i = 0; g && i < k; i++)
			CHECK_EQ_INT(lf_merge_apply(g, &err), 0);
		CHECK_EQ_INT(lf_merge_finish(g, &t, &err), 0);
		CHECK_EQ_INT(lf_tree_build(s.idx, k, &want, &berr), 0);
		if (t && want)
			compare_trees(t, want, "prefix");
		CHECK(k || lf_tree_count(t) == 1);
		lf_tree_free(t);
		lf_tree_free(want);
		lf_merge_free(g);
		t = want = NULL;
		g = NULL;
	}
	CHECK_EQ_INT(lf_merge_new(s.idx, 2, NULL, NULL, &g), 0);
	CHECK_EQ_INT(lf_merge_apply(g, &err), 0);
	CHECK_EQ_INT(lf_merge_apply(g, &err), 0);
	CHECK_EQ_INT(lf_merge_apply(g, &err), -EINVAL);
	lf_merge_free(g);
	CHECK_EQ_INT(lf_tree_build(s.idx, 3, &want, &berr), -EINVAL);
	CHECK(strstr(berr.msg, "layer 3: hardlink 'r' points to 'nothing'"));
	CHECK_EQ_INT(lf_merge_new(s.idx, 3, NULL, NULL, &g), 0);
	CHECK_EQ_INT(lf_merge_apply(g, &err), 0);
	CHECK_EQ_INT(lf_merge_apply(g, &err), 0);
	CHECK_EQ_INT(lf_merge_apply(g, &err), -EINVAL);
	CHECK_EQ_STR(err.msg, berr.msg);
	lf_merge_free(g);
	stack_close(&s);
}

/* ---- the tree cache (tree_cache.h): stored, mapped, refused ---- */

/* Two trees answer alike: every inode's attributes, directory entries (in
 * order), symlink target, xattrs and data location. */
static void same_tree(const struct lf_tree *a, const struct lf_tree *b,
		      const char *what)
{
	uint64_t ino, n = lf_tree_count(a);

	if (n != lf_tree_count(b)) {
		LF_FAIL("%s: %llu inodes vs %llu", what, (unsigned long long)n,
			(unsigned long long)lf_tree_count(b));
		return;
	}
	for (ino = 1; ino <= n; ino++) {
		struct lf_tree_attr x, y;
		const char *la, *lb;
		size_t i, k;

		if (lf_tree_getattr(a, ino, &x) ||
		    lf_tree_getattr(b, ino, &y) || x.mode != y.mode ||
		    x.nlink != y.nlink || x.uid != y.uid || x.gid != y.gid ||
		    x.size != y.size || x.blocks != y.blocks ||
		    x.mtime != y.mtime || x.mtime_nsec != y.mtime_nsec ||
		    x.rdev_major != y.rdev_major ||
		    x.rdev_minor != y.rdev_minor || x.layer != y.layer ||
		    (x.entry == NULL) != (y.entry == NULL) ||
		    (x.entry && memcmp(x.entry, y.entry, sizeof(*x.entry)))) {
			LF_FAIL("%s: inode %llu differs", what,
				(unsigned long long)ino);
			return;
		}
		la = lf_tree_readlink(a, ino);
		lb = lf_tree_readlink(b, ino);
		if ((la == NULL) != (lb == NULL) || (la && strcmp(la, lb))) {
			LF_FAIL("%s: link of %llu differs", what,
				(unsigned long long)ino);
			return;
		}
		k = lf_tree_dir_count(a, ino);
		if (k != lf_tree_dir_count(b, ino)) {
			LF_FAIL("%s: dir %llu size differs", what,
				(unsigned long long)ino);
			return;
		}
		for (i = 0; i < k; i++) {
			const char *na, *nb;
			size_t lena, lenb;
			uint64_t ia, ib;

			lf_tree_dir_entry(a, ino, i, &na, &lena, &ia);
			lf_tree_dir_entry(b, ino, i, &nb, &lenb, &ib);
			if (lena != lenb || memcmp(na, nb, lena) || ia != ib) {
				LF_FAIL("%s: entry %zu of %llu differs", what,
					i, (unsigned long long)ino);
				return;
			}
		}
		k = lf_tree_xattr_count(a, ino);
		CHECK_EQ_INT(k, lf_tree_xattr_count(b, ino));
	}
}

/* The one .tree file in dir into path; -1 unless exactly one. */
static int tree_file(const char *dir, char *path, size_t size)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (strstr(de->d_name, ".tree") &&
		    !strstr(de->d_name, ".tmp")) {
			snprintf(path, size, "%.31s/%.255s", dir, de->d_name);
			n++;
		}
	closedir(d);
	return n == 1 ? 0 : -1;
}

/* The whole of a file into a malloc'd buffer (*len bytes), or NULL. */
static unsigned char *read_whole(const char *path, size_t *len)
{
	struct stat st;
	unsigned char *p;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) || !(p = malloc((size_t)st.st_size + 1)) ||
	    pread(fd, p, (size_t)st.st_size, 0) != st.st_size) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	close(fd);
	*len = (size_t)st.st_size;
	return p;
}

static ino_t file_ino(const char *path)
{
	struct stat st;

	return stat(path, &st) ? 0 : st.st_ino;
}

/* Flip one byte of a file in place. */
static void flip_byte(const char *path, off_t off)
{
	unsigned char c = 0;
	int fd = open(path, O_RDWR | O_CLOEXEC);

	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK_EQ_INT(pread(fd, &c, 1, off), 1);
	c ^= 0xff;
	CHECK_EQ_INT(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

LF_TEST(tree_cache_round_trip_and_damage)
{
	static char prev[512]; /* the previous stack's stored tree file */
	static struct ment v[MAXL][MAXE];
	unsigned int seed;
	size_t built = 0;

	for (seed = 1; seed <= 40; seed++) {
		struct gen *g = calloc(1, sizeof(*g));
		struct lf_tree *want = NULL, *t1 = NULL, *t2 = NULL, *t3 = NULL;
		struct lf_err err = { 0 };
		size_t cnt[MAXL], n, l;
		char dir[32], path[512], what[48];
		struct stack s;
		unsigned char *good, *now;
		size_t goodlen = 0, nowlen = 0;
		ino_t ino;

		CHECK(g != NULL);
		g->s = seed * 0x9e3779b97f4a7c15ull + 0x2545f4914f6cdd1dull;
		n = 2 + rnd(g, 4);
		for (l = 0; l < n; l++)
			cnt[l] = gen_layer(g, v[l]);
		free(g);
		if (stack_make(&s, v, cnt, n))
			return;
		snprintf(dir, sizeof(dir), "tc%u", seed);
		snprintf(what, sizeof(what), "seed %u", seed);
		if (lf_tree_build(s.idx, n, &want, &err)) {
			/* an invalid stack is refused through the cache too,
			 * and nothing is stored */
			CHECK(lf_tree_open(s.idx, n, dir, &t1, &err) < 0);
			CHECK(tree_file(dir, path, sizeof(path)) < 0);
			stack_close(&s);
			continue;
		}
		built++;
		/* first: built and stored; second: mapped from the file */
		CHECK_EQ_INT(lf_tree_open(s.idx, n, dir, &t1, &err), 0);
		CHECK_EQ_INT(tree_file(dir, path, sizeof(path)), 0);
		ino = file_ino(path);
		good = read_whole(path, &goodlen);
		CHECK(good != NULL);
		CHECK_EQ_INT(lf_tree_open(s.idx, n, dir, &t2, &err), 0);
		/* mapped, not built and stored again (a store renames) */
		CHECK_EQ_INT(file_ino(path), ino);
		if (t1 && t2) {
			same_tree(want, t1, what);
			same_tree(want, t2, what);
		}
		/* damage the stored file: it is refused (a warning), the tree
		 * is built again, right, and the file replaced */
		flip_byte(path, (off_t)goodlen / 2);
		CHECK_EQ_INT(lf_tree_open(s.idx, n, dir, &t3, &err), 0);
		if (t3)
			same_tree(want, t3, what);
		lf_tree_free(t3);
		t3 = NULL;
		CHECK(file_ino(path) != ino);
		now = read_whole(path, &nowlen);
		/* the same tree; the slots' hash key is drawn again, so the
		 * same size, not the same bytes */
		CHECK(now && good && nowlen == goodlen);
		free(now);
		CHECK_EQ_INT(lf_tree_open(s.idx, n, dir, &t3, &err), 0);
		if (t3)
			same_tree(want, t3, what);
		lf_tree_free(t3);
		t3 = NULL;
		/* a forged file: another stack's tree, intact and hashed right,
		 * under this stack's name is refused and replaced */
		if (prev[0]) {
			CHECK_EQ_INT(link(prev, "forged"), 0);
			CHECK_EQ_INT(rename("forged", path), 0);
			ino = file_ino(path);
			CHECK_EQ_INT(lf_tree_open(s.idx, n, dir, &t3, &err), 0);
			if (t3)
				same_tree(want, t3, what);
			CHECK(file_ino(path) != ino);
			now = read_whole(path, &nowlen);
			CHECK(now && good && nowlen == goodlen);
			free(now);
		}
		snprintf(prev, sizeof(prev), "%s", path);
		free(good);
		lf_tree_free(want);
		lf_tree_free(t1);
		lf_tree_free(t2);
		lf_tree_free(t3);
		stack_close(&s);
	}
	CHECK(built > 20);
}

/* Rewrite a stored tree file with the hashes made right again (the offsets
 * of struct tree_header in tree_cache.c), as a hostile file would be. */
static void reseal(unsigned char *p, size_t len)
{
	uint64_t h = lf_cache_hash64(p + 184, len - 184);

	memcpy(p + 168, &h, 8);
	h = lf_cache_hash64(p, 176);
	memcpy(p + 176, &h, 8);
}

static void write_whole(const char *path, const unsigned char *p, size_t len)
{
	FILE *f = fopen(path, "wb");

	CHECK(f != NULL);
	if (!f)
		return;
	CHECK_EQ_INT(fwrite(p, 1, len, f), len);
	fclose(f);
}

/* Every query on every inode number: none may leave the mapping or loop. */
static void poke_everything(const struct lf_tree *t)
{
	uint64_t ino, c;

	for (ino = 0; ino <= lf_tree_count(t) + 1; ino++) {
		struct lf_tree_attr a;
		size_t i, k;

		(void)lf_tree_getattr(t, ino, &a);
		(void)lf_tree_readlink(t, ino);
		(void)lf_tree_parent(t, ino);
		for (k = 0; k < lf_tree_xattr_count(t, ino); k++) {
			const char *xn;
			const void *xv;
			size_t xl;

			lf_tree_xattr(t, ino, k, &xn, &xv, &xl);
		}
		for (i = 0; i < lf_tree_dir_count(t, ino); i++) {
			const char *nm;
			size_t len;

			lf_tree_dir_entry(t, ino, i, &nm, &len, &c);
			(void)lf_tree_lookup(t, ino, nm, len, &c);
		}
		(void)lf_tree_lookup(t, ino, "a", 1, &c);
	}
	(void)lf_tree_resolve(t, "d/e/../e/f", LF_TREE_FOLLOW, &c);
}

/*
 * A mapped tree is checked as it is used, not at load: records that break
 * the rules but carry the right hashes are refused where they are met
 * (EIO, an empty listing), the rest of the tree still answers, and nothing
 * reads outside the file (the sanitizer build) or loops.
 */
LF_TEST(tree_cache_hostile_records)
{
	static const char *const spec[] = {
		"d d; d d/e; f d/e/f 5; l d/l e/f; f top 3",
		"f d/e/g 4; d x; f x/y 2",
	};
	struct lf_err err = { 0 };
	struct lf_tree *want = NULL, *t = NULL;
	char path[512];
	unsigned char *good;
	size_t len = 0, kind;
	uint64_t d, e, ino;
	struct stack s;

	if (stack_of(&s, spec, 2))
		return;
	CHECK_EQ_INT(lf_tree_build(s.idx, 2, &want, &err), 0);
	CHECK_EQ_INT(lf_tree_open(s.idx, 2, "hostile", &t, &err), 0);
	lf_tree_free(t);
	t = NULL;
	CHECK_EQ_INT(tree_file("hostile", path, sizeof(path)), 0);
	good = read_whole(path, &len);
	CHECK(good != NULL && want != NULL);
	if (!good || !want) {
		free(good);
		lf_tree_free(want);
		stack_close(&s);
		return;
	}
	CHECK_EQ_INT(lf_tree_resolve(want, "d", 0, &d), 0);
	CHECK_EQ_INT(lf_tree_resolve(want, "d/e", 0, &e), 0);
	for (kind = 0; kind < 5; kind++) {
		unsigned char *p = malloc(len);
		uint64_t oi, od;
		struct tinode *ti;
		struct tdirent *de;
		ino_t before;

		if (!p)
			break;
		memcpy(p, good, len);
		memcpy(&oi, p + 104, 8);
		memcpy(&od, p + 112, 8);
		ti = (struct tinode *)(p + oi);
		de = (struct tdirent *)(p + od);
		switch (kind) {
		case 0: /* d/e its own parent: a loop */
			ti[e].parent = (uint32_t)e;
			break;
		case 1: /* d/e's entries past the end of the dirents */
			ti[e].first = UINT32_MAX - 1;
			break;
		case 2: /* the first name of d/e points at no inode */
			de[ti[e].first].ino = 0;
			break;
		case 3: /* ... at d itself: a directory loop */
			de[ti[e].first].ino = (uint32_t)d;
			break;
		default: /* ... by a name outside the file */
			de[ti[e].first].name = UINT32_MAX - 2;
			break;
		}
		reseal(p, len);
		write_whole(path, p, len);
		free(p);
		before = file_ino(path);
		CHECK_EQ_INT(lf_tree_open(s.idx, 2, "hostile", &t, &err), 0);
		/* mapped as it is: the damage is met on use */
		CHECK_EQ_INT(file_ino(path), before);
		if (!t)
			continue;
		poke_everything(t);
		/* the parts that are fine still answer */
		CHECK_EQ_INT(lf_tree_resolve(t, "x/y", 0, &ino), 0);
		CHECK_EQ_INT(lf_tree_resolve(t, "top", 0, &ino), 0);
		if (kind <= 1) {
			struct lf_tree_attr a;

			CHECK_EQ_INT(lf_tree_getattr(t, e, &a), -EIO);
			CHECK_EQ_INT(lf_tree_dir_count(t, e), 0);
			/* d's listing holds e: refused as a whole */
			CHECK_EQ_INT(lf_tree_dir_count(t, d), 0);
		} else {
			CHECK_EQ_INT(lf_tree_dir_count(t, e), 0);
			CHECK(lf_tree_dir_count(t, d) > 0);
		}
		lf_tree_free(t);
		t = NULL;
	}
	/* the root broken: refused at load, built again and replaced */
	{
		unsigned char *p = malloc(len);
		uint64_t oi;

		if (p) {
			memcpy(p, good, len);
			memcpy(&oi, p + 104, 8);
			((struct tinode *)(p + oi))[LF_TREE_ROOT].count =
				UINT32_MAX;
			reseal(p, len);
			write_whole(path, p, len);
			free(p);
			CHECK_EQ_INT(lf_tree_open(s.idx, 2, "hostile", &t,
						  &err),
				     0);
			if (t)
				same_tree(want, t, "root refused");
			lf_tree_free(t);
		}
	}
	free(good);
	lf_tree_free(want);
	stack_close(&s);
}

/* The name hash before it had a key (FNV-1a): what a flooding image
 * was made against. */
static uint64_t old_hash(uint64_t dir, const char *name, size_t len)
{
	uint64_t h = 1469598103934665603ull ^ (dir * 0x9e3779b97f4a7c15ull);
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)name[i];
		h *= 1099511628211ull;
	}
	return h ^ (h >> 29);
}

/* Probes of every dirent from its home slot: their sum and the most. */
static void displacement(const struct lf_tree *t, uint64_t *sum, uint32_t *most)
{
	uint32_t k, mask = t->nslots - 1, d;

	*sum = 0;
	*most = 0;
	for (k = 0; k < t->nslots; k++) {
		const struct tdirent *x;
		uint32_t s = t->slots[k], home;

		if (s == LF_NIL)
			continue;
		x = &t->dirents[s];
		for (d = 1; d <= t->ninodes; d++)
			if (s - t->inodes[d].first < t->inodes[d].count)
				break;
		home = (uint32_t)lf_tree_hash(&t->hkey, d,
					      lf_tree_dirent_name(t, x),
					      x->len) &
		       mask;
		*sum += (k - home) & mask;
		if (((k - home) & mask) > *most)
			*most = (k - home) & mask;
	}
}

/*
 * 2048 names that all land in one slot of the old, unkeyed hash (found by
 * trying names, as a flooding image's maker would): with the keyed hash
 * they spread as random names do.  Counted in probes, not timed.
 */
LF_TEST(names_made_to_collide_do_not)
{
	enum { N = 2048, MASK = 8191 }; /* 2048 dirents: 8192 slots */
	struct ment *v = calloc(N, sizeof(*v));
	struct lf_err err = { 0 };
	struct stack st = { 0 };
	struct lf_tree *t = NULL;
	uint64_t sum, want = 0, tries = 0;
	uint32_t most, found = 0;

	CHECK(v != NULL);
	if (!v)
		return;
	while (found < N) {
		char name[32];
		int len = snprintf(name, sizeof(name), "f%llx",
				   (unsigned long long)tries++);

		if ((old_hash(LF_TREE_ROOT, name, (size_t)len) & MASK) != 0)
			continue;
		v[found].type = '0';
		snprintf(v[found].name, sizeof(v[found].name), "%s", name);
		v[found].mode = 0644;
		found++;
	}
	/* with the old hash every name but the first is displaced */
	for (found = 0; found < N; found++)
		want += found;
	snprintf(st.file[0], sizeof(st.file[0]), "l0.tar");
	CHECK_EQ_INT(write_tar(st.file[0], v, N), 0);
	st.n = 1;
	CHECK_EQ_INT(open_layer(&st, 0, &err), 0);
	CHECK_EQ_INT(lf_tree_build(st.idx, 1, &t, &err), 0);
	if (t) {
		CHECK_EQ_INT(t->nslots, MASK + 1);
		displacement(t, &sum, &most);
		printf("# probes: %llu in all, %u at most (the old hash: "
		       "%llu)\n",
		       (unsigned long long)sum, most, (unsigned long long)want);
		/* random names at this load: about half a probe each */
		CHECK(sum < 4 * N);
		CHECK(most < 64);
	}
	lf_tree_free(t);
	stack_close(&st);
	free(v);
}

int main(int argc, char **argv)
{
	return lf_test_main(argc, argv);
}

// SPDX-License-Identifier: MIT
/* grep.c - search file contents in the blobs, on all cores (grep.h). */
#include "layerfs/grep.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "layerfs/buf.h"
#include "layerfs/mview.h"
#include "layerfs/tree.h"

#define CHUNK (1u << 20)	   /* bytes read at a time */
#define BINARY_PROBE (32u << 10)   /* a NUL in this much: binary */
#define LINE_MAX_BYTES (16u << 20) /* longer lines are cut there */
#define WINDOW 64		   /* files searched between two deliveries */

struct task {
	char *path;
	size_t layer;
	const struct lf_idx_entry *e;
	uint64_t size;
	bool visible;
};

struct rec {
	uint64_t lineno;
	size_t off, len;
};

struct result {
	struct lf_buf text; /* the matching lines, back to back */
	struct rec *recs;
	size_t n, cap;
	bool binary;
	int ret;
	struct lf_err err;
	uint64_t bytes;
};

struct job {
	const struct lf_stack *s;
	const struct lf_grep_opts *o;
	regex_t re;
	char *needle; /* fixed: the pattern (lower case with icase) */
	size_t nlen;
	char must[256]; /* regex: a literal every match contains, or "" */
	size_t mlen;
	struct task *t;
	size_t nt, cap;
	/* the window being searched */
	size_t base, count;
	struct result *res;
	atomic_size_t next;
};

static int oom(struct lf_err *err)
{
	return lf_err_set(err, -ENOMEM, "out of memory");
}

/* ---- the files ---- */

static int add_task(struct job *j, const char *path, size_t layer,
		    const struct lf_idx_entry *e, uint64_t size, bool visible)
{
	if (j->nt == j->cap) {
		size_t nc = j->cap ? j->cap * 2 : 256;
		struct task *p = realloc(j->t, nc * sizeof(*p));

		if (!p)
			return -ENOMEM;
		j->t = p;
		j->cap = nc;
	}
	if (!(j->t[j->nt].path = strdup(path)))
		return -ENOMEM;
	j->t[j->nt].layer = layer;
	j->t[j->nt].e = e;
	j->t[j->nt].size = size;
	j->t[j->nt++].visible = visible;
	return 0;
}

static int visit(void *ctx, const struct lf_buf *path, const struct lf_mobj *o)
{
	struct job *j = ctx;

	if (!S_ISREG(o->st.st_mode) || !o->st.st_size || !o->entry)
		return 0;
	return add_task(j, path->data, o->layer, o->entry,
			(uint64_t)o->st.st_size, true);
}

/* "/a/b" normalised (no "." or empty components; ".." not allowed). */
static int norm(const char *in, struct lf_buf *out)
{
	while (*in) {
		const char *end = strchr(in, '/');
		size_t n = end ? (size_t)(end - in) : strlen(in);

		if (n == 2 && !memcmp(in, "..", 2))
			return -EINVAL;
		if (n && !(n == 1 && *in == '.') &&
		    (lf_buf_addch(out, '/') || lf_buf_add(out, in, n)))
			return -ENOMEM;
		in += n + (end ? 1 : 0);
	}
	return 0;
}

static int view_tasks(struct job *j, struct lf_err *err)
{
	struct lf_tree *t = lf_stack_tree(j->s);
	struct lf_mview v = { j->s, t, NULL };
	struct lf_buf path;
	struct lf_tree_attr a;
	uint64_t ino;
	int ret;

	ret = lf_tree_resolve(t, j->o->path, LF_TREE_FOLLOW, &ino);
	if (ret)
		return lf_err_set(err, ret, "'%s': %s", j->o->path,
				  strerror(-ret));
	lf_tree_getattr(t, ino, &a);
	lf_buf_init(&path);
	if ((ret = norm(j->o->path, &path)) == -EINVAL) {
		/* resolved above, but named through "..": print it so */
		lf_buf_reset(&path);
		ret = lf_buf_adds(&path, j->o->path);
	}
	if (ret) {
		lf_buf_release(&path);
		return oom(err);
	}
	if (S_ISREG(a.mode)) {
		const struct lf_idx_entry *e;
		size_t layer;

		if (a.size && !lf_tree_data(t, ino, &layer, &e))
			ret = add_task(j, path.len ? path.data : "/", layer, e,
				       a.size, true);
	} else if (S_ISDIR(a.mode)) {
		ret = lf_mview_walk(&v, ino, &path, visit, j);
	}
	lf_buf_release(&path);
	return ret ? lf_err_set(err, ret, "'%s': %s", j->o->path,
				strerror(-ret))
		   : 0;
}

/* Is `p` (absolute) `root` or below it? */
static bool below(const char *p, const char *root, size_t rl)
{
	return !rl || (!strncmp(p, root, rl) && (!p[rl] || p[rl] == '/'));
}

static int all_tasks(struct job *j, struct lf_err *err)
{
	const struct lf_tree *top = lf_stack_tree(j->s);
	size_t n = lf_stack_count(j->s), k, i;
	struct lf_buf root, p;
	int ret = 0;

	lf_buf_init(&root);
	lf_buf_init(&p);
	if (norm(j->o->path, &root)) {
		lf_buf_release(&root);
		return lf_err_set(err, -EINVAL,
				  "'%s': --all wants a path without '..'",
				  j->o->path);
	}
	for (k = 0; k < n && !ret; k++) {
		const struct lf_index *idx = lf_stack_index(j->s, k);

		for (i = 0; i < lf_index_count(idx) && !ret; i++) {
			const struct lf_idx_entry *e = lf_index_entry(idx, i);
			const struct lf_idx_entry *te;
			size_t tl;
			uint64_t ino;
			bool vis;

			if (e->kind != LF_KIND_REG ||
			    (e->flags & LF_IDX_WHITEOUT) || !e->size)
				continue;
			lf_buf_reset(&p);
			if (lf_buf_addch(&p, '/') ||
			    lf_buf_adds(&p, lf_index_path(idx, e))) {
				ret = -ENOMEM;
				break;
			}
			if (!below(p.data, root.data, root.len))
				continue;
			vis = !lf_tree_resolve(top, p.data, 0, &ino) &&
			      !lf_tree_data(top, ino, &tl, &te) && te == e &&
			      tl == k;
			ret = add_task(j, p.data, k, e, e->size, vis);
		}
	}
	lf_buf_release(&root);
	lf_buf_release(&p);
	return ret ? oom(err) : 0;
}

static int by_data(const void *pa, const void *pb)
{
	const struct task *a = pa, *b = pb;

	if (a->layer != b->layer)
		return a->layer < b->layer ? -1 : 1;
	if (a->e->data_off != b->e->data_off)
		return a->e->data_off < b->e->data_off ? -1 : 1;
	return strcmp(a->path, b->path); /* hardlinks: one entry */
}

/* ---- matching ---- */

static bool match(struct job *j, const char *line, size_t len, char *low)
{
	if (j->needle) {
		if (!j->o->icase)
			return memmem(line, len, j->needle, j->nlen) != NULL;
		for (size_t i = 0; i < len; i++)
			low[i] = (char)tolower((unsigned char)line[i]);
		return memmem(low, len, j->needle, j->nlen) != NULL;
	}
	regmatch_t m = { .rm_so = 0, .rm_eo = (regoff_t)len };

	/* a line without the literal every match holds cannot match */
	if (j->mlen && !memmem(line, len, j->must, j->mlen))
		return false;
	return !regexec(&j->re, line, 1, &m, REG_STARTEND);
}

static int keep(struct result *r, uint64_t lineno, const char *line, size_t len)
{
	if (r->n == r->cap) {
		size_t nc = r->cap ? r->cap * 2 : 8;
		struct rec *p = realloc(r->recs, nc * sizeof(*p));

		if (!p)
			return -ENOMEM;
		r->recs = p;
		r->cap = nc;
	}
	r->recs[r->n++] = (struct rec){ lineno, r->text.len, len };
	return lf_buf_add(&r->text, line, len);
}

/* The first '\n' or NUL in p[0..len), or NULL. */
static const char *memchr2(const char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] == '\n' || !p[i])
			return p + i;
	return NULL;
}

/* Search the lines of pend[0..len) (a final piece when `last`): the bytes
 * of complete lines are consumed, *used says how many.  1: stop. */
static int lines(struct job *j, struct result *r, const char *p, size_t len,
		 bool last, uint64_t *lineno, size_t *used, char *low)
{
	size_t at = 0;

	while (at < len) {
		/* as GNU grep does, a binary file's NULs end lines too */
		const char *nl = r->binary ? memchr2(p + at, len - at)
					   : memchr(p + at, '\n', len - at);
		size_t l = nl ? (size_t)(nl - (p + at)) : len - at;

		if (!nl && !last && l < LINE_MAX_BYTES)
			break; /* wait for the rest of the line */
		if (!nl && l > LINE_MAX_BYTES)
			l = LINE_MAX_BYTES;
		++*lineno;
		if (match(j, p + at, l, low)) {
			if (memchr(p + at, '\0', l))
				r->binary = true;
			if (r->binary || j->o->files_only) {
				r->n = 0;
				*used = at + l;
				return keep(r, *lineno, "", 0) ? -ENOMEM : 1;
			}
			if (keep(r, *lineno, p + at, l))
				return -ENOMEM;
		}
		at += l + (nl ? 1 : 0);
	}
	*used = at;
	return 0;
}

/* Newlines in p[0..len). */
static uint64_t count_nl(const char *p, size_t len)
{
	const char *end = p + len;
	uint64_t n = 0;

	while (p < end && (p = memchr(p, '\n', (size_t)(end - p)))) {
		n++;
		p++;
	}
	return n;
}

/*
 * The first match in p[at..len): memmem for a string; for a regular
 * expression, memmem of a literal every match contains (j->must), then
 * regexec on that line only.  A hit in a line not complete yet (!last) is
 * returned untested: the caller waits for the rest and searches again.
 */
static const char *find(struct job *j, const char *p, size_t at, size_t len,
			bool last)
{
	while (at < len) {
		/* never NULL: says so to a compiler whose UBSan checks split
		 * the pointer arithmetic into paths */
		const char *from = p + at, *h, *ls, *nl;
		regmatch_t m;

		if (!from)
			return NULL;
		if (j->needle)
			return memmem(from, len - at, j->needle, j->nlen);
		h = memmem(from, len - at, j->must, j->mlen);
		if (!h)
			return NULL;
		ls = memrchr(p + at, '\n', (size_t)(h - (p + at)));
		nl = memchr(h, '\n', len - (size_t)(h - p));
		if (!nl && !last)
			return h;
		m.rm_so = (regoff_t)(ls ? (size_t)(ls - p) + 1 : at);
		m.rm_eo = (regoff_t)(nl ? (size_t)(nl - p) : len);
		if (!regexec(&j->re, p, 1, &m, REG_STARTEND))
			return p + m.rm_so;
		if (!nl)
			return NULL;
		at = (size_t)(nl - p) + 1;
	}
	return NULL;
}

/*
 * lines() for a text file without -i: the whole piece searched at once,
 * the line found around each hit, line numbers counted only up to the hits
 * (and once over what is consumed).  Many short lines cost one search,
 * not one each.
 */
static int buffer_lines(struct job *j, struct result *r, const char *p,
			size_t len, bool last, uint64_t *lineno, size_t *used)
{
	uint64_t before = *lineno, nl_seen = 0;
	size_t at = 0, counted = 0;
	const char *hit;

	while (at < len && (hit = find(j, p, at, len, last))) {
		const char *ls = memrchr(p + at, '\n',
					 (size_t)(hit - (p + at)));
		size_t start = ls ? (size_t)(ls - p) + 1 : at;
		const char *nl = memchr(hit, '\n', len - (size_t)(hit - p));
		size_t end = nl ? (size_t)(nl - p) : len;

		if (start == len) {
			/* an empty match after the last newline: no line
			 * there (or not yet) */
			at = len;
			break;
		}
		if (!nl && !last && end - start < LINE_MAX_BYTES) {
			at = start; /* wait for the rest of the line */
			break;
		}
		nl_seen += count_nl(p + counted, start - counted);
		counted = start;
		if (memchr(p + start, '\0', end - start))
			r->binary = true;
		if (r->binary || j->o->files_only) {
			r->n = 0;
			*used = end;
			return keep(r, before + nl_seen + 1, "", 0) ? -ENOMEM
								    : 1;
		}
		if (keep(r, before + nl_seen + 1, p + start, end - start))
			return -ENOMEM;
		at = end + (nl ? 1 : 0);
	}
	if (at < len && !last) {
		/* no more hits: consume up to the last complete line */
		const char *lnl = memrchr(p + at, '\n', len - at);

		if (lnl)
			at = (size_t)(lnl - p) + 1;
		else if (len - at < LINE_MAX_BYTES)
			; /* keep the partial line */
		else
			at = len;
	} else if (last) {
		at = len;
	}
	*lineno = before + nl_seen + count_nl(p + counted, at - counted) +
		  (last && at && p[at - 1] != '\n' ? 1 : 0);
	*used = at;
	return 0;
}

static int search(struct job *j, const struct task *t, struct result *r,
		  struct lf_buf *pend, char **low)
{
	uint64_t off = 0, lineno = 0;
	bool fast = !j->o->icase && (j->needle || j->mlen) &&
		    !strchr(j->o->pattern, '\n');
	int ret = 0;

	lf_buf_reset(pend);
	while (!ret && off < t->size) {
		size_t want = t->size - off < CHUNK ? (size_t)(t->size - off)
						    : CHUNK,
		       used = 0;
		ssize_t n;

		/* read straight into what is pending */
		if (lf_buf_grow(pend, want)) {
			ret = oom(&r->err);
			break;
		}
		n = lf_stack_read_file(j->s, t->layer, t->e,
				       pend->data + pend->len, want, off,
				       &r->err);
		if (n <= 0) {
			ret = n ? (int)n
				: lf_err_set(&r->err, -EIO, "short read");
			break;
		}
		if (!off &&
		    memchr(pend->data, '\0',
			   (size_t)n < BINARY_PROBE ? (size_t)n : BINARY_PROBE))
			r->binary = true;
		off += (uint64_t)n;
		r->bytes += (uint64_t)n;
		/* the bytes read in place become part of the buffer
		 * (lf_buf_grow() left room for them and the NUL) */
		pend->len += (size_t)n;
		pend->data[pend->len] = '\0';
		if (j->o->icase && j->needle) {
			char *p = realloc(*low, pend->len + 1);

			if (!p) {
				ret = oom(&r->err);
				break;
			}
			*low = p;
		}
		if (fast && !r->binary)
			ret = buffer_lines(j, r, pend->data, pend->len,
					   off >= t->size, &lineno, &used);
		else
			ret = lines(j, r, pend->data, pend->len, off >= t->size,
				    &lineno, &used, *low);
		if (ret < 0)
			ret = oom(&r->err);
		memmove(pend->data, pend->data + used, pend->len - used);
		lf_buf_setlen(pend, pend->len - used);
	}
	return ret < 0 ? lf_err_prefix(&r->err, "'%s'", t->path) : 0;
}

static void *worker(void *arg)
{
	struct job *j = arg;
	struct lf_buf pend; /* one per thread, for every file */
	char *low = NULL;
	size_t i;

	lf_buf_init(&pend);
	while ((i = atomic_fetch_add(&j->next, 1)) < j->count) {
		struct result *r = &j->res[i];

		r->ret = search(j, &j->t[j->base + i], r, &pend, &low);
	}
	lf_buf_release(&pend);
	free(low);
	return NULL;
}

static int deliver(struct job *j, lf_grep_fn fn, void *ctx,
		   struct lf_grep_stats *st, struct lf_err *err)
{
	size_t i, k;
	int ret = 0;

	for (i = 0; i < j->count && !ret; i++) {
		const struct task *t = &j->t[j->base + i];
		struct result *r = &j->res[i];

		st->files++;
		st->bytes += r->bytes;
		if (r->ret) {
			*err = r->err;
			return r->ret;
		}
		if (r->n)
			st->matching_files++;
		for (k = 0; k < r->n && !ret; k++) {
			struct lf_grep_hit h = {
				.path = t->path,
				.layer = t->layer,
				.visible = t->visible,
				.lineno = r->recs[k].lineno,
				.line = r->binary || j->o->files_only
						? NULL
						: r->text.data + r->recs[k].off,
				.len = r->recs[k].len,
				.binary = r->binary,
			};

			ret = fn(ctx, &h);
		}
	}
	return ret;
}

static void results_free(struct job *j)
{
	size_t i;

	for (i = 0; i < j->count; i++) {
		lf_buf_release(&j->res[i].text);
		free(j->res[i].recs);
	}
}

static int run(struct job *j, lf_grep_fn fn, void *ctx,
	       struct lf_grep_stats *st, struct lf_err *err)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned nth = j->o->threads ? j->o->threads
				     : (ncpu > 0 ? (unsigned)ncpu : 1);
	pthread_t th[64];
	unsigned t, started;
	int ret = 0;

	if (nth > 64)
		nth = 64;
	if (!(j->res = calloc(WINDOW, sizeof(*j->res))))
		return oom(err);
	for (j->base = 0; j->base < j->nt && !ret; j->base += j->count) {
		j->count = j->nt - j->base < WINDOW ? j->nt - j->base : WINDOW;
		memset(j->res, 0, WINDOW * sizeof(*j->res));
		for (t = 0; t < j->count; t++)
			lf_buf_init(&j->res[t].text);
		atomic_store(&j->next, 0);
		for (started = 0; started + 1 < nth && started < j->count;
		     started++)
			if (pthread_create(&th[started], NULL, worker, j))
				break;
		worker(j);
		for (t = 0; t < started; t++)
			pthread_join(th[t], NULL);
		ret = deliver(j, fn, ctx, st, err);
		results_free(j);
	}
	free(j->res);
	return ret;
}

/*
 * The longest run of plain characters every match of the pattern must
 * contain, for a prefilter (as grep's "must" strings): none with
 * alternation or groups; a character that a quantifier or any escape
 * follows does not count; brackets, '.', anchors end a run.  Conservative:
 * when in doubt, no run.
 */
static void must_of(const struct lf_grep_opts *o, char *out, size_t size,
		    size_t *outlen)
{
	const char *p = o->pattern;
	char run[256];
	size_t n = 0, best = 0;

	*outlen = 0;
	if (o->icase || strstr(p, "\\|") || strstr(p, "\\(") ||
	    (o->extended && strpbrk(p, "|()")))
		return;
	for (;; p++) {
		bool end = !*p ||
			   strchr(o->extended ? "\\.[]^$*+?{" : "\\.[]^$*", *p);

		if (!end) {
			if (n < sizeof(run))
				run[n++] = *p;
			continue;
		}
		/* a quantifier or an escape may bind the last character */
		if (*p == '*' || *p == '+' || *p == '?' || *p == '{' ||
		    *p == '\\')
			n = n ? n - 1 : 0;
		if (n > best && n < size) {
			memcpy(out, run, n);
			best = n;
		}
		n = 0;
		if (!*p)
			break;
		if ((*p == '{' && o->extended) ||
		    (*p == '\\' && p[1] == '{' && !o->extended)) {
			/* an interval: its bounds are not plain */
			const char *close = strchr(p, '}');

			if (!close) {
				best = 0;
				break;
			}
			p = close;
			continue;
		}
		if (*p == '\\' && p[1])
			p++; /* the escaped character is not plain */
		if (*p == '[') {
			/* skip the bracket expression ([]...] and [^]...]) */
			p++;
			if (*p == '^')
				p++;
			if (*p == ']')
				p++;
			while (*p && *p != ']')
				p++;
			if (!*p) {
				best = 0;
				break;
			}
		}
	}
	*outlen = best >= 3 ? best : 0;
}

/* A pattern without any special character matches as a fixed string. */
static bool literal(const struct lf_grep_opts *o)
{
	return !strpbrk(o->pattern,
			o->extended ? "\\.[]*^$+?(){}|\n" : "\\.[]*^$\n");
}

int lf_grep(const struct lf_stack *s, const struct lf_grep_opts *o,
	    lf_grep_fn fn, void *ctx, struct lf_grep_stats *st,
	    struct lf_err *err)
{
	struct job j = { .s = s, .o = o };
	struct lf_grep_stats none;
	size_t i;
	int ret;

	if (!st)
		st = &none;
	memset(st, 0, sizeof(*st));
	if (o->fixed || literal(o)) {
		if (!(j.needle = strdup(o->pattern)))
			return oom(err);
		j.nlen = strlen(j.needle);
		for (i = 0; o->icase && i < j.nlen; i++)
			j.needle[i] = (char)tolower((unsigned char)j.needle[i]);
	} else {
		int c = regcomp(&j.re, o->pattern,
				REG_NEWLINE | (o->extended ? REG_EXTENDED : 0) |
					(o->icase ? REG_ICASE : 0));

		if (!c)
			must_of(o, j.must, sizeof(j.must), &j.mlen);
		if (c) {
			char msg[256];

			regerror(c, &j.re, msg, sizeof(msg));
			return lf_err_set(err, -EINVAL, "'%.200s': %s",
					  o->pattern, msg);
		}
	}
	ret = o->all ? all_tasks(&j, err) : view_tasks(&j, err);
	/* in the order of the data in the blobs: each checkpoint span is
	 * inflated once, as for a reader going through the tar */
	if (!ret)
		qsort(j.t, j.nt, sizeof(*j.t), by_data);
	if (!ret)
		ret = run(&j, fn, ctx, st, err);
	for (i = 0; i < j.nt; i++)
		free(j.t[i].path);
	free(j.t);
	if (j.needle)
		free(j.needle);
	else
		regfree(&j.re);
	return ret;
}

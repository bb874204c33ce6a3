// SPDX-License-Identifier: MIT
/* cache_dir.c - list a cache directory, find what is in use, evict LRU. */
#include "layerfs/cache_dir.h"

#include "layerfs/log.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static const char *const kind_names[LF_CACHE_NKINDS] = {
	"index", "zstd-copy", "tree", "spans", "doc", "tmp", "gzip-points",
};

const char *lf_cache_kind_name(enum lf_cache_kind k)
{
	return k < LF_CACHE_NKINDS ? kind_names[k] : "?";
}

/* --- files in use (/proc) ------------------------------------------------ */

struct fid {
	dev_t dev;
	ino_t ino;
};

struct used {
	struct fid *f;
	size_t n, cap;
};

static void used_add(struct used *u, dev_t dev, ino_t ino)
{
	if (u->n == u->cap) {
		size_t nc = u->cap ? u->cap * 2 : 256;
		struct fid *p = realloc(u->f, nc * sizeof(*p));

		if (!p)
			return; /* a file missed is one more that may go */
		u->f = p;
		u->cap = nc;
	}
	u->f[u->n++] = (struct fid){ dev, ino };
}

static int cmp_fid(const void *pa, const void *pb)
{
	const struct fid *a = pa, *b = pb;

	if (a->dev != b->dev)
		return a->dev < b->dev ? -1 : 1;
	return a->ino < b->ino ? -1 : a->ino > b->ino;
}

static bool used_has(const struct used *u, dev_t dev, ino_t ino)
{
	struct fid k = { dev, ino };

	return u->n && bsearch(&k, u->f, u->n, sizeof(k), cmp_fid);
}

/* "ADDR PERMS OFFSET MAJ:MIN INODE [PATH]" of /proc/PID/maps: 0 or -1. */
static int maps_line(const char *line, dev_t *dev, ino_t *ino)
{
	unsigned long maj, min;
	unsigned long long i;
	const char *p = line;
	char *end;
	int k;

	for (k = 0; k < 3; k++) { /* skip address, perms, offset */
		p = strchr(p, ' ');
		if (!p)
			return -1;
		p++;
	}
	errno = 0;
	maj = strtoul(p, &end, 16);
	if (end == p || *end != ':')
		return -1;
	p = end + 1;
	min = strtoul(p, &end, 16);
	if (end == p || *end != ' ')
		return -1;
	p = end + 1;
	i = strtoull(p, &end, 10);
	if (end == p || errno)
		return -1;
	*dev = makedev((unsigned)maj, (unsigned)min);
	*ino = (ino_t)i;
	return 0;
}

/* The files process `pid` ("self" or digits) maps or has open on `dev`. */
static void proc_used(const char *pid, dev_t dev, struct used *u)
{
	char path[64], line[512];
	struct dirent *de;
	FILE *f;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%s/maps", pid);
	if ((f = fopen(path, "re"))) {
		while (fgets(line, sizeof(line), f)) {
			dev_t mdev;
			ino_t ino;

			if (!maps_line(line, &mdev, &ino) && ino && mdev == dev)
				used_add(u, dev, ino);
		}
		fclose(f);
	}
	snprintf(path, sizeof(path), "/proc/%s/fd", pid);
	if (!(d = opendir(path)))
		return;
	while ((de = readdir(d))) {
		struct stat st;

		/* follows the fd's link to the open file, never opens it */
		if (de->d_name[0] != '.' &&
		    fstatat(dirfd(d), de->d_name, &st, 0) == 0 &&
		    st.st_dev == dev)
			used_add(u, dev, st.st_ino);
	}
	closedir(d);
}

static void collect_used(dev_t dev, bool self_only, struct used *u)
{
	struct dirent *de;
	DIR *d;

	if (self_only || !(d = opendir("/proc"))) {
		proc_used("self", dev, u);
	} else {
		while ((de = readdir(d)))
			if (isdigit((unsigned char)de->d_name[0]))
				proc_used(de->d_name, dev, u);
		closedir(d);
	}
	if (u->n)
		qsort(u->f, u->n, sizeof(*u->f), cmp_fid);
}

/* --- listing ------------------------------------------------------------- */

struct list {
	struct lf_cache_item *it;
	size_t n, cap;
	const struct used *used; /* NULL: in_use not wanted */
};

static bool is_hex64(const char *s, size_t n)
{
	size_t i;

	if (n != 64)
		return false;
	for (i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]) ||
		    isupper((unsigned char)s[i]))
			return false;
	return true;
}

static bool ends_with(const char *s, const char *suf)
{
	size_t n = strlen(s), k = strlen(suf);

	return n >= k && !strcmp(s + n - k, suf);
}

static struct lf_cache_item *add_item(struct list *l, enum lf_cache_kind kind,
				      const char *name)
{
	struct lf_cache_item *it;

	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 64;

		if (!(it = realloc(l->it, nc * sizeof(*it))))
			return NULL;
		l->it = it;
		l->cap = nc;
	}
	it = &l->it[l->n];
	memset(it, 0, sizeof(*it));
	it->kind = kind;
	if (!(it->name = strdup(name)))
		return NULL;
	l->n++;
	return it;
}

static void account(struct lf_cache_item *it, const struct stat *st,
		    const struct used *u)
{
	it->size += (uint64_t)st->st_size;
	if (st->st_mtim.tv_sec > it->last_use ||
	    (st->st_mtim.tv_sec == it->last_use &&
	     st->st_mtim.tv_nsec > it->last_use_nsec)) {
		it->last_use = st->st_mtim.tv_sec;
		it->last_use_nsec = st->st_mtim.tv_nsec;
	}
	if (u && used_has(u, st->st_dev, st->st_ino))
		it->in_use = true;
}

/*
 * The kind and digest of a top-level name, or false when the name is not
 * the cache's: "<key>.idx", "<key>.idx.tar", "tree-<hex>.tree", temp files.
 */
static bool classify(const char *name, enum lf_cache_kind *kind,
		     char digest[80])
{
	const char *hex = NULL;
	size_t len = strlen(name);

	digest[0] = '\0';
	if (strstr(name, ".tmp.")) {
		*kind = LF_CACHE_TMP;
		return true;
	}
	if (!strncmp(name, "tree-", 5) && ends_with(name, ".tree") &&
	    is_hex64(name + 5, len - 10)) {
		*kind = LF_CACHE_TREE;
		return true;
	}
	if (!strncmp(name, "gzouter-", 8) && ends_with(name, ".gzi") &&
	    is_hex64(name + 8, len - 12)) {
		*kind = LF_CACHE_GZIP_POINTS;
		return true;
	}
	if (ends_with(name, ".idx.tar"))
		*kind = LF_CACHE_ZSTD_COPY, len -= 8;
	else if (ends_with(name, ".idx"))
		*kind = LF_CACHE_INDEX, len -= 4;
	else
		return false;
	if (!strncmp(name, "sha256-", 7) && is_hex64(name + 7, len - 7))
		hex = name + 7;
	else if (!strncmp(name, "diffid-sha256-", 14) &&
		 is_hex64(name + 14, len - 14))
		hex = name + 14;
	if (!hex)
		return false;
	snprintf(digest, 80, "%ssha256:%.64s",
		 hex == name + 14 ? "diffid " : "", hex);
	return true;
}

static int scan_top(int dfd, struct list *l)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	DIR *d;

	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		enum lf_cache_kind kind;
		struct lf_cache_item *it;
		char digest[80];
		struct stat st;

		if (!classify(de->d_name, &kind, digest) ||
		    fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) ||
		    !S_ISREG(st.st_mode))
			continue;
		if (!(it = add_item(l, kind, de->d_name))) {
			closedir(d);
			return -ENOMEM;
		}
		memcpy(it->digest, digest, sizeof(digest));
		account(it, &st, l->used);
	}
	closedir(d);
	return 0;
}

/* An all-digit span file name, or a writer's temp file of one. */
static bool span_file(const char *name)
{
	size_t i = 0;

	while (isdigit((unsigned char)name[i]))
		i++;
	return i && (!name[i] || ends_with(name, ".tmp"));
}

/* List subdirectory `name` of dfd, never through a symlink: 0 with *d
 * NULL when there is none (or it is not a directory), else -errno. */
static int open_sub(int dfd, const char *name, DIR **d)
{
	int fd = openat(dfd, name,
			O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	*d = NULL;
	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR || errno == ELOOP
			       ? 0
			       : -errno;
	if (!(*d = fdopendir(fd))) {
		close(fd);
		return -errno;
	}
	return 0;
}

/* spans/<hex>/ and spans/<hex>.sums: one item per blob. */
static int scan_spans(int dfd, struct list *l)
{
	struct dirent *de;
	int sfd, ret;
	DIR *d;

	if ((ret = open_sub(dfd, "spans", &d)) || !d)
		return ret;
	sfd = dirfd(d);
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		char name[80];
		struct lf_cache_item *it = NULL;
		struct stat st;
		size_t i;

		if (!is_hex64(de->d_name, len < 64 ? 0 : 64) ||
		    (len != 64 && strcmp(de->d_name + 64, ".sums")) ||
		    fstatat(sfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW))
			continue;
		snprintf(name, sizeof(name), "spans/%.64s", de->d_name);
		for (i = 0; i < l->n; i++)
			if (l->it[i].kind == LF_CACHE_SPANS &&
			    !strcmp(l->it[i].name, name))
				it = &l->it[i];
		if (!it) {
			if (!(it = add_item(l, LF_CACHE_SPANS, name))) {
				closedir(d);
				return -ENOMEM;
			}
			snprintf(it->digest, sizeof(it->digest), "sha256:%.64s",
				 de->d_name);
		}
		if (len > 64 && S_ISREG(st.st_mode)) {
			account(it, &st, l->used);
		} else if (len == 64 && S_ISDIR(st.st_mode)) {
			int bfd = openat(sfd, de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
						 O_CLOEXEC);
			struct dirent *se;
			DIR *bd;

			if (bfd < 0 || !(bd = fdopendir(bfd))) {
				if (bfd >= 0)
					close(bfd);
				continue;
			}
			while ((se = readdir(bd)))
				if (span_file(se->d_name) &&
				    !fstatat(bfd, se->d_name, &st,
					     AT_SYMLINK_NOFOLLOW) &&
				    S_ISREG(st.st_mode))
					account(it, &st, l->used);
			closedir(bd);
		}
	}
	closedir(d);
	return 0;
}

static int scan_docs(int dfd, struct list *l)
{
	struct dirent *de;
	int fd, ret;
	DIR *d;

	if ((ret = open_sub(dfd, "docs", &d)) || !d)
		return ret;
	fd = dirfd(d);
	while ((de = readdir(d))) {
		struct lf_cache_item *it;
		char name[80];
		struct stat st;

		if (!is_hex64(de->d_name, strlen(de->d_name)) ||
		    fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) ||
		    !S_ISREG(st.st_mode))
			continue;
		snprintf(name, sizeof(name), "docs/%s", de->d_name);
		if (!(it = add_item(l, LF_CACHE_DOC, name))) {
			closedir(d);
			return -ENOMEM;
		}
		snprintf(it->digest, sizeof(it->digest), "sha256:%s",
			 de->d_name);
		account(it, &st, l->used);
	}
	closedir(d);
	return 0;
}

/*
 * A blob's index, zstd copy and spans are in use together: a mount that
 * holds its copy open has the index in memory, and the other way round.
 */
static void pair_use(struct list *l)
{
	size_t i, k;
	bool again = true;

	while (again) {
		again = false;
		for (i = 0; i < l->n; i++) {
			struct lf_cache_item *a = &l->it[i];

			if (!a->in_use || !a->digest[0] ||
			    a->kind == LF_CACHE_DOC)
				continue;
			for (k = 0; k < l->n; k++) {
				struct lf_cache_item *b = &l->it[k];

				if (!b->in_use && b->kind != LF_CACHE_DOC &&
				    b->kind != LF_CACHE_TMP &&
				    !strcmp(a->digest, b->digest)) {
					b->in_use = true;
					again = true;
				}
			}
		}
	}
}

static int cmp_use(const void *pa, const void *pb)
{
	const struct lf_cache_item *a = pa, *b = pb;

	if (a->last_use != b->last_use)
		return a->last_use < b->last_use ? -1 : 1;
	if (a->last_use_nsec != b->last_use_nsec)
		return a->last_use_nsec < b->last_use_nsec ? -1 : 1;
	return strcmp(a->name, b->name);
}

static int scan(const char *dir, bool want_use, struct lf_cache_item **items,
		size_t *n, struct lf_err *err)
{
	struct used u = { 0 };
	struct list l = { 0 };
	struct stat st;
	int dfd, ret;

	*items = NULL;
	*n = 0;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		if (errno == ENOENT)
			return 0;
		return lf_err_set(err, -errno,
				  "cannot open cache directory "
				  "'%s': %s",
				  dir, strerror(errno));
	}
	if (want_use && fstat(dfd, &st) == 0) {
		collect_used(st.st_dev, false, &u);
		l.used = &u;
	}
	ret = scan_top(dfd, &l);
	if (!ret)
		ret = scan_spans(dfd, &l);
	if (!ret)
		ret = scan_docs(dfd, &l);
	close(dfd);
	free(u.f);
	if (ret) {
		lf_cache_items_free(l.it, l.n);
		return lf_err_set(err, ret,
				  "cannot list cache directory '%s': %s", dir,
				  strerror(-ret));
	}
	if (want_use)
		pair_use(&l);
	if (l.n)
		qsort(l.it, l.n, sizeof(*l.it), cmp_use);
	*items = l.it;
	*n = l.n;
	return 0;
}

int lf_cache_scan(const char *dir, struct lf_cache_item **items, size_t *n,
		  struct lf_err *err)
{
	return scan(dir, true, items, n, err);
}

void lf_cache_items_free(struct lf_cache_item *items, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(items[i].name);
	free(items);
}

/* --- eviction ------------------------------------------------------------ */

/* unlink `name` in dfd if it is a regular file (never through a link). */
static void unlink_reg(int dfd, const char *name)
{
	struct stat st;

	if (!fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) &&
	    S_ISREG(st.st_mode))
		unlinkat(dfd, name, 0);
}

static void remove_spans(int dfd, const char *hex)
{
	int sfd = openat(dfd, "spans",
			 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC),
	    bfd;
	char sums[80];
	struct dirent *de;
	DIR *d;

	if (sfd < 0)
		return;
	snprintf(sums, sizeof(sums), "%s.sums", hex);
	unlink_reg(sfd, sums);
	bfd = openat(sfd, hex, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (bfd >= 0 && (d = fdopendir(bfd))) {
		while ((de = readdir(d)))
			if (span_file(de->d_name))
				unlink_reg(bfd, de->d_name);
		closedir(d);
		unlinkat(sfd, hex, AT_REMOVEDIR); /* only if now empty */
	} else if (bfd >= 0) {
		close(bfd);
	}
	close(sfd);
}

int lf_cache_evict(const char *dir, const struct lf_cache_item *items, size_t n,
		   uint64_t max, uint64_t *freed, size_t *removed,
		   struct lf_err *err)
{
	uint64_t total = 0, gone = 0;
	size_t i, count = 0;
	int dfd;

	for (i = 0; i < n; i++)
		total += items[i].size;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 && n)
		return lf_err_set(err, -errno,
				  "cannot open cache directory '%s': %s", dir,
				  strerror(errno));
	/* items come oldest use first */
	for (i = 0; i < n && total > max; i++) {
		const struct lf_cache_item *it = &items[i];

		if (it->in_use)
			continue;
		if (it->kind == LF_CACHE_SPANS)
			remove_spans(dfd, it->name + 6);
		else if (it->kind == LF_CACHE_DOC) {
			int fd = openat(dfd, "docs",
					O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
						O_CLOEXEC);

			if (fd >= 0) {
				unlink_reg(fd, it->name + 5);
				close(fd);
			}
		} else {
			unlink_reg(dfd, it->name);
		}
		total -= it->size;
		gone += it->size;
		count++;
	}
	if (dfd >= 0)
		close(dfd);
	if (freed)
		*freed = gone;
	if (removed)
		*removed = count;
	return 0;
}

/* --- use marks and the cap ------------------------------------------------ */

void lf_cache_touch_used(const char *dir)
{
	struct lf_cache_item *it;
	struct used u = { 0 };
	struct stat st;
	size_t n, i;
	int dfd;

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return;
	if (fstat(dfd, &st) == 0)
		collect_used(st.st_dev, true, &u);
	if (u.n && !scan(dir, false, &it, &n, NULL)) {
		for (i = 0; i < n; i++) {
			struct stat fs;

			/* single-file items only: spans keep their own
			 * times (the span cache's LRU) */
			if (it[i].kind == LF_CACHE_SPANS ||
			    it[i].kind == LF_CACHE_DOC ||
			    fstatat(dfd, it[i].name, &fs,
				    AT_SYMLINK_NOFOLLOW) ||
			    !used_has(&u, fs.st_dev, fs.st_ino))
				continue;
			utimensat(dfd, it[i].name, NULL, AT_SYMLINK_NOFOLLOW);
		}
		lf_cache_items_free(it, n);
	}
	free(u.f);
	close(dfd);
}

void lf_cache_cap(const char *dir, uint64_t max)
{
	struct lf_cache_item *it;
	struct lf_err err = { 0 };
	uint64_t total = 0, freed;
	size_t n, i, removed;

	lf_cache_touch_used(dir);
	if (scan(dir, false, &it, &n, NULL))
		return;
	for (i = 0; i < n; i++)
		total += it[i].size;
	lf_cache_items_free(it, n);
	if (total <= max)
		return;
	if (lf_cache_scan(dir, &it, &n, &err)) {
		lf_log(LF_LOG_WARN, "cache: %s", err.msg);
		return;
	}
	if (lf_cache_evict(dir, it, n, max, &freed, &removed, &err))
		lf_log(LF_LOG_WARN, "cache: %s", err.msg);
	lf_cache_items_free(it, n);
}

// SPDX-License-Identifier: MIT
/* rblob.c - registry blobs streamed once, then read by verified spans. */
#include "layerfs/rblob.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "layerfs/digest.h"
#include "layerfs/log.h"

#define SPAN LF_RBLOB_SPAN
#define WIN_MIN (1u << 20) /* the first streaming window */
#define WIN_MAX (8u << 20) /* windows double up to this */
#define MEM_SLOTS 8	   /* verified spans kept in memory */
#define TOUCH_S 60	   /* a hit refreshes a span file's mtime this often */
#define HASH 32		   /* bytes of a span digest */
static const char sums_magic[8] = { 'l', 'f', 's', 'p', 'a', 'n', 's', '1' };

/* ---- the blob ---- */

struct rb {
	struct lf_registry *r;
	char digest[LF_DIGEST_LEN];
	const char *hex;
	uint64_t size, nspans, id;
	char *dir;	  /* <cache>/spans/<hex>, or NULL */
	char *sums_path;  /* <cache>/spans/<hex>.sums, or NULL */
	uint64_t max;	  /* cap on span bytes on disk */
	char *cache_root; /* <cache>/spans */
	atomic_int refs;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned char *sums; /* nspans * HASH, once known */
	unsigned char *busy; /* bitmap: spans being fetched */
	bool tried_sums, bad;
	atomic_bool logged; /* a failure is logged once per blob */

	/* streaming, until the sums are known */
	char *sbuf;
	uint64_t soff;
	size_t slen, scap, win;
	/* the next window, fetched by a thread while this one is read */
	pthread_t th;
	bool th_live;
	char *nbuf;
	size_t ncap, nlen;
	uint64_t noff;
	int nret;
	struct lf_err nerr;
	struct lf_sha256 *whole, *part;
	size_t part_fill;
	unsigned char *building; /* nspans * HASH */
};

static atomic_uint_fast64_t next_id = 1;

/* ---- the memory LRU of verified spans, shared by all blobs ---- */

static struct {
	pthread_mutex_t mu;
	struct slot {
		uint64_t id, k, tick;
		size_t len;
		char *data;
	} s[MEM_SLOTS];
	uint64_t tick;
} mem = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* Copy [at, at + n) of span k of blob id when held: true. */
static bool mem_copy(uint64_t id, uint64_t k, size_t at, void *dst, size_t n)
{
	bool hit = false;
	int i;

	pthread_mutex_lock(&mem.mu);
	for (i = 0; i < MEM_SLOTS; i++) {
		struct slot *s = &mem.s[i];

		if (s->data && s->id == id && s->k == k && at + n <= s->len) {
			memcpy(dst, s->data + at, n);
			s->tick = ++mem.tick;
			hit = true;
			break;
		}
	}
	pthread_mutex_unlock(&mem.mu);
	return hit;
}

static void mem_put(uint64_t id, uint64_t k, const char *data, size_t len)
{
	struct slot *v = &mem.s[0];
	int i;

	pthread_mutex_lock(&mem.mu);
	for (i = 0; i < MEM_SLOTS; i++) {
		struct slot *s = &mem.s[i];

		if (s->data && s->id == id && s->k == k) {
			v = s;
			break;
		}
		if (!s->data || s->tick < v->tick)
			v = s;
	}
	if (!v->data)
		v->data = malloc(SPAN);
	if (v->data) {
		memcpy(v->data, data, len);
		v->id = id;
		v->k = k;
		v->len = len;
		v->tick = ++mem.tick;
	}
	pthread_mutex_unlock(&mem.mu);
}

static void mem_forget(uint64_t id)
{
	int i;

	pthread_mutex_lock(&mem.mu);
	for (i = 0; i < MEM_SLOTS; i++)
		if (mem.s[i].id == id)
			mem.s[i].id = 0;
	pthread_mutex_unlock(&mem.mu);
}

/* ---- digests ---- */

static int unhex(char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
				      : -1;
}

/* The raw 32 bytes of a final digest ("sha256:<hex>"). */
static void final_raw(struct lf_sha256 *h, unsigned char out[HASH])
{
	char d[LF_DIGEST_LEN];
	int i;

	lf_sha256_final(h, d);
	for (i = 0; i < HASH; i++)
		out[i] = (unsigned char)(unhex(d[7 + 2 * i]) << 4 |
					 unhex(d[8 + 2 * i]));
	lf_sha256_reset(h);
}

static bool span_ok(const struct rb *b, uint64_t k, const void *data,
		    size_t len)
{
	struct lf_sha256 *h;
	unsigned char got[HASH];

	if (lf_sha256_new(&h))
		return false;
	lf_sha256_update(h, data, len);
	final_raw(h, got);
	lf_sha256_free(h);
	return !memcmp(got, b->sums + k * HASH, HASH);
}

static size_t span_len(const struct rb *b, uint64_t k)
{
	uint64_t end = (k + 1) * SPAN;

	return (size_t)((end > b->size ? b->size : end) - k * SPAN);
}

/* ---- files in the cache ---- */

/* Read all of a regular file (no symlink, no FIFO) of exactly len bytes. */
static int read_exact(const char *path, void *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	ssize_t n = -1;

	if (fd < 0)
		return -errno;
	if (!fstat(fd, &st) && S_ISREG(st.st_mode) &&
	    (uint64_t)st.st_size == len)
		n = pread(fd, buf, len, 0);
	if (n == (ssize_t)len && st.st_mtime + TOUCH_S < time(NULL))
		futimens(fd, NULL); /* recently used, for the LRU */
	close(fd);
	return n == (ssize_t)len ? 0 : -EIO;
}

/* Write path atomically (a temporary file renamed over it). */
static int write_file(const char *path, const void *data, size_t len)
{
	char tmp[4096];
	int fd, ret = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid()) >=
	    (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd < 0)
		return -errno;
	if (write(fd, data, len) != (ssize_t)len)
		ret = -EIO;
	if (close(fd) && !ret)
		ret = -EIO;
	if (!ret && rename(tmp, path))
		ret = -errno;
	if (ret)
		unlink(tmp);
	return ret;
}

/* Make directory path (one level); true when it is one (not a symlink). */
static bool mkdir_quiet(const char *path)
{
	struct stat st;

	if (mkdir(path, 0700) && errno != EEXIST)
		lf_log(LF_LOG_DEBUG, "cannot create %s: %s", path,
		       strerror(errno));
	return !lstat(path, &st) && S_ISDIR(st.st_mode);
}

/* ---- the size cap: least recently used span files go ---- */

static struct {
	pthread_mutex_t mu;
	char root[4096];
	uint64_t used;
	bool known;
} disk = { .mu = PTHREAD_MUTEX_INITIALIZER };

struct sfile {
	time_t mtime;
	uint64_t size;
	char path[256]; /* "<hex>/<n>" */
};

static int by_mtime(const void *a, const void *b)
{
	const struct sfile *x = a, *y = b;

	return x->mtime < y->mtime ? -1 : x->mtime > y->mtime;
}

/* The span files under root, their total size in *total. */
static struct sfile *scan(const char *root, size_t *n, uint64_t *total)
{
	DIR *d = opendir(root), *sd;
	struct dirent *e, *f;
	struct sfile *v = NULL, *p;
	size_t cap = 0;
	struct stat st;

	*n = 0;
	*total = 0;
	if (!d)
		return NULL;
	while ((e = readdir(d))) {
		int dfd;

		if (strlen(e->d_name) != 64)
			continue;
		dfd = openat(dirfd(d), e->d_name,
			     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dfd < 0 || !(sd = fdopendir(dfd))) {
			if (dfd >= 0)
				close(dfd);
			continue;
		}
		while ((f = readdir(sd))) {
			if (f->d_name[0] == '.' ||
			    fstatat(dirfd(sd), f->d_name, &st,
				    AT_SYMLINK_NOFOLLOW) ||
			    !S_ISREG(st.st_mode))
				continue;
			if (*n == cap) {
				cap = cap ? 2 * cap : 256;
				if (!(p = realloc(v, cap * sizeof(*v))))
					break;
				v = p;
			}
			v[*n].mtime = st.st_mtime;
			v[*n].size = (uint64_t)st.st_size;
			snprintf(v[*n].path, sizeof(v[*n].path), "%s/%.64s",
				 e->d_name, f->d_name);
			*total += (uint64_t)st.st_size;
			(*n)++;
		}
		closedir(sd);
	}
	closedir(d);
	return v;
}

/* Account len new bytes under root; over max, drop the oldest files. */
static void disk_account(const char *root, uint64_t len, uint64_t max)
{
	struct sfile *v;
	size_t n, i;
	uint64_t total;

	pthread_mutex_lock(&disk.mu);
	if (!disk.known || strcmp(disk.root, root)) {
		snprintf(disk.root, sizeof(disk.root), "%s", root);
		free(scan(root, &n, &disk.used));
		disk.known = true;
	} else {
		disk.used += len;
	}
	if (disk.used > max) {
		char path[4096 + 300];

		v = scan(root, &n, &total);
		if (v)
			qsort(v, n, sizeof(*v), by_mtime);
		for (i = 0; v && i < n && total > max - max / 10; i++) {
			snprintf(path, sizeof(path), "%s/%s", root, v[i].path);
			if (!unlink(path))
				total -= v[i].size;
		}
		free(v);
		disk.used = total;
	}
	pthread_mutex_unlock(&disk.mu);
}

/* ---- span digests on disk ---- */

/*
 * The file: magic, size, span, count (LE 64-bit), the digests, sha256 of
 * all before it.  sums_encode() makes one of n digests for a blob of
 * `size`; sums_check() says whether p holds one for that size.
 */
static unsigned char *sums_encode(uint64_t size, const unsigned char *sums,
				  size_t *len)
{
	uint64_t n = (size + SPAN - 1) / SPAN, hdr[3] = { size, SPAN, n };
	unsigned char *p;
	struct lf_sha256 *h = NULL;

	*len = 32 + n * HASH + HASH;
	if (!(p = malloc(*len)) || lf_sha256_new(&h)) {
		free(p);
		return NULL;
	}
	memcpy(p, sums_magic, sizeof(sums_magic));
	memcpy(p + 8, hdr, sizeof(hdr));
	memcpy(p + 32, sums, n * HASH);
	lf_sha256_update(h, p, *len - HASH);
	final_raw(h, p + *len - HASH);
	lf_sha256_free(h);
	return p;
}

static bool sums_check(const unsigned char *p, size_t len, uint64_t size)
{
	uint64_t n = (size + SPAN - 1) / SPAN, hdr[3] = { size, SPAN, n };
	struct lf_sha256 *h = NULL;
	unsigned char got[HASH];

	if (len != 32 + n * HASH + HASH ||
	    memcmp(p, sums_magic, sizeof(sums_magic)) ||
	    memcmp(p + 8, hdr, sizeof(hdr)) || lf_sha256_new(&h))
		return false;
	lf_sha256_update(h, p, len - HASH);
	final_raw(h, got);
	lf_sha256_free(h);
	return !memcmp(got, p + len - HASH, HASH);
}

static int sums_load(struct rb *b)
{
	size_t len = 32 + b->nspans * HASH + HASH;
	unsigned char *p = malloc(len);

	if (!p || read_exact(b->sums_path, p, len)) {
		free(p);
		return -1;
	}
	if (!sums_check(p, len, b->size)) {
		lf_log(LF_LOG_WARN, "%s: damaged, ignored", b->sums_path);
		free(p);
		return -1;
	}
	b->sums = malloc(b->nspans * HASH + 1);
	if (b->sums)
		memcpy(b->sums, p + 32, b->nspans * HASH);
	free(p);
	return b->sums ? 0 : -1;
}

static void sums_save(struct rb *b)
{
	size_t len;
	unsigned char *p = b->sums_path ? sums_encode(b->size, b->sums, &len)
					: NULL;

	if (p &&
	    (!mkdir_quiet(b->cache_root) || write_file(b->sums_path, p, len)))
		lf_log(LF_LOG_DEBUG, "cannot write %s", b->sums_path);
	free(p);
}

/* ---- streaming (before the sums are known) ---- */

/* Hash a new window: the whole blob and span by span. */
static void stream_hash(struct rb *b, const char *p, size_t n)
{
	lf_sha256_update(b->whole, p, n);
	while (n) {
		size_t take = SPAN - b->part_fill;
		uint64_t k = (b->soff + b->slen - n) / SPAN;

		if (take > n)
			take = n;
		lf_sha256_update(b->part, p, take);
		b->part_fill += take;
		p += take;
		n -= take;
		if (b->part_fill == span_len(b, k)) {
			final_raw(b->part, b->building + k * HASH);
			b->part_fill = 0;
		}
	}
}

/* The last window arrived: the blob must match its digest. */
static int stream_end(struct rb *b)
{
	char got[LF_DIGEST_LEN];

	lf_sha256_final(b->whole, got);
	if (strcmp(got, b->digest)) {
		lf_log_once(&b->logged, LF_LOG_ERR,
			    "%s@%s: the registry sent other bytes (digest %s)",
			    lf_registry_name(b->r), b->digest, got);
		b->bad = true;
		return -EIO;
	}
	b->sums = b->building;
	b->building = NULL;
	free(b->nbuf); /* no more windows */
	b->nbuf = NULL;
	b->ncap = 0;
	sums_save(b);
	return 0;
}

/* Room for n bytes in *buf of *cap. */
static int room(char **buf, size_t *cap, size_t n)
{
	char *p;

	if (n <= *cap)
		return 0;
	if (!(p = realloc(*buf, n)))
		return -ENOMEM;
	*buf = p;
	*cap = n;
	return 0;
}

/* The next window's fetch, on a thread of its own. */
static void *next_fetch(void *arg)
{
	struct rb *b = arg;

	b->nret = lf_registry_blob_range(b->r, b->digest, b->noff, b->nlen,
					 b->nbuf, &b->nerr);
	return NULL;
}

static void next_join(struct rb *b)
{
	if (b->th_live)
		pthread_join(b->th, NULL);
	b->th_live = false;
}

/* Start fetching the window after the current one while it is read. */
static void next_start(struct rb *b)
{
	uint64_t at = b->soff + b->slen;

	b->win = b->win < WIN_MAX ? 2 * b->win : WIN_MAX;
	b->nlen = (size_t)(b->size - at < b->win ? b->size - at : b->win);
	b->noff = at;
	memset(&b->nerr, 0, sizeof(b->nerr));
	if (b->nlen && !room(&b->nbuf, &b->ncap, b->nlen) &&
	    !pthread_create(&b->th, NULL, next_fetch, b))
		b->th_live = true;
}

static void stream_reset(struct rb *b)
{
	next_join(b);
	b->slen = 0; /* the stream cannot go on: start again */
	b->soff = 0;
	b->win = 0;
	lf_sha256_free(b->whole);
	lf_sha256_free(b->part);
	b->whole = b->part = NULL;
	b->part_fill = 0;
	free(b->building);
	b->building = NULL;
}

/*
 * The window after the current one, -errno on failure: the one a thread
 * has been fetching meanwhile (double buffering: the network works while
 * the reader inflates), or, the first time, fetched here.
 */
static int stream_next(struct rb *b)
{
	uint64_t at = b->soff + b->slen;
	struct lf_err err = { 0 };
	size_t n;
	int ret;

	if (!b->whole && (lf_sha256_new(&b->whole) || lf_sha256_new(&b->part) ||
			  !(b->building = calloc(b->nspans + 1, HASH))))
		return -ENOMEM;
	if (b->th_live) {
		char *t = b->sbuf;
		size_t c = b->scap;

		next_join(b);
		b->sbuf = b->nbuf;
		b->scap = b->ncap;
		b->nbuf = t;
		b->ncap = c;
		n = b->nlen;
		ret = b->nret;
		err = b->nerr;
	} else {
		b->win = WIN_MIN;
		n = (size_t)(b->size - at < b->win ? b->size - at : b->win);
		ret = room(&b->sbuf, &b->scap, n);
		if (!ret)
			ret = lf_registry_blob_range(b->r, b->digest, at, n,
						     b->sbuf, &err);
	}
	if (ret) {
		if (err.msg[0])
			lf_log_once(&b->logged, LF_LOG_ERR, "%s", err.msg);
		stream_reset(b);
		return ret;
	}
	b->soff = at;
	b->slen = n;
	if (at + n < b->size)
		next_start(b);
	stream_hash(b, b->sbuf, n);
	return at + n == b->size ? stream_end(b) : 0;
}

/* Serve [off, off + len) from the stream window; 1: not there. */
static int window_copy(struct rb *b, void *buf, size_t len, uint64_t off)
{
	if (!b->sbuf || off < b->soff || off + len > b->soff + b->slen)
		return 1;
	memcpy(buf, b->sbuf + (off - b->soff), len);
	return 0;
}

/*
 * Before the sums are known (b->mu held): a forward reader (the one-pass
 * index) is served from the window, which moves on as it reaches its end;
 * those bytes are checked as a whole when the stream ends.  Any other read
 * streams to the end first and is then served by checked spans.
 * 1: the rest is to be read by spans.
 */
static int stream_read(struct rb *b, char *buf, size_t len, uint64_t off)
{
	int ret;

	while (len && !b->sums) {
		uint64_t end = b->soff + b->slen;

		if (off >= b->soff && off < end) {
			size_t n = (size_t)(end - off < len ? end - off : len);

			memcpy(buf, b->sbuf + (off - b->soff), n);
			buf += n;
			off += n;
			len -= n;
			continue;
		}
		if (off != end)
			while (!b->sums)
				if ((ret = stream_next(b)))
					return ret;
		if (!b->sums && (ret = stream_next(b)))
			return ret;
	}
	if (!len || !window_copy(b, buf, len, off))
		return 0;
	return 1;
}

/* ---- spans (once the sums are known) ---- */

static bool busy(const struct rb *b, uint64_t k)
{
	return b->busy[k / 8] & (1u << (k % 8));
}

static void set_busy(struct rb *b, uint64_t k, bool on)
{
	if (on)
		b->busy[k / 8] |= (unsigned char)(1u << (k % 8));
	else
		b->busy[k / 8] &= (unsigned char)~(1u << (k % 8));
}

static void span_path(const struct rb *b, uint64_t k, char *out, size_t size)
{
	snprintf(out, size, "%s/%llx", b->dir, (unsigned long long)k);
}

/* Span k from the disk cache, checked, into the memory LRU: 0. */
static int disk_load(struct rb *b, uint64_t k, char *tmp)
{
	char path[4200];
	size_t len = span_len(b, k);

	if (!b->dir)
		return -1;
	span_path(b, k, path, sizeof(path));
	if (read_exact(path, tmp, len))
		return -1;
	if (!span_ok(b, k, tmp, len)) {
		lf_log(LF_LOG_WARN, "%s: damaged span, fetched again", path);
		unlink(path);
		return -1;
	}
	mem_put(b->id, k, tmp, len);
	return 0;
}

static void disk_store(struct rb *b, uint64_t k, const char *data, size_t len)
{
	char path[4200];

	if (!b->dir || b->max == LF_RBLOB_CACHE_NONE ||
	    !mkdir_quiet(b->cache_root) || !mkdir_quiet(b->dir))
		return;
	span_path(b, k, path, sizeof(path));
	if (!write_file(path, data, len))
		disk_account(b->cache_root, len, b->max);
}

static bool on_disk(const struct rb *b, uint64_t k)
{
	char path[4200];
	struct stat st;

	if (!b->dir)
		return false;
	span_path(b, k, path, sizeof(path));
	return !fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) &&
	       S_ISREG(st.st_mode);
}

static bool mem_has(uint64_t id, uint64_t k)
{
	bool hit = false;
	int i;

	pthread_mutex_lock(&mem.mu);
	for (i = 0; i < MEM_SLOTS && !hit; i++)
		hit = mem.s[i].data && mem.s[i].id == id && mem.s[i].k == k;
	pthread_mutex_unlock(&mem.mu);
	return hit;
}

/*
 * Spans a reader at k is given in one request: 1, or more when it is going
 * forward (the spans before k are here: it read them; readers interleave,
 * so no order is assumed): from the third span in a row on, 2, 4, then
 * LF_RBLOB_READAHEAD.
 */
static uint64_t forward(const struct rb *b, uint64_t k)
{
	uint64_t behind = 0;

	while (behind < 4 && behind < k &&
	       (mem_has(b->id, k - behind - 1) || on_disk(b, k - behind - 1)))
		behind++;
	if (behind >= 4)
		return LF_RBLOB_READAHEAD;
	return behind >= 2 ? (uint64_t)1 << (behind - 1) : 1;
}

static bool missing(const struct rb *b, uint64_t k);

/* How many spans from k (missing) to fetch in one request (b->mu held). */
static uint64_t run_length(const struct rb *b, uint64_t k)
{
	uint64_t n = 1, want = forward(b, k);

	while (n < want && k + n < b->nspans && missing(b, k + n))
		n++;
	return n;
}

/* Fetch spans [k, k + n) (marked busy; b->mu not held), check, keep;
 * quiet: failures are not logged (a hint's: the read will say). */
static int fetch(struct rb *b, uint64_t k, uint64_t n, bool quiet)
{
	uint64_t off = k * SPAN, i;
	size_t len = 0;
	char *buf;
	struct lf_err err = { 0 };
	int ret;

	for (i = 0; i < n; i++)
		len += span_len(b, k + i);
	if (!(buf = malloc(len)))
		return -ENOMEM;
	ret = lf_registry_blob_range(b->r, b->digest, off, len, buf, &err);
	if (ret && !quiet)
		lf_log_once(&b->logged, LF_LOG_ERR, "%s", err.msg);
	for (i = 0; !ret && i < n; i++) {
		const char *p = buf + i * SPAN;
		size_t sl = span_len(b, k + i);

		if (!span_ok(b, k + i, p, sl)) {
			if (quiet) {
				ret = -EIO;
				break;
			}
			lf_log_once(&b->logged, LF_LOG_ERR,
				    "%s@%s: bytes %llu-%llu do not match their "
				    "digest: not used",
				    lf_registry_name(b->r), b->digest,
				    (unsigned long long)(off + i * SPAN),
				    (unsigned long long)(off + i * SPAN + sl -
							 1));
			ret = -EIO;
			break;
		}
		mem_put(b->id, k + i, p, sl);
		disk_store(b, k + i, p, sl);
	}
	free(buf);
	return ret;
}

/* Bytes [at, at + n) of span k into dst. */
static int span_read(struct rb *b, uint64_t k, size_t at, char *dst, size_t n)
{
	char *tmp = NULL;
	int ret = 0;

	if (mem_copy(b->id, k, at, dst, n))
		return 0;
	pthread_mutex_lock(&b->mu);
	for (;;) {
		uint64_t run;

		if (mem_copy(b->id, k, at, dst, n))
			break;
		if (busy(b, k)) {
			pthread_cond_wait(&b->cv, &b->mu);
			continue;
		}
		if (!tmp && !(tmp = malloc(SPAN))) {
			ret = -ENOMEM;
			break;
		}
		if (!disk_load(b, k, tmp))
			continue;
		run = run_length(b, k);
		for (uint64_t i = 0; i < run; i++)
			set_busy(b, k + i, true);
		pthread_mutex_unlock(&b->mu);
		ret = fetch(b, k, run, false);
		pthread_mutex_lock(&b->mu);
		for (uint64_t i = 0; i < run; i++)
			set_busy(b, k + i, false);
		pthread_cond_broadcast(&b->cv);
		if (ret)
			break;
	}
	pthread_mutex_unlock(&b->mu);
	free(tmp);
	return ret;
}

/* The span digests from the cache, the first time they are needed. */
static void sums_once(struct rb *b)
{
	if (!b->sums && !b->tried_sums && b->sums_path) {
		b->tried_sums = true;
		sums_load(b);
	}
}

/* Spans neither in memory nor on disk nor being fetched: k is one. */
static bool missing(const struct rb *b, uint64_t k)
{
	return !busy(b, k) && !mem_has(b->id, k) && !on_disk(b, k);
}

/*
 * A reader is about to read [off, off + len) in pieces (the gzip source:
 * one checkpoint span's compressed bytes): fetch the missing spans of it in
 * one request per run, at most LF_RBLOB_ADVISE spans.
 */
static void rb_advise(void *ctx, uint64_t off, uint64_t len)
{
	struct rb *b = ctx;
	uint64_t k, last, n;

	if (!len)
		return;
	pthread_mutex_lock(&b->mu);
	sums_once(b);
	if (!b->sums || b->bad ||
	    (b->sbuf && off >= b->soff && off + len <= b->soff + b->slen)) {
		pthread_mutex_unlock(&b->mu);
		return;
	}
	k = off / SPAN;
	last = (off + len - 1) / SPAN;
	if (last >= b->nspans)
		last = b->nspans - 1;
	if (last - k >= LF_RBLOB_ADVISE)
		last = k + LF_RBLOB_ADVISE - 1;
	while (k <= last) {
		if (!missing(b, k)) {
			k++;
			continue;
		}
		for (n = 1; k + n <= last && missing(b, k + n); n++)
			;
		/* a reader going forward: more after what it will read */
		if (k + n > last)
			for (uint64_t e = forward(b, k);
			     e > 1 && k + n < b->nspans && missing(b, k + n);
			     e--)
				n++;
		for (uint64_t i = 0; i < n; i++)
			set_busy(b, k + i, true);
		pthread_mutex_unlock(&b->mu);
		fetch(b, k, n, true);
		pthread_mutex_lock(&b->mu);
		for (uint64_t i = 0; i < n; i++)
			set_busy(b, k + i, false);
		pthread_cond_broadcast(&b->cv);
		k += n;
	}
	pthread_mutex_unlock(&b->mu);
}

static ssize_t rb_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct rb *b = ctx;
	char *p = buf;
	size_t done = 0;
	int ret = 0;

	if (off >= b->size)
		return 0;
	if (len > b->size - off)
		len = (size_t)(b->size - off);
	if (!len)
		return 0;
	pthread_mutex_lock(&b->mu);
	sums_once(b);
	if (b->bad)
		ret = -EIO;
	else if (!b->sums)
		ret = stream_read(b, p, len, off);
	else if (!window_copy(b, p, len, off))
		ret = 0;
	else {
		free(b->sbuf); /* past the stream's last window */
		b->sbuf = NULL;
		b->slen = 0;
		ret = 1;
	}
	pthread_mutex_unlock(&b->mu);
	if (ret <= 0)
		return ret ? ret : (ssize_t)len;
	while (done < len) {
		uint64_t at = off + done, k = at / SPAN;
		size_t in = (size_t)(at - k * SPAN);
		size_t n = span_len(b, k) - in;

		if (n > len - done)
			n = len - done;
		if ((ret = span_read(b, k, in, p + done, n)))
			return ret;
		done += n;
	}
	return (ssize_t)len;
}

/* ---- life cycle ---- */

static void rb_ref(void *ctx)
{
	atomic_fetch_add(&((struct rb *)ctx)->refs, 1);
}

static void rb_unref(void *ctx)
{
	struct rb *b = ctx;

	if (atomic_fetch_sub(&b->refs, 1) != 1)
		return;
	next_join(b);
	mem_forget(b->id);
	lf_registry_close(b->r);
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->cv);
	lf_sha256_free(b->whole);
	lf_sha256_free(b->part);
	free(b->building);
	free(b->sums);
	free(b->busy);
	free(b->sbuf);
	free(b->nbuf);
	free(b->dir);
	free(b->sums_path);
	free(b->cache_root);
	free(b);
}

static const struct lf_vfile_ops rb_ops = {
	.pread = rb_pread,
	.ref = rb_ref,
	.unref = rb_unref,
	.check = NULL,
	.advise = rb_advise,
};

ssize_t lf_rblob_pread_raw(const struct lf_vfile *vf, void *buf, size_t len,
			   uint64_t off)
{
	void *ctx = NULL;
	struct lf_err err;
	struct rb *b;
	int ret;

	if (lf_vfile_backend(vf, &ctx) != &rb_ops)
		return lf_vfile_pread(vf, buf, len, off);
	b = ctx;
	if (off >= b->size)
		return 0;
	len = (size_t)LF_MIN((uint64_t)len, b->size - off);
	ret = lf_registry_blob_range(b->r, b->digest, off, len, buf, &err);
	if (ret) {
		lf_log(LF_LOG_WARN, "%s", err.msg);
		return ret;
	}
	return (ssize_t)len;
}

static int set_paths(struct rb *b, const char *cache_dir)
{
	size_t n = strlen(cache_dir) + 80;

	if (!(b->cache_root = malloc(n)) || !(b->dir = malloc(n)) ||
	    !(b->sums_path = malloc(n)))
		return -ENOMEM;
	snprintf(b->cache_root, n, "%s/spans", cache_dir);
	snprintf(b->dir, n, "%s/spans/%s", cache_dir, b->hex);
	snprintf(b->sums_path, n, "%s/spans/%s.sums", cache_dir, b->hex);
	return 0;
}

int lf_rblob_open(struct lf_registry *r, const char *digest, uint64_t size,
		  const struct lf_rblob_opts *o, struct lf_vfile **out,
		  struct lf_err *err)
{
	struct rb *b;
	char name[1024];
	int ret;

	if (strncmp(digest, "sha256:", 7) || strlen(digest) != 71)
		return lf_err_set(err, -EINVAL,
				  "%s: blob %s: only sha256 digests can be "
				  "read by spans",
				  lf_registry_name(r), digest);
	if (size > LF_RBLOB_MAX_SIZE)
		return lf_err_set(err, -EFBIG,
				  "%s: blob %s: %llu bytes, more than layerfs "
				  "reads from a registry (%llu)",
				  lf_registry_name(r), digest,
				  (unsigned long long)size,
				  (unsigned long long)LF_RBLOB_MAX_SIZE);
	if (!(b = calloc(1, sizeof(*b))))
		return lf_err_set(err, -ENOMEM, "out of memory");
	snprintf(b->digest, sizeof(b->digest), "%s", digest);
	b->hex = b->digest + 7;
	b->size = size;
	b->nspans = (size + SPAN - 1) / SPAN;
	b->id = atomic_fetch_add(&next_id, 1);
	b->max = o && o->cache_max ? o->cache_max : LF_RBLOB_CACHE_DEFAULT;
	b->r = lf_registry_ref(r);
	atomic_init(&b->refs, 1);
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);
	if (!(b->busy = calloc(b->nspans / 8 + 1, 1)) ||
	    (o && o->cache_dir && set_paths(b, o->cache_dir))) {
		rb_unref(b);
		return lf_err_set(err, -ENOMEM, "out of memory");
	}
	snprintf(name, sizeof(name), "%s@%s", lf_registry_name(r), digest);
	ret = lf_vfile_from_ops(&rb_ops, b, size, name, out);
	if (ret)
		return lf_err_set(err, ret, "out of memory");
	return 0;
}

/* ---- span digests for index artifacts ---- */

int lf_rblob_sums(struct lf_vfile *f, struct lf_buf *out, struct lf_err *err)
{
	const size_t chunk = 4u << 20;
	unsigned char *p = NULL;
	uint64_t off = 0;
	char *buf = NULL;
	size_t len = 0;
	bool known;
	void *ctx;
	struct rb *b;

	if (lf_vfile_backend(f, &ctx) != &rb_ops)
		return lf_err_set(err, -EINVAL, "%s: not a registry blob",
				  lf_vfile_name(f));
	b = ctx;
	pthread_mutex_lock(&b->mu);
	sums_once(b);
	known = b->sums != NULL;
	pthread_mutex_unlock(&b->mu);
	/* unknown: stream the blob once, forward (it hashes as it goes) */
	if (!known && !(buf = malloc(chunk)))
		return lf_err_set(err, -ENOMEM, "out of memory");
	while (!known && off < b->size) {
		ssize_t n = lf_vfile_pread(f, buf, chunk, off);

		if (n <= 0) {
			free(buf);
			return lf_err_set(err, n ? (int)n : -EIO, "%s@%s: %s",
					  lf_registry_name(b->r), b->digest,
					  n ? strerror((int)-n) : "short read");
		}
		off += (uint64_t)n;
	}
	free(buf);
	pthread_mutex_lock(&b->mu);
	if (b->sums)
		p = sums_encode(b->size, b->sums, &len);
	pthread_mutex_unlock(&b->mu);
	if (!p)
		return lf_err_set(err, -EIO,
				  "%s@%s: the span digests are not known",
				  lf_registry_name(b->r), b->digest);
	lf_buf_reset(out);
	if (lf_buf_add(out, p, len)) {
		free(p);
		return lf_err_set(err, -ENOMEM, "out of memory");
	}
	free(p);
	return 0;
}

bool lf_rblob_sums_valid(const void *data, size_t len, uint64_t size)
{
	return size <= LF_RBLOB_MAX_SIZE && sums_check(data, len, size);
}

int lf_rblob_sums_install(const char *cache_dir, const char *digest,
			  uint64_t size, const void *data, size_t len,
			  struct lf_err *err)
{
	char root[4096], path[4200];
	int ret;

	if (strncmp(digest, "sha256:", 7) || strlen(digest) != 71)
		return lf_err_set(err, -EINVAL, "blob %s: not a sha256 digest",
				  digest);
	if (size > LF_RBLOB_MAX_SIZE || !sums_check(data, len, size))
		return lf_err_set(err, -EINVAL,
				  "the span digests of %s do not check "
				  "(another size, span or damaged)",
				  digest);
	snprintf(root, sizeof(root), "%s/spans", cache_dir);
	snprintf(path, sizeof(path), "%s/%s.sums", root, digest + 7);
	if (!mkdir_quiet(root))
		return lf_err_set(err, -EIO, "cannot create %s", root);
	if ((ret = write_file(path, data, len)))
		return lf_err_set(err, ret, "%s: %s", path, strerror(-ret));
	return 0;
}

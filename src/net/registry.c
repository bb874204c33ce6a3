// SPDX-License-Identifier: MIT
/* registry.c - manifests and blob ranges from an OCI registry (libcurl). */
#include "layerfs/registry.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "layerfs/log.h"

#define RETRIES 4	      /* after the first try */
#define BACKOFF_MS 200	      /* doubled each retry */
#define CONNECT_TIMEOUT_S 10L /* to connect */
#define STALL_S 30L	      /* below 1 KiB/s this long: an error */
#define ACCEPT_MANIFESTS                                                       \
	"Accept: application/vnd.oci.image.manifest.v1+json, "                 \
	"application/vnd.oci.image.index.v1+json, "                            \
	"application/vnd.docker.distribution.manifest.v2+json, "               \
	"application/vnd.docker.distribution.manifest.list.v2+json"

struct lf_registry {
	char *host, *repo, *name;
	bool tls_verify;
	_Atomic bool plain; /* http:// (the server does not speak TLS) */
	atomic_int refs;
	atomic_uint_fast64_t requests, bytes;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

int lf_registry_open(const char *host, const char *repo,
		     const struct lf_registry_opts *o, struct lf_registry **out,
		     struct lf_err *err)
{
	struct lf_registry *r = calloc(1, sizeof(*r));

	pthread_once(&curl_once, curl_init);
	if (!r || !(r->host = strdup(host)) || !(r->repo = strdup(repo)) ||
	    !(r->name = malloc(strlen(host) + strlen(repo) + 2))) {
		if (r) {
			free(r->host);
			free(r->repo);
		}
		free(r);
		return lf_err_set(err, -ENOMEM, "out of memory");
	}
	sprintf(r->name, "%s/%s", host, repo);
	r->tls_verify = o ? o->tls_verify : true;
	atomic_init(&r->refs, 1);
	*out = r;
	return 0;
}

static void registry_unref(struct lf_registry *r)
{
	if (!r || atomic_fetch_sub(&r->refs, 1) != 1)
		return;
	free(r->host);
	free(r->repo);
	free(r->name);
	free(r);
}

struct lf_registry *lf_registry_ref(struct lf_registry *r)
{
	atomic_fetch_add(&r->refs, 1);
	return r;
}

void lf_registry_close(struct lf_registry *r)
{
	registry_unref(r);
}

const char *lf_registry_name(const struct lf_registry *r)
{
	return r->name;
}

void lf_registry_stats(const struct lf_registry *r, uint64_t *requests,
		       uint64_t *bytes)
{
	*requests = atomic_load(&r->requests);
	*bytes = atomic_load(&r->bytes);
}

/* ---- one request ---- */

/* Where a response body goes: a caller's buffer of exactly `cap` bytes
 * (ranges), or a growing lf_buf of at most `max` bytes. */
struct sink {
	char *dst;
	size_t cap, n;
	struct lf_buf *buf;
	size_t max;
	bool overflow;
	char ctype[256];
	char crange[128];
	char clen[32];
};

static size_t on_body(char *p, size_t size, size_t nmemb, void *ctx)
{
	struct sink *s = ctx;
	size_t len = size * nmemb;

	if (s->dst) {
		if (len > s->cap - s->n) {
			s->overflow = true;
			return 0;
		}
		memcpy(s->dst + s->n, p, len);
	} else {
		if (len > s->max - s->n || lf_buf_add(s->buf, p, len)) {
			s->overflow = true;
			return 0;
		}
	}
	s->n += len;
	return len;
}

/* "Name: value\r\n" into out when the name matches. */
static void header_value(const char *p, size_t len, const char *name, char *out,
			 size_t size)
{
	size_t nl = strlen(name), i;

	if (len <= nl || strncasecmp(p, name, nl))
		return;
	p += nl;
	len -= nl;
	while (len && (*p == ' ' || *p == '\t')) {
		p++;
		len--;
	}
	while (len &&
	       (p[len - 1] == '\r' || p[len - 1] == '\n' || p[len - 1] == ' '))
		len--;
	i = len < size - 1 ? len : size - 1;
	memcpy(out, p, i);
	out[i] = '\0';
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ctx)
{
	struct sink *s = ctx;
	size_t len = size * nmemb;

	/* a redirect's headers come first: the last response's win */
	if (len > 5 && !strncmp(p, "HTTP/", 5)) {
		s->ctype[0] = '\0';
		s->crange[0] = '\0';
		s->clen[0] = '\0';
	}
	header_value(p, len, "Content-Type:", s->ctype, sizeof(s->ctype));
	header_value(p, len, "Content-Range:", s->crange, sizeof(s->crange));
	header_value(p, len, "Content-Length:", s->clen, sizeof(s->clen));
	return len;
}

struct req {
	const char *what;  /* "manifests" or "blobs" */
	const char *ref;   /* tag or digest */
	bool head;	   /* HEAD */
	uint64_t off, len; /* a range when len */
};

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static bool retryable(CURLcode c)
{
	return c == CURLE_RECV_ERROR || c == CURLE_SEND_ERROR ||
	       c == CURLE_PARTIAL_FILE || c == CURLE_GOT_NOTHING ||
	       c == CURLE_OPERATION_TIMEDOUT;
}

static int perform(struct lf_registry *r, const struct req *q, struct sink *s,
		   long *status, char *url, size_t urlsize, CURLcode *cc,
		   bool *plain)
{
	struct curl_slist *hdr = NULL;
	char range[64];
	CURL *c = curl_easy_init();

	if (!c)
		return -ENOMEM;
	*plain = atomic_load(&r->plain);
	snprintf(url, urlsize, "%s://%s/v2/%s/%s/%s", *plain ? "http" : "https",
		 r->host, r->repo, q->what, q->ref);
	if (!strcmp(q->what, "manifests"))
		hdr = curl_slist_append(hdr, ACCEPT_MANIFESTS);
	if (q->len) {
		snprintf(range, sizeof(range), "Range: bytes=%llu-%llu",
			 (unsigned long long)q->off,
			 (unsigned long long)(q->off + q->len - 1));
		hdr = curl_slist_append(hdr, range);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_NOBODY, q->head ? 1L : 0L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, s);
	/* blob GETs may be redirected to storage on another host; no
	 * credentials are ever sent there (none are sent at all yet) */
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(c, CURLOPT_UNRESTRICTED_AUTH, 0L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, STALL_S);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, r->tls_verify ? 1L : 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, r->tls_verify ? 2L : 0L);
	*cc = curl_easy_perform(c);
	*status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(c);
	curl_slist_free_all(hdr);
	atomic_fetch_add(&r->requests, 1);
	atomic_fetch_add(&r->bytes, s->n);
	return 0;
}

/* The request with its retries; s is reset before each try. */
static int request(struct lf_registry *r, const struct req *q, struct sink *s,
		   struct lf_err *err)
{
	char url[2048];
	long status = 0;
	CURLcode cc = CURLE_OK;
	bool plain = false;
	int attempt, ret;

	for (attempt = 0;; attempt++) {
		s->n = 0;
		s->overflow = false;
		s->ctype[0] = s->crange[0] = s->clen[0] = '\0';
		if (s->buf)
			lf_buf_reset(s->buf);
		if ((ret = perform(r, q, s, &status, url, sizeof(url), &cc,
				   &plain)))
			return lf_err_set(err, ret, "out of memory");
		if (cc == CURLE_SSL_CONNECT_ERROR && !r->tls_verify && !plain) {
			/* --tls-verify=false: a server without TLS (another
			 * thread may have found out first) */
			atomic_store(&r->plain, true);
			attempt--;
			continue;
		}
		if (s->overflow)
			return lf_err_set(err, -EFBIG,
					  "%s: the response is larger than "
					  "asked for (%zu bytes at most)",
					  url, s->dst ? s->cap : s->max);
		if (cc == CURLE_OK && status >= 200 && status < 300)
			return 0;
		if (attempt < RETRIES &&
		    (retryable(cc) || status == 429 || status >= 500)) {
			sleep_ms(BACKOFF_MS << attempt);
			continue;
		}
		break;
	}
	if (cc != CURLE_OK)
		return lf_err_set(err, -EIO, "%s: %s", url,
				  curl_easy_strerror(cc));
	if (status == 401 || status == 403)
		return lf_err_set(err, -EACCES,
				  "%s: HTTP %ld: the registry wants "
				  "credentials, which this build does not "
				  "send yet",
				  url, status);
	if (status == 404)
		return lf_err_set(err, -ENOENT, "%s: HTTP 404: not found", url);
	return lf_err_set(err, -EIO, "%s: HTTP %ld", url, status);
}

int lf_registry_manifest(struct lf_registry *r, const char *ref, size_t max,
			 struct lf_buf *body, char **media_type,
			 struct lf_err *err)
{
	struct req q = { "manifests", ref, false, 0, 0 };
	struct sink s = { .buf = body, .max = max };
	int ret = request(r, &q, &s, err);

	if (ret)
		return ret;
	if (lf_buf_addch(body, '\0'))
		return lf_err_set(err, -ENOMEM, "out of memory");
	lf_buf_setlen(body, s.n);
	/* "type; charset=..." */
	s.ctype[strcspn(s.ctype, "; ")] = '\0';
	if (!(*media_type = strdup(s.ctype)))
		return lf_err_set(err, -ENOMEM, "out of memory");
	return 0;
}

int lf_registry_blob_size(struct lf_registry *r, const char *digest,
			  uint64_t *size, struct lf_err *err)
{
	struct req q = { "blobs", digest, true, 0, 0 };
	struct lf_buf none;
	struct sink s = { .buf = &none, .max = 0 };
	char *end;
	int ret;

	lf_buf_init(&none);
	ret = request(r, &q, &s, err);
	lf_buf_release(&none);
	if (ret)
		return ret;
	errno = 0;
	*size = strtoull(s.clen, &end, 10);
	if (!s.clen[0] || *end || errno)
		return lf_err_set(err, -EIO,
				  "%s/blobs/%s: the registry gives no size "
				  "(Content-Length '%s')",
				  r->name, digest, s.clen);
	return 0;
}

/* ---- blobs as vfiles ---- */

struct rblob {
	struct lf_registry *r;
	char *digest;
	atomic_int refs;
};

static void rblob_ref(void *ctx)
{
	atomic_fetch_add(&((struct rblob *)ctx)->refs, 1);
}

static void rblob_unref(void *ctx)
{
	struct rblob *b = ctx;

	if (atomic_fetch_sub(&b->refs, 1) != 1)
		return;
	registry_unref(b->r);
	free(b->digest);
	free(b);
}

/* "bytes A-Z/SIZE" (SIZE may be a star): 0, or -1 when it is not that. */
static int parse_range(const char *s, unsigned long long *a,
		       unsigned long long *z)
{
	char *end;

	if (strncmp(s, "bytes ", 6) || !isdigit((unsigned char)s[6]))
		return -1;
	errno = 0;
	*a = strtoull(s + 6, &end, 10);
	if (errno || *end != '-' || !isdigit((unsigned char)end[1]))
		return -1;
	*z = strtoull(end + 1, &end, 10);
	return errno || *end != '/' ? -1 : 0;
}

int lf_registry_blob_range(struct lf_registry *r, const char *digest,
			   uint64_t off, size_t len, void *buf,
			   struct lf_err *err)
{
	struct req q = { "blobs", digest, false, off, len };
	struct sink s = { .dst = buf, .cap = len };
	unsigned long long a = 0, z = 0;
	int ret;

	if (!len)
		return 0;
	if ((ret = request(r, &q, &s, err)))
		return ret;
	if (s.n != len || parse_range(s.crange, &a, &z) || a != off ||
	    z != off + len - 1)
		return lf_err_set(err, -EIO,
				  "%s/blobs/%s: asked for bytes %llu-%llu, "
				  "got %zu bytes (Content-Range '%s')",
				  r->name, digest, (unsigned long long)off,
				  (unsigned long long)(off + len - 1), s.n,
				  s.crange);
	return 0;
}

/* A range GET; a failure is logged (a reader sees only EIO). */
static ssize_t rblob_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct rblob *b = ctx;
	struct lf_err err = { 0 };
	int ret = lf_registry_blob_range(b->r, b->digest, off, len, buf, &err);

	if (ret) {
		lf_log(LF_LOG_ERR, "%s", err.msg);
		return ret;
	}
	return (ssize_t)len;
}

static const struct lf_vfile_ops rblob_ops = {
	.pread = rblob_pread,
	.ref = rblob_ref,
	.unref = rblob_unref,
	.check = NULL,
};

int lf_registry_blob_vfile(struct lf_registry *r, const char *digest,
			   uint64_t size, struct lf_vfile **out,
			   struct lf_err *err)
{
	struct rblob *b = calloc(1, sizeof(*b));
	char name[1024];
	int ret;

	if (!b || !(b->digest = strdup(digest))) {
		free(b);
		return lf_err_set(err, -ENOMEM, "out of memory");
	}
	b->r = r;
	atomic_fetch_add(&r->refs, 1);
	atomic_init(&b->refs, 1);
	snprintf(name, sizeof(name), "%s@%s", r->name, digest);
	ret = lf_vfile_from_ops(&rblob_ops, b, size, name, out);
	if (ret)
		return lf_err_set(err, ret, "out of memory");
	return 0;
}

// SPDX-License-Identifier: MIT
/* registry.c - manifests and blob ranges from an OCI registry (libcurl). */
#include "layerfs/registry.h"

#include <ctype.h>
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

#include <curl/curl.h>
#include <jansson.h>

#include "layerfs/digest.h"
#include "layerfs/log.h"
#include "net_internal.h"

#define RETRIES 4	      /* after the first try */
#define BACKOFF_MS 200	      /* doubled each retry */
#define CONNECT_TIMEOUT_S 10L /* to connect */
#define STALL_S 30L	      /* below 1 KiB/s this long: an error */
#define BUDGET_MS 60000	      /* all waits of one request's retries */
#define RETRY_AFTER_MAX_S 10  /* a longer Retry-After is cut to this */
#define TOKEN_MAX (1u << 20)  /* a token server's answer */
#define CA_MAX (4u << 20)     /* a CA file */
#define SYSTEM_CAS "/etc/ssl/certs/ca-certificates.crt"
#define IDLE_MAX 8 /* idle handles (kept-alive connections) per registry */
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
	long stall;    /* seconds below 1 KiB/s that end a transfer */
	char *userpwd; /* "USER:PASS" or NULL (a secret) */
	char *user;    /* for messages */
	pthread_mutex_t amu;
	/* idle easy handles: each keeps its connections alive for the next
	 * request (libcurl does not support a connection cache shared by
	 * concurrent threads, so only DNS and TLS sessions are shared) */
	pthread_mutex_t hmu;
	CURL *idle[IDLE_MAX];
	int nidle;
	char *authz;	   /* "Authorization: ..." once a challenge asked */
	struct lf_buf cas; /* CA bundle with --cert-dir's, or empty */
	char *cert, *key;  /* client certificate files, or NULL */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLSH *share; /* DNS and TLS sessions, shared by all handles */
static pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];

static void share_lock(CURL *c, curl_lock_data d, curl_lock_access a, void *u)
{
	(void)c;
	(void)a;
	(void)u;
	pthread_mutex_lock(&share_mu[d]);
}

static void share_unlock(CURL *c, curl_lock_data d, void *u)
{
	(void)c;
	(void)u;
	pthread_mutex_unlock(&share_mu[d]);
}

static void curl_init(void)
{
	int i;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&share_mu[i], NULL);
	if (!(share = curl_share_init()))
		return;
	curl_share_setopt(share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
}

/* Append a file of at most CA_MAX bytes (a regular file: no FIFO hangs). */
static int add_file(struct lf_buf *b, int dirfd, const char *dir,
		    const char *name, struct lf_err *err)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	char buf[65536];
	ssize_t n;
	int ret = 0;

	if (fd < 0)
		return lf_err_set(err, -errno, "%s/%s: %s", dir, name,
				  strerror(errno));
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size > CA_MAX) {
		close(fd);
		return lf_err_set(err, -EINVAL,
				  "%s/%s: not a regular file of at most 4 MiB",
				  dir, name);
	}
	while (!ret && (n = read(fd, buf, sizeof(buf))) > 0)
		ret = lf_buf_add(b, buf, (size_t)n);
	close(fd);
	if (!ret)
		ret = lf_buf_addch(b, '\n');
	return ret ? lf_err_set(err, -ENOMEM, "out of memory") : 0;
}

static bool ends_with(const char *s, const char *end)
{
	size_t n = strlen(s), e = strlen(end);

	return n > e && !strcmp(s + n - e, end);
}

/*
 * A certificate directory as containers-certs.d(5) has it: *.crt are CA
 * certificates (added to the system's), NAME.cert with NAME.key a client
 * certificate.  must: an error when it cannot be read (--cert-dir).
 */
static int read_cert_dir(struct lf_registry *r, const char *dir, bool must,
			 struct lf_err *err)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int ret = 0;

	if (!d)
		return must ? lf_err_set(err, -errno, "--cert-dir %s: %s", dir,
					 strerror(errno))
			    : 0;
	while (!ret && (e = readdir(d))) {
		char key[NAME_MAX + 8];
		struct stat st;

		if (ends_with(e->d_name, ".crt")) {
			if (!r->cas.len && !access(SYSTEM_CAS, R_OK))
				ret = add_file(&r->cas, AT_FDCWD, "",
					       SYSTEM_CAS, err);
			if (!ret)
				ret = add_file(&r->cas, dirfd(d), dir,
					       e->d_name, err);
		} else if (ends_with(e->d_name, ".cert") && !r->cert) {
			snprintf(key, sizeof(key), "%.*s.key",
				 (int)(strlen(e->d_name) - 5), e->d_name);
			if (fstatat(dirfd(d), key, &st, 0) ||
			    !S_ISREG(st.st_mode)) {
				ret = lf_err_set(err, -EINVAL,
						 "%s/%s: no %s beside it", dir,
						 e->d_name, key);
				break;
			}
			if (asprintf(&r->cert, "%s/%s", dir, e->d_name) < 0 ||
			    asprintf(&r->key, "%s/%s", dir, key) < 0)
				ret = lf_err_set(err, -ENOMEM, "out of memory");
		}
	}
	closedir(d);
	return ret;
}

/* --cert-dir, else /etc/containers/certs.d/HOST, /etc/docker/certs.d/HOST. */
static int tls_files(struct lf_registry *r, const char *cert_dir,
		     struct lf_err *err)
{
	char dir[4200];
	int ret;

	if (cert_dir)
		return read_cert_dir(r, cert_dir, true, err);
	snprintf(dir, sizeof(dir), "/etc/containers/certs.d/%s", r->host);
	if ((ret = read_cert_dir(r, dir, false, err)))
		return ret;
	snprintf(dir, sizeof(dir), "/etc/docker/certs.d/%s", r->host);
	return read_cert_dir(r, dir, false, err);
}

static long stall_seconds(void)
{
	const char *v = getenv("LAYERFS_NET_STALL");
	long n = v ? strtol(v, NULL, 10) : 0;

	return n > 0 && n < 3600 ? n : STALL_S;
}

static void registry_unref(struct lf_registry *r);

int lf_registry_open(const char *host, const char *repo,
		     const struct lf_registry_opts *o, struct lf_registry **out,
		     struct lf_err *err)
{
	struct lf_registry *r = calloc(1, sizeof(*r));
	int ret;

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
	r->stall = stall_seconds();
	atomic_init(&r->refs, 1);
	pthread_mutex_init(&r->amu, NULL);
	pthread_mutex_init(&r->hmu, NULL);
	lf_buf_init(&r->cas);
	if ((ret = tls_files(r, o ? o->cert_dir : NULL, err)) ||
	    (ret = lf_net_creds(o ? o->creds : NULL, host, repo, &r->userpwd,
				err))) {
		registry_unref(r);
		return ret;
	}
	if (r->userpwd &&
	    !(r->user = strndup(r->userpwd, strcspn(r->userpwd, ":")))) {
		registry_unref(r);
		return lf_err_set(err, -ENOMEM, "out of memory");
	}
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
	lf_net_free_secret(r->userpwd);
	lf_net_free_secret(r->authz);
	free(r->user);
	free(r->cert);
	free(r->key);
	lf_buf_release(&r->cas);
	while (r->nidle)
		curl_easy_cleanup(r->idle[--r->nidle]);
	pthread_mutex_destroy(&r->amu);
	pthread_mutex_destroy(&r->hmu);
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
	long status; /* of the response being received */
	char ctype[256];
	char crange[128];
	char clen[32];
	char challenge[1024];		 /* WWW-Authenticate */
	char retry[32];			 /* Retry-After */
	char location[2048];		 /* Location (an upload's URL) */
	char subject[LF_DIGEST_LEN + 8]; /* OCI-Subject */
	char errbody[512];		 /* start of an error answer's body */
	size_t errlen;
	struct lf_buf drop; /* a write's answer body, not needed */
};

static size_t on_body(char *p, size_t size, size_t nmemb, void *ctx)
{
	struct sink *s = ctx;
	size_t len = size * nmemb;

	if (s->status < 200 || s->status > 299) {
		/* an error page: not the body asked for; its start may say
		 * why (a registry's {"errors":[...]}) */
		size_t room = sizeof(s->errbody) - 1 - s->errlen;
		size_t k = len < room ? len : room;

		memcpy(s->errbody + s->errlen, p, k);
		s->errlen += k;
		s->errbody[s->errlen] = '\0';
		return len;
	}
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
		const char *sp = memchr(p, ' ', len);

		s->status = sp && (size_t)(sp - p) + 4 <= len
				    ? strtol(sp + 1, NULL, 10)
				    : 0;
		s->ctype[0] = s->crange[0] = s->clen[0] = '\0';
		s->challenge[0] = s->retry[0] = '\0';
		s->location[0] = s->subject[0] = '\0';
	}
	header_value(p, len, "Content-Type:", s->ctype, sizeof(s->ctype));
	header_value(p, len, "Location:", s->location, sizeof(s->location));
	header_value(p, len, "OCI-Subject:", s->subject, sizeof(s->subject));
	header_value(p, len, "Content-Range:", s->crange, sizeof(s->crange));
	header_value(p, len, "Content-Length:", s->clen, sizeof(s->clen));
	header_value(p, len, "WWW-Authenticate:", s->challenge,
		     sizeof(s->challenge));
	header_value(p, len, "Retry-After:", s->retry, sizeof(s->retry));
	return len;
}

struct req {
	const char *what;  /* "manifests", "blobs" or "referrers" */
	const char *ref;   /* tag or digest */
	bool head;	   /* HEAD */
	uint64_t off, len; /* a range when len */
	/* writes: "POST" or "PUT" with a body of blen bytes (may be 0) of
	 * type ctype (or none), to `url` when given (an upload's Location,
	 * absolute) instead of what/ref; never redirected */
	const char *method;
	const char *url;
	const void *body;
	size_t blen;
	const char *ctype;
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

/* What every handle of r shares: TLS, timeouts, the connection pool. */
static void common_opts(struct lf_registry *r, CURL *c, struct sink *s)
{
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	/* a registry, its token server or a redirect cannot send us to
	 * file:, ftp: or anything else */
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, s);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, r->stall);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, r->tls_verify ? 1L : 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, r->tls_verify ? 2L : 0L);
	if (r->cas.len) {
		struct curl_blob blob = { .data = r->cas.data,
					  .len = r->cas.len,
					  .flags = CURL_BLOB_NOCOPY };

		curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob);
	}
	if (r->cert) {
		curl_easy_setopt(c, CURLOPT_SSLCERT, r->cert);
		curl_easy_setopt(c, CURLOPT_SSLKEY, r->key);
	}
	if (share)
		curl_easy_setopt(c, CURLOPT_SHARE, share);
}

/* An idle handle of r (its connections still open), or a new one. */
static CURL *handle_get(struct lf_registry *r)
{
	CURL *c = NULL;

	pthread_mutex_lock(&r->hmu);
	if (r->nidle)
		c = r->idle[--r->nidle];
	pthread_mutex_unlock(&r->hmu);
	return c ? c : curl_easy_init();
}

/* Back to the idle list, options cleared, connections kept. */
static void handle_put(struct lf_registry *r, CURL *c)
{
	curl_easy_reset(c);
	pthread_mutex_lock(&r->hmu);
	if (r->nidle < IDLE_MAX) {
		r->idle[r->nidle++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&r->hmu);
	if (c)
		curl_easy_cleanup(c);
}

static int perform(struct lf_registry *r, const struct req *q, struct sink *s,
		   long *status, char *url, size_t urlsize, CURLcode *cc,
		   bool *plain)
{
	struct curl_slist *hdr = NULL;
	char range[64];
	CURL *c = handle_get(r);

	if (!c)
		return -ENOMEM;
	pthread_mutex_lock(&r->amu);
	if (r->authz)
		hdr = curl_slist_append(hdr, r->authz);
	pthread_mutex_unlock(&r->amu);
	*plain = atomic_load(&r->plain);
	if (q->url)
		snprintf(url, urlsize, "%s", q->url);
	else
		snprintf(url, urlsize, "%s://%s/v2/%s/%s/%s",
			 *plain ? "http" : "https", r->host, r->repo, q->what,
			 q->ref);
	if (!strcmp(q->what, "manifests") && !q->method)
		hdr = curl_slist_append(hdr, ACCEPT_MANIFESTS);
	if (q->len) {
		snprintf(range, sizeof(range), "Range: bytes=%llu-%llu",
			 (unsigned long long)q->off,
			 (unsigned long long)(q->off + q->len - 1));
		hdr = curl_slist_append(hdr, range);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(c, CURLOPT_NOBODY, q->head ? 1L : 0L);
	common_opts(r, c, s);
	if (q->method) {
		char ct[300];

		snprintf(ct, sizeof(ct), "Content-Type: %s",
			 q->ctype ? q->ctype : "application/octet-stream");
		hdr = curl_slist_append(hdr, ct);
		/* no 100-continue round trip before a large body */
		hdr = curl_slist_append(hdr, "Expect:");
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q->method);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, q->blen ? q->body : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)q->blen);
		curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
		goto go;
	}
	/* blob GETs may be redirected to storage on another host: the
	 * Authorization header never goes there (libcurl drops custom
	 * Authorization headers when the host or port changes) */
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(c, CURLOPT_UNRESTRICTED_AUTH, 0L);
go:
	*cc = curl_easy_perform(c);
	*status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	handle_put(r, c);
	curl_slist_free_all(hdr);
	atomic_fetch_add(&r->requests, 1);
	atomic_fetch_add(&r->bytes, s->n);
	return 0;
}

/* The value of key="..." in a challenge's parameters, or "". */
static void challenge_param(const char *ch, const char *key, char *out,
			    size_t size)
{
	size_t kl = strlen(key);
	const char *p = ch;

	out[0] = '\0';
	while ((p = strcasestr(p, key))) {
		if ((p == ch || p[-1] == ' ' || p[-1] == ',') &&
		    !strncmp(p + kl, "=\"", 2)) {
			const char *v = p + kl + 2, *e = strchr(v, '"');
			size_t n = e ? (size_t)(e - v) : 0;

			snprintf(out, size, "%.*s", (int)n, v);
			return;
		}
		p += kl;
	}
}

/* Set r->authz to "Authorization: <scheme> <value>". */
static int set_authz(struct lf_registry *r, const char *scheme,
		     const char *value)
{
	char *a = NULL;

	if (asprintf(&a, "Authorization: %s %s", scheme, value) < 0)
		return -ENOMEM;
	pthread_mutex_lock(&r->amu);
	lf_net_free_secret(r->authz);
	r->authz = a;
	pthread_mutex_unlock(&r->amu);
	return 0;
}

/* GET the token a Bearer challenge points at, with the credentials. */
static int fetch_token(struct lf_registry *r, const char *challenge,
		       const char *url, struct lf_err *err)
{
	char realm[1024], service[256], scope[512], turl[2200];
	struct lf_buf body;
	struct sink s = { .buf = &body, .max = TOKEN_MAX };
	char *es = NULL, *esc = NULL;
	const char *tok;
	CURLcode cc;
	json_t *j;
	CURL *c;
	int ret;

	challenge_param(challenge, "realm", realm, sizeof(realm));
	challenge_param(challenge, "service", service, sizeof(service));
	challenge_param(challenge, "scope", scope, sizeof(scope));
	if (!scope[0])
		snprintf(scope, sizeof(scope), "repository:%s:pull", r->repo);
	if (strncmp(realm, "https://", 8) && strncmp(realm, "http://", 7))
		return lf_err_set(err, -EACCES,
				  "%s: HTTP 401: the token realm '%.200s' is "
				  "not an http(s) URL",
				  url, realm);
	if (!(c = curl_easy_init()))
		return lf_err_set(err, -ENOMEM, "out of memory");
	es = curl_easy_escape(c, service, 0);
	esc = curl_easy_escape(c, scope, 0);
	snprintf(turl, sizeof(turl), "%s%sservice=%s&scope=%s", realm,
		 strchr(realm, '?') ? "&" : "?", es ? es : "", esc ? esc : "");
	curl_free(es);
	curl_free(esc);
	lf_buf_init(&body);
	curl_easy_setopt(c, CURLOPT_URL, turl);
	common_opts(r, c, &s);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
	if (r->userpwd) {
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(c, CURLOPT_USERPWD, r->userpwd);
	}
	cc = curl_easy_perform(c);
	curl_easy_cleanup(c);
	atomic_fetch_add(&r->requests, 1);
	if (cc != CURLE_OK || s.status != 200) {
		lf_buf_release(&body);
		if (cc != CURLE_OK)
			return lf_err_set(err, -EIO, "%s: %s", realm,
					  curl_easy_strerror(cc));
		return lf_err_set(err, -EACCES,
				  "%s: HTTP %ld: no token for %s%s%s", realm,
				  s.status, scope, r->user ? " as " : "",
				  r->user ? r->user : "");
	}
	j = json_loadb(body.len ? body.data : "", body.len, 0, NULL);
	lf_buf_release(&body);
	tok = json_string_value(json_object_get(j, "token"));
	if (!tok || !*tok)
		tok = json_string_value(json_object_get(j, "access_token"));
	ret = tok && *tok && !strpbrk(tok, "\r\n") ? set_authz(r, "Bearer", tok)
						   : -EPROTO;
	json_decref(j);
	if (ret == -EPROTO)
		return lf_err_set(err, -EACCES,
				  "%s: the token server's answer has no token",
				  realm);
	return ret ? lf_err_set(err, ret, "out of memory") : 0;
}

/* Answer a 401's challenge: Basic with the credentials, or a token. */
static int authenticate(struct lf_registry *r, const char *challenge,
			const char *url, struct lf_err *err)
{
	char *b64;
	int ret;

	if (!strncasecmp(challenge, "Bearer ", 7))
		return fetch_token(r, challenge, url, err);
	if (strncasecmp(challenge, "Basic", 5))
		return lf_err_set(err, -EACCES,
				  "%s: HTTP 401: an authentication scheme "
				  "layerfs does not speak ('%.40s')",
				  url, challenge);
	if (!r->userpwd)
		return lf_err_set(err, -EACCES,
				  "%s: HTTP 401: the registry wants "
				  "credentials: give --creds USER[:PASS], or "
				  "log in with podman, skopeo or docker login",
				  url);
	if (!(b64 = lf_net_base64(r->userpwd, strlen(r->userpwd))))
		return lf_err_set(err, -ENOMEM, "out of memory");
	ret = set_authz(r, "Basic", b64);
	lf_net_free_secret(b64);
	return ret ? lf_err_set(err, ret, "out of memory") : 0;
}

/* How long to wait before retry `attempt`: the backoff, or Retry-After. */
static long wait_ms(const struct sink *s, int attempt)
{
	long ms = BACKOFF_MS << attempt;
	char *end;
	long ra;

	if (s->status == 429 && s->retry[0]) {
		ra = strtol(s->retry, &end, 10);
		if (!*end && ra > 0)
			ms = (ra > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S : ra) *
			     1000L;
	}
	return ms;
}

static int fail(struct lf_registry *r, const char *url, long status,
		CURLcode cc, struct lf_err *err)
{
	if (cc != CURLE_OK)
		return lf_err_set(err, -EIO, "%s: %s", url,
				  curl_easy_strerror(cc));
	if (status == 401 && r->user)
		return lf_err_set(err, -EACCES,
				  "%s: HTTP 401: the registry refused the "
				  "credentials of %s",
				  url, r->user);
	if (status == 401)
		return lf_err_set(err, -EACCES,
				  "%s: HTTP 401: the registry wants "
				  "credentials: give --creds USER[:PASS], or "
				  "log in with podman, skopeo or docker login",
				  url);
	if (status == 403)
		return lf_err_set(err, -EACCES,
				  "%s: HTTP 403: access denied%s%s", url,
				  r->user ? " to " : "",
				  r->user ? r->user : "");
	if (status == 404)
		return lf_err_set(err, -ENOENT, "%s: HTTP 404: not found", url);
	return lf_err_set(err, -EIO, "%s: HTTP %ld", url, status);
}

/* A refused write: the registry's own words ({"errors":[{"code":..,
 * "message":..}]}), when it gave some, after the status. */
static void explain(const struct sink *s, struct lf_err *err)
{
	json_t *j = json_loads(s->errbody, 0, NULL);
	json_t *e = json_array_get(json_object_get(j, "errors"), 0);
	const char *code = json_string_value(json_object_get(e, "code"));
	const char *msg = json_string_value(json_object_get(e, "message"));
	size_t n = strlen(err->msg);

	if (code && n < sizeof(err->msg)) {
		snprintf(err->msg + n, sizeof(err->msg) - n, " (%.40s%s%.200s)",
			 code, msg ? ": " : "", msg ? msg : "");
		for (; err->msg[n]; n++) /* the server's bytes: no controls */
			if ((unsigned char)err->msg[n] < 0x20 ||
			    err->msg[n] == 0x7f)
				err->msg[n] = '?';
	}
	json_decref(j);
}

/*
 * The request with its retries (s is reset before each try): a 401 is
 * answered once per request (a token may have expired since), a dropped
 * connection, 429 or 5xx retried RETRIES times, all waits within
 * BUDGET_MS.
 */
static int request(struct lf_registry *r, const struct req *q, struct sink *s,
		   struct lf_err *err)
{
	char url[2048];
	long status = 0, waited = 0, ms;
	CURLcode cc = CURLE_OK;
	bool plain = false, authed = false;
	int attempt, ret;

	for (attempt = 0;; attempt++) {
		s->n = 0;
		s->overflow = false;
		s->status = 0;
		s->ctype[0] = s->crange[0] = s->clen[0] = '\0';
		s->challenge[0] = s->retry[0] = '\0';
		s->location[0] = s->subject[0] = '\0';
		s->errbody[0] = '\0';
		s->errlen = 0;
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
		if (cc == CURLE_OK && status == 401 && !authed) {
			authed = true;
			if ((ret = authenticate(r, s->challenge, url, err)))
				return ret;
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
		ms = wait_ms(s, attempt);
		if (attempt < RETRIES && waited + ms <= BUDGET_MS &&
		    (retryable(cc) || status == 429 || status >= 500)) {
			sleep_ms(ms);
			waited += ms;
			continue;
		}
		break;
	}
	ret = fail(r, url, status, cc, err);
	if (q->method && cc == CURLE_OK)
		explain(s, err);
	return ret;
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

/* ---- blob ranges ---- */

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

/* ---- writes ---- */

#define WRITE_ANSWER_MAX (64u << 10) /* the body of a write's answer */

/* A write request (q->method set) whose answer body is not needed. */
static int write_req(struct lf_registry *r, const struct req *q, struct sink *s,
		     struct lf_err *err)
{
	int ret;

	lf_buf_init(&s->drop);
	s->buf = &s->drop;
	s->max = WRITE_ANSWER_MAX;
	ret = request(r, q, s, err);
	lf_buf_release(&s->drop);
	s->buf = NULL;
	return ret;
}

/* An upload's Location as an absolute URL of r's own host (our credentials
 * go with it), into out. */
static int upload_url(struct lf_registry *r, const char *loc, char *out,
		      size_t size, struct lf_err *err)
{
	const char *scheme = atomic_load(&r->plain) ? "http" : "https";
	size_t hl = strlen(r->host);
	const char *rest = NULL;
	int n;

	if (loc[0] == '/' && loc[1] != '/')
		rest = loc;
	else if (!strncmp(loc, "http://", 7) || !strncmp(loc, "https://", 8)) {
		const char *h = strstr(loc, "//") + 2;

		if (!strncmp(h, r->host, hl) && (h[hl] == '/' || !h[hl]))
			rest = h + hl;
	}
	if (!rest || strpbrk(loc, " \r\n"))
		return lf_err_set(err, -EPROTO,
				  "%s: the registry sent an upload location "
				  "on another host or malformed ('%.200s')",
				  r->name, loc);
	n = snprintf(out, size, "%s://%s%s", scheme, r->host,
		     *rest ? rest : "/");
	if (n < 0 || (size_t)n >= size)
		return lf_err_set(err, -EPROTO,
				  "%s: the upload location is too long",
				  r->name);
	return 0;
}

int lf_registry_blob_put(struct lf_registry *r, const char *digest,
			 const void *data, size_t len, struct lf_err *err)
{
	struct req q = { .what = "blobs", .ref = "uploads/", .method = "POST" };
	struct sink s = { 0 };
	char url[2400];
	uint64_t have;
	int ret;

	if (!lf_registry_blob_size(r, digest, &have, NULL) && have == len)
		return 0; /* already there (a mount by digest is not asked:
			   * the blob is ours to send) */
	if ((ret = write_req(r, &q, &s, err)))
		return lf_err_prefix(err, "uploading %s", digest);
	if (!s.location[0])
		return lf_err_set(err, -EPROTO,
				  "%s: uploading %s: the registry gave no "
				  "upload location",
				  r->name, digest);
	if ((ret = upload_url(r, s.location, url, sizeof(url) - 120, err)))
		return ret;
	/* the digest's ':' escaped, as distribution's clients do */
	snprintf(url + strlen(url), 120, "%sdigest=sha256%%3A%s",
		 strchr(url, '?') ? "&" : "?", digest + 7);
	q = (struct req){ .what = "blobs",
			  .ref = "",
			  .method = "PUT",
			  .url = url,
			  .body = data,
			  .blen = len };
	memset(&s, 0, sizeof(s));
	if ((ret = write_req(r, &q, &s, err)))
		return lf_err_prefix(err, "uploading %s", digest);
	return 0;
}

int lf_registry_manifest_put(struct lf_registry *r, const char *ref,
			     const char *media_type, const void *data,
			     size_t len, bool *subject_seen, struct lf_err *err)
{
	struct req q = { .what = "manifests",
			 .ref = ref,
			 .method = "PUT",
			 .body = data,
			 .blen = len,
			 .ctype = media_type };
	struct sink s = { 0 };
	int ret;

	if ((ret = write_req(r, &q, &s, err)))
		return ret;
	if (subject_seen)
		*subject_seen = s.subject[0] != '\0';
	return 0;
}

int lf_registry_referrers(struct lf_registry *r, const char *digest,
			  const char *artifact_type, size_t max,
			  struct lf_buf *body, struct lf_err *err)
{
	char ref[LF_DIGEST_LEN + 400];
	struct req q = { "referrers", ref, false, 0, 0 };
	struct sink s = { .buf = body, .max = max };
	size_t n;
	int ret;

	n = (size_t)snprintf(ref, sizeof(ref), "%s", digest);
	if (artifact_type) {
		const char *p;

		n += (size_t)snprintf(ref + n, sizeof(ref) - n,
				      "?artifactType=");
		/* unreserved characters as they are, the rest %XX */
		for (p = artifact_type; *p && n + 4 < sizeof(ref); p++)
			n += (size_t)(isalnum((unsigned char)*p) ||
						      strchr("-._~", *p)
					      ? snprintf(ref + n,
							 sizeof(ref) - n, "%c",
							 *p)
					      : snprintf(ref + n,
							 sizeof(ref) - n,
							 "%%%02X",
							 (unsigned char)*p));
	}
	if ((ret = request(r, &q, &s, err)))
		return ret;
	s.ctype[strcspn(s.ctype, "; ")] = '\0';
	if (strcmp(s.ctype, "application/vnd.oci.image.index.v1+json"))
		return lf_err_set(err, -EPROTO,
				  "%s/referrers/%s: not an image index "
				  "(Content-Type '%s')",
				  r->name, digest, s.ctype);
	if (lf_buf_addch(body, '\0'))
		return lf_err_set(err, -ENOMEM, "out of memory");
	lf_buf_setlen(body, s.n);
	return 0;
}

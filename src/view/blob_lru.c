// SPDX-License-Identifier: MIT
/* blob_lru.c - the LRU of decompressed chunks shared by all blobs. */
#include "blob_lru.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#define NBUCKETS 4096

#define PREFETCH_QUEUE 32

struct prefetch_req {
	lf_chunk_fill_fn fill; /* NULL: none (busy: the worker is idle) */
	void *ctx;
	uint64_t id, no;
};

struct lf_chunk_cache {
	pthread_mutex_t lock;
	/* read-ahead worker, all protected by lock */
	pthread_cond_t work, done;
	pthread_t worker;
	bool started, stop;
	struct prefetch_req q[PREFETCH_QUEUE];
	size_t qhead, qlen;
	struct prefetch_req busy;	    /* fill == NULL when idle */
	size_t capacity;		    /* bytes */
	size_t used;			    /* protected by lock */
	struct lf_chunk *head, *tail;	    /* most recent first; lock */
	struct lf_chunk *buckets[NBUCKETS]; /* lock */
	uint64_t next_id;		    /* lock */
	uint64_t hits, misses;		    /* lock */
};

int lf_chunk_cache_new(size_t capacity, struct lf_chunk_cache **out)
{
	struct lf_chunk_cache *cc = calloc(1, sizeof(*cc));

	if (!cc)
		return -ENOMEM;
	pthread_mutex_init(&cc->lock, NULL);
	pthread_cond_init(&cc->work, NULL);
	pthread_cond_init(&cc->done, NULL);
	cc->capacity = capacity;
	cc->next_id = 1;
	*out = cc;
	return 0;
}

static void unlink_lru(struct lf_chunk_cache *cc, struct lf_chunk *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		cc->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		cc->tail = c->prev;
	c->prev = c->next = NULL;
}

static void push_front(struct lf_chunk_cache *cc, struct lf_chunk *c)
{
	c->prev = NULL;
	c->next = cc->head;
	if (cc->head)
		cc->head->prev = c;
	cc->head = c;
	if (!cc->tail)
		cc->tail = c;
}

static size_t bucket(uint64_t id, uint64_t no)
{
	uint64_t h = (id * 0x9e3779b97f4a7c15ull) ^
		     (no * 0xc2b2ae3d27d4eb4full);

	return (size_t)(h >> 52) % NBUCKETS;
}

static void unhash(struct lf_chunk_cache *cc, struct lf_chunk *c)
{
	struct lf_chunk **pp = &cc->buckets[bucket(c->blob_id, c->no)];

	while (*pp && *pp != c)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = c->hnext;
}

void lf_chunk_cache_free(struct lf_chunk_cache *cc)
{
	struct lf_chunk *c, *n;

	if (!cc)
		return;
	if (cc->started) {
		pthread_mutex_lock(&cc->lock);
		cc->stop = true;
		pthread_cond_broadcast(&cc->work);
		pthread_mutex_unlock(&cc->lock);
		pthread_join(cc->worker, NULL);
	}
	pthread_cond_destroy(&cc->work);
	pthread_cond_destroy(&cc->done);
	for (c = cc->head; c; c = n) {
		n = c->next;
		lf_chunk_unref(c);
	}
	pthread_mutex_destroy(&cc->lock);
	free(cc);
}

void lf_chunk_cache_stats(const struct lf_chunk_cache *cc, uint64_t *hits,
			  uint64_t *misses)
{
	struct lf_chunk_cache *m = (struct lf_chunk_cache *)cc;

	pthread_mutex_lock(&m->lock);
	*hits = cc->hits;
	*misses = cc->misses;
	pthread_mutex_unlock(&m->lock);
}

uint64_t lf_chunk_cache_new_id(struct lf_chunk_cache *cc)
{
	uint64_t id;

	pthread_mutex_lock(&cc->lock);
	id = cc->next_id++;
	pthread_mutex_unlock(&cc->lock);
	return id;
}

static struct lf_chunk *find(struct lf_chunk_cache *cc, uint64_t id,
			     uint64_t no)
{
	struct lf_chunk *c = cc->buckets[bucket(id, no)];

	while (c && (c->blob_id != id || c->no != no))
		c = c->hnext;
	return c;
}

struct lf_chunk *lf_chunk_get(struct lf_chunk_cache *cc, uint64_t blob_id,
			      uint64_t no)
{
	struct lf_chunk *c;

	pthread_mutex_lock(&cc->lock);
	c = find(cc, blob_id, no);
	if (c) {
		atomic_fetch_add(&c->refs, 1);
		unlink_lru(cc, c);
		push_front(cc, c);
		cc->hits++;
	} else {
		cc->misses++;
	}
	pthread_mutex_unlock(&cc->lock);
	return c;
}

struct lf_chunk *lf_chunk_put(struct lf_chunk_cache *cc, struct lf_chunk *c)
{
	struct lf_chunk *old, *victim;
	size_t b;

	pthread_mutex_lock(&cc->lock);
	old = find(cc, c->blob_id, c->no);
	if (old) {
		atomic_fetch_add(&old->refs, 1);
		pthread_mutex_unlock(&cc->lock);
		lf_chunk_unref(c);
		return old;
	}
	/* the cache's own reference */
	atomic_fetch_add(&c->refs, 1);
	b = bucket(c->blob_id, c->no);
	c->hnext = cc->buckets[b];
	cc->buckets[b] = c;
	push_front(cc, c);
	cc->used += c->len;
	/* evict least recently used chunks, never the one just added */
	while (cc->used > cc->capacity && cc->tail && cc->tail != c) {
		victim = cc->tail;
		unlink_lru(cc, victim);
		unhash(cc, victim);
		cc->used -= victim->len;
		lf_chunk_unref(victim);
	}
	pthread_mutex_unlock(&cc->lock);
	return c;
}

void lf_chunk_unref(struct lf_chunk *c)
{
	if (c && atomic_fetch_sub(&c->refs, 1) == 1)
		free(c);
}

static void *prefetch_worker(void *arg)
{
	struct lf_chunk_cache *cc = arg;

	pthread_mutex_lock(&cc->lock);
	while (!cc->stop) {
		struct prefetch_req r;

		if (!cc->qlen) {
			pthread_cond_wait(&cc->work, &cc->lock);
			continue;
		}
		r = cc->q[cc->qhead];
		cc->qhead = (cc->qhead + 1) % PREFETCH_QUEUE;
		cc->qlen--;
		cc->busy = r;
		pthread_mutex_unlock(&cc->lock);
		r.fill(r.ctx, r.no);
		pthread_mutex_lock(&cc->lock);
		cc->busy.fill = NULL;
		pthread_cond_broadcast(&cc->done);
	}
	pthread_mutex_unlock(&cc->lock);
	return NULL;
}

void lf_chunk_prefetch(struct lf_chunk_cache *cc, lf_chunk_fill_fn fill,
		       void *ctx, uint64_t blob_id, uint64_t no)
{
	size_t i;

	pthread_mutex_lock(&cc->lock);
	if (!cc->started && !cc->stop) {
		/* a reader that never reads sequentially never pays for it */
		cc->started = !pthread_create(&cc->worker, NULL,
					      prefetch_worker, cc);
	}
	if (!cc->started || cc->qlen == PREFETCH_QUEUE ||
	    find(cc, blob_id, no) ||
	    (cc->busy.fill && cc->busy.id == blob_id && cc->busy.no == no))
		goto out;
	for (i = 0; i < cc->qlen; i++) {
		struct prefetch_req *r =
			&cc->q[(cc->qhead + i) % PREFETCH_QUEUE];

		if (r->id == blob_id && r->no == no)
			goto out;
	}
	cc->q[(cc->qhead + cc->qlen++) % PREFETCH_QUEUE] =
		(struct prefetch_req){ fill, ctx, blob_id, no };
	pthread_cond_signal(&cc->work);
out:
	pthread_mutex_unlock(&cc->lock);
}

void lf_chunk_wait_inflight(struct lf_chunk_cache *cc, uint64_t blob_id,
			    uint64_t no)
{
	pthread_mutex_lock(&cc->lock);
	while (cc->busy.fill && cc->busy.id == blob_id && cc->busy.no == no)
		pthread_cond_wait(&cc->done, &cc->lock);
	pthread_mutex_unlock(&cc->lock);
}

void lf_chunk_forget(struct lf_chunk_cache *cc, uint64_t blob_id)
{
	size_t i, kept = 0;

	pthread_mutex_lock(&cc->lock);
	for (i = 0; i < cc->qlen; i++) {
		struct prefetch_req r = cc->q[(cc->qhead + i) % PREFETCH_QUEUE];

		if (r.id != blob_id)
			cc->q[(cc->qhead + kept++) % PREFETCH_QUEUE] = r;
	}
	cc->qlen = kept;
	while (cc->busy.fill && cc->busy.id == blob_id)
		pthread_cond_wait(&cc->done, &cc->lock);
	pthread_mutex_unlock(&cc->lock);
}

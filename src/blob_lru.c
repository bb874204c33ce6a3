// SPDX-License-Identifier: MIT
/* blob_lru.c - the LRU of decompressed chunks shared by all blobs. */
#include "blob_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#define NBUCKETS 4096

struct lf_chunk_cache {
	pthread_mutex_t lock;
	size_t capacity;		/* bytes */
	size_t used;			/* protected by lock */
	struct lf_chunk *head, *tail;	/* most recent first; lock */
	struct lf_chunk *buckets[NBUCKETS];	/* lock */
	uint64_t next_id;		/* lock */
	uint64_t hits, misses;		/* lock */
};

int lf_chunk_cache_new(size_t capacity, struct lf_chunk_cache **out)
{
	struct lf_chunk_cache *cc = calloc(1, sizeof(*cc));

	if (!cc)
		return -ENOMEM;
	pthread_mutex_init(&cc->lock, NULL);
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
	uint64_t h = (id * 0x9e3779b97f4a7c15ull) ^ (no * 0xc2b2ae3d27d4eb4full);

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

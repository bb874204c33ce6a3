// SPDX-License-Identifier: MIT
/* upper_node.c - the node table: ids, the (parent, name) hash, references,
 * forget, and a node's path in the upper dir. */
#include "upper_internal.h"

#include "layerfs/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#ifdef SYS_openat2
#include <linux/openat2.h>
#endif

bool lf_upper_reserved(const char *name)
{
	return lf_is_whiteout_name(name);
}

static size_t hash_of(uint64_t parent, const char *name)
{
	uint64_t h = 1469598103934665603ull ^ (parent * 0x9e3779b97f4a7c15ull);

	for (; *name; name++) {
		h ^= (unsigned char)*name;
		h *= 1099511628211ull;
	}
	return (size_t)(h ^ (h >> 29)) & (NHASH - 1);
}

struct node *lf_upper_node(struct lf_upper *up, uint64_t id)
{
	if (id == 0 || id >= up->nnodes)
		return NULL;
	return up->nodes[id];
}

int lf_upper_new_node(struct lf_upper *up, struct node *parent,
		      const char *name, struct node **out)
{
	struct node *n = calloc(1, sizeof(*n));

	if (!n || !(n->name = strdup(name))) {
		free(n);
		return -ENOMEM;
	}
	if (up->nfree) {
		/* a freed id: the kernel forgot it, so it may name a new
		 * node (nothing else keeps ids) */
		n->id = up->free_ids[--up->nfree];
		goto placed;
	}
	if (up->nnodes == up->anodes) {
		uint64_t na = up->anodes ? up->anodes * 2 : 1024;
		struct node **p = realloc(up->nodes, na * sizeof(*p));

		if (!p) {
			free(n->name);
			free(n);
			return -ENOMEM;
		}
		up->nodes = p;
		up->anodes = na;
	}
	n->id = up->nnodes++;
placed:
	n->parent = parent;
	if (parent)
		parent->nchild++;
	up->nodes[n->id] = n;
	*out = n;
	return 0;
}

static void hash_add(struct lf_upper *up, struct node *n)
{
	size_t h = hash_of(n->parent ? n->parent->id : 0, n->name);

	n->hnext = up->hash[h];
	up->hash[h] = n;
}

static void hash_del(struct lf_upper *up, struct node *n)
{
	struct node **pp =
		&up->hash[hash_of(n->parent ? n->parent->id : 0, n->name)];

	while (*pp && *pp != n)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = n->hnext;
	n->hnext = NULL;
}

struct node *lf_upper_find_node(struct lf_upper *up, struct node *parent,
				const char *name)
{
	struct node *n = up->hash[hash_of(parent->id, name)];

	for (; n; n = n->hnext)
		if (n->parent == parent && !strcmp(n->name, name))
			return n;
	return NULL;
}

int lf_upper_get_node(struct lf_upper *up, struct node *parent,
		      const char *name, uint64_t lower, struct node **out)
{
	struct node *n = lf_upper_find_node(up, parent, name);
	int ret;

	if (!n) {
		if ((ret = lf_upper_new_node(up, parent, name, &n)))
			return ret;
		hash_add(up, n);
	}
	n->lower = lower;
	n->nlookup++;
	*out = n;
	return 0;
}

int lf_upper_move_node(struct lf_upper *up, struct node *n, struct node *parent,
		       const char *name)
{
	char *nm = strdup(name);

	if (!nm)
		return -ENOMEM;
	hash_del(up, n);
	free(n->name);
	n->name = nm;
	n->parent->nchild--;
	parent->nchild++;
	n->parent = parent;
	hash_add(up, n);
	return 0;
}

/* Nodes freed between two malloc_trim() calls. */
#define TRIM_EVERY 16384

/* Keep a freed id for reuse; when there is no room for it, it is only
 * never used again. */
static void free_id(struct lf_upper *up, uint64_t id)
{
	if (up->nfree == up->afree) {
		size_t na = up->afree ? up->afree * 2 : 1024;
		uint64_t *p = realloc(up->free_ids, na * sizeof(*p));

		if (!p)
			return;
		up->free_ids = p;
		up->afree = na;
	}
	up->free_ids[up->nfree++] = id;
}

/* Free a node nobody refers to (no kernel reference, no child node). */
static void maybe_free(struct lf_upper *up, struct node *n)
{
	/* a node is freed once neither the kernel nor a child refers to it */
	while (n && n->parent && n->nlookup == 0 && n->nchild == 0) {
		struct node *p = n->parent;

		/* deleted nodes stay hashed under "" (mark_deleted) */
		hash_del(up, n);
		p->nchild--;
		lf_upper_fdc_forget(up, n->id);
		up->nodes[n->id] = NULL;
		free_id(up, n->id);
		up->nfreed++;
		free(n->name);
		free(n);
		n = p;
	}
}

void lf_upper_put_node(struct lf_upper *up, struct node *n)
{
	if (n->nlookup)
		n->nlookup--;
	maybe_free(up, n);
}

void lf_upper_forget(struct lf_upper *up, uint64_t id, uint64_t count)
{
	struct node *n;
	bool trim = false;

	pthread_mutex_lock(&up->lock);
	n = lf_upper_node(up, id);
	if (n && n->parent) {
		n->nlookup = count > n->nlookup ? 0 : n->nlookup - count;
		maybe_free(up, n);
	}
	if (up->nfreed >= TRIM_EVERY) {
		up->nfreed = 0;
		trim = true;
	}
	pthread_mutex_unlock(&up->lock);
#ifdef __GLIBC__
	/* the kernel forgot many nodes (a load ended, memory is short):
	 * hand the heap pages they held back, or RSS stays at its peak */
	if (trim)
		malloc_trim(0);
#else
	(void)trim;
#endif
}

/*
 * The nodes from n up to, not including, the root (n first), in a heap array
 * the caller frees: an upper dir made from outside may be of any depth.
 * Deeper than LF_UPPER_MAX_DEPTH is -ENAMETOOLONG: every operation walks the
 * whole path, so depth costs time on each one.
 */
int lf_upper_node_chain(struct node *n, struct node ***out, size_t *depth)
{
	struct node **v = NULL, **p;
	size_t len = 0, cap = 0;

	for (; n && n->parent; n = n->parent) {
		if (len == LF_UPPER_MAX_DEPTH) {
			free(v);
			return -ENAMETOOLONG;
		}
		if (len == cap) {
			cap = cap ? cap * 2 : 64;
			p = realloc(v, cap * sizeof(*v));
			if (!p) {
				free(v);
				return -ENOMEM;
			}
			v = p;
		}
		v[len++] = n;
	}
	*out = v;
	*depth = len;
	return 0;
}

int lf_upper_path(struct node *n, struct lf_buf *out)
{
	struct node **stack;
	size_t depth;
	int ret;

	lf_buf_reset(out);
	if ((ret = lf_upper_node_chain(n, &stack, &depth)))
		return ret;
	while (depth-- && !ret) {
		if (out->len)
			ret = lf_buf_addch(out, '/');
		if (!ret)
			ret = lf_buf_adds(out, stack[depth]->name);
	}
	free(stack);
	return ret ? ret : lf_buf_grow(out, 0);
}

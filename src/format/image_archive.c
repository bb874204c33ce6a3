// SPDX-License-Identifier: MIT
/* image_archive.c - member table of an OCI archive or docker-archive tar. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_internal.h"
#include "layerfs/path.h"
#include "layerfs/tarscan.h"

/* Symlink/hardlink chains between members are followed this far. */
#define LINK_DEPTH 16

enum member_kind { M_FILE, M_SYMLINK, M_HARDLINK };

struct lf_image_member {
	size_t name_off; /* in st->names, while the table is built */
	size_t target_off;
	const char *name;   /* into st->names, once it stops growing */
	const char *target; /* "" unless a link */
	enum member_kind kind;
	uint64_t off, size; /* data range in the archive (files) */
	uint64_t seq;	    /* member number: a later duplicate wins */
};

struct build {
	struct lf_image_store *st;
	size_t cap;
	struct lf_buf norm;
};

static int add_member(struct build *b, const struct lf_tar_entry *e,
		      enum member_kind kind, const char *target)
{
	struct lf_image_store *st = b->st;
	struct lf_image_member *m;

	if (st->nmembers == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 64;
		void *p = realloc(st->members, cap * sizeof(*st->members));

		if (!p)
			return -ENOMEM;
		st->members = p;
		b->cap = cap;
	}
	m = &st->members[st->nmembers];
	m->kind = kind;
	m->off = e->data_offset;
	m->size = e->data_size;
	m->seq = e->index;
	m->name_off = st->names.len;
	if (lf_buf_add(&st->names, b->norm.data, b->norm.len + 1))
		return -ENOMEM;
	m->target_off = st->names.len;
	if (lf_buf_add(&st->names, target, strlen(target) + 1))
		return -ENOMEM;
	st->nmembers++;
	return 0;
}

static int on_member(void *ctx, const struct lf_tar_entry *e,
		     struct lf_err *err)
{
	struct build *b = ctx;
	enum member_kind kind;
	const char *target = "";
	int ret;

	switch (e->type) {
	case LF_TAR_REG:
		/* a sparse member's bytes are not contiguous: not a blob */
		if (e->sparse)
			return 0;
		kind = M_FILE;
		break;
	case LF_TAR_SYMLINK:
		kind = M_SYMLINK;
		target = e->link;
		break;
	case LF_TAR_HARDLINK:
		kind = M_HARDLINK;
		target = e->link;
		break;
	default:
		return 0;
	}
	/* absolute or escaping names can never be looked up: leave them out */
	if (e->path[0] == '/' ||
	    lf_path_normalize(e->path, strlen(e->path), &b->norm))
		return 0;
	ret = add_member(b, e, kind, target);
	if (ret)
		return lf_err_set(err, ret, "out of memory");
	return 0;
}

static int member_cmp(const void *pa, const void *pb)
{
	const struct lf_image_member *a = pa, *b = pb;
	int c = strcmp(a->name, b->name);

	if (c)
		return c;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

int lf_image_store_open_archive(struct lf_image_store *st,
				struct lf_vfile *archive, struct lf_err *err)
{
	struct build b = { .st = st };
	size_t i;
	int ret;

	memset(st, 0, sizeof(*st));
	lf_buf_init(&st->names);
	lf_buf_init(&b.norm);
	ret = lf_tarscan_vfile(archive, on_member, &b, err);
	lf_buf_release(&b.norm);
	if (ret) {
		lf_image_store_release(st);
		return ret;
	}
	/* the string table no longer moves: offsets become pointers */
	for (i = 0; i < st->nmembers; i++) {
		st->members[i].name = st->names.data + st->members[i].name_off;
		st->members[i].target = st->names.data +
					st->members[i].target_off;
	}
	if (st->nmembers)
		qsort(st->members, st->nmembers, sizeof(*st->members),
		      member_cmp);
	st->archive = archive;
	return 0;
}

/* The last member named `name` (tar semantics: a later entry wins). */
static const struct lf_image_member *lookup(const struct lf_image_store *st,
					    const char *name)
{
	size_t lo = 0, hi = st->nmembers;
	const struct lf_image_member *hit = NULL;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, st->members[mid].name);

		if (c < 0) {
			hi = mid;
		} else {
			if (!c)
				hit = &st->members[mid];
			lo = mid + 1;
		}
	}
	return hit;
}

/*
 * Resolve a symlink target against the directory of the link, the way a
 * filesystem would, but refusing to climb above the archive root or to
 * follow an absolute target (skopeo writes "../<diffid>.tar" style links).
 */
static int join_link(const char *link_name, const char *target,
		     struct lf_buf *out)
{
	const char *pos = target, *comp;
	size_t clen;
	int ret;

	if (target[0] == '/' || !target[0])
		return -EINVAL;
	lf_buf_reset(out);
	ret = lf_buf_add(out, link_name, lf_path_dirlen(link_name));
	while (!ret && lf_path_next(&pos, &comp, &clen)) {
		if (clen == 1 && comp[0] == '.')
			continue;
		if (clen == 2 && comp[0] == '.' && comp[1] == '.') {
			if (!out->len)
				return -EINVAL;
			lf_buf_setlen(out, lf_path_dirlen(out->data));
			continue;
		}
		if (out->len)
			ret = lf_buf_addch(out, '/');
		if (!ret)
			ret = lf_buf_add(out, comp, clen);
	}
	return ret;
}

static int resolve(const struct lf_image_store *st, const char *name, int depth,
		   uint64_t *off, uint64_t *size)
{
	const struct lf_image_member *m = lookup(st, name);
	struct lf_buf next;
	int ret;

	if (!m)
		return -ENOENT;
	if (m->kind == M_FILE) {
		*off = m->off;
		*size = m->size;
		return 0;
	}
	if (depth >= LINK_DEPTH)
		return -ELOOP;
	lf_buf_init(&next);
	if (m->kind == M_HARDLINK) {
		/* hardlink targets are archive-relative member names */
		const char *t = m->target;

		ret = t[0] == '/' ? -EINVAL
				  : lf_path_normalize(t, strlen(t), &next);
	} else {
		ret = join_link(m->name, m->target, &next);
	}
	if (!ret)
		ret = resolve(st, next.data, depth + 1, off, size);
	lf_buf_release(&next);
	return ret;
}

int lf_image_archive_find(const struct lf_image_store *st, const char *name,
			  uint64_t *off, uint64_t *size)
{
	struct lf_buf norm;
	int ret;

	if (name[0] == '/')
		return -EINVAL;
	lf_buf_init(&norm);
	ret = lf_path_normalize(name, strlen(name), &norm);
	if (!ret)
		ret = resolve(st, norm.data, 0, off, size);
	lf_buf_release(&norm);
	return ret;
}

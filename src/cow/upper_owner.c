// SPDX-License-Identifier: MIT
/* upper_owner.c - the image owner, mode and type of upper objects that a
 * rootless daemon cannot give host files: kept in an xattr. */
#include "upper_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

/* Parse a decimal or octal field ending at ':' or the end; 0 or -EINVAL. */
static int field(const char **p, const char *end, int base, uint64_t max,
		 uint64_t *out)
{
	uint64_t v = 0;
	const char *s = *p;

	if (s == end || *s == ':')
		return -EINVAL;
	for (; s < end && *s != ':'; s++) {
		unsigned d = (unsigned)(*s - '0');

		if (*s < '0' || d >= (unsigned)base ||
		    v > (max - d) / (unsigned)base)
			return -EINVAL;
		v = v * (unsigned)base + d;
	}
	*p = s < end ? s + 1 : s;
	*out = v;
	return 0;
}

/* A decimal number at *p, before `end` (the value is not NUL-terminated):
 * 0 and *p past it, or -EINVAL. */
static int number(const char **p, const char *end, uint64_t max, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;

	if (s == end || *s < '0' || *s > '9')
		return -EINVAL;
	for (; s < end && *s >= '0' && *s <= '9'; s++) {
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > max)
			return -EINVAL;
	}
	*p = s;
	*out = v;
	return 0;
}

/* "MAJ-MIN" of "char-MAJ-MIN" / "block-MAJ-MIN": the device number. */
static int devnum(const char *s, const char *end, dev_t *rdev)
{
	uint64_t ma, mi;

	if (number(&s, end, 0xfffff, &ma) || s == end || *s++ != '-' ||
	    number(&s, end, 0xfffff, &mi) || s != end)
		return -EINVAL;
	*rdev = makedev((unsigned)ma, (unsigned)mi);
	return 0;
}

static bool is(const char *s, const char *end, const char *word)
{
	size_t n = strlen(word);

	return (size_t)(end - s) == n && !memcmp(s, word, n);
}

int lf_upper_override_apply(const char *val, size_t len, struct stat *st)
{
	const char *p = val, *end = val + len;
	uint64_t uid, gid, mode;
	mode_t type = st->st_mode & S_IFMT;
	dev_t rdev = 0;

	while (end > p && end[-1] == '\0')
		end--;
	if (field(&p, end, 10, UINT32_MAX - 1, &uid) ||
	    field(&p, end, 10, UINT32_MAX - 1, &gid) ||
	    field(&p, end, 8, 07777, &mode))
		return -EINVAL;
	if (p == end && p[-1] == ':')
		return -EINVAL; /* "UID:GID:MODE:" */
	if (p < end && p[-1] == ':') {
		/* the type: the host object is what it says, or a regular
		 * file standing in for a special file */
		bool reg = S_ISREG(st->st_mode);

		if (is(p, end, "file") && reg)
			type = S_IFREG;
		else if (is(p, end, "dir") && S_ISDIR(st->st_mode))
			type = S_IFDIR;
		else if (is(p, end, "pipe") && reg)
			type = S_IFIFO;
		else if (is(p, end, "socket") && reg)
			type = S_IFSOCK;
		else if (end - p > 5 && !memcmp(p, "char-", 5) && reg &&
			 !devnum(p + 5, end, &rdev))
			type = S_IFCHR;
		else if (end - p > 6 && !memcmp(p, "block-", 6) && reg &&
			 !devnum(p + 6, end, &rdev))
			type = S_IFBLK;
		else
			return -EINVAL;
	} else if (p != end) {
		return -EINVAL;
	}
	st->st_uid = (uid_t)uid;
	st->st_gid = (gid_t)gid;
	st->st_mode = type | (mode_t)mode;
	if (type != (S_IFREG) && type != S_IFDIR) {
		st->st_size = 0;
		st->st_blocks = 0;
		st->st_rdev = rdev;
	}
	return 0;
}

int lf_upper_override_format(char *buf, size_t size, const struct stat *st)
{
	const char *t;
	char dev[48] = "";
	int n;

	switch (st->st_mode & S_IFMT) {
	case S_IFREG:
		t = "file";
		break;
	case S_IFDIR:
		t = "dir";
		break;
	case S_IFIFO:
		t = "pipe";
		break;
	case S_IFSOCK:
		t = "socket";
		break;
	case S_IFCHR:
		t = "char";
		break;
	case S_IFBLK:
		t = "block";
		break;
	default:
		return -EINVAL;
	}
	if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode))
		snprintf(dev, sizeof(dev), "-%u-%u", major(st->st_rdev),
			 minor(st->st_rdev));
	n = snprintf(buf, size, "%u:%u:%04o:%s%s", (unsigned)st->st_uid,
		     (unsigned)st->st_gid, (unsigned)(st->st_mode & 07777), t,
		     dev);
	return n < 0 || (size_t)n >= size ? -ERANGE : 0;
}

/* The object `name` of dirfd (NULL name: dirfd itself) as a path the
 * *xattr() calls take without following a final symlink. */
static void proc_path(char *buf, size_t size, int dirfd, const char *name)
{
	if (name)
		snprintf(buf, size, "/proc/self/fd/%d/%s", dirfd, name);
	else
		snprintf(buf, size, "/proc/self/fd/%d", dirfd);
}

void lf_upper_owner_view(struct lf_upper *up, int dirfd, const char *name,
			 struct stat *st)
{
	char path[PATH_MAX + 32], val[128];
	ssize_t len = -1;

	if (S_ISREG(st->st_mode) || S_ISDIR(st->st_mode)) {
		if (name && strlen(name) < PATH_MAX) {
			proc_path(path, sizeof(path), dirfd, name);
			len = lgetxattr(path, LF_UPPER_OVERRIDE_XATTR, val,
					sizeof(val));
		} else if (!name) {
			len = fgetxattr(dirfd, LF_UPPER_OVERRIDE_XATTR, val,
					sizeof(val));
		}
	}
	if (len > 0 && !lf_upper_override_apply(val, (size_t)len, st))
		return;
	/* without a record, what the rootless daemon's user owns is the
	 * --owner's (by default root's) in the image */
	if (up->map_owner) {
		if (st->st_uid == up->host_uid)
			st->st_uid = up->owner_uid;
		if (st->st_gid == up->host_gid)
			st->st_gid = up->owner_gid;
	}
}

int lf_upper_owner_set(struct lf_upper *up, int fd, int dirfd, const char *name,
		       const struct stat *img)
{
	char path[PATH_MAX + 32], val[128];
	int ret;

	(void)up;
	if ((ret = lf_upper_override_format(val, sizeof(val), img)))
		return ret;
	if (fd >= 0)
		ret = fsetxattr(fd, LF_UPPER_OVERRIDE_XATTR, val, strlen(val),
				0);
	else if (!name)
		ret = fsetxattr(dirfd, LF_UPPER_OVERRIDE_XATTR, val,
				strlen(val), 0);
	else if (strlen(name) >= PATH_MAX)
		return -ENAMETOOLONG;
	else {
		proc_path(path, sizeof(path), dirfd, name);
		ret = lsetxattr(path, LF_UPPER_OVERRIDE_XATTR, val, strlen(val),
				0);
	}
	return ret < 0 ? -errno : 0;
}

mode_t lf_upper_host_mode(const struct lf_upper *up, mode_t type, mode_t mode)
{
	/* the rootless daemon must keep reading and writing what it owns
	 * (its xattrs need read and write permission); the image's mode is
	 * in the record */
	if (!up->rootless)
		return mode & 07777;
	return (mode & 07777) | (type == S_IFDIR ? 0700 : 0600);
}

bool lf_upper_is_override(const char *name)
{
	return !strcmp(name, LF_UPPER_OVERRIDE_XATTR);
}

void lf_upper_set_owner(struct lf_upper *up, uid_t uid, gid_t gid)
{
	up->owner_uid = uid;
	up->owner_gid = gid;
}

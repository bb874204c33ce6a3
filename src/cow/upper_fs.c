// SPDX-License-Identifier: MIT
/* upper_fs.c - safe access beneath the upper root: directory fds without
 * following symlinks, opens and chmods that refuse swapped-in files. */
#include "upper_internal.h"

#include "layerfs/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

#ifdef SYS_openat2
/*
 * The path of nodes stack[depth-1] (just below base) .. stack[0] in one
 * openat2(2) that refuses symlinks (and magic links) anywhere and stays
 * beneath base: -ENOSYS where the kernel lacks it (then the caller walks
 * one component at a time).
 */
static int open_beneath(int base, struct node **stack, size_t depth, int *out)
{
	static volatile int missing;
	struct open_how how = {
		.flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
			   RESOLVE_NO_MAGICLINKS,
	};
	char path[PATH_MAX];
	size_t len = 0, l;
	long fd;

	if (missing)
		return -ENOSYS;
	while (depth--) {
		l = strlen(stack[depth]->name);
		if (len + l + 2 > sizeof(path))
			return -ENOSYS; /* too long for one call: walk it */
		memcpy(path + len, stack[depth]->name, l);
		len += l;
		path[len++] = depth ? '/' : '\0';
	}
	fd = syscall(SYS_openat2, base, path, &how, sizeof(how));
	if (fd >= 0) {
		*out = (int)fd;
		return 0;
	}
	if (errno == ENOSYS || errno == E2BIG || errno == EPERM) {
		missing = 1; /* old kernel, or a seccomp filter */
		return -ENOSYS;
	}
	if (errno == EAGAIN || errno == EXDEV)
		return -ENOSYS; /* a rename raced: walk it */
	return errno == ELOOP ? -ENOTDIR : -errno;
}
#else
static int open_beneath(int base, struct node **stack, size_t depth, int *out)
{
	(void)base, (void)stack, (void)depth, (void)out;
	return -ENOSYS;
}
#endif

/* stack[depth-1] .. stack[0] opened from base (an fd of their parent's
 * directory, not consumed): a new O_RDONLY directory fd in *out. */
static int open_below(int base, struct node **stack, size_t depth, int *out)
{
	int fd, ret;

	if (depth && (ret = open_beneath(base, stack, depth, out)) != -ENOSYS)
		return ret;
	/* a new open file description: a dup would share the directory
	 * offset with every other user of the base fd */
	fd = openat(base, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ret = fd < 0 ? -errno : 0;
	/* one component at a time, never through a symlink */
	while (!ret && depth--) {
		int next = openat(fd, stack[depth]->name,
				  O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					  O_NONBLOCK | O_CLOEXEC);
		int e = errno;

		close(fd);
		fd = next;
		if (next < 0)
			ret = e == ELOOP ? -ENOTDIR : -e;
	}
	if (!ret)
		*out = fd;
	return ret;
}

/*
 * The relative path of the node chain (stack[depth-1] first) into rel, as
 * far as PATH_MAX bytes go, and in ends[k] the length of stack[k]'s path
 * (which may pass what rel holds: upper_fdcache.c checks only paths the
 * kernel can name).
 */
static void chain_paths(struct node **stack, size_t depth, char *rel,
			size_t *ends)
{
	size_t len = 0, k = depth;

	while (k--) {
		size_t l = strlen(stack[k]->name);

		if (len) {
			if (len < PATH_MAX)
				rel[len] = '/';
			len++;
		}
		if (len + l <= PATH_MAX)
			memcpy(rel + len, stack[k]->name, l);
		len += l;
		ends[k] = len;
	}
}

int lf_upper_dirfd(struct lf_upper *up, struct node *n, int *out)
{
	struct node **stack;
	size_t depth, k, *ends = NULL;
	char *rel = NULL;
	int base = up->root, ret;

	if ((ret = lf_upper_node_chain(n, &stack, &depth)))
		return ret;
	/* the nearest ancestor (or n) with a cached fd that still is where
	 * its node says: open only what lies below it */
	k = depth;
	if (depth && up->fdc.cap) {
		rel = malloc(PATH_MAX);
		ends = malloc(depth * sizeof(*ends));
		if (!rel || !ends) {
			ret = -ENOMEM;
			goto out;
		}
		chain_paths(stack, depth, rel, ends);
		for (k = 0; k < depth; k++) {
			int fd = lf_upper_fdc_get(up, stack[k]->id, rel,
						  ends[k]);

			if (fd >= 0) {
				base = fd;
				break;
			}
		}
	}
	ret = open_below(base, stack, k, out);
	if (!ret && k)
		lf_upper_fdc_put(up, n->id, *out);
out:
	free(rel);
	free(ends);
	free(stack);
	return ret;
}

/* An O_PATH fd of `name` in dirfd (never followed) and what it is. */
static int path_fd(int dirfd, const char *name, struct stat *st)
{
	int fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

int lf_upper_open_at(int dirfd, const char *name, int flags, int *out)
{
	char proc[32];
	struct stat st, st2;
	int pfd, fd, fl;

	flags &= ~(O_CREAT | O_EXCL | O_NOCTTY | O_PATH | O_TMPFILE);
	if ((pfd = path_fd(dirfd, name, &st)) < 0)
		return pfd;
	/* only files and directories are ever opened through the view: the
	 * kernel handles special files itself, so anything else here was
	 * swapped in from outside (a FIFO would block, a device would run a
	 * driver's open) */
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
		close(pfd);
		return S_ISLNK(st.st_mode) ? -ELOOP : -EIO;
	}
	if ((flags & O_DIRECTORY) && !S_ISDIR(st.st_mode)) {
		close(pfd);
		return -ENOTDIR;
	}
	/* reopen the very inode checked above (no second name lookup) */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
	fd = open(proc, (flags & ~O_NOFOLLOW) | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) /* no /proc: by name, then compare */
		fd = openat(dirfd, name,
			    flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	fl = errno;
	close(pfd);
	if (fd < 0)
		return -fl;
	if (fstat(fd, &st2) < 0 || st2.st_ino != st.st_ino ||
	    st2.st_dev != st.st_dev) {
		close(fd);
		return -EIO;
	}
	/* O_NONBLOCK was only for the open */
	if (!(flags & O_NONBLOCK) &&
	    ((fl = fcntl(fd, F_GETFL)) < 0 ||
	     fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)) {
		fl = errno;
		close(fd);
		return -fl;
	}
	*out = fd;
	return 0;
}

int lf_upper_chmod_at(int dirfd, const char *name, mode_t mode)
{
	char proc[32];
	struct stat st;
	int fd = path_fd(dirfd, name, &st), ret = 0;

	if (fd < 0)
		return fd;
	if (S_ISLNK(st.st_mode)) {
		close(fd);
		return -EOPNOTSUPP; /* symlinks have no mode of their own */
	}
	/* chmod of the O_PATH fd's inode itself, whatever the name is now */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (chmod(proc, mode) < 0)
		ret = errno == ENOENT ? (fchmodat(dirfd, name, mode,
						  AT_SYMLINK_NOFOLLOW) < 0
						 ? -errno
						 : 0)
				      : -errno;
	close(fd);
	return ret;
}

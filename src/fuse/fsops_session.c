// SPDX-License-Identifier: MIT
/* fsops_session.c - mount options, session, multithreaded loop, unmount. */
#include "fsops_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "layerfs/buf.h"
#include "layerfs/log.h"
#include "layerfs/path.h"

extern char **environ;

static bool in_path(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[4096];

	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
	while (*path) {
		size_t n = strcspn(path, ":");

		snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, prog);
		if (access(buf, X_OK) == 0)
			return true;
		path += n + (path[n] == ':');
	}
	return false;
}

/* Everything that makes a mount fail, checked while we can still say why. */
static int check_mountpoint(const char *mnt, struct lf_err *err)
{
	struct stat st, up;
	struct lf_buf parent;
	int ret = 0;

	if (stat(mnt, &st) < 0)
		return lf_err_set(err, -errno, "mountpoint '%s': %s", mnt,
				  strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return lf_err_set(err, -ENOTDIR,
				  "mountpoint '%s' is not a directory", mnt);
	lf_buf_init(&parent);
	if (lf_buf_addf(&parent, "%s/..", mnt))
		return lf_err_set(err, -ENOMEM, "out of memory");
	/* a different device than its parent: something is mounted there */
	if (stat(parent.data, &up) == 0 &&
	    (up.st_dev != st.st_dev || up.st_ino == st.st_ino) &&
	    strcmp(mnt, "/"))
		ret = lf_err_set(err, -EBUSY,
				 "mountpoint '%s' is already a mount point "
				 "(unmount it first: layerfs umount %s)",
				 mnt, mnt);
	lf_buf_release(&parent);
	if (ret)
		return ret;
	if (access("/dev/fuse", R_OK | W_OK) < 0)
		return lf_err_set(err, -errno, "cannot use /dev/fuse: %s%s",
				  strerror(errno),
				  errno == ENOENT   ? " (is the fuse module "
						      "loaded? in a container, "
						      "pass --device /dev/fuse)"
				  : errno == EACCES ? " (it should be mode "
						      "0666, as Debian's udev "
						      "rule makes it)"
						    : "");
	if (geteuid() != 0 && !in_path("fusermount3"))
		return lf_err_set(err, -ENOENT,
				  "fusermount3 not found: install the fuse3 "
				  "package to mount as a normal user");
	return 0;
}

static int build_args(const struct lf_fs_opts *o, struct fuse_args *args,
		      struct lf_buf *opts)
{
	int ret;

	/* nodev (design.md 3.10) and nosuid: an image is data to look at */
	ret = lf_buf_addf(opts, "%snodev,nosuid,subtype=layerfs",
			  o->upper ? "" : "ro,");
	/* design.md 3.11: without allow_other only the mounting user enters, and
	 * may read what the image gives to root; with it, the kernel checks */
	if (!ret && o->allow_other)
		ret = lf_buf_adds(opts, ",allow_other,default_permissions");
	if (!ret)
		ret = lf_buf_addf(opts, ",max_read=%u", LF_FS_MAX_READ);
	if (!ret && o->fsname) {
		/* commas and backslashes would end or escape the option */
		const char *p;

		ret = lf_buf_adds(opts, ",fsname=");
		for (p = o->fsname; !ret && *p; p++) {
			if (*p == ',' || *p == '\\')
				ret = lf_buf_addch(opts, '\\');
			if (!ret)
				ret = lf_buf_addch(opts, *p);
		}
	}
	if (!ret && o->fuse_opts && *o->fuse_opts)
		ret = lf_buf_addf(opts, ",%s", o->fuse_opts);
	if (ret)
		return ret;
	if (fuse_opt_add_arg(args, "layerfs") ||
	    (o->debug && fuse_opt_add_arg(args, "-d")) ||
	    fuse_opt_add_arg(args, "-o") || fuse_opt_add_arg(args, opts->data))
		return -ENOMEM;
	return 0;
}

/* The max_read the session will use: the user's last one, or ours. */
static unsigned int user_max_read(const char *opts)
{
	unsigned int v = LF_FS_MAX_READ;
	const char *p = opts;

	while (p && (p = strstr(p, "max_read="))) {
		if (p == opts || p[-1] == ',')
			v = (unsigned int)strtoul(p + 9, NULL, 10);
		p += 9;
	}
	return v;
}

int lf_fs_mount(const struct lf_stack *stack, const struct lf_fs_opts *opts,
		struct lf_fs **out, struct lf_err *err)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct lf_buf o;
	struct lf_fs *fs;
	int ret;

	if ((ret = check_mountpoint(opts->mountpoint, err)))
		return ret;
	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return lf_err_set(err, -ENOMEM, "out of memory");
	fs->ready_fd = -1;
	fs->stack = stack;
	fs->tree = lf_stack_tree(stack);
	fs->opts = *opts;
	atomic_init(&fs->total_blocks, UINT64_MAX);
	if (opts->all_layers && opts->upper) {
		free(fs);
		return lf_err_set(err, -EINVAL,
				  "--all-layers mounts are read-only: no "
				  "--upper");
	}
	if ((ret = lf_views_init(fs, err))) {
		free(fs);
		return ret;
	}
	fs->max_read = user_max_read(opts->fuse_opts);
	lf_buf_init(&o);
	if (build_args(opts, &args, &o)) {
		ret = lf_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	if (opts->upper)
		umask(0); /* the kernel applied the caller's umask already */
	fs->se = fuse_session_new(&args,
				  opts->upper ? &lf_fsops_rw : &lf_fsops_ro,
				  sizeof(lf_fsops_ro), fs);
	if (!fs->se) {
		ret = lf_err_set(err, -EINVAL,
				 "cannot create a FUSE session "
				 "with options '%s'",
				 o.data);
		goto fail;
	}
	if (fuse_session_mount(fs->se, opts->mountpoint)) {
		ret = lf_err_set(err, -EIO,
				 "cannot mount on '%s' (see the "
				 "message above)",
				 opts->mountpoint);
		goto fail;
	}
	fs->mounted = true;
	fuse_opt_free_args(&args);
	lf_buf_release(&o);
	*out = fs;
	return 0;
fail:
	fuse_opt_free_args(&args);
	lf_buf_release(&o);
	lf_fs_free(fs);
	return ret;
}

/*
 * Where a daemon leaves its pid for `layerfs umount` to wait on, named by
 * its mount's device: /run/layerfs as root, else $XDG_RUNTIME_DIR/layerfs;
 * "" when there is no such place.
 */
static void pid_path(dev_t dev, char *dir, char *out, size_t size)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	out[0] = dir[0] = '\0';
	if (geteuid() == 0)
		snprintf(dir, PATH_MAX, "/run/layerfs");
	else if (xdg && xdg[0] == '/' && strlen(xdg) < PATH_MAX - 16)
		snprintf(dir, PATH_MAX, "%s/layerfs", xdg);
	else
		return;
	snprintf(out, size, "%s/%u:%u.pid", dir, major(dev), minor(dev));
}

/* Leave our pid beside the mount (best effort: umount then only waits
 * less). */
static void write_pid(struct lf_fs *fs)
{
	char type[64], dir[PATH_MAX], tmp[PATH_MAX + 32];
	dev_t dev;
	FILE *f;

	if (lf_fs_mount_type(fs->opts.mountpoint, type, sizeof(type), &dev) ||
	    strcmp(type, "fuse.layerfs"))
		return;
	pid_path(dev, dir, fs->pidfile, sizeof(fs->pidfile));
	if (!fs->pidfile[0] || (mkdir(dir, 0700) && errno != EEXIST)) {
		fs->pidfile[0] = '\0';
		return;
	}
	snprintf(tmp, sizeof(tmp), "%s.%ld", fs->pidfile, (long)getpid());
	f = fopen(tmp, "wex");
	if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) ||
	    rename(tmp, fs->pidfile)) {
		if (f)
			unlink(tmp);
		fs->pidfile[0] = '\0';
	}
}

void lf_fs_ready(struct lf_fs *fs)
{
	int null;

	write_pid(fs);
	if (fs->ready_fd < 0)
		return;
	if (write(fs->ready_fd, "y", 1) != 1) {
		/* the parent is gone: nobody to tell */
	}
	close(fs->ready_fd);
	fs->ready_fd = -1;
	/* from now on nobody reads our terminal output */
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		close(null);
	}
	lf_log_use_syslog();
}

/*
 * Our own daemonize: unlike fuse_daemonize(), the parent waits until the
 * kernel's INIT request has been answered, so a failure during INIT (bad
 * options) still reaches the user's terminal and exit status.
 */
static int detach(struct lf_fs *fs, bool *parent, struct lf_err *err)
{
	int p[2], st;
	ssize_t n;
	pid_t pid;
	char c = 0;

	*parent = false;
	if (pipe2(p, O_CLOEXEC) < 0)
		return lf_err_set(err, -errno, "pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return lf_err_set(err, -errno, "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		close(p[0]);
		fs->ready_fd = p[1];
		setsid();
		if (chdir("/")) {
			/* "/" always exists; nothing useful to do */
		}
		return 0;
	}
	close(p[1]);
	do
		n = read(p[0], &c, 1);
	while (n < 0 && errno == EINTR);
	close(p[0]);
	if (n == 1 && c == 'y') {
		*parent = true;
		fs->mounted = false; /* the child owns the mount now */
		return 0;
	}
	waitpid(pid, &st, 0);
	fs->mounted = false; /* the child unmounted on its way out */
	return lf_err_set(err, -EIO,
			  "the filesystem did not start on '%s' "
			  "(see the messages above)",
			  fs->opts.mountpoint);
}

int lf_fs_run(struct lf_fs *fs, struct lf_err *err)
{
	struct fuse_loop_config *cfg;
	bool parent = false;
	int ret;

	if (!fs->opts.foreground && !fs->opts.debug) {
		if ((ret = detach(fs, &parent, err)) || parent)
			return ret;
	}
	if (fuse_set_signal_handlers(fs->se))
		return lf_err_set(err, -EIO, "cannot set signal handlers");
	cfg = fuse_loop_cfg_create();
	if (!cfg) {
		ret = lf_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	fuse_loop_cfg_set_clone_fd(cfg, 0);
	fuse_loop_cfg_set_idle_threads(cfg, 4);
	fuse_loop_cfg_set_max_threads(cfg, 16);
	ret = fuse_session_loop_mt(fs->se, cfg);
	fuse_loop_cfg_destroy(cfg);
	if (ret < 0)
		lf_err_set(err, ret, "FUSE session failed: %s", strerror(-ret));
	else
		ret = 0;
out:
	fuse_remove_signal_handlers(fs->se);
	fuse_session_unmount(fs->se);
	fs->mounted = false;
	if (fs->pidfile[0])
		unlink(fs->pidfile);
	return ret;
}

void lf_fs_free(struct lf_fs *fs)
{
	if (!fs)
		return;
	if (fs->ready_fd >= 0)
		close(fs->ready_fd);
	if (fs->se) {
		if (fs->mounted)
			fuse_session_unmount(fs->se);
		fuse_session_destroy(fs->se);
	}
	lf_views_free(fs);
	free(fs);
}

/* mountinfo's octal escapes (\040 for a space) undone in place. */
static void unescape(char *s)
{
	char *o = s;

	for (; *s; s++, o++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*o = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 |
				    (s[3] - '0'));
			s += 3;
		} else {
			*o = *s;
		}
	}
	*o = '\0';
}

int lf_fs_mount_type(const char *path, char *type, size_t size, dev_t *dev)
{
	char *a = strdup(path), *b = strdup(path), where[PATH_MAX + 256];
	char parent[PATH_MAX], *line = NULL;
	unsigned maj, min;
	size_t cap = 0;
	FILE *f;

	type[0] = '\0';
	if (!a || !b || !realpath(dirname(a), parent)) {
		free(a);
		free(b);
		return -errno;
	}
	snprintf(where, sizeof(where), "%s/%s",
		 strcmp(parent, "/") ? parent : "", basename(b));
	free(a);
	free(b);
	if (!strcmp(basename(where), ".") || !strcmp(basename(where), ".."))
		return realpath(path, where) ? 0 : -errno;
	if (!(f = fopen("/proc/self/mountinfo", "re")))
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		char *fld[10], *save = NULL, *sep = strstr(line, " - ");
		int n = 0;

		if (!sep)
			continue;
		for (char *t = strtok_r(line, " ", &save); t && n < 5;
		     t = strtok_r(NULL, " ", &save))
			fld[n++] = t;
		if (n < 5)
			continue;
		unescape(fld[4]);
		if (strcmp(fld[4], where))
			continue;
		/* later lines are mounted on top of earlier ones */
		snprintf(type, size, "%.*s", (int)strcspn(sep + 3, " "),
			 sep + 3);
		if (dev) {
			char *end;

			maj = (unsigned)strtoul(fld[2], &end, 10);
			min = *end == ':' ? (unsigned)strtoul(end + 1, NULL, 10)
					  : 0;
			*dev = makedev(maj, min);
		}
	}
	free(line);
	fclose(f);
	return 0;
}

static int unmount(const char *mountpoint, bool lazy, struct lf_err *err);

/* Process pid has /dev/fuse open (a FUSE daemon). */
static bool holds_fuse(long pid)
{
	char path[64], link[PATH_MAX];
	struct dirent *e;
	bool found = false;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
	if (!(d = opendir(path)))
		return false;
	while (!found && (e = readdir(d))) {
		ssize_t n = readlinkat(dirfd(d), e->d_name, link,
				       sizeof(link) - 1);

		if (n > 0) {
			link[n] = '\0';
			found = !strcmp(link, "/dev/fuse");
		}
	}
	closedir(d);
	return found;
}

/* The layerfs daemon serving the mount of device dev, or 0. */
static pid_t daemon_pid(dev_t dev)
{
	char dir[PATH_MAX], path[PATH_MAX + 32], comm[32] = "";
	long pid = 0;
	FILE *f;

	pid_path(dev, dir, path, sizeof(path));
	if (!path[0] || !(f = fopen(path, "re")))
		return 0;
	if (fgets(comm, sizeof(comm), f)) {
		char *end;

		pid = strtol(comm, &end, 10);
		if (*end != '\n' || pid <= 0 || pid > INT32_MAX)
			pid = 0;
	}
	fclose(f);
	comm[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
	if (pid && (f = fopen(path, "re"))) {
		if (!fgets(comm, sizeof(comm), f))
			comm[0] = '\0';
		fclose(f);
	}
	if (strncmp(comm, "layerfs", 7))
		return 0;
	return holds_fuse(pid) ? (pid_t)pid : 0; /* not a stale file's pid */
}

/* Until process pid is gone (or a zombie), at most ten seconds. */
static void wait_gone(pid_t pid)
{
	char path[64], buf[512];
	int i;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	for (i = 0; i < 1000; i++) {
		FILE *f = fopen(path, "re");
		char *p = NULL;

		if (!f)
			return;
		if (fgets(buf, sizeof(buf), f))
			p = strrchr(buf, ')');
		fclose(f);
		if (!p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X')
			return;
		usleep(10000);
	}
}

/*
 * Unmount, then wait until the daemon has exited: a lower directory it held
 * is then free (umount(8) of it right after does not find it busy).
 */
int lf_fs_umount(const char *mountpoint, bool lazy, struct lf_err *err)
{
	char type[64];
	dev_t dev;
	pid_t daemon = 0;
	int ret;

	if (!lazy && !lf_fs_mount_type(mountpoint, type, sizeof(type), &dev) &&
	    !strcmp(type, "fuse.layerfs"))
		daemon = daemon_pid(dev);
	ret = unmount(mountpoint, lazy, err);
	if (!ret && daemon > 0)
		wait_gone(daemon);
	return ret;
}

static int unmount(const char *mountpoint, bool lazy, struct lf_err *err)
{
	char *argv[5];
	pid_t pid;
	int st, i = 0, ret;

	if (geteuid() == 0) {
		if (umount2(mountpoint, lazy ? MNT_DETACH : 0) < 0)
			return lf_err_set(err, -errno,
					  "cannot unmount '%s': %s", mountpoint,
					  strerror(errno));
		return 0;
	}
	argv[i++] = "fusermount3";
	argv[i++] = lazy ? "-uz" : "-u";
	argv[i++] = "--";
	argv[i++] = (char *)mountpoint;
	argv[i] = NULL;
	ret = posix_spawnp(&pid, "fusermount3", NULL, NULL, argv, environ);
	if (ret)
		return lf_err_set(err, -ret, "cannot run fusermount3: %s",
				  strerror(ret));
	if (waitpid(pid, &st, 0) < 0)
		return lf_err_set(err, -errno, "waitpid: %s", strerror(errno));
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		return lf_err_set(err, -EIO,
				  "fusermount3 could not unmount "
				  "'%s'",
				  mountpoint);
	return 0;
}

// SPDX-License-Identifier: MIT
/* common.c - the error record (struct lf_err), a whole write(2), a safe
 * open of our own files. */
#include "layerfs/common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int lf_err_set(struct lf_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return code;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

int lf_err_prefix(struct lf_err *err, const char *fmt, ...)
{
	char head[LF_ERR_MAX], old[LF_ERR_MAX];
	va_list ap;

	if (!err)
		return -EIO;
	if (!err->code)
		err->code = -EIO;
	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	/* truncation is fine: the record holds one bounded line */
	if (snprintf(err->msg, sizeof(err->msg), "%.400s: %.600s", head, old) <
	    0)
		err->msg[0] = '\0';
	return err->code;
}

void lf_err_clear(struct lf_err *err)
{
	if (!err)
		return;
	err->code = 0;
	err->msg[0] = '\0';
}

int lf_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int lf_open_own_file(const char *path, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	int ret;

	if (fd < 0)
		return -errno;
	ret = fstat(fd, st) < 0 ? -errno : S_ISREG(st->st_mode) ? 0 : -EINVAL;
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}

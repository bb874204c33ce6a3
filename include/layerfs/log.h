/* SPDX-License-Identifier: MIT */
/*
 * log.h - the only way layerfs writes diagnostics to stderr.
 *
 * lf_log() prints "layerfs: <message>" at or above the current level.
 * lf_log_once() prints a message only the first time its call site (the
 * `once` flag the caller owns, usually a static) fires: the FUSE daemon uses it
 * so that a corrupt blob is reported once, not once per read.
 *
 * Thread safety: both functions may be called from any thread; the level is
 * set once at start-up by the CLI before threads exist.
 */
#ifndef LAYERFS_LOG_H
#define LAYERFS_LOG_H

#include <stdatomic.h>

#include "layerfs/common.h"

enum lf_log_level {
	LF_LOG_ERR = 0,
	LF_LOG_WARN = 1,
	LF_LOG_INFO = 2,
	LF_LOG_DEBUG = 3,
};

/* Send messages to syslog (daemon facility) instead of stderr: for the
 * detached FUSE daemon, whose stderr is /dev/null. */
void lf_log_use_syslog(void);

/* Messages above `level` are dropped.  Default: LF_LOG_WARN. */
void lf_log_set_level(enum lf_log_level level);
enum lf_log_level lf_log_get_level(void);

void lf_log(enum lf_log_level level, const char *fmt, ...) LF_PRINTF(2, 3);

/* Log only if *once was clear, and set it.  `once` is borrowed. */
void lf_log_once(atomic_bool *once, enum lf_log_level level, const char *fmt,
		 ...) LF_PRINTF(3, 4);

#endif /* LAYERFS_LOG_H */

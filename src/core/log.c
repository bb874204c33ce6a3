// SPDX-License-Identifier: MIT
/* log.c - leveled messages to stderr. */
#include "layerfs/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

/* Set once by the CLI before any thread starts; read-only afterwards. */
static enum lf_log_level log_level = LF_LOG_WARN;
static bool log_syslog;

void lf_log_use_syslog(void)
{
	openlog("layerfs", LOG_PID, LOG_DAEMON);
	log_syslog = true;
}

void lf_log_set_level(enum lf_log_level level)
{
	log_level = level;
}

enum lf_log_level lf_log_get_level(void)
{
	return log_level;
}

static void vlog(enum lf_log_level level, const char *fmt, va_list ap)
{
	char line[2048];

	if (level > log_level)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	if (log_syslog) {
		syslog(level == LF_LOG_ERR ? LOG_ERR : LOG_WARNING, "%s", line);
		return;
	}
	/* one fprintf so lines of concurrent threads do not interleave */
	fprintf(stderr, "layerfs: %s%s\n",
		level == LF_LOG_WARN ? "warning: " : "", line);
}

void lf_log(enum lf_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(level, fmt, ap);
	va_end(ap);
}

void lf_log_once(atomic_bool *once, enum lf_log_level level, const char *fmt,
		 ...)
{
	va_list ap;

	if (atomic_exchange(once, true))
		return;
	va_start(ap, fmt);
	vlog(level, fmt, ap);
	va_end(ap);
}

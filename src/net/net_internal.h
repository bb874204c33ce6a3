/* SPDX-License-Identifier: MIT */
/*
 * net_internal.h - what the net level's files share: the credentials for a
 * registry (auth.c) as the registry client (registry.c) asks for them.
 */
#ifndef LAYERFS_NET_INTERNAL_H
#define LAYERFS_NET_INTERNAL_H

#include "layerfs/common.h"

/*
 * "USER:PASS" for host (and repository repo) into *userpwd (malloc'd), or
 * NULL when there are none: from creds ("USER:PASS", or "USER" and the
 * password asked on the terminal), else the first auth file that has an
 * entry, as containers-auth.json(5) reads them: $REGISTRY_AUTH_FILE alone
 * when set, else $XDG_RUNTIME_DIR/containers/auth.json,
 * $XDG_CONFIG_HOME/containers/auth.json (~/.config), ~/.docker/config.json
 * and ~/.dockercfg.  An unreadable or malformed file is an error naming it.
 */
int lf_net_creds(const char *creds, const char *host, const char *repo,
		 char **userpwd, struct lf_err *err);

/* Base64 of n bytes (malloc'd), or NULL. */
char *lf_net_base64(const char *s, size_t n);

/* Wipe and free a secret. */
void lf_net_free_secret(char *s);

#endif /* LAYERFS_NET_INTERNAL_H */

// SPDX-License-Identifier: MIT
/* cli_mount.c - `layerfs mount`, `layerfs umount`, and mount(8)'s helper form. */
#include "cli_internal.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "layerfs/fsops.h"

static const char mount_help[] =
	"usage: layerfs mount [options] IMAGE MOUNTPOINT\n"
	"       layerfs mount [options] --lower DIR [--lower DIR...] "
	"MOUNTPOINT\n\n"
	"Mount the merged view of IMAGE (or of its layers 1..N) read-only on\n"
	"MOUNTPOINT.  Layers are indexed first (once: the index is cached),\n"
	"then the filesystem is mounted, and only then does layerfs detach\n"
	"into the background, so every error is reported here.\n\n"
	"options:\n"
	"  -f, --foreground     stay in the foreground (Ctrl-C unmounts)\n"
	"  -d, --debug          trace FUSE requests (implies -f)\n"
	"  -o OPT[,OPT...]      mount options: allow_other, and the FUSE "
	"ones;\n"
	"                       also layers=N, ref=NAME:TAG, platform=P,\n"
	"                       cache=DIR, no_verify, origin, all_layers\n"
	"                       (for mount(8) and fstab)\n"
	"      --allow-other    let other users in (permissions are then\n"
	"                       checked as stored in the image)\n"
	"      --all-layers     every prefix at once: MOUNTPOINT/K is the "
	"view\n"
	"                       of layers 1..K, MOUNTPOINT/layer/K layer K's\n"
	"                       own entries (whiteouts as the .wh. files the\n"
	"                       layer holds); read-only; each view is made\n"
	"                       when first entered\n"
	"      --origin         list the read-only xattrs user.layerfs.layer\n"
	"                       (the layer an entry comes from, 1 = bottom;\n"
	"                       \"upper\") and user.layerfs.digest (its blob)\n"
	"                       so that getfattr -d shows them (they are\n"
	"                       always answered by name)\n"
	"      --upper DIR      copy-on-write: changes land in DIR (created "
	"if\n"
	"                       missing; OCI whiteouts), never in the image;\n"
	"                       mount again with the same DIR to continue\n"
	"      --owner UID:GID  as a normal user: the image owner of what is\n"
	"                       created through the mount (default 0:0;\n"
	"                       owners a normal user cannot give host files\n"
	"                       are kept in the user.containers.override_stat\n"
	"                       xattr)\n"
	"      --lower DIR      one more layer above IMAGE (repeatable; the\n"
	"                       first --lower is the top, as in lowerdir=): a\n"
	"                       plain directory (an extracted layer, with OCI\n"
	"                       or overlayfs whiteouts), or another "
	"image\n" CLI_COMMON_HELP_NOJSON
	"\nAs a mount(8) helper (layerfs installed "
	"in /usr/local/bin or /usr/bin,\n"
	"where mount(8) finds it): mount -t fuse.layerfs IMAGE MNT -o "
	"layers=3\n"
	"or in /etc/fstab: IMAGE MNT fuse.layerfs layers=3,allow_other 0 0\n"
	"The overlayfs syntax works too: mount -t fuse.layerfs none MNT\n"
	"-o lowerdir=A:B,upperdir=U,workdir=W (leftmost lowerdir is the top;\n"
	"workdir= is accepted and not needed).  As for the kernel's overlay,\n"
	"the source is a label unless it is an existing path (then an image\n"
	"below the lowerdirs), and a mount by root is allow_other with\n"
	"default_permissions.\n";

static const char umount_help[] =
	"usage: layerfs umount [-z] MOUNTPOINT\n\n"
	"Unmount a layerfs mount (umount(2) as root, else fusermount3 -u).\n"
	"Anything else mounted there is left alone (exit status 1).\n\n"
	"options:\n"
	"  -z, --lazy           detach now, clean up when no longer busy\n"
	"      --help           show this help\n";

/*
 * Options mount(8) passes that are not for FUSE: fstab bookkeeping, and the
 * ones that would undo ro,nodev,nosuid, which layerfs always sets.  The rest
 * (noexec, noatime, sync, max_read=...) goes to libfuse.
 */
static bool ignored_opt(const char *o, size_t len)
{
	static const char *const names[] = {
		"rw",	  "ro",	      "dev",	 "nodev",  "suid",
		"nosuid", "auto",     "noauto",	 "user",   "users",
		"nouser", "defaults", "_netdev", "nofail",
	};
	size_t i;

	if (len > 2 && !strncmp(o, "x-", 2))
		return true;
	for (i = 0; i < LF_ARRAY_SIZE(names); i++)
		if (strlen(names[i]) == len && !strncmp(o, names[i], len))
			return true;
	return false;
}

struct mount_args {
	struct cli_opts o;
	struct lf_fs_opts fo;
	struct lf_buf fuse_opts; /* passed through to FUSE */
	char *owned[64];	 /* the value strings of -o keys */
	size_t nowned;
	const char *upper; /* --upper DIR */
	uid_t owner_uid;   /* --owner */
	gid_t owner_gid;
	const char *lowers[256]; /* --lower, lowerdir= (top first) */
	const char *label;	 /* mount(8)'s source when not an image */
	bool lowerdir_opt;	 /* -o lowerdir=: the overlayfs syntax */
};

static int add_lower(struct mount_args *m, const char *dir)
{
	if (m->o.nlowers == LF_ARRAY_SIZE(m->lowers))
		return cli_usage("mount", "more than %zu lower layers",
				 LF_ARRAY_SIZE(m->lowers));
	m->lowers[m->o.nlowers++] = dir;
	m->o.lowers = m->lowers;
	return CLI_OK;
}

static int take_value(struct mount_args *m, const char *v, size_t len,
		      const char **out)
{
	/* each value its own allocation: later -o options must not move it */
	char *dup;

	if (m->nowned == LF_ARRAY_SIZE(m->owned) || !(dup = strndup(v, len)))
		return -1;
	m->owned[m->nowned++] = dup;
	*out = dup;
	return 0;
}

/* Split -o: our keys become options, mount(8) noise is dropped, the rest
 * goes to FUSE. */
static int parse_o(struct mount_args *m, const char *arg)
{
	const char *p = arg;

	while (*p) {
		size_t len = strcspn(p, ","), kl = strcspn(p, "=,");
		const char *v = p + kl + 1, *val = NULL;
		size_t vl = kl < len ? len - kl - 1 : 0;

#define KEY(k) (kl == strlen(k) && !strncmp(p, k, kl))
		if (KEY("lowerdir") || KEY("upperdir") || KEY("workdir")) {
			char *dup, *tok, *save = NULL;

			if (kl == len || take_value(m, v, vl, &val))
				return cli_usage("mount",
						 "-o %.*s wants a "
						 "value",
						 (int)kl, p);
			if (KEY("upperdir")) {
				m->upper = val;
			} else if (KEY("lowerdir")) {
				m->lowerdir_opt = true;
				/* split in place: the value outlives the mount */
				dup = (char *)val;
				for (tok = strtok_r(dup, ":", &save); tok;
				     tok = strtok_r(NULL, ":", &save))
					if (add_lower(m, tok))
						return CLI_USAGE;
			}
			/* workdir: overlayfs needs it, we do not */
		} else if (KEY("layers") || KEY("ref") || KEY("platform") ||
			   KEY("cache")) {
			if (kl == len || take_value(m, v, vl, &val))
				return cli_usage("mount",
						 "-o %.*s wants a "
						 "value",
						 (int)kl, p);
			if (KEY("ref"))
				m->o.ref = val;
			else if (KEY("platform"))
				m->o.platform = val;
			else if (KEY("cache"))
				m->o.cache = val;
			else if (cli_common_opt(OPT_LAYERS, val, &m->o) < 0)
				return CLI_USAGE;
		} else if (KEY("no_verify")) {
			m->o.no_verify = true;
		} else if (KEY("allow_other")) {
			m->fo.allow_other = true;
		} else if (KEY("origin")) {
			m->fo.origin_xattrs = true;
		} else if (KEY("all_layers")) {
			m->fo.all_layers = true;
		} else if (len && !ignored_opt(p, len)) {
			if ((m->fuse_opts.len &&
			     lf_buf_addch(&m->fuse_opts, ',')) ||
			    lf_buf_add(&m->fuse_opts, p, len))
				return -1;
		}
#undef KEY
		p += len + (p[len] == ',');
	}
	return 0;
}

static int do_mount(struct mount_args *m, const char *image, const char *mnt)
{
	struct lf_stack *ci = NULL;
	struct lf_err err = { 0 };
	struct lf_fs *fs = NULL;
	char *absmnt = NULL;
	size_t i;
	int ret;

	if (m->o.quiet)
		cli_set_progress(false);
	if (m->fo.all_layers && m->upper)
		return cli_usage("mount", "--all-layers mounts are read-only: "
					  "no --upper");
	ret = cli_open(&m->o, image, false, true, &ci);
	for (i = 0; ret == CLI_OK && i < lf_stack_count(ci); i++)
		if (!lf_stack_blob(ci, i, &err)) {
			cli_error("%s: %s", lf_stack_name(ci), err.msg);
			ret = CLI_ERR;
		}
	/* the daemon runs in "/": libfuse must know the mountpoint absolutely */
	absmnt = realpath(mnt, NULL);
	m->fo.mountpoint = absmnt ? absmnt : mnt;
	m->fo.fsname = image ? image : m->label ? m->label : "layerfs";
	m->fo.fuse_opts = m->fuse_opts.len ? m->fuse_opts.data : NULL;
	if (ret == CLI_OK && m->upper &&
	    lf_upper_new(m->upper, ci, &m->fo.upper, &err)) {
		cli_error("%s", err.msg);
		ret = CLI_ERR;
	}
	if (m->fo.upper)
		lf_upper_set_owner(m->fo.upper, m->owner_uid, m->owner_gid);
	if (ret == CLI_OK && lf_fs_mount(ci, &m->fo, &fs, &err)) {
		cli_error("%s", err.msg);
		ret = CLI_ERR;
	}
	if (ret == CLI_OK && lf_fs_run(fs, &err)) {
		cli_error("%s", err.msg);
		ret = CLI_ERR;
	}
	lf_fs_free(fs);
	lf_upper_free(m->fo.upper);
	m->fo.upper = NULL;
	lf_stack_close(ci);
	free(absmnt);
	return ret;
}

/*
 * helper: run by mount(8) as "layerfs SOURCE MNT -o OPTS".  There, with
 * lowerdir= the SOURCE is a label as for the kernel overlayfs ("none",
 * "overlay", the fs name...) unless it names an existing path, which is an
 * image below the lowerdirs.  `layerfs mount` takes only "none" as a label,
 * so a mistyped image path is an error, not an empty mount.
 */
static int mount_main(int argc, char **argv, bool helper)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "foreground", no_argument, NULL, 'f' },
		{ "debug", no_argument, NULL, 'd' },
		{ "allow-other", no_argument, NULL, 'A' },
		{ "upper", required_argument, NULL, 'U' },
		{ "lower", required_argument, NULL, 'L' },
		{ "owner", required_argument, NULL, 'W' },
		{ "origin", no_argument, NULL, 'G' },
		{ "all-layers", no_argument, NULL, 'Y' },
		{ 0, 0, 0, 0 },
	};
	struct mount_args m = { 0 };
	const char *src;
	int c, ret = CLI_OK;

	lf_buf_init(&m.fuse_opts);
	while (ret == CLI_OK &&
	       (c = getopt_long(argc, argv, ":fdo:q", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_HELP:
			fputs(mount_help, stdout);
			goto out;
		case 'f':
			m.fo.foreground = true;
			continue;
		case 'd':
			m.fo.debug = true;
			continue;
		case 'A':
			m.fo.allow_other = true;
			continue;
		case 'G':
			m.fo.origin_xattrs = true;
			continue;
		case 'Y':
			m.fo.all_layers = true;
			continue;
		case 'U':
			m.upper = optarg;
			continue;
		case 'L':
			ret = add_lower(&m, optarg);
			continue;
		case 'W':
			ret = cli_parse_owner("mount", optarg, &m.owner_uid,
					      &m.owner_gid);
			continue;
		case 'o':
			ret = parse_o(&m, optarg);
			if (ret < 0) {
				cli_error("out of memory");
				ret = CLI_ERR;
			}
			continue;
		}
		ret = cli_common_opt(c, optarg, &m.o);
		ret = ret < 0 ? CLI_USAGE
			      : (ret ? CLI_OK
				     : cli_bad_option("mount", c, argv));
	}
	if (ret == CLI_OK && cli_no_json("mount", &m.o))
		ret = CLI_USAGE;
	if (ret != CLI_OK)
		goto out;
	if (argc - optind == 1 && m.o.nlowers) {
		ret = do_mount(&m, NULL, argv[optind]);
		goto out;
	}
	if (argc - optind != 2) {
		ret = cli_usage("mount", "expected IMAGE MOUNTPOINT");
		goto out;
	}
	/* a stand-in for the kernel overlayfs (and fuse-overlayfs) mounted by
	 * root: visible to every user, permissions checked from the modes */
	if (m.lowerdir_opt && geteuid() == 0)
		m.fo.allow_other = true;
	src = argv[optind];
	if (m.o.nlowers &&
	    (!strcmp(src, "none") || (helper && access(src, F_OK) != 0))) {
		m.label = src; /* overlayfs-style: lowerdir= says all */
		src = NULL;
	}
	ret = do_mount(&m, src, argv[optind + 1]);
out:
	lf_buf_release(&m.fuse_opts);
	while (m.nowned)
		free(m.owned[--m.nowned]);
	return ret;
}

int cli_cmd_mount(int argc, char **argv)
{
	return mount_main(argc, argv, false);
}

int cli_mount_helper(int argc, char **argv)
{
	return mount_main(argc, argv, true);
}

int cli_cmd_umount(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "lazy", no_argument, NULL, 'z' },
		{ "help", no_argument, NULL, OPT_HELP },
		{ 0, 0, 0, 0 },
	};
	struct lf_err err = { 0 };
	char type[128];
	bool lazy = false;
	int c;

	while ((c = getopt_long(argc, argv, ":z", longopts, NULL)) != -1) {
		if (c == OPT_HELP) {
			fputs(umount_help, stdout);
			return CLI_OK;
		}
		if (c != 'z')
			return cli_bad_option("umount", c, argv);
		lazy = true;
	}
	if (argc - optind != 1)
		return cli_usage("umount", "expected MOUNTPOINT");
	if (lf_fs_mount_type(argv[optind], type, sizeof(type), NULL) < 0 ||
	    !type[0]) {
		cli_error("'%s': not mounted", argv[optind]);
		return CLI_ERR;
	}
	if (strcmp(type, "fuse.layerfs")) {
		cli_error("'%s' is not a layerfs mount (it is %s): left alone",
			  argv[optind], type);
		return CLI_ERR;
	}
	if (lf_fs_umount(argv[optind], lazy, &err)) {
		cli_error("%s", err.msg);
		return CLI_ERR;
	}
	return CLI_OK;
}

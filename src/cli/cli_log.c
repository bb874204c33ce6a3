// SPDX-License-Identifier: MIT
/* cli_log.c - `layerfs log`: a path's history across the layers. */
#include "cli_internal.h"

#include <getopt.h>
#include <jansson.h>
#include <string.h>

#include "layerfs/pathlog.h"

static const char log_help[] =
	"usage: layerfs log [options] IMAGE PATH\n\n"
	"Every layer that added, changed (saying what: type, mode, owner,\n"
	"content, symlink target, mtime, device), deleted or hid PATH, oldest\n"
	"first, with the layer's digest and the command that made it (the\n"
	"image history's created_by).  A version of a file whose bytes ship "
	"in\n"
	"the image although the final view does not show them (overwritten or\n"
	"deleted later) is marked 'ships hidden', and their total is given.\n\n"
	"options:\n"
	"  -r, --recursive      also everything below PATH\n"
	"      --no-trunc       the whole created_by (else cut to 60 "
	"characters)\n" CLI_COMMON_HELP;

static const char *event_name(enum lf_plog_kind k)
{
	return k == LF_PLOG_ADDED     ? "added"
	       : k == LF_PLOG_CHANGED ? "changed"
				      : "deleted";
}

static const char *const change_names[] = { "type",    "mode",	 "owner",
					    "content", "target", "mtime",
					    "device" };

/* "mode 0644 -> 0600, owner 0:0 -> 33:33, content" into out. */
static void change_text(const struct lf_plog_event *ev, char *out, size_t size)
{
	size_t n = 0, i;

	out[0] = '\0';
	for (i = 0; i < LF_ARRAY_SIZE(change_names); i++) {
		char part[96];

		if (!(ev->changes & (1u << i)))
			continue;
		if ((1u << i) == LF_PLOG_TYPE)
			snprintf(part, sizeof(part), "type %s -> %s",
				 cli_type_name(ev->old_mode),
				 cli_type_name(ev->mode));
		else if ((1u << i) == LF_PLOG_MODE)
			snprintf(part, sizeof(part), "mode %04o -> %04o",
				 ev->old_mode & 07777, ev->mode & 07777);
		else if ((1u << i) == LF_PLOG_OWNER)
			snprintf(part, sizeof(part), "owner %u:%u -> %u:%u",
				 ev->old_uid, ev->old_gid, ev->uid, ev->gid);
		else if ((1u << i) == LF_PLOG_CONTENT)
			snprintf(part, sizeof(part),
				 "content (%llu -> %llu "
				 "bytes)",
				 (unsigned long long)ev->old_size,
				 (unsigned long long)ev->size);
		else
			snprintf(part, sizeof(part), "%s", change_names[i]);
		n += (size_t)snprintf(out + n, n < size ? size - n : 0, "%s%s",
				      n ? ", " : "", part);
		if (n >= size)
			return;
	}
	if (!ev->changes)
		snprintf(out, size, "the same again");
}

static const char *layer_digest(const struct lf_stack *s, size_t k)
{
	const struct lf_image_layer *l = lf_stack_layer(s, k);

	return l && l->digest[0] ? l->digest : NULL;
}

static const char *created_by(const struct lf_stack *s, size_t k)
{
	const struct lf_image_layer *l = lf_stack_layer(s, k);

	return l ? l->created_by : NULL;
}

static void print_text(const struct lf_stack *s, const struct lf_pathlog *l,
		       bool no_trunc)
{
	size_t i, last = (size_t)-1;
	char detail[512];

	for (i = 0; i < l->n; i++) {
		const struct lf_plog_event *ev = &l->ev[i];
		const char *by = created_by(s, ev->layer);
		const char *dg = layer_digest(s, ev->layer);

		if (ev->layer != last) {
			printf("layer %zu  %.19s", ev->layer + 1,
			       dg ? dg : "(directory)");
			if (by) {
				size_t n = strlen(by);

				if (!no_trunc && n > 60)
					printf("  %.59s…", by);
				else
					printf("  %s", by);
			}
			putchar('\n');
			last = ev->layer;
		}
		detail[0] = '\0';
		if (ev->kind == LF_PLOG_CHANGED)
			change_text(ev, detail, sizeof(detail));
		else if (ev->cause)
			snprintf(detail, sizeof(detail), "%s%s%s", ev->cause,
				 ev->cause_path ? " of " : "",
				 ev->cause_path ? ev->cause_path : "");
		printf("  %-8s %-7s %12llu  %s", event_name(ev->kind),
		       cli_type_name(ev->mode), (unsigned long long)ev->size,
		       ev->path);
		if (detail[0])
			printf("  (%s)", detail);
		if (ev->ships_hidden)
			printf("  [ships hidden]");
		putchar('\n');
	}
	if (l->hidden_bytes)
		printf("%llu bytes of versions that are not visible still ship "
		       "in the image\n",
		       (unsigned long long)l->hidden_bytes);
}

static json_t *event_json(const struct lf_stack *s,
			  const struct lf_plog_event *ev)
{
	json_t *o = json_object(), *ch = json_array(), *old = json_null();
	const char *dg = layer_digest(s, ev->layer);
	const char *by = created_by(s, ev->layer);
	size_t i;

	if (!o || !ch)
		goto fail;
	json_object_set_new(o, "layer",
			    json_integer((json_int_t)ev->layer + 1));
	json_object_set_new(o, "layer_digest",
			    dg ? json_string(dg) : json_null());
	json_object_set_new(o, "created_by",
			    by ? json_string(by) : json_null());
	json_object_set_new(o, "event", json_string(event_name(ev->kind)));
	cli_json_name(o, "path", ev->path);
	json_object_set_new(o, "type", json_string(cli_type_name(ev->mode)));
	json_object_set_new(o, "mode", json_integer(ev->mode & 07777));
	json_object_set_new(o, "uid", json_integer(ev->uid));
	json_object_set_new(o, "gid", json_integer(ev->gid));
	json_object_set_new(o, "size", json_integer((json_int_t)ev->size));
	for (i = 0; i < LF_ARRAY_SIZE(change_names); i++)
		if (ev->changes & (1u << i))
			json_array_append_new(ch, json_string(change_names[i]));
	json_object_set_new(o, "changes", ch);
	if (ev->kind == LF_PLOG_CHANGED)
		old = json_pack("{s:s, s:i, s:i, s:i, s:I}", "type",
				cli_type_name(ev->old_mode), "mode",
				(int)(ev->old_mode & 07777), "uid",
				(int)ev->old_uid, "gid", (int)ev->old_gid,
				"size", (json_int_t)ev->old_size);
	json_object_set_new(o, "old", old ? old : json_null());
	json_object_set_new(o, "cause",
			    ev->cause ? json_string(ev->cause) : json_null());
	if (ev->cause_path)
		cli_json_name(o, "cause_path", ev->cause_path);
	else
		json_object_set_new(o, "cause_path", json_null());
	json_object_set_new(o, "ships_hidden", json_boolean(ev->ships_hidden));
	return o;
fail:
	json_decref(o);
	json_decref(ch);
	return NULL;
}

static int print_json(const struct lf_stack *s, const struct lf_pathlog *l,
		      const char *path, bool recursive)
{
	json_t *top = cli_json_top(), *evs = json_array();
	size_t i;
	int ret = 0;

	if (!top || !evs) {
		ret = -1;
		goto out;
	}
	cli_json_name(top, "image", cli_image_path(s));
	cli_json_name(top, "path", path);
	json_object_set_new(top, "recursive", json_boolean(recursive));
	for (i = 0; i < l->n && !ret; i++) {
		json_t *e = event_json(s, &l->ev[i]);

		if (!e || json_array_append_new(evs, e))
			ret = -1;
	}
	json_object_set(top, "events", evs);
	json_object_set_new(top, "hidden_bytes",
			    json_integer((json_int_t)l->hidden_bytes));
	if (!ret && json_dumpf(top, stdout, CLI_JSON_COMPACT))
		ret = -1;
	if (!ret)
		putchar('\n');
out:
	json_decref(evs);
	json_decref(top);
	return ret;
}

int cli_cmd_log(int argc, char **argv)
{
	enum { OPT_NO_TRUNC = 3100 };
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "recursive", no_argument, NULL, 'r' },
		{ "no-trunc", no_argument, NULL, OPT_NO_TRUNC },
		{ 0, 0, 0, 0 },
	};
	struct cli_opts o = { 0 };
	bool recursive = false, no_trunc = false;
	struct lf_err err = { 0 };
	struct lf_pathlog l;
	struct lf_stack *s;
	int c, ret;

	while ((c = getopt_long(argc, argv, ":rq", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_HELP:
			fputs(log_help, stdout);
			return cli_flush(CLI_OK);
		case 'r':
			recursive = true;
			continue;
		case OPT_NO_TRUNC:
			no_trunc = true;
			continue;
		}
		ret = cli_common_opt(c, optarg, &o);
		if (ret < 0)
			return CLI_USAGE;
		if (!ret)
			return cli_bad_option("log", c, argv);
	}
	if (o.quiet)
		cli_set_progress(false);
	if (argc - optind != 2)
		return cli_usage("log", "expected IMAGE PATH");
	if ((ret = cli_open(&o, argv[optind], false, true, &s)))
		return ret;
	if (lf_pathlog(s, argv[optind + 1], recursive, &l, &err)) {
		cli_error("%s: %s", cli_image_path(s), err.msg);
		lf_stack_close(s);
		return CLI_ERR;
	}
	if (o.json)
		ret = print_json(s, &l, argv[optind + 1], recursive) ? CLI_ERR
								     : CLI_OK;
	else
		print_text(s, &l, no_trunc);
	if (ret)
		cli_error("out of memory");
	lf_pathlog_free(&l);
	lf_stack_close(s);
	return cli_flush(ret);
}

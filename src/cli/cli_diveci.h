/* SPDX-License-Identifier: MIT */
/*
 * cli_diveci.h - dive's CI rules for `waste --ci`.
 *
 * The three rules of dive (lowestEfficiency, highestWastedBytes,
 * highestUserWastedPercent), their value forms (a ratio 0..1; bytes as
 * go-humanize's ParseBytes reads them: "20MB" = 20*1000^2, "20 MiB" =
 * 20*1024^2; "disabled"/"off"/"false" for a rule switched off), the
 * `.dive-ci` file (a YAML subset: comments, quotes, `key: value`, a
 * `rules:` mapping; other top-level keys are ignored as dive ignores them)
 * and dive's verdict lines ("  PASS: lowestEfficiency", "Result:PASS
 * [Total:3] ...").  Values are checked when read: an out-of-range or
 * malformed value is an error naming the option or FILE:LINE.
 */
#ifndef LAYERFS_CLI_DIVECI_H
#define LAYERFS_CLI_DIVECI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum { DIVECI_EFF, DIVECI_BYTES, DIVECI_PCT, DIVECI_NRULES };

struct cli_diveci_rule {
	bool set;	/* given (file or command line) */
	bool disabled;	/* "disabled", "off", "false" */
	double ratio;	/* DIVECI_EFF, DIVECI_PCT */
	uint64_t bytes; /* DIVECI_BYTES */
	char text[48];	/* the value as written (dive prints it) */
};

struct cli_diveci {
	struct cli_diveci_rule r[DIVECI_NRULES];
};

/* dive's rule name ("lowestEfficiency"...) */
const char *cli_diveci_name(int rule);

/* dive's defaults: lowestEfficiency 0.9, highestWastedBytes disabled,
 * highestUserWastedPercent 0.1 (set = false). */
void cli_diveci_defaults(struct cli_diveci *c);

/* go-humanize ParseBytes: digits, '.', ',' then an optional unit (b, k,
 * kb, ki, kib ... e, eib; any case, spaces before it).  0 or -EINVAL. */
int cli_diveci_parse_bytes(const char *s, uint64_t *out);

/* Parse `val` for `rule` into *out.  0, or -EINVAL with a reason in why
 * ("is outside the allowed range 0..1 ...", "is not a size ..."). */
int cli_diveci_value(int rule, const char *val, struct cli_diveci_rule *out,
		     char *why, size_t whylen);

/*
 * Read a .dive-ci file: its rules replace those of *c that it names.
 * 0; -ENOENT (file missing, msg says so); -EINVAL with "FILE:LINE: ..." in
 * msg.  Unknown keys under `rules:` are reported on stderr and ignored.
 */
int cli_diveci_load(const char *path, struct cli_diveci *c, char *msg,
		    size_t msglen);

/* One evaluated rule. */
enum { DIVECI_PASS, DIVECI_FAIL, DIVECI_SKIP };
struct cli_diveci_result {
	int status;
	char message[192]; /* dive's message ("" when it passed) */
};

/* Evaluate the rules as dive does; returns true when none failed. */
bool cli_diveci_eval(const struct cli_diveci *c, double efficiency,
		     uint64_t wasted, double user_ratio,
		     struct cli_diveci_result res[DIVECI_NRULES]);

/* dive's "Results:" block: one line per rule in name order, then
 * "Result:PASS [Total:3] [Passed:..] [Failed:..] [Warn:0] [Skipped:..]". */
void cli_diveci_print(FILE *f, const struct cli_diveci_result *res);

/* Go's %v of a float64 (shortest round-trip digits, e-notation below
 * 1e-4 or from 1e6), as dive prints thresholds and values. */
void cli_diveci_gofloat(double v, char *out, size_t len);

#endif /* LAYERFS_CLI_DIVECI_H */

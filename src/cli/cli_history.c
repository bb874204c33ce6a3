// SPDX-License-Identifier: MIT
/* cli_history.c - config history rows for `layers`, docker's CREATED. */
#include "cli_history.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *opt_str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static int add_row(struct cli_history *h, size_t *cap,
		   const struct cli_history_row *r)
{
	if (h->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		void *p = realloc(h->rows, nc * sizeof(*h->rows));

		if (!p)
			return -ENOMEM;
		h->rows = p;
		*cap = nc;
	}
	h->rows[h->n++] = *r;
	return 0;
}

int cli_history_load(const struct lf_image *img, size_t nshown,
		     struct cli_history *h)
{
	size_t len, i, cap = 0, all = lf_image_layer_count(img), k = 0;
	const char *cfg = lf_image_config_json(img, &len);
	const json_t *arr;
	int ret = 0;

	memset(h, 0, sizeof(*h));
	h->root = cfg ? json_loadb(cfg, len, 0, NULL) : NULL;
	arr = json_object_get(h->root, "history");
	for (i = 0; !ret && i < json_array_size(arr); i++) {
		const json_t *e = json_array_get(arr, i);
		struct cli_history_row r = {
			opt_str(e, "created"), opt_str(e, "created_by"),
			opt_str(e, "comment"),
			json_is_true(json_object_get(e, "empty_layer")), -1
		};

		if (!json_is_object(e))
			continue;
		if (!r.empty_layer) {
			if (k >= all)
				break; /* more layer entries than layers */
			if (k >= nshown)
				break;
			r.layer = (long)k++;
		} else if (k >= nshown && nshown < all) {
			break; /* it belongs above the layers shown */
		}
		ret = add_row(h, &cap, &r);
	}
	/* layers the history does not describe */
	for (; !ret && k < nshown; k++) {
		struct cli_history_row r = { NULL, NULL, NULL, false, (long)k };

		ret = add_row(h, &cap, &r);
	}
	if (ret)
		cli_history_free(h);
	return ret;
}

void cli_history_free(struct cli_history *h)
{
	free(h->rows);
	json_decref(h->root);
	memset(h, 0, sizeof(*h));
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

json_t *cli_history_json(const struct cli_history *h)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; arr && i < h->n; i++) {
		const struct cli_history_row *r = &h->rows[i];
		json_t *e = json_object();

		json_object_set_new(e, "created", str_or_null(r->created));
		json_object_set_new(e, "created_by",
				    str_or_null(r->created_by));
		json_object_set_new(e, "comment", str_or_null(r->comment));
		json_object_set_new(e, "empty_layer",
				    json_boolean(r->empty_layer));
		json_object_set_new(e, "layer",
				    r->layer < 0 ? json_null()
						 : json_integer(r->layer + 1));
		json_array_append_new(arr, e);
	}
	return arr;
}

static int digits(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++, (*p)++) {
		if (**p < '0' || **p > '9')
			return -1;
		v = v * 10 + (**p - '0');
	}
	*out = v;
	return 0;
}

static int expect(const char **p, const char *set)
{
	if (!**p || !strchr(set, **p))
		return -1;
	(*p)++;
	return 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static long long days_from_civil(int y, int m, int d)
{
	long long era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int cli_history_parse_time(const char *s, time_t *out)
{
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
	const char *p = s;

	if (!s || digits(&p, 4, &y) || expect(&p, "-") || digits(&p, 2, &mo) ||
	    expect(&p, "-") || digits(&p, 2, &d) || expect(&p, "Tt ") ||
	    digits(&p, 2, &h) || expect(&p, ":") || digits(&p, 2, &mi) ||
	    expect(&p, ":") || digits(&p, 2, &sec))
		return -1;
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p++ == '-' ? -1 : 1;
		if (digits(&p, 2, &oh) || expect(&p, ":") || digits(&p, 2, &om))
			return -1;
	} else {
		return -1;
	}
	if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
	    sec > 60 || oh > 23 || om > 59)
		return -1;
	*out = (time_t)(days_from_civil(y, mo, d) * 86400LL + h * 3600LL +
			mi * 60LL + sec - sign * (oh * 3600LL + om * 60LL));
	return 0;
}

void cli_history_duration(double secs, char *out, size_t len)
{
	double hrs = secs / 3600;
	long long s = (long long)secs, m = (long long)(secs / 60);
	long long h = (long long)(hrs + 0.5);

	if (s < 1)
		snprintf(out, len, "Less than a second");
	else if (s == 1)
		snprintf(out, len, "1 second");
	else if (s < 60)
		snprintf(out, len, "%lld seconds", s);
	else if (m == 1)
		snprintf(out, len, "About a minute");
	else if (m < 60)
		snprintf(out, len, "%lld minutes", m);
	else if (h == 1)
		snprintf(out, len, "About an hour");
	else if (h < 48)
		snprintf(out, len, "%lld hours", h);
	else if (h < 24 * 7 * 2)
		snprintf(out, len, "%lld days", h / 24);
	else if (h < 24 * 30 * 2)
		snprintf(out, len, "%lld weeks", h / 24 / 7);
	else if (h < 24 * 365 * 2)
		snprintf(out, len, "%lld months", h / 24 / 30);
	else
		snprintf(out, len, "%lld years", (long long)hrs / 24 / 365);
}

void cli_history_created(const char *created, bool absolute, double now,
			 char *out, size_t len)
{
	/* docker leaves times before 2000 blank */
	const time_t epoch2000 = 946684800;
	char d[48];
	struct tm tm;
	time_t t;

	if (cli_history_parse_time(created, &t) || t <= epoch2000) {
		snprintf(out, len, "-");
	} else if (absolute) {
		if (!gmtime_r(&t, &tm) ||
		    !strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
			snprintf(out, len, "-");
	} else {
		cli_history_duration(now - (double)t, d, sizeof(d));
		snprintf(out, len, "%s ago", d);
	}
}

// SPDX-License-Identifier: MIT
/* test_path.c - tar path normalisation (design.md section 3 rule 1). */
#include <errno.h>

#include "layerfs/path.h"
#include "lf_test.h"

static const char *norm(const char *in, int *ret)
{
	static struct lf_buf b;

	if (!b.data)
		lf_buf_init(&b);
	*ret = lf_path_normalize(in, strlen(in), &b);
	return b.data;
}

LF_TEST(normalize)
{
	static const struct {
		const char *in, *out;
	} ok[] = {
		{ "a/b", "a/b" },     { "./a/b", "a/b" },
		{ "/a//b/", "a/b" },  { "a/./b", "a/b" },
		{ ".", "" },	      { "./", "" },
		{ "/", "" },	      { "...", "..." },
		{ "a/..b", "a/..b" }, { ".wh..wh..opq", ".wh..wh..opq" },
	};
	static const char *bad[] = { "",       "..",   "../x",
				     "a/../b", "a/..", "/../etc" };
	size_t i;
	int ret;

	for (i = 0; i < LF_ARRAY_SIZE(ok); i++) {
		const char *o = norm(ok[i].in, &ret);

		CHECK_EQ_INT(ret, 0);
		CHECK_EQ_STR(o, ok[i].out);
	}
	for (i = 0; i < LF_ARRAY_SIZE(bad); i++) {
		norm(bad[i], &ret);
		CHECK_EQ_INT(ret, -EINVAL);
	}
}

LF_TEST(components)
{
	const char *p = "usr/lib/x", *c;
	size_t len;
	int n = 0;

	while (lf_path_next(&p, &c, &len))
		n++;
	CHECK_EQ_INT(n, 3);
	CHECK_EQ_STR(lf_path_basename("usr/lib/x"), "x");
	CHECK_EQ_STR(lf_path_basename("x"), "x");
	CHECK_EQ_INT(lf_path_dirlen("usr/lib/x"), 7);
	CHECK_EQ_INT(lf_path_dirlen("x"), 0);
}

int main(int argc, char **argv)
{
	return lf_test_main(argc, argv);
}

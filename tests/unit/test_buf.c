// SPDX-License-Identifier: MIT
/* test_buf.c - the growable buffer. */
#include "layerfs/buf.h"
#include "lf_test.h"

LF_TEST(grow_and_detach)
{
	struct lf_buf b;
	char *p;
	size_t len;
	int i;

	lf_buf_init(&b);
	CHECK_EQ_STR(b.data, "");
	for (i = 0; i < 1000; i++)
		CHECK_EQ_INT(lf_buf_addf(&b, "%d,", i), 0);
	CHECK_EQ_INT(b.len, 3890);
	CHECK(!strncmp(b.data, "0,1,2,", 6));
	lf_buf_setlen(&b, 2);
	CHECK_EQ_STR(b.data, "0,");
	CHECK_EQ_INT(lf_buf_addzero(&b, 3), 0);
	CHECK_EQ_INT(b.len, 5);
	p = lf_buf_detach(&b, &len);
	CHECK_EQ_INT(len, 5);
	CHECK_EQ_STR(b.data, "");
	free(p);
	lf_buf_release(&b);
}

int main(int argc, char **argv)
{
	return lf_test_main(argc, argv);
}

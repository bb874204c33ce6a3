// SPDX-License-Identifier: MIT
/* main.c - the layerfs executable. */
#include "layerfs/cli.h"

int main(int argc, char **argv)
{
	return lf_cli_main(argc, argv);
}

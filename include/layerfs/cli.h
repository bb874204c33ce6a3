/* SPDX-License-Identifier: MIT */
/*
 * cli.h - the command line: `layerfs <command> [options] ...`.
 *
 * The only module that prints messages for the user and decides exit codes:
 * 0 success, 1 error (the message says which file and why), 2 usage error.
 * Library errors arrive as struct lf_err and are printed as
 * "layerfs: <message>".  The command set and output shapes are the public
 * interface (design.md section 1): extend, never rename.
 */
#ifndef LAYERFS_CLI_H
#define LAYERFS_CLI_H

/* Run the command line; returns the process exit code. */
int lf_cli_main(int argc, char **argv);

#endif /* LAYERFS_CLI_H */

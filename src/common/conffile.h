/* Config files of the server roles (`skerry tower|agent --config FILE`, the systemd units'
 * /etc/skerry/tower.conf and agent.conf): one flag a line,
 *
 *     # comment
 *     listen = 0.0.0.0:7443
 *     data /var/lib/skerry-tower
 *     labels = "zone=a,rack=7"
 *
 * "NAME = VALUE" or "NAME VALUE" (a value in double quotes keeps its blanks), or "NAME"
 * alone for a switch. They become "--NAME VALUE" arguments placed before the command line's,
 * so a flag given on the command line wins (the roles' getopt keeps the last value). */
#ifndef SK_COMMON_CONFFILE_H
#define SK_COMMON_CONFFILE_H

#include <stddef.h>

#include "common/error.h"

/* The arguments of text (a file's content; name for messages), malloc'd, NULL-terminated,
 * in *args with *n of them. A line that is no flag is an error naming name:line. */
int sk_conffile_parse(const char *text, const char *name, char ***args, size_t *n, sk_error **err);

/* argv (argv[0] the role) with `--config FILE` or `--config=FILE` replaced by FILE's
 * arguments placed right after argv[0]. Without --config a copy of argv. Free with
 * sk_conffile_free. */
int sk_conffile_args(int argc, char **argv, int *out_argc, char ***out_argv, sk_error **err);

void sk_conffile_free(char **args);

/* Runs a server role (argv[0] its name) with its `--config FILE` read in; a config file
 * that does not read is a usage error (2) naming it. */
int sk_conffile_run(int (*role)(int, char **), int argc, char **argv);

#endif

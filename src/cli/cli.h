#ifndef SK_CLI_CLI_H
#define SK_CLI_CLI_H
/* The command-line client: argv[0] is the program, argv[1] the verb. Exit codes: 0 ok,
 * 1 an error the user can fix, 2 a usage error. */
int sk_cli_main(int argc, char **argv);
#endif

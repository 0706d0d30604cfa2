/* skerry: one executable, several roles (DESIGN.md section 2). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "agent/agent.h"
#include "cli/cli.h"
#include "common/cleanup.h"
#include "common/conffile.h"
#include "dev/dev.h"
#include "tower/backup.h"
#include "tower/tower.h"

/* A server role with `--config FILE` read in (flags on the command line win). */
static int run_role(int (*role)(int, char **), int argc, char **argv)
{
        int n;
        char **args;
        _cleanup_error_ sk_error *err = NULL;
        int r = sk_conffile_args(argc, argv, &n, &args, &err);
        if (r < 0) {
                fprintf(stderr, "skerry %s: %s\n", argv[0], sk_error_msg(err, r));
                return 2;
        }
        r = role(n, args);
        sk_conffile_free(args);
        return r;
}

int main(int argc, char **argv)
{
        /* A peer closing its socket must not kill the process (raft, long-polls). */
        signal(SIGPIPE, SIG_IGN);
        if (argc >= 3 && strcmp(argv[1], "tower") == 0 &&
            (strcmp(argv[2], "backup") == 0 || strcmp(argv[2], "restore") == 0))
                return sk_tower_backup_main(argc - 2, argv + 2);
        if (argc >= 2 && strcmp(argv[1], "tower") == 0)
                return run_role(sk_tower_main, argc - 1, argv + 1);
        if (argc >= 2 && strcmp(argv[1], "agent") == 0)
                return run_role(sk_agent_main, argc - 1, argv + 1);
        if (argc >= 2 && strcmp(argv[1], "dev") == 0)
                return sk_dev_main(argc - 1, argv + 1);
        return sk_cli_main(argc, argv);
}

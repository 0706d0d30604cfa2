/* skerry: one executable, several roles (DESIGN.md section 2). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "agent/agent.h"
#include "cli/cli.h"
#include "dev/dev.h"
#include "tower/tower.h"

int main(int argc, char **argv)
{
        /* A peer closing its socket must not kill the process (raft, long-polls). */
        signal(SIGPIPE, SIG_IGN);
        if (argc >= 2 && strcmp(argv[1], "tower") == 0)
                return sk_tower_main(argc - 1, argv + 1);
        if (argc >= 2 && strcmp(argv[1], "agent") == 0)
                return sk_agent_main(argc - 1, argv + 1);
        if (argc >= 2 && strcmp(argv[1], "dev") == 0)
                return sk_dev_main(argc - 1, argv + 1);
        return sk_cli_main(argc, argv);
}

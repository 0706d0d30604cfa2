/* skerry: one executable, several roles (DESIGN.md section 2). */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "cli/cli.h"
#include "common/cleanup.h"
#include "common/conffile.h"
#include "dev/dev.h"
#include "tower/backup.h"
#include "tower/tower.h"

/* `skerry agent` becomes skerry-agent from beside this executable when it is there: the
 * same agent linked without the tower's and the CLI's libraries (PostgreSQL, SQLite),
 * whose pages every edge host would otherwise hold (docs/benchmarks.md). The process, its
 * id and its arguments stay those of `skerry agent`. */
static void exec_lean_agent(char **argv)
{
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n <= 0)
                return;
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        char path[PATH_MAX + 16];
        snprintf(path, sizeof(path), "%.*s/skerry-agent", slash ? (int)(slash - self) : 0, self);
        execv(path, argv); /* returns only when it is not there: run the agent in here */
}

int main(int argc, char **argv)
{
        /* A peer closing its socket must not kill the process (raft, long-polls). */
        signal(SIGPIPE, SIG_IGN);
        if (argc >= 3 && strcmp(argv[1], "tower") == 0 &&
            (strcmp(argv[2], "backup") == 0 || strcmp(argv[2], "restore") == 0))
                return sk_tower_backup_main(argc - 2, argv + 2);
        if (argc >= 2 && strcmp(argv[1], "tower") == 0)
                return sk_conffile_run(sk_tower_main, argc - 1, argv + 1);
        if (argc >= 2 && strcmp(argv[1], "agent") == 0) {
                exec_lean_agent(argv);
                return sk_conffile_run(sk_agent_main, argc - 1, argv + 1);
        }
        if (argc >= 2 && strcmp(argv[1], "dev") == 0)
                return sk_dev_main(argc - 1, argv + 1);
        return sk_cli_main(argc, argv);
}

/* skerry-agent: the agent alone, linked with only the libraries it uses (the Makefile's
 * AGENT_PKGS); `skerry agent` runs it (src/main.c). */
#include <signal.h>
#include <string.h>

#include "agent/agent.h"

int main(int argc, char **argv)
{
        /* raft and the site's connections: a peer closing its socket must not end us. */
        signal(SIGPIPE, SIG_IGN);
        /* As `skerry agent ARGS` (from skerry) or as `skerry-agent ARGS`. */
        if (argc >= 2 && strcmp(argv[1], "agent") == 0)
                return sk_agent_main(argc - 1, argv + 1);
        return sk_agent_main(argc, argv);
}

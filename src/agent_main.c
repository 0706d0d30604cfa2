/* skerry-agent: the agent alone, linked with only the libraries it uses (the Makefile's
 * AGENT_PKGS); `skerry agent` runs it (src/main.c). */
#include <malloc.h>
#include <signal.h>
#include <string.h>

#include "agent/agent.h"
#include "common/conffile.h"

int main(int argc, char **argv)
{
        /* The agent's memory is what every edge host pays (docs/benchmarks.md). Its threads
         * mostly wait, so one malloc arena serves them all instead of one per busy thread;
         * blocks of 64 KiB and more, and free memory at the top of the heap beyond that,
         * go back to the system at once rather than staying resident. */
        mallopt(M_ARENA_MAX, 1);
        mallopt(M_MMAP_THRESHOLD, 64 * 1024);
        mallopt(M_TRIM_THRESHOLD, 64 * 1024);
        /* raft and the site's connections: a peer closing its socket must not end us. */
        signal(SIGPIPE, SIG_IGN);
        /* As `skerry agent ARGS` (from skerry) or as `skerry-agent ARGS`. */
        if (argc >= 2 && strcmp(argv[1], "agent") == 0)
                return sk_conffile_run(sk_agent_main, argc - 1, argv + 1);
        return sk_conffile_run(sk_agent_main, argc, argv);
}

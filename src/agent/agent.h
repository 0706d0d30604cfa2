#ifndef SK_AGENT_AGENT_H
#define SK_AGENT_AGENT_H
/* `skerry agent ...`: argv[0] is "agent". Returns the process exit code. */
int sk_agent_main(int argc, char **argv);
#endif

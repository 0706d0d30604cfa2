#ifndef SK_TOWER_TOWER_H
#define SK_TOWER_TOWER_H
/* `skerry tower ...`: argv[0] is "tower". Returns the process exit code. */
int sk_tower_main(int argc, char **argv);
#endif

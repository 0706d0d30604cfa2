#ifndef SK_DEV_DEV_H
#define SK_DEV_DEV_H
/* `skerry dev`: a whole installation on this machine. argv[0] is "dev". */
int sk_dev_main(int argc, char **argv);
#endif

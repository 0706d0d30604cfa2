/* Command line of `skerry dev` and the names it gives to sites and hosts. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "dev/dev-internal.h"

const char *sk_dev_usage(void)
{
        return "usage: skerry dev [--hosts N] [--sites N] [--data DIR] [--listen ADDR:PORT]\n"
               "                  [--runtime unix:///SOCK]\n"
               "\n"
               "Runs a tower, one Podman API service and one agent per host on this machine,\n"
               "in the foreground, until Ctrl-C; then removes every container it made.\n"
               "\n"
               "  --hosts N      agents per site (default 1, at most 10)\n"
               "  --sites N      sites dev-site (N = 1) or dev-site-1..N (default 1, at most 10)\n"
               "  --data DIR     state and logs (default $XDG_STATE_HOME/skerry/dev, else\n"
               "                 ~/.local/state/skerry/dev); logs in DIR/logs/\n"
               "  --listen A:P   the tower's address (default 127.0.0.1:7443)\n"
               "  --runtime URL  use this Docker Engine API socket instead of starting a\n"
               "                 private Podman service under DIR/podman\n";
}

char *sk_dev_default_data_dir(void)
{
        char *out = NULL;
        _cleanup_free_ char *cwd = NULL;
        const char *state = getenv("XDG_STATE_HOME");
        const char *home = getenv("HOME");
        int r;
        if (state && state[0] == '/')
                r = asprintf(&out, "%s/skerry/dev", state);
        else if (home && home[0] == '/')
                r = asprintf(&out, "%s/.local/state/skerry/dev", home);
        else
                r = (cwd = getcwd(NULL, 0)) ? asprintf(&out, "%s/skerry-dev", cwd) : -1;
        return r < 0 ? NULL : out;
}

static int parse_count(const char *flag, const char *s, int *out, sk_error **err)
{
        char *end = NULL;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (errno || end == s || *end || v < 1 || v > 10)
                return sk_error_set(err, EINVAL, "%s: must be an integer from 1 to 10, not \"%s\"",
                                    flag, s);
        *out = (int)v;
        return 0;
}

static int check_listen(const char *s, sk_error **err)
{
        const char *colon = strrchr(s, ':');
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : 0;
        if (!colon || colon == s || end == colon + 1 || *end || port < 1 || port > 65535)
                return sk_error_set(err, EINVAL, "--listen: expected ADDR:PORT, not \"%s\"", s);
        return 0;
}

static int absolute_dir(const char *s, char **out, sk_error **err)
{
        if (!*s)
                return sk_error_set(err, EINVAL, "--data: must not be empty");
        if (s[0] == '/') {
                *out = strdup(s);
        } else {
                _cleanup_free_ char *cwd = getcwd(NULL, 0);
                if (!cwd || asprintf(out, "%s/%s", cwd, s) < 0)
                        *out = NULL;
        }
        if (!*out)
                return sk_error_set(err, ENOMEM, "--data: cannot make \"%s\" absolute", s);
        size_t n = strlen(*out);
        while (n > 1 && (*out)[n - 1] == '/')
                (*out)[--n] = '\0';
        return 0;
}

int sk_dev_runtime_socket(const char *url, char **path, sk_error **err)
{
        static const char prefix[] = "unix://";
        if (strncmp(url, prefix, strlen(prefix)) != 0 || url[strlen(prefix)] != '/')
                return sk_error_set(err, EINVAL,
                                    "--runtime: expected unix:///PATH/TO/SOCKET, not \"%s\"", url);
        *path = strdup(url + strlen(prefix));
        return *path ? 0 : sk_error_set(err, ENOMEM, "out of memory");
}

int sk_dev_parse_args(int argc, char **argv, sk_dev_opts *o, sk_error **err)
{
        static const struct option longopts[] = {
            {"hosts", required_argument, NULL, 'H'},
            {"sites", required_argument, NULL, 'S'},
            {"data", required_argument, NULL, 'd'},
            {"listen", required_argument, NULL, 'l'},
            {"runtime", required_argument, NULL, 'r'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
        };
        *o = (sk_dev_opts){.hosts = 1, .sites = 1};
        int r = 0;
        optind = 0; /* reset getopt, also for repeated calls from tests */
        opterr = 0;
        for (int c; r >= 0 && (c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1;) {
                switch (c) {
                case 'H':
                        r = parse_count("--hosts", optarg, &o->hosts, err);
                        break;
                case 'S':
                        r = parse_count("--sites", optarg, &o->sites, err);
                        break;
                case 'd':
                        free(o->data_dir);
                        o->data_dir = NULL;
                        r = absolute_dir(optarg, &o->data_dir, err);
                        break;
                case 'l':
                        r = check_listen(optarg, err);
                        free(o->listen);
                        o->listen = r < 0 ? NULL : strdup(optarg);
                        break;
                case 'r': {
                        _cleanup_free_ char *sock = NULL;
                        r = sk_dev_runtime_socket(optarg, &sock, err);
                        free(o->runtime_url);
                        o->runtime_url = r < 0 ? NULL : strdup(optarg);
                        break;
                }
                case 'h':
                        o->help = true;
                        break;
                case ':':
                        r = sk_error_set(err, EINVAL, "%s: needs a value", argv[optind - 1]);
                        break;
                default:
                        r = sk_error_set(err, EINVAL, "unknown option \"%s\"", argv[optind - 1]);
                }
        }
        if (r >= 0 && optind < argc)
                r = sk_error_set(err, EINVAL, "unexpected argument \"%s\"", argv[optind]);
        if (r >= 0 && !o->data_dir && !(o->data_dir = sk_dev_default_data_dir()))
                r = sk_error_set(err, ENOMEM, "cannot find a default --data folder");
        if (r >= 0 && !o->listen && !(o->listen = strdup("127.0.0.1:7443")))
                r = sk_error_set(err, ENOMEM, "out of memory");
        if (r < 0)
                sk_dev_opts_free(o);
        return r;
}

void sk_dev_opts_free(sk_dev_opts *o)
{
        free(o->data_dir);
        free(o->listen);
        free(o->runtime_url);
        *o = (sk_dev_opts){0};
}

char *sk_dev_site_name(int i, int n)
{
        char *s = NULL;
        int r = n == 1 ? asprintf(&s, "dev-site") : asprintf(&s, "dev-site-%d", i + 1);
        return r < 0 ? NULL : s;
}

char *sk_dev_host_name(int i, int n, int j)
{
        char *s = NULL;
        int r = n == 1 ? asprintf(&s, "host-%d", j + 1)
                       : asprintf(&s, "dev-site-%d-host-%d", i + 1, j + 1);
        return r < 0 ? NULL : s;
}

/* Verbs that handle credentials: login, user password, site token. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli/internal.h"
#include "common/cleanup.h"

static struct termios saved_tio;

static void restore_tty(int sig)
{
        /* An interrupted prompt must not leave the terminal without echo. */
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
        signal(sig, SIG_DFL);
        raise(sig);
}

static int read_line(const char *prompt, bool tty, char **out, sk_error **err)
{
        struct sigaction sa = {.sa_handler = restore_tty}, old_int, old_term;
        if (tty) {
                if (tcgetattr(STDIN_FILENO, &saved_tio) < 0)
                        return sk_error_set(err, errno, "cannot read the terminal: %s",
                                            strerror(errno));
                struct termios quiet = saved_tio;
                quiet.c_lflag &= ~(tcflag_t)ECHO;
                quiet.c_lflag |= ECHONL;
                sigemptyset(&sa.sa_mask);
                sigaction(SIGINT, &sa, &old_int);
                sigaction(SIGTERM, &sa, &old_term);
                fputs(prompt, stderr);
                fflush(stderr);
                tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
        }
        char *line = NULL;
        size_t cap = 0;
        ssize_t n = getline(&line, &cap, stdin);
        if (tty) {
                tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
                sigaction(SIGINT, &old_int, NULL);
                sigaction(SIGTERM, &old_term, NULL);
        }
        if (n < 0) {
                free(line);
                return sk_error_set(err, EINVAL, "no password given");
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                line[--n] = '\0';
        if (n == 0) {
                free(line);
                return sk_error_set(err, EINVAL, "the password is empty");
        }
        *out = line;
        return 0;
}

static void wipe(char *s)
{
        if (s) {
                explicit_bzero(s, strlen(s));
                free(s);
        }
}

int sk_cli_read_password(const char *prompt, bool confirm, char **out, sk_error **err)
{
        bool tty = isatty(STDIN_FILENO);
        char *first = NULL, *again = NULL;
        int r = read_line(prompt, tty, &first, err);
        if (r < 0)
                return r;
        if (tty && confirm) {
                r = read_line("Again: ", tty, &again, err);
                if (r < 0) {
                        wipe(first);
                        return r;
                }
                bool same = strcmp(first, again) == 0;
                wipe(again);
                if (!same) {
                        wipe(first);
                        return sk_error_set(err, EINVAL, "the passwords differ");
                }
        }
        *out = first;
        return 0;
}

/* TENANT/USER into its two parts (pointing into a copy the caller frees). */
static int split_user(const sk_cli_ctx *c, const char *arg, char **copy, const char **tenant,
                      const char **user)
{
        *copy = strdup(arg);
        if (!*copy)
                return sk_cli_fail(NULL, -ENOMEM);
        char *slash = strchr(*copy, '/');
        if (!slash || slash == *copy || !slash[1] || strchr(slash + 1, '/'))
                return sk_cli_usage_error(c, "'%s' is not TENANT/USER", arg);
        *slash = '\0';
        *tenant = *copy;
        *user = slash + 1;
        return SK_EXIT_OK;
}

static void json_wipe_decref(json_t *body)
{
        /* jansson frees without clearing; overwrite the password string first. */
        json_t *pw = json_object_get(body, "password");
        if (json_is_string(pw)) {
                explicit_bzero((char *)json_string_value(pw), json_string_length(pw));
        }
        json_decref(body);
}

int sk_cli_cmd_login(sk_cli_ctx *c)
{
        _cleanup_free_ char *copy = NULL;
        const char *tenant, *user;
        int rc = split_user(c, c->args[0], &copy, &tenant, &user);
        if (rc != SK_EXIT_OK)
                return rc;
        rc = sk_cli_connect(c, false);
        if (rc != SK_EXIT_OK)
                return rc;
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_free_ char *path = NULL;
        int r = sk_cli_config_path(getenv("XDG_CONFIG_HOME"), getenv("HOME"), &path, &err);
        if (r < 0)
                return sk_cli_fail(err, r);
        char *pw = NULL;
        r = sk_cli_read_password("Password: ", false, &pw, &err);
        if (r < 0)
                return sk_cli_fail(err, r);
        json_t *body = json_pack("{s:s, s:s, s:s}", "tenant", tenant, "user", user, "password", pw);
        wipe(pw);
        if (!body)
                return sk_cli_fail(NULL, -ENOMEM);
        _cleanup_json_ json_t *v = NULL;
        rc = sk_cli_request(c, "POST", "/v1/login", body, &v, NULL);
        json_wipe_decref(body);
        if (rc != SK_EXIT_OK)
                return rc;
        const char *token = json_string_value(json_object_get(v, "token"));
        if (!token) {
                fprintf(stderr, "skerry: the tower's login answer has no token\n");
                return SK_EXIT_ERROR;
        }
        /* Keep the CA as an absolute path so the config works from any folder. */
        _cleanup_free_ char *ca = c->cfg.ca ? realpath(c->cfg.ca, NULL) : NULL;
        sk_cli_config save = {c->cfg.addr, (char *)token, ca ? ca : c->cfg.ca};
        r = sk_cli_config_save(path, &save, &err);
        if (r < 0)
                return sk_cli_fail(err, r);
        if (c->print)
                printf("%s\n", token);
        else
                printf("logged in as %s/%s; token saved in %s\n", tenant, user, path);
        return SK_EXIT_OK;
}

int sk_cli_cmd_user_password(sk_cli_ctx *c)
{
        _cleanup_free_ char *copy = NULL;
        const char *tenant, *user;
        int rc = split_user(c, c->args[0], &copy, &tenant, &user);
        if (rc != SK_EXIT_OK)
                return rc;
        rc = sk_cli_connect(c, true);
        if (rc != SK_EXIT_OK)
                return rc;
        /* ?tenant= is for admins acting in a tenant below theirs; in one's own it is not
         * needed, so ask who we are first. */
        _cleanup_json_ json_t *me = NULL;
        rc = sk_cli_request(c, "GET", "/v1/whoami", NULL, &me, NULL);
        if (rc != SK_EXIT_OK)
                return rc;
        const char *mine = json_string_value(json_object_get(me, "tenant"));
        const char *q[] = {"tenant", mine && strcmp(mine, tenant) == 0 ? NULL : tenant, NULL};
        _cleanup_free_ char *path = sk_cli_resource_path("users", user, "password", q);
        if (!path)
                return sk_cli_fail(NULL, -ENOMEM);
        _cleanup_error_ sk_error *err = NULL;
        char *pw = NULL;
        int r = sk_cli_read_password("New password: ", true, &pw, &err);
        if (r < 0)
                return sk_cli_fail(err, r);
        json_t *body = json_pack("{s:s}", "password", pw);
        wipe(pw);
        if (!body)
                return sk_cli_fail(NULL, -ENOMEM);
        _cleanup_json_ json_t *v = NULL;
        rc = sk_cli_request(c, "PUT", path, body, &v, NULL);
        json_wipe_decref(body);
        if (rc != SK_EXIT_OK)
                return rc;
        printf("password of %s/%s updated\n", tenant, user);
        return SK_EXIT_OK;
}

int sk_cli_cmd_site_token(sk_cli_ctx *c)
{
        int64_t ms = 0;
        if (c->ttl && sk_duration_ms(c->ttl, &ms) < 0)
                return sk_cli_usage_error(c, "--ttl: '%s' is not a duration like 30m or 1h",
                                          c->ttl);
        if (!c->site_local && c->nargs == 0)
                return sk_cli_usage_error(c, "site token needs SITE (or --site-local ADDR "
                                             "--agent-data DIR for a site-local token)");
        if (c->site_local && c->nargs > 0)
                return sk_cli_usage_error(c, "with --site-local the site is that of --agent-data: "
                                             "no SITE");
        int rc = sk_cli_connect(c, true);
        if (rc != SK_EXIT_OK)
                return rc;
        if (c->site_local) {
                /* The site's leader makes it, replicated; it works with the tower down. */
                _cleanup_json_ json_t *sbody =
                    c->ttl ? json_pack("{s:I}", "ttl", (json_int_t)(ms / 1000)) : json_object();
                _cleanup_json_ json_t *sv = NULL;
                rc = sk_cli_request(c, "POST", "/v1/site/tokens", sbody, &sv, NULL);
                if (rc != SK_EXIT_OK)
                        return rc;
                const char *stoken = json_string_value(json_object_get(sv, "token"));
                if (!stoken) {
                        fprintf(stderr, "skerry: the site's answer has no token\n");
                        return SK_EXIT_ERROR;
                }
                printf("%s\n", stoken);
                return SK_EXIT_OK;
        }
        const char *q[] = {"tenant", c->tenant, NULL};
        _cleanup_free_ char *path = sk_cli_resource_path("sites", c->args[0], "tokens", q);
        if (!path)
                return sk_cli_fail(NULL, -ENOMEM);
        _cleanup_json_ json_t *body = c->ttl ? json_pack("{s:s}", "ttl", c->ttl) : NULL;
        _cleanup_json_ json_t *v = NULL;
        rc = sk_cli_request(c, "POST", path, body, &v, NULL);
        if (rc != SK_EXIT_OK)
                return rc;
        const char *token = json_string_value(json_object_get(v, "token"));
        if (!token) {
                fprintf(stderr, "skerry: the tower's answer has no token\n");
                return SK_EXIT_ERROR;
        }
        printf("%s\n", token);
        return SK_EXIT_OK;
}

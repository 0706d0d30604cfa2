#include "cli/config.h"

#include <ctype.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"

#define SK_DEFAULT_PORT "7443"

void sk_cli_config_clear(sk_cli_config *c)
{
        free(c->addr);
        free(c->token);
        free(c->ca);
        c->addr = c->token = c->ca = NULL;
}

static int check_port(const char *port, sk_error **err)
{
        if (!*port || strlen(port) > 5)
                return sk_error_set(err, EINVAL, "bad port '%s'", port);
        for (const char *p = port; *p; p++)
                if (!isdigit((unsigned char)*p))
                        return sk_error_set(err, EINVAL, "bad port '%s'", port);
        long n = strtol(port, NULL, 10);
        if (n < 1 || n > 65535)
                return sk_error_set(err, EINVAL, "port %ld is out of range 1..65535", n);
        return 0;
}

/* host, host:port, [v6], [v6]:port. Sets *has_port. */
static int check_hostport(const char *hp, size_t len, bool *has_port, sk_error **err)
{
        _cleanup_free_ char *s = strndup(hp, len);
        if (!s)
                return sk_error_set(err, ENOMEM, "out of memory");
        *has_port = false;
        char *port = NULL;
        if (s[0] == '[') {
                char *close = strchr(s, ']');
                if (!close || close == s + 1)
                        return sk_error_set(err, EINVAL, "bad IPv6 address in '%s'", s);
                if (close[1] == ':')
                        port = close + 2;
                else if (close[1])
                        return sk_error_set(err, EINVAL, "unexpected '%s' after ']'", close + 1);
        } else {
                char *colon = strchr(s, ':');
                if (colon && strchr(colon + 1, ':'))
                        return sk_error_set(err, EINVAL,
                                            "an IPv6 address needs brackets, e.g. [::1]:7443");
                if (colon == s || !*s)
                        return sk_error_set(err, EINVAL, "no host name");
                if (colon)
                        port = colon + 1;
        }
        if (!port)
                return 0;
        *has_port = true;
        return check_port(port, err);
}

int sk_cli_normalize_addr(const char *addr, char **out, sk_error **err)
{
        *out = NULL;
        if (!addr || !*addr)
                return sk_error_set(err, EINVAL, "empty address");
        for (const char *p = addr; *p; p++)
                if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p))
                        return sk_error_set(err, EINVAL,
                                            "'%s' contains a space or control "
                                            "character",
                                            addr);
        const char *sep = strstr(addr, "://");
        const char *scheme = "https";
        const char *rest = addr;
        if (sep) {
                size_t slen = (size_t)(sep - addr);
                if (slen == 5 && strncasecmp(addr, "https", 5) == 0)
                        scheme = "https";
                else if (slen == 4 && strncasecmp(addr, "http", 4) == 0)
                        scheme = "http";
                else
                        return sk_error_set(err, EINVAL,
                                            "unsupported scheme in '%s' (use https://HOST:PORT)",
                                            addr);
                rest = sep + 3;
        }
        size_t rest_len = strlen(rest);
        while (rest_len > 0 && rest[rest_len - 1] == '/')
                rest_len--;
        const char *slash = memchr(rest, '/', rest_len);
        size_t hp_len = slash ? (size_t)(slash - rest) : rest_len;
        if (hp_len == 0)
                return sk_error_set(err, EINVAL, "no host name in '%s'", addr);
        bool has_port = false;
        int r = check_hostport(rest, hp_len, &has_port, err);
        if (r < 0)
                return r;
        /* Without a scheme the user typed HOST[:PORT]: the tower's default port applies. */
        const char *port = (!sep && !has_port) ? ":" SK_DEFAULT_PORT : "";
        if (asprintf(out, "%s://%.*s%s%.*s", scheme, (int)hp_len, rest, port,
                     (int)(rest_len - hp_len), rest + hp_len) < 0) {
                *out = NULL;
                return sk_error_set(err, ENOMEM, "out of memory");
        }
        return 0;
}

int sk_cli_config_path(const char *xdg_config_home, const char *home, char **out, sk_error **err)
{
        int n;
        *out = NULL;
        if (xdg_config_home && xdg_config_home[0] == '/')
                n = asprintf(out, "%s/skerry/config.json", xdg_config_home);
        else if (home && *home)
                n = asprintf(out, "%s/.config/skerry/config.json", home);
        else
                return sk_error_set(err, ENOENT,
                                    "neither $XDG_CONFIG_HOME nor $HOME is set: no config file");
        if (n < 0) {
                *out = NULL;
                return sk_error_set(err, ENOMEM, "out of memory");
        }
        return 0;
}

static int take_string(json_t *root, const char *key, const char *name, char **out, sk_error **err)
{
        json_t *v = json_object_get(root, key);
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_string(v))
                return sk_error_set_path(err, EINVAL, key, "%s: %s: must be a string", name, key);
        *out = strdup(json_string_value(v));
        return *out ? 0 : sk_error_set(err, ENOMEM, "out of memory");
}

int sk_cli_config_parse(const char *text, const char *name, sk_cli_config *out, sk_error **err)
{
        json_error_t jerr;
        memset(out, 0, sizeof(*out));
        _cleanup_json_ json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return sk_error_set_pos(err, EINVAL, jerr.line, jerr.column, "%s:%d:%d: %s", name,
                                        jerr.line, jerr.column, jerr.text);
        if (!json_is_object(root))
                return sk_error_set(err, EINVAL, "%s: must hold a JSON object", name);
        const char *key;
        json_t *v;
        json_object_foreach(root, key, v)
        {
                if (strcmp(key, "addr") && strcmp(key, "token") && strcmp(key, "ca"))
                        return sk_error_set_path(err, EINVAL, key,
                                                 "%s: %s: unknown field (expected addr, token, "
                                                 "ca)",
                                                 name, key);
        }
        int r = take_string(root, "addr", name, &out->addr, err);
        if (r >= 0)
                r = take_string(root, "token", name, &out->token, err);
        if (r >= 0)
                r = take_string(root, "ca", name, &out->ca, err);
        if (r < 0)
                sk_cli_config_clear(out);
        return r;
}

int sk_cli_config_load(const char *path, sk_cli_config *out, sk_error **err)
{
        memset(out, 0, sizeof(*out));
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f) {
                if (errno == ENOENT)
                        return 0;
                return sk_error_set(err, errno, "%s: %s", path, strerror(errno));
        }
        _cleanup_free_ char *text = NULL;
        size_t cap = 0;
        ssize_t n = getdelim(&text, &cap, '\0', f);
        if (n < 0 && ferror(f))
                return sk_error_set(err, EIO, "%s: cannot read", path);
        return sk_cli_config_parse(text ? text : "", path, out, err);
}

static int mkdir_parents(char *path, sk_error **err)
{
        /* path is modified in place and restored. */
        for (char *p = path + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = '\0';
                int r = mkdir(path, 0700);
                int e = errno;
                *p = '/';
                if (r < 0 && e != EEXIST)
                        return sk_error_set(err, e, "cannot create %.*s: %s", (int)(p - path), path,
                                            strerror(e));
        }
        return 0;
}

int sk_cli_config_save(const char *path, const sk_cli_config *c, sk_error **err)
{
        _cleanup_free_ char *dir = strdup(path);
        if (!dir)
                return sk_error_set(err, ENOMEM, "out of memory");
        int r = mkdir_parents(dir, err);
        if (r < 0)
                return r;
        _cleanup_json_ json_t *root = json_object();
        if (!root)
                return sk_error_set(err, ENOMEM, "out of memory");
        if (c->addr)
                json_object_set_new(root, "addr", json_string(c->addr));
        if (c->ca)
                json_object_set_new(root, "ca", json_string(c->ca));
        if (c->token)
                json_object_set_new(root, "token", json_string(c->token));
        _cleanup_free_ char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        _cleanup_free_ char *tmp = NULL;
        if (!text || asprintf(&tmp, "%s.tmp.%ld", path, (long)getpid()) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        /* The token is a credential: the file never exists with wider permissions. */
        _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return sk_error_set(err, errno, "cannot write %s: %s", tmp, strerror(errno));
        size_t len = strlen(text);
        if (fchmod(fd, 0600) < 0 || write(fd, text, len) != (ssize_t)len ||
            write(fd, "\n", 1) != 1 || fsync(fd) < 0) {
                int e = errno ? errno : EIO;
                unlink(tmp);
                return sk_error_set(err, e, "cannot write %s: %s", tmp, strerror(e));
        }
        if (rename(tmp, path) < 0) {
                int e = errno;
                unlink(tmp);
                return sk_error_set(err, e, "cannot rename %s to %s: %s", tmp, path, strerror(e));
        }
        return 0;
}

static const char *pick(const char *flag, const char *env, const char *file, int *source)
{
        if (flag && *flag) {
                *source = 0;
                return flag;
        }
        if (env && *env) {
                *source = 1;
                return env;
        }
        *source = 2;
        return file && *file ? file : NULL;
}

static int dup_field(const char *v, char **out, sk_error **err)
{
        if (!v)
                return 0;
        *out = strdup(v);
        return *out ? 0 : sk_error_set(err, ENOMEM, "out of memory");
}

int sk_cli_config_resolve(const sk_cli_config *flags, const sk_cli_config *env,
                          const sk_cli_config *file, const char *file_name, sk_cli_config *out,
                          sk_error **err)
{
        static const sk_cli_config none = {0};
        flags = flags ? flags : &none;
        env = env ? env : &none;
        file = file ? file : &none;
        memset(out, 0, sizeof(*out));
        int src, r;
        const char *addr = pick(flags->addr, env->addr, file->addr, &src);
        if (addr) {
                r = sk_cli_normalize_addr(addr, &out->addr, err);
                if (r < 0) {
                        const char *names[] = {"--addr", "SKERRY_ADDR", NULL};
                        if (src == 2)
                                sk_error_prefix(err, "%s: addr",
                                                file_name ? file_name : "config file");
                        else
                                sk_error_prefix(err, "%s", names[src]);
                        return r;
                }
        }
        r = dup_field(pick(flags->token, env->token, file->token, &src), &out->token, err);
        if (r >= 0)
                r = dup_field(pick(flags->ca, env->ca, file->ca, &src), &out->ca, err);
        if (r < 0)
                sk_cli_config_clear(out);
        return r;
}

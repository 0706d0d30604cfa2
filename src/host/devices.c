/* Device discovery (devices.h). */
#include "host/devices.h"

#include <glob.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "common/cleanup.h"
#include "model/spec.h"

static int oom(sk_error **err)
{
        return sk_error_set(err, ENOMEM, "out of memory");
}

static void globfreep(glob_t *g)
{
        globfree(g);
}

/* The dev-dir with glob's special characters escaped, so only the rule's pattern globs. */
static char *escape_glob(const char *s, size_t len)
{
        char *out = malloc(len * 2 + 1), *o = out;
        if (!out)
                return NULL;
        for (size_t i = 0; i < len; i++) {
                if (strchr("*?[]\\", s[i]))
                        *o++ = '\\';
                *o++ = s[i];
        }
        *o = '\0';
        return out;
}

static bool valid_match(const char *m)
{
        if (!m || strncmp(m, "/dev/", 5) || !m[5] || strstr(m, ".."))
                return false;
        for (const char *c = m; *c; c++)
                if (*c <= ' ' || *c == 0x7f)
                        return false;
        return true;
}

static int cmp_node(const void *a, const void *b)
{
        const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
        return strverscmp(json_string_value(json_object_get(x, "path")),
                          json_string_value(json_object_get(y, "path")));
}

/* Adds the nodes matching one rule to nodes (array), skipping paths already there. */
static int match_rule(const char *dev_dir, size_t dir_len, const char *match, json_t *nodes,
                      sk_error **err)
{
        _cleanup_free_ char *esc = escape_glob(dev_dir, dir_len);
        _cleanup_free_ char *pattern = NULL;
        if (!esc || asprintf(&pattern, "%s/%s", esc, match + 5) < 0)
                return oom(err);
        __attribute__((cleanup(globfreep))) glob_t g = {0};
        int r = glob(pattern, 0, NULL, &g);
        if (r == GLOB_NOMATCH)
                return 0;
        if (r == GLOB_NOSPACE)
                return oom(err);
        if (r != 0)
                return sk_error_set(err, EIO, "cannot search %s for %s", dev_dir, match);
        for (size_t i = 0; i < g.gl_pathc; i++) {
                const char *found = g.gl_pathv[i];
                struct stat st;
                if (stat(found, &st) < 0 || !(S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)))
                        continue;
                _cleanup_free_ char *path = NULL;
                if (asprintf(&path, "/dev/%s", found + dir_len + 1) < 0)
                        return oom(err);
                bool seen = false;
                size_t k;
                json_t *n;
                json_array_foreach(nodes, k, n)
                {
                        seen |= !strcmp(json_string_value(json_object_get(n, "path")), path);
                }
                if (seen)
                        continue;
                json_t *node = json_pack("{s:s, s:s, s:s, s:I, s:I}", "path", path, "host-path",
                                         found, "type", S_ISCHR(st.st_mode) ? "char" : "block",
                                         "major", (json_int_t)major(st.st_rdev), "minor",
                                         (json_int_t)minor(st.st_rdev));
                if (!node || json_array_append_new(nodes, node) < 0)
                        return oom(err);
        }
        return 0;
}

static int sort_nodes(json_t *nodes)
{
        size_t n = json_array_size(nodes);
        if (n < 2)
                return 0;
        _cleanup_free_ json_t **v = calloc(n, sizeof(*v));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                v[i] = json_incref(json_array_get(nodes, i));
        qsort(v, n, sizeof(*v), cmp_node);
        json_array_clear(nodes);
        int r = 0;
        for (size_t i = 0; i < n; i++)
                if (json_array_append_new(nodes, v[i]) < 0)
                        r = -ENOMEM;
        return r;
}

int sk_devices_discover(const json_t *rules, const char *dev_dir, json_t **out, sk_error **err)
{
        *out = NULL;
        if (rules && !json_is_array(rules))
                return sk_error_set_path(err, EINVAL, "devices", "devices: must be a list");
        if (!dev_dir || !*dev_dir)
                return sk_error_set(err, EINVAL, "dev-dir: must be a folder");
        size_t dir_len = strlen(dev_dir);
        while (dir_len > 1 && dev_dir[dir_len - 1] == '/')
                dir_len--;
        if (dir_len == 1 && dev_dir[0] == '/')
                dir_len = 0; /* "/" as the root: patterns become "/video*" */
        struct stat st;
        if (stat(dev_dir, &st) < 0)
                return sk_error_set(err, errno, "dev-dir %s: %s", dev_dir, strerror(errno));
        if (!S_ISDIR(st.st_mode))
                return sk_error_set(err, ENOTDIR, "dev-dir %s: not a folder", dev_dir);
        _cleanup_json_ json_t *found = json_object();
        if (!found)
                return oom(err);
        size_t i;
        const json_t *rule;
        json_array_foreach(rules, i, rule)
        {
                char path[64];
                const char *label = json_string_value(json_object_get(rule, "label"));
                if (!json_is_object(rule) || !label || !sk_spec_valid_name(label)) {
                        snprintf(path, sizeof(path), "devices[%zu].label", i);
                        return sk_error_set_path(
                            err, EINVAL, path, "%s: must be a device label (a-z, 0-9, '-')", path);
                }
                json_t *nodes = json_object_get(found, label);
                if (!nodes && json_object_set_new(found, label, nodes = json_array()) < 0)
                        return oom(err);
                const json_t *match = json_object_get(rule, "match");
                if (!match && json_object_get(rule, "udev"))
                        continue; /* udev properties need udev: not matched here */
                if (!valid_match(json_string_value(match))) {
                        snprintf(path, sizeof(path), "devices[%zu].match", i);
                        return sk_error_set_path(err, EINVAL, path,
                                                 "%s: must be a glob pattern under /dev/ "
                                                 "(\"/dev/video*\"), without spaces or '..'",
                                                 path);
                }
                int r = match_rule(dev_dir, dir_len, json_string_value(match), nodes, err);
                if (r < 0)
                        return r;
        }
        const char *label;
        json_t *nodes;
        json_object_foreach(found, label, nodes)
        {
                if (sort_nodes(nodes) < 0)
                        return oom(err);
        }
        *out = take_ptr(&found);
        return 0;
}

json_t *sk_devices_host_labels(const json_t *discovery)
{
        _cleanup_json_ json_t *labels = json_object();
        const char *label;
        json_t *nodes;
        json_object_foreach((json_t *)discovery, label, nodes)
        {
                size_t n = json_array_size(nodes);
                if (n == 0)
                        continue;
                char key[128], value[32];
                snprintf(key, sizeof(key), "device/%s", label);
                snprintf(value, sizeof(value), "%zu", n);
                if (!labels || json_object_set_new(labels, key, json_string(value)) < 0)
                        return NULL;
        }
        return take_ptr(&labels);
}

static const json_t *find_node(const json_t *nodes, const char *path)
{
        size_t i;
        const json_t *n;
        json_array_foreach(nodes, i, n)
        {
                if (!strcmp(json_string_value(json_object_get(n, "path")), path))
                        return n;
        }
        return NULL;
}

/* Appends "WHAT PATH" for the nodes of `from` that `other` lacks (or holds differently). */
static void note_nodes(FILE *f, const json_t *from, const json_t *other, const char *what,
                       bool changed_only, bool *first)
{
        size_t i;
        const json_t *n;
        json_array_foreach(from, i, n)
        {
                const char *path = json_string_value(json_object_get(n, "path"));
                const json_t *o = find_node(other, path);
                if (changed_only ? (!o || json_equal(n, o)) : o != NULL)
                        continue;
                fprintf(f, "%s%s %s", *first ? "" : ", ", what, path);
                *first = false;
        }
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int sk_devices_diff(const json_t *before, const json_t *after, char **summary)
{
        if (summary)
                *summary = NULL;
        _cleanup_json_ json_t *labels = json_object();
        if (!labels)
                return -ENOMEM;
        const char *label;
        json_t *v;
        json_object_foreach((json_t *)before, label, v)
        {
                if (json_object_set(labels, label, json_null()) < 0)
                        return -ENOMEM;
        }
        json_object_foreach((json_t *)after, label, v)
        {
                if (json_object_set(labels, label, json_null()) < 0)
                        return -ENOMEM;
        }
        char *text = NULL;
        size_t size = 0;
        _cleanup_fclose_ FILE *f = open_memstream(&text, &size);
        if (!f)
                return -ENOMEM;
        bool changed = false;
        /* object iteration order is not sorted: walk the keys sorted for a stable summary */
        size_t nkeys = json_object_size(labels), k = 0;
        _cleanup_free_ const char **keys = calloc(nkeys ? nkeys : 1, sizeof(*keys));
        if (!keys) {
                fclose(take_ptr(&f));
                free(text);
                return -ENOMEM;
        }
        json_object_foreach(labels, label, v)
        {
                keys[k++] = label;
        }
        qsort(keys, nkeys, sizeof(*keys), cmp_str);
        for (k = 0; k < nkeys; k++) {
                const json_t *b = json_object_get(before, keys[k]);
                const json_t *a = json_object_get(after, keys[k]);
                /* a label without nodes is the same as no label: no device came or went */
                if (json_array_size(b) == 0 && json_array_size(a) == 0)
                        continue;
                if (a && b && json_equal(a, b))
                        continue;
                fprintf(f, "%s%s: ", changed ? "; " : "", keys[k]);
                changed = true;
                bool first = true;
                note_nodes(f, a, b, "added", false, &first);
                note_nodes(f, b, a, "removed", false, &first);
                note_nodes(f, a, b, "changed", true, &first);
                if (first)
                        fprintf(f, "reordered");
        }
        if (fclose(take_ptr(&f)) != 0) {
                free(text);
                return -ENOMEM;
        }
        if (summary && changed)
                *summary = text;
        else
                free(text);
        return changed ? 1 : 0;
}

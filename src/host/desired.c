#include "host/desired.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "model/app.h"
#include "model/resource.h"
#include "model/spec.h"

const char *sk_restart_policy_name(sk_restart_policy p)
{
        switch (p) {
        case SK_RESTART_ALWAYS:
                return "always";
        case SK_RESTART_ON_FAILURE:
                return "on-failure";
        case SK_RESTART_NEVER:
                return "never";
        }
        return "always";
}

static void strv_free(char **v)
{
        if (!v)
                return;
        for (char **p = v; *p; p++)
                free(*p);
        free(v);
}

static void container_clear(sk_desired_container *c)
{
        free(c->name);
        free(c->container);
        free(c->image);
        strv_free(c->cmd);
        strv_free(c->env);
        strv_free(c->devices);
        strv_free(c->device_targets);
        json_decref(c->labels);
        free(c->spec_hash);
}

static void instance_clear(sk_desired_instance *i)
{
        for (size_t k = 0; k < i->n_containers; k++)
                container_clear(&i->containers[k]);
        free(i->containers);
        free(i->id);
        json_decref(i->meta);
        free(i->fail_reason);
}

void sk_desired_set_clear(sk_desired_set *s)
{
        for (size_t k = 0; k < s->n; k++)
                instance_clear(&s->items[k]);
        free(s->items);
        s->items = NULL;
        s->n = 0;
}

int sk_desired_expand(const char *text, const json_t *vars, char **out, char **missing)
{
        *out = NULL;
        *missing = NULL;
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return -ENOMEM;
        const char *p = text;
        while (*p) {
                if (p[0] == '$' && p[1] == '$') {
                        fputc('$', f);
                        p += 2;
                        continue;
                }
                const char *end = p[0] == '$' && p[1] == '{' ? strchr(p + 2, '}') : NULL;
                if (!end) {
                        fputc(*p++, f);
                        continue;
                }
                _cleanup_free_ char *name = strndup(p + 2, (size_t)(end - p - 2));
                const char *val = name ? json_string_value(json_object_get(vars, name)) : NULL;
                if (!val) {
                        fclose(f);
                        free(buf);
                        *missing = take_ptr(&name);
                        return -ENOENT;
                }
                fputs(val, f);
                p = end + 1;
        }
        if (fclose(f) != 0) {
                free(buf);
                return -ENOMEM;
        }
        *out = buf;
        return 0;
}

char *sk_desired_hash(const json_t *v)
{
        _cleanup_free_ char *text = json_dumps(v, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
        if (!text)
                return NULL;
        unsigned char h[crypto_generichash_BYTES];
        crypto_generichash(h, sizeof(h), (const unsigned char *)text, strlen(text), NULL, 0);
        char *hex = malloc(sizeof(h) * 2 + 1);
        if (hex)
                sodium_bin2hex(hex, sizeof(h) * 2 + 1, h, sizeof(h));
        return hex;
}

static int cmp_kv(const void *a, const void *b)
{
        return strcmp(((const sk_kv *)a)->key, ((const sk_kv *)b)->key);
}

static int fail(char **reason, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(char **reason, const char *fmt, ...)
{
        if (*reason)
                return 0;
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(reason, fmt, ap) < 0)
                *reason = NULL;
        va_end(ap);
        return 0;
}

/* Every variable of the model comes from a secret, which hosts cannot open yet: the
 * instance fails with that reason, and no variable has a value. */
static void check_variables(const sk_service *svc, char **reason)
{
        if (svc->variables.n > 0)
                fail(reason, "secrets are not supported yet");
}

/* "NAME=value" in the order of the names, ${VAR} and $$ expanded. */
static int build_env(const sk_kvs *env, const json_t *vars, const char *cpath, char ***out,
                     char **reason)
{
        size_t n = env->n;
        _cleanup_free_ sk_kv *sorted = calloc(n + 1, sizeof(*sorted));
        char **v = calloc(n + 1, sizeof(*v));
        if (!sorted || !v) {
                free(v);
                return -ENOMEM;
        }
        if (n)
                memcpy(sorted, env->items, n * sizeof(*sorted));
        qsort(sorted, n, sizeof(*sorted), cmp_kv);
        for (size_t k = 0; k < n; k++) {
                _cleanup_free_ char *expanded = NULL, *missing = NULL;
                int r = sk_desired_expand(sorted[k].value, vars, &expanded, &missing);
                if (r == -ENOENT) {
                        fail(reason, "%s.env.%s: unknown variable ${%s}", cpath, sorted[k].key,
                             missing ? missing : "");
                        break;
                }
                if (r < 0 || asprintf(&v[k], "%s=%s", sorted[k].key, expanded) < 0) {
                        v[k] = NULL;
                        strv_free(v);
                        return -ENOMEM;
                }
        }
        *out = v;
        return 0;
}

/* NULL when the container has no cmd (the image's own runs). */
static int build_cmd(char *const *items, size_t n, char ***out)
{
        *out = NULL;
        if (!items)
                return 0;
        char **v = calloc(n + 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (!(v[i] = strdup(items[i]))) {
                        strv_free(v);
                        return -ENOMEM;
                }
        *out = v;
        return 0;
}

static json_t *strv_json(char **v)
{
        json_t *a = json_array();
        for (char **p = v; a && p && *p; p++)
                json_array_append_new(a, json_string(*p));
        return a;
}

/* The nodes of every device label the container asks for: where each is on the host
 * (under --dev-dir) and where it appears inside the container (its /dev path). */
static int build_devices(char *const *labels, size_t n_labels, const json_t *nodes,
                         const char *cpath, sk_desired_container *c, char **reason)
{
        size_t n = 0, k;
        const json_t *node;
        for (size_t i = 0; i < n_labels; i++)
                n += json_array_size(json_object_get(nodes, labels[i]));
        if (n_labels == 0)
                return 0;
        c->devices = calloc(n + 1, sizeof(*c->devices));
        c->device_targets = calloc(n + 1, sizeof(*c->device_targets));
        if (!c->devices || !c->device_targets)
                return -ENOMEM;
        size_t at = 0;
        for (size_t i = 0; i < n_labels; i++) {
                const char *label = labels[i];
                const json_t *found = json_object_get(nodes, label);
                if (json_array_size(found) == 0)
                        return fail(reason, "%s.devices: this host has no %s device", cpath, label);
                json_array_foreach(found, k, node)
                {
                        const char *inside = json_string_value(json_object_get(node, "path"));
                        const char *host = json_string_value(json_object_get(node, "host-path"));
                        if (!inside)
                                continue;
                        c->devices[at] = strdup(host ? host : inside);
                        c->device_targets[at] = strdup(inside);
                        if (!c->devices[at++] || !c->device_targets[at - 1])
                                return -ENOMEM;
                }
        }
        return 0;
}

static const sk_restart_policy restart_of[] = {
    [SK_APP_RESTART_ALWAYS] = SK_RESTART_ALWAYS,
    [SK_APP_RESTART_ON_FAILURE] = SK_RESTART_ON_FAILURE,
    [SK_APP_RESTART_NEVER] = SK_RESTART_NEVER,
};

static int build_container(sk_desired_instance *inst, const sk_service *svc,
                           const sk_app_container *ctr, size_t ci, const json_t *vars,
                           const json_t *devices, const char *site, const char *host,
                           sk_desired_container *c)
{
        const json_t *m = inst->meta;
        const char *tenant = json_string_value(json_object_get(m, "tenant"));
        const char *dep = json_string_value(json_object_get(m, "deployment"));
        const char *sname = json_string_value(json_object_get(m, "service"));
        const char *app = json_string_value(json_object_get(m, "application"));
        const char *version = json_string_value(json_object_get(m, "version"));
        json_int_t replica = json_integer_value(json_object_get(m, "replica"));
        char cpath[128];
        snprintf(cpath, sizeof(cpath), "services[%s].containers[%zu]", sname, ci);

        const char *cname = ctr->name;
        c->container = strdup(cname);
        c->image = strdup(ctr->image);
        c->instance = inst->id;
        c->replica = replica;
        if (asprintf(&c->name, "sk-%s-%s-%s-%s-%lld-%s", host, tenant, dep, sname,
                     (long long)replica, cname) < 0)
                c->name = NULL;
        if (!c->container || !c->image || !c->name)
                return -ENOMEM;
        c->restart = ctr->restart == SK_UNSET ? SK_RESTART_ALWAYS : restart_of[ctr->restart];
        if (ctr->mounts.n > 0)
                fail(&inst->fail_reason, "volumes are not supported yet");
        int r = build_devices(ctr->devices.items, ctr->devices.n, devices, cpath, c,
                              &inst->fail_reason);
        if (r == 0)
                r = build_cmd(ctr->cmd.items, ctr->cmd.n, &c->cmd);
        if (r == 0)
                r = build_env(&ctr->env, vars, cpath, &c->env, &inst->fail_reason);
        if (r < 0)
                return r;

        /* The service's resources are requests and limits; the runtime seam has no
         * pod-level cgroup, so each container gets the service's limit. */
        if (svc->resources && svc->resources->cpu.spelling != SK_SPELLING_NONE)
                c->cpu_millicores = svc->resources->cpu.value;
        if (svc->resources && svc->resources->memory.spelling != SK_SPELLING_NONE)
                c->memory_bytes = svc->resources->memory.value;

        char replica_s[24];
        snprintf(replica_s, sizeof(replica_s), "%lld", (long long)replica);
        c->labels =
            json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "skerry.site", site,
                      "skerry.host", host, "skerry.tenant", tenant, "skerry.deployment", dep,
                      "skerry.application", app ? app : "", "skerry.version",
                      version ? version : "", "skerry.service", sname, "skerry.replica", replica_s,
                      "skerry.instance", inst->id, "skerry.container", cname);
        _cleanup_json_ json_t *shape =
            json_pack("{s:s, s:s, s:o, s:o, s:I, s:I, s:O}", "name", c->name, "image", c->image,
                      "cmd", c->cmd ? strv_json(c->cmd) : json_null(), "env", strv_json(c->env),
                      "cpu", (json_int_t)c->cpu_millicores, "memory", (json_int_t)c->memory_bytes,
                      "labels", c->labels);
        /* Only when there are any, so the hash of a container without devices stays. */
        if (shape && c->devices) {
                json_object_set_new(shape, "devices", strv_json(c->devices));
                json_object_set_new(shape, "device-targets", strv_json(c->device_targets));
        }
        if (!c->labels || !shape)
                return -ENOMEM;
        c->spec_hash = sk_desired_hash(shape);
        if (!c->spec_hash ||
            json_object_set_new(c->labels, "skerry.spec-hash", json_string(c->spec_hash)) < 0)
                return -ENOMEM;
        return 0;
}

static int build_instance(const json_t *placed, const char *site, const char *host,
                          sk_desired_instance *inst, sk_error **err)
{
        const char *id = json_string_value(json_object_get(placed, "instance"));
        const json_t *svc = json_object_get(placed, "spec");
        if (!id || !json_is_object(svc) || !json_is_string(json_object_get(placed, "tenant")) ||
            !json_is_string(json_object_get(placed, "deployment")) ||
            !json_is_string(json_object_get(placed, "service")) ||
            !json_is_integer(json_object_get(placed, "replica")))
                return sk_error_set(err, EINVAL, "placed instance %s is malformed",
                                    id ? id : "(no id)");
        inst->id = strdup(id);
        inst->meta = json_deep_copy(placed);
        if (!inst->id || !inst->meta)
                return sk_error_set(err, ENOMEM, "out of memory");
        json_object_del(inst->meta, "spec");
        json_object_del(inst->meta, "devices");
        const json_t *devices = json_object_get(placed, "devices");

        /* the service as the site's model read it; a spec it refuses fails this
         * instance alone, with the model's words */
        _cleanup_error_ sk_error *perr = NULL;
        sk_service *sv = NULL;
        int r = sk_model_new(&sk_service_table, svc, "spec", NULL, (void **)&sv, &perr);
        if (r == -ENOMEM)
                return sk_error_set(err, ENOMEM, "out of memory");
        if (r < 0) {
                fail(&inst->fail_reason, "%s", sk_error_msg(perr, r));
                return 0;
        }
        _cleanup_json_ json_t *vars = json_object();
        check_variables(sv, &inst->fail_reason);
        size_t n = sv->containers.n;
        inst->containers = calloc(n ? n : 1, sizeof(*inst->containers));
        if (!vars || !inst->containers)
                r = -ENOMEM;
        for (size_t i = 0; r == 0 && i < n; i++) {
                inst->n_containers++;
                r = build_container(inst, sv, &sv->containers.items[i], i, vars, devices, site,
                                    host, &inst->containers[i]);
        }
        sk_resource_free(&sk_service_table, sv);
        return r < 0 ? sk_error_set(err, -r, "out of memory") : 0;
}

int sk_desired_build(const json_t *placed, const char *site, const char *host, sk_desired_set *out,
                     sk_error **err)
{
        out->items = NULL;
        out->n = 0;
        size_t n = json_array_size(placed);
        out->items = calloc(n ? n : 1, sizeof(*out->items));
        if (!out->items)
                return sk_error_set(err, ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
                out->n++;
                int r = build_instance(json_array_get(placed, i), site, host, &out->items[i], err);
                if (r < 0) {
                        sk_desired_set_clear(out);
                        return r;
                }
        }
        return 0;
}

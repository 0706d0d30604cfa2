#include "agent/placement.h"

#include <stdio.h>
#include <string.h>

#include "common/cleanup.h"

static const char *str_field(const json_t *o, const char *key)
{
        return json_string_value(json_object_get(o, key));
}

/* How many replicas of a service this host runs. */
static int replica_count(const json_t *svc, const char *path, json_int_t *n, sk_error **err)
{
        const char *mode = str_field(svc, "mode");
        if (mode && strcmp(mode, "one-per-host") == 0) {
                *n = 1;
                return 0;
        }
        if (mode && strcmp(mode, "replicated") != 0)
                return sk_error_set_path(err, EINVAL, path, "unknown mode \"%s\"", mode);
        const json_t *r = json_object_get(svc, "replicas");
        if (!r) {
                *n = 1;
                return 0;
        }
        if (!json_is_integer(r) || json_integer_value(r) < 0 || json_integer_value(r) > 1000)
                return sk_error_set_path(err, EINVAL, path,
                                         "replicas must be an integer from 0 to 1000");
        *n = json_integer_value(r);
        return 0;
}

static int place_deployment(const json_t *dep, size_t di, json_t *out, sk_error **err)
{
        char path[96];
        snprintf(path, sizeof(path), "deployments[%zu]", di);
        const char *tenant = str_field(dep, "tenant"), *name = str_field(dep, "name");
        const json_t *spec = json_object_get(dep, "spec");
        if (!tenant || !name || !json_is_object(spec))
                return sk_error_set_path(err, EINVAL, path,
                                         "a deployment needs tenant, name and spec");
        const char *app = str_field(dep, "application");
        if (!app)
                app = str_field(spec, "name");
        const char *version = str_field(dep, "version");
        if (!version)
                version = str_field(spec, "version");
        const json_t *services = json_object_get(spec, "services");
        if (!json_is_array(services))
                return sk_error_set_path(err, EINVAL, path, "spec.services must be a list");
        size_t si;
        const json_t *svc;
        json_array_foreach(services, si, svc)
        {
                char spath[160];
                snprintf(spath, sizeof(spath), "%s.spec.services[%zu]", path, si);
                const char *sname = str_field(svc, "name");
                if (!sname)
                        return sk_error_set_path(err, EINVAL, spath, "a service needs a name");
                json_int_t n = 0;
                int r = replica_count(svc, spath, &n, err);
                if (r < 0)
                        return r;
                for (json_int_t i = 0; i < n; i++) {
                        _cleanup_free_ char *id = NULL;
                        if (asprintf(&id, "%s/%s/%s/%lld", tenant, name, sname, (long long)i) < 0)
                                return sk_error_set(err, ENOMEM, "out of memory");
                        json_t *inst = json_pack(
                            "{s:s, s:s, s:s, s:s?, s:s?, s:s, s:I, s:O}", "instance", id, "tenant",
                            tenant, "deployment", name, "application", app, "version", version,
                            "service", sname, "replica", (json_int_t)i, "spec", svc);
                        if (!inst || json_array_append_new(out, inst) < 0)
                                return sk_error_set(err, ENOMEM, "out of memory");
                }
        }
        return 0;
}

int sk_placement_local(const json_t *desired, const sk_placement_host *host, json_t **instances,
                       sk_error **err)
{
        _cleanup_json_ json_t *out = json_array();
        if (!out)
                return sk_error_set(err, ENOMEM, "out of memory");
        const json_t *deps = json_object_get(desired, "deployments");
        if (deps && !json_is_array(deps))
                return sk_error_set_path(err, EINVAL, "deployments", "must be a list");
        size_t di;
        const json_t *dep;
        json_array_foreach(deps, di, dep)
        {
                int r = place_deployment(dep, di, out, err);
                if (r < 0)
                        return r;
        }
        *instances = take_ptr(&out);
        return 0;
}

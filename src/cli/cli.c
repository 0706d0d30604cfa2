/* `skerry <verb> ...`: argument parsing, help and dispatch. The verbs live in verbs.c,
 * apply_cmd.c and login.c; the pure parts in config.c, format.c, api.c and apply.c. */
#include "cli/cli.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/internal.h"
#include "cli/suggest.h"
#include "common/cleanup.h"
#include "site/siteapi.h"

#ifndef SKERRY_VERSION
#define SKERRY_VERSION "0.1.0"
#endif

static int cmd_version(sk_cli_ctx *c)
{
        printf("skerry %s\n", SKERRY_VERSION);
        return SK_EXIT_OK;
}

static int cmd_help(sk_cli_ctx *c);

#define MANY ((size_t)-1)

static const sk_cli_verb verbs[] = {
    {"apply", NULL, sk_cli_cmd_apply, SK_OPT_FILE | SK_OPT_DRY_RUN, 0, 0,
     "apply -f FILE [-f FILE...] [--dry-run]",
     "Creates or updates the resources in FILE (YAML or JSON, several documents; - reads\n"
     "stdin). Every document is validated first; when any is invalid nothing is sent, and\n"
     "every error is listed, not only the first. Documents are sent in dependency order:\n"
     "tenants, users, sites, applications, deployments. --dry-run has the tower check each\n"
     "document as it would on a real apply and stores nothing."},
    {"diff", NULL, sk_cli_cmd_diff, SK_OPT_FILE, 0, 0, "diff -f FILE [-f FILE...]",
     "Shows what `apply -f FILE` would change, as a unified diff of the normalized YAML of\n"
     "each resource (what the tower stores, then what it would store). Exits 0 when\n"
     "nothing would change, 1 when something would (as diff(1) does) or on an error."},
    {"get", NULL, sk_cli_cmd_get,
     SK_OPT_OUTPUT | SK_OPT_SITE | SK_OPT_VERSION | SK_OPT_SINCE | SK_OPT_SELECTOR | SK_OPT_WATCH,
     1, 2,
     "get KIND [NAME] [-o table|wide|json|yaml|name|jsonpath=TEMPLATE] [-l EXPR] [--watch]\n"
     "        [--site S] [--version V] [--since 1h]",
     "Lists resources of KIND (singular, plural or short name: app, deploy, inst), or\n"
     "shows one. -o json prints what the API answers; -o wide adds columns; -o name prints\n"
     "KIND/NAME lines; -o jsonpath='{.items[*].name}' prints fields of the answer.\n"
     "-l EXPR keeps the resources whose labels the expression selects (the grammar of\n"
     "`skerry match`). --watch prints the table, then every row that changes, until\n"
     "interrupted (Ctrl-C). hosts and instances take --site; applications take --version.\n"
     "`get events [--since 1h]` lists the audit trail of your tenant and the tenants below\n"
     "it (admins; default: the last 24 hours)."},
    {"describe", NULL, sk_cli_cmd_describe, SK_OPT_SITE | SK_OPT_VERSION, 2, 2,
     "describe KIND NAME [--site S] [--version V]",
     "Shows every field of one resource; for a deployment also the status of its\n"
     "instances on each site."},
    {"delete", NULL, sk_cli_cmd_delete, SK_OPT_VERSION | SK_OPT_SITE | SK_OPT_FILE, 0, 2,
     "delete KIND NAME [--version V] [--site S] | delete -f FILE",
     "Deletes a resource; for an application --version removes only that version.\n"
     "-f FILE deletes the resources FILE describes (an application document: its version),\n"
     "dependents first, and lists every failure.\n"
     "`delete host NAME --site S` removes a host from its site: the tower and the site's\n"
     "hosts refuse its certificate, and its instances are placed on the others at once\n"
     "(its containers are not stopped; see docs/site-cluster.md)."},
    {"match", NULL, sk_cli_cmd_match, 0, 1, MANY, "match 'EXPR'",
     "Prints the names of the sites whose labels the expression selects, e.g.\n"
     "  skerry match 'chain = acme and region in (north, west)'"},
    {"rollout", "status", sk_cli_cmd_rollout_status, SK_OPT_WATCH | SK_OPT_TIMEOUT | SK_OPT_OUTPUT,
     1, 1, "rollout status DEPLOYMENT [--watch] [--timeout 5m] [-o json]",
     "Shows how many instances of a deployment run on each site. Exits 0 when every\n"
     "desired instance runs, 1 when not (yet). --watch repeats until done or until\n"
     "--timeout (then exits 1)."},
    {"site", "token", sk_cli_cmd_site_token, SK_OPT_TTL, 0, 1, "site token SITE [--ttl 1h]",
     "Creates a one-time join token for one host of SITE and prints it alone on stdout\n"
     "(default lifetime 1h, at most 7 days). With --site-local ADDR --agent-data DIR and no\n"
     "SITE, the site's leader makes a site-local token instead (the tower may be down), for\n"
     "`skerry agent --join TOKEN --peer ADDR:PORT`."},
    {"login", NULL, sk_cli_cmd_login, SK_OPT_PRINT, 1, 1, "login TENANT/USER [--print]",
     "Asks for the password (or reads it from stdin when that is not a terminal), logs in\n"
     "and keeps the address, CA and token in ~/.config/skerry/config.json (mode 0600).\n"
     "--print also prints the token."},
    {"user", "password", sk_cli_cmd_user_password, 0, 1, 1, "user password TENANT/USER",
     "Sets a user's password, read like login reads it."},
    {"token", "list", sk_cli_cmd_token_list, SK_OPT_OUTPUT, 0, 0, "token list [-o table|json|yaml]",
     "Lists your unexpired tokens (admins: every user's of the tenant), with their ids."},
    {"token", "create", sk_cli_cmd_token_create, SK_OPT_ROLE | SK_OPT_TTL | SK_OPT_NAME, 0, 0,
     "token create [--role viewer] [--ttl 30d] [--name TEXT]",
     "Creates an API token for automation with its own role (at most yours; default\n"
     "yours) and lifetime (default 30d, at most 366d) and prints it alone on stdout.\n"
     "It acts as you, never above --role; deleting you ends it. --role metrics (admins\n"
     "of a provider tenant): a token that reads /metrics and nothing else."},
    {"token", "revoke", sk_cli_cmd_token_revoke, 0, 1, 1, "token revoke ID",
     "Revokes a token by the id `token list` shows (your own; admins: any of the tenant)."},
    {"whoami", NULL, sk_cli_cmd_whoami, 0, 0, 0, "whoami",
     "Prints the tenant, user and role the token belongs to."},
    {"completion", NULL, sk_cli_cmd_completion, 0, 1, 1, "completion bash|zsh",
     "Prints a shell completion script for verbs, kinds, flags and resource names, e.g.\n"
     "  source <(skerry completion bash)\n"
     "  skerry completion zsh > \"${fpath[1]}/_skerry\""},
    {"version", NULL, cmd_version, 0, 0, 0, "version", "Prints skerry's version."},
    {"help", NULL, cmd_help, SK_OPT_MAN, 0, 2, "help [VERB] [--man]",
     "Shows help for a verb; --man prints this help as the skerry(1) man page (roff)."},
};

const sk_cli_verb *sk_cli_verbs(size_t *n)
{
        *n = SK_ARRAY_SIZE(verbs);
        return verbs;
}

const char sk_cli_global_help[] =
    "Global flags (also SKERRY_ADDR, SKERRY_TOKEN, SKERRY_CA, then the config file that\n"
    "`skerry login` writes; flags win):\n"
    "  --addr URL      the tower, e.g. 127.0.0.1:7443 (https:// is implied)\n"
    "  --site-local ADDR --agent-data DIR\n"
    "                  ask the agent listening at ADDR (its --listen) instead of the\n"
    "                  tower, with the host certificate in agent data folder DIR\n"
    "                  (get hosts|instances, also with the tower down)\n"
    "  --token TOKEN   bearer token\n"
    "  --ca FILE       the tower's CA certificate (its DATA/ca.pem)\n"
    "  --tenant NAME   act in a tenant below yours (admins of a provider)\n"
    "Kinds: tenant, user, site, host, application (app), deployment (deploy), instance\n"
    "(inst), singular or plural. Vaults, secrets and alerts come later.\n"
    "Colour only on a terminal; NO_COLOR=1 turns it off.\n"
    "Exit codes: 0 ok, 1 error, 2 usage error.\n";

#define global_help sk_cli_global_help

static void print_usage(FILE *f)
{
        fputs("usage: skerry VERB [ARGS] [FLAGS]\n\nVerbs:\n", f);
        for (size_t i = 0; i < SK_ARRAY_SIZE(verbs); i++)
                fprintf(f, "  skerry %s\n", verbs[i].usage);
        fputs("  skerry tower | agent | dev ...   (the server roles; see their --help)\n\n", f);
        fputs(global_help, f);
}

static void print_verb_help(FILE *f, const sk_cli_verb *v)
{
        fprintf(f, "usage: skerry %s\n\n%s\n\n%s", v->usage, v->help, global_help);
}

static const sk_cli_verb *find_verb(const char *name, const char *sub, bool *needs_sub)
{
        *needs_sub = false;
        for (size_t i = 0; i < SK_ARRAY_SIZE(verbs); i++) {
                if (strcmp(verbs[i].name, name) != 0)
                        continue;
                if (!verbs[i].sub)
                        return &verbs[i];
                *needs_sub = true;
                if (sub && strcmp(verbs[i].sub, sub) == 0)
                        return &verbs[i];
        }
        return NULL;
}

static int cmd_help(sk_cli_ctx *c)
{
        if (c->man)
                return sk_cli_write_man(stdout) < 0 ? SK_EXIT_ERROR : SK_EXIT_OK;
        if (c->nargs == 0) {
                print_usage(stdout);
                return SK_EXIT_OK;
        }
        bool needs_sub;
        const sk_cli_verb *v = find_verb(c->args[0], c->nargs > 1 ? c->args[1] : NULL, &needs_sub);
        if (!v && needs_sub) {
                /* "help site": show every verb that starts with that word. */
                for (size_t i = 0; i < SK_ARRAY_SIZE(verbs); i++)
                        if (strcmp(verbs[i].name, c->args[0]) == 0)
                                print_verb_help(stdout, &verbs[i]);
                return SK_EXIT_OK;
        }
        if (!v) {
                fprintf(stderr, "skerry: no such verb '%s'\n", c->args[0]);
                print_usage(stderr);
                return SK_EXIT_USAGE;
        }
        print_verb_help(stdout, v);
        return SK_EXIT_OK;
}

int sk_cli_fail(const sk_error *err, int r)
{
        fprintf(stderr, "skerry: %s\n", sk_error_msg(err, r));
        return SK_EXIT_ERROR;
}

int sk_cli_api_fail(const sk_cli_api_err *e)
{
        if (e->path)
                fprintf(stderr, "skerry: %s: %s\n", e->path, e->message);
        else
                fprintf(stderr, "skerry: %s\n", e->message);
        if (e->status == 401)
                fputs("skerry: log in with `skerry login TENANT/USER`, or give --token or "
                      "SKERRY_TOKEN\n",
                      stderr);
        return SK_EXIT_ERROR;
}

int sk_cli_usage_error(const sk_cli_ctx *c, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        fputs("skerry: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
        if (c && c->verb)
                fprintf(stderr, "usage: skerry %s\n", c->verb->usage);
        else
                fputs("Run 'skerry --help' for usage.\n", stderr);
        return SK_EXIT_USAGE;
}

/* The site-local API of the agent at --site-local, with a host certificate of that site
 * from --agent-data (docs/site-cluster.md): it answers with the tower down. */
static int connect_site_local(sk_cli_ctx *c)
{
        _cleanup_error_ sk_error *err = NULL;
        if (!c->agent_data)
                return sk_cli_usage_error(c, "--site-local needs --agent-data DIR (an agent's data "
                                             "folder, for its host certificate)");
        int r = sk_site_client_new(c->agent_data, &c->site_client, &err);
        if (r < 0)
                return sk_cli_fail(err, r);
        return SK_EXIT_OK;
}

static int site_local_request(sk_cli_ctx *c, const char *method, const char *path,
                              const json_t *body, json_t **out, char **raw)
{
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_json_ json_t *ans = NULL;
        long status = 0;
        int r = sk_site_client_call(c->site_client, c->site_local, method, path, body, 15000,
                                    &status, &ans, &err);
        if (r < 0)
                return sk_cli_fail(err, r);
        if (status < 200 || status > 299) {
                const char *m =
                    json_string_value(json_object_get(json_object_get(ans, "error"), "message"));
                fprintf(stderr, "skerry: %s: HTTP %ld: %s\n", c->site_local, status,
                        m ? m : "(no message)");
                return SK_EXIT_ERROR;
        }
        if (raw)
                *raw = ans ? json_dumps(ans, JSON_COMPACT) : strdup("");
        if (out)
                *out = take_ptr(&ans);
        return SK_EXIT_OK;
}

int sk_cli_connect(sk_cli_ctx *c, bool with_token)
{
        if (c->site_local)
                return connect_site_local(c);
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_free_ char *path = NULL;
        _cleanup_cli_config_ sk_cli_config file = {0};
        /* No HOME and no XDG_CONFIG_HOME: flags and environment must do. */
        if (sk_cli_config_path(getenv("XDG_CONFIG_HOME"), getenv("HOME"), &path, NULL) == 0) {
                int r = sk_cli_config_load(path, &file, &err);
                if (r < 0)
                        return sk_cli_fail(err, r);
        }
        sk_cli_config flags = {(char *)c->addr, (char *)c->token, (char *)c->ca};
        sk_cli_config env = {getenv("SKERRY_ADDR"), getenv("SKERRY_TOKEN"), getenv("SKERRY_CA")};
        int r = sk_cli_config_resolve(&flags, &env, &file, path, &c->cfg, &err);
        if (r < 0)
                return sk_cli_fail(err, r);
        sk_cli_config use = c->cfg;
        if (!with_token)
                use.token = NULL;
        r = sk_cli_client_open(&use, &c->client, &err);
        if (r < 0)
                return sk_cli_fail(err, r);
        return SK_EXIT_OK;
}

int sk_cli_request(sk_cli_ctx *c, const char *method, const char *path, const json_t *body,
                   json_t **out, char **raw)
{
        if (c->site_local)
                return site_local_request(c, method, path, body, out, raw);
        _cleanup_error_ sk_error *err = NULL;
        sk_cli_api_err api = {0};
        int r = sk_cli_call_raw(&c->client, method, path, body, out, raw, &api, &err);
        if (r == -EPROTO && api.message) {
                sk_cli_api_fail(&api);
                sk_cli_api_err_clear(&api);
                return SK_EXIT_ERROR;
        }
        if (r < 0)
                return sk_cli_fail(err, r);
        return SK_EXIT_OK;
}

/* What `get` takes besides sk_kind_lookup's words: kubectl-like short names. */
static const struct {
        const char *word;
        sk_kind kind;
} short_names[] = {
    {"deploy", SK_KIND_DEPLOYMENT}, {"deploys", SK_KIND_DEPLOYMENT}, {"inst", SK_KIND_INSTANCE},
    {"insts", SK_KIND_INSTANCE},    {"tn", SK_KIND_TENANT},
};

const char *const sk_cli_kind_words[] = {
    "tenants",     "users",  "sites",     "hosts", "applications", "apps",
    "deployments", "deploy", "instances", "inst",  "events",       NULL,
};

static bool served(sk_kind k)
{
        return k != SK_KIND_VAULT && k != SK_KIND_SECRET && k != SK_KIND_ALERT;
}

const sk_kind_info *sk_cli_kind_arg(const sk_cli_ctx *c, const char *word)
{
        const sk_kind_info *k = sk_kind_lookup(word);
        for (size_t i = 0; !k && i < SK_ARRAY_SIZE(short_names); i++)
                if (strcasecmp(word, short_names[i].word) == 0)
                        k = sk_kind_get(short_names[i].kind);
        if (k && !served(k->kind)) {
                sk_cli_usage_error(c, "the tower does not serve %s yet", k->plural);
                return NULL;
        }
        if (k)
                return k;
        const char *cands[32];
        size_t n = 0;
        for (size_t i = 0; sk_cli_kind_words[i] && n < SK_ARRAY_SIZE(cands); i++)
                cands[n++] = sk_cli_kind_words[i];
        for (int i = 0; i < SK_KIND_COUNT && n + 2 <= SK_ARRAY_SIZE(cands); i++)
                if (served((sk_kind)i)) {
                        cands[n++] = sk_kind_get((sk_kind)i)->name;
                        cands[n++] = sk_kind_get((sk_kind)i)->plural;
                }
        const char *near = sk_cli_suggest(word, cands, n);
        if (near)
                sk_cli_usage_error(c, "unknown kind '%s'; did you mean '%s'?", word, near);
        else
                sk_cli_usage_error(c,
                                   "unknown kind '%s' (one of tenant, user, site, host, "
                                   "application, deployment, instance)",
                                   word);
        return NULL;
}

enum {
        LONG_ADDR = 256,
        LONG_TOKEN,
        LONG_CA,
        LONG_TENANT,
        LONG_SITE,
        LONG_VERSION,
        LONG_TTL,
        LONG_PRINT,
        LONG_WATCH,
        LONG_SITE_LOCAL,
        LONG_AGENT_DATA,
        LONG_ROLE,
        LONG_NAME,
        LONG_SINCE,
        LONG_DRY_RUN,
        LONG_TIMEOUT,
        LONG_MAN,
};

static const struct option long_opts[] = {
    {"addr", required_argument, NULL, LONG_ADDR},
    {"token", required_argument, NULL, LONG_TOKEN},
    {"ca", required_argument, NULL, LONG_CA},
    {"tenant", required_argument, NULL, LONG_TENANT},
    {"output", required_argument, NULL, 'o'},
    {"filename", required_argument, NULL, 'f'},
    {"site", required_argument, NULL, LONG_SITE},
    {"version", required_argument, NULL, LONG_VERSION},
    {"ttl", required_argument, NULL, LONG_TTL},
    {"print", no_argument, NULL, LONG_PRINT},
    {"watch", no_argument, NULL, LONG_WATCH},
    {"site-local", required_argument, NULL, LONG_SITE_LOCAL},
    {"agent-data", required_argument, NULL, LONG_AGENT_DATA},
    {"role", required_argument, NULL, LONG_ROLE},
    {"name", required_argument, NULL, LONG_NAME},
    {"since", required_argument, NULL, LONG_SINCE},
    {"selector", required_argument, NULL, 'l'},
    {"dry-run", no_argument, NULL, LONG_DRY_RUN},
    {"timeout", required_argument, NULL, LONG_TIMEOUT},
    {"man", no_argument, NULL, LONG_MAN},
    {"help", no_argument, NULL, 'h'},
    {0},
};

static const char *opt_name(unsigned bit)
{
        switch (bit) {
        case SK_OPT_OUTPUT:
                return "-o";
        case SK_OPT_SITE:
                return "--site";
        case SK_OPT_VERSION:
                return "--version";
        case SK_OPT_TTL:
                return "--ttl";
        case SK_OPT_PRINT:
                return "--print";
        case SK_OPT_WATCH:
                return "--watch";
        case SK_OPT_ROLE:
                return "--role";
        case SK_OPT_NAME:
                return "--name";
        case SK_OPT_SINCE:
                return "--since";
        case SK_OPT_SELECTOR:
                return "-l";
        case SK_OPT_DRY_RUN:
                return "--dry-run";
        case SK_OPT_TIMEOUT:
                return "--timeout";
        case SK_OPT_MAN:
                return "--man";
        default:
                return "-f";
        }
}

static int unknown_verb(const char *word)
{
        const char *cands[SK_ARRAY_SIZE(verbs) + 3] = {"tower", "agent", "dev"};
        size_t n = 3;
        for (size_t i = 0; i < SK_ARRAY_SIZE(verbs); i++)
                cands[n++] = verbs[i].name;
        const char *near = sk_cli_suggest(word, cands, n);
        if (near)
                return sk_cli_usage_error(NULL, "unknown verb '%s'; did you mean '%s'?", word,
                                          near);
        return sk_cli_usage_error(NULL, "unknown verb '%s'", word);
}

static int cleanup_ctx(sk_cli_ctx *c, int rc)
{
        free(c->files);
        sk_site_client_free(c->site_client);
        sk_cli_client_close(&c->client);
        sk_cli_config_clear(&c->cfg);
        return rc;
}

int sk_cli_main(int argc, char **argv)
{
        sk_cli_ctx c = {0};
        unsigned seen = 0;
        bool help = false;
        c.files = calloc((size_t)argc + 1, sizeof(*c.files));
        if (!c.files)
                return SK_EXIT_ERROR;
        /* `skerry --version` alone means the version verb, as most tools do. */
        if (argc == 2 && strcmp(argv[1], "--version") == 0)
                return cleanup_ctx(&c, cmd_version(&c));

        opterr = 0;
        optind = 0; /* 0: full re-initialisation in glibc, so this can run twice */
        int ch;
        /* GNU getopt permutes, so flags may come before or after the verb and its
         * arguments; the positionals end up in argv[optind..]. */
        while ((ch = getopt_long(argc, argv, ":o:f:l:h", long_opts, NULL)) != -1) {
                switch (ch) {
                case LONG_ADDR:
                        c.addr = optarg;
                        break;
                case LONG_TOKEN:
                        c.token = optarg;
                        break;
                case LONG_CA:
                        c.ca = optarg;
                        break;
                case LONG_TENANT:
                        c.tenant = optarg;
                        break;
                case 'o':
                        c.output = optarg, seen |= SK_OPT_OUTPUT;
                        break;
                case 'f':
                        c.files[c.nfiles++] = optarg, seen |= SK_OPT_FILE;
                        break;
                case LONG_SITE:
                        c.site = optarg, seen |= SK_OPT_SITE;
                        break;
                case LONG_VERSION:
                        c.version = optarg, seen |= SK_OPT_VERSION;
                        break;
                case LONG_TTL:
                        c.ttl = optarg, seen |= SK_OPT_TTL;
                        break;
                case LONG_PRINT:
                        c.print = true, seen |= SK_OPT_PRINT;
                        break;
                case LONG_WATCH:
                        c.watch = true, seen |= SK_OPT_WATCH;
                        break;
                case LONG_SITE_LOCAL:
                        c.site_local = optarg;
                        break;
                case LONG_AGENT_DATA:
                        c.agent_data = optarg;
                        break;
                case LONG_ROLE:
                        c.role = optarg, seen |= SK_OPT_ROLE;
                        break;
                case LONG_NAME:
                        c.token_name = optarg, seen |= SK_OPT_NAME;
                        break;
                case LONG_SINCE:
                        c.since = optarg, seen |= SK_OPT_SINCE;
                        break;
                case 'l':
                        c.selector = optarg, seen |= SK_OPT_SELECTOR;
                        break;
                case LONG_DRY_RUN:
                        c.dry_run = true, seen |= SK_OPT_DRY_RUN;
                        break;
                case LONG_TIMEOUT:
                        c.timeout = optarg, seen |= SK_OPT_TIMEOUT;
                        break;
                case LONG_MAN:
                        c.man = true, seen |= SK_OPT_MAN;
                        break;
                case 'h':
                        help = true;
                        break;
                case ':':
                        return cleanup_ctx(&c, sk_cli_usage_error(NULL, "flag '%s' needs a value",
                                                                  argv[optind - 1]));
                default:
                        if (optopt > 0 && optopt < 256)
                                return cleanup_ctx(
                                    &c, sk_cli_usage_error(NULL, "unknown flag '-%c'", optopt));
                        return cleanup_ctx(
                            &c, sk_cli_usage_error(NULL, "unknown flag '%s'", argv[optind - 1]));
                }
        }
        char **pos = argv + optind;
        size_t npos = (size_t)(argc - optind);
        if (npos == 0) {
                if (help) {
                        print_usage(stdout);
                        return cleanup_ctx(&c, SK_EXIT_OK);
                }
                print_usage(stderr);
                return cleanup_ctx(&c, SK_EXIT_USAGE);
        }
        bool needs_sub;
        const sk_cli_verb *v = find_verb(pos[0], npos > 1 ? pos[1] : NULL, &needs_sub);
        if (!v && needs_sub && help) {
                for (size_t i = 0; i < SK_ARRAY_SIZE(verbs); i++)
                        if (strcmp(verbs[i].name, pos[0]) == 0)
                                print_verb_help(stdout, &verbs[i]);
                return cleanup_ctx(&c, SK_EXIT_OK);
        }
        if (!v && needs_sub) {
                fprintf(stderr, "skerry: '%s' needs one of:", pos[0]);
                for (size_t i = 0; i < SK_ARRAY_SIZE(verbs); i++)
                        if (strcmp(verbs[i].name, pos[0]) == 0)
                                fprintf(stderr, " %s", verbs[i].sub);
                fputc('\n', stderr);
                for (size_t i = 0; i < SK_ARRAY_SIZE(verbs); i++)
                        if (strcmp(verbs[i].name, pos[0]) == 0)
                                fprintf(stderr, "usage: skerry %s\n", verbs[i].usage);
                return cleanup_ctx(&c, SK_EXIT_USAGE);
        }
        if (!v)
                return cleanup_ctx(&c, unknown_verb(pos[0]));
        c.verb = v;
        if (help) {
                print_verb_help(stdout, v);
                return cleanup_ctx(&c, SK_EXIT_OK);
        }
        size_t words = v->sub ? 2 : 1;
        c.args = pos + words;
        c.nargs = npos - words;
        unsigned extra = seen & ~v->opts;
        if (extra) {
                unsigned bit = extra & -extra;
                return cleanup_ctx(&c, sk_cli_usage_error(&c, "'%s%s%s' does not take %s", v->name,
                                                          v->sub ? " " : "", v->sub ? v->sub : "",
                                                          opt_name(bit)));
        }
        if (c.nargs < v->min_args)
                return cleanup_ctx(&c, sk_cli_usage_error(&c, "missing argument"));
        if (c.nargs > v->max_args)
                return cleanup_ctx(
                    &c, sk_cli_usage_error(&c, "unexpected argument '%s'", c.args[v->max_args]));
        return cleanup_ctx(&c, v->fn(&c));
}

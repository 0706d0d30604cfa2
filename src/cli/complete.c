/* `skerry completion bash|zsh`: scripts built from the verbs' table, so a new verb or flag
 * completes without editing a script. Resource names come from `skerry get KIND -o name`
 * at completion time. */
#include <stdio.h>
#include <string.h>

#include "cli/internal.h"

static const char flags[] = "--addr --token --ca --tenant --site --version --output --filename "
                            "--selector --watch --dry-run --timeout --ttl --role --name --since "
                            "--print --site-local --agent-data --help";
static const char outputs[] = "table wide json yaml name jsonpath=";

/* Verbs once each ("site token" and "site ..." give "site"). */
static void put_verbs(FILE *f, const sk_cli_verb *v, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                bool dup = false;
                for (size_t j = 0; j < i; j++)
                        dup |= strcmp(v[i].name, v[j].name) == 0;
                if (!dup)
                        fprintf(f, "%s ", v[i].name);
        }
}

static void put_kinds(FILE *f)
{
        for (size_t i = 0; sk_cli_kind_words[i]; i++)
                fprintf(f, "%s%s", i ? " " : "", sk_cli_kind_words[i]);
}

/* One `case` arm per verb with second words: "site) OPEN token CLOSE". */
static void put_subs(FILE *f, const sk_cli_verb *v, size_t n, const char *open, const char *close)
{
        for (size_t i = 0; i < n; i++) {
                if (!v[i].sub || (i > 0 && v[i - 1].sub && strcmp(v[i - 1].name, v[i].name) == 0))
                        continue;
                fprintf(f, "        %s) %s", v[i].name, open);
                for (size_t j = i; j < n && v[j].sub && strcmp(v[j].name, v[i].name) == 0; j++)
                        fprintf(f, "%s%s", j > i ? " " : "", v[j].sub);
                fputs(close, f);
        }
}

static void bash(FILE *f, const sk_cli_verb *v, size_t n)
{
        fputs("# bash completion for skerry: source <(skerry completion bash)\n"
              "_skerry() {\n"
              "    local cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n"
              "    local verbs=\"",
              f);
        put_verbs(f, v, n);
        fputs("tower agent dev\"\n    local kinds=\"", f);
        put_kinds(f);
        fprintf(f,
                "\"\n    local flags=\"%s\"\n"
                "    case \"$prev\" in\n"
                "        -o|--output) COMPREPLY=($(compgen -W \"%s\" -- \"$cur\")); return ;;\n"
                "        -f|--filename|--ca|--agent-data) COMPREPLY=($(compgen -f -- \"$cur\")); "
                "return ;;\n"
                "    esac\n"
                "    if [[ \"$cur\" == -* ]]; then\n"
                "        COMPREPLY=($(compgen -W \"$flags\" -- \"$cur\")); return\n"
                "    fi\n"
                "    if [ \"$COMP_CWORD\" -eq 1 ]; then\n"
                "        COMPREPLY=($(compgen -W \"$verbs\" -- \"$cur\")); return\n"
                "    fi\n"
                "    local words=\"\"\n"
                "    case \"${COMP_WORDS[1]}\" in\n"
                "        get|describe|delete)\n"
                "            if [ \"$COMP_CWORD\" -eq 2 ]; then words=\"$kinds\"\n"
                "            elif [ \"$COMP_CWORD\" -eq 3 ]; then\n"
                "                words=\"$(\"${COMP_WORDS[0]}\" get \"${COMP_WORDS[2]}\" -o name "
                "2>/dev/null | sed 's|.*/||')\"\n"
                "            fi ;;\n"
                "        rollout)\n"
                "            if [ \"$COMP_CWORD\" -eq 2 ]; then words=\"status\"\n"
                "            else words=\"$(\"${COMP_WORDS[0]}\" get deployments -o name "
                "2>/dev/null | sed 's|.*/||')\"; fi ;;\n"
                "        completion) words=\"bash zsh\" ;;\n"
                "        help) words=\"$verbs\" ;;\n",
                flags, outputs);
        put_subs(f, v, n, "[ \"$COMP_CWORD\" -eq 2 ] && words=\"", "\" ;;\n");
        fputs("    esac\n"
              "    COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
              "}\n"
              "complete -F _skerry skerry\n",
              f);
}

static void zsh(FILE *f, const sk_cli_verb *v, size_t n)
{
        fputs("#compdef skerry\n"
              "# zsh completion for skerry: skerry completion zsh > \"${fpath[1]}/_skerry\"\n"
              "_skerry() {\n"
              "    local -a verbs kinds flags outputs names\n"
              "    verbs=(",
              f);
        put_verbs(f, v, n);
        fputs("tower agent dev)\n    kinds=(", f);
        put_kinds(f);
        fprintf(f,
                ")\n    flags=(%s)\n    outputs=(%s)\n"
                "    case \"$words[CURRENT-1]\" in\n"
                "        -o|--output) compadd -a outputs; return ;;\n"
                "        -f|--filename|--ca|--agent-data) _files; return ;;\n"
                "    esac\n"
                "    if [[ \"$words[CURRENT]\" == -* ]]; then compadd -a flags; return; fi\n"
                "    if (( CURRENT == 2 )); then compadd -a verbs; return; fi\n"
                "    case \"$words[2]\" in\n"
                "        get|describe|delete)\n"
                "            if (( CURRENT == 3 )); then compadd -a kinds\n"
                "            elif (( CURRENT == 4 )); then\n"
                "                names=(${(f)\"$($words[1] get $words[3] -o name 2>/dev/null)\"})\n"
                "                compadd -- ${names##*/}\n"
                "            fi ;;\n"
                "        rollout)\n"
                "            if (( CURRENT == 3 )); then compadd status\n"
                "            else\n"
                "                names=(${(f)\"$($words[1] get deployments -o name "
                "2>/dev/null)\"})\n"
                "                compadd -- ${names##*/}\n"
                "            fi ;;\n"
                "        completion) compadd bash zsh ;;\n"
                "        help) compadd -a verbs ;;\n",
                flags, outputs);
        put_subs(f, v, n, "(( CURRENT == 3 )) && compadd ", " ;;\n");
        fputs("    esac\n"
              "}\n"
              "if [ \"$funcstack[1]\" = \"_skerry\" ]; then _skerry \"$@\"; else compdef _skerry "
              "skerry; fi\n",
              f);
}

int sk_cli_cmd_completion(sk_cli_ctx *c)
{
        size_t n;
        const sk_cli_verb *v = sk_cli_verbs(&n);
        if (strcmp(c->args[0], "bash") == 0)
                bash(stdout, v, n);
        else if (strcmp(c->args[0], "zsh") == 0)
                zsh(stdout, v, n);
        else
                return sk_cli_usage_error(c, "completion is for bash or zsh, not '%s'", c->args[0]);
        return ferror(stdout) ? SK_EXIT_ERROR : SK_EXIT_OK;
}

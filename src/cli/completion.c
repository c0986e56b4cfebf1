/* `blnkproxy completion bash|zsh`: shell completion scripts generated from the command rows
 * (cli-int.h) and the settings table (config.h), the rows the parser and --help use. The
 * scripts hold the data as case tables and a small fixed driver; nothing in them is written by
 * hand per command. */
#include <stdio.h>
#include <string.h>

#include "cli/cli-int.h"
#include "config/config.h"
#include "lib/bug.h"

/* What serve's settings complete to: a file for the paths, the words of an enumerated type
 * (booleans are switches: the flag alone means true). */
static const char *
setting_complete(const struct bp_config_setting_doc *d)
{
    if (d->value_name == NULL) {
        return NULL;
    }
    if (strcmp(d->value_name, "DSN") == 0 || strcmp(d->value_name, "FILE") == 0) {
        return "@file";
    }
    return d->values;
}

/* ---- bash ---- */

/* One row of _blnkproxy_value: "cmd/verb/--opt") prints what its value completes to. */
static void
bash_value_row(FILE *f, const char *cmd, const char *verb, const char *opt, const char *complete)
{
    /* Unquoted patterns: the global rows match any command with '*'. */
    fprintf(f, "    %s/%s/%s) echo '%s' ;;\n", cmd, verb, opt, complete != NULL ? complete : "");
}

static void
bash_values(FILE *f, const struct bp_cli_family *const *cmds, size_t n)
{
    fputs("# $1 command, $2 verb, $3 option: prints what the option's value completes to (@file,\n"
          "# @env, @commands or words); fails for an option that takes no value.\n"
          "_blnkproxy_value()\n{\n    case \"$1/$2/$3\" in\n",
          f);
    for (size_t i = 0; i < BP_ARRAY_LEN(bp_cli__global_opts); i++) {
        const struct bp_cli_opt *o = &bp_cli__global_opts[i];
        if (o->value != NULL) {
            bash_value_row(f, "*", "*", o->name, o->complete);
        }
    }
    for (size_t i = 0; i < n; i++) {
        const struct bp_cli_family *fam = cmds[i];
        if (fam->hidden) {
            continue;
        }
        for (size_t v = 0; v < fam->nverbs; v++) {
            const struct bp_cli_verb *verb = &fam->verbs[v];
            for (size_t k = 0; k < verb->nopts; k++) {
                if (verb->opts[k].value != NULL) {
                    bash_value_row(f, fam->name, verb->name != NULL ? verb->name : "", verb->opts[k].name,
                                   verb->opts[k].complete);
                }
            }
        }
        if (fam->settings) {
            for (size_t s = 0; s < bp_config_setting_count(); s++) {
                struct bp_config_setting_doc d;
                bp_config_setting_doc(s, &d);
                if (d.value_name != NULL) {
                    bash_value_row(f, fam->name, "", d.flag, setting_complete(&d));
                }
            }
        }
    }
    fputs("    *) return 1 ;;\n    esac\n}\n\n", f);
}

static void
bash_opts(FILE *f, const struct bp_cli_family *const *cmds, size_t n)
{
    fputs("# $1 command, $2 verb: its options.\n_blnkproxy_opts()\n{\n    case \"$1/$2\" in\n", f);
    for (size_t i = 0; i < n; i++) {
        const struct bp_cli_family *fam = cmds[i];
        if (fam->hidden) {
            continue;
        }
        for (size_t v = 0; v < fam->nverbs; v++) {
            const struct bp_cli_verb *verb = &fam->verbs[v];
            fprintf(f, "    %s/%s) echo '", fam->name, verb->name != NULL ? verb->name : "");
            for (size_t k = 0; k < verb->nopts; k++) {
                fprintf(f, "%s ", verb->opts[k].name);
            }
            if (fam->settings) {
                for (size_t s = 0; s < bp_config_setting_count(); s++) {
                    struct bp_config_setting_doc d;
                    bp_config_setting_doc(s, &d);
                    fprintf(f, "%s ", d.flag);
                }
            }
            fputs("--help' ;;\n", f);
        }
    }
    fputs("    *) echo '--help' ;;\n    esac\n}\n\n", f);
}

static void
bash_verbs(FILE *f, const struct bp_cli_family *const *cmds, size_t n)
{
    fputs("# $1 command: its verbs; fails for a command without verbs.\n_blnkproxy_verbs()\n{\n"
          "    case \"$1\" in\n",
          f);
    for (size_t i = 0; i < n; i++) {
        const struct bp_cli_family *fam = cmds[i];
        if (fam->hidden || bp_cli__is_simple(fam)) {
            continue;
        }
        fprintf(f, "    %s) echo '", fam->name);
        for (size_t v = 0; v < fam->nverbs; v++) {
            fprintf(f, "%s%s", v > 0 ? " " : "", fam->verbs[v].name);
        }
        fputs("' ;;\n", f);
    }
    fputs("    *) return 1 ;;\n    esac\n}\n\n", f);
    fputs("# $1 command, $2 verb: what its positional arguments complete to.\n_blnkproxy_args()\n{\n"
          "    case \"$1/$2\" in\n",
          f);
    for (size_t i = 0; i < n; i++) {
        const struct bp_cli_family *fam = cmds[i];
        for (size_t v = 0; !fam->hidden && v < fam->nverbs; v++) {
            if (fam->verbs[v].args_complete != NULL) {
                fprintf(f, "    %s/%s) echo '%s' ;;\n", fam->name,
                        fam->verbs[v].name != NULL ? fam->verbs[v].name : "", fam->verbs[v].args_complete);
            }
        }
    }
    fputs("    *) return 1 ;;\n    esac\n}\n\n", f);
}

static const char bash_driver[] =
    "# $1 what to complete to (see _blnkproxy_value), $2 the word so far.\n"
    "_blnkproxy_complete()\n"
    "{\n"
    "    case $1 in\n"
    "    @file) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- \"$2\")) ;;\n"
    "    @env) COMPREPLY=($(compgen -e -- \"$2\")) ;;\n"
    "    @commands) COMPREPLY=($(compgen -W \"$_blnkproxy_commands\" -- \"$2\")) ;;\n"
    "    *) COMPREPLY=($(compgen -W \"$1\" -- \"$2\")) ;;\n"
    "    esac\n"
    "}\n"
    "\n"
    "_blnkproxy()\n"
    "{\n"
    "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n"
    "    local cmd='' verb='' w kind i\n"
    "    COMPREPLY=()\n"
    "    # The command and its verb are the first words that are neither options nor their values.\n"
    "    for ((i = 1; i < COMP_CWORD; i++)); do\n"
    "        w=${COMP_WORDS[i]}\n"
    "        if [[ $w == -* ]]; then\n"
    "            if [[ $w != *=* ]] && _blnkproxy_value \"$cmd\" \"$verb\" \"$w\" >/dev/null; then\n"
    "                ((i++))\n"
    "            fi\n"
    "        elif [[ -z $cmd ]]; then\n"
    "            cmd=$w\n"
    "        elif [[ -z $verb ]] && _blnkproxy_verbs \"$cmd\" >/dev/null; then\n"
    "            verb=$w\n"
    "        fi\n"
    "    done\n"
    "    if ((COMP_CWORD > 1)) && [[ $prev == -* ]] && kind=$(_blnkproxy_value \"$cmd\" \"$verb\" "
    "\"$prev\"); then\n"
    "        [[ -n $kind ]] && _blnkproxy_complete \"$kind\" \"$cur\"\n"
    "        return 0\n"
    "    fi\n"
    "    if [[ $cur == -* ]]; then\n"
    "        if [[ -z $cmd ]]; then\n"
    "            COMPREPLY=($(compgen -W \"$_blnkproxy_globals --version --help\" -- \"$cur\"))\n"
    "        else\n"
    "            COMPREPLY=($(compgen -W \"$(_blnkproxy_opts \"$cmd\" \"$verb\") $_blnkproxy_globals\" -- "
    "\"$cur\"))\n"
    "        fi\n"
    "        return 0\n"
    "    fi\n"
    "    if [[ -z $cmd ]]; then\n"
    "        COMPREPLY=($(compgen -W \"$_blnkproxy_commands\" -- \"$cur\"))\n"
    "    elif [[ -z $verb ]] && kind=$(_blnkproxy_verbs \"$cmd\"); then\n"
    "        COMPREPLY=($(compgen -W \"$kind\" -- \"$cur\"))\n"
    "    elif kind=$(_blnkproxy_args \"$cmd\" \"$verb\"); then\n"
    "        _blnkproxy_complete \"$kind\" \"$cur\"\n"
    "    fi\n"
    "    return 0\n"
    "}\n"
    "\n"
    "complete -F _blnkproxy blnkproxy\n";

static void
bash(FILE *f)
{
    size_t n = 0;
    const struct bp_cli_family *const *cmds = bp_cli__commands(&n);

    fputs("# bash completion for blnkproxy, generated by `blnkproxy completion bash` from the tables\n"
          "# its parser and --help use. Install: /usr/share/bash-completion/completions/blnkproxy, or\n"
          "# source <(blnkproxy completion bash)\n\n",
          f);
    fputs("_blnkproxy_commands='", f);
    for (size_t i = 0, k = 0; i < n; i++) {
        if (!cmds[i]->hidden) {
            fprintf(f, "%s%s", k++ > 0 ? " " : "", cmds[i]->name);
        }
    }
    fputs("'\n_blnkproxy_globals='", f);
    for (size_t i = 0; i < BP_ARRAY_LEN(bp_cli__global_opts); i++) {
        fprintf(f, "%s%s", i > 0 ? " " : "", bp_cli__global_opts[i].name);
    }
    fputs("'\n\n", f);
    bash_values(f, cmds, n);
    bash_opts(f, cmds, n);
    bash_verbs(f, cmds, n);
    fputs(bash_driver, f);
}

/* ---- zsh ---- */

/* text inside a single-quoted zsh word, also escaped for _arguments' [description] and
 * :message: parts. */
static void
zsh_text(FILE *f, const char *text)
{
    for (const char *p = text; *p != '\0'; p++) {
        if (*p == '\'') {
            fputs("'\\''", f);
        } else if (*p == '[' || *p == ']' || *p == ':' || *p == '\\') {
            fprintf(f, "\\%c", *p);
        } else {
            fputc(*p, f);
        }
    }
}

static void
zsh_action(FILE *f, const char *complete)
{
    if (complete == NULL) {
        fputs(" ", f);
    } else if (strcmp(complete, "@file") == 0) {
        fputs("_files", f);
    } else if (strcmp(complete, "@env") == 0) {
        fputs("_parameters -g \"*export*\"", f);
    } else if (strcmp(complete, "@commands") == 0) {
        fputs("_blnkproxy_command_names", f);
    } else {
        /* A ':' in a word ends the _arguments field unless escaped: unescaped, a value list
         * like (proxy:read proxy:write) offered nothing at all. */
        fputc('(', f);
        for (const char *p = complete; *p != '\0'; p++) {
            if (*p == ':' || *p == '\\') {
                fputc('\\', f);
            } else if (*p == '\'') {
                fputs("'\\''", f);
                continue;
            }
            fputc(*p, f);
        }
        fputc(')', f);
    }
}

/* One _arguments spec: '(excluded)--name[help]:VALUE:action'. */
static void
zsh_opt(FILE *f, const struct bp_cli_verb *v, const struct bp_cli_opt *o)
{
    fputs(" \\\n      '", f);
    if (o->repeatable) {
        fputc('*', f);
    } else if (o->group != 0) {
        fputc('(', f);
        for (size_t k = 0, m = 0; k < v->nopts; k++) {
            if (v->opts[k].group == o->group && &v->opts[k] != o) {
                fprintf(f, "%s%s", m++ > 0 ? " " : "", v->opts[k].name);
            }
        }
        fputc(')', f);
    }
    fputs(o->name, f);
    fputc('[', f);
    zsh_text(f, o->help);
    fputc(']', f);
    if (o->value != NULL) {
        fputc(':', f);
        zsh_text(f, o->value);
        fputc(':', f);
        zsh_action(f, o->complete);
    }
    fputc('\'', f);
}

static void
zsh_args(FILE *f, const struct bp_cli_family *fam, const struct bp_cli_verb *v)
{
    fputs("_arguments -S : \"${_blnkproxy_globals[@]}\"", f);
    for (size_t k = 0; k < v->nopts; k++) {
        zsh_opt(f, v, &v->opts[k]);
    }
    if (fam->settings) {
        for (size_t s = 0; s < bp_config_setting_count(); s++) {
            struct bp_config_setting_doc d;
            bp_config_setting_doc(s, &d);
            fputs(" \\\n      '", f);
            fputs(d.flag, f);
            fputc('[', f);
            zsh_text(f, d.meaning);
            fputc(']', f);
            if (d.value_name != NULL) {
                fputc(':', f);
                zsh_text(f, d.value_name);
                fputc(':', f);
                zsh_action(f, setting_complete(&d));
            }
            fputc('\'', f);
        }
    }
    if (v->args != NULL) {
        fprintf(f, " \\\n      '%s:", v->min_args > 0 ? "" : ":");
        zsh_text(f, v->args);
        fputc(':', f);
        zsh_action(f, v->args_complete);
        fputc('\'', f);
    }
    fputc('\n', f);
}

static void
zsh_family(FILE *f, const struct bp_cli_family *fam)
{
    fprintf(f, "_blnkproxy_%s()\n{\n", fam->name);
    if (bp_cli__is_simple(fam)) {
        fputs("    ", f);
        zsh_args(f, fam, &fam->verbs[0]);
        fputs("}\n\n", f);
        return;
    }
    fputs("    local -a verbs\n    verbs=(", f);
    for (size_t v = 0; v < fam->nverbs; v++) {
        fprintf(f, "\n        '%s:", fam->verbs[v].name);
        zsh_text(f, fam->verbs[v].help);
        fputc('\'', f);
    }
    fputs("\n    )\n", f);
    fprintf(f,
            "    if (( CURRENT == 2 )); then\n        _describe -t verbs '%s command' verbs\n        return\n"
            "    fi\n",
            fam->name);
    fputs("    local verb=$words[2]\n    shift words\n    (( CURRENT-- ))\n    case $verb in\n", f);
    for (size_t v = 0; v < fam->nverbs; v++) {
        fprintf(f, "    %s)\n        ", fam->verbs[v].name);
        zsh_args(f, fam, &fam->verbs[v]);
        fputs("        ;;\n", f);
    }
    fputs("    esac\n}\n\n", f);
}

static void
zsh(FILE *f)
{
    size_t n = 0;
    const struct bp_cli_family *const *cmds = bp_cli__commands(&n);

    fputs("#compdef blnkproxy\n"
          "# zsh completion for blnkproxy, generated by `blnkproxy completion zsh` from the tables its\n"
          "# parser and --help use. Install: /usr/share/zsh/vendor-completions/_blnkproxy.\n\n",
          f);
    fputs("_blnkproxy_globals=(", f);
    for (size_t i = 0; i < BP_ARRAY_LEN(bp_cli__global_opts); i++) {
        zsh_opt(f, &(struct bp_cli_verb){.opts = bp_cli__global_opts, .nopts = 2}, &bp_cli__global_opts[i]);
    }
    fputs("\n)\n\n_blnkproxy_command_names()\n{\n    local -a commands\n    commands=(", f);
    for (size_t i = 0; i < n; i++) {
        if (!cmds[i]->hidden) {
            fprintf(f, "\n        '%s:", cmds[i]->name);
            zsh_text(f, cmds[i]->help);
            fputc('\'', f);
        }
    }
    fputs("\n    )\n    _describe -t commands 'blnkproxy command' commands\n}\n\n", f);
    for (size_t i = 0; i < n; i++) {
        if (!cmds[i]->hidden) {
            zsh_family(f, cmds[i]);
        }
    }
    fputs("_blnkproxy()\n{\n"
          "    local curcontext=$curcontext state line\n"
          "    _arguments -C : \"${_blnkproxy_globals[@]}\" \\\n"
          "      '(- *)'{-V,--version}'[print the version and the git revision]' \\\n"
          "      '(- *)'{-h,--help}'[print the usage]' \\\n"
          "      '1:command:_blnkproxy_command_names' \\\n"
          "      '*:: :->args'\n"
          "    [[ $state == args ]] || return\n"
          "    (( $+functions[_blnkproxy_$words[1]] )) && _blnkproxy_$words[1]\n"
          "}\n\n"
          "_blnkproxy \"$@\"\n",
          f);
}

bp_err
bp_cli__completion(FILE *f, const char *shell)
{
    if (strcmp(shell, "bash") == 0) {
        bash(f);
    } else if (strcmp(shell, "zsh") == 0) {
        zsh(f);
    } else {
        return BP_ERR_INVALID;
    }
    return BP_OK;
}

# Prints the candidates zsh's completion system offers for `blnkproxy WORDS<TAB>`, one line per
# call of compadd (space-separated), as an interactive zsh would: the script of
# `BIN completion zsh` installed as _blnkproxy in a directory on $fpath, compinit, then the words
# typed into a real interactive zsh on a pseudo-terminal (zsh/zpty) and TAB bound to complete-word.
# compadd is wrapped to print what it is given to add, and a post-completion function prints an
# end marker, so reading stops when the completion is done instead of after a sleep. The markers
# are printed as "@@""X" so that the terminal's echo of the typed definitions never matches them.
#
#   zsh -f zsh_complete.zsh BIN DIR WORDS    (DIR: an empty directory for _blnkproxy)
zmodload zsh/zpty || exit 3
bin=$1
dir=$2
words=$3
"$bin" completion zsh >"$dir/_blnkproxy" || exit 5
zpty shell zsh -f -i
zpty -w shell 'PS1="" PS2="" RPS1=""'
zpty -w shell "fpath=(${(q)dir} \$fpath); autoload -Uz compinit && compinit -u -D"
zpty -w shell 'compadd() { local -a __m; builtin compadd -O __m "$@"; (( ${#__m} )) && print -r -- "@@""M ${(j: :)__m}"; builtin compadd "$@" }'
zpty -w shell '__bp_done() { print -r -- "@@""END" }; comppostfuncs=(__bp_done)'
zpty -w shell 'bindkey "^I" complete-word; zstyle ":completion:*" list-prompt ""; zstyle ":completion:*" menu no'
zpty -w shell 'print -r -- "@@""READY"'
zpty -r shell line '*@@READY*' || exit 4
zpty -n -w shell "blnkproxy ${words}"$'\t'
zpty -r shell out '*@@END*' || exit 6
zpty -d shell
print -r -- "$out" | tr -d '\r' | grep -ao '@@M [^@]*' | sed 's/^@@M //; s/ *$//'

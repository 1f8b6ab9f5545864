#!/usr/bin/env bash
# completion.sh BIN > dynmm.bash: bash completion for dynmm, made from the binary: its commands
# (`dynmm --help`), each command's options (the --flags of its usage line) and every config key
# with the choices of enumerated ones (`dynmm config --keys`), so it completes what this build
# accepts. `make completion` writes $(BUILD)/dynmm.bash; `make install` installs it into
# share/bash-completion/completions/dynmm (or: source it from ~/.bashrc).
#
# Completes: the command; after --set/-s a key (group.key=) and, for enumerated keys, its values;
# options of the command after '-'; otherwise files (configs, HDF5 files, run and sweep directories).
set -eu -o pipefail
BIN=${1:?usage: completion.sh BIN}
. "$(dirname "$0")/help_lib.sh"
"$BIN" config --keys > "$T/_keys"
cmds=$(awk '/^commands:/{c=1; next} c && /^$/{exit} c {print $1}' "$T/_main")
version=$("$BIN" --version | head -n 1)
echo "# bash completion for dynmm: made by doc/completion.sh from $version; regenerate, do not edit."
echo "_dynmm_commands='$(echo $cmds) help'"
echo "_dynmm_keys='$(cut -f1 "$T/_keys" | tr '\n' ' ' | sed 's/ $//')'"
echo "declare -A _dynmm_choices=("
awk -F '\t' 'NF == 2 { gsub(/\|/, " ", $2); printf "  [%s]=\"%s\"\n", $1, $2 }' "$T/_keys"
echo ")"
echo "declare -A _dynmm_options=("
for c in $cmds; do
  opts=$(awk '/^usage:/{u=1} u && /^$/{exit} u {print}' "$T/$c" | grep -oE -- '--[a-z][a-z-]*' | grep -v -- '^--set$' | sort -u | tr '\n' ' ' || true)
  printf '  [%s]="%s--set -v -q --help"\n' "$c" "$opts"
done
echo ")"
cat <<'BODY'
_dynmm() {
  local cur prev cmd
  cur=${COMP_WORDS[COMP_CWORD]}
  prev=${COMP_WORDS[COMP_CWORD-1]}
  if [ "$COMP_CWORD" -eq 1 ]; then
    mapfile -t COMPREPLY < <(compgen -W "$_dynmm_commands --help --version" -- "$cur")
    return
  fi
  cmd=${COMP_WORDS[1]}
  if [ "$cmd" = help ]; then
    mapfile -t COMPREPLY < <(compgen -W "$_dynmm_commands" -- "$cur")
    return
  fi
  if [ "$prev" = --set ] || [ "$prev" = -s ]; then
    if [[ "$cur" == *=* ]]; then
      local key=${cur%%=*}
      [ -n "${_dynmm_choices[$key]:-}" ] && mapfile -t COMPREPLY < <(compgen -P "$key=" -W "${_dynmm_choices[$key]}" -- "${cur#*=}")
    else
      compopt -o nospace 2>/dev/null
      mapfile -t COMPREPLY < <(compgen -S = -W "$_dynmm_keys" -- "$cur")
    fi
    return
  fi
  if [[ "$cur" == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "${_dynmm_options[$cmd]:---set -v -q --help}" -- "$cur")
    return
  fi
  compopt -o filenames 2>/dev/null
  mapfile -t COMPREPLY < <(compgen -f -- "$cur")
}
complete -F _dynmm dynmm
BODY

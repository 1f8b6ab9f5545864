# help_lib.sh: what doc/man.sh and doc/completion.sh share (sourced, with BIN set to the binary):
# runs the binary once for all its help texts (Open MPI allowed to start as root) and splits them
# into a temporary directory $T, removed on exit: $T/_main the main usage, $T/<command> each
# command's --help.
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
# one process: the usage, then each command's help after a line "\f<name>"
"$BIN" help --all | awk -v d="$T" 'BEGIN {f = d "/_main"} /^\f/ {f = d "/" substr($0, 2); next} {print > f}'

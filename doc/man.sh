#!/usr/bin/env bash
# man.sh BIN > dynmm.1: the manual page of dynmm, made from the binary's own --help texts (the main
# usage and every command's), so it says exactly what `dynmm <command> --help` says.
# `make man` writes $(BUILD)/dynmm.1 with it; `make install` installs it into share/man/man1.
#
# Conversion: "usage:" lines (and their indented continuation) become a bold synopsis, blank lines
# paragraph breaks, indented lines (examples, lists) unfilled indented blocks, the rest filled text;
# backslashes, leading dots and quotes, and hyphens are escaped for roff.
set -eu -o pipefail
BIN=${1:?usage: man.sh BIN}
. "$(dirname "$0")/help_lib.sh"
main=$(cat "$T/_main")
version=$("$BIN" --version | head -n 1 | sed 's/^dynmm //')
date=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%d)
# the command names and summaries of the main usage ("  name   summary" under "commands:")
cmds=$(printf '%s\n' "$main" | awk '/^commands:/{c=1; next} c && /^$/{exit} c {print}')

# roff from help text on stdin
to_roff() {
  awk '
    function esc(s) { gsub(/\\/, "\\e", s); gsub(/-/, "\\-", s); if (s ~ /^[.'"'"']/) s = "\\&" s; return s }
    function close_block() { if (blk) { print ".fi"; print ".RE"; blk = 0 } }
    /^usage:/ { close_block(); sub(/^usage: */, ""); print ".nf"; print "\\fB" esc($0) "\\fR"; inuse = 1; next }
    inuse && /^ +[^ ]/ { sub(/^ +/, ""); if ($0 !~ /^dynmm /) $0 = "  " $0; print "\\fB" esc($0) "\\fR"; next }
    inuse { print ".fi"; inuse = 0 }
    /^$/ { close_block(); print ".PP"; next }
    /^  / { if (!blk) { print ".RS 4"; print ".nf"; blk = 1 } sub(/^  /, ""); print esc($0); next }
    { close_block(); print esc($0) }
    END { if (inuse) print ".fi"; close_block() }'
}

cat <<HEAD
.\" dynmm.1: made by doc/man.sh from the --help texts of dynmm $version; regenerate, do not edit.
.TH DYNMM 1 "$date" "dynmm $version" "User Commands"
.SH NAME
dynmm \\- train, evaluate and report LLM-based recommenders (frozen CF model and LM joined by trained projectors), under MPI
.SH SYNOPSIS
HEAD
printf '%s\n' "$main" | awk '/^commands:/{exit} {print}' | to_roff
echo ".SH COMMANDS"
printf '%s\n' "$cmds" | while read -r name summary; do
  printf '.TP\n.B %s\n%s\n' "$name" "$(printf '%s\n' "$summary" | sed 's/\\/\\e/g; s/-/\\-/g')"
done
echo ".SH OPTIONS"
printf '%s\n' "$main" | awk '/^options of every command:/{c=1; next} c {print}' | to_roff
echo '.SH "COMMAND DETAILS"'
printf '%s\n' "$cmds" | while read -r name summary; do
  echo ".SS $name"
  to_roff < "$T/$name"
done
cat <<'TAIL'
.SH FILES
.TP
.I configs/reference.cfg
every config key with its documentation, type, range and default (\fBdynmm config \-\-reference\fR);
installed under \fIshare/dynmm/configs/\fR with the shipped configs and sweeps
.TP
.I share/dynmm/jobs/
the Slurm and workstation job scripts (run.sbatch, sweep.sbatch, eval.sbatch)
.TP
.I <run.dir>/*.h5
the outputs of the stages (HDF5, with their provenance); \fBdynmm info\fR describes any of them,
\fBdynmm export\fR writes their per-user metrics as CSV
.SH ENVIRONMENT
.TP
.B OMPI_ALLOW_RUN_AS_ROOT, OMPI_ALLOW_RUN_AS_ROOT_CONFIRM
Open MPI refuses to run as root without them (set to 1)
.TP
.B DM_BIN, DM_NP, DM_SRUN_ARGS, DM_MPIRUN_ARGS
the binary, rank count and launcher flags of the job scripts
.SH EXIT STATUS
0 on success, 2 for a bad command line or configuration, 1 for any other error; every rank exits
with the same status.
.SH SEE ALSO
.BR mpirun (1),
.BR srun (1),
.BR sbatch (1)
TAIL

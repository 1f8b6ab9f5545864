#!/usr/bin/env bash
# quickstart.sh: the main job on the embedded default (called by `make quickstart`).
# Runs configs/quickstart.cfg under mpirun with 2 ranks and prints what was produced.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
NP=${NP:-2}
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
echo "== dynmm quickstart: the whole pipeline on synthetic data, $NP MPI ranks"
mpirun --oversubscribe --bind-to none -n "$NP" "$BUILD/dynmm" run configs/quickstart.cfg "$@"
echo
echo "== what the dataset holds"
"$BUILD/dynmm" info runs/quickstart/dataset.h5
echo
echo "Done. Every output is in runs/quickstart/ (HDF5; 'dynmm info FILE' describes any of them)."
echo "Next: 'make check' runs the tests; README.md shows how to run on your own data and on Slurm."

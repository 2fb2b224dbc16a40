#!/usr/bin/env bash
# Submits a pipeline's grid to Slurm: an array of one task per job (grid.sbatch), then the merge
# job (merge.sbatch), which starts when every task has ended. Prints the two job IDs.
#
# Usage: examples/slurm/submit.sh PIPELINE [OUT] [extra sbatch options for the array, e.g. --gres=gpu:1]
#   VITPEFT_BIN: the vitpeft command (default: node <this checkout>/bin/vitpeft.js); exported to the jobs.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PIPELINE=$(realpath "${1:?usage: submit.sh PIPELINE [OUT] [sbatch options]}")
OUT=$(realpath -m "${2:-out}")
shift $(( $# >= 2 ? 2 : 1 ))
export VITPEFT_BIN=${VITPEFT_BIN:-"node $(realpath "$HERE/../../bin/vitpeft.js")"}
# The first line of --list-jobs: "<count> job(s) in '<name>'".
FIRST=$($VITPEFT_BIN run "$PIPELINE" --list-jobs | head -n 1)
JOBS=${FIRST%% *}
NAME=$(sed -e "s/^[0-9]* job(s) in '\(.*\)'$/\1/" <<<"$FIRST")
mkdir -p "$OUT"
ARRAY=$(sbatch --parsable --chdir="$OUT" --array="0-$((JOBS - 1))" "$@" "$HERE/grid.sbatch" "$PIPELINE" "$OUT")
MERGE=$(sbatch --parsable --chdir="$OUT" --dependency="afterany:${ARRAY%%;*}" "$HERE/merge.sbatch" "$OUT/$NAME")
echo "grid '$NAME': $JOBS task(s) in array job $ARRAY -> $OUT/$NAME-shard<i>of$JOBS; merge job $MERGE -> $OUT/$NAME"

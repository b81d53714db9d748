#!/usr/bin/env bash
# Long linearizability check of the raft Consensus: runs N seeded crash/partition workloads
# (default 2000) on 3-member clusters and checks every recorded history.
#   scripts/lin-check.sh [N] [FIRST_SEED]
# CI runs 200 seeds in `cargo test -p cloudless-store --test linearizability`; this script
# runs more, starting at FIRST_SEED (default 1000, past the CI seeds). A failure prints the
# seed and the offending key's history; re-run with that seed to investigate.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-2000}"
first="${2:-1000}"
case "$runs$first" in *[!0-9]*) echo "usage: $0 [N] [FIRST_SEED] (numbers)" >&2; exit 2 ;; esac
CLOUDLESS_LIN_RUNS="$runs" CLOUDLESS_LIN_SEED="$first" \
  cargo test -p cloudless-store --test linearizability \
  seeded_runs_under_crashes_and_partitions_are_linearizable -- --nocapture

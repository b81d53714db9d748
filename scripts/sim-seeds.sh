#!/usr/bin/env bash
# Runs the simulator scenario tests (tests/sim_*.rs) over many seeds: N seeds (default 1000)
# starting at BASE (default 0), in batches so a failure names its seed range early.
#
#   scripts/sim-seeds.sh 5000            # seeds 0..5000
#   scripts/sim-seeds.sh 200 10000       # seeds 10000..10200
#   SIM_TESTS="sim_outage" scripts/sim-seeds.sh 500
#
# A failing seed is printed by the test ("seed 1234: invariant ... violated (seed 1234, step
# 517, t=51.7s): ..."); replay it alone with
#   CLOUDLESS_SIM_SEED_BASE=1234 CLOUDLESS_SIM_SEEDS=1 cargo test -p cloudless --features sim --test <file>
set -euo pipefail
cd "$(dirname "$0")/.."

total="${1:-1000}"
base="${2:-0}"
batch="${SIM_BATCH:-100}"
tests="${SIM_TESTS:-$(ls tests/sim_*.rs | xargs -n1 basename | sed 's/\.rs$//' | tr '\n' ' ')}"

if ! [[ "$total" =~ ^[0-9]+$ && "$base" =~ ^[0-9]+$ && "$batch" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [SEEDS] [BASE]  (whole numbers; SIM_BATCH > 0)" >&2
  exit 2
fi

args=()
for t in $tests; do args+=(--test "$t"); done
# Build once.
cargo test -p cloudless --features sim --release "${args[@]}" --no-run

start="$base"
end=$((base + total))
while [ "$start" -lt "$end" ]; do
  n=$((end - start < batch ? end - start : batch))
  echo "==> seeds $start..$((start + n))"
  CLOUDLESS_SIM_SEED_BASE="$start" CLOUDLESS_SIM_SEEDS="$n" \
    cargo test -p cloudless --features sim --release "${args[@]}" -q
  start=$((start + n))
done
echo "all $total seeds from $base passed: $tests"

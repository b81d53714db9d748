#!/usr/bin/env bash
# Runs the whole Cloudless test suite: formatting, lints, every test (unit, property,
# conformance, integration, doc tests, fuzz-corpus replays), the examples, and a build of the
# fuzz targets. Installs missing prerequisites first. Exit code 0 only if everything passed.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/ensure-deps.sh

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "one rustls crypto provider (ring) in the whole workspace"
if cargo tree --workspace --all-features -e normal -i aws-lc-rs >/dev/null 2>&1; then
  echo "error: aws-lc-rs is in the dependency graph; the workspace uses ring only (see Cargo.toml)" >&2
  cargo tree --workspace --all-features -e normal -i aws-lc-rs >&2 || true
  exit 1
fi

step "cargo clippy (all targets, all features, warnings are errors)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "cargo test (workspace, all features)"
cargo test --workspace --all-features --no-fail-fast

step "fuzz targets build (cargo-fuzz crate, checked on stable)"
cargo check --manifest-path fuzz/Cargo.toml --bins

step "custom scorer example (researcher API on the facade crate)"
cargo run --quiet --example custom_scorer

step "embedding example: coordinator + agent in one process on single-member raft"
cargo run --quiet --example embed_node

step "custom runtime example: an echo:// runtime chained before another with ChainRuntime"
cargo run --quiet --example custom_runtime

step "HA example: 3 raft coordinators in one process survive a leader crash (simulator)"
cargo run --quiet --features sim --example ha_cluster

step "in-process local fabric example builds (it runs with ./scripts/run-local-fabric-inprocess.sh, as root; ./scripts/run-local-fabric.sh is the multi-process main job)"
cargo build --quiet --example local_fabric

step "all checks passed"

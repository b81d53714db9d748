#!/usr/bin/env bash
# The in-process variant of scripts/run-local-fabric.sh (which runs the daemons as separate
# processes). Runs a local Cloudless fabric on a real containerd and shows it at work:
#   a private containerd (own root, state, socket and cgroup parent in a temp dir, CNI bridges),
#   one coordinator (single-member raft on redb) and three agents in three zones, all in one
#   process (examples/local_fabric.rs); deploys examples/manifests/web.yaml (busybox httpd,
#   3 replicas spread over the zones), fetches the page from every replica, loses one agent
#   (agent stopped, its containers killed) and shows the replacement serving elsewhere.
# Everything it started is stopped and removed when it exits, also on Ctrl-C or an error.
# Exit code 0 only if every step succeeded. Needs root (containerd, cgroups, bridges).
#
# Environment: CLOUDLESS_DEMO_TIMEOUT (seconds per wait, default 120), CLOUDLESS_DEMO_MANIFEST
#              (default examples/manifests/web.yaml; one Workload of 1 to 3 replicas, one per zone),
#              CLOUDLESS_DEMO_KEEP=1 keeps the temp dir's logs (containerd.log) for inspection.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=lib/cleanup.sh
. "$ROOT/scripts/lib/cleanup.sh"

say() { printf '==> %s\n' "$*"; }
fail() { printf 'error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "run as root: the fabric starts containerd and makes cgroups and bridges"
[ "$(uname -s)" = Linux ] || fail "needs Linux (containerd, cgroups, network namespaces)"

# Prerequisites: Rust toolchain check, protoc, containerd, runc, CNI plugins, busybox-static.
./scripts/ensure-deps.sh
# `ip` (bridge clean-up) is in iproute2, present on most but not all minimal images.
if ! command -v ip >/dev/null 2>&1; then
  say "installing Debian packages: iproute2"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq iproute2
fi
for b in containerd containerd-shim-runc-v2 runc ctr ip setsid sha256sum; do
  command -v "$b" >/dev/null 2>&1 || fail "$b is missing after installing the prerequisites"
done
[ -x /usr/lib/cni/bridge ] || fail "/usr/lib/cni/bridge is missing (apt-get install containernetworking-plugins)"

say "building the demo (cargo build --example local_fabric)"
cargo build --quiet --example local_fabric
BIN="$ROOT/target/debug/examples/local_fabric"
[ -x "$BIN" ] || fail "the build did not produce $BIN"

# Names unique to this run: namespaces <tag>-agent-N, bridges <tag>bN, cgroup parent, subnets
# 10.231.<octet+N>.0/24.
TAG="cld$(( $$ % 100000 ))"
OCTET=$(( ($$ % 84) * 3 ))
CGROUP="cloudless-demo-$TAG"
WORK=$(mktemp -d /tmp/cloudless-fabric.XXXXXX)
chmod 700 "$WORK"
SOCK="$WORK/containerd.sock"
RUN_EXISTED=0
[ -d /run/containerd ] && RUN_EXISTED=1
CTD_PID=""
DEMO_PID=""
SHIM_SOCKETS=()

for n in 1 2 3; do
  if ip -4 route show | grep -q "^10\.231\.$(( OCTET + n ))\.0/"; then
    fail "subnet 10.231.$(( OCTET + n )).0/24 is already routed on this host; run again (the subnet follows the process id)"
  fi
done

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if [ -n "$DEMO_PID" ] && kill -0 "$DEMO_PID" 2>/dev/null; then
    say "stopping the demo process"
    kill -TERM "$DEMO_PID" 2>/dev/null
    wait "$DEMO_PID" 2>/dev/null
  fi
  say "cleaning up: containers, containerd, shims, cgroups, mounts, bridges, $WORK"
  if [ -n "$CTD_PID" ] && kill -0 "$CTD_PID" 2>/dev/null; then
    # Whatever the demo did not remove itself (Ctrl-C, error): kill and delete it through
    # containerd so the shims exit and clean up after themselves.
    remove_containers
    stop_containerd
  fi
  # Shims or container processes still alive (only ours: they name our socket or sit in our
  # cgroup parent).
  kill_leftover_processes
  kill_cgroup_processes /sys/fs/cgroup/*/"$CGROUP" /sys/fs/cgroup/"$CGROUP"
  sleep 0.2
  unmount_work
  remove_cgroups /sys/fs/cgroup/*/"$CGROUP" /sys/fs/cgroup/"$CGROUP"
  delete_bridges
  rm -rf /run/containerd/runc/"$TAG"-agent-* 2>/dev/null
  remove_shim_sockets
  if [ "${CLOUDLESS_DEMO_KEEP:-0}" = 1 ]; then
    say "kept $WORK (CLOUDLESS_DEMO_KEEP=1); remove it with: rm -rf $WORK"
  else
    rm -rf "$WORK"
  fi

  # Check that nothing is left.
  local left=()
  left_processes "$SOCK"
  left_cgroups /sys/fs/cgroup/*/"$CGROUP" /sys/fs/cgroup/"$CGROUP"
  left_run_state
  if [ "${#left[@]}" -gt 0 ]; then
    printf 'error: left behind: %s\n' "${left[*]}" >&2
    [ "$rc" -eq 0 ] && rc=1
  else
    say "nothing left running: containerd, shims, containers, cgroups, mounts, bridges and $WORK are gone"
  fi
  if [ "$rc" -eq 0 ]; then say "local fabric demo: OK"; else say "local fabric demo: FAILED (exit $rc)"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "starting a private containerd in $WORK (cgroup parent /$CGROUP)"
cat >"$WORK/config.toml" <<EOF
version = 2
root = "$WORK/root"
state = "$WORK/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
EOF
# In its own session, so a Ctrl-C reaches the demo and this script but not containerd: the
# clean-up still needs it to delete what is left.
setsid containerd --config "$WORK/config.toml" >>"$WORK/containerd.log" 2>&1 &
CTD_PID=$!
ready=0
for _ in $(seq 300); do
  if ctr -a "$SOCK" version >/dev/null 2>&1; then ready=1; break; fi
  kill -0 "$CTD_PID" 2>/dev/null || break
  sleep 0.1
done
if [ "$ready" != 1 ]; then
  tail -n 20 "$WORK/containerd.log" >&2
  fail "containerd did not come up (log above)"
fi
say "containerd $(ctr -a "$SOCK" version 2>/dev/null | awk '/Server:/ { s=1 } s && /Version:/ { print $2; exit }') listening on $SOCK"

say "running the fabric (one process: coordinator + 3 agents)"
# In the background so a signal to this script runs the clean-up at once (the trap kills it).
"$BIN" --socket "$SOCK" --work-dir "$WORK" --cgroup-parent "/$CGROUP" --tag "$TAG" \
  --manifest "${CLOUDLESS_DEMO_MANIFEST:-$ROOT/examples/manifests/web.yaml}" --subnet-octet "$OCTET" \
  --timeout-secs "${CLOUDLESS_DEMO_TIMEOUT:-120}" </dev/null &
DEMO_PID=$!
set +e
wait "$DEMO_PID"
status=$?
set -e
DEMO_PID=""
exit "$status"

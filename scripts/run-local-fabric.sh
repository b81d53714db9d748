#!/usr/bin/env bash
# The main job: a local Cloudless fabric of separate processes on a real containerd.
#
#   containerd (private: root, state, socket in a temp dir)      cloudlessctl (admin cert)
#      ▲              ▲              ▲                                  │ gRPC/TLS :P+3
#   agent-1        agent-2        agent-3    ── QUIC + mTLS :P ──▶ cloudless-coordinator
#   zone-a         zone-b         zone-c                            (raft on redb, :P..P+3)
#   ns <tag>-1     ns <tag>-2     ns <tag>-3    each its own containerd namespace, CNI bridge
#   10.231.x+1/24  10.231.x+2/24  10.231.x+3/24 and subnet; all on 127.0.0.1
#
# Steps: install missing prerequisites; build the daemons (cargo build, debug); start a private
# containerd; build the busybox OCI image locally (no registry); `cloudless-coordinator init`
# and `run`; three `cloudless-agent run` (each imports the image into its namespace at start);
# `cloudlessctl apply -f examples/manifests/web.yaml`; curl every replica; `kill -9` one agent;
# wait for its node to be Down and the replacement to serve on another agent (curl); restart the
# killed agent and watch it stop the surplus copy; `cloudlessctl delete`; stop the daemons.
# Changes (events, replicas, nodes) are printed as they commit, with the time since the start.
#
# Everything it started is stopped and removed when it exits, also on Ctrl-C or an error, and
# it checks that nothing is left. Exit code 0 only if every step succeeded. Needs root.
#
# Environment: CLOUDLESS_DEMO_TIMEOUT (seconds per wait, default 120), CLOUDLESS_DEMO_KEEP=1
# keeps the temp dir (daemon logs in logs/) for inspection.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=lib/cleanup.sh
. "$ROOT/scripts/lib/cleanup.sh"
T0=$(date +%s.%N)
T0_US=${EPOCHREALTIME//[!0-9]/}
TIMEOUT=${CLOUDLESS_DEMO_TIMEOUT:-120}
MANIFEST="$ROOT/examples/manifests/web.yaml"
NS=demo
WL=web
PORT=8080

# Seconds since the start, two decimals (bash builtins only: the change printer calls it often).
elapsed() {
  local us=$(( ${EPOCHREALTIME//[!0-9]/} - T0_US ))
  printf '%4d.%02d' $(( us / 1000000 )) $(( us % 1000000 / 10000 ))
}
# Seconds since $1 (a `date +%s.%N` value), two decimals.
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }
say() { printf '[%ss] %s\n' "$(elapsed)" "$*"; }
fail() { printf '[%ss] error: %s\n' "$(elapsed)" "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "run as root: the fabric starts containerd and makes cgroups and bridges"
[ "$(uname -s)" = Linux ] || fail "needs Linux (containerd, cgroups, network namespaces)"

# --- prerequisites --------------------------------------------------------------------------
# protoc, containerd, runc, CNI plugins, busybox-static (scripts/ensure-deps.sh), and the tools
# this script uses: ip/ss (iproute2), curl, jq.
./scripts/ensure-deps.sh
extra=()
command -v ip >/dev/null 2>&1 || extra+=(iproute2)
command -v ss >/dev/null 2>&1 || extra+=(iproute2)
command -v curl >/dev/null 2>&1 || extra+=(curl)
command -v jq >/dev/null 2>&1 || extra+=(jq)
if [ "${#extra[@]}" -gt 0 ]; then
  say "installing Debian packages: $(printf '%s\n' "${extra[@]}" | sort -u | tr '\n' ' ')"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq $(printf '%s\n' "${extra[@]}" | sort -u)
fi
for b in containerd containerd-shim-runc-v2 runc ctr ip ss curl jq setsid sha256sum; do
  command -v "$b" >/dev/null 2>&1 || fail "$b is missing after installing the prerequisites"
done
[ -x /usr/lib/cni/bridge ] || fail "/usr/lib/cni/bridge is missing (apt-get install containernetworking-plugins)"

# --- build ----------------------------------------------------------------------------------
t=$(date +%s.%N)
say "building the daemons: cargo build -p cloudless-bins --bins (debug profile)"
cargo build --quiet -p cloudless-bins --bins
BIN="$ROOT/target/debug"
for b in cloudless-coordinator cloudless-agent cloudless-agent-shim cloudlessctl cloudless-busybox-image; do
  [ -x "$BIN/$b" ] || fail "the build did not produce $BIN/$b"
done
BUILT=$(since "$t")
say "built in $BUILT s: $BIN/{cloudless-coordinator,cloudless-agent,cloudlessctl,...}"

# --- names, ports, temp dir -----------------------------------------------------------------
# Unique to this run: containerd namespaces <tag>-N, bridges <tag>bN, cgroups
# cloudless-demo-<tag>-*, subnets 10.231.<octet+N>.0/24, coordinator ports P..P+3.
TAG="cld$(( $$ % 100000 ))"
OCTET=$(( ($$ % 84) * 3 ))
CGROUP_PREFIX="cloudless-demo-$TAG"
ZONES=(zone-a zone-b zone-c)
for n in 1 2 3; do
  if ip -4 route show | grep -q "^10\.231\.$(( OCTET + n ))\.0/"; then
    fail "subnet 10.231.$(( OCTET + n )).0/24 is already routed on this host; run again (the subnet follows the process id)"
  fi
done
# No socket at all on port $1 (TCP or UDP, any state); listening: none listening on it.
port_free() { ! ss -Htaun 2>/dev/null | awk '{ print $5 }' | grep -qE "[:.]$1\$"; }
port_unused() { ! ss -Htauln 2>/dev/null | awk '{ print $5 }' | grep -qE "[:.]$1\$"; }
BASE=""
for i in $(seq 0 200); do
  p=$(( 21000 + ( ($$ * 7 + i * 104) % 30000 ) ))
  if port_free "$p" && port_free $((p + 1)) && port_free $((p + 2)) && port_free $((p + 3)); then BASE=$p; break; fi
done
[ -n "$BASE" ] || fail "no 4 consecutive free ports found"
CONTROL="127.0.0.1:$BASE"
API="127.0.0.1:$((BASE + 3))"

WORK=$(mktemp -d /tmp/cloudless-fabric.XXXXXX)
chmod 700 "$WORK"
mkdir -p "$WORK/logs"
SOCK="$WORK/containerd.sock"
ADMIN="$WORK/coordinator/admin.pem"
RUN_EXISTED=0
[ -d /run/containerd ] && RUN_EXISTED=1
CTD_PID=""
COORD_PID=""
AGENT_PIDS=("" "" "")
WATCH_PID=""
PRINT_PID=""
SHIM_SOCKETS=()

# Our cgroups: cgroup v2 (/sys/fs/cgroup/NAME) and v1 (/sys/fs/cgroup/CONTROLLER/NAME).
our_cgroups() { ls -d /sys/fs/cgroup/"$CGROUP_PREFIX"-* /sys/fs/cgroup/*/"$CGROUP_PREFIX"-* 2>/dev/null; }

ctl() { "$BIN/cloudlessctl" --endpoint "$API" --credentials "$ADMIN" "$@"; }

# Stops a daemon gracefully (SIGTERM, 10 s), then hard; prints its exit code.
stop_daemon() {
  local pid=$1 what=$2 code
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null && code=0 || code=$?
  say "$what stopped (exit $code)"
  return "$code"
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  say "--- cleaning up: daemons, containers, containerd, shims, cgroups, mounts, bridges, $WORK ---"
  [ -n "$WATCH_PID" ] && kill -TERM "$WATCH_PID" 2>/dev/null && wait "$WATCH_PID" 2>/dev/null
  [ -n "$PRINT_PID" ] && kill -TERM "$PRINT_PID" 2>/dev/null && wait "$PRINT_PID" 2>/dev/null
  for i in 0 1 2; do
    [ -n "${AGENT_PIDS[$i]}" ] && { stop_daemon "${AGENT_PIDS[$i]}" "agent-$((i + 1))" || [ "$rc" -ne 0 ] || rc=1; }
  done
  [ -n "$COORD_PID" ] && { stop_daemon "$COORD_PID" "coordinator" || [ "$rc" -ne 0 ] || rc=1; }
  if [ -n "$CTD_PID" ] && kill -0 "$CTD_PID" 2>/dev/null; then
    # Agents leave their containers running when they stop (they adopt them on restart):
    # kill and delete them through containerd so the shims exit and clean up after themselves.
    remove_containers
    say "containers removed through containerd: $REMOVED_CONTAINERS"
    stop_containerd
    say "containerd stopped"
  fi
  # Anything of ours still alive: shims (they name our socket), daemons or tools (they name
  # $WORK), container processes (in our cgroups).
  kill_leftover_processes "$WORK"
  # shellcheck disable=SC2046 # one cgroup a word
  kill_cgroup_processes $(our_cgroups)
  sleep 0.2
  unmount_work
  # shellcheck disable=SC2046
  remove_cgroups $(our_cgroups)
  delete_bridges
  # Outbound NAT rules of containers killed above without a CNI DEL (comment "cloudless <ns>-<id>").
  iptables -w 5 -t nat -S POSTROUTING 2>/dev/null | grep -F -- "--comment \"cloudless $TAG-" |
    sed 's/^-A /-D /' | while read -r rule; do eval "iptables -w 5 -t nat $rule" 2>/dev/null; done
  rm -rf /run/containerd/runc/"$TAG"-* 2>/dev/null
  remove_shim_sockets
  if [ "${CLOUDLESS_DEMO_KEEP:-0}" = 1 ]; then
    say "kept $WORK (CLOUDLESS_DEMO_KEEP=1; logs in $WORK/logs); remove it with: rm -rf $WORK"
  elif [ "$rc" -ne 0 ]; then
    for f in "$WORK"/logs/*.log; do
      [ -s "$f" ] || continue
      printf -- '--- last lines of %s ---\n' "${f##*/}" >&2
      tail -n 8 "$f" >&2
    done
    rm -rf "$WORK"
  else
    rm -rf "$WORK"
  fi

  # Check that nothing is left.
  local left=()
  left_processes "$SOCK" "$WORK/"
  # shellcheck disable=SC2046
  left_cgroups $(our_cgroups)
  left_run_state
  for p in $BASE $((BASE + 1)) $((BASE + 2)) $((BASE + 3)); do port_unused "$p" || left+=("port $p"); done
  if [ "${#left[@]}" -gt 0 ]; then
    printf 'error: left behind: %s\n' "${left[*]}" >&2
    [ "$rc" -eq 0 ] && rc=1
  else
    say "nothing left: daemons, containerd, shims, containers, cgroups, mounts, bridges, ports and $WORK are gone"
  fi
  if [ "$rc" -eq 0 ]; then say "local fabric: OK (every step succeeded)"; else say "local fabric: FAILED (exit $rc)"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Polls `$3...` every 0.2 s until it succeeds; fails naming $2 after $1 seconds.
wait_until() {
  local limit=$1 what=$2
  shift 2
  local deadline=$(( $(date +%s) + limit ))
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "timed out after $limit s waiting for $what"
    sleep 0.2
  done
}

# --- containerd -----------------------------------------------------------------------------
t=$(date +%s.%N)
say "starting a private containerd in $WORK"
cat >"$WORK/containerd.toml" <<EOF
version = 2
root = "$WORK/containerd/root"
state = "$WORK/containerd/state"
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
# In its own session so a Ctrl-C reaches the daemons and this script but not containerd: the
# clean-up still needs it to delete the containers.
setsid containerd --config "$WORK/containerd.toml" >>"$WORK/logs/containerd.log" 2>&1 &
CTD_PID=$!
ctd_up() { ctr -a "$SOCK" version >/dev/null 2>&1 || { kill -0 "$CTD_PID" 2>/dev/null || fail "containerd exited (see above)"; false; }; }
wait_until 30 "containerd to answer" ctd_up
say "containerd $(ctr -a "$SOCK" version 2>/dev/null | awk '/Server:/ { s=1 } s && /Version:/ { print $2; exit }') on $SOCK (up in $(since "$t") s)"

# --- image ----------------------------------------------------------------------------------
IMAGE_TAR="$WORK/busybox-oci.tar"
say "building the image: $("$BIN/cloudless-busybox-image" "$IMAGE_TAR")"

# --- coordinator ----------------------------------------------------------------------------
t=$(date +%s.%N)
TOKEN=$("$BIN/cloudless-coordinator" init --data-dir "$WORK/coordinator" --cluster local \
  --name coord-1 --listen "$CONTROL" 2>>"$WORK/logs/coordinator-init.log")
[ -n "$TOKEN" ] || fail "cloudless-coordinator init printed no join token"
[ "$(stat -c %a "$ADMIN")" = 600 ] || fail "$ADMIN is not mode 0600"
say "cloudless-coordinator init: cluster 'local', agent join token ${TOKEN:0:12}..., admin credentials $ADMIN (0600)"
"$BIN/cloudless-coordinator" run --data-dir "$WORK/coordinator" --listen "$CONTROL" \
  >>"$WORK/logs/coordinator.log" 2>&1 &
COORD_PID=$!
api_up() { ctl -o json cluster info >/dev/null 2>&1 || { kill -0 "$COORD_PID" 2>/dev/null || fail "the coordinator exited: $(tail -n 3 "$WORK/logs/coordinator.log")"; false; }; }
wait_until 30 "the coordinator's API" api_up
say "cloudless-coordinator run (pid $COORD_PID): control $CONTROL, raft :$((BASE + 1)), enroll :$((BASE + 2)), API $API; answering after $(since "$t") s"

# Changes as they commit: events, replicas (phase/readiness/address/node) and node liveness.
"$BIN/cloudlessctl" --endpoint "$API" --credentials "$ADMIN" -o json event watch \
  --kind event --kind replica --kind node >"$WORK/changes.ndjson" 2>>"$WORK/logs/watch.log" &
WATCH_PID=$!
# One jq for the whole stream turns each change into "kind/key<TAB>line"; replicas and nodes
# change on every heartbeat, so a line is printed only when what it shows changed.
print_changes() {
  declare -A last
  local key value
  while IFS=$'\t' read -r key value; do
    [ -n "$value" ] || continue
    if [ "${last[$key]:-}" != "$value" ]; then
      last[$key]=$value
      printf '[%ss]   %s\n' "$(elapsed)" "$value"
    fi
  done
}
tail -n +1 -F --pid="$WATCH_PID" "$WORK/changes.ndjson" 2>/dev/null | jq --unbuffered -r '
  "\(.kind)/\(.key)\t" + (
    if .kind == "event" then
      "event   \(.event.reason) \(.event.subject): \(.event.message)"
    elif .kind == "replica" then
      if .deleted then "replica \(.key) deleted"
      else "replica \(.object.id) on node \(.object.node): \(.object.phase)"
           + (if .object.ready then ", ready" else "" end)
           + (if .object.address then " at \(.object.address)" else "" end)
      end
    elif .kind == "node" then
      if .deleted then "node    \(.key) removed"
      else "node    \(.object.name) (id \(.object.id), zone \(.object.report.zone | if . == "" then "-" else . end)) is \(.object.liveness)"
      end
    else "" end)' 2>>"$WORK/logs/watch.log" | print_changes &
PRINT_PID=$!

# --- agents ---------------------------------------------------------------------------------
start_agent() {
  local n=$1
  "$BIN/cloudless-agent" run --config "$WORK/agent-$n.yaml" --token "$TOKEN" \
    >>"$WORK/logs/agent-$n.log" 2>&1 &
  AGENT_PIDS[$((n - 1))]=$!
}
for n in 1 2 3; do
  cat >"$WORK/agent-$n.yaml" <<EOF
data_dir: $WORK/agent-$n
name: agent-$n
coordinators: ["$CONTROL"]
region: local
zone: ${ZONES[$((n - 1))]}
listen: 127.0.0.1:0
runtime: containerd
containerd_socket: $SOCK
namespace: $TAG-$n
subnet: 10.231.$((OCTET + n)).0/24
bridge: ${TAG}b$n
cgroup_parent: $CGROUP_PREFIX-agent-$n
images: [$IMAGE_TAR]
EOF
done
t=$(date +%s.%N)
say "starting 3 agents: cloudless-agent run --config $WORK/agent-N.yaml --token ... (agent-N.yaml: zone, containerd namespace, subnet, images)"
for n in 1 2 3; do start_agent "$n"; done
nodes_ready() {
  local ready
  for i in 0 1 2; do kill -0 "${AGENT_PIDS[$i]}" 2>/dev/null || fail "agent-$((i + 1)) exited: $(tail -n 3 "$WORK/logs/agent-$((i + 1)).log")"; done
  ready=$(ctl -o json node ls 2>/dev/null | jq '[.items[] | select(.liveness == "Ready")] | length' 2>/dev/null) || return 1
  [ "${ready:-0}" -eq 3 ]
}
wait_until "$TIMEOUT" "3 Ready nodes" nodes_ready
JOINED=$(since "$t")
say "3 agents joined and Ready $JOINED s after start:"
ctl node ls | sed 's/^/           /'
for n in 1 2 3; do
  img=$(grep -m1 'image imported' "$WORK/logs/agent-$n.log" | sed -n 's/.*digest=\(sha256:[0-9a-f]\{12\}\).*/\1/p')
  [ -n "$img" ] || fail "agent-$n logged no image import"
  say "agent-$n imported localhost/cloudless/busybox:latest ($img...) into containerd namespace $TAG-$n"
done

# --- deploy ---------------------------------------------------------------------------------
# Replicas of the workload: "id node ready phase address" per line, from the rollout status.
replicas() { ctl -n "$NS" -o json workload rollout status "$WL" 2>/dev/null | jq -r '.replicas[] | "\(.id) \(.node) \(.ready) \(.phase) \(.address)"'; }
node_name() { ctl -o json node ls | jq -r --argjson id "$1" '.items[] | select(.id == $id) | "\(.name) (\(.zone))"'; }
get_page() { curl -fsS --max-time 3 "http://$1:$PORT/"; }

t=$(date +%s.%N)
say "cloudlessctl apply -f examples/manifests/web.yaml"
ctl apply -f "$MANIFEST" | sed 's/^/           /'
all_ready() {
  local r
  r=$(replicas | awk '$3 == "true" && $4 == "Running"')
  [ "$(printf '%s\n' "$r" | awk 'NF' | wc -l)" -eq 3 ] && [ "$(printf '%s\n' "$r" | awk '{ print $2 }' | sort -u | wc -l)" -eq 3 ]
}
wait_until "$TIMEOUT" "3 replicas Running and ready on 3 nodes" all_ready
DEPLOYED=$(since "$t")
say "3 replicas Running and ready, one per agent, $DEPLOYED s after apply:"
ctl -n "$NS" workload get "$WL" | sed 's/^/           /'
declare -A ORIGINAL
while read -r id node ready phase addr; do
  ORIGINAL[$id]=$node
  page=$(get_page "$addr") || fail "GET http://$addr:$PORT/ (replica $id) failed"
  say "curl http://$addr:$PORT/  (replica $id on $(node_name "$node")) -> $page"
done < <(replicas | awk '$3 == "true"')
described=$(ctl -n "$NS" -o json workload describe "$WL" | jq -r '[.rollout.replicas[].address] | sort | join(" ")')
[ "$described" = "$(replicas | awk '{ print $5 }' | sort | tr '\n' ' ' | sed 's/ $//')" ] \
  || fail "workload describe -o json shows addresses '$described', rollout status others"
say "cloudlessctl workload describe -o json shows the same addresses; cloudlessctl workload logs web:"
ctl -n "$NS" workload logs "$WL" | sed 's/^/           /'

# --- lose an agent --------------------------------------------------------------------------
VICTIM=3
VICTIM_ID=$(ctl -o json node get "agent-$VICTIM" | jq -r '.id')
read -r LOST_REPLICA _ _ _ LOST_ADDR < <(replicas | awk -v n="$VICTIM_ID" '$2 == n') || true
[ -n "${LOST_REPLICA:-}" ] || fail "agent-$VICTIM holds no replica"
say "--- kill -9 agent-$VICTIM (pid ${AGENT_PIDS[$((VICTIM - 1))]}, node $VICTIM_ID, ${ZONES[$((VICTIM - 1))]}, replica $LOST_REPLICA at $LOST_ADDR) ---"
LOST_AT=$(date +%s.%N)
kill -9 "${AGENT_PIDS[$((VICTIM - 1))]}"
wait "${AGENT_PIDS[$((VICTIM - 1))]}" 2>/dev/null || true
AGENT_PIDS[$((VICTIM - 1))]=""
node_down() { [ "$(ctl -o json node get "agent-$VICTIM" 2>/dev/null | jq -r '.liveness')" = Down ]; }
wait_until "$TIMEOUT" "agent-$VICTIM to be marked Down" node_down
DOWN_AFTER=$(since "$LOST_AT")
say "the coordinator marked agent-$VICTIM Down $DOWN_AFTER s after the kill"
replacement() {
  local id node ready phase addr
  while read -r id node ready phase addr; do
    if [ -z "${ORIGINAL[$id]:-}" ] && [ "$node" != "$VICTIM_ID" ] && [ "$ready" = true ] && [ "$phase" = Running ]; then
      NEW_ID=$id NEW_NODE=$node NEW_ADDR=$addr
      return 0
    fi
  done < <(replicas)
  return 1
}
wait_until "$TIMEOUT" "a replacement replica Running and ready on another agent" replacement
READY_AFTER=$(since "$LOST_AT")
page=$(get_page "$NEW_ADDR") || fail "GET http://$NEW_ADDR:$PORT/ (replacement $NEW_ID) failed"
SERVING_AFTER=$(since "$LOST_AT")
say "curl http://$NEW_ADDR:$PORT/  (replacement $NEW_ID on $(node_name "$NEW_NODE")) -> $page"
say "replacement $NEW_ID ready $READY_AFTER s and serving $SERVING_AFTER s after the kill (node Down at $DOWN_AFTER s)"
live=$(ctl -o json node ls | jq -r '[.items[] | select(.liveness == "Ready") | .id] | join(" ")')
count=$(replicas | awk -v live=" $live " '$3 == "true" && index(live, " " $2 " ")' | wc -l)
[ "$count" -eq 3 ] || fail "$count of 3 replicas ready on live agents after the replacement"
say "3 replicas ready on the 2 live agents; the killed agent's container keeps running under containerd (its shim is not the agent's child), not counted while its node is Down"

# --- the agent comes back -------------------------------------------------------------------
t=$(date +%s.%N)
say "--- restarting agent-$VICTIM (same data dir): it adopts its container, so the workload has one copy too many ---"
start_agent "$VICTIM"
node_ready() { [ "$(ctl -o json node get "agent-$VICTIM" 2>/dev/null | jq -r '.liveness')" = Ready ]; }
wait_until "$TIMEOUT" "agent-$VICTIM to be Ready again" node_ready
say "agent-$VICTIM Ready again $(since "$t") s after the restart"
# One of the two copies (the adopted $LOST_REPLICA, the replacement $NEW_ID) is stopped.
surplus_gone() {
  local r
  r=$(replicas)
  [ "$(printf '%s\n' "$r" | awk 'NF' | wc -l)" -eq 3 ] || return 1
  [ "$(printf '%s\n' "$r" | awk '$3 == "true" && $4 == "Running"' | wc -l)" -eq 3 ] || return 1
  if ! printf '%s\n' "$r" | awk -v x="$LOST_REPLICA" '$1 == x' | grep -q .; then
    GONE=$LOST_REPLICA GONE_ADDR=$LOST_ADDR KEPT=$NEW_ID
  elif ! printf '%s\n' "$r" | awk -v x="$NEW_ID" '$1 == x' | grep -q .; then
    GONE=$NEW_ID GONE_ADDR=$NEW_ADDR KEPT=$LOST_REPLICA
  else
    return 1
  fi
  ! get_page "$GONE_ADDR" >/dev/null 2>&1
}
wait_until "$TIMEOUT" "one of replicas $LOST_REPLICA and $NEW_ID to be stopped" surplus_gone
SURPLUS=$(since "$t")
say "surplus copy stopped $SURPLUS s after the restart: replica $GONE removed (http://$GONE_ADDR:$PORT/ no longer answers), replica $KEPT kept"
while read -r id node ready phase addr; do
  page=$(get_page "$addr") || fail "GET http://$addr:$PORT/ (replica $id) failed"
  say "curl http://$addr:$PORT/  (replica $id on $(node_name "$node")) -> $page"
done < <(replicas)

# --- delete ---------------------------------------------------------------------------------
t=$(date +%s.%N)
say "cloudlessctl delete -f examples/manifests/web.yaml"
ctl delete -f "$MANIFEST" | sed 's/^/           /'
no_tasks() {
  local n
  for n in 1 2 3; do [ -z "$(ctr -a "$SOCK" -n "$TAG-$n" tasks ls -q 2>/dev/null)" ] || return 1; done
}
wait_until "$TIMEOUT" "every container to be stopped" no_tasks
say "workload deleted: no container left running in the 3 namespaces $(since "$t") s after delete"

# --- stop -----------------------------------------------------------------------------------
kill -TERM "$WATCH_PID" 2>/dev/null; wait "$WATCH_PID" 2>/dev/null || true; WATCH_PID=""
wait "$PRINT_PID" 2>/dev/null || true; PRINT_PID=""
for i in 0 1 2; do stop_daemon "${AGENT_PIDS[$i]}" "agent-$((i + 1))" || fail "agent-$((i + 1)) did not stop cleanly"; AGENT_PIDS[$i]=""; done
stop_daemon "$COORD_PID" coordinator || fail "the coordinator did not stop cleanly"
COORD_PID=""
say "summary: build $BUILT s; 3 agents Ready $JOINED s after start; 3 replicas ready $DEPLOYED s after apply; agent killed -> Down $DOWN_AFTER s, replacement ready $READY_AFTER s, serving $SERVING_AFTER s; killed agent back -> surplus stopped $SURPLUS s"

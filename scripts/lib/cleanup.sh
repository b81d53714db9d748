# Clean-up steps shared by scripts/run-local-fabric.sh and scripts/run-local-fabric-inprocess.sh
# (sourced, not run). They work on the caller's globals:
#   SOCK          the private containerd's socket
#   WORK          the run's temp dir
#   TAG           the run's name prefix (bridges ${TAG}b1, ${TAG}b2, ${TAG}b3)
#   CTD_PID       containerd's process id
#   RUN_EXISTED   1 if /run/containerd existed before the run
#   SHIM_SOCKETS  array of shim sockets to remove (the steps below add to it)
# The left_* checks add what they find to the `left` array of the calling function.
# They run with `set +e` (the callers' clean-up sets it): a step that fails goes on.

# The socket of the shim of container $2 in namespace $1:
# /run/containerd/s/sha256(<containerd address>/<namespace>/<id>).
shim_socket() {
  printf '/run/containerd/s/%s' "$(printf '%s' "$SOCK/$1/$2" | sha256sum | cut -c1-64)"
}

# Kills and deletes every task and container of the containerd at $SOCK, so the shims exit and
# clean up after themselves, and records their sockets. REMOVED_CONTAINERS: how many went.
remove_containers() {
  local ns id
  REMOVED_CONTAINERS=0
  for ns in $(ctr -a "$SOCK" namespaces ls -q 2>/dev/null); do
    for id in $(ctr -a "$SOCK" -n "$ns" tasks ls -q 2>/dev/null); do
      ctr -a "$SOCK" -n "$ns" tasks kill -s SIGKILL "$id" >/dev/null 2>&1
      ctr -a "$SOCK" -n "$ns" tasks delete -f "$id" >/dev/null 2>&1
    done
    for id in $(ctr -a "$SOCK" -n "$ns" containers ls -q 2>/dev/null); do
      ctr -a "$SOCK" -n "$ns" containers delete "$id" >/dev/null 2>&1 &&
        REMOVED_CONTAINERS=$((REMOVED_CONTAINERS + 1))
      SHIM_SOCKETS+=("$(shim_socket "$ns" "$id")")
    done
  done
}

# Stops containerd: SIGTERM, up to 5 s, then SIGKILL.
stop_containerd() {
  kill -TERM "$CTD_PID" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$CTD_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$CTD_PID" 2>/dev/null
  wait "$CTD_PID" 2>/dev/null
}

# Kills the processes still alive that name $SOCK (shims: `containerd-shim-runc-v2 -namespace NS
# -id ID -address SOCK`; their sockets are recorded) or any further string given ($@).
kill_leftover_processes() {
  local p pid cmd ns id pattern
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [ "$pid" = "$$" ] && continue
    cmd=$({ tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null) || continue
    case "$cmd" in
      *"$SOCK"*)
        ns=$(printf '%s\n' "$cmd" | sed -n 's/.* -namespace \([^ ]*\) .*/\1/p')
        id=$(printf '%s\n' "$cmd" | sed -n 's/.* -id \([^ ]*\) .*/\1/p')
        if [ -n "$ns" ] && [ -n "$id" ]; then
          SHIM_SOCKETS+=("$(shim_socket "$ns" "$id")")
        fi
        kill -9 "$pid" 2>/dev/null ;;
      *)
        for pattern in "$@"; do
          case "$cmd" in *"$pattern"*) kill -9 "$pid" 2>/dev/null; break ;; esac
        done ;;
    esac
  done
}

# Kills the processes in the cgroups given (directories; missing ones are skipped) and below.
kill_cgroup_processes() {
  local c
  for c in "$@"; do
    [ -d "$c" ] || continue
    find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -9 2>/dev/null
  done
}

# Removes the (empty) cgroups given and every cgroup below them, deepest first.
remove_cgroups() {
  local c
  for c in "$@"; do
    [ -d "$c" ] || continue
    find "$c" -depth -type d -exec rmdir {} + 2>/dev/null
  done
}

# Unmounts everything mounted under $WORK, deepest first.
unmount_work() {
  awk -v d="$WORK" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
}

# Deletes the run's bridges.
delete_bridges() {
  local n
  for n in 1 2 3; do ip link del "${TAG}b$n" 2>/dev/null; done
}

# Removes the recorded shim sockets, and /run/containerd's directories if the run made them.
remove_shim_sockets() {
  local s
  for s in "${SHIM_SOCKETS[@]}"; do rm -f "$s"; done
  if [ "$RUN_EXISTED" = 0 ]; then
    rmdir /run/containerd/runc /run/containerd/s /run/containerd 2>/dev/null
  fi
}

# Check: processes (other than this script) whose command line names one of the strings given.
left_processes() {
  local p pattern args=()
  for pattern in "$@"; do args+=(-e "$pattern"); done
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" = "$$" ] && continue
    if { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -qF "${args[@]}"; then left+=("process ${p#/proc/}"); fi
  done
}

# Check: the cgroups given that still exist.
left_cgroups() {
  local c
  for c in "$@"; do
    [ -d "$c" ] && left+=("cgroup $c")
  done
  return 0
}

# Check: the run's bridges, mounts under $WORK, $WORK itself (unless CLOUDLESS_DEMO_KEEP=1 kept
# it) and the recorded shim sockets.
left_run_state() {
  local n s
  for n in 1 2 3; do ip link show "${TAG}b$n" >/dev/null 2>&1 && left+=("bridge ${TAG}b$n"); done
  if awk -v d="$WORK" 'index($2, d) == 1 { f=1 } END { exit !f }' /proc/mounts; then left+=("mounts under $WORK"); fi
  if [ "${CLOUDLESS_DEMO_KEEP:-0}" != 1 ] && [ -e "$WORK" ]; then left+=("$WORK"); fi
  for s in "${SHIM_SOCKETS[@]}"; do [ -e "$s" ] && left+=("shim socket $s"); done
  return 0
}

#!/usr/bin/env bash
# Installs what building and testing Cloudless needs on a Debian machine, if it is missing.
# Safe to run repeatedly. Needs root (or sudo) only when something must be installed.
set -euo pipefail

need_pkgs=()
command -v protoc >/dev/null 2>&1 || need_pkgs+=(protobuf-compiler)
command -v cc >/dev/null 2>&1 || need_pkgs+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need_pkgs+=(pkg-config)
# The containerd runtime's tests start a private containerd (with runc) and build their test
# image from the static busybox.
command -v containerd >/dev/null 2>&1 || need_pkgs+=(containerd)
command -v runc >/dev/null 2>&1 || need_pkgs+=(runc)
[ -x /usr/lib/cni/bridge ] || need_pkgs+=(containernetworking-plugins)
command -v docker-registry >/dev/null 2>&1 || need_pkgs+=(docker-registry)
# Outbound NAT and published ports (CNI portmap) run iptables; size-limited volumes are ext4
# images (mkfs.ext4) on a loop device (losetup, mount).
command -v iptables >/dev/null 2>&1 || need_pkgs+=(iptables)
command -v mkfs.ext4 >/dev/null 2>&1 || need_pkgs+=(e2fsprogs)
command -v losetup >/dev/null 2>&1 || need_pkgs+=(mount)
# The CLI's terminal test runs cloudlessctl under `script` (a pseudo-terminal).
command -v script >/dev/null 2>&1 || need_pkgs+=(bsdutils)
# The network tests read and clean up bridges with `ip`.
command -v ip >/dev/null 2>&1 || need_pkgs+=(iproute2)
# (the image has no libc, so Debian's dynamic `busybox` package would not do)
if command -v dpkg-query >/dev/null 2>&1; then
  dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' || need_pkgs+=(busybox-static)
fi

# The reflection test (bins/tests/reflection_python.rs) makes a venv and pip-installs grpcio
# and grpcio-reflection into it: python3 with venv + ensurepip (Debian's python3-venv, which
# brings the pip wheel).
command -v python3 >/dev/null 2>&1 || need_pkgs+=(python3)
if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  need_pkgs+=(python3-venv)
fi

if [ "${#need_pkgs[@]}" -gt 0 ]; then
  echo "==> installing Debian packages: ${need_pkgs[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need_pkgs[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found. Install Rust (rustup) first: https://rustup.rs" >&2
  exit 1
fi

# rustfmt and clippy are part of the checks.
if command -v rustup >/dev/null 2>&1; then
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi

echo "==> prerequisites present: $(protoc --version), $(cargo --version)"

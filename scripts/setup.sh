#!/usr/bin/env bash
# Installs everything sdn-filter needs on a fresh Debian 12 machine, idempotently:
# Debian's rustc-web (with the prebuilt BPF core), LLVM 22, bpf-linker, iproute2, bpftool,
# PostgreSQL (database tests), the benchmark peers (xdp-tools, nftables, iptables, ipset),
# headless Chromium (the KPI report check), systemd (systemd-analyze verifies the package's
# unit), man-db and cargo-deb (the Debian package).
# Safe to run again: each step is skipped when its result is already there.
set -euo pipefail

log() { printf '[setup] %s\n' "$*" >&2; }

need_pkgs=(rustc-web libstd-rust-web-dev-bpf llvm-22-dev libpolly-22-dev zlib1g-dev
  libzstd-dev libxml2-dev clang-22 iproute2 bpftool ethtool iputils-ping netcat-openbsd
  postgresql xdp-tools nftables iptables ipset chromium fonts-dejavu-core systemd)
extra=${SDN_SETUP_EXTRA:-}
# shellcheck disable=SC2206
[ -n "$extra" ] && need_pkgs+=($extra)

missing=()
for p in "${need_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "Debian packages present"
fi

export PATH="$HOME/.cargo/bin:$PATH"
if bpf-linker --version >/dev/null 2>&1; then
  log "bpf-linker present: $(bpf-linker --version)"
else
  log "building bpf-linker 0.13.0 against LLVM 22 (a few minutes)"
  LLVM_PREFIX=/usr/lib/llvm-22 cargo install bpf-linker@0.13.0 --locked \
    --no-default-features --features llvm-22
fi

# cargo-deb builds the Debian package (`cargo xtask package`; `cargo xtask test` installs,
# checks and purges it). Pinned: its output layout is what the package check expects.
if cargo deb --version >/dev/null 2>&1; then
  log "cargo-deb present: $(cargo deb --version)"
else
  log "installing cargo-deb 3.8.0 (about a minute)"
  cargo install cargo-deb@3.8.0 --locked
fi

# rustup's rust-src lets clippy check the eBPF crate for bpfel-unknown-none (-Z build-std;
# clippy only type-checks, the build itself uses Debian's prebuilt core). Optional: without
# it `cargo xtask test` says that it did not lint the eBPF crate.
if [ -d "$(rustc --print sysroot)/lib/rustlib/src/rust/library/core" ]; then
  log "rust-src present"
else
  log "adding rustup's rust-src (clippy of the eBPF crate)"
  timeout 180 rustup component add rust-src >/dev/null 2>&1 ||
    log "rust-src could not be installed; cargo xtask test will not lint the eBPF crate"
fi

if ! mountpoint -q /sys/fs/bpf; then
  log "mounting bpffs on /sys/fs/bpf"
  # 0700: a world-writable bpffs (the default 1777) lets any user make pin directories first.
  mount -t bpf -o mode=0700 bpf /sys/fs/bpf
fi
log "ready"

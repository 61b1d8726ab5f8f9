#!/usr/bin/env bash
# cargo xtask kernel-test [--kernel 6.1|host] [--no-build | --loader PATH] [--probe-only]
#
# Proves the data plane on an older kernel than the host's: boots Debian 12's 6.1 LTS cloud
# kernel (linux-image-6.1.0-*-cloud-amd64-unsigned, fetched with apt-get download) under
# qemu with software emulation (TCG) and a small initramfs (busybox-static, the loader with the
# XDP program embedded, iproute2's ip, OpenBSD nc, the veth module, the verdict corpus). In
# the guest (scripts/kernel-test/init.sh):
#   1. `sdn-loader replay --json` of every (policy, capture) pair of the corpus
#      (scripts/kernel-test/corpus.py): the 6.1 verifier must accept the program, and every
#      verdict must equal the host kernel's for the same pair;
#   2. end to end (scripts/kernel-test/e2e.sh): the program attached to a veth pair between two
#      namespaces, allowed and denied traffic, counters, the verifier's processed-instruction
#      counts (scripts/kernel-test/prog-info.c);
#   3. pktgen (scripts/kernel-test/pktgen.sh, 6.1 guest only: the host kernel has no pktgen):
#      the kernel's pktgen.ko driven by scripts/pktgen-router.sh into a veth pair with the
#      filter attached, a mix of allowed and denied frames, every count checked exactly.
# --kernel host runs the same on the host kernel (the replay comparison is then a repeat run).
# --probe-only boots the guest only to run `sdn-loader probe` (the verifier's figures for each
# program, in under a minute) and skips the comparison: a quick check while changing the program.
# Prints one result line per kernel and exits non-zero on any failure. Cache:
# target/kernel-test/ (the kernel package and its extracted tree are kept; idempotent).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KT=$ROOT/scripts/kernel-test
CACHE=$ROOT/target/kernel-test
DATE=2025-06-15          # replay verdicts are judged as of this date on both kernels
QEMU_TIMEOUT=${KERNEL_TEST_TIMEOUT:-900}
KERNEL=6.1
BUILD=1
PROBE_ONLY=0
LOADER=$ROOT/target/release/sdn-loader

usage() { sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case $1 in
        --kernel) KERNEL=${2:?--kernel needs a value: 6.1 or host}; shift 2 ;;
        --kernel=*) KERNEL=${1#--kernel=}; shift ;;
        --no-build) BUILD=0; shift ;;
        --probe-only) PROBE_ONLY=1; shift ;;
        --loader) LOADER=$(realpath "${2:?--loader needs a path}"); BUILD=0; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "kernel-test: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done
case $KERNEL in
    6.1|host) ;;
    *) echo "kernel-test: --kernel $KERNEL: only 6.1 (Debian 12's LTS kernel) and host are known" >&2; exit 2 ;;
esac

START=$(date +%s.%N)
elapsed() { awk -v s="$START" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}'; }
step() { echo "== [$(elapsed) s] $*"; }
mkdir -p "$CACHE"

# --- tools --------------------------------------------------------------------------------
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
command -v nc.openbsd >/dev/null || need+=(netcat-openbsd)
command -v ip >/dev/null || need+=(iproute2)
command -v gcc >/dev/null && [ -e /usr/lib/x86_64-linux-gnu/libc.a ] || need+=(gcc libc6-dev)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
    step "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null ||
        { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; }
fi

# --- loader, helper, corpus, host reference -----------------------------------------------
if [ $BUILD = 1 ]; then
    step "building the loader (cargo build --release -p sdn-loader)"
    (cd "$ROOT" && SDN_EBPF_BUILD=require cargo build --release -q -p sdn-loader)
fi
[ -x "$LOADER" ] || { echo "kernel-test: $LOADER missing (run without --no-build)" >&2; exit 1; }
if [ ! -x "$CACHE/prog-info" ] || [ "$KT/prog-info.c" -nt "$CACHE/prog-info" ]; then
    gcc -static -O2 -Wall -o "$CACHE/prog-info" "$KT/prog-info.c"
fi

step "verdict corpus"
python3 "$KT/corpus.py" "$CACHE/corpus"
HOST_KERNEL=$(uname -r)
# --probe-only compares nothing, so it needs no reference verdicts.
if [ $PROBE_ONLY = 0 ]; then
    step "reference verdicts on the host kernel ($HOST_KERNEL)"
    rm -rf "$CACHE/host" && mkdir -p "$CACHE/host"
    while read -r pol cap; do
        "$LOADER" replay --policy "$CACHE/corpus/policies/$pol.toml" --pcap "$CACHE/corpus/captures/$cap.pcap" \
            --json --date $DATE >"$CACHE/host/$pol-$cap.json" 2>"$CACHE/host/$pol-$cap.err" || {
            echo "kernel-test: the host replay of $pol x $cap failed:" >&2
            tail -20 "$CACHE/host/$pol-$cap.err" >&2
            exit 1
        }
    done <"$CACHE/corpus/pairs"
fi

# --- the kernel under test ----------------------------------------------------------------
RESULTS=$CACHE/results-$KERNEL.log
rm -f "$RESULTS"

if [ "$KERNEL" = host ]; then
    step "kernel under test: the host's own ($HOST_KERNEL)"
    mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
    {
        echo "KT-KERNEL $(uname -r) | $(cat /proc/version)"
        t0=$(date +%s.%N)
        while read -r pol cap; do
            echo "KT-BEGIN $pol $cap"
            rc=0
            "$LOADER" replay --policy "$CACHE/corpus/policies/$pol.toml" \
                --pcap "$CACHE/corpus/captures/$cap.pcap" --json --date $DATE 2>"$CACHE/err" || rc=$?
            echo "KT-END $pol $cap rc=$rc"
            [ $rc = 0 ] || { echo KT-STDERR-BEGIN; cat "$CACHE/err"; echo KT-STDERR-END; }
        done <"$CACHE/corpus/pairs"
        t1=$(date +%s.%N)
        echo "KT-TIME replay $(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')"
        sh "$KT/e2e.sh" "$LOADER" "$ROOT/examples/demo-policy.toml" /sys/fs/bpf/sdn-kernel-test \
            "$CACHE/prog-info" 2>&1 || true
        echo "KT-TIME e2e $(awk -v a="$t1" -v b="$(date +%s.%N)" 'BEGIN {print b - a}')"
        echo "KT-DONE"
    } >"$RESULTS"
else
    # The newest 6.1 cloud kernel Debian 12 offers (cached after the first run).
    deb=$(ls "$CACHE"/linux-image-6.1.0-*-cloud-amd64-unsigned_*.deb 2>/dev/null | sort -V | tail -1 || true)
    if [ -z "$deb" ]; then
        pick() { apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-cloud-amd64-unsigned$' | awk '{print $1}' | sort -V | tail -1; }
        pkg=$(pick)
        [ -n "$pkg" ] || { apt-get update -q >/dev/null; pkg=$(pick); }
        [ -n "$pkg" ] || { echo "kernel-test: no linux-image-6.1.0-*-cloud-amd64-unsigned package in apt's lists" >&2; exit 1; }
        step "fetching $pkg (apt-get download)"
        (cd "$CACHE" && apt-get download -q "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
        deb=$(ls "$CACHE"/"$pkg"_*.deb | sort -V | tail -1)
    fi
    kdir=$CACHE/$(basename "$deb" .deb)
    if [ ! -d "$kdir" ]; then
        step "extracting $(basename "$deb")"
        rm -rf "$kdir.tmp" && dpkg-deb -x "$deb" "$kdir.tmp" && mv "$kdir.tmp" "$kdir"
    fi
    vmlinuz=$(ls "$kdir"/boot/vmlinuz-* | head -1)
    veth=$(find "$kdir/lib/modules" -name veth.ko | head -1)
    pktgen=$(find "$kdir/lib/modules" -name pktgen.ko | head -1)
    [ -f "$vmlinuz" ] && [ -f "$veth" ] && [ -f "$pktgen" ] ||
        { echo "kernel-test: no vmlinuz, veth.ko or pktgen.ko in $deb" >&2; exit 1; }

    step "initramfs"
    R=$CACHE/initramfs
    rm -rf "$R" && mkdir -p "$R"/{bin,kt/bin,lib/x86_64-linux-gnu,lib64}
    cp /bin/busybox "$R/bin/busybox"
    strip -o "$R/kt/bin/sdn-loader" "$LOADER"
    cp "$(command -v ip)" "$(command -v nc.openbsd)" "$CACHE/prog-info" "$R/kt/bin/"
    for lib in $(ldd "$LOADER" "$(command -v ip)" "$(command -v nc.openbsd)" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u); do
        cp -L "$lib" "$R/lib/x86_64-linux-gnu/"
    done
    cp -L /lib64/ld-linux-x86-64.so.2 "$R/lib64/"
    cp "$veth" "$R/kt/veth.ko"
    cp "$pktgen" "$R/kt/pktgen.ko"
    cp "$KT/e2e.sh" "$R/kt/e2e.sh"
    cp "$KT/pktgen.sh" "$R/kt/pktgen.sh"
    cp "$ROOT/scripts/pktgen-router.sh" "$R/kt/pktgen-router.sh"
    cp "$ROOT/examples/demo-policy.toml" "$R/kt/e2e-policy.toml"
    cp -r "$CACHE/corpus" "$R/kt/corpus"
    echo $DATE >"$R/kt/date"
    if [ $PROBE_ONLY = 1 ]; then : >"$R/kt/probe-only"; fi
    install -m 755 "$KT/init.sh" "$R/init"
    (cd "$R" && find . | cpio -o -H newc --quiet) >"$CACHE/initramfs.cpio"
    echo "  $(du -h "$CACHE/initramfs.cpio" | cut -f1) initramfs, kernel $(basename "$vmlinuz")"

    step "booting $(basename "$vmlinuz") under qemu (TCG, 2 vCPUs), timeout ${QEMU_TIMEOUT} s"
    rm -f "$CACHE/console.log"
    : >"$CACHE/console.log"
    tail -n +1 -f "$CACHE/console.log" 2>/dev/null > >(sed -u 's/\r$//; s/^/  guest: /') &
    tailer=$!
    qrc=0
    timeout "$QEMU_TIMEOUT" qemu-system-x86_64 -nodefaults -display none -no-reboot \
        -accel tcg,thread=multi -cpu max -smp 2 -m 1024 \
        -kernel "$vmlinuz" -initrd "$CACHE/initramfs.cpio" \
        -append "console=ttyS0 quiet loglevel=3 panic=-1" \
        -serial "file:$CACHE/console.log" -serial "file:$RESULTS" </dev/null || qrc=$?
    sleep 0.5
    kill "$tailer" 2>/dev/null || true
    wait "$tailer" 2>/dev/null || true
    [ $qrc = 0 ] || echo "  qemu exited with status $qrc$([ $qrc = 124 ] && echo " (timed out after ${QEMU_TIMEOUT} s)")"
fi

if [ $PROBE_ONLY = 1 ]; then
    exit 0
fi
step "comparing"
rc=0
python3 "$KT/compare.py" "$RESULTS" "$CACHE/host" "$CACHE/corpus/pairs" "$(elapsed)" "$HOST_KERNEL" \
    "$([ "$KERNEL" = host ] || echo pktgen)" || rc=$?
exit $rc

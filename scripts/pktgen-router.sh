#!/usr/bin/env bash
# Load test for a real hub router with the kernel's pktgen module (CONFIG_NET_PKTGEN), run
# on a *separate sender machine* cabled to the router's client-side port. Not for the
# development VM: its kernel has no pktgen (CONFIG_NET_PKTGEN is off), so there the
# benchmark uses BPF_PROG_RUN live frames instead (`cargo xtask pktgen`).
#
#   usage: pktgen-router.sh DEV DST_MAC [options as environment variables]
#
#   DEV       sender interface cabled to the router (never a management interface)
#   DST_MAC   MAC address of the router port DEV is cabled to
#   THREADS   sender threads (one per CPU/queue), default 2
#   SIZE      frame size without FCS, default 60
#   COUNT     frames per thread (0 = until Ctrl-C), default 10000000
#   SRC_MIN/SRC_MAX   IPv4 source range (a client prefix of the policy under test),
#                     default 198.18.0.0-198.18.0.255 (RFC 2544 benchmark range)
#   DST       IPv4 destination (a service endpoint), default 198.19.0.0
#   DPORT     destination port (one the agreements allow, or not, to test drops), default 443
#   FLOWS     source ports spread over (UDP 10000..10000+FLOWS-1), default 1000
#
# pktgen sends UDP. Give the policy under test a UDP endpoint for DST:DPORT (or pick a
# DPORT without agreement to measure the drop path), load it on the router with
# `sdn-loader run --iface ...`, and read the router's side with `sdn-loader stats` and
# `ip -s link`. Use only benchmark (198.18.0.0/15) or documentation addresses, on a test
# network. Rates are printed per thread from /proc/net/pktgen/DEV@N.
set -euo pipefail
dev=${1:?usage: pktgen-router.sh DEV DST_MAC}
dst_mac=${2:?usage: pktgen-router.sh DEV DST_MAC}
threads=${THREADS:-2} size=${SIZE:-60} count=${COUNT:-10000000}
src_min=${SRC_MIN:-198.18.0.0} src_max=${SRC_MAX:-198.18.0.255}
dst=${DST:-198.19.0.0} dport=${DPORT:-443} flows=${FLOWS:-1000}

modprobe pktgen || { echo "this kernel has no pktgen module (CONFIG_NET_PKTGEN)" >&2; exit 1; }
pg() { echo "$2" > "/proc/net/pktgen/$1"; }

for ((t = 0; t < threads; t++)); do
  pg "kpktgend_$t" "rem_device_all"
  pg "kpktgend_$t" "add_device $dev@$t"
  d="$dev@$t"
  pg "$d" "count $count"
  pg "$d" "clone_skb 0"
  pg "$d" "pkt_size $size"
  pg "$d" "delay 0"
  pg "$d" "queue_map_min $t"
  pg "$d" "queue_map_max $t"
  pg "$d" "dst_mac $dst_mac"
  pg "$d" "src_min $src_min"
  pg "$d" "src_max $src_max"
  pg "$d" "dst $dst"
  pg "$d" "udp_dst_min $dport"
  pg "$d" "udp_dst_max $dport"
  pg "$d" "udp_src_min 10000"
  pg "$d" "udp_src_max $((10000 + flows - 1))"
  pg "$d" "flag IPSRC_RND"
  pg "$d" "flag UDPSRC_RND"
  pg "$d" "burst 32"
done

trap 'pg pgctrl stop' INT
pg pgctrl start || true
for ((t = 0; t < threads; t++)); do
  echo "thread $t:"; grep -A2 "Result:" "/proc/net/pktgen/$dev@$t" || true
done

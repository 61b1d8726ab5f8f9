#!/bin/sh
# Load test of a hub router with the kernel's pktgen module (CONFIG_NET_PKTGEN), run on a
# *sender machine* cabled to the router's client-side port. `cargo xtask kernel-test` runs
# this same file inside its Debian 12 guest against a veth pair with the filter attached on
# the receiving side (scripts/kernel-test/pktgen.sh). POSIX sh: bash, dash and busybox sh.
#
#   usage: pktgen-router.sh [-n] DEV DST_MAC
#
#   -n        dry run (also DRY_RUN=1/yes/true): print the pktgen commands, write nothing
#   DEV       sender interface cabled to the router (never a management interface)
#   DST_MAC   MAC address of the router port DEV is cabled to
#   THREADS   pktgen threads (one per CPU, kpktgend_N), default 2
#   COUNT     frames per thread (0 = until Ctrl-C), default 10000000
#   SIZE      frame size without FCS, default 60
#   SRC_MIN/SRC_MAX   IPv4 source range (a client prefix of the policy under test),
#                     default 198.51.100.10-198.51.100.10
#   DST       IPv4 destination (a service endpoint), default 203.0.113.10
#   DPORTS    UDP destination ports, one per thread in turn, default "443": give an allowed
#             and a denied port ("5000 5001") for a mix of allowed and denied frames
#   FLOWS     UDP source ports spread over (10000..10000+FLOWS-1), default 1000
#   DELAY     nanoseconds between frames of a thread (0 = as fast as it goes), default 0
#   BURST     frames per transmit call (needs driver support; 1 = off), default 32
#
# pktgen sends UDP. Give the policy under test a UDP endpoint for DST and the allowed port,
# load it on the router with `sdn-loader run --iface ...`, and read the router's side with
# `sdn-loader stats` and `ip -s link` (see README "pktgen against a hub router"). Use only
# documentation or benchmark (198.18.0.0/15) addresses, on a test network.
# Prints, per thread, pktgen's own result and one line an engineer (or a harness) reads:
#   PKTGEN-SENT thread=T dev=DEV@T dport=P sent=N errors=E pps=R
set -eu

usage() { sed -n '7,23p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
fail() { echo "pktgen-router.sh: $*" >&2; exit 1; }

case ${DRY_RUN:-0} in
    0|no|false|"") dry=0 ;;
    *) dry=1 ;;
esac
if [ "${1:-}" = "-n" ]; then dry=1; shift; fi
case "${1:-}" in -h|--help|"") usage ;; esac
[ $# -eq 2 ] || usage
dev=$1 dst_mac=$2
threads=${THREADS:-2} count=${COUNT:-10000000} size=${SIZE:-60}
src_min=${SRC_MIN:-198.51.100.10} src_max=${SRC_MAX:-198.51.100.10}
dst=${DST:-203.0.113.10} dports=${DPORTS:-443} flows=${FLOWS:-1000}
delay=${DELAY:-0} burst=${BURST:-32}

number() { case $2 in ''|*[!0-9]*) fail "$1 must be a whole number, not '$2'" ;; esac; }
number THREADS "$threads"; number COUNT "$count"; number SIZE "$size"
number FLOWS "$flows"; number DELAY "$delay"; number BURST "$burst"
[ "$threads" -ge 1 ] || fail "THREADS must be at least 1"
[ "$flows" -ge 1 ] && [ "$flows" -le 55536 ] || fail "FLOWS must be 1-55536"
[ "$size" -ge 42 ] || fail "SIZE must be at least 42 (Ethernet + IPv4 + UDP headers)"
for p in $dports; do
    number "a port of DPORTS" "$p"
    [ "$p" -ge 1 ] && [ "$p" -le 65535 ] || fail "DPORTS: $p is not a port"
done
nports=$(echo $dports | wc -w)
[ "$nports" -ge 1 ] || fail "DPORTS is empty"
echo "$dst_mac" | grep -Eq '^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$' ||
    fail "DST_MAC '$dst_mac' is not a MAC address (like 02:00:00:00:00:02)"
[ -e "/sys/class/net/$dev" ] || fail "no such device: $dev (ip link shows the interfaces)"

if [ "$dry" = 1 ]; then
    pg() { echo "echo \"$2\" > /proc/net/pktgen/$1"; }
else
    [ "$(id -u)" = 0 ] || fail "must run as root: pktgen is driven through /proc/net/pktgen"
    if [ ! -e /proc/net/pktgen/pgctrl ]; then
        modprobe pktgen 2>/dev/null || true
    fi
    [ -e /proc/net/pktgen/pgctrl ] ||
        fail "pktgen is not loaded: modprobe pktgen (the kernel needs CONFIG_NET_PKTGEN)"
    t=0
    while [ "$t" -lt "$threads" ]; do
        [ -e "/proc/net/pktgen/kpktgend_$t" ] ||
            fail "THREADS=$threads, but pktgen has no thread kpktgend_$t (one per CPU)"
        t=$((t + 1))
    done
    pg() {
        # pktgen answers each command in the file's Result line (and some by failing the
        # write: "burst" on a driver without TX skb sharing, veth among them; use BURST=1).
        if ! echo "$2" >"/proc/net/pktgen/$1" 2>/dev/null ||
            { [ "${1#kpktgend_}" = "$1" ] && [ "$1" != pgctrl ] &&
                ! grep -q "^Result: OK" "/proc/net/pktgen/$1"; }; then
            fail "pktgen refused '$2' on $1: $(grep '^Result:' "/proc/net/pktgen/$1" 2>/dev/null)"
        fi
    }
fi

# The port of thread T: DPORTS in turn.
port_of() { echo $dports | tr ' ' '\n' | sed -n "$(($1 % nports + 1))p"; }

t=0
while [ "$t" -lt "$threads" ]; do
    d="$dev@$t"
    port=$(port_of "$t")
    pg "kpktgend_$t" "rem_device_all"
    pg "kpktgend_$t" "add_device $d"
    pg "$d" "count $count"
    pg "$d" "clone_skb 0"
    pg "$d" "pkt_size $size"
    pg "$d" "delay $delay"
    pg "$d" "burst $burst"
    pg "$d" "queue_map_min $t"
    pg "$d" "queue_map_max $t"
    pg "$d" "dst_mac $dst_mac"
    pg "$d" "src_min $src_min"
    pg "$d" "src_max $src_max"
    pg "$d" "dst $dst"
    pg "$d" "udp_dst_min $port"
    pg "$d" "udp_dst_max $port"
    pg "$d" "udp_src_min 10000"
    pg "$d" "udp_src_max $((10000 + flows - 1))"
    if [ "$src_min" != "$src_max" ]; then pg "$d" "flag IPSRC_RND"; fi
    if [ "$flows" -gt 1 ]; then pg "$d" "flag UDPSRC_RND"; fi
    t=$((t + 1))
done

if [ "$dry" = 1 ]; then
    pg pgctrl start
    exit 0
fi
trap 'echo stop >/proc/net/pktgen/pgctrl' INT TERM
echo "pktgen: $threads thread(s) on $dev to $dst_mac, $dst udp ports: $dports, $count frames each of $size bytes"
echo start >/proc/net/pktgen/pgctrl || true
t=0
while [ "$t" -lt "$threads" ]; do
    d="$dev@$t"
    f="/proc/net/pktgen/$d"
    echo "thread $t ($d):"
    grep -A2 "^Result:" "$f" | sed 's/^/  /' || true
    sent=$(sed -n 's/.*pkts-sofar: \([0-9]*\).*/\1/p' "$f" | head -1)
    errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$f" | head -1)
    pps=$(sed -n 's/^ *\([0-9]*\)pps.*/\1/p' "$f" | head -1)
    echo "PKTGEN-SENT thread=$t dev=$d dport=$(port_of "$t") sent=${sent:-0} errors=${errors:-0} pps=${pps:-0}"
    t=$((t + 1))
done

#!/bin/sh
# pktgen part of `cargo xtask kernel-test`, in the 6.1 guest (busybox sh): the project's own
# scripts/pktgen-router.sh, the file an engineer runs on a real sender, drives the kernel's
# pktgen from a sender namespace into a veth pair whose receiving side has the real XDP
# program attached (native mode), with a mix of allowed and denied frames:
#   thread 0: UDP 198.51.100.10 -> 203.0.113.10:5000 (agreement 1001 allows udp 5000-5010)
#   thread 1: UDP 198.51.100.10 -> 203.0.113.10:6000 (no agreement: dropped, no-agreement)
# and checks, exactly: pktgen's sent count per thread equals COUNT and what the receiving veth
# saw (rx_packets, none dropped by the ring); the filter's per-agreement counters and drop
# reasons add up to what was sent, split as the mix says; the allowed frames reached the
# service's stack (UDP NoPorts: nobody listens) and the denied ones did not.
#
# usage: pktgen.sh LOADER POLICY PIN_DIR PKTGEN_SCRIPT
# Prints "PKTGEN ok|FAIL ...", the script's own output between PKTGEN-SCRIPT markers,
# "PKTGEN-RATE ..." (software emulation: a functional check, not a performance figure) and
# "PKTGEN-RESULT pass|fail". Documentation addresses only, in namespaces it makes and removes.

LOADER=$1
POLICY=$2
PIN=$3
SCRIPT=$4
IP=${IPROUTE2:-ip}
COUNT=${PKTGEN_COUNT:-2000}
A=sdnpg-a        # sender (client) namespace
B=sdnpg-b        # receiver (service) namespace, filter on its interface
IA=sdnpga
IB=sdnpgb
MAC_A=02:00:00:00:0a:01
MAC_B=02:00:00:00:0b:01
fails=0

say() { echo "PKTGEN $*"; }
inA() { $IP netns exec $A "$@"; }
inB() { $IP netns exec $B "$@"; }
check() { # check WHAT GOT WANT
    if [ "$2" = "$3" ]; then
        say "ok   $1: $2"
    else
        say "FAIL $1: $2, expected $3"
        fails=$((fails + 1))
    fi
}
cleanup() {
    "$LOADER" detach --netns $B --iface $IB --pin-dir "$PIN" --purge >/dev/null 2>&1
    $IP netns del $A 2>/dev/null
    $IP netns del $B 2>/dev/null
    rm -rf "$PIN" 2>/dev/null
}
stat() { inB cat "/sys/class/net/$IB/statistics/$1"; }
# UDP datagrams to a port nobody listens on: the column named NoPorts of /proc/net/snmp.
noports() {
    inB awk '/^Udp:/ { if (!c) { for (i = 2; i <= NF; i++) if ($i == "NoPorts") c = i } else print $c }' /proc/net/snmp
}
# Numbers out of `stats --json` (pretty-printed; made one line first).
compact() { echo "$1" | tr -d ' \n'; }
# (0 when absent, so that a missing figure fails its check instead of the arithmetic.)
fwd() { v=$(compact "$1" | tr '{' '\n' | grep '"agreement":1001,' | sed -n 's/.*"forward_packets":\([0-9]*\).*/\1/p'); echo "${v:-0}"; }
field() { v=$(compact "$1" | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" | head -1); echo "${v:-0}"; }
cleanup
mkdir -p /run/netns
$IP netns add $A && $IP netns add $B || { say "FAIL cannot create namespaces"; echo "PKTGEN-RESULT fail"; exit 1; }
$IP link add $IA netns $A address $MAC_A type veth peer name $IB netns $B address $MAC_B ||
    { say "FAIL cannot create the veth pair"; cleanup; echo "PKTGEN-RESULT fail"; exit 1; }
for ns in $A $B; do
    $IP netns exec $ns $IP link set lo up
    # No IPv6 (router solicitations, MLD): every frame on the pair is pktgen's.
    $IP netns exec $ns sh -c 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6' 2>/dev/null
done
inA $IP addr add 198.51.100.10/24 dev $IA
inB $IP addr add 203.0.113.10/24 dev $IB
inA $IP link set $IA up arp off
inB $IP link set $IB up arp off
inB $IP route add 198.51.100.0/24 dev $IB

if "$LOADER" run --netns $B --iface $IB --policy "$POLICY" --pin-dir "$PIN" --mode native >/tmp/pktgen-run 2>&1; then
    say "ok   attached in native mode to $IB"
else
    cat /tmp/pktgen-run
    say "FAIL sdn-loader run: nothing to measure without the filter"
    cleanup
    echo "PKTGEN-RESULT fail"
    exit 1
fi

before=$("$LOADER" stats --pin-dir "$PIN" --json)
rx0=$(stat rx_packets) drop0=$(stat rx_dropped) np0=$(noports)

echo "PKTGEN-SCRIPT-BEGIN"
inA env THREADS=2 COUNT=$COUNT SIZE=60 SRC_MIN=198.51.100.10 SRC_MAX=198.51.100.10 \
    DST=203.0.113.10 DPORTS="5000 6000" FLOWS=10 DELAY=200000 BURST=1 \
    sh "$SCRIPT" $IA $MAC_B >/tmp/pktgen-out 2>&1
src=$?
cat /tmp/pktgen-out
echo "PKTGEN-SCRIPT-END"
check "the script's exit status" $src 0

after=$("$LOADER" stats --pin-dir "$PIN" --json)
rx1=$(stat rx_packets) drop1=$(stat rx_dropped) np1=$(noports)
sent0=$(sed -n 's/^PKTGEN-SENT thread=0 .* sent=\([0-9]*\).*/\1/p' /tmp/pktgen-out)
sent1=$(sed -n 's/^PKTGEN-SENT thread=1 .* sent=\([0-9]*\).*/\1/p' /tmp/pktgen-out)
check "pktgen thread 0 (allowed, udp 5000) sent" "${sent0:-none}" $COUNT
check "pktgen thread 1 (denied, udp 6000) sent" "${sent1:-none}" $COUNT
total=$((${sent0:-0} + ${sent1:-0}))
check "frames the receiving veth saw (rx_packets)" $((rx1 - rx0)) $total
check "frames the receiving veth dropped (rx_dropped)" $((drop1 - drop0)) 0

check "agreement 1001 forward packets (the allowed thread)" $(($(fwd "$after") - $(fwd "$before"))) ${sent0:-0}
check "no-agreement drops (the denied thread)" $(($(field "$after" no-agreement) - $(field "$before" no-agreement))) ${sent1:-0}
seen=$(( $(field "$after" passed) - $(field "$before" passed) + $(field "$after" dropped) - $(field "$before" dropped) ))
check "every frame judged once (passed + dropped)" $seen $total
check "allowed frames that reached the service (UDP NoPorts)" $((np1 - np0)) ${sent0:-0}
[ $fails -eq 0 ] || { echo "PKTGEN note: the service's /proc/net/snmp:"; inB grep -E '^(Ip|Udp):' /proc/net/snmp; }

grep '^PKTGEN-SENT' /tmp/pktgen-out | while read -r line; do
    echo "PKTGEN-RATE ${line#PKTGEN-SENT } (paced at one frame per 200 us per thread; software emulation under qemu TCG: a functional check, not a performance figure)"
done
cleanup
if [ $fails -eq 0 ]; then echo "PKTGEN-RESULT pass"; exit 0; fi
echo "PKTGEN-RESULT fail ($fails checks failed)"
exit 1

#!/bin/sh
# End-to-end part of `cargo xtask kernel-test`: two network namespaces joined by a veth pair,
# the real XDP program attached (native mode) to the service side with a policy, then allowed
# and denied traffic. Runs in the test kernel's /init (busybox sh) and on the host (--kernel
# host). Uses busybox applets (via `busybox APPLET`), iproute2's `ip` and the loader.
#
# usage: e2e.sh LOADER POLICY PIN_DIR PROG_INFO
# Prints "E2E ok|FAIL ..." per check, the loader's stats (--json) between E2E-STATS markers,
# the kernel's view of the loaded programs (PROG lines of prog-info.c), and finally
# "E2E-RESULT pass|fail". Exit 0 on pass. UDP needs OpenBSD netcat ($NC_OPENBSD, default
# nc.openbsd): busybox nc has no UDP.
# Policy: examples/demo-policy.toml (client 198.51.100.10 has agreements 1001 fmk and
# 1003 pacs; 198.51.100.20's agreement 1002 is revoked). Documentation addresses only.

LOADER=$1
POLICY=$2
PIN=$3
PROGINFO=$4
NCO=${NC_OPENBSD:-nc.openbsd}
IP=${IPROUTE2:-ip}  # a full path in the guest: busybox sh would run its own ip applet (no netns)
A=sdnkt-a        # client namespace
B=sdnkt-b        # service namespace (filter attached on its interface)
IA=sdnkta
IB=sdnktb
BB=busybox
fails=0

say() { echo "E2E $*"; }
inA() { $IP netns exec $A "$@"; }
inB() { $IP netns exec $B "$@"; }

cleanup() {
    "$LOADER" detach --netns $B --iface $IB --pin-dir "$PIN" --purge >/dev/null 2>&1
    $IP netns del $A 2>/dev/null
    $IP netns del $B 2>/dev/null
    rm -rf "$PIN" 2>/dev/null
}

check() { # check EXPECT(ok|blocked) GOT(ok|blocked) WHAT
    if [ "$1" = "$2" ]; then
        say "ok   $3: $2 as expected"
    else
        say "FAIL $3: $2, expected $1"
        fails=$((fails + 1))
    fi
}

ping_test() { # ping_test EXPECT DST WHAT
    if inA $BB ping -c 2 -W 2 "$2" >/dev/null 2>&1; then got=ok; else got=blocked; fi
    check "$1" $got "$3"
}

tcp_test() { # tcp_test EXPECT DST PORT WHAT
    out=/tmp/sdnkt-nc.$$
    rm -f $out
    inB $BB timeout 6 $BB nc -l -p "$3" >$out 2>/dev/null &
    srv=$!
    sleep 1
    echo "hello from the clinic" | inA $BB timeout 4 $BB nc -w 3 "$2" "$3" >/dev/null 2>&1
    wait $srv 2>/dev/null
    if grep -q "hello from the clinic" $out 2>/dev/null; then got=ok; else got=blocked; fi
    rm -f $out
    check "$1" $got "$4"
}

udp_test() { # udp_test EXPECT DST PORT WHAT
    out=/tmp/sdnkt-nc.$$
    rm -f $out
    inB $BB timeout 5 $NCO -u -l "$2" "$3" >$out 2>/dev/null &
    srv=$!
    sleep 1
    echo "datagram from the clinic" | inA $BB timeout 3 $NCO -u -w 1 "$2" "$3" >/dev/null 2>&1
    wait $srv 2>/dev/null
    if grep -q "datagram from the clinic" $out 2>/dev/null; then got=ok; else got=blocked; fi
    rm -f $out
    check "$1" $got "$4"
}

cleanup
mkdir -p /run/netns
$IP netns add $A && $IP netns add $B || { say "FAIL cannot create namespaces"; echo "E2E-RESULT fail"; exit 1; }
$IP link add $IA netns $A type veth peer name $IB netns $B || { say "FAIL cannot create the veth pair"; cleanup; echo "E2E-RESULT fail"; exit 1; }
inA $IP link set lo up
inB $IP link set lo up
inA $IP addr add 198.51.100.10/24 dev $IA
inA $IP addr add 198.51.100.20/24 dev $IA
inA $IP addr add 2001:db8:100::10/64 dev $IA nodad
inB $IP addr add 203.0.113.10/24 dev $IB
inB $IP addr add 203.0.113.20/24 dev $IB
inB $IP addr add 2001:db8:300::10/64 dev $IB nodad
inA $IP link set $IA up
inB $IP link set $IB up
inA $IP route add 203.0.113.0/24 dev $IA src 198.51.100.10
inB $IP route add 198.51.100.0/24 dev $IB
inA $IP -6 route add 2001:db8:300::/64 dev $IA
inB $IP -6 route add 2001:db8:100::/64 dev $IB

# Before the filter: the path works at all (otherwise a "blocked" below would prove nothing).
ping_test ok 203.0.113.20 "without filter: ping 203.0.113.20 (path works)"

if "$LOADER" run --netns $B --iface $IB --policy "$POLICY" --pin-dir "$PIN" --mode native; then
    say "ok   attached in native mode to $IB"
else
    say "FAIL sdn-loader run (native mode on veth): no traffic tests without the filter"
    cleanup
    echo "E2E-RESULT fail (the program could not be attached)"
    exit 1
fi

ping_test ok 203.0.113.10 "ping 203.0.113.10 (icmp, agreement 1001)"
tcp_test ok 203.0.113.10 443 "TCP 198.51.100.10 -> 203.0.113.10:443 (agreement 1001)"
tcp_test ok 203.0.113.20 11112 "TCP 198.51.100.10 -> 203.0.113.20:11112 dicom (1003)"
udp_test ok 203.0.113.10 5000 "UDP 198.51.100.10 -> 203.0.113.10:5000 (agreement 1001)"
tcp_test ok 2001:db8:300::10 443 "TCP [2001:db8:100::10] -> [2001:db8:300::10]:443 (1001)"
ping_test ok 2001:db8:300::10 "ping 2001:db8:300::10 (icmpv6, agreement 1001)"
tcp_test blocked 203.0.113.10 22 "TCP 198.51.100.10 -> 203.0.113.10:22 (no agreement)"
ping_test blocked 203.0.113.20 "ping 203.0.113.20 (pacs has no icmp endpoint)"
inA $IP route replace 203.0.113.0/24 dev $IA src 198.51.100.20
tcp_test blocked 203.0.113.10 443 "TCP 198.51.100.20 -> 203.0.113.10:443 (1002 revoked)"
inA $IP route replace 203.0.113.0/24 dev $IA src 198.51.100.10

echo "E2E-STATS-BEGIN"
"$LOADER" stats --pin-dir "$PIN" --json || fails=$((fails + 1))
echo "E2E-STATS-END"
# The attached program and the programs it tail-calls: sizes and the verifier's processed
# instruction count (verified_insns).
"$PROGINFO" "$PIN" || say "note: prog-info could not read the programs"
cleanup
if [ $fails -eq 0 ]; then echo "E2E-RESULT pass"; exit 0; fi
echo "E2E-RESULT fail ($fails checks failed)"
exit 1

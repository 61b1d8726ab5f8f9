#!/bin/busybox sh
# /init of the kernel-test initramfs (see scripts/kernel-test.sh). Runs as PID 1 under the
# kernel being tested. Console: ttyS0 (progress). Results: ttyS1, read by the host:
#   KT-KERNEL <uname -r> | <the kernel's /proc/version>
#   KT-BEGIN <policy> <capture>, the loader's --json lines, KT-END <policy> <capture> rc=<rc>
#   (on failure the loader's stderr, verifier log included, between KT-STDERR markers)
#   the output of scripts/kernel-test/e2e.sh and of scripts/kernel-test/pktgen.sh,
#   KT-TIME <phase> <seconds>, KT-DONE
/bin/busybox mkdir -p /proc /sys /dev /run /tmp /usr/bin /usr/sbin /sbin
/bin/busybox --install -s /bin
export PATH=/kt/bin:/bin:/sbin:/usr/bin:/usr/sbin
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t bpf bpf /sys/fs/bpf
mkdir -p /run/netns
dmesg -n 1
exec 3>/dev/ttyS1
stty -F /dev/ttyS1 raw -echo 2>/dev/null

up() { cut -d' ' -f1 /proc/uptime; }
DATE=$(cat /kt/date)
echo "KT-KERNEL $(uname -r) | $(cat /proc/version)" >&3
echo "kernel-test guest: $(uname -r), $(nproc) CPUs, up $(up) s"
echo "KT-TIME boot $(up)" >&3
if [ -f /kt/probe-only ]; then
    sdn-loader probe 2>&1
    sync
    poweroff -f
fi

t0=$(up)
while read -r pol cap; do
    echo "replay: policy $pol, capture $cap"
    echo "KT-BEGIN $pol $cap" >&3
    sdn-loader replay --policy /kt/corpus/policies/$pol.toml --pcap /kt/corpus/captures/$cap.pcap \
        --json --date "$DATE" >&3 2>/tmp/stderr
    rc=$?
    echo "KT-END $pol $cap rc=$rc" >&3
    if [ $rc -ne 0 ]; then
        echo "KT-STDERR-BEGIN" >&3
        cat /tmp/stderr >&3
        echo "KT-STDERR-END" >&3
        tail -5 /tmp/stderr
    fi
done </kt/corpus/pairs
t1=$(up)
echo "KT-TIME replay $(awk "BEGIN {print $t1 - $t0}")" >&3

insmod /kt/veth.ko 2>&1 || echo "insmod veth failed"
NC_OPENBSD=/kt/bin/nc.openbsd IPROUTE2=/kt/bin/ip sh /kt/e2e.sh /kt/bin/sdn-loader /kt/e2e-policy.toml /sys/fs/bpf/kt /kt/bin/prog-info >/tmp/e2e 2>&1
cat /tmp/e2e >&3
grep -E '^E2E (ok|FAIL)|^E2E-RESULT|^PROG' /tmp/e2e
t2=$(up)
echo "KT-TIME e2e $(awk "BEGIN {print $t2 - $t1}")" >&3

insmod /kt/pktgen.ko 2>&1 || echo "insmod pktgen failed"
IPROUTE2=/kt/bin/ip sh /kt/pktgen.sh /kt/bin/sdn-loader /kt/e2e-policy.toml /sys/fs/bpf/pg /kt/pktgen-router.sh >/tmp/pktgen 2>&1
cat /tmp/pktgen >&3
grep -E '^PKTGEN (ok|FAIL)|^PKTGEN-(RATE|RESULT)' /tmp/pktgen
t3=$(up)
echo "KT-TIME pktgen $(awk "BEGIN {print $t3 - $t2}")" >&3
echo "KT-DONE" >&3
sync
poweroff -f

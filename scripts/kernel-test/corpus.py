#!/usr/bin/env python3
"""Verdict corpus for `cargo xtask kernel-test`: policies and pcap captures of varied frames.

The same (policy, capture) pairs are replayed with `sdn-loader replay --json` on the host kernel
and on the kernel under test; every verdict line must agree. Deterministic (fixed seeds), standard
library only, documentation addresses only.

usage: corpus.py OUTDIR
writes OUTDIR/policies/*.toml, OUTDIR/captures/*.pcap and OUTDIR/pairs (one "policy capture" a line)
"""

import os
import random
import struct
import sys

# --- policies --------------------------------------------------------------------------------

POLICY_VLAN = """# kernel-test: VLAN-scoped agreements, nested client prefixes, overlapping ports, infrastructure.
[[organisation]]
id = "sds"
name = "Sundhedsdatastyrelsen"

[[organisation]]
id = "rh"
name = "Region Hovedstaden"

[[port_alias]]
name = "dicom"
protocol = "tcp"
ports = ["104", "11112"]

[[service]]
id = "fmk"
organisation = "sds"
name = "Faelles Medicinkort"
endpoints = [
  { address = "203.0.113.0/28", protocol = "tcp", ports = ["443", "8000-8100"] },
  { address = "203.0.113.10", protocol = "udp", ports = "5000-5010" },
  { address = "203.0.113.10", protocol = "icmp" },
  { address = "2001:db8:300::/64", protocol = "tcp", ports = "443" },
  { address = "2001:db8:300::10", protocol = "icmpv6" },
]

[[service]]
id = "pacs"
organisation = "rh"
name = "RIS/PACS"
endpoints = [
  { address = "203.0.113.20", protocol = "tcp", ports = ["dicom", "8050-8200"] },
  { address = "203.0.113.20", protocol = "udp", ports = "5005-5020" },
  { address = "2001:db8:300::20", protocol = "tcp", ports = "dicom" },
]

[[service]]
id = "lab"
organisation = "rh"
name = "Laboratory"
endpoints = [
  { address = "203.0.113.30", protocol = "any" },
]

[[client]]
id = "region"
organisation = "rh"
prefixes = ["198.51.100.0/24", "2001:db8:100::/48"]

[[client]]
id = "clinic"
organisation = "rh"
prefixes = ["198.51.100.0/28", "2001:db8:100::10/128"]

[[client]]
id = "ward"
organisation = "rh"
prefixes = ["198.51.100.10/32"]

[[agreement]]
id = 2001
client = "region"
service = "fmk"
state = "approved"
vlan = 100

[[agreement]]
id = 2002
client = "clinic"
service = "fmk"
state = "approved"

[[agreement]]
id = 2003
client = "ward"
service = "pacs"
state = "approved"
expires = "2030-01-01"

[[agreement]]
id = 2004
client = "clinic"
service = "pacs"
state = "approved"
expires = "2025-01-01"

[[agreement]]
id = 2005
client = "region"
service = "lab"
state = "requested"

[[agreement]]
id = 2006
client = "clinic"
service = "lab"
state = "approved"
vlan = 200

[[infrastructure]]
prefix = "192.0.2.0/28"
protocol = "tcp"
ports = ["22", "179"]

[[infrastructure]]
prefix = "2001:db8:ffff::1"
"""

POLICY_EMPTY = """# kernel-test: no agreement at all, only infrastructure (everything else drops).
[[infrastructure]]
prefix = "192.0.2.1"
protocol = "icmp"

[[infrastructure]]
prefix = "2001:db8:ffff::/64"
protocol = "tcp"
ports = "22"
"""

# --- frame building --------------------------------------------------------------------------


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ip4(text):
    return bytes(int(x) for x in text.split("."))


def ip6(text):
    head, _, tail = text.partition("::")
    h = [int(x, 16) for x in head.split(":") if x]
    t = [int(x, 16) for x in tail.split(":") if x] if "::" in text else []
    words = h + [0] * (8 - len(h) - len(t)) + t
    return struct.pack("!8H", *words)


MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


def eth(ethertype, payload, vlans=(), tpid=0x8100):
    hdr = MAC_B + MAC_A
    for i, v in enumerate(vlans):
        outer = tpid if i == 0 else 0x8100
        hdr += struct.pack("!HH", outer, v & 0x0FFF)
    return hdr + struct.pack("!H", ethertype) + payload


def tcp(sport, dport, flags, payload=b"", seq=1000, ack=0):
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload


def udp(sport, dport, payload=b""):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def icmp(typ, code, rest, payload=b""):
    body = struct.pack("!BBH", typ, code, 0) + rest + payload
    c = csum(body)
    return body[:2] + struct.pack("!H", c) + body[4:]


def with_l4_csum4(proto, src, dst, seg):
    if proto not in (6, 17):
        return seg
    pseudo = src + dst + struct.pack("!BBH", 0, proto, len(seg))
    c = csum(pseudo + seg)
    off = 16 if proto == 6 else 6
    return seg[:off] + struct.pack("!H", c or 0xFFFF) + seg[off + 2 :]


def with_l4_csum6(proto, src, dst, seg):
    if proto not in (6, 17, 58):
        return seg
    pseudo = src + dst + struct.pack("!IxxxB", len(seg), proto)
    off = {6: 16, 17: 6, 58: 2}[proto]
    seg = seg[:off] + b"\0\0" + seg[off + 2 :]
    c = csum(pseudo + seg)
    return seg[:off] + struct.pack("!H", c or 0xFFFF) + seg[off + 2 :]


def ipv4(src, dst, proto, seg, frag=0, mf=False, df=False, ident=1, options=b"", ttl=64, l4csum=True):
    s, d = ip4(src), ip4(dst)
    if l4csum and frag == 0 and not mf:
        seg = with_l4_csum4(proto, s, d, seg)
    options += b"\0" * (-len(options) % 4)
    ihl = 5 + len(options) // 4
    flags = (0x2000 if mf else 0) | (0x4000 if df else 0) | (frag & 0x1FFF)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(seg), ident, flags, ttl, proto, 0, s, d) + options
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return eth(0x0800, hdr + seg)[14:]  # IPv4 packet (no Ethernet header)


def ipv6(src, dst, proto, seg, exts=(), hop=64, l4csum=True):
    """exts: list of (type, body) where type in 0 (hop-by-hop), 43 (routing), 60 (dest opts),
    44 (fragment: body is (offset, mf, ident))."""
    s, d = ip6(src), ip6(dst)
    if l4csum and not any(t == 44 for t, _ in exts):
        seg = with_l4_csum6(proto, s, d, seg)
    chain = b""
    types = [t for t, _ in exts] + [proto]
    for i, (t, body) in enumerate(exts):
        nxt = types[i + 1]
        if t == 44:
            off, mf, ident = body
            chain += struct.pack("!BBHI", nxt, 0, (off << 3) | (1 if mf else 0), ident)
        else:
            body = body + b"\0" * (-(len(body) + 2) % 8)
            chain += struct.pack("!BB", nxt, (len(body) + 2) // 8 - 1) + body
    first = types[0]
    hdr = struct.pack("!IHBB16s16s", 6 << 28, len(chain) + len(seg), first, hop, s, d)
    return hdr + chain + seg


def frame4(*a, vlans=(), **k):
    return eth(0x0800, ipv4(*a, **k), vlans)


def frame6(*a, vlans=(), **k):
    return eth(0x86DD, ipv6(*a, **k), vlans)


# --- address and port pools ------------------------------------------------------------------

CLIENTS4 = ["198.51.100.10", "198.51.100.20", "198.51.100.5", "198.51.100.77", "198.51.100.200"]
SERVICES4 = ["203.0.113.10", "203.0.113.20", "203.0.113.30", "203.0.113.5", "203.0.113.99"]
OTHER4 = ["192.0.2.1", "192.0.2.9", "192.0.2.77", "198.51.100.255", "203.0.113.255"]
CLIENTS6 = ["2001:db8:100::10", "2001:db8:100::11", "2001:db8:100:5::1", "2001:db8:101::1"]
SERVICES6 = ["2001:db8:300::10", "2001:db8:300::20", "2001:db8:300::99", "2001:db8:301::1"]
OTHER6 = ["2001:db8:ffff::1", "2001:db8:ffff::2", "fe80::1", "ff02::1"]
PORTS = [443, 5000, 5005, 5010, 5011, 104, 11112, 22, 179, 8000, 8050, 8100, 8101, 8200, 80, 53, 0, 65535]
VLANS = [100, 200, 300, 1, 4095]

# Tuples that some policy allows (v6, client, service, protocol, port, vlan): flows are drawn
# from these often, so that passes, transactions and the fast path are well represented.
GOOD = [
    (False, "198.51.100.10", "203.0.113.10", 6, 443, None),
    (False, "198.51.100.10", "203.0.113.20", 6, 104, None),
    (False, "198.51.100.10", "203.0.113.20", 6, 11112, None),
    (False, "198.51.100.10", "203.0.113.20", 6, 8100, None),
    (False, "198.51.100.5", "203.0.113.10", 6, 8000, None),
    (False, "198.51.100.5", "203.0.113.5", 6, 443, None),
    (False, "198.51.100.77", "203.0.113.5", 6, 443, 100),
    (False, "198.51.100.20", "203.0.113.10", 6, 443, None),
    (False, "198.51.100.10", "203.0.113.10", 17, 5000, None),
    (False, "198.51.100.10", "203.0.113.10", 17, 5010, None),
    (False, "198.51.100.10", "203.0.113.20", 17, 5015, None),
    (False, "198.51.100.10", "203.0.113.10", 1, 8, None),
    (False, "198.51.100.5", "203.0.113.30", 47, 0, 200),
    (True, "2001:db8:100::10", "2001:db8:300::10", 6, 443, None),
    (True, "2001:db8:100::10", "2001:db8:300::20", 6, 104, None),
    (True, "2001:db8:100::11", "2001:db8:300::99", 6, 443, 100),
    (True, "2001:db8:100::10", "2001:db8:300::10", 58, 128, None),
]


def pick(r, pool, other):
    return r.choice(pool) if r.random() < 0.85 else r.choice(other)


def random_frame(r):
    good = r.choice(GOOD) if r.random() < 0.35 else None
    v6 = good[0] if good else r.random() < 0.4
    if good:
        a, b = good[1], good[2]
    elif v6:
        a, b = pick(r, CLIENTS6, OTHER6), pick(r, SERVICES6, OTHER6)
    else:
        a, b = pick(r, CLIENTS4, OTHER4), pick(r, SERVICES4, OTHER4)
    proto = r.choice([6, 6, 6, 17, 17, 1, 132, 47]) if not v6 else r.choice([6, 6, 6, 17, 17, 58, 132])
    sport = r.choice(PORTS) if r.random() < 0.3 else r.randrange(1024, 65536)
    dport = r.choice(PORTS) if r.random() < 0.8 else r.randrange(0, 65536)
    if good:
        proto, dport = good[3], good[4]
    if r.random() < 0.35:
        a, b = b, a  # reply direction (or a service starting a connection)
        sport, dport = dport, sport
    if proto == 6:
        flags = r.choice([0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0x14, 0x02, 0x00, 0x3F])
        seg = tcp(sport, dport, flags, b"x" * r.choice([0, 0, 10, 100]))
    elif proto == 17:
        seg = udp(sport, dport, b"d" * r.choice([0, 4, 64]))
    elif proto in (1, 58):
        echo_req, echo_rep = (8, 0) if proto == 1 else (128, 129)
        if r.random() < 0.7:
            typ = r.choice([echo_req, echo_rep])
            seg = icmp(typ, 0, struct.pack("!HH", r.randrange(65536), r.randrange(100)), b"p" * 32)
        elif proto == 58 and r.random() < 0.5:
            seg = icmp(r.choice([133, 134, 135, 136, 137]), 0, b"\0" * 4, ip6(b) + b"\x01\x01" + MAC_A)
        else:
            # an error quoting a packet that went the other way
            inner_proto = r.choice([6, 17, 1 if proto == 1 else 58])
            if inner_proto == 6:
                iseg = tcp(dport or 443, sport, 0x02)
            elif inner_proto == 17:
                iseg = udp(dport or 5000, sport)
            else:
                iseg = icmp(echo_req, 0, b"\0\1\0\1")
            inner = ipv6(b, a, inner_proto, iseg) if v6 else ipv4(b, a, inner_proto, iseg)
            inner = inner[: r.choice([len(inner), 28, 48, 20, 10])]
            typ = (3 if proto == 1 else 1) if r.random() < 0.7 else r.choice([11, 12, 4, 5] if proto == 1 else [2, 3, 4])
            seg = icmp(typ, r.randrange(5), b"\0" * 4, inner)
    else:
        seg = b"\0" * r.choice([0, 8, 40])
    vlans = ()
    x = r.random()
    if good and good[5] and x < 0.8:
        vlans = (good[5],)
    elif x < 0.25:
        vlans = (r.choice(VLANS),)
    elif x < 0.3:
        vlans = (r.choice(VLANS), r.choice(VLANS))
    elif x < 0.32:
        vlans = (1, 2, 3)
    tpid = 0x88A8 if len(vlans) > 1 and r.random() < 0.5 else 0x8100
    if v6:
        exts = []
        if r.random() < 0.2:
            for _ in range(r.choice([1, 2, 3, 8, 9])):
                exts.append((r.choice([0, 60, 43]), b"\x01\x04\0\0\0\0"))
            if exts[0][0] != 0 and r.random() < 0.5:
                pass
        if r.random() < 0.08:
            exts.append((44, (r.choice([0, 0, 1, 100]), r.random() < 0.7, r.randrange(1 << 32))))
        pkt = ipv6(a, b, proto, seg, exts=exts, hop=r.choice([64, 1, 255]))
        f = eth(0x86DD, pkt, vlans, tpid)
    else:
        opts = b"" if r.random() < 0.85 else r.choice([b"\x01" * 4, b"\x07\x07\x04" + b"\0" * 4, b"\x01" * 40])
        frag, mf = 0, False
        if r.random() < 0.08:
            frag, mf = r.choice([(0, True), (1, True), (1, False), (185, False), (3, True)])
        pkt = ipv4(a, b, proto, seg, frag=frag, mf=mf, df=r.random() < 0.5, ident=r.randrange(65536), options=opts)
        f = eth(0x0800, pkt, vlans, tpid)
    return mutate(r, f)


def mutate(r, f):
    x = r.random()
    if x < 0.06:
        return f[: max(14, r.randrange(len(f) + 1))]  # truncated anywhere
    if x < 0.09:
        b = bytearray(f)
        i = r.randrange(12, len(b))
        b[i] = r.randrange(256)  # one corrupted byte (often a header field)
        return bytes(b)
    if x < 0.10:
        b = bytearray(f)
        for i in range(12, len(b)):
            if b[i - 2 : i] in (b"\x08\x00",) and i < len(b):
                b[i] = r.choice([0x44, 0x4F, 0x60, 0x46])  # bad IHL / version
                break
        return bytes(b)
    if x < 0.12:
        return eth(r.choice([0x0806, 0x88CC, 0x0001, 0x86DD, 0x0800]), bytes(r.randrange(256) for _ in range(r.randrange(0, 60))))
    return f


def random_capture(seed, n):
    r = random.Random(seed)
    return [random_frame(r) for _ in range(n)]


def flows_capture(seed, rounds):
    """Conversations in order (handshakes, data both ways, replies, fragments, ICMP errors),
    so that the flow table, the fast path and the fragment table are exercised."""
    r = random.Random(seed)
    out = []
    for _ in range(rounds):
        good = r.choice(GOOD) if r.random() < 0.65 else None
        v6 = good[0] if good else r.random() < 0.35
        c = good[1] if good else r.choice(CLIENTS6 if v6 else CLIENTS4)
        s = good[2] if good else r.choice(SERVICES6 if v6 else SERVICES4)
        vl = () if r.random() < 0.7 else (r.choice([100, 200, 300]),)
        if good and good[5] and r.random() < 0.8:
            vl = (good[5],)
        mk = (lambda *a, **k: frame6(*a, vlans=vl, **k)) if v6 else (lambda *a, **k: frame4(*a, vlans=vl, **k))
        sp = r.randrange(32768, 61000)
        kind = r.random()
        if good:
            kind = {6: 0.0, 17: 0.5, 1: 0.7, 58: 0.7}.get(good[3], 0.9)
            if r.random() < 0.15:
                kind = 0.9  # fragments
        if kind < 0.45:
            dp = good[4] if good else r.choice([443, 104, 11112, 8000, 8150, 22, 80])
            out.append(mk(c, s, 6, tcp(sp, dp, 0x02)))
            out.append(mk(s, c, 6, tcp(dp, sp, 0x12)))
            out.append(mk(c, s, 6, tcp(sp, dp, 0x10)))
            for _ in range(r.randrange(1, 5)):
                out.append(mk(c, s, 6, tcp(sp, dp, 0x18, b"q" * r.randrange(1, 200))))
                out.append(mk(s, c, 6, tcp(dp, sp, 0x18, b"a" * r.randrange(1, 400))))
            if r.random() < 0.3:
                out.append(mk(s, c, 6, tcp(dp, sp, 0x02)))  # a SYN from the service side
            out.append(mk(c, s, 6, tcp(sp, dp, 0x11)))
            out.append(mk(s, c, 6, tcp(dp, sp, 0x11)))
            if r.random() < 0.3:
                out.append(mk(s, c, 6, tcp(dp, sp, 0x10)))  # a stray reply without a flow
        elif kind < 0.65:
            dp = good[4] if good else r.choice([5000, 5005, 5010, 5011, 5015, 53])
            for _ in range(r.randrange(1, 4)):
                out.append(mk(c, s, 17, udp(sp, dp, b"u" * r.randrange(0, 100))))
                out.append(mk(s, c, 17, udp(dp, sp, b"v" * r.randrange(0, 100))))
        elif kind < 0.8:
            p = 58 if v6 else 1
            req, rep = (128, 129) if v6 else (8, 0)
            ident = r.randrange(65536)
            for q in range(r.randrange(1, 4)):
                out.append(mk(c, s, p, icmp(req, 0, struct.pack("!HH", ident, q), b"p" * 56)))
                out.append(mk(s, c, p, icmp(rep, 0, struct.pack("!HH", ident, q), b"p" * 56)))
            # an error from the service quoting the client's packet
            inner = ipv6(c, s, 17, udp(sp, 5000)) if v6 else ipv4(c, s, 17, udp(sp, 5000))
            out.append(mk(s, c, p, icmp(1 if v6 else 3, 4 if v6 else 3, b"\0" * 4, inner)))
        else:
            # a fragmented UDP datagram: head, later pieces, sometimes out of order or headless
            dp = r.choice([5000, 5007, 5015, 9999]) if not good or good[3] != 17 else good[4]
            ident = r.randrange(1, 65535)
            payload = udp(sp, dp, b"F" * 64)
            if v6:
                pieces = [
                    ipv6(c, s, 17, payload[:32], exts=[(44, (0, True, ident))]),
                    ipv6(c, s, 17, payload[32:64], exts=[(44, (4, True, ident))]),
                    ipv6(c, s, 17, payload[64:], exts=[(44, (8, False, ident))]),
                ]
                et = 0x86DD
            else:
                pieces = [
                    ipv4(c, s, 17, payload[:32], mf=True, ident=ident, l4csum=False),
                    ipv4(c, s, 17, payload[32:64], frag=4, mf=True, ident=ident, l4csum=False),
                    ipv4(c, s, 17, payload[64:], frag=8, ident=ident, l4csum=False),
                ]
                et = 0x0800
            x = r.random()
            if x < 0.2:
                pieces = pieces[1:]  # head lost
            elif x < 0.35:
                pieces = [pieces[1], pieces[0], pieces[2]]
            out.extend(eth(et, p, vl) for p in pieces)
    return out


def write_pcap(path, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, fr in enumerate(frames):
            f.write(struct.pack("<IIII", 1750000000 + i // 1000, (i % 1000) * 1000, len(fr), len(fr)))
            f.write(fr)


def main():
    out = sys.argv[1]
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    os.makedirs(os.path.join(out, "policies"), exist_ok=True)
    os.makedirs(os.path.join(out, "captures"), exist_ok=True)
    with open(os.path.join(repo, "examples", "demo-policy.toml")) as f:
        policies = {"demo": f.read(), "vlan-nested": POLICY_VLAN, "infra-only": POLICY_EMPTY}
    for name, text in policies.items():
        with open(os.path.join(out, "policies", name + ".toml"), "w") as f:
            f.write(text)
    captures = {
        "random": random_capture(6001, 1500),
        "flows": flows_capture(6002, 120),
    }
    for name, frames in captures.items():
        write_pcap(os.path.join(out, "captures", name + ".pcap"), frames)
    pairs = [(p, c) for p in policies for c in captures]
    with open(os.path.join(out, "pairs"), "w") as f:
        for p, c in pairs:
            f.write("%s %s\n" % (p, c))
    total = sum(len(v) for v in captures.values()) * len(policies)
    print("corpus: %d policies x %d captures (%s), %d verdicts" % (
        len(policies), len(captures), ", ".join("%s %d frames" % (k, len(v)) for k, v in captures.items()), total))


if __name__ == "__main__":
    main()

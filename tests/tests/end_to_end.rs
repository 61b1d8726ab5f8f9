//! End-to-end through real network namespaces: `scripts/topology.sh` builds client, hub and
//! service namespaces joined by veth pairs; `sdn-loader run` attaches the real XDP program
//! (native mode) to both hub interfaces with a test policy (the demo policy's agreements);
//! traffic goes through the hub with real sockets and `ping`; `sdn-loader stats --json` is
//! compared with what was sent.
//!
//! What is checked:
//! - IPv4 TCP: an allowed connection completes with all data; its forward/reply packet
//!   counts equal the client's / service's own TCP segment counts (`OutSegs` +
//!   `RetransSegs`, as `nstat` shows them), its byte counts equal the endpoints' IP byte
//!   counts plus 14 Ethernet bytes per frame, and it is exactly one transaction, counted to
//!   the right agreement (1001 or 1003) and no other. Denied connections (revoked agreement,
//!   port not in the agreement, service not in any of the client's agreements) time out,
//!   nothing reaches the service, and every SYN is a `no-agreement` drop.
//! - UDP and ICMP: N datagrams / N echo requests give exactly N forward packets, N x frame
//!   length bytes, the replies exactly their packets and bytes, and one transaction.
//! - IPv6: ping6 and an allowed TCP connection pass and are counted exactly; a port outside
//!   the agreement is dropped.
//! - Re-running `run` on the same pins keeps every counter (and does not count a known flow
//!   again); `detach` removes the program: the previously denied connection then works and
//!   nothing is counted; `detach --purge` removes the pins.
//!
//! Needs root, `ip` (iproute2) and `ping` (iputils). Each test uses its own namespaces
//! (prefix "e2e" + pid + tag) and pin directory, removed on drop even when the test fails.
//! Run with `cargo test --release -p sdn-tests --test end_to_end -- --test-threads 1`
//! (parallel runs work too; one thread keeps the timing quiet).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
#![allow(unused_crate_dependencies, reason = "one dependency list per package")]

use sdn_tests as support;

use std::{
    io::{self, Read, Write},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener},
    process::Command,
    thread,
    time::Duration,
};

use support::netns::{
    AgreementRow, ETH_HLEN, NetCounters, Snapshot, Topology, accept_within, eventually, ping, run,
    tcp_connect, tcp_listen, udp_bind,
};

/// The demo policy's agreements (a private copy, so edits to the example do not move these
/// tests): 1001 ouh-clinic -> fmk (tcp 443, udp 5000-5010, icmp; IPv6 tcp 443, icmpv6),
/// 1002 lab -> fmk revoked, 1003 ouh-clinic -> pacs (dicom: tcp 104, 11112).
const POLICY: &str = include_str!("../fixtures/end-to-end-policy.toml");

const FMK_AGREEMENT: u32 = 1001;
const LAB_AGREEMENT: u32 = 1002;
const PACS_AGREEMENT: u32 = 1003;

/// ouh-clinic (agreements 1001, 1003).
const CLINIC: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10));
/// lab (agreement 1002, revoked).
const LAB: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 20));
/// fmk.
const FMK: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));
/// pacs.
const PACS: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 20));
/// ouh-clinic, IPv6.
const CLINIC6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x10));
/// fmk, IPv6.
const FMK6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x300, 0, 0, 0, 0, 0x10));

/// Connecting where the filter lets the SYN through (generous: it is a local veth hop).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Waiting for a denied connection: long enough for the first SYN retransmission (the
/// initial RTO is 1 s), so more than one SYN must be dropped.
const DENIED_TIMEOUT: Duration = Duration::from_millis(1500);
/// Reads and writes on established connections and UDP sockets.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long counters may lag the traffic (a last ACK still in flight).
const SETTLE: Duration = Duration::from_secs(3);

/// What the service answers once it has read the client's data.
const ANSWER: &[u8] = b"received, thank you\n";

/// Bytes of an ICMP echo with `ping -s 56`: Ethernet + IPv4 20 + ICMP 8 + 56.
const PING4_FRAME: u64 = ETH_HLEN + 20 + 8 + 56;
/// Bytes of an ICMPv6 echo with `ping -s 56`: Ethernet + IPv6 40 + ICMPv6 8 + 56.
const PING6_FRAME: u64 = ETH_HLEN + 40 + 8 + 56;

fn sa(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

/// A recognisable payload of `n` bytes (not a repeating short cycle).
fn payload(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31) ^ ((i / 251) as u8) ^ seed)
        .collect()
}

/// One TCP connection: the client connects from `src`, sends `data` and half-closes; the
/// service (accepting on `listener`) reads all of it, answers [`ANSWER`] and closes; the
/// client reads the answer to the end and closes. Errors if anything is missing.
fn tcp_exchange(
    topo: &Topology,
    listener: &TcpListener,
    src: IpAddr,
    dst: SocketAddr,
    data: &[u8],
) -> io::Result<()> {
    thread::scope(|s| {
        let server = s.spawn(|| -> io::Result<Vec<u8>> {
            let mut conn = accept_within(listener, CONNECT_TIMEOUT + Duration::from_secs(1))?;
            conn.set_read_timeout(Some(IO_TIMEOUT))?;
            conn.set_write_timeout(Some(IO_TIMEOUT))?;
            let mut got = Vec::new();
            conn.read_to_end(&mut got)?;
            conn.write_all(ANSWER)?;
            Ok(got)
        });
        let client = (|| -> io::Result<Vec<u8>> {
            let mut c = tcp_connect(&topo.client(), src, dst, CONNECT_TIMEOUT)?;
            c.set_read_timeout(Some(IO_TIMEOUT))?;
            c.set_write_timeout(Some(IO_TIMEOUT))?;
            c.write_all(data)?;
            c.shutdown(Shutdown::Write)?;
            let mut answer = Vec::new();
            c.read_to_end(&mut answer)?;
            Ok(answer)
        })();
        let received = server.join().expect("server thread panicked");
        let answer = client.map_err(|e| io::Error::new(e.kind(), format!("client: {e}")))?;
        let received = received.map_err(|e| io::Error::new(e.kind(), format!("service: {e}")))?;
        if received != data {
            return Err(io::Error::other(format!(
                "the service received {} bytes, not the {} bytes sent (or different ones)",
                received.len(),
                data.len()
            )));
        }
        if answer != ANSWER {
            return Err(io::Error::other(format!(
                "the client got {answer:?} as the answer"
            )));
        }
        Ok(())
    })
}

/// After exactly one TCP connection under agreement `id` since `before`: one transaction;
/// forward packets = TCP segments the client put on the wire, reply packets = the service's
/// (both read from the endpoints' kernels, like `nstat`); bytes = the endpoints' IP bytes +
/// 14 per frame (exact because [`Topology::one_segment_per_packet`] makes every IP packet
/// one frame). Other agreements' counters must not move.
///
/// IPv6 byte counts are only compared when the endpoint sent no IPv6 packet other than the
/// TCP segments (neighbour discovery may interleave; it goes out as IPv6 too). IPv4 has no
/// such traffic (ARP is not IP), so there the comparison is unconditional.
fn assert_tcp_counted(topo: &Topology, id: u32, dst: SocketAddr, before: &Snapshot) {
    let v6 = dst.is_ipv6();
    eventually(SETTLE, || {
        let now = topo.snapshot();
        let g = now.stats.grown(&before.stats, id);
        let fwd_segs = now.client.tcp_segments_sent() - before.client.tcp_segments_sent();
        let rep_segs = now.service.tcp_segments_sent() - before.service.tcp_segments_sent();
        let mut errors = Vec::new();
        if g.transactions != 1 {
            errors.push(format!("transactions grew by {}, not 1", g.transactions));
        }
        if g.forward_packets != fwd_segs {
            errors.push(format!(
                "forward_packets grew by {}, the client sent {fwd_segs} TCP segments",
                g.forward_packets
            ));
        }
        if g.reply_packets != rep_segs {
            errors.push(format!(
                "reply_packets grew by {}, the service sent {rep_segs} TCP segments",
                g.reply_packets
            ));
        }
        let family_out = |c: &NetCounters| {
            if v6 { c.ipv6_out() } else { c.ipv4_out() }
        };
        for (what, segs, bytes, (p1, o1), (p0, o0)) in [
            (
                "forward",
                fwd_segs,
                g.forward_bytes,
                family_out(&now.client),
                family_out(&before.client),
            ),
            (
                "reply",
                rep_segs,
                g.reply_bytes,
                family_out(&now.service),
                family_out(&before.service),
            ),
        ] {
            let (ip_packets, ip_bytes) = (p1 - p0, o1 - o0);
            if ip_packets != segs {
                if v6 {
                    eprintln!(
                        "note: {what}: {ip_packets} IPv6 packets for {segs} TCP segments (neighbour discovery?), byte count not compared"
                    );
                    continue;
                }
                errors.push(format!(
                    "{what}: the endpoint sent {ip_packets} IP packets for {segs} TCP segments"
                ));
            } else if bytes != ip_bytes + ETH_HLEN * segs {
                errors.push(format!(
                    "{what}_bytes grew by {bytes}, the endpoint sent {ip_bytes} IP bytes in {segs} frames (= {} frame bytes)",
                    ip_bytes + ETH_HLEN * segs
                ));
            }
        }
        for row in &now.stats.agreements {
            if row.agreement != id {
                let was = before.stats.agreement(row.agreement);
                if *row != was {
                    errors.push(format!(
                        "agreement {} moved: {was:?} -> {row:?}",
                        row.agreement
                    ));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "agreement {id} after one TCP connection: {}\n(grown by {g:?})",
                errors.join("; ")
            ))
        }
    });
}

/// A connection from `src` to `dst` must not complete: the SYNs vanish (time-out, not a
/// refusal: the service has a listener on `listener`), nothing reaches the service, every
/// SYN the client sent is counted as a `no-agreement` drop, and no agreement counts anything.
fn assert_dropped(topo: &Topology, listener: &TcpListener, src: IpAddr, dst: SocketAddr) {
    let before = topo.snapshot();
    match tcp_connect(&topo.client(), src, dst, DENIED_TIMEOUT) {
        Ok(_) => panic!("{src} -> {dst}: connected, but no agreement allows it"),
        Err(e) => assert_eq!(
            e.kind(),
            io::ErrorKind::TimedOut,
            "{src} -> {dst}: expected the SYNs to be dropped silently (a time-out), got: {e}"
        ),
    }
    eventually(SETTLE, || {
        let now = topo.snapshot();
        let syns = now.client.tcp_segments_sent() - before.client.tcp_segments_sent();
        let drops = now.stats.reason_grown(&before.stats, "no-agreement");
        let arrived = now.service.get("Tcp.InSegs") - before.service.get("Tcp.InSegs");
        if syns < 2 {
            return Err(format!(
                "{src} -> {dst}: the client sent {syns} SYNs in {DENIED_TIMEOUT:?}, expected >= 2"
            ));
        }
        if drops < syns {
            return Err(format!(
                "{src} -> {dst}: {syns} SYNs sent, only {drops} no-agreement drops counted"
            ));
        }
        if arrived != 0 {
            return Err(format!(
                "{src} -> {dst}: {arrived} TCP segments reached the service"
            ));
        }
        if now.stats.agreements != before.stats.agreements {
            return Err(format!(
                "{src} -> {dst}: agreement counters moved: {:?} -> {:?}",
                before.stats.agreements, now.stats.agreements
            ));
        }
        Ok(())
    });
    match accept_within(listener, Duration::ZERO) {
        Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
        other => panic!("{src} -> {dst}: the service had a connection to accept: {other:?}"),
    }
}

/// Whether `ip` shows an XDP program on the hub interface `iface`.
fn xdp_attached(topo: &Topology, iface: &str) -> bool {
    let out = run(Command::new("ip").args(["-n", &topo.hub(), "-d", "link", "show", "dev", iface]));
    assert!(out.status.success(), "ip link show {iface}: {out:?}");
    String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Sends `count` UDP datagrams of `size` bytes from `client` (bound to a fixed port: one
/// flow) to the service socket `server` at `dst`, and checks each one arrives intact.
fn udp_send_all(
    client: &std::net::UdpSocket,
    server: &std::net::UdpSocket,
    dst: SocketAddr,
    count: usize,
    size: usize,
) {
    let src = client.local_addr().expect("local address");
    for i in 0..count {
        let data = payload(size, i as u8);
        client.send_to(&data, dst).expect("udp send");
        let mut buf = vec![0u8; size + 100];
        let (n, from) = server
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("datagram {i} of {count} did not arrive at {dst}: {e}"));
        assert_eq!(from, src, "datagram {i} came from elsewhere");
        assert_eq!(&buf[..n], &data[..], "datagram {i} arrived changed");
    }
}

/// Scenario 1 (and the TCP half of 2): IPv4 TCP through the filter.
#[test]
fn ipv4_tcp_allowed_connections_pass_and_count_denied_ones_drop() {
    if !support::netns::root_or_skip() {
        return;
    }
    let topo = Topology::up("t", POLICY);
    topo.one_segment_per_packet();
    let fmk = tcp_listen(&topo.service(), sa(FMK, 443));
    let fmk_ssh = tcp_listen(&topo.service(), sa(FMK, 22));
    let pacs = tcp_listen(&topo.service(), sa(PACS, 104));
    let pacs_https = tcp_listen(&topo.service(), sa(PACS, 443));

    let stats = topo.stats();
    assert_eq!(
        sorted(stats.interfaces.clone()),
        sorted(topo.hub_ifaces().to_vec())
    );
    for iface in topo.hub_ifaces() {
        assert!(xdp_attached(&topo, &iface), "no XDP program on {iface}");
    }
    assert!(
        stats
            .agreements
            .iter()
            .all(|r| r.agreement != LAB_AGREEMENT),
        "revoked agreement {LAB_AGREEMENT} is in force: {stats:?}"
    );

    // Allowed: ouh-clinic -> fmk tcp 443 (agreement 1001), 100 kB one way.
    let before = topo.snapshot();
    tcp_exchange(&topo, &fmk, CLINIC, sa(FMK, 443), &payload(100_000, 1))
        .expect("allowed connection 198.51.100.10 -> 203.0.113.10:443");
    assert_tcp_counted(&topo, FMK_AGREEMENT, sa(FMK, 443), &before);

    // Allowed: ouh-clinic -> pacs dicom (agreement 1003), counted there and only there.
    let before = topo.snapshot();
    tcp_exchange(&topo, &pacs, CLINIC, sa(PACS, 104), &payload(3_000, 2))
        .expect("allowed connection 198.51.100.10 -> 203.0.113.20:104");
    assert_tcp_counted(&topo, PACS_AGREEMENT, sa(PACS, 104), &before);

    // Denied: lab's agreement is revoked.
    assert_dropped(&topo, &fmk, LAB, sa(FMK, 443));
    // Denied: a port outside the agreement.
    assert_dropped(&topo, &fmk_ssh, CLINIC, sa(FMK, 22));
    // Denied: a port only another service of the client's agreements has.
    assert_dropped(&topo, &pacs_https, CLINIC, sa(PACS, 443));

    // And the allowed path still works after the drops.
    let before = topo.snapshot();
    tcp_exchange(&topo, &fmk, CLINIC, sa(FMK, 443), b"again")
        .expect("allowed connection after denied ones");
    assert_tcp_counted(&topo, FMK_AGREEMENT, sa(FMK, 443), &before);

    // The IPv4 flow table holds the allowed connections (each direction is a flow) and
    // remembers the three denied ones.
    let table = topo.stats().flow_table;
    assert!(
        table.capacity > 0 && table.flows >= 2 && table.denials >= 3,
        "{table:?}"
    );
}

/// Checks what an agreement's counters grew by: (forward packets, forward bytes, reply
/// packets, reply bytes, transactions); `what` names the traffic in the failure message.
fn assert_grown(g: &AgreementRow, expected: (u64, u64, u64, u64, u64), what: &str) {
    assert_eq!(
        (
            g.forward_packets,
            g.forward_bytes,
            g.reply_packets,
            g.reply_bytes,
            g.transactions
        ),
        expected,
        "{what}: (forward packets, bytes, reply packets, bytes, transactions)"
    );
}

/// Pings `dst` from the client `pings` times (56 bytes of payload, so `frame` bytes a
/// frame) and checks that every echo came back and agreement 1001 counted exactly those
/// requests and replies as one transaction.
fn assert_ping_counted(topo: &Topology, dst: IpAddr, pings: u32, frame: u64, what: &str) {
    let before = topo.stats();
    // With a deadline, ping sends more than asked when a reply is slow (neighbour
    // resolution on a loaded machine): count what it sent, all of which must come back.
    let (sent, received) = ping(&topo.client(), dst, pings, 56);
    assert!(
        sent >= pings && received == sent,
        "ping {dst}: sent {sent}, received {received}"
    );
    let sent = u64::from(sent);
    assert_grown(
        &topo.stats().grown(&before, FMK_AGREEMENT),
        (sent, sent * frame, sent, sent * frame, 1),
        what,
    );
}

/// Scenario 2: counters equal what was sent, for ICMP echo and UDP.
#[test]
fn icmp_and_udp_counters_equal_what_was_sent() {
    if !support::netns::root_or_skip() {
        return;
    }
    let topo = Topology::up("c", POLICY);

    // N echo requests -> N forward and N reply packets of 98 bytes, one transaction.
    assert_ping_counted(&topo, FMK, 5, PING4_FRAME, "ICMP echo");

    // N datagrams from one source port (one flow) to udp 5000, then one answer back.
    const DATAGRAMS: usize = 20;
    const SIZE: usize = 100; // >= 18: the frame is never padded to 60 bytes
    let udp_frame = ETH_HLEN + 20 + 8 + SIZE as u64;
    let server = udp_bind(&topo.service(), sa(FMK, 5000));
    server.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let client = udp_bind(&topo.client(), sa(CLINIC, 40_000));
    client.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let before = topo.stats();
    udp_send_all(&client, &server, sa(FMK, 5000), DATAGRAMS, SIZE);
    const ANSWER_SIZE: usize = 50;
    server
        .send_to(&payload(ANSWER_SIZE, 9), sa(CLINIC, 40_000))
        .unwrap();
    let mut buf = [0u8; 200];
    let (n, from) = client.recv_from(&mut buf).expect("the service's answer");
    assert_eq!((n, from), (ANSWER_SIZE, sa(FMK, 5000)));
    let after = topo.stats();
    assert_grown(
        &after.grown(&before, FMK_AGREEMENT),
        (
            DATAGRAMS as u64,
            DATAGRAMS as u64 * udp_frame,
            1,
            ETH_HLEN + 20 + 8 + ANSWER_SIZE as u64,
            1,
        ),
        "UDP",
    );
    // The first datagram was judged against the policy, the rest hit the flow table.
    assert_eq!(after.reason_grown(&before, "forward"), 1);
    assert_eq!(
        after.reason_grown(&before, "established-forward"),
        DATAGRAMS as u64 - 1
    );
    assert_eq!(
        after.agreement(PACS_AGREEMENT),
        before.agreement(PACS_AGREEMENT),
        "agreement 1003 must not move"
    );
}

/// Scenario 3: IPv6 through the filter.
#[test]
fn ipv6_ping_and_tcp_pass_and_count() {
    if !support::netns::root_or_skip() {
        return;
    }
    let topo = Topology::up("s", POLICY);
    topo.one_segment_per_packet();

    // ping6 first: this also resolves the neighbours before TCP is measured.
    assert_ping_counted(&topo, FMK6, 4, PING6_FRAME, "ICMPv6 echo");

    let fmk = tcp_listen(&topo.service(), sa(FMK6, 443));
    let fmk_ssh = tcp_listen(&topo.service(), sa(FMK6, 22));
    let before = topo.snapshot();
    tcp_exchange(&topo, &fmk, CLINIC6, sa(FMK6, 443), &payload(50_000, 3))
        .expect("allowed connection [2001:db8:100::10] -> [2001:db8:300::10]:443");
    assert_tcp_counted(&topo, FMK_AGREEMENT, sa(FMK6, 443), &before);

    assert_dropped(&topo, &fmk_ssh, CLINIC6, sa(FMK6, 22));
}

/// Scenario 4: re-running keeps the counters; detaching removes the filter.
#[test]
fn rerun_keeps_counters_and_detach_removes_the_filter() {
    if !support::netns::root_or_skip() {
        return;
    }
    let topo = Topology::up("r", POLICY);
    let fmk = tcp_listen(&topo.service(), sa(FMK, 443));
    let server = udp_bind(&topo.service(), sa(FMK, 5001));
    server.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let client = udp_bind(&topo.client(), sa(CLINIC, 40_001));
    const SIZE: usize = 64;
    let udp_frame = ETH_HLEN + 20 + 8 + SIZE as u64;

    let start = topo.stats();
    udp_send_all(&client, &server, sa(FMK, 5001), 10, SIZE);
    let a = topo.stats();
    let g = a.grown(&start, FMK_AGREEMENT);
    assert_eq!(
        (g.forward_packets, g.forward_bytes, g.transactions),
        (10, 10 * udp_frame, 1)
    );

    // Same policy, same pins: the program is swapped into the existing links, counters stay.
    topo.attach();
    let b = topo.stats();
    assert_eq!(
        b.agreements, a.agreements,
        "re-running `run` must keep the per-agreement counters"
    );
    for (name, n) in &a.reasons {
        assert!(
            b.reason(name) >= *n,
            "reason {name} went down from {n} to {}",
            b.reason(name)
        );
    }
    assert_eq!(
        sorted(b.interfaces.clone()),
        sorted(topo.hub_ifaces().to_vec())
    );

    // Still counting on top, and the known flow is not a new transaction.
    udp_send_all(&client, &server, sa(FMK, 5001), 5, SIZE);
    let c = topo.stats();
    let g = c.grown(&b, FMK_AGREEMENT);
    assert_eq!(
        (g.forward_packets, g.forward_bytes, g.transactions),
        (5, 5 * udp_frame, 0),
        "after re-running: (forward packets, bytes, transactions) of a flow already seen"
    );
    // Still enforcing.
    assert_dropped(&topo, &fmk, LAB, sa(FMK, 443));

    // Detach: no program on the interfaces any more, pins (and counters) kept.
    let out = topo.detach();
    assert!(out.status.success(), "detach: {out:?}");
    for iface in topo.hub_ifaces() {
        assert!(!xdp_attached(&topo, &iface), "XDP still on {iface}");
    }
    let d = topo.stats();
    assert!(
        d.interfaces.is_empty(),
        "still attached: {:?}",
        d.interfaces
    );
    assert_eq!(d.agreements, c.agreements, "detach must not touch counters");

    // Unfiltered now: the connection the revoked agreement blocked completes, and nothing
    // is counted because no program sees the frames.
    tcp_exchange(&topo, &fmk, LAB, sa(FMK, 443), &payload(10_000, 4))
        .expect("198.51.100.20 -> 203.0.113.10:443 without the filter");
    let e = topo.stats();
    assert_eq!(e.agreements, d.agreements);
    assert_eq!(
        e.reasons, d.reasons,
        "frames were counted without a program"
    );

    // Purge: pins gone (exit status is failure because nothing was attached any more).
    let out = topo.detach_purge();
    assert!(
        !topo.pin_dir.exists(),
        "detach --purge left {}: {out:?}",
        topo.pin_dir.display()
    );
}

//! Failover within an active/passive hub pair. [`HubPair`] builds a client and a service
//! joined by two hubs, A and B, each routing between them with its own `sdn-loader` pin
//! directory and the same policy attached to both of its interfaces. A TCP connection is
//! opened through hub A and carries data both ways; then the routes of both directions move
//! to hub B, the same connection carries more data both ways and is closed.
//!
//! What is checked (docs/semantics.md; docs/failover.md draws the operator's conclusions):
//! - the connection survives the move: every byte arrives intact, both ways, before and
//!   after it, and it closes cleanly;
//! - hub B passes the established connection although it never saw its SYN: a TCP segment
//!   without SYN of an allowed 5-tuple passes by rule 4 (forward) and rule 5 (reply), the
//!   flow table being only a cache of those verdicts. Exactly one packet in each direction is
//!   judged by the policy (reasons `forward` and `reply`: the first packet of each flow, as
//!   B's flow table does not know it), every later one is `established-forward` /
//!   `established-reply`, and neither hub drops anything;
//! - the counters: up to the move (taken when nothing is in flight: every byte sent is
//!   acknowledged), hub A counted exactly the TCP segments the client and the service put on
//!   the wire (their kernels' counts; bytes their IP bytes plus 14 per frame) and hub B
//!   nothing; after it, B exactly those and A nothing; so A and B together counted exactly
//!   what the connection carried. Transactions are counted where the SYN was seen (rule 10):
//!   A counts 1, B counts 0;
//! - for contrast, a UDP flow (another agreement) that moves the same way is a new
//!   transaction on each hub (rule 10: the first forward packet of a non-TCP flow that is not
//!   in that hub's flow table): A counts 1, B counts 1.
//!
//! Needs root and `ip` (iproute2). The namespaces (prefix "hp" + pid + tag) and pin
//! directories are removed on drop, also when the test fails. Run with
//! `SDN_REQUIRE_ROOT=1 cargo test --release -p sdn-tests --test hub_pair -- --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
#![allow(unused_crate_dependencies, reason = "one dependency list per package")]

use sdn_tests as support;

use std::{
    io::{self, Read, Write},
    net::{IpAddr, Shutdown, SocketAddr, TcpStream, UdpSocket},
    thread,
    time::{Duration, Instant},
};

use support::netns::{
    AgreementRow, ETH_HLEN, Hub, HubPair, NetCounters, Stats, accept_within, eventually,
    tcp_connect, tcp_listen, udp_bind, unacknowledged_bytes,
};

/// One client, one service with a TCP endpoint (agreement 2001) and a UDP endpoint under
/// another service (agreement 2002), both approved.
const POLICY: &str = include_str!("../fixtures/hub-pair-policy.toml");

const TCP_AGREEMENT: u32 = 2001;
const UDP_AGREEMENT: u32 = 2002;
const TCP_PORT: u16 = 443;
const UDP_PORT: u16 = 5000;
/// The client's UDP port: one flow for both UDP rounds.
const CLIENT_UDP_PORT: u16 = 40_000;

/// Bytes the client sends and the service answers, through hub A and then through hub B.
const A_FORWARD: usize = 200_000;
const A_REPLY: usize = 100_000;
const B_FORWARD: usize = 300_000;
const B_REPLY: usize = 150_000;

/// Datagrams per UDP round, their payload, and the service's one answer.
const DATAGRAMS: u64 = 10;
const DATAGRAM: usize = 100;
const ANSWER: usize = 50;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long counters may lag the traffic (a delayed ACK still to come).
const SETTLE: Duration = Duration::from_secs(5);

fn client_addr() -> IpAddr {
    IpAddr::V4(HubPair::CLIENT)
}

fn service_addr() -> IpAddr {
    IpAddr::V4(HubPair::SERVICE)
}

/// Byte `i` of a direction's stream (`seed` tells the directions apart): position-dependent,
/// so a lost, repeated or reordered segment shows.
fn stream_byte(i: usize, seed: u8) -> u8 {
    ((i.wrapping_mul(0x9e37_79b9) >> 11) as u8) ^ (i as u8) ^ ((i >> 16) as u8) ^ seed
}

/// Bytes `from..from + n` of a stream.
fn stream(from: usize, n: usize, seed: u8) -> Vec<u8> {
    (from..from + n).map(|i| stream_byte(i, seed)).collect()
}

const FORWARD_SEED: u8 = 0x5a;
const REPLY_SEED: u8 = 0xc3;

/// Checks that `got` is bytes `from..` of a stream; errors naming the first wrong byte.
fn verify(got: &[u8], from: usize, expected_len: usize, seed: u8, what: &str) -> io::Result<()> {
    if got.len() != expected_len {
        return Err(io::Error::other(format!(
            "{what}: {} bytes arrived, {expected_len} were sent",
            got.len()
        )));
    }
    match (0..got.len()).find(|&j| got[j] != stream_byte(from + j, seed)) {
        Some(j) => Err(io::Error::other(format!(
            "{what}: byte {} of the stream arrived changed",
            from + j
        ))),
        None => Ok(()),
    }
}

/// Everything the checks compare: both hubs' data planes and both endpoints' kernels.
struct Snapshot {
    a: Stats,
    b: Stats,
    client: NetCounters,
    service: NetCounters,
}

impl Snapshot {
    fn take(pair: &HubPair) -> Self {
        Self {
            a: pair.stats(Hub::A),
            b: pair.stats(Hub::B),
            client: NetCounters::read(&pair.client()),
            service: NetCounters::read(&pair.service()),
        }
    }

    fn hub(&self, hub: Hub) -> &Stats {
        match hub {
            Hub::A => &self.a,
            Hub::B => &self.b,
        }
    }
}

/// What agreement `id`'s counters on `hub` grew by from `before` to `now`.
fn grown(now: &Snapshot, before: &Snapshot, hub: Hub, id: u32) -> AgreementRow {
    now.hub(hub).grown(before.hub(hub), id)
}

/// (forward packets, forward bytes, reply packets, reply bytes, transactions).
fn tuple(g: &AgreementRow) -> (u64, u64, u64, u64, u64) {
    (
        g.forward_packets,
        g.forward_bytes,
        g.reply_packets,
        g.reply_bytes,
        g.transactions,
    )
}

/// The TCP traffic both endpoints put on the wire from `before` to `now`, as the filter counts
/// it: (forward packets, forward bytes, reply packets, reply bytes). Packets are TCP segments
/// (`OutSegs` + `RetransSegs`); bytes the endpoints' IP bytes plus 14 per frame, exact
/// because one segment per GSO packet makes every IP packet one frame and no other IPv4
/// packet is sent meanwhile (checked).
fn tcp_on_the_wire(now: &Snapshot, before: &Snapshot) -> Result<(u64, u64, u64, u64), String> {
    let mut out = [(0, 0); 2];
    for (slot, what, n, b) in [
        (0, "client", &now.client, &before.client),
        (1, "service", &now.service, &before.service),
    ] {
        let segs = n.tcp_segments_sent() - b.tcp_segments_sent();
        let (p1, o1) = n.ipv4_out();
        let (p0, o0) = b.ipv4_out();
        if p1 - p0 != segs {
            return Err(format!(
                "the {what} sent {} IPv4 packets for {segs} TCP segments",
                p1 - p0
            ));
        }
        out[slot] = (segs, o1 - o0 + ETH_HLEN * segs);
    }
    Ok((out[0].0, out[0].1, out[1].0, out[1].1))
}

/// Sends [`DATAGRAMS`] datagrams from the client's socket to the service's (one flow),
/// checking each arrives intact, and one answer back.
fn udp_round(client: &UdpSocket, service: &UdpSocket, round: u8) {
    let dst = SocketAddr::new(service_addr(), UDP_PORT);
    let src = SocketAddr::new(client_addr(), CLIENT_UDP_PORT);
    let mut buf = [0u8; 2 * DATAGRAM];
    for i in 0..DATAGRAMS as usize {
        let data = stream(i * DATAGRAM, DATAGRAM, round);
        client.send_to(&data, dst).expect("udp send");
        let (n, from) = service
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("round {round}: datagram {i} did not arrive: {e}"));
        assert_eq!(
            (from, &buf[..n]),
            (src, &data[..]),
            "round {round}: datagram {i}"
        );
    }
    let answer = stream(0, ANSWER, !round);
    service.send_to(&answer, src).expect("udp answer");
    let (n, from) = client
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("round {round}: the answer did not arrive: {e}"));
    assert_eq!(
        (from, &buf[..n]),
        (dst, &answer[..]),
        "round {round}: answer"
    );
}

/// A UDP round's growth of agreement 2002 on the hub that carried it: every datagram and the
/// answer, whole frames, and one transaction (the flow is new to that hub).
fn udp_round_counted() -> (u64, u64, u64, u64, u64) {
    let frame = |payload: usize| ETH_HLEN + 20 + 8 + payload as u64;
    (DATAGRAMS, DATAGRAMS * frame(DATAGRAM), 1, frame(ANSWER), 1)
}

/// Exchanges one part of the connection's data: the client sends `forward` bytes (stream
/// offset `fwd_from`), the service reads exactly those and answers `reply` bytes (offset
/// `rep_from`), the client reads exactly those. With `close`, each side half-closes after
/// writing and reads to the end instead.
fn exchange(
    client: &TcpStream,
    server: &TcpStream,
    (fwd_from, forward): (usize, usize),
    (rep_from, reply): (usize, usize),
    close: bool,
    what: &str,
) {
    thread::scope(|s| {
        let service = s.spawn(move || -> io::Result<()> {
            let mut server = server;
            let mut got = vec![0u8; forward];
            if close {
                got.clear();
                server.read_to_end(&mut got)?;
            } else {
                server.read_exact(&mut got)?;
            }
            verify(&got, fwd_from, forward, FORWARD_SEED, "client -> service")?;
            server.write_all(&stream(rep_from, reply, REPLY_SEED))?;
            if close {
                server.shutdown(Shutdown::Write)?;
            }
            Ok(())
        });
        let result = (|| -> io::Result<()> {
            let mut client = client;
            client.write_all(&stream(fwd_from, forward, FORWARD_SEED))?;
            let mut got = vec![0u8; reply];
            if close {
                client.shutdown(Shutdown::Write)?;
                got.clear();
                client.read_to_end(&mut got)?;
            } else {
                client.read_exact(&mut got)?;
            }
            verify(&got, rep_from, reply, REPLY_SEED, "service -> client")
        })();
        let served = service.join().expect("service thread panicked");
        result.unwrap_or_else(|e| panic!("{what}: client: {e}"));
        served.unwrap_or_else(|e| panic!("{what}: service: {e}"));
    });
}

/// Waits until the connection is quiet and `hub` has counted all of it since `before`:
/// nothing unacknowledged on either socket, and agreement 2001's growth on `hub` equal to
/// the segments both endpoints sent (the other hub: no growth). Returns that moment's
/// snapshot and the growth.
fn settled(
    pair: &HubPair,
    before: &Snapshot,
    hub: Hub,
    sockets: &[&TcpStream],
) -> (Snapshot, AgreementRow) {
    let other = match hub {
        Hub::A => Hub::B,
        Hub::B => Hub::A,
    };
    let mut last = None;
    eventually(SETTLE, || {
        let unacked: Vec<usize> = sockets.iter().map(|s| unacknowledged_bytes(s)).collect();
        let now = Snapshot::take(pair);
        let wire = tcp_on_the_wire(&now, before)?;
        let g = grown(&now, before, hub, TCP_AGREEMENT);
        let o = grown(&now, before, other, TCP_AGREEMENT);
        let counted = (
            g.forward_packets,
            g.forward_bytes,
            g.reply_packets,
            g.reply_bytes,
        );
        let result = if unacked.iter().any(|&n| n > 0) {
            Err(format!("still unacknowledged: {unacked:?} bytes"))
        } else if counted != wire {
            Err(format!(
                "hub {hub:?} counted (forward packets, bytes, reply packets, bytes) {counted:?}, the endpoints sent {wire:?}"
            ))
        } else if tuple(&o) != (0, 0, 0, 0, 0) {
            Err(format!("hub {other:?} counted {o:?}, expected nothing"))
        } else {
            Ok(())
        };
        last = Some((now, g));
        result
    });
    last.expect("checked at least once")
}

#[test]
fn connection_survives_moving_to_the_other_hub_and_each_hub_counts_what_it_carried() {
    if !support::netns::root_or_skip() {
        return;
    }
    let started = Instant::now();
    let pair = HubPair::up("p", POLICY);
    pair.one_segment_per_packet();
    let web = tcp_listen(&pair.service(), SocketAddr::new(service_addr(), TCP_PORT));
    let feed = udp_bind(&pair.service(), SocketAddr::new(service_addr(), UDP_PORT));
    let clinic = udp_bind(
        &pair.client(),
        SocketAddr::new(client_addr(), CLIENT_UDP_PORT),
    );
    for s in [&feed, &clinic] {
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    }
    let s0 = Snapshot::take(&pair);

    // UDP through A.
    udp_round(&clinic, &feed, 1);
    let s1 = Snapshot::take(&pair);
    assert_eq!(
        tuple(&grown(&s1, &s0, Hub::A, UDP_AGREEMENT)),
        udp_round_counted(),
        "UDP through A: hub A's agreement {UDP_AGREEMENT}"
    );
    assert_eq!(
        tuple(&grown(&s1, &s0, Hub::B, UDP_AGREEMENT)),
        (0, 0, 0, 0, 0),
        "UDP through A: hub B's agreement {UDP_AGREEMENT}"
    );

    // TCP through A: connect, data both ways.
    let client = tcp_connect(
        &pair.client(),
        client_addr(),
        SocketAddr::new(service_addr(), TCP_PORT),
        CONNECT_TIMEOUT,
    )
    .expect("connecting through hub A");
    let server = accept_within(&web, CONNECT_TIMEOUT).expect("accepting through hub A");
    for s in [&client, &server] {
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    }
    exchange(
        &client,
        &server,
        (0, A_FORWARD),
        (0, A_REPLY),
        false,
        "through A",
    );
    let (s2, via_a) = settled(&pair, &s1, Hub::A, &[&client, &server]);
    assert_eq!(
        via_a.transactions, 1,
        "hub A saw the SYN: one transaction ({via_a:?})"
    );

    // Failover: both directions now go through B.
    pair.route_via(Hub::B);

    // The same connection through B: more data both ways, then close.
    exchange(
        &client,
        &server,
        (A_FORWARD, B_FORWARD),
        (A_REPLY, B_REPLY),
        true,
        "through B",
    );
    drop(client);
    drop(server);
    let (s3, via_b) = settled(&pair, &s2, Hub::B, &[]);
    assert_eq!(
        via_b.transactions, 0,
        "hub B never saw the SYN: no transaction (rule 10) ({via_b:?})"
    );
    assert!(
        via_b.forward_packets > 0 && via_b.reply_packets > 0,
        "hub B carried nothing: {via_b:?}"
    );
    // B judged the first packet of each direction by the policy (rules 4 and 5) and every
    // later one from its flow table.
    let reasons = |name: &str| s3.b.reason_grown(&s2.b, name);
    assert_eq!(
        [
            reasons("forward"),
            reasons("reply"),
            reasons("established-forward"),
            reasons("established-reply"),
        ],
        [1, 1, via_b.forward_packets - 1, via_b.reply_packets - 1],
        "hub B's reasons (forward, reply, established-forward, established-reply)"
    );

    // Together the hubs counted exactly what the connection carried.
    let wire = tcp_on_the_wire(&s3, &s1).unwrap();
    let a_total = grown(&s3, &s1, Hub::A, TCP_AGREEMENT);
    let b_total = grown(&s3, &s1, Hub::B, TCP_AGREEMENT);
    assert_eq!(
        (
            a_total.forward_packets + b_total.forward_packets,
            a_total.forward_bytes + b_total.forward_bytes,
            a_total.reply_packets + b_total.reply_packets,
            a_total.reply_bytes + b_total.reply_bytes,
        ),
        wire,
        "A + B must count the whole connection: A {a_total:?}, B {b_total:?}"
    );
    assert_eq!(
        (a_total.transactions, b_total.transactions),
        (1, 0),
        "transactions (A, B)"
    );

    // UDP through B, the same flow: new to B, so a transaction there too.
    udp_round(&clinic, &feed, 2);
    let s4 = Snapshot::take(&pair);
    assert_eq!(
        tuple(&grown(&s4, &s3, Hub::B, UDP_AGREEMENT)),
        udp_round_counted(),
        "UDP through B: hub B's agreement {UDP_AGREEMENT}"
    );
    assert_eq!(
        tuple(&grown(&s4, &s3, Hub::A, UDP_AGREEMENT)),
        (0, 0, 0, 0, 0),
        "UDP through B: hub A's agreement {UDP_AGREEMENT}"
    );

    for hub in Hub::BOTH {
        assert_eq!(
            s4.hub(hub).dropped,
            s0.hub(hub).dropped,
            "hub {hub:?} dropped packets: {:?}",
            s4.hub(hub).drops
        );
    }
    eprintln!(
        "hub pair: TCP {} + {} bytes forward, {} + {} reply; on the wire {wire:?}; \
         hub A counted {a_total:?}, hub B {b_total:?}; UDP agreement A {:?}, B {:?}; took {:?}",
        A_FORWARD,
        B_FORWARD,
        A_REPLY,
        B_REPLY,
        grown(&s4, &s0, Hub::A, UDP_AGREEMENT),
        grown(&s4, &s0, Hub::B, UDP_AGREEMENT),
        started.elapsed()
    );
}

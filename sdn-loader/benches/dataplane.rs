//! In-kernel cost per packet of the real XDP program, measured with BPF_PROG_TEST_RUN and a
//! large `repeat` (the kernel reports the mean time per run), next to a bare XDP_PASS program
//! measured in the same run. Prints a table; run as root:
//!
//!     cargo bench -p sdn-loader --bench dataplane [-- SIZES...]   (default 10 6351 1000000)
//!
//! Cases: an established allowed IPv4 TCP flow (flow-table hit); a first packet (TCP SYN, the
//! program told to skip its flow-table lookup so every run classifies and inserts); a denied
//! packet (a client to a port its agreement does not allow: full classification, no insert);
//! an allowed IPv6 TCP packet with two extension headers (established). Each figure is the
//! median of several rounds. Shared machines are noisy: compare the ratios, not the ns.
//! A reference program that only parses and does one flow-table lookup shows the floor of any
//! design that keeps flows in a BPF hash table.

use std::{net::IpAddr, time::Instant};

use anyhow::{Context as _, Result, bail};
use chrono::NaiveDate;
use sdn_common::flags;
use sdn_loader::{
    compile::compile,
    dataplane::{Capacities, Dataplane, Program},
    synth::{Spec, build},
    synthetic::{self, Shape},
};

const REPEAT: u32 = 1_000_000;
const ROUNDS: usize = 7;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median over rounds of (filter ns, XDP_PASS ns measured right before it); pairing the two
/// in each round makes the ratio robust against the machine's drift.
fn time(dp: &mut Dataplane, frame: &[u8], want: u32) -> Result<(f64, f64)> {
    let mut ours = Vec::with_capacity(ROUNDS);
    let mut bare = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let (p, _) = dp.time_frame(frame, REPEAT, Program::Pass)?;
        let (d, action) = dp.time_frame(frame, REPEAT, Program::Filter)?;
        if action != want {
            bail!("expected action {want}, the program returned {action}");
        }
        ours.push(d.as_nanos() as f64);
        bare.push(p.as_nanos() as f64);
    }
    Ok((median(ours), median(bare)))
}

struct Row {
    size: usize,
    pass: f64,
    flow_floor: f64,
    established: f64,
    first: f64,
    denied: f64,
    v6_ext: f64,
    load_s: f64,
    apply_s: f64,
}

fn measure(size: usize) -> Result<Row> {
    let shape = Shape::scaled(size);
    let policy = synthetic::policy(shape);
    let today = NaiveDate::from_ymd_opt(2026, 1, 1).context("date")?;
    let t0 = Instant::now();
    let compiled = compile(&policy, today)?;
    let mut caps = Capacities::for_replay(&compiled);
    caps.flows = 1 << 16;
    let mut dp = Dataplane::load_private(caps)?;
    let load_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    dp.apply(&compiled)?;
    let apply_s = t1.elapsed().as_secs_f64();

    // A client and its first agreement's service (agreement 1: client 0, service 0).
    let (c, s) = synthetic::agreement_pair(0, &shape);
    let src = IpAddr::V4(synthetic::client_addr(c));
    let dst = IpAddr::V4(synthetic::service_addr(s));
    let port = synthetic::service_port(s);
    let spec = |src, dst, dport, flags_byte, exts| Spec {
        src,
        dst,
        protocol: 6,
        sport: 40000,
        dport,
        vlan: None,
        tcp_flags: flags_byte,
        ext_headers: exts,
    };
    let ack = build(&spec(src, dst, port, 0x10, 0))?;
    let syn = build(&spec(src, dst, port, 0x02, 0))?;
    let denied = build(&spec(src, dst, port.wrapping_add(1), 0x02, 0))?;
    let (c6, s6) = (0, 0); // client 0 and service 0 both have IPv6 addresses
    let src6 = IpAddr::V6(match synthetic::client_prefix6(c6) {
        ipnet::IpNet::V6(n) => n.network(),
        ipnet::IpNet::V4(_) => bail!("client prefix6 is not IPv6"),
    });
    let v6 = build(&spec(
        src6,
        IpAddr::V6(synthetic::service_addr6(s6)),
        443,
        0x10,
        2,
    ))?;

    // Prime the flows, then measure hits.
    dp.time_frame(&ack, 1, Program::Filter)?;
    dp.time_frame(&v6, 1, Program::Filter)?;
    let mut fl = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        fl.push(
            dp.time_frame(&ack, REPEAT, Program::FlowFloor)?
                .0
                .as_nanos() as f64,
        );
    }
    let flow_floor = median(fl);
    let mut floors = Vec::new();
    let (established, p) = time(&mut dp, &ack, 2)?;
    floors.push(p);
    let (v6_ext, p) = time(&mut dp, &v6, 2)?;
    floors.push(p);
    let (denied_ns, p) = time(&mut dp, &denied, 1)?;
    floors.push(p);
    dp.set_flags(flags::NO_FLOW_LOOKUP, 0)?;
    let (first, p) = time(&mut dp, &syn, 2)?;
    floors.push(p);
    dp.set_flags(0, flags::NO_FLOW_LOOKUP)?;
    let pass = median(floors);
    Ok(Row {
        size,
        pass,
        flow_floor,
        established,
        first,
        denied: denied_ns,
        v6_ext,
        load_s,
        apply_s,
    })
}

fn main() -> Result<()> {
    let mut sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if sizes.is_empty() {
        sizes = vec![10, 6351, 1_000_000];
    }
    println!(
        "sdn-filter data plane, BPF_PROG_TEST_RUN, repeat {REPEAT}, median of {ROUNDS} rounds"
    );
    println!(
        "kernel {}",
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
    );
    println!();
    println!(
        "| agreements | XDP_PASS ns | parse+1 flow lookup ns (x) | established ns (x) | first SYN ns (x) | denied ns (x) | IPv6+2 ext ns (x) | compile+load s | apply s |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for size in sizes {
        let r = measure(size)?;
        println!(
            "| {} | {:.1} | {:.1} ({:.2}x) | {:.1} ({:.2}x) | {:.1} ({:.2}x) | {:.1} ({:.2}x) | {:.1} ({:.2}x) | {:.2} | {:.2} |",
            r.size,
            r.pass,
            r.flow_floor,
            r.flow_floor / r.pass,
            r.established,
            r.established / r.pass,
            r.first,
            r.first / r.pass,
            r.denied,
            r.denied / r.pass,
            r.v6_ext,
            r.v6_ext / r.pass,
            r.load_s,
            r.apply_s
        );
        rows.push(r);
    }
    println!();
    println!("targets: established <= 1.6x, first packet <= 4x, denied <= 3x the XDP_PASS figure");
    for r in &rows {
        let ok = |x: f64, t: f64| if x <= t { "met" } else { "MISSED" };
        println!(
            "{:>8} agreements: established {} ({:.2}x), first {} ({:.2}x), denied {} ({:.2}x)",
            r.size,
            ok(r.established / r.pass, 1.6),
            r.established / r.pass,
            ok(r.first / r.pass, 4.0),
            r.first / r.pass,
            ok(r.denied / r.pass, 3.0),
            r.denied / r.pass
        );
    }
    Ok(())
}

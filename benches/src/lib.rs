//! sdn-filter's benchmarks, and what they share: a synthetic policy of some size loaded into a
//! private instance of the real program, and the frames of each measured case.
//!
//! The benchmarks (all need root: they load the program):
//! - `cost.rs` (criterion): policy compilation, the data plane's policy switch, counters, and
//!   the per-packet cost of each case;
//! - `dataplane.rs`: the quick in-kernel table, ns per packet against the bare XDP_PASS program;
//! - `sync.rs`: full sync and commit-to-enforced through the agreement database;
//! - `traffic/`: live frames (the in-kernel generator and pktgen) and the peer filters.
//!
//! `RESULTS.md`, `NOTES.md` and the plot beside them are written by `cargo xtask bench-report`.
#![allow(
    unused_crate_dependencies,
    reason = "the package's dependencies are shared with the bench binaries"
)]

use std::{net::IpAddr, time::Instant};

use anyhow::{Context as _, Result, bail};
use chrono::NaiveDate;
use sdn_loader::{
    compile::{Compiled, compile},
    dataplane::{Capacities, Dataplane, Program},
    tools::frames::{Spec, build},
    tools::policies::{self, Shape},
};

/// Policy sizes (agreements) from `SDN_BENCH_SIZES` (comma or space separated), or `default`.
pub fn sizes_from_env(default: &[usize]) -> Vec<usize> {
    let v: Vec<usize> = std::env::var("SDN_BENCH_SIZES")
        .unwrap_or_default()
        .split([',', ' '])
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    if v.is_empty() { default.to_vec() } else { v }
}

/// The date policies are judged on (all synthetic agreements are unexpired).
pub fn today() -> Result<NaiveDate> {
    NaiveDate::from_ymd_opt(2026, 1, 1).context("date")
}

/// One measured case: a frame and the action the filter must return for it.
pub struct Case {
    /// Short name (criterion id, table column).
    pub name: &'static str,
    /// The frame.
    pub frame: Vec<u8>,
    /// Expected XDP action (1 drop, 2 pass).
    pub action: u32,
    /// The program must skip its flow-table lookup (first packet of a flow every time).
    pub no_flow_lookup: bool,
}

/// A loaded instance with a synthetic policy of `size` agreements.
pub struct Loaded {
    /// The instance.
    pub dp: Dataplane,
    /// The compiled policy.
    pub compiled: Compiled,
    /// Seconds to build + compile + load.
    pub load_s: f64,
    /// Seconds to apply (write a generation, switch, delete the old one).
    pub apply_s: f64,
    /// Shape of the policy.
    pub shape: Shape,
}

/// Builds, compiles, loads and applies a synthetic policy of `size` agreements.
pub fn load(size: usize) -> Result<Loaded> {
    let shape = Shape::scaled(size);
    let policy = policies::policy(shape)?;
    let t0 = Instant::now();
    let compiled = compile(&policy, today()?)?;
    let mut caps = Capacities::for_replay(&compiled);
    caps.flows = 1 << 16;
    let mut dp = Dataplane::load_private(caps)?;
    let load_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    dp.apply(&compiled)?;
    let apply_s = t1.elapsed().as_secs_f64();
    Ok(Loaded {
        dp,
        compiled,
        load_s,
        apply_s,
        shape,
    })
}

fn spec(src: IpAddr, dst: IpAddr, dport: u16, tcp_flags: u8, ext_headers: usize) -> Spec {
    Spec {
        src,
        dst,
        protocol: 6,
        sport: 40000,
        dport,
        vlan: None,
        tcp_flags,
        ext_headers,
    }
}

/// The benchmark cases, for agreement 1 (client 0 -> service 0) of `shape`: established
/// IPv4 TCP flow, first packet (SYN, flow lookup skipped), denied (a port the agreement does
/// not allow: classified both ways, not inserted), IPv6 with two extension headers
/// (established), VLAN-tagged (established).
pub fn cases(shape: &Shape) -> Result<Vec<Case>> {
    let (c, s) = policies::agreement_pair(0, shape);
    let src = IpAddr::V4(policies::client_addr(c));
    let dst = IpAddr::V4(policies::service_addr(s));
    let port = policies::service_port(s);
    let src6 = match policies::client_prefix6(0) {
        ipnet::IpNet::V6(n) => IpAddr::V6(n.network()),
        ipnet::IpNet::V4(_) => bail!("client prefix6 is not IPv6"),
    };
    let dst6 = IpAddr::V6(policies::service_addr6(0));
    let mut vlan = spec(src, dst, port, 0x10, 0);
    vlan.vlan = Some(100);
    Ok(vec![
        Case {
            name: "established",
            frame: build(&spec(src, dst, port, 0x10, 0))?,
            action: 2,
            no_flow_lookup: false,
        },
        Case {
            name: "first_packet",
            frame: build(&spec(src, dst, port, 0x02, 0))?,
            action: 2,
            no_flow_lookup: true,
        },
        Case {
            name: "denied",
            frame: build(&spec(src, dst, port.wrapping_add(1), 0x02, 0))?,
            action: 1,
            no_flow_lookup: false,
        },
        // The same frame judged every time: the cost of a denied flow's first packet.
        Case {
            name: "denied_first",
            frame: build(&spec(src, dst, port.wrapping_add(1), 0x02, 0))?,
            action: 1,
            no_flow_lookup: true,
        },
        Case {
            name: "ipv6_ext_headers",
            frame: build(&spec(src6, dst6, 443, 0x10, 2))?,
            action: 2,
            no_flow_lookup: false,
        },
        Case {
            name: "vlan_tagged",
            frame: build(&vlan)?,
            action: 2,
            no_flow_lookup: false,
        },
    ])
}

/// Runs each established case once so that its flow is in the flow table.
pub fn prime(dp: &mut Dataplane, cases: &[Case]) -> Result<()> {
    for case in cases.iter().filter(|c| !c.no_flow_lookup && c.action == 2) {
        let (_, action) = dp.time_frame(&case.frame, 1, Program::Filter)?;
        if action != case.action {
            bail!(
                "{}: expected action {}, got {action}",
                case.name,
                case.action
            );
        }
    }
    Ok(())
}

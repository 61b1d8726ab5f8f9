//! Traffic benchmark: an in-kernel packet generator (BPF_PROG_RUN
//! with live frames, `sdn_gen`) sends a flow mix from the client namespace into the hub, and
//! the hub's ingress runs one of the compared filters. Run as root:
//!
//!     cargo bench -p sdn-benches --bench traffic -- pktgen [--filter sdn-filter] [mix options]
//!     cargo bench -p sdn-benches --bench traffic -- peers [--agreements 6351 ...] [--json FILE]
//!
//! Everything happens in the namespaces bn-client, bn-hub and bn-service (removed afterwards)
//! with documentation and RFC 2544 benchmark addresses. What is counted:
//! - offered: frames the generator produced and handed to its veth, per second of the
//!   generator's wall time;
//! - hub received: the hub ingress's rx counter (frames that reached the hub);
//! - forwarded: the service side's rx counter (frames the hub let through and routed).
//!   Generator, hub and service share the machine's CPUs, so every rate is bounded by the
//!   whole path's per-packet cost; compare ratios within one run.
#![allow(unused_crate_dependencies, reason = "one dependency list per package")]

mod mix;
mod ns;
mod peers;

use std::time::Duration;

use anyhow::{Context as _, Result};
use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use sdn_loader::{
    dataplane::{Capacities, Dataplane, Program},
    tools::policies::{self, Shape},
};
use serde::Serialize;

use crate::{
    mix::Mix,
    ns::{CLIENT, Entered, GEN_IF, HUB, HUB_IN, SERVICE, SERVICE_IF, Topology},
    peers::Peer,
};

/// The date policies are judged on.
pub fn today() -> Result<NaiveDate> {
    NaiveDate::from_ymd_opt(2026, 1, 1).context("date")
}

#[derive(Parser)]
#[command(
    name = "traffic",
    about = "sdn-filter traffic benchmark (live-frames generator)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Send one flow mix through one filter on the hub and report the rates.
    Pktgen {
        /// Peer on the hub's ingress.
        #[arg(long, value_enum, default_value = "sdn-filter")]
        filter: Peer,
        /// Agreements in the synthetic policy.
        #[arg(long, default_value_t = 6351)]
        agreements: usize,
        #[command(flatten)]
        mix: MixArgs,
    },
    /// Every filter, same topology, same traffic; one table, ratios to sdn-filter.
    Peers {
        /// Policy sizes.
        #[arg(long, num_args = 1.., default_values_t = [6351])]
        agreements: Vec<usize>,
        /// Filters (default: all).
        #[arg(long, value_enum, num_args = 1..)]
        filters: Vec<Peer>,
        /// Measurements per filter (median).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Write the results as JSON here.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
        #[command(flatten)]
        mix: MixArgs,
    },
}

#[derive(Args, Clone, Copy, Debug)]
struct MixArgs {
    /// Flows per template (random source ports).
    #[arg(long, default_value_t = 1000)]
    flows: u32,
    /// Share of frames without agreement (a port the client's agreement does not allow).
    #[arg(long, default_value_t = 0.1)]
    deny_share: f64,
    /// Share of IPv6 frames.
    #[arg(long, default_value_t = 0.2)]
    v6_share: f64,
    /// Frame size in bytes (with FCS, as on the wire).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Frames per measurement.
    #[arg(long, default_value_t = 2_000_000)]
    packets: u64,
}

impl MixArgs {
    fn mix(self) -> Mix {
        Mix {
            flows: self.flows,
            deny_share: self.deny_share.clamp(0.0, 1.0),
            v6_share: self.v6_share.clamp(0.0, 1.0),
            size: self.size.max(64),
            packets: self.packets,
        }
    }
}

/// One measurement.
#[derive(Clone, Copy, Debug, Default, Serialize)]
struct Rates {
    /// Frames sent.
    sent: u64,
    /// Generator wall time, s.
    seconds: f64,
    /// Offered frames per second.
    offered_pps: f64,
    /// Frames the hub's ingress received, per second of generator time.
    hub_rx_pps: f64,
    /// Frames forwarded to the service side, per second.
    forwarded_pps: f64,
    /// Frames lost at the generator's transmit (veth ring full).
    gen_tx_dropped: u64,
    /// Frames the hub's ingress dropped on receive.
    hub_rx_dropped: u64,
    /// Share of sent frames the hub forwarded.
    forwarded_share: f64,
}

/// Sends the mix once (after a short warm-up) and reads the counters.
fn measure(shape: &Shape, mix: &Mix) -> Result<Rates> {
    let (_, hub_mac) = ns::index_and_mac(HUB, HUB_IN)?;
    let (gen_index, gen_mac) = ns::index_and_mac(CLIENT, GEN_IF)?;
    let templates = mix::templates(shape, mix, hub_mac, gen_mac)?;
    if std::env::var_os("SDN_BENCH_DEBUG").is_some() {
        for t in &templates {
            eprintln!("template {:02x?}", &t.frame);
        }
    }
    let _inside = Entered::new(CLIENT)?;
    let mut generator = Dataplane::load_private(Capacities {
        slots: 64,
        flows: 1024,
        fragments: 64,
        prefixes: 64,
        rules: 64,
    })?;
    let warm = Mix {
        packets: (mix.packets / 10).max(u64::from(mix::CHUNK)),
        ..*mix
    };
    mix::send(&mut generator, &templates, &warm, gen_index)?;
    std::thread::sleep(Duration::from_millis(100));
    let g0 = ns::counters(CLIENT, GEN_IF)?;
    let h0 = ns::counters(HUB, HUB_IN)?;
    let s0 = ns::counters(SERVICE, SERVICE_IF)?;
    let (sent, wall) = mix::send(&mut generator, &templates, mix, gen_index)?;
    std::thread::sleep(Duration::from_millis(100));
    let g1 = ns::counters(CLIENT, GEN_IF)?;
    let h1 = ns::counters(HUB, HUB_IN)?;
    let s1 = ns::counters(SERVICE, SERVICE_IF)?;
    let secs = wall.as_secs_f64();
    let forwarded = s1.rx - s0.rx;
    Ok(Rates {
        sent,
        seconds: secs,
        offered_pps: sent as f64 / secs,
        hub_rx_pps: (h1.rx - h0.rx) as f64 / secs,
        forwarded_pps: forwarded as f64 / secs,
        gen_tx_dropped: g1.tx_dropped - g0.tx_dropped,
        hub_rx_dropped: h1.rx_dropped - h0.rx_dropped,
        forwarded_share: forwarded as f64 / sent as f64,
    })
}

fn median_by(mut v: Vec<Rates>) -> Rates {
    v.sort_by(|a, b| a.offered_pps.total_cmp(&b.offered_pps));
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Results of one filter at one size.
#[derive(Clone, Debug, Serialize)]
struct PeerResult {
    filter: String,
    agreements: usize,
    entries: usize,
    setup_s: f64,
    rates: Option<Rates>,
    /// Why there are no rates.
    skipped: Option<String>,
    /// In-kernel test-run figures (ns/packet) measured with this filter installed.
    kernel: Vec<KernelFigure>,
}

/// An in-kernel cost per packet from BPF_PROG_TEST_RUN.
#[derive(Clone, Debug, Serialize)]
struct KernelFigure {
    program: String,
    frame: String,
    ns: f64,
    action: u32,
}

fn run_filter(filter: Peer, size: usize, mix: &Mix, rounds: usize) -> Result<PeerResult> {
    let shape = Shape::scaled(size);
    let policy = policies::policy(shape)?;
    let _topology = Topology::up()?;
    let installed = match peers::install(filter, &policy) {
        Ok(i) => i,
        Err(e) => {
            return Ok(PeerResult {
                filter: filter.label().into(),
                agreements: size,
                entries: 0,
                setup_s: 0.0,
                rates: None,
                skipped: Some(format!("{e:#}")),
                kernel: Vec::new(),
            });
        }
    };
    let mut all = Vec::new();
    for _ in 0..rounds.max(1) {
        all.push(measure(&shape, mix)?);
    }
    let kernel = if filter == Peer::XdpFilter {
        kernel_comparison(&shape, mix, &policy)?
    } else {
        Vec::new()
    };
    let result = PeerResult {
        filter: filter.label().into(),
        agreements: size,
        entries: installed.entries,
        setup_s: installed.setup_s,
        rates: Some(median_by(all)),
        skipped: None,
        kernel,
    };
    drop(installed);
    Ok(result)
}

/// With xdp-filter attached: its program, sdn-filter and XDP_PASS through BPF_PROG_TEST_RUN
/// on the same frames (an allowed and a denied IPv4 frame of the mix), interleaved, median
/// of 5 rounds of 1,000,000 repeats.
fn kernel_comparison(
    shape: &Shape,
    mix: &Mix,
    policy: &sdn_loader::policy::Policy,
) -> Result<Vec<KernelFigure>> {
    let id = peers::hub_prog_id()?;
    let with_denied = Mix {
        deny_share: 0.5,
        v6_share: 0.0,
        ..*mix
    };
    let templates = mix::templates(shape, &with_denied, [2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])?;
    let compiled = sdn_loader::compile::compile(policy, today()?)?;
    let mut dp = Dataplane::load_private(Capacities::for_replay(&compiled))?;
    dp.apply(&compiled)?;
    let mut out = Vec::new();
    for (name, allowed) in [("allowed (established)", true), ("denied", false)] {
        let Some(t) = templates.iter().find(|t| t.allowed == allowed && !t.v6) else {
            continue;
        };
        dp.time_frame(&t.frame, 1, Program::Filter)?;
        let (mut pass, mut ours, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
        let (mut a_ours, mut a_theirs) = (0, 0);
        for _ in 0..5 {
            pass.push(
                dp.time_frame(&t.frame, 1_000_000, Program::Pass)?
                    .0
                    .as_nanos() as f64,
            );
            let (d, a) = dp.time_frame(&t.frame, 1_000_000, Program::Filter)?;
            ours.push(d.as_nanos() as f64);
            a_ours = a;
            let (ns, a) = peers::bpftool_time(id, &t.frame, 1_000_000)?;
            theirs.push(ns);
            a_theirs = a;
        }
        for (program, v, action) in [
            ("XDP_PASS", pass, 2),
            ("sdn-filter", ours, a_ours),
            ("xdp-filter", theirs, a_theirs),
        ] {
            out.push(KernelFigure {
                program: program.into(),
                frame: name.into(),
                ns: median(v),
                action,
            });
        }
    }
    Ok(out)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn print_rates(label: &str, r: &Rates) {
    println!(
        "{label:<22} offered {:>6.3} Mpps | hub received {:>6.3} Mpps | forwarded {:>6.3} Mpps ({:.1}% of sent) | generator tx drops {} | {} frames in {:.2} s",
        r.offered_pps / 1e6,
        r.hub_rx_pps / 1e6,
        r.forwarded_pps / 1e6,
        r.forwarded_share * 100.0,
        r.gen_tx_dropped,
        r.sent,
        r.seconds
    );
}

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; it is not ours.
    let args = std::env::args().filter(|a| a != "--bench");
    let cli = Cli::parse_from(args);
    match cli.cmd {
        Cmd::Pktgen {
            filter,
            agreements,
            mix,
        } => {
            let mix = mix.mix();
            println!(
                "live-frames generator: {mix:?}, hub filter {}, {agreements} agreements",
                filter.label()
            );
            let r = run_filter(filter, agreements, &mix, 1)?;
            match (&r.rates, &r.skipped) {
                (Some(rates), _) => print_rates(filter.label(), rates),
                (None, Some(why)) => println!("{}: not measured: {why}", filter.label()),
                (None, None) => {}
            }
            Ok(())
        }
        Cmd::Peers {
            agreements,
            filters,
            rounds,
            json,
            mix,
        } => {
            let mix = mix.mix();
            let filters = if filters.is_empty() {
                vec![
                    Peer::None,
                    Peer::SdnFilter,
                    Peer::XdpFilter,
                    Peer::Nftables,
                    Peer::Iptables,
                    Peer::None,
                ]
            } else {
                filters
            };
            println!("peers: {mix:?}, {rounds} rounds per filter (median)");
            let mut results = Vec::new();
            for &size in &agreements {
                for &f in &filters {
                    let r = run_filter(f, size, &mix, rounds)?;
                    match (&r.rates, &r.skipped) {
                        (Some(rates), _) => print_rates(&format!("{} @{size}", f.label()), rates),
                        (None, Some(why)) => println!("{} @{size}: not measured: {why}", f.label()),
                        (None, None) => {}
                    }
                    for k in &r.kernel {
                        println!(
                            "  in-kernel {:<11} {:<22} {:>7.1} ns (action {})",
                            k.program, k.frame, k.ns, k.action
                        );
                    }
                    results.push(r);
                }
            }
            if let Some(path) = json {
                let doc = serde_json::json!({ "mix": format!("{mix:?}"), "rounds": rounds, "results": results });
                std::fs::write(&path, serde_json::to_string_pretty(&doc)?)?;
            }
            Ok(())
        }
    }
}

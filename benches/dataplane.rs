//! Quick figures: in-kernel cost per packet of the real XDP program, measured with
//! BPF_PROG_TEST_RUN and a large `repeat` (the kernel reports the mean time per run), next to
//! a bare XDP_PASS program measured in the same run. Prints a table; run as root:
//!
//!     cargo bench -p sdn-benches --bench dataplane [-- SIZES... [--json=FILE]]
//!
//! (default sizes 10 6351 100000 1000000). The cases are those of `common::cases`. Each
//! figure is the median of several rounds, and each round times XDP_PASS right before the
//! filter, so the ratios are robust against the machine's drift. Shared machines are noisy:
//! compare the ratios, not the ns. The criterion version of these measurements is
//! `benches/cost.rs`; this one exists for `cargo xtask bench-report`.
#![allow(unused_crate_dependencies, reason = "one dependency list per package")]

use sdn_benches as common;

use anyhow::{Result, bail};
use sdn_common::{action, flags};
use sdn_loader::dataplane::{Dataplane, Program};
use serde::Serialize;

const REPEAT: u32 = 1_000_000;
const ROUNDS: usize = 15;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Median over rounds of (program ns, XDP_PASS ns measured right before it).
fn time(dp: &mut Dataplane, frame: &[u8], which: Program, want: Option<u32>) -> Result<(f64, f64)> {
    let mut ours = Vec::with_capacity(ROUNDS);
    let mut bare = Vec::with_capacity(ROUNDS);
    // One unrecorded round first: caches, TLB and the CPU's clock settle on this case.
    dp.time_frame(frame, REPEAT, Program::Pass)?;
    dp.time_frame(frame, REPEAT, which)?;
    for _ in 0..ROUNDS {
        let (p, _) = dp.time_frame(frame, REPEAT, Program::Pass)?;
        let (d, action) = dp.time_frame(frame, REPEAT, which)?;
        if let Some(want) = want {
            if action != want {
                bail!("expected action {want}, the program returned {action}");
            }
        }
        ours.push(d.as_nanos() as f64);
        bare.push(p.as_nanos() as f64);
    }
    Ok((median(ours), median(bare)))
}

/// One policy size.
#[derive(Serialize)]
struct Row {
    agreements: usize,
    /// XDP_PASS ns (median of the pass figures taken next to each case).
    xdp_pass: f64,
    /// (case name, ns) for flow_floor and every case.
    cases: Vec<(String, f64)>,
    load_s: f64,
    apply_s: f64,
}

fn measure(size: usize) -> Result<Row> {
    let mut loaded = common::load(size)?;
    let cases = common::cases(&loaded.shape)?;
    common::prime(&mut loaded.dp, &cases)?;
    let dp = &mut loaded.dp;
    let mut floors = Vec::new();
    let mut out = Vec::new();
    // XDP_PASS: the floor found the established flow the filter put in the table.
    let (floor, p) = time(dp, &cases[0].frame, Program::FlowFloor, Some(action::PASS))?;
    floors.push(p);
    out.push(("flow_floor".to_owned(), floor));
    for case in &cases {
        if case.no_flow_lookup {
            dp.set_flags(flags::NO_FLOW_LOOKUP, 0)?;
        }
        let (ns, p) = time(dp, &case.frame, Program::Filter, Some(case.action))?;
        dp.set_flags(0, flags::NO_FLOW_LOOKUP)?;
        floors.push(p);
        out.push((case.name.to_owned(), ns));
    }
    Ok(Row {
        agreements: size,
        xdp_pass: median(floors),
        cases: out,
        load_s: loaded.load_s,
        apply_s: loaded.apply_s,
    })
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let json = args.iter().find_map(|a| a.strip_prefix("--json="));
    if sizes.is_empty() {
        sizes = vec![10, 6351, 100_000, 1_000_000];
    }
    println!(
        "sdn-filter data plane, BPF_PROG_TEST_RUN, repeat {REPEAT}, median of {ROUNDS} rounds"
    );
    let mut rows = Vec::new();
    for size in sizes {
        let r = measure(size)?;
        let cells: Vec<String> = r
            .cases
            .iter()
            .map(|(n, ns)| format!("{n} {ns:.1} ns ({:.2}x)", ns / r.xdp_pass))
            .collect();
        println!(
            "{:>9} agreements: XDP_PASS {:.1} ns | {} | compile+load {:.2} s, apply {:.2} s",
            r.agreements,
            r.xdp_pass,
            cells.join(" | "),
            r.load_s,
            r.apply_s
        );
        rows.push(r);
    }
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_string_pretty(&rows)?)?;
    }
    Ok(())
}

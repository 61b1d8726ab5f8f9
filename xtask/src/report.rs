//! `cargo xtask pktgen` and `cargo xtask bench-report`: run the benchmarks that print figures
//! (quick in-kernel figures and the traffic benchmark with its peers), then write
//! `benches/RESULTS.md` and `benches/ns-per-packet.svg` from what they measured.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result};
use serde_json::Value;

use crate::svg::{Series, plot};

/// `cargo xtask pktgen ARGS`: the live-frames generator against one filter
/// (`ARGS` = the traffic benchmark's `pktgen` options), or `peers ...`.
pub(crate) fn pktgen(args: &[String]) -> Result<()> {
    crate::setup()?;
    let mut cmd = crate::cargo();
    cmd.args(["bench", "-p", "sdn-benches", "--bench", "traffic", "--"]);
    if args.first().is_none_or(|a| a != "peers") {
        cmd.arg("pktgen");
    }
    crate::run(cmd.args(args))
}

/// Options of `bench-report`.
pub(crate) struct ReportOptions {
    /// Policy sizes for the in-kernel figures.
    pub(crate) kernel_sizes: Vec<String>,
    /// Policy sizes for the traffic comparison.
    pub(crate) peer_sizes: Vec<String>,
    /// Frames per traffic measurement.
    pub(crate) packets: u64,
    /// Do not run anything: rewrite the report from the last run's figures.
    pub(crate) no_run: bool,
}

fn out_dir() -> PathBuf {
    crate::root().join("target/bench-report")
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}", path.display()))
}

fn shell(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Runs the benchmarks and writes the report.
pub(crate) fn bench_report(opts: &ReportOptions) -> Result<()> {
    let dir = out_dir();
    std::fs::create_dir_all(&dir)?;
    let kernel_json = dir.join("kernel.json");
    let peers_json = dir.join("peers.json");
    let denied_json = dir.join("peers-denied.json");
    let denied_size = opts
        .peer_sizes
        .first()
        .cloned()
        .unwrap_or_else(|| "6351".to_owned());
    let packets = opts.packets.to_string();
    let kernel_cmd = format!(
        "cargo bench -p sdn-benches --bench dataplane -- {} --json=target/bench-report/kernel.json",
        opts.kernel_sizes.join(" ")
    );
    let peers_cmd = format!(
        "cargo bench -p sdn-benches --bench traffic -- peers --agreements {} --packets {packets} --json target/bench-report/peers.json",
        opts.peer_sizes.join(" ")
    );
    let denied_cmd = format!(
        "cargo bench -p sdn-benches --bench traffic -- peers --agreements {denied_size} --packets {packets} --deny-share 1 --json target/bench-report/peers-denied.json"
    );
    if !opts.no_run {
        crate::setup()?;
        crate::run(
            crate::cargo()
                .args(["bench", "-p", "sdn-benches", "--bench", "dataplane", "--"])
                .args(&opts.kernel_sizes)
                .arg(format!("--json={}", kernel_json.display())),
        )?;
        crate::run(
            crate::cargo()
                .args(["bench", "-p", "sdn-benches", "--bench", "traffic", "--"])
                .args(["peers", "--agreements"])
                .args(&opts.peer_sizes)
                .args(["--packets", &packets, "--json"])
                .arg(&peers_json),
        )?;
        crate::run(
            crate::cargo()
                .args(["bench", "-p", "sdn-benches", "--bench", "traffic", "--"])
                .args(["peers", "--agreements", &denied_size, "--packets", &packets])
                .args(["--deny-share", "1", "--json"])
                .arg(&denied_json),
        )?;
    }
    write_report(
        &read_json(&kernel_json)?,
        &read_json(&peers_json)?,
        read_json(&denied_json).ok().as_ref(),
        &[kernel_cmd, peers_cmd, denied_cmd],
    )
}

fn f(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

fn kernel_table(kernel: &Value, out: &mut String) -> Vec<Series> {
    let rows = kernel.as_array().cloned().unwrap_or_default();
    let names: Vec<String> = rows
        .first()
        .and_then(|r| r.get("cases"))
        .and_then(Value::as_array)
        .map(|c| {
            c.iter()
                .filter_map(|p| p.get(0).and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let _ = write!(out, "| agreements | XDP_PASS ns |");
    for n in &names {
        let _ = write!(out, " {} ns (x PASS) |", n.replace('_', " "));
    }
    let _ = writeln!(out, " compile+load s | apply s |");
    let _ = writeln!(out, "|---:|---:|{}---:|---:|", "---:|".repeat(names.len()));
    let mut series: Vec<Series> = std::iter::once("XDP_PASS".to_owned())
        .chain(names.iter().cloned())
        .map(|name| Series {
            name: name.replace('_', " "),
            points: Vec::new(),
        })
        .collect();
    for r in &rows {
        let size = f(r, "agreements");
        let pass = f(r, "xdp_pass");
        let _ = write!(out, "| {} | {pass:.1} |", group(size as u64));
        series[0].points.push((size, pass));
        let cases = r
            .get("cases")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (i, c) in cases.iter().enumerate() {
            let ns = c.get(1).and_then(Value::as_f64).unwrap_or(f64::NAN);
            let _ = write!(out, " {ns:.1} ({:.2}x) |", ns / pass);
            if let Some(s) = series.get_mut(i + 1) {
                s.points.push((size, ns));
            }
        }
        let _ = writeln!(out, " {:.2} | {:.2} |", f(r, "load_s"), f(r, "apply_s"));
    }
    series
}

/// Thousands separators.
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// The traffic table and the figures the targets need: (size, filter) -> forwarded pps etc.
fn peers_table(peers: &Value, out: &mut String) -> Vec<(String, u64, f64, f64)> {
    let results = peers
        .get("results")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "| filter | agreements | entries | setup s | offered Mpps | hub received Mpps | forwarded Mpps | forwarded share | wall ns/packet | ns/packet above no filter | x sdn-filter (offered) |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let mut figures = Vec::new();
    for r in &results {
        let name = r
            .get("filter")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned();
        let size = r.get("agreements").and_then(Value::as_u64).unwrap_or(0);
        if let Some(rates) = r.get("rates").filter(|v| !v.is_null()) {
            figures.push((
                name,
                size,
                f(rates, "offered_pps"),
                f(rates, "forwarded_share"),
            ));
        }
    }
    for r in &results {
        let name = r.get("filter").and_then(Value::as_str).unwrap_or("?");
        let size = r.get("agreements").and_then(Value::as_u64).unwrap_or(0);
        if let Some(rates) = r.get("rates").filter(|v| !v.is_null()) {
            let offered = f(rates, "offered_pps");
            let sdn = figures
                .iter()
                .find(|x| x.0 == "sdn-filter" && x.1 == size)
                .map_or(f64::NAN, |x| x.2);
            // Baseline: the mean wall time per packet of the no-filter measurements.
            let base: Vec<f64> = figures
                .iter()
                .filter(|x| x.0.starts_with("no filter") && x.1 == size)
                .map(|x| 1e9 / x.2)
                .collect();
            let base = base.iter().sum::<f64>() / base.len().max(1) as f64;
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {:.2} | {:.3} | {:.3} | {:.3} | {:.1}% | {:.0} | {:+.0} | {:.2}x |",
                group(size),
                group(r.get("entries").and_then(Value::as_u64).unwrap_or(0)),
                f(r, "setup_s"),
                offered / 1e6,
                f(rates, "hub_rx_pps") / 1e6,
                f(rates, "forwarded_pps") / 1e6,
                f(rates, "forwarded_share") * 100.0,
                1e9 / offered,
                1e9 / offered - base,
                offered / sdn
            );
        } else {
            let why = r
                .get("skipped")
                .and_then(Value::as_str)
                .unwrap_or("not measured");
            let _ = writeln!(
                out,
                "| {name} | {} | - | - | - | - | - | - | - | - | not measured: {} |",
                group(size),
                why.lines().next().unwrap_or("").replace('|', "/")
            );
        }
    }
    figures
}

fn kernel_peer_table(peers: &Value, out: &mut String) -> Vec<(String, String, f64)> {
    let mut all = Vec::new();
    for r in peers
        .get("results")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let size = r.get("agreements").and_then(Value::as_u64).unwrap_or(0);
        for k in r
            .get("kernel")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let program = k
                .get("program")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned();
            let frame = k
                .get("frame")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned();
            let ns = f(k, "ns");
            let action = k.get("action").and_then(Value::as_u64).unwrap_or(0);
            let verdict = match action {
                1 => "drop",
                2 => "pass",
                _ => "other",
            };
            let _ = writeln!(
                out,
                "| {} | {frame} | {program} | {ns:.1} | {verdict} |",
                group(size)
            );
            all.push((program, frame, ns));
        }
    }
    all
}

fn write_report(
    kernel: &Value,
    peers: &Value,
    denied: Option<&Value>,
    commands: &[String],
) -> Result<()> {
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmark results\n");
    let _ = writeln!(
        md,
        "Written by `cargo xtask bench-report` from one run; every figure below was measured in that run. The machine is shared and noisy (other builds ran at the same time), so compare the **ratios** measured within the run, not the absolute figures.\n"
    );
    let measured = out_dir().join("kernel.json");
    let _ = writeln!(
        md,
        "- date (UTC) of the measurements: {}",
        shell(&format!(
            "date -u -r {} '+%Y-%m-%d %H:%M'",
            measured.display()
        ))
    );
    let _ = writeln!(
        md,
        "- machine: {}, {} CPUs, {}",
        shell("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"),
        shell("nproc"),
        shell("grep MemTotal /proc/meminfo | tr -s ' '")
    );
    let _ = writeln!(md, "- kernel: {}", shell("uname -r"));
    let _ = writeln!(
        md,
        "- peers: {}; {}; {}; {}\n",
        shell("dpkg-query -W -f='xdp-tools ${Version}' xdp-tools"),
        shell("nft -v"),
        shell("iptables -V"),
        shell("ipset -v | head -1")
    );
    let _ = writeln!(
        md,
        "Commands (`cargo xtask bench-report` runs them, with absolute `--json` paths, since cargo runs benches from `benches/`):\n\n```sh"
    );
    for c in commands {
        let _ = writeln!(md, "{c}");
    }
    let _ = writeln!(md, "```\n");
    let _ = writeln!(md, "## In-kernel cost per packet (BPF_PROG_TEST_RUN)\n");
    let _ = writeln!(
        md,
        "Median of 15 rounds of `repeat = 1,000,000`; each round times the bare XDP_PASS program right before the case. `flow floor` is a reference program that parses and does one flow-table lookup. `first packet` skips the flow-table lookup so that every run classifies and inserts; `denied` is a client sending to a port its agreement does not allow, repeated: the first packet is judged (both ways) and the denial remembered in the flow table, so the run measures a denied flow's later packets; `denied first` skips the flow-table lookup, so every run judges the denial (a denied flow's first packet). The criterion version is `cargo bench -p sdn-benches --bench cost`.\n"
    );
    let series = kernel_table(kernel, &mut md);
    let svg = plot("sdn-filter: in-kernel ns per packet vs agreements", &series);
    std::fs::create_dir_all(crate::root().join("benches"))?;
    std::fs::write(crate::root().join("benches/ns-per-packet.svg"), svg)?;
    let _ = writeln!(
        md,
        "\n![ns per packet against agreements](ns-per-packet.svg)\n"
    );
    criterion_table(&mut md);
    let _ = writeln!(md, "## Peers: same topology, same traffic\n");
    let mix = peers.get("mix").and_then(Value::as_str).unwrap_or("?");
    let _ = writeln!(
        md,
        "The in-kernel generator (`sdn_gen` via BPF_PROG_RUN with `BPF_F_TEST_XDP_LIVE_FRAMES`) sends from namespace bn-client through bn-hub (the filter on its ingress `bnhc`) to bn-service. Mix: `{mix}`; the median of {} measurements per filter. *offered*: frames the generator handed to its veth per second of its wall time; *hub received*: the hub ingress's rx counter; *forwarded*: the service side's rx counter. Generator, hub and service share the 2 vCPUs, so the offered rate is bounded by the whole path's cost per packet (*wall ns/packet* = 1/offered). *no filter* is measured first and last, to show the drift during the run.\n",
        peers.get("rounds").and_then(Value::as_u64).unwrap_or(0)
    );
    let figures = peers_table(peers, &mut md);
    let _ = writeln!(
        md,
        "\nIn-kernel cost on the same frames, measured while xdp-filter was attached (median of 5 interleaved rounds of 1,000,000 repeats; xdp-filter through `bpftool prog run`):\n"
    );
    let _ = writeln!(
        md,
        "| agreements | frame | program | ns/packet | verdict |\n|---:|---|---|---:|---|"
    );
    let kfig = kernel_peer_table(peers, &mut md);
    if let Some(denied) = denied {
        let mix = denied.get("mix").and_then(Value::as_str).unwrap_or("?");
        let _ = writeln!(
            md,
            "\n### Every frame denied\n\nThe same comparison with a mix in which no frame has an agreement (`{mix}`): XDP filters drop before the kernel's stack, netfilter drops in the forward chain after routing. xdp-filter cannot express this policy's denials (a known client to a port without agreement) and passes them.\n"
        );
        let _ = peers_table(denied, &mut md);
    }
    let _ = writeln!(md, "\n## Targets (ratios within this run)\n");
    kernel_targets(kernel, &mut md);
    targets(&figures, &kfig, &mut md);
    let notes = crate::root().join("benches/NOTES.md");
    if let Ok(text) = std::fs::read_to_string(&notes) {
        let _ = writeln!(md, "\n{text}");
    }
    std::fs::write(crate::root().join("benches/RESULTS.md"), md)?;
    println!("wrote benches/RESULTS.md and benches/ns-per-packet.svg");
    Ok(())
}

/// The data plane's own targets: each case's ratio to XDP_PASS at every size.
fn kernel_targets(kernel: &Value, md: &mut String) {
    let rows = kernel.as_array().cloned().unwrap_or_default();
    for (case, limit) in [
        ("established", 1.6),
        ("first_packet", 4.0),
        ("denied", 3.0),
        ("denied_first", 3.0),
    ] {
        let ratios: Vec<(u64, f64)> = rows
            .iter()
            .filter_map(|r| {
                let pass = f(r, "xdp_pass");
                let ns = r
                    .get("cases")?
                    .as_array()?
                    .iter()
                    .find(|c| c.get(0).and_then(Value::as_str) == Some(case))?
                    .get(1)?
                    .as_f64()?;
                Some((f(r, "agreements") as u64, ns / pass))
            })
            .collect();
        if ratios.is_empty() {
            continue;
        }
        let list: Vec<String> = ratios
            .iter()
            .map(|(n, r)| format!("{r:.2}x at {}", group(*n)))
            .collect();
        let ok = ratios.iter().all(|(_, r)| *r <= limit);
        let _ = writeln!(
            md,
            "- in-kernel, {} / XDP_PASS (target <= {limit}x at every size): {}: {}",
            case.replace('_', " "),
            list.join(", "),
            if ok { "met" } else { "**missed**" }
        );
    }
}

fn targets(figures: &[(String, u64, f64, f64)], kfig: &[(String, String, f64)], md: &mut String) {
    // The mean of a filter's measurements at a size (no filter is measured twice).
    let get = |name: &str, size: u64| {
        let v: Vec<f64> = figures
            .iter()
            .filter(|x| x.0.starts_with(name) && x.1 == size)
            .map(|x| x.2)
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let sizes: std::collections::BTreeSet<u64> = figures.iter().map(|x| x.1).collect();
    let verdict = |ok: bool| if ok { "met" } else { "**missed**" };
    for size in sizes {
        let sdn = get("sdn-filter", size);
        let none = get("no filter", size);
        let nft = get("nftables", size);
        if !sdn.is_nan() && !none.is_nan() {
            let r = sdn / none;
            let _ = writeln!(
                md,
                "- {} agreements: throughput with sdn-filter / no filter = {r:.2}x (target >= 0.9x): {} (no filter: the mean of its two measurements)",
                group(size),
                verdict(r >= 0.9)
            );
        }
        if !sdn.is_nan() && !nft.is_nan() {
            let r = sdn / nft;
            let _ = writeln!(
                md,
                "- {} agreements: throughput sdn-filter / nftables = {r:.2}x (target >= 2x): {}",
                group(size),
                verdict(r >= 2.0)
            );
        }
    }
    for frame in ["allowed (established)", "denied"] {
        let k = |p: &str| kfig.iter().find(|x| x.0 == p && x.1 == frame).map(|x| x.2);
        if let (Some(ours), Some(theirs), Some(pass)) =
            (k("sdn-filter"), k("xdp-filter"), k("XDP_PASS"))
        {
            let r = ours / theirs;
            let _ = writeln!(
                md,
                "- in-kernel, {frame} frame: sdn-filter / xdp-filter = {r:.2}x (target <= 0.33x): {}; above the XDP_PASS floor: sdn-filter +{:.1} ns, xdp-filter +{:.1} ns",
                verdict(r <= 1.0 / 3.0),
                ours - pass,
                theirs - pass
            );
        }
    }
}

/// Criterion's last estimates for the policy benchmarks (`target/criterion/GROUP/N`), if
/// `cargo bench --bench cost` has run: compile, apply and counter collection per size.
fn criterion_table(md: &mut String) {
    let base = crate::root().join("target/criterion");
    let mut sizes: Vec<u64> = std::fs::read_dir(base.join("compile"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect();
    if sizes.is_empty() {
        return;
    }
    sizes.sort_unstable();
    let _ = writeln!(
        md,
        "## Policy compilation, apply and counter collection (criterion)\n\nFrom `cargo bench -p sdn-benches --bench cost` (its last estimates in `target/criterion`; mean with 95% confidence interval, and when it was measured). *apply* is the data plane's policy switch: sdn-filter does not diff map entries, it writes the whole inactive generation, flips one word and deletes the old generation, so any change (one agreement included) costs this. *counters* reads every agreement's per-CPU counters.\n"
    );
    let _ = writeln!(
        md,
        "| agreements | compile | apply | counters | measured (UTC) |\n|---:|---:|---:|---:|---|"
    );
    for size in sizes {
        let mut cells = Vec::new();
        let mut when = String::new();
        for group in ["compile", "apply", "counters"] {
            let path = base.join(format!("{group}/{size}/new/estimates.json"));
            let cell = read_json(&path).ok().and_then(|v| {
                let m = v.get("mean")?;
                let p = m.get("point_estimate")?.as_f64()?;
                let ci = m.get("confidence_interval")?;
                let lo = ci.get("lower_bound")?.as_f64()?;
                let hi = ci.get("upper_bound")?.as_f64()?;
                Some(format!("{} ({}-{})", ms(p), ms(lo), ms(hi)))
            });
            if when.is_empty() && cell.is_some() {
                when = shell(&format!("date -u -r {} '+%Y-%m-%d %H:%M'", path.display()));
            }
            cells.push(cell.unwrap_or_else(|| "-".to_owned()));
        }
        let _ = writeln!(md, "| {} | {} | {when} |", group(size), cells.join(" | "));
    }
    let _ = writeln!(md);
}

/// Nanoseconds as milliseconds or seconds.
fn ms(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else {
        format!("{:.1} ms", ns / 1e6)
    }
}

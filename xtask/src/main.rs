//! Project tasks. `cargo xtask demo` and `cargo xtask test` are the README's two commands:
//! each installs what it needs first (scripts/setup.sh, idempotent).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread::sleep,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

mod report;
mod soak;
mod svg;

#[derive(Parser)]
#[command(name = "xtask", about = "sdn-filter project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the toolchain (Debian packages, bpf-linker) and mount bpffs. Idempotent.
    Setup,
    /// Build the loader with the XDP program embedded (release).
    Build,
    /// Build, create a client/hub/service topology of network namespaces, enforce the demo
    /// policy on the hub, send allowed and denied traffic, print the counters, clean up.
    Demo {
        /// Leave the topology and the attached program in place afterwards.
        #[arg(long)]
        keep: bool,
        /// Policy file to enforce.
        #[arg(long, default_value = "examples/demo-policy.toml")]
        policy: PathBuf,
    },
    /// Run every test (unit, crafted frames, property, end-to-end, CLI) plus clippy and fmt
    /// checks, then the data plane on Debian 12's 6.1 kernel under qemu.
    Test {
        /// Skip clippy and fmt.
        #[arg(long)]
        no_lint: bool,
        /// Skip the 6.1 kernel check (qemu, about 2 minutes).
        #[arg(long)]
        no_kernel: bool,
        /// Extra arguments for `cargo test`.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Measure in-kernel cost per packet (BPF_PROG_TEST_RUN) next to a bare XDP_PASS program.
    Bench {
        /// Policy sizes (agreements); default 10 6351 1000000.
        sizes: Vec<String>,
    },
    /// In-kernel packet generator (BPF_PROG_RUN live frames) from a generator namespace
    /// into the hub, through one filter; `pktgen peers ...` compares all filters.
    /// Options: see `cargo bench -p sdn-benches --bench traffic -- pktgen --help`.
    Pktgen {
        /// Options for the traffic benchmark (e.g. --filter nftables --flows 10000).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run the figure-printing benchmarks and the peers, then write benches/RESULTS.md and
    /// benches/ns-per-packet.svg.
    BenchReport {
        /// Policy sizes for the in-kernel figures.
        #[arg(long, num_args = 1.., default_values_t = ["10".to_owned(), "6351".to_owned(), "100000".to_owned(), "1000000".to_owned()])]
        kernel_sizes: Vec<String>,
        /// Policy sizes for the traffic comparison.
        #[arg(long, num_args = 1.., default_values_t = ["6351".to_owned(), "100000".to_owned()])]
        peer_sizes: Vec<String>,
        /// Frames per traffic measurement.
        #[arg(long, default_value_t = 1_000_000)]
        packets: u64,
        /// Rewrite the report from the last run's figures (target/bench-report) only.
        #[arg(long)]
        no_run: bool,
    },
    /// For N minutes at once: ping flood and TCP through the hub, concurrent agreement
    /// writers, kill -9 and restart of the loader, database outages, 200 HTTP clients; then
    /// check that nothing was lost, every revision enforced, counters and KPIs add up
    /// (docs/soak.md).
    Soak(soak::SoakArgs),
    /// Boot Debian 12's 6.1 LTS kernel under qemu (TCG) and prove the data plane there: the
    /// verifier accepts it, verdicts equal the host kernel's, real traffic over veth.
    KernelTest {
        /// Kernel under test: 6.1 (Debian 12's cloud kernel) or host.
        #[arg(long, default_value = "6.1")]
        kernel: String,
        /// Use the loader already in target/release.
        #[arg(long)]
        no_build: bool,
        /// Only print the verifier's figures in the guest (`sdn-loader probe`), no comparison.
        #[arg(long)]
        probe_only: bool,
    },
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {shown}"))?;
    if !status.success() {
        bail!("{shown} failed: {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root()).env("SDN_EBPF_BUILD", "require");
    c
}

fn setup() -> Result<()> {
    run(Command::new("bash").arg(root().join("scripts/setup.sh")))
}

fn build() -> Result<PathBuf> {
    setup()?;
    run(cargo().args(["build", "--release", "-p", "sdn-loader"]))?;
    Ok(root().join("target/release/sdn-loader"))
}

const NS: &str = "sdn";
const PIN_DIR: &str = "/sys/fs/bpf/sdn-demo";

fn topology(action: &str) -> Result<()> {
    run(Command::new("bash")
        .arg(root().join("scripts/topology.sh"))
        .args([action, NS]))
}

fn in_ns(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &format!("{NS}-{ns}")]).args(args);
    c
}

/// Runs a command, reports whether it succeeded (traffic that is meant to fail is no error).
fn attempt(what: &str, cmd: &mut Command, expect_ok: bool) -> bool {
    let ok = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    report(what, ok, expect_ok)
}

fn listen(ns: &str, args: &[&str]) -> Result<Child> {
    let child = in_ns(ns, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    sleep(Duration::from_millis(300));
    Ok(child)
}

fn tcp_exchange(src: Option<&str>, dst: &str, port: &str, v6: bool) -> Result<bool> {
    let server = listen("service", &["timeout", "4", "nc", "-l", dst, port])?;
    let mut args = vec!["timeout", "3", "nc", "-w", "2", "-N"];
    if v6 {
        args.push("-6");
    }
    if let Some(s) = src {
        args.extend(["-s", s]);
    }
    args.extend([dst, port]);
    let mut client = in_ns("client", &args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    if let Some(mut stdin) = client.stdin.take() {
        use std::io::Write as _;
        let _ = stdin.write_all(b"hello from the clinic\n");
    }
    let _ = client.wait();
    let out = server.wait_with_output()?;
    Ok(String::from_utf8_lossy(&out.stdout).contains("hello from the clinic"))
}

fn demo(keep: bool, policy: &Path) -> Result<()> {
    let loader = build()?;
    let loader = loader.to_string_lossy().into_owned();
    let policy = root().join(policy);
    let policy = policy.to_string_lossy().into_owned();
    println!(
        "\n== topology: {NS}-client -- {NS}-hub -- {NS}-service (network namespaces, documentation addresses)"
    );
    topology("up")?;
    let result = demo_traffic(&loader, &policy);
    if keep {
        println!(
            "\nleft in place: namespaces {NS}-client/{NS}-hub/{NS}-service, pins under {PIN_DIR}"
        );
        println!(
            "clean up with: {loader} detach --netns {NS}-hub --iface {NS}hc --iface {NS}hs --pin-dir {PIN_DIR} --purge; bash scripts/topology.sh down {NS}"
        );
    } else {
        let _ = Command::new(&loader)
            .args([
                "detach",
                "--netns",
                &format!("{NS}-hub"),
                "--iface",
                &format!("{NS}hc"),
                "--iface",
                &format!("{NS}hs"),
                "--pin-dir",
                PIN_DIR,
                "--purge",
            ])
            .stdout(Stdio::null())
            .status();
        topology("down")?;
    }
    result
}

fn demo_traffic(loader: &str, policy: &str) -> Result<()> {
    println!("\n== policy {policy}");
    run(Command::new(loader).args(["check", "--policy", policy]))?;
    println!("\n== enforcing on the hub's interfaces");
    run(Command::new(loader).args([
        "run",
        "--netns",
        &format!("{NS}-hub"),
        "--iface",
        &format!("{NS}hc"),
        "--iface",
        &format!("{NS}hs"),
        "--policy",
        policy,
        "--pin-dir",
        PIN_DIR,
    ]))?;
    println!(
        "\n== traffic (client 198.51.100.10 has agreements 1001 fmk and 1003 pacs; 198.51.100.20's agreement 1002 is revoked)"
    );
    let mut good = true;
    good &= attempt(
        "ping 203.0.113.10 (icmp, agreement 1001)",
        &mut in_ns(
            "client",
            &["ping", "-c", "3", "-i", "0.2", "-W", "1", "203.0.113.10"],
        ),
        true,
    );
    let ok = tcp_exchange(None, "203.0.113.10", "443", false)?;
    good &= report(
        "TCP 198.51.100.10 -> 203.0.113.10:443 (agreement 1001)",
        ok,
        true,
    );
    let ok = tcp_exchange(None, "203.0.113.20", "11112", false)?;
    good &= report(
        "TCP 198.51.100.10 -> 203.0.113.20:11112 dicom (agreement 1003)",
        ok,
        true,
    );
    let ok = tcp_exchange(None, "2001:db8:300::10", "443", true)?;
    good &= report(
        "TCP [2001:db8:100::10] -> [2001:db8:300::10]:443 (1001)",
        ok,
        true,
    );
    good &= attempt(
        "ping 2001:db8:300::10 (icmpv6, agreement 1001)",
        &mut in_ns(
            "client",
            &[
                "ping",
                "-6",
                "-c",
                "3",
                "-i",
                "0.2",
                "-W",
                "1",
                "2001:db8:300::10",
            ],
        ),
        true,
    );
    let udp = listen(
        "service",
        &["timeout", "3", "nc", "-u", "-l", "203.0.113.10", "5000"],
    )?;
    let sent = in_ns("client", &["bash", "-c", "for i in 1 2 3 4 5; do echo datagram-$i; sleep 0.05; done | timeout 2 nc -u -w1 203.0.113.10 5000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let out = udp.wait_with_output()?;
    let got = String::from_utf8_lossy(&out.stdout)
        .matches("datagram-")
        .count();
    good &= report(
        &format!("UDP 5 datagrams -> 203.0.113.10:5000 ({got} received)"),
        sent && got == 5,
        true,
    );
    let ok = tcp_exchange(Some("198.51.100.20"), "203.0.113.10", "443", false)?;
    good &= report(
        "TCP 198.51.100.20 -> 203.0.113.10:443 (agreement 1002 revoked)",
        ok,
        false,
    );
    let ok = tcp_exchange(None, "203.0.113.10", "22", false)?;
    good &= report(
        "TCP 198.51.100.10 -> 203.0.113.10:22 (no agreement for port 22)",
        ok,
        false,
    );
    good &= attempt(
        "ping 203.0.113.20 (pacs has no icmp endpoint)",
        &mut in_ns(
            "client",
            &["ping", "-c", "2", "-i", "0.2", "-W", "1", "203.0.113.20"],
        ),
        false,
    );
    println!("\n== counters (sdn-loader stats)");
    run(Command::new(loader).args(["stats", "--pin-dir", PIN_DIR]))?;
    if !good {
        bail!("some traffic did not behave as the policy says");
    }
    println!("\nall traffic behaved as the policy says");
    Ok(())
}

fn report(what: &str, ok: bool, expect_ok: bool) -> bool {
    let verdict = if ok == expect_ok {
        "as expected"
    } else {
        "UNEXPECTED"
    };
    println!(
        "  {what:<62} {:<8} {verdict}",
        if ok { "ok" } else { "blocked" }
    );
    ok == expect_ok
}

fn test(no_lint: bool, no_kernel: bool, args: &[String]) -> Result<()> {
    setup()?;
    if !no_lint {
        run(cargo().args(["fmt", "--all", "--check"]))?;
        run(
            Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .current_dir(root().join("sdn-ebpf"))
                .args(["fmt", "--check"]),
        )?;
        run(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--release",
            "--",
            "-D",
            "warnings",
        ]))?;
        clippy_ebpf()?;
    }
    // A private PostgreSQL server, so both database backends pass the same tests.
    let pg_dir = std::env::temp_dir().join(format!("sdn-pg-{}", std::process::id()));
    let pg_script = root().join("scripts/postgres.sh");
    let out = Command::new("bash")
        .arg(&pg_script)
        .args(["start", &pg_dir.to_string_lossy(), "54329"])
        .output()
        .context("starting PostgreSQL")?;
    if !out.status.success() {
        bail!(
            "starting PostgreSQL failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let pg_url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let tests = run(cargo()
        .args(["test", "--release", "--workspace"])
        .args(args)
        .env("SDN_TEST_POSTGRES_URL", &pg_url)
        .env("SDN_REQUIRE_POSTGRES", "1")
        // A test that needs root fails here instead of skipping itself.
        .env("SDN_REQUIRE_ROOT", "1"));
    let _ = Command::new("bash")
        .arg(&pg_script)
        .args(["stop", &pg_dir.to_string_lossy()])
        .status();
    tests?;
    if !no_kernel {
        // The oldest kernel we promise: its verifier must accept the program, and verdicts
        // must match this host's.
        run(Command::new("bash")
            .arg(root().join("scripts/kernel-test.sh"))
            .args(["--kernel", "6.1", "--no-build"]))?;
    }
    Ok(())
}

/// Clippy of the eBPF crate for its own target, with rustup's clippy and `-Z build-std=core`
/// (it only type-checks; the build uses Debian's prebuilt core). Needs rustup's rust-src,
/// which `scripts/setup.sh` adds when it can; without it this says so and lints nothing.
fn clippy_ebpf() -> Result<()> {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .context("rustc --print sysroot")?;
    let core = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim())
        .join("lib/rustlib/src/rust/library/core");
    if !core.is_dir() {
        println!(
            "WARNING: the eBPF crate was not linted: rustup's rust-src is missing ({} does not exist; `rustup component add rust-src`)",
            core.display()
        );
        return Ok(());
    }
    run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root().join("sdn-ebpf"))
            .env("RUSTC_BOOTSTRAP", "1")
            .args([
                "clippy",
                "--release",
                "--target",
                "bpfel-unknown-none",
                "-Zbuild-std=core",
                "--target-dir",
            ])
            .arg(root().join("target/ebpf-clippy"))
            .args(["--", "-D", "warnings"]),
    )
}

fn bench(sizes: &[String]) -> Result<()> {
    setup()?;
    run(cargo()
        .args(["bench", "-p", "sdn-benches", "--bench", "dataplane", "--"])
        .args(sizes))
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Setup => setup(),
        Task::Build => build().map(|p| println!("built {}", p.display())),
        Task::Demo { keep, policy } => demo(keep, &policy),
        Task::Test {
            no_lint,
            no_kernel,
            args,
        } => test(no_lint, no_kernel, &args),
        Task::Bench { sizes } => bench(&sizes),
        Task::Pktgen { args } => report::pktgen(&args),
        Task::BenchReport {
            kernel_sizes,
            peer_sizes,
            packets,
            no_run,
        } => report::bench_report(&report::ReportOptions {
            kernel_sizes,
            peer_sizes,
            packets,
            no_run,
        }),
        Task::Soak(args) => soak::soak(&args),
        Task::KernelTest {
            kernel,
            no_build,
            probe_only,
        } => {
            if !no_build {
                build()?;
            }
            let mut cmd = Command::new("bash");
            cmd.arg(root().join("scripts/kernel-test.sh")).args([
                "--kernel",
                &kernel,
                "--no-build",
            ]);
            if probe_only {
                cmd.arg("--probe-only");
            }
            run(&mut cmd)
        }
    }
}

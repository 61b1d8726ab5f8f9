//! Project tasks. `cargo xtask demo` and `cargo xtask test` are the README's two commands:
//! each installs what it needs first (scripts/setup.sh, idempotent).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

mod demo;
mod package;
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
    /// Build the Debian package (target/package/*.deb) with cargo-deb: the loader with the XDP
    /// program embedded, the systemd unit, /etc/sdn/sdn.toml, manual pages, completions.
    Package {
        /// Also install it with dpkg, run it, verify its unit and purge it again.
        #[arg(long)]
        check: bool,
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
        .env("SDN_REQUIRE_ROOT", "1")
        // So do the status page and report drawings without Chromium (setup installs it).
        .env("SDN_REQUIRE_CHROMIUM", "1"));
    let _ = Command::new("bash")
        .arg(&pg_script)
        .args(["stop", &pg_dir.to_string_lossy()])
        .status();
    tests?;
    // The Debian package: built, installed with dpkg, run, its unit verified, purged.
    package::check(&package::package()?)?;
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
        Task::Demo { keep, policy } => demo::demo(keep, &policy),
        Task::Test {
            no_lint,
            no_kernel,
            args,
        } => test(no_lint, no_kernel, &args),
        Task::Bench { sizes } => bench(&sizes),
        Task::Package { check } => {
            let deb = package::package()?;
            if check {
                package::check(&deb)?;
            }
            Ok(())
        }
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

//! Criterion benchmarks of compile, apply and counters. Run as root: `cargo bench -p sdn-benches --bench cost`.
//!
//! - `compile/N`: policy -> map entries for a synthetic policy of N agreements.
//! - `apply/N`: the policy switch in the data plane. sdn-filter does not diff map entries: an
//!   apply writes the whole inactive generation, flips one word and deletes the old
//!   generation, so this is the cost of any policy change (a diff of one agreement included).
//! - `counters/N`: collecting every agreement's per-CPU counters.
//! - `kernel/CASE/N`: in-kernel cost per packet, from BPF_PROG_TEST_RUN with `repeat` =
//!   criterion's iteration count; `iter_custom` returns the kernel-reported mean duration
//!   times the iterations, so syscall overhead is not counted. `xdp_pass` (a bare XDP_PASS
//!   program) and `flow_floor` (parse + one flow-table lookup) are measured in the same run.
//!
//! Sizes: `SDN_BENCH_SIZES=10,6351` (default 10, 6,351, 100,000, 1,000,000 agreements; the
//! compile and apply groups skip 10). Shared machines are noisy: compare within one run.
#![allow(
    missing_docs,
    reason = "criterion_group! defines an undocumented public function"
)]
#![allow(unused_crate_dependencies, reason = "one dependency list per package")]

use sdn_benches as common;

use std::time::{Duration, Instant};

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use sdn_common::flags;
use sdn_loader::{
    compile::compile,
    dataplane::{Dataplane, Program},
    tools::policies,
};

const SIZES: [usize; 4] = [10, 6351, 100_000, 1_000_000];

/// Kernel-reported cost of `iters` runs of `frame` through `which`.
fn kernel_time(dp: &mut Dataplane, frame: &[u8], which: Program, iters: u64) -> Duration {
    let repeat = u32::try_from(iters.max(1)).unwrap_or(u32::MAX);
    match dp.time_frame(frame, repeat, which) {
        Ok((mean, _)) => mean * repeat,
        Err(e) => panic!("test run failed: {e:#}"),
    }
}

fn policy_benches(c: &mut Criterion) {
    let today = common::today().unwrap_or_default();
    for size in common::sizes_from_env(&SIZES) {
        if size < 1000 {
            continue;
        }
        let policy = match policies::policy(policies::Shape::scaled(size)) {
            Ok(p) => p,
            Err(e) => panic!("synthetic policy: {e}"),
        };
        let mut g = c.benchmark_group("compile");
        g.sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(100));
        g.throughput(Throughput::Elements(size as u64));
        g.bench_function(BenchmarkId::from_parameter(size), |b| {
            b.iter(|| compile(&policy, today).map(|c| c.prefixes.len()).ok());
        });
        g.finish();

        // What every export of the database pays: validating the whole policy it read.
        let draft = policy.clone().into_draft();
        let mut g = c.benchmark_group("validate");
        g.sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(100));
        g.throughput(Throughput::Elements(size as u64));
        g.bench_function(BenchmarkId::from_parameter(size), |b| {
            b.iter(|| draft.validate().map(|p| p.agreements.len()).ok());
        });
        g.finish();

        let mut loaded = match common::load(size) {
            Ok(l) => l,
            Err(e) => panic!("loading {size}: {e:#}"),
        };
        let mut g = c.benchmark_group("apply");
        g.sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(100));
        g.bench_function(BenchmarkId::from_parameter(size), |b| {
            b.iter_custom(|iters| {
                let t0 = Instant::now();
                for _ in 0..iters {
                    if let Err(e) = loaded.dp.apply(&loaded.compiled) {
                        panic!("apply: {e:#}");
                    }
                }
                t0.elapsed()
            });
        });
        g.finish();

        let mut g = c.benchmark_group("counters");
        g.sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(100));
        g.bench_function(BenchmarkId::from_parameter(size), |b| {
            b.iter(|| loaded.dp.agreement_counters().map(|v| v.len()).ok());
        });
        g.finish();
    }
}

fn kernel_benches(c: &mut Criterion) {
    for size in common::sizes_from_env(&SIZES) {
        let mut loaded = match common::load(size) {
            Ok(l) => l,
            Err(e) => panic!("loading {size}: {e:#}"),
        };
        let cases = match common::cases(&loaded.shape) {
            Ok(c) => c,
            Err(e) => panic!("frames: {e:#}"),
        };
        if let Err(e) = common::prime(&mut loaded.dp, &cases) {
            panic!("priming flows: {e:#}");
        }
        let dp = &mut loaded.dp;
        let mut g = c.benchmark_group("kernel");
        g.sample_size(20)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1));
        g.throughput(Throughput::Elements(1));
        let established = &cases[0].frame;
        g.bench_function(BenchmarkId::new("xdp_pass", size), |b| {
            b.iter_custom(|iters| kernel_time(dp, established, Program::Pass, iters));
        });
        g.bench_function(BenchmarkId::new("flow_floor", size), |b| {
            b.iter_custom(|iters| kernel_time(dp, established, Program::FlowFloor, iters));
        });
        for case in &cases {
            let (set, clear) = if case.no_flow_lookup {
                (flags::NO_FLOW_LOOKUP, 0)
            } else {
                (0, flags::NO_FLOW_LOOKUP)
            };
            if let Err(e) = dp.set_flags(set, clear) {
                panic!("flags: {e:#}");
            }
            g.bench_function(BenchmarkId::new(case.name, size), |b| {
                b.iter_custom(|iters| kernel_time(dp, &case.frame, Program::Filter, iters));
            });
        }
        if let Err(e) = dp.set_flags(0, flags::NO_FLOW_LOOKUP) {
            panic!("flags: {e:#}");
        }
        g.finish();
    }
}

criterion_group!(benches, policy_benches, kernel_benches);
criterion_main!(benches);

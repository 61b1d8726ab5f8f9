//! Property test: random policies x random frames (built with etherparse and by hand), the
//! real XDP program's verdict, reason, agreement, direction and transaction flag equal the
//! userspace reference model's, for at least 10,000 frames per run (more with
//! SDN_PROPTEST_FRAMES). Also: 100,000 random and mutated frames never make the program
//! return XDP_ABORTED or an undefined verdict.
//!
//! Needs root (BPF). Seeds are printed so a failure can be replayed with SDN_PROPTEST_SEED.
#![allow(unused_crate_dependencies, reason = "one dependency list per package")]

use sdn_tests as support;

use chrono::NaiveDate;
use rand::{Rng, SeedableRng, rngs::StdRng};
use sdn_loader::tools::replay::{Action, Direction, Replayer};
use support::{
    generate::{FrameGen, fixed_today, mutate, random_policy},
    oracle::{self, Oracle},
};

fn seed() -> u64 {
    std::env::var("SDN_PROPTEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random)
}

fn frames_wanted(default: usize) -> usize {
    std::env::var("SDN_PROPTEST_FRAMES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// What a property run starts from.
struct Run {
    /// The seed, printed so a failure can be replayed.
    seed: u64,
    /// The generator, seeded with it.
    rng: StdRng,
    /// The date policies are judged on.
    today: NaiveDate,
    /// How many frames to check.
    total: usize,
}

/// Starts a property run of `default_frames` frames (unless SDN_PROPTEST_FRAMES says
/// otherwise); `None` when it skips for want of root.
fn start(default_frames: usize) -> Option<Run> {
    if !support::netns::root_or_skip() {
        return None;
    }
    let seed = seed();
    eprintln!("seed {seed} (rerun with SDN_PROPTEST_SEED={seed})");
    Some(Run {
        seed,
        rng: StdRng::seed_from_u64(seed),
        today: fixed_today(),
        total: frames_wanted(default_frames),
    })
}

#[test]
fn kernel_agrees_with_reference_model() {
    let Some(Run {
        seed,
        mut rng,
        today,
        total,
    }) = start(12_000)
    else {
        return;
    };
    let per_policy = 400;
    let mut checked = 0;
    let mut passes = 0;
    let mut with_agreement = 0;
    let mut policies = 0;
    while checked < total {
        let policy = random_policy(&mut rng, today);
        policies += 1;
        let mut kernel = Replayer::new(&policy, today).expect("load policy into the XDP program");
        let mut model = Oracle::new(&policy, today);
        let mut frames = FrameGen::new(&policy);
        for _ in 0..per_policy {
            let frame = frames.next(&mut rng);
            let want = model.judge(&frame);
            let got = kernel.judge(&frame).expect("test run");
            let got_dir = got.direction.map(|d| match d {
                Direction::Forward => oracle::Direction::Forward,
                Direction::Reply => oracle::Direction::Reply,
            });
            let same = (got.verdict == Action::Pass) == want.pass
                && got.agreement == want.agreement
                && got_dir == want.direction
                && got.transaction == want.transaction
                && got.reason == want.reason;
            assert!(
                same,
                "seed {seed}, policy {policies}, frame {}:\n kernel {got:?}\n model  {want:?}\n frame {}\n policy {}",
                got.index,
                hex(&frame),
                sdn_loader::policy::to_toml(&policy).unwrap_or_default(),
            );
            checked += 1;
            passes += usize::from(want.pass);
            with_agreement += usize::from(want.agreement.is_some());
        }
    }
    eprintln!(
        "{checked} frames over {policies} policies: {passes} passed, {with_agreement} under an agreement"
    );
    assert!(checked >= 10_000);
    // The generator must exercise both outcomes substantially, or the comparison proves little.
    assert!(
        passes > checked / 10 && passes < checked * 9 / 10,
        "{passes} of {checked} passed"
    );
    assert!(
        with_agreement > checked / 20,
        "{with_agreement} of {checked} under an agreement"
    );
}

#[test]
fn random_and_mutated_frames_never_abort() {
    let Some(Run {
        seed,
        mut rng,
        today,
        total,
    }) = start(100_000)
    else {
        return;
    };
    let mut done = 0;
    let mut kinds = [0usize; 2];
    while done < total {
        let policy = random_policy(&mut rng, today);
        let mut kernel = Replayer::new(&policy, today).expect("load");
        let mut frames = FrameGen::new(&policy);
        for _ in 0..5_000 {
            let mut frame = if rng.gen_bool(0.2) {
                let n = rng.gen_range(14..200);
                (0..n).map(|_| rng.r#gen::<u8>()).collect()
            } else {
                frames.next(&mut rng)
            };
            mutate(&mut rng, &mut frame);
            // `judge` fails on anything but XDP_PASS / XDP_DROP (XDP_ABORTED included).
            let v = kernel
                .judge(&frame)
                .unwrap_or_else(|e| panic!("seed {seed}: {e}: {}", hex(&frame)));
            assert_ne!(v.reason, "unknown", "seed {seed}: {}", hex(&frame));
            kinds[usize::from(v.passed())] += 1;
            done += 1;
        }
    }
    eprintln!("{done} frames: {} passed, {} dropped", kinds[1], kinds[0]);
    assert!(kinds[0] > 0 && kinds[1] > 0);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

//! Live-sync figures, printed; run as root:
//!
//!     cargo bench -p sdn-benches --bench sync [-- SIZES...]   (default 6351 1000000)
//!
//! With `SDN_TEST_POSTGRES_URL` set (e.g. `postgres://sdn@127.0.0.1:54329/sdn`, see
//! `scripts/postgres.sh`), PostgreSQL is measured next to SQLite.
//!
//! - Full sync: a database holding N synthetic agreements, a follower's first step into a
//!   freshly loaded data plane: read the whole database (one snapshot), compile, write the
//!   maps, switch the generation; then writing the provisioning status (N rows), separately.
//! - Commit-to-enforced: a follower runs as `sdn-loader run --db` does (default poll 100 ms;
//!   PostgreSQL also wakes on NOTIFY), on 6,351 agreements; 100 single changes (an agreement
//!   created, then deleted, alternately) are committed one at a time, and the time from the
//!   commit returning to the data plane's generation switch (read from the pinned config
//!   map, polled every 0.5 ms) is recorded; p50, p99 and max.
//! - BPF map memory with N agreements loaded: the kernel's `memlock` of every map of the
//!   process (from /proc/self/fdinfo), which is what the maps pin in kernel memory.
#![allow(unused_crate_dependencies, reason = "one dependency list per package")]

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use sdn_loader::{
    daemon::Shutdown,
    dataplane::{Capacities, Dataplane, Maps},
    db::{Db, Origin},
    policy::{Agreement, AgreementState},
    sync::{Follow, Follower, SyncOptions, follow},
    tools::policies::{self, Shape},
};

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Sum of `memlock` over this process's BPF maps, and how many there are.
fn map_memory() -> Result<(u64, usize)> {
    let mut total = 0;
    let mut maps = 0;
    for e in std::fs::read_dir("/proc/self/fdinfo")? {
        let Ok(text) = std::fs::read_to_string(e?.path()) else {
            continue;
        };
        if !text.contains("map_type:") {
            continue;
        }
        maps += 1;
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("memlock:") {
                total += v.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    Ok((total, maps))
}

/// A fresh database at `url` holding `n` synthetic agreements; SQLite in `dir`.
async fn fresh_db(backend: &str, n: usize, dir: &Path) -> Result<(Db, String)> {
    let url = if backend == "sqlite" {
        format!("sqlite://{}", dir.join(format!("sync-{n}.db")).display())
    } else {
        std::env::var("SDN_TEST_POSTGRES_URL")?
    };
    // An import makes the database hold exactly the policy, whatever it held before.
    let db = Db::open(&url).await?;
    let t = Instant::now();
    db.import(
        &policies::policy(Shape::scaled(n))?,
        &Origin::new("bench", format!("bench-{n}")),
    )
    .await?;
    eprintln!(
        "  ({backend}: imported {n} agreements in {:.1} s)",
        t.elapsed().as_secs_f64()
    );
    Ok((db, url))
}

fn full_sync(backend: &str, n: usize, dir: &Path) -> Result<()> {
    let rt = runtime()?;
    let (db, _) = rt.block_on(fresh_db(backend, n, dir))?;
    let mut dp = Dataplane::load_private(Capacities::default())?;
    let opts = SyncOptions {
        router: "bench".into(),
        ..SyncOptions::default()
    };
    let mut f = Follower::default();
    let t = Instant::now();
    let step = rt.block_on(f.step(&db, &mut dp, &opts, true))?;
    let sync = t.elapsed();
    let t = Instant::now();
    rt.block_on(f.write_status(&db, &opts, None))?;
    let status = t.elapsed();
    let (mem, maps) = map_memory()?;
    println!(
        "{backend:>8} {n:>9} agreements: full sync {:>6.2} s ({step:?}), status rows {:>6.2} s, BPF map memory {:.1} MiB in {maps} maps",
        sync.as_secs_f64(),
        status.as_secs_f64(),
        mem as f64 / f64::from(1 << 20)
    );
    rt.block_on(db.close());
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn latency(backend: &str, dir: &Path, pin_dir: &Path) -> Result<()> {
    let rt = runtime()?;
    let n = 6351;
    let (db, url) = rt.block_on(fresh_db(backend, n, dir))?;
    let policy = rt.block_on(db.export())?;
    let client = policy.clients[0].id.clone();
    let service = policy.services[0].id.clone();
    let new_id = policy.agreements.iter().map(|a| a.id).max().unwrap_or(0) + 1;

    let _ = std::fs::remove_dir_all(pin_dir);
    let stop = Shutdown::new();
    let follower = {
        let (stop, url, pin_dir) = (stop.clone(), url.clone(), pin_dir.to_path_buf());
        std::thread::spawn(move || -> Result<()> {
            let rt = runtime()?;
            let mut dp = Dataplane::load_pinned(Capacities::default(), &pin_dir)?;
            let opts = SyncOptions {
                router: "bench".into(),
                ..SyncOptions::default()
            };
            let what = Follow {
                url: &url,
                opts: &opts,
                once: false,
                resume: None,
                ready: None,
            };
            follow(&rt, &mut dp, what, &stop);
            Ok(())
        })
    };
    // Wait for the pins and the first sync.
    let t = Instant::now();
    let maps = loop {
        if let Ok(m) = Maps::open_pinned(pin_dir)
            && m.config().is_ok_and(|c| c.active_generation != 0)
        {
            break m;
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(120),
            "first sync timed out"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let origin = Origin::new("bench", "latency");
    let mut samples = Vec::with_capacity(100);
    for i in 0..100 {
        let before = maps.config()?.active_generation;
        if i % 2 == 0 {
            rt.block_on(db.create_agreement(
                &Agreement {
                    id: new_id,
                    client: client.clone(),
                    service: service.clone(),
                    state: AgreementState::Approved,
                    expires: None,
                    vlan: None,
                },
                &origin,
            ))?;
        } else {
            rt.block_on(db.delete_agreement(new_id, &origin))?;
        }
        let committed = Instant::now();
        loop {
            if maps.config()?.active_generation != before {
                samples.push(committed.elapsed());
                break;
            }
            anyhow::ensure!(
                committed.elapsed() < Duration::from_secs(30),
                "change {i} not enforced within 30 s"
            );
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    stop.trigger();
    follower
        .join()
        .map_err(|_| anyhow::anyhow!("follower panicked"))??;
    let _ = std::fs::remove_dir_all(pin_dir);
    samples.sort();
    println!(
        "{backend:>8} {n:>9} agreements: commit-to-enforced over {} changes: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        samples.len(),
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3
    );
    rt.block_on(db.close());
    Ok(())
}

fn main() -> Result<()> {
    if let Ok(filter) = std::env::var("SDN_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![6351, 1_000_000]
    } else {
        sizes
    };
    let mut backends = vec!["sqlite"];
    if std::env::var("SDN_TEST_POSTGRES_URL").is_ok() {
        backends.push("postgres");
    }
    let dir = tempfile::tempdir().context("temporary directory")?;
    let pin_dir = PathBuf::from(format!("/sys/fs/bpf/sdn-bench-sync-{}", std::process::id()));
    println!("live sync (machine: {} CPUs)", num_cpus());
    for backend in &backends {
        latency(backend, dir.path(), &pin_dir)?;
        for &n in &sizes {
            full_sync(backend, n, dir.path())?;
        }
    }
    Ok(())
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

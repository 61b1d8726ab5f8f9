//! sdn-filter's loader: everything the `sdn-loader` binary does, as a library.
//!
//! # Layout
//!
//! - [`policy`]: the policy model (organisations, services, clients, agreements), the TOML
//!   file format, its validation and writing.
//! - [`compile`]: a validated policy -> the XDP program's map entries (prefixes flattened,
//!   lowest agreement id wins).
//! - [`dataplane`]: loading the XDP object, the maps and their two policy generations,
//!   pinning ([`dataplane::pins`]: the pin tree the loader owns), attaching
//!   ([`dataplane::attach`]), what the kernel offers ([`dataplane::probe`]), test runs, and the
//!   in-kernel packet generator.
//! - [`db`]: the agreement database (SQLite or PostgreSQL): objects, revisions, audit log,
//!   lifecycle, router and provisioning status.
//! - [`sync`]: following the database into the data plane: the loop, the blast-radius guard
//!   and its plan, traffic activity, the loader's own state on disk.
//! - [`kpi`]: per-agreement counters collected into KPI tables, queries, the HTML report, and
//!   the HTTP server (`/metrics`, `/api/v1`).
//! - [`tools`]: replay and explain through the loaded program, frame builders, synthetic
//!   policies (tests and benchmarks).
//! - [`daemon`]: what the long-running commands share: the shutdown handle (SIGINT, SIGTERM)
//!   and when `run` may attach.
//! - [`config`], [`paths`]: the configuration file and where things live on a router.
//!
//! The binary (`src/bin/sdn-loader/`) holds only the command line: one module per command
//! group, turning flags and the configuration file into calls of this library.
//!
//! Beside this crate in the workspace: `sdn-common` (the map layouts shared with the XDP
//! program), `sdn-ebpf` (the program), `tests` (the integration tests that load the program or
//! need root, and their support library; this crate's own `tests/` holds what runs
//! unprivileged), `benches` and `xtask`.
#![allow(
    unused_crate_dependencies,
    reason = "the package's dependency list is shared with its binary and its tests (anyhow, indicatif, tracing-subscriber, uuid are the binary's)"
)]

pub mod compile;
pub mod config;
pub mod daemon;
pub mod dataplane;
pub mod db;
pub mod kpi;
pub mod paths;
pub mod policy;
pub mod sync;
pub mod tools;

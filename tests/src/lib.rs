//! sdn-filter's integration tests and their support code.
//!
//! The tests in `tests/` load the real XDP program (BPF_PROG_TEST_RUN, or live frames through
//! veth pairs between network namespaces they create) or need root for another reason. Each
//! one that needs root skips itself with a printed reason when it runs unprivileged, unless
//! `SDN_REQUIRE_ROOT=1` (set by `cargo xtask test`, and so by CI): then it fails.
//!
//! This library is what they share:
//! - [`oracle`]: the reference model of docs/semantics.md, a test oracle only (verdicts always
//!   come from the real program);
//! - [`generate`]: seeded random policies, frames and mutations (documentation addresses only);
//! - [`netns`]: namespace topologies, the loader binary, sockets inside namespaces;
//! - [`daemon`]: `sdn-loader run --db` daemons, a private PostgreSQL server, waiting;
//! - [`target`]: a database per test, SQLite or a schema on PostgreSQL;
//! - [`http`]: plain HTTP requests to the loader's server.
//!
//! Fixture policies are files in `fixtures/`. The loader's own unprivileged tests
//! (`sdn-loader/tests`) use [`target`] and [`netns`]'s process helpers too.
//!
//! Test support panics on any failure by design: a broken set-up must stop the test with the
//! cause.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support: a failed set-up panics with its cause"
)]
#![allow(
    unused_crate_dependencies,
    reason = "the package's dependencies also build the loader binary under test (src/bin/sdn-loader-under-test) and the test binaries"
)]

pub mod daemon;
pub mod r#gen;
pub mod http;
pub mod netns;
pub mod oracle;
pub mod target;

/// The generators (`gen` is a reserved word in edition 2024).
pub use self::r#gen as generate;

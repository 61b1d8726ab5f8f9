//! Shared helpers for integration tests: the reference model (`oracle`) and random
//! generators (`gen.rs`; `gen` is a reserved word in edition 2024, so the module is `r#gen`,
//! also re-exported as `generate`). Not every test uses everything.
#![allow(
    dead_code,
    unused_imports,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used
)]

pub mod daemon;
pub mod r#gen;
pub mod netns;
pub mod oracle;
pub mod target;

pub use self::r#gen as generate;

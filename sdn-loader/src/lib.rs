//! sdn-filter's loader: policy model and validation, compilation of a policy into the XDP
//! program's map entries, loading/attaching/pinning, and replay/explain through the real
//! program (BPF_PROG_TEST_RUN).

pub mod activity;
pub mod attach;
pub mod compile;
pub mod config;
pub mod dataplane;
pub mod db;
pub mod explain;
pub mod generator;
pub mod http;
pub mod kpi;
pub mod paths;
pub mod pins;
pub mod plan;
pub mod policy;
pub mod probe;
pub mod replay;
pub mod state;
pub mod sync;
pub mod synth;
pub mod synthetic;

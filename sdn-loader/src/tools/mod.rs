//! Tools around the data plane: replay of captures and explanation of one packet through the
//! loaded program (BPF_PROG_TEST_RUN), the rules in force read back from the maps, frame
//! builders, and synthetic policies for tests and benchmarks.

pub mod explain;
pub mod frames;
pub mod policies;
pub mod replay;
pub mod rules;

//! sdn-loader command line.
fn main() {}

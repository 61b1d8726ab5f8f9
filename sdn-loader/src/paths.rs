//! Where things live on a router.

/// Default directory for pins (program, maps, links) on bpffs.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/sdn";
/// Subdirectory for pinned maps.
pub const MAPS_SUBDIR: &str = "maps";
/// Subdirectory for pinned links (one per interface).
pub const LINKS_SUBDIR: &str = "links";
/// File name of the pinned program.
pub const PROGRAM_PIN: &str = "prog";
/// Directory where `ip netns` keeps named network namespaces.
pub const NETNS_DIR: &str = "/run/netns";
/// File name of the pinned drop-logger program.
pub const LOGGER_PIN: &str = "logger";

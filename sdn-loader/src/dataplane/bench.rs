//! The benchmark programs (`sdn_pass`, `sdn_flow_floor`, `sdn_gen`): a second object, loaded
//! only when a benchmark first asks for one of them, so the filter's object and a router's
//! kernel carry the filter only. The flow floor must look flows up in the table the filter
//! filled, with the filter's keys: the filter's `SDN_CONFIG` and `SDN_FLOW_TABLE4` are pinned
//! for the moment of the load under a private directory of the BPF filesystem, the benchmark
//! object takes them from there, and the pins are removed (the maps live on while either
//! object holds them).

use std::{
    os::unix::fs::DirBuilderExt as _,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

use aya::{Ebpf, EbpfLoader, maps::MapData, programs::Xdp};
use sdn_common::{FLOW_FLOOR_NAME, PASS_NAME, PROGRAM_NAME, maps};

use crate::dataplane::DataplaneError;

/// The benchmark object built by build.rs (empty when built without the BPF toolchain).
static BENCH_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sdn-bench.o"));

/// Where the shared maps are pinned while the benchmark object loads.
const BPFFS: &str = "/sys/fs/bpf";

/// The maps the benchmark object shares with the filter.
const SHARED: [&str; 2] = [maps::CONFIG, maps::FLOWS4];

/// Loads the benchmark object next to a loaded filter, sharing the filter's configuration and
/// flow table. `sdn_pass` and `sdn_flow_floor` are loaded into the kernel here; `sdn_gen` when
/// it is first run.
pub(super) fn load(filter: &Ebpf) -> Result<Ebpf, DataplaneError> {
    if BENCH_OBJECT.is_empty() {
        return Err(DataplaneError::NoObject);
    }
    let dir = PinDir::create()?;
    for name in SHARED {
        let map = shared_map(filter, name)?;
        let path = dir.0.join(name);
        map.pin(&path).map_err(|source| DataplaneError::BenchPin {
            path: path.clone(),
            source,
        })?;
    }
    let mut loader = EbpfLoader::new();
    for name in SHARED {
        loader.map_pin_path(name, dir.0.join(name));
    }
    let mut ebpf = loader.load(BENCH_OBJECT)?;
    drop(dir);
    for name in [PASS_NAME, FLOW_FLOOR_NAME] {
        let program: &mut Xdp = ebpf
            .program_mut(name)
            .ok_or(DataplaneError::MissingProgram(name))?
            .try_into()?;
        program
            .load()
            .map_err(|source| DataplaneError::ProgramLoad { name, source })?;
    }
    Ok(ebpf)
}

/// One of the maps the loaded filter program uses, found by name among the program's maps
/// (the data plane has already taken its typed handles out of `filter`).
fn shared_map(filter: &Ebpf, name: &'static str) -> Result<MapData, DataplaneError> {
    let program: &Xdp = filter
        .program(PROGRAM_NAME)
        .ok_or(DataplaneError::MissingProgram(PROGRAM_NAME))?
        .try_into()?;
    let ids = program
        .info()
        .and_then(|info| info.map_ids())
        .map_err(DataplaneError::Program)?
        .unwrap_or_default();
    for id in ids {
        let map =
            MapData::from_id(id).map_err(|source| DataplaneError::Map { map: name, source })?;
        let info = map
            .info()
            .map_err(|source| DataplaneError::Map { map: name, source })?;
        if info.name_as_str() == Some(name) {
            return Ok(map);
        }
    }
    Err(DataplaneError::MissingMap(name))
}

/// A private directory in the BPF filesystem, removed with what is in it when dropped (no dot
/// in its name: the BPF filesystem refuses names with one).
struct PinDir(PathBuf);

impl PinDir {
    fn create() -> Result<Self, DataplaneError> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = Path::new(BPFFS).join(format!(
            "sdn-bench-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        // Root's only, like the pin tree: the filter's configuration is pinned in it.
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|source| DataplaneError::PinDir {
                path: path.clone(),
                source,
            })?;
        Ok(Self(path))
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        for name in SHARED {
            let _ = std::fs::remove_file(self.0.join(name));
        }
        let _ = std::fs::remove_dir(&self.0);
    }
}

//! What the data plane needs from the kernel, probed before loading, so that an old kernel
//! gets one clear sentence ("this kernel lacks X, needed for Y; Linux >= Z has it") instead of
//! a raw verifier log.

use aya::{
    maps::MapType,
    programs::ProgramType,
    sys::{BpfHelper, is_helper_supported, is_map_supported, is_program_supported},
    util::KernelVersion,
};

/// One kernel feature the data plane relies on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Feature {
    /// What it is.
    pub name: &'static str,
    /// What sdn-filter uses it for.
    pub used_for: &'static str,
    /// The first kernel with it.
    pub since: &'static str,
    /// Whether this kernel has it (`None`: could not tell).
    pub present: Option<bool>,
    /// Whether the data plane cannot run without it.
    pub required: bool,
}

/// The probe's findings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The running kernel, as the loader read it.
    pub kernel: String,
    /// Every feature, present or not.
    pub features: Vec<Feature>,
}

impl Report {
    /// Required features this kernel lacks.
    pub fn missing_required(&self) -> Vec<&Feature> {
        self.features
            .iter()
            .filter(|f| f.required && f.present == Some(false))
            .collect()
    }

    /// One sentence per missing required feature, or `None` when all are there.
    pub fn refusal(&self) -> Option<String> {
        let missing = self.missing_required();
        if missing.is_empty() {
            return None;
        }
        Some(
            missing
                .iter()
                .map(|f| {
                    format!(
                        "this kernel ({}) lacks {}, needed for {}; Linux {} has it",
                        self.kernel, f.name, f.used_for, f.since
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
        )
    }
}

fn map(t: MapType) -> Option<bool> {
    is_map_supported(t).ok()
}

fn helper(h: BpfHelper) -> Option<bool> {
    is_helper_supported(ProgramType::Xdp, h).ok()
}

/// Probes the running kernel.
pub fn probe() -> Report {
    let version = KernelVersion::current().ok();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".into(), |s| s.trim().to_owned());
    let at_least = |major, minor| version.map(|v| v >= KernelVersion::new(major, minor, 0));
    let f = |name, used_for, since, present, required| Feature {
        name,
        used_for,
        since,
        present,
        required,
    };
    let features = vec![
        f(
            "XDP programs",
            "the filter",
            "4.8",
            is_program_supported(ProgramType::Xdp).ok(),
            true,
        ),
        f(
            "hash maps",
            "the policy (prefix classes, rules)",
            "3.19",
            map(MapType::Hash),
            true,
        ),
        f(
            "LRU hash maps",
            "the flow and fragment tables",
            "4.10",
            map(MapType::LruHash),
            true,
        ),
        f(
            "per-CPU arrays",
            "per-agreement counters",
            "4.6",
            map(MapType::PerCpuArray),
            true,
        ),
        f(
            "program arrays (tail calls)",
            "the classifier and the drop logger",
            "4.2",
            map(MapType::ProgramArray),
            true,
        ),
        f(
            "ring buffers",
            "drop logging (aya-log)",
            "5.8",
            map(MapType::RingBuf),
            true,
        ),
        f(
            "bpf_xdp_load_bytes",
            "reading headers behind IPv6 extension headers",
            "5.18",
            helper(BpfHelper::BPF_FUNC_xdp_load_bytes),
            true,
        ),
        f(
            "bpf_jiffies64",
            "flow and fragment timeouts",
            "5.5",
            helper(BpfHelper::BPF_FUNC_jiffies64),
            true,
        ),
        f(
            "XDP bpf_link",
            "keeping the filter attached after the loader exits (pinned links)",
            "5.9",
            at_least(5, 9),
            true,
        ),
        f(
            "BPF_PROG_RUN live frames",
            "the in-kernel packet generator (benchmarks only)",
            "5.18",
            at_least(5, 18),
            false,
        ),
        f(
            "kernel BTF",
            "nothing yet (the program is built without CO-RE)",
            "5.4",
            Some(std::path::Path::new("/sys/kernel/btf/vmlinux").exists()),
            false,
        ),
    ];
    Report { kernel, features }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_names_each_missing_required_feature() {
        let mut r = probe();
        assert!(
            r.refusal().is_none(),
            "this test machine should have everything: {r:?}"
        );
        r.features[6].present = Some(false);
        r.features[9].present = Some(false); // optional: never a refusal
        let why = r.refusal().unwrap_or_default();
        assert!(
            why.contains("bpf_xdp_load_bytes") && why.contains("5.18"),
            "{why}"
        );
        assert!(!why.contains("live frames"), "{why}");
        assert_eq!(why.lines().count(), 1, "{why}");
    }
}

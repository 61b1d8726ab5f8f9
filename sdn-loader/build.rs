//! Builds the XDP programs (the `sdn-ebpf` crate, its own workspace) for bpfel-unknown-none
//! with Debian's rustc-web and embeds its two objects: the filter (`sdn-ebpf.o`) and the
//! benchmark programs (`sdn-bench.o`). Without that toolchain (e.g. `cargo clippy` on a
//! machine that never ran `scripts/setup.sh`) an empty object is embedded and the loader
//! says so at run time; `SDN_EBPF_BUILD=require` turns that into a build error.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

fn toolchain_present() -> bool {
    let linker = env::var_os("PATH")
        .is_some_and(|paths| env::split_paths(&paths).any(|p| p.join("bpf-linker").is_file()))
        || home_cargo_bin().join("bpf-linker").is_file();
    linker
        && Path::new("/usr/bin/rustc").is_file()
        && Path::new("/usr/lib/rustlib/bpfel-unknown-none").is_dir()
}

fn home_cargo_bin() -> PathBuf {
    env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".cargo/bin")
}

fn main() {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    let dst = out_dir.join("sdn-ebpf.o");
    let bench_dst = out_dir.join("sdn-bench.o");
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    for p in [
        "sdn-ebpf/src",
        "sdn-ebpf/Cargo.toml",
        "sdn-ebpf/Cargo.lock",
        "sdn-common/src",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    println!("cargo:rerun-if-env-changed=SDN_EBPF_OBJECT");
    println!("cargo:rerun-if-env-changed=SDN_BENCH_OBJECT");
    println!("cargo:rerun-if-env-changed=SDN_EBPF_BUILD");

    // A prebuilt filter object, and optionally the benchmark object (without it the
    // benchmark programs are reported missing when a benchmark asks for them).
    if let Some(obj) = env::var_os("SDN_EBPF_OBJECT") {
        if let Err(e) = fs::copy(&obj, &dst) {
            panic!("SDN_EBPF_OBJECT={}: {e}", PathBuf::from(obj).display());
        }
        let copied = match env::var_os("SDN_BENCH_OBJECT") {
            Some(bench) => fs::copy(&bench, &bench_dst).map(drop),
            None => fs::write(&bench_dst, []),
        };
        if let Err(e) = copied {
            panic!("SDN_BENCH_OBJECT: {}: {e}", bench_dst.display());
        }
        return;
    }
    let mode = env::var("SDN_EBPF_BUILD").unwrap_or_default();
    if mode == "skip" || (mode != "require" && !toolchain_present()) {
        println!(
            "cargo:warning=building sdn-loader without the XDP program (no BPF toolchain; run scripts/setup.sh)"
        );
        for to in [&dst, &bench_dst] {
            if let Err(e) = fs::write(to, []) {
                panic!("{}: {e}", to.display());
            }
        }
        return;
    }

    let target_dir = root.join("target").join("ebpf");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut path = env::var_os("PATH").unwrap_or_default();
    let mut paths: Vec<PathBuf> = env::split_paths(&path).collect();
    paths.push(home_cargo_bin());
    if let Ok(joined) = env::join_paths(paths) {
        path = joined;
    }
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root.join("sdn-ebpf"))
        .args([
            "build",
            "--release",
            "--target",
            "bpfel-unknown-none",
            "--target-dir",
        ])
        .arg(&target_dir)
        .env("RUSTC", "/usr/bin/rustc")
        .env("RUSTC_BOOTSTRAP", "aya_ebpf")
        .env("PATH", path);
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTDOCFLAGS",
        "CARGO_MAKEFLAGS",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let status = match cmd.status() {
        Ok(s) => s,
        Err(e) => panic!("running cargo for sdn-ebpf: {e}"),
    };
    assert!(
        status.success(),
        "building the XDP program (sdn-ebpf) failed: {status}"
    );
    for (bin, to) in [("sdn-ebpf", &dst), ("sdn-bench", &bench_dst)] {
        let obj = target_dir.join("bpfel-unknown-none/release").join(bin);
        if let Err(e) = fs::copy(&obj, to) {
            panic!("{}: {e}", obj.display());
        }
    }
}

//! `cargo xtask package`: the Debian package (cargo-deb), and the check `cargo xtask test`
//! runs on it: install with dpkg, run the installed binary, verify the unit with
//! systemd-analyze, purge.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::{root, run};

/// Builds target/package/sdn-loader_VERSION_ARCH.deb; returns its path.
pub(crate) fn package() -> Result<PathBuf> {
    let bin = crate::build()?;
    let out = root().join("target/package");
    let _ = std::fs::remove_dir_all(&out);
    let completions = out.join("completions");
    std::fs::create_dir_all(&completions)?;
    run(Command::new(&bin)
        .args(["man", "--out"])
        .arg(out.join("man")))?;
    for (shell, file) in [
        ("bash", "sdn-loader"),
        ("zsh", "_sdn-loader"),
        ("fish", "sdn-loader.fish"),
    ] {
        let script = Command::new(&bin).args(["completions", shell]).output()?;
        if !script.status.success() {
            bail!("sdn-loader completions {shell} failed");
        }
        std::fs::write(completions.join(file), script.stdout)?;
    }
    run(crate::cargo()
        .args(["deb", "-p", "sdn-loader", "--no-build", "--output"])
        .arg(&out))
    .context("cargo deb (cargo install cargo-deb, or run scripts/setup.sh)")?;
    let deb = std::fs::read_dir(&out)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("cargo deb wrote no .deb")?;
    println!("built {}", deb.display());
    Ok(deb)
}

/// Installs `deb`, runs the installed loader, verifies its unit, and purges it again
/// (also when a step fails).
pub(crate) fn check(deb: &Path) -> Result<()> {
    println!("\n== package check: dpkg -i {}", deb.display());
    run(Command::new("dpkg").arg("-i").arg(deb))?;
    let result = installed_works();
    let purged = run(Command::new("dpkg").args(["--purge", "sdn-loader"]));
    result?;
    purged?;
    if Path::new("/usr/bin/sdn-loader").exists() {
        bail!("dpkg --purge left /usr/bin/sdn-loader behind");
    }
    println!("package check: installed, ran, verified and purged");
    Ok(())
}

fn installed_works() -> Result<()> {
    run(Command::new("/usr/bin/sdn-loader").arg("--version"))?;
    run(Command::new("/usr/bin/sdn-loader").arg("probe"))?;
    for f in [
        "/etc/sdn/sdn.toml",
        "/usr/share/man/man1/sdn-loader-run.1.gz",
        "/usr/share/bash-completion/completions/sdn-loader",
    ] {
        if !Path::new(f).exists() {
            bail!("the package did not install {f}");
        }
    }
    let unit = ["/lib/systemd/system", "/usr/lib/systemd/system"]
        .iter()
        .map(|d| Path::new(d).join("sdn-loader.service"))
        .find(|p| p.exists())
        .context("the package did not install sdn-loader.service")?;
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()?;
    let said = String::from_utf8_lossy(&verify.stderr);
    // Only what concerns our unit counts (a container's own units may be reported too).
    let ours: Vec<&str> = said.lines().filter(|l| l.contains("sdn-loader")).collect();
    if !verify.status.success() || !ours.is_empty() {
        bail!("systemd-analyze verify {}: {}", unit.display(), said.trim());
    }
    println!("systemd-analyze verify {}: clean", unit.display());
    Ok(())
}

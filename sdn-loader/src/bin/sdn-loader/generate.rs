//! `completions` and `man`: shell completions (clap_complete) and manual pages (clap_mangen)
//! generated from the command line's own definition, so they cannot fall out of date.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::CommandFactory as _;

use crate::cli::Cli;

/// Prints the completion script for `shell`.
pub(crate) fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "sdn-loader", &mut std::io::stdout());
    ExitCode::SUCCESS
}

/// Writes `sdn-loader.1` and a page per command (`sdn-loader-db-import.1`, ...) into `out`.
pub(crate) fn man(out: &Path) -> Result<ExitCode> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut cmd = Cli::command();
    // Propagates the global options (`--config`, the db group's `--db`, ...) into every
    // command, so each page lists them.
    cmd.build();
    let mut written = 0;
    page(&cmd, "sdn-loader", out, &mut written)?;
    println!("wrote {written} manual pages to {}", out.display());
    Ok(ExitCode::SUCCESS)
}

/// Writes the page of `cmd` as `name.1`, then its subcommands' as `name-sub.1`.
fn page(cmd: &clap::Command, name: &str, out: &Path, written: &mut usize) -> Result<()> {
    // The page's title is the whole command line (`sdn-loader-db-import`), as git does.
    let titled = cmd
        .clone()
        .name(name.to_owned())
        .display_name(name.to_owned());
    let path = out.join(format!("{name}.1"));
    let mut file =
        std::fs::File::create(&path).with_context(|| format!("writing {}", path.display()))?;
    clap_mangen::Man::new(titled)
        .render(&mut file)
        .with_context(|| format!("writing {}", path.display()))?;
    *written += 1;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        page(sub, &format!("{name}-{}", sub.get_name()), out, written)?;
    }
    Ok(())
}

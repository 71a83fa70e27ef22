// SPDX-License-Identifier: GPL-2.0

//! `permctl generate --out DIR` (hidden): shell completions and man pages, generated from the
//! clap definitions so that they cannot drift from the command line.
//!
//! Writes `permctl.bash`, `_permctl` (zsh) and `permctl.fish`, and one section-8 man page per
//! command: `permctl.8`, `permctl-decl.8`, `permctl-decl-add.8`, ... `make install` puts them
//! where bash-completion, zsh, fish and man look.

use clap::CommandFactory;
use clap_complete::{generate_to, Shell};
use clap_mangen::Man;
use std::io;
use std::path::{Path, PathBuf};

/// Man page section: permctl is installed in sbin, and changing commands need CAP_NET_ADMIN.
pub const SECTION: &str = "8";

/// The command line, as clap builds it (subcommands named `permctl-decl-add` and so on).
fn command() -> clap::Command {
    let mut cmd = crate::Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// Writes the completions and man pages to `out`; returns the files written.
pub fn write_all(out: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out)?;
    let mut cmd = command();
    let mut files = Vec::new();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        files.push(generate_to(shell, &mut cmd, "permctl", out)?);
    }
    man_pages(&cmd, out, &mut files)?;
    Ok(files)
}

/// One page for `cmd` and one for each of its visible subcommands, recursively.
fn man_pages(cmd: &clap::Command, out: &Path, files: &mut Vec<PathBuf>) -> io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        man_pages(sub, out, files)?;
    }
    let man = Man::new(cmd.clone())
        .section(SECTION)
        .manual("permtcp")
        .source(format!("permtcp {}", env!("CARGO_PKG_VERSION")));
    files.push(man.generate_to(out)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every visible command and subcommand: (page name, its visible subcommands' names).
    fn pages(cmd: &clap::Command, out: &mut Vec<(String, Vec<String>)>) {
        let subs: Vec<&clap::Command> =
            cmd.get_subcommands().filter(|s| !s.is_hide_set()).collect();
        let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_string();
        out.push((
            name,
            subs.iter().map(|s| s.get_name().to_string()).collect(),
        ));
        for s in subs {
            pages(s, out);
        }
    }

    #[test]
    fn completions_and_man_pages_cover_every_subcommand() {
        let dir = std::env::temp_dir().join(format!("permctl-generate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let files = write_all(&dir).unwrap();
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        let mut all = Vec::new();
        pages(&command(), &mut all);
        assert!(all.len() > 10, "{all:?}");
        for (page, subs) in &all {
            let text = read(&format!("{page}.{SECTION}"));
            assert!(text.contains(".TH"), "{page} is a man page");
            for s in subs {
                // roff escapes the hyphen.
                let roff = format!(
                    "{}\\-{}({SECTION})",
                    page.replace('-', "\\-"),
                    s.replace('-', "\\-")
                );
                assert!(text.contains(&roff), "{page}.{SECTION} mentions {roff}");
            }
        }
        let top = read("permctl.8");
        for s in [
            "status",
            "decl",
            "snoop",
            "conns",
            "taken",
            "stats",
            "conn\\-data",
            "takeover",
            "directives",
            "debug",
        ] {
            assert!(top.contains(s), "permctl.8 mentions {s}");
        }
        assert!(
            !top.contains("generate"),
            "the packaging command stays hidden"
        );
        for (file, shell_word) in [
            ("permctl.bash", "complete -F"),
            ("_permctl", "#compdef permctl"),
            ("permctl.fish", "complete -c permctl"),
        ] {
            let text = read(file);
            assert!(text.contains(shell_word), "{file}");
            for s in ["decl", "snoop", "takeover", "conn-data"] {
                assert!(text.contains(s), "{file} completes {s}");
            }
        }
        assert_eq!(files.len(), 3 + all.len());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

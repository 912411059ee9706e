//! The shell completions in `completions/` and the man pages in `docs/` are generated from
//! the clap definitions. This test fails when the committed files are stale.
//!
//! Refresh them with:
//!
//! ```sh
//! UPDATE_GENERATED=1 cargo test -p aks-patch --test generated_files
//! ```

use aks_patch::cli::Cli;
use clap::CommandFactory;
use clap_complete::Shell;
use std::path::{Path, PathBuf};

const BIN: &str = "aks-patch";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every generated file: (path relative to the package root, contents).
fn generated() -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for (shell, file) in [
        (Shell::Bash, "aks-patch.bash"),
        (Shell::Zsh, "_aks-patch"),
        (Shell::Fish, "aks-patch.fish"),
        (Shell::Elvish, "aks-patch.elv"),
        (Shell::PowerShell, "_aks-patch.ps1"),
    ] {
        let mut cmd = Cli::command();
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd, BIN, &mut buf);
        out.push((Path::new("completions").join(file), buf));
    }

    let mut cmd = Cli::command();
    cmd.build();
    out.push((Path::new("docs").join("aks-patch.1"), man(cmd.clone())));
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let name = format!("{BIN}-{}", sub.get_name());
        // clap's names are `&'static str` (no `string` feature): leaking a few bytes in a test is fine.
        let static_name: &'static str = Box::leak(name.clone().into_boxed_str());
        let page = sub
            .clone()
            .name(static_name)
            .bin_name(format!("{BIN} {}", sub.get_name()));
        out.push((Path::new("docs").join(format!("{name}.1")), man(page)));
    }
    out
}

fn man(cmd: clap::Command) -> Vec<u8> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut buf)
        .expect("rendering a man page into memory cannot fail");
    buf
}

#[test]
fn completions_and_man_pages_are_up_to_date() {
    let update = std::env::var_os("UPDATE_GENERATED").is_some_and(|v| !v.is_empty() && v != "0");
    let mut stale = Vec::new();
    for (rel, contents) in generated() {
        let path = root().join(&rel);
        let current = std::fs::read(&path).ok();
        if current.as_deref() == Some(&contents[..]) {
            continue;
        }
        if update {
            std::fs::create_dir_all(path.parent().expect("generated files live in a directory"))
                .unwrap_or_else(|e| panic!("cannot create the directory of {}: {e}", path.display()));
            std::fs::write(&path, &contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            eprintln!("updated {}", rel.display());
        } else {
            stale.push(format!(
                "{} ({})",
                rel.display(),
                if current.is_some() { "differs" } else { "missing" }
            ));
        }
    }
    assert!(
        stale.is_empty(),
        "generated files are stale: {}\nThe clap definitions in src/cli.rs changed. Refresh them with\n  \
         UPDATE_GENERATED=1 cargo test -p aks-patch --test generated_files\nand commit the result.",
        stale.join(", ")
    );
}

#[test]
fn every_subcommand_has_a_man_page() {
    let files: Vec<PathBuf> = generated().into_iter().map(|(p, _)| p).collect();
    for sub in ["scan", "apply", "report"] {
        let p = Path::new("docs").join(format!("aks-patch-{sub}.1"));
        assert!(files.contains(&p), "no man page for {sub}: {files:?}");
    }
    let main = generated()
        .into_iter()
        .find(|(p, _)| p.ends_with("aks-patch.1"))
        .map(|(_, c)| String::from_utf8_lossy(&c).into_owned())
        .expect("main man page");
    assert!(main.contains(".TH aks-patch"), "{}", &main[..200.min(main.len())]);
    assert!(main.contains("scan"));
}

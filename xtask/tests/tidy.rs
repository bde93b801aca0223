//! Tidy checks over the whole source tree, as ordinary tests (the rust-analyzer pattern): every
//! Rust module opens with a `//!` doc, no source file outgrows one sitting, and nothing points at
//! documents outside the repository. (That every crate but `sockopt` forbids `unsafe_code` is
//! checked by `crates/sockopt`'s `every_other_crate_forbids_unsafe`.)

use std::path::{Path, PathBuf};

/// Longest source file, in lines, that still reads in one sitting (house style).
const MAX_LINES: usize = 800;

/// Files over [`MAX_LINES`] that their owners are splitting right now (issue 13); remove an entry
/// as soon as its file is split. The test fails if a listed file is already short enough, so the
/// list cannot go stale.
const TOO_LONG_ALLOWLIST: &[&str] = &[];

/// Directories never scanned: build output, dependencies, fuzz corpora and crash artifacts.
const SKIP_DIRS: &[&str] = &[
    "target",
    ".git",
    "node_modules",
    "corpus",
    "artifacts",
    "coverage",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository root")
}

/// Files under the repository whose names satisfy `keep`, as (path relative to the root, text).
fn files(keep: impl Fn(&Path) -> bool) -> Vec<(String, String)> {
    let root = repo_root();
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable directory") {
            let path = entry.expect("directory entry").path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if path.is_dir() {
                if !SKIP_DIRS.contains(&name.as_ref()) {
                    stack.push(path);
                }
            } else if keep(&path) {
                // Binary files are not text documents; skip what is not UTF-8.
                if let Ok(text) = std::fs::read_to_string(&path) {
                    let rel = path.strip_prefix(&root).unwrap_or(&path);
                    out.push((rel.to_string_lossy().replace('\\', "/"), text));
                }
            }
        }
    }
    out.sort();
    out
}

fn rust_files() -> Vec<(String, String)> {
    let rs = files(|p| p.extension().is_some_and(|e| e == "rs"));
    assert!(
        rs.len() > 50,
        "found only {} Rust files: is the walk broken?",
        rs.len()
    );
    rs
}

#[test]
fn every_module_opens_with_a_doc_comment() {
    let missing: Vec<String> = rust_files()
        .into_iter()
        .filter(|(_, text)| {
            !text
                .lines()
                .find(|l| !l.trim().is_empty())
                .is_some_and(|l| l.trim_start().starts_with("//!"))
        })
        .map(|(path, _)| path)
        .collect();
    assert!(
        missing.is_empty(),
        "these files do not open with a `//!` module doc naming what they are and the spec \
         section they implement:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn no_source_file_is_over_800_lines() {
    let mut too_long = Vec::new();
    let mut stale = Vec::new();
    for (path, text) in rust_files() {
        let lines = text.lines().count();
        let allowed = TOO_LONG_ALLOWLIST.contains(&path.as_str());
        if lines > MAX_LINES && !allowed {
            too_long.push(format!("{path}: {lines} lines"));
        }
        if lines <= MAX_LINES && allowed {
            stale.push(path);
        }
    }
    assert!(
        too_long.is_empty(),
        "split these files by concern (at most {MAX_LINES} lines):\n  {}",
        too_long.join("\n  ")
    );
    assert!(
        stale.is_empty(),
        "remove from TOO_LONG_ALLOWLIST (now short enough): {stale:?}"
    );
}

#[test]
fn nothing_refers_to_documents_outside_the_repository() {
    // Built from parts so this file does not match itself.
    let outside = [
        ["protocol", "-notes"].concat(),
        ["field", "-2026"].concat(),
        ["field", "-notes"].concat(),
        ["rtmp-play", "-rtmpt-rtmps"].concat(),
        ["../", "shared"].concat(),
        ["/work/", "shared"].concat(),
    ];
    let text_ext = [
        "rs", "md", "toml", "yaml", "yml", "html", "mjs", "js", "json", "vcl", "conf", "sh",
    ];
    let found: Vec<String> = files(|p| {
        p.extension()
            .is_some_and(|e| text_ext.iter().any(|t| e == *t))
            || p.file_name().is_some_and(|n| n == "Dockerfile")
    })
    .into_iter()
    .filter(|(path, _)| !path.ends_with("package-lock.json"))
    .flat_map(|(path, text)| {
        text.lines()
            .enumerate()
            .filter(|(_, l)| outside.iter().any(|o| l.contains(o.as_str())))
            .map(|(i, l)| format!("{path}:{}: {}", i + 1, l.trim()))
            .collect::<Vec<_>>()
    })
    .collect();
    assert!(
        found.is_empty(),
        "cite the specification sections (e.g. \"RTMP §5.3.1\", \"ISO/IEC 13818-1 §2.4.4.3\", \
         \"RFC 8216bis §4.4.4.9\") or the peer's source file, never notes outside the \
         repository:\n  {}",
        found.join("\n  ")
    );
}

//! The tool gate: is a real peer available, and if not, fail (CI) or skip visibly (locally).
//!
//! A skip is printed as `SKIP: <test>: <reason>` and, when the environment variable
//! [`SKIP_LOG_ENV`] names a file, appended to it as one `<test>\t<reason>` line, so the runner
//! (`cargo xtask test`) can count and list every test that did not really run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Environment variable naming the file skips are appended to (set by `cargo xtask test`).
pub const SKIP_LOG_ENV: &str = "XTASK_TEST_SKIP_LOG";

/// True when running in CI (`CI=true` or `CI=1`, any case): a missing tool is then a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// The name of the running test: libtest names each test's thread after it; the test binary's
/// name (without cargo's hash suffix) is prefixed so the list says where the test lives.
fn test_name() -> String {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|s| match s.rsplit_once('-') {
            Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_owned(),
            _ => s,
        })
        .unwrap_or_default();
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("?");
    format!("{binary}::{test}")
}

/// Records that the running test is skipped for `reason`: panics in CI, otherwise prints
/// `SKIP:` and appends to the skip log. The caller returns right after.
pub fn skip(reason: &str) {
    let test = test_name();
    if in_ci() {
        panic!("{test}: {reason} (CI is set, so this is a failure, not a skip; run `cargo xtask deps`)");
    }
    eprintln!("SKIP: {test}: {reason}; run `cargo xtask deps`");
    if let Some(path) = std::env::var_os(SKIP_LOG_ENV) {
        let line = format!("{test}\t{}\n", reason.replace(['\n', '\t'], " "));
        // One write of one short line to an O_APPEND file: lines of parallel tests do not mix.
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            panic!(
                "cannot record a skip in {}: {e}",
                Path::new(&path).display()
            );
        }
    }
}

/// The generic gate: `available`, or a recorded skip (a failure in CI) naming `what` is missing.
pub fn require(available: bool, what: &str) -> bool {
    if !available {
        skip(&format!("{what} is not available"));
    }
    available
}

/// True if `tool` is an executable on `PATH` (or in `/usr/sbin`, where Debian puts varnishd).
pub fn require_tool(tool: &str) -> bool {
    require(find_on_path(tool).is_some(), tool)
}

/// True if `tool probe...` runs and exits 0 (e.g. `gst-inspect-1.0 rtmp2sink` for a plugin).
pub fn require_command(tool: &str, probe: &[&str]) -> bool {
    let ok = Command::new(tool)
        .args(probe)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    require(ok, &format!("`{tool} {}`", probe.join(" ")))
}

fn find_on_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// The static FFmpeg 9 (Enhanced RTMP v2 publisher): `$FFMPEG9` (set by `cargo xtask test`),
/// else the binary `imageio_ffmpeg` reports. `None` (after a recorded skip, or a failure in CI)
/// when neither exists.
pub fn ffmpeg9() -> Option<PathBuf> {
    let found = find_ffmpeg9();
    require(
        found.is_some(),
        "FFmpeg 9 ($FFMPEG9 or python3 imageio_ffmpeg)",
    );
    found
}

/// Where FFmpeg 9 is (`$FFMPEG9`, else `imageio_ffmpeg`), without the gate: for tools (xtask)
/// that report a missing copy themselves.
pub fn find_ffmpeg9() -> Option<PathBuf> {
    let from_env = std::env::var_os("FFMPEG9").map(PathBuf::from);
    from_env.filter(|p| p.is_file()).or_else(|| {
        let out = Command::new("python3")
            .args([
                "-c",
                "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())",
            ])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let p = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
        (out.status.success() && p.is_file()).then_some(p)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_present_tool_passes_the_gate() {
        assert!(find_on_path("sh").is_some());
        assert!(find_on_path("no-such-tool-sluice").is_none());
    }

    /// A skip lands in the log with the test's name (run in a child process so the environment
    /// of the other tests is untouched).
    #[test]
    fn skips_are_recorded_under_the_test_name() {
        if std::env::var_os("SLUICE_GATE_CHILD").is_some() {
            assert!(!require_tool("no-such-tool-sluice"));
            return;
        }
        let log = std::env::temp_dir().join(format!("sluice-skips-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&log);
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "gate::tests::skips_are_recorded_under_the_test_name",
            ])
            .env("SLUICE_GATE_CHILD", "1")
            .env(SKIP_LOG_ENV, &log)
            .env_remove("CI")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = std::fs::read_to_string(&log).unwrap();
        let _ = std::fs::remove_file(&log);
        assert!(
            text.starts_with("test_support::gate::tests::skips_are_recorded_under_the_test_name\t")
                && text.contains("no-such-tool-sluice is not available"),
            "{text:?}"
        );

        // In CI the same test fails instead.
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "gate::tests::skips_are_recorded_under_the_test_name",
            ])
            .env("SLUICE_GATE_CHILD", "1")
            .env("CI", "1")
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "CI=1 must turn a skip into a failure"
        );
    }
}

//! Layering, validation and the documented-defaults contract of the configuration.

use super::layers::known_settings;
use super::*;

/// A directory under the temp dir, removed when dropped (also when the test fails).
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("sluice-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Tidy check: every setting has a row in docs/configuration.md under its section, with
/// its default value.
#[test]
fn every_setting_is_documented_with_its_default() {
    let doc = include_str!("../../../../docs/configuration.md");
    let defaults = toml::Value::try_from(Config::default()).unwrap();
    for path in known_settings(&defaults) {
        let (section, key) = path.split_once('.').unwrap();
        let start = doc
            .find(&format!("## `[{section}]`"))
            .unwrap_or_else(|| panic!("docs/configuration.md has no [{section}] section"));
        let body = &doc[start..];
        let body = &body[..body[3..].find("\n## ").map_or(body.len(), |i| i + 3)];
        let row = body
            .lines()
            .find(|l| l.starts_with(&format!("| `{key}` |")))
            .unwrap_or_else(|| panic!("docs/configuration.md does not document {path}"));
        let default = defaults[section][key].to_string();
        let default = default.trim_matches('"');
        assert!(
            row.contains(default),
            "docs/configuration.md: {path} default should be {default}: {row}"
        );
    }
}

#[test]
fn defaults_are_the_documented_contract() {
    let c = Config::load(&Cli::default(), env(&[])).unwrap();
    assert_eq!(c.rtmp.listen.to_string(), "0.0.0.0:1935");
    assert_eq!(c.http.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(c.hls.target_duration_ms, 2000);
    assert_eq!(c.hls.window_segments, 6);
    assert_eq!(c.hls.grace_period_ms, 20_000);
}

/// One source of truth per default: the binary's defaults, printed by `--print-config` and
/// read back, map to exactly the libraries' `Default`s (compared field by field through
/// `Debug`, so a field added to a library config is covered too).
#[test]
fn printed_defaults_are_the_library_defaults() {
    let printed = Config::default().to_toml_masked();
    let cfg: Config = toml::from_str(&printed).unwrap();
    assert_eq!(cfg, Config::default());
    assert_eq!(
        format!("{:?}", crate::pipeline::ingest_config(&cfg)),
        format!("{:?}", rtmp_ingest::IngestConfig::default())
    );
    assert_eq!(
        format!("{:?}", crate::pipeline::edge_config(&cfg)),
        format!("{:?}", hls_edge::EdgeConfig::default())
    );
    assert_eq!(
        format!("{:?}", crate::pipeline::remux_config(&cfg, None)),
        format!("{:?}", remux::RemuxConfig::default())
    );
}

#[test]
fn precedence_file_then_env_then_flags() {
    let dir = TempDir::new("cfg");
    let file = dir.0.join("c.toml");
    std::fs::write(&file, "[hls]\ntarget_duration_ms = 4000\nwindow_segments = 8\n[rtmp]\nlisten = \"127.0.0.1:1000\"\n").unwrap();
    let cli = Cli {
        config: Some(file),
        rtmp: Some("127.0.0.1:3000".parse().unwrap()),
        set: vec!["hls.grace_period_ms=5000".into()],
        ..Default::default()
    };
    let c = Config::load(
        &cli,
        env(&[
            ("SLUICE_HLS_WINDOW_SEGMENTS", "10"),
            ("SLUICE_PUBLISH_KEYS", "a,b"),
            ("PATH", "/bin"),
        ]),
    )
    .unwrap();
    assert_eq!(c.hls.target_duration_ms, 4000); // file
    assert_eq!(c.hls.window_segments, 10); // env over file
    assert_eq!(c.rtmp.listen.to_string(), "127.0.0.1:3000"); // flag over file
    assert_eq!(c.hls.grace_period_ms, 5000);
    assert_eq!(c.auth.publish_keys, vec!["a", "b"]);
    assert!(!c.to_toml_masked().contains("\"a\""));
}

#[test]
fn unknown_and_invalid_settings_are_named() {
    let dir = TempDir::new("cfg2");
    let file = dir.0.join("c.toml");
    std::fs::write(&file, "[hls]\ntarget_durration_ms = 4000\n").unwrap();
    let cli = Cli {
        config: Some(file.clone()),
        ..Default::default()
    };
    let e = format!("{:#}", Config::load(&cli, env(&[])).unwrap_err());
    assert!(e.contains("hls.target_durration_ms"), "{e}");

    let e = format!(
        "{:#}",
        Config::load(&Cli::default(), env(&[("SLUICE_HLS_BOGUS", "1")])).unwrap_err()
    );
    assert!(e.contains("SLUICE_HLS_BOGUS"), "{e}");

    let e = format!(
        "{:#}",
        Config::load(
            &Cli::default(),
            env(&[("SLUICE_HLS_WINDOW_SEGMENTS", "many")])
        )
        .unwrap_err()
    );
    assert!(e.contains("hls.window_segments"), "{e}");

    let cli = Cli {
        set: vec!["hls.window_segments=1".into()],
        ..Default::default()
    };
    let e = format!("{:#}", Config::load(&cli, env(&[])).unwrap_err());
    assert!(e.contains("hls.window_segments"), "{e}");

    std::fs::write(&file, "[hls]\ntarget_duration_ms = \"long\"\n").unwrap();
    let cli = Cli {
        config: Some(file),
        ..Default::default()
    };
    let e = format!("{:#}", Config::load(&cli, env(&[])).unwrap_err());
    assert!(e.contains("target_duration_ms"), "{e}");
}

#[test]
fn per_app_dvr_windows_from_file_and_flag() {
    let dir = TempDir::new("cfg-dvr-app");
    let file = dir.0.join("sluice.toml");
    std::fs::write(
        &file,
        "[hls]\ndvr_window_s = 60\n[hls.dvr_window_s_by_app]\nlive = 7200\nnews = 0\n",
    )
    .unwrap();
    let cli = Cli {
        config: Some(file.clone()),
        ..Cli::default()
    };
    let c = Config::load(&cli, env(&[])).unwrap();
    assert_eq!(c.hls.dvr_window_s_for("live"), 7200);
    assert_eq!(c.hls.dvr_window_s_for("news"), 0);
    assert_eq!(c.hls.dvr_window_s_for("other"), 60);
    assert!(c.hls.dvr_on());
    // A flag replaces the whole table; hls.dvr_window_s stays as it is.
    let cli = Cli {
        config: Some(file),
        set: vec![
            "hls.dvr_window_s_by_app={events = 300}".into(),
            "hls.dvr_window_s=0".into(),
        ],
        ..Cli::default()
    };
    let c = Config::load(&cli, env(&[])).unwrap();
    assert_eq!(c.hls.dvr_window_s_for("events"), 300);
    assert_eq!(c.hls.dvr_window_s_for("live"), 0);
    assert!(c.hls.dvr_on());
    let cli = Cli {
        set: vec!["hls.dvr_window_s_by_app={live = 999999}".into()],
        ..Cli::default()
    };
    let e = Config::load(&cli, env(&[])).unwrap_err().to_string();
    assert!(e.contains("hls.dvr_window_s_by_app.live"), "{e}");
    // Sections still refuse unknown keys.
    let cli = Cli {
        set: vec!["hls.dvr_window_by_app=1".into()],
        ..Cli::default()
    };
    assert!(Config::load(&cli, env(&[])).is_err());
    assert!(!Config::default().hls.dvr_on());
}

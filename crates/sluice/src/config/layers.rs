//! Merging configuration layers as TOML values (file, environment, `--set` flags).

use anyhow::{bail, Context, Result};

pub(super) fn known_settings(v: &toml::Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(t) = v.as_table() {
        for (section, inner) in t {
            if let Some(inner) = inner.as_table() {
                for key in inner.keys() {
                    out.push(format!("{section}.{key}"));
                }
            }
        }
    }
    out
}

pub(super) fn merge(base: &mut toml::Value, over: toml::Value, prefix: &str) -> Result<()> {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match b.get_mut(&k) {
                    // A section merges key by key; a table-valued setting inside a section
                    // (a map such as `hls.dvr_window_s_by_app`) is replaced as a whole.
                    Some(slot) if slot.is_table() && prefix.is_empty() => merge(slot, v, &path)?,
                    Some(slot) => *slot = v,
                    None => {
                        bail!("unknown setting {path} in config file (see docs/configuration.md)")
                    }
                }
            }
            Ok(())
        }
        (b, o) => {
            *b = o;
            Ok(())
        }
    }
}

/// Sets `section.key` from a string, interpreting it with the type the default has.
pub(super) fn set_path(root: &mut toml::Value, path: &str, raw: &str) -> Result<()> {
    let (section, key) = path.split_once('.').context("expected SECTION.KEY")?;
    let slot = root
        .get_mut(section)
        .and_then(|s| s.get_mut(key))
        .with_context(|| format!("unknown setting {path}"))?;
    let value = match slot {
        toml::Value::String(_) => toml::Value::String(raw.to_string()),
        toml::Value::Array(_) => {
            if raw.trim_start().starts_with('[') {
                parse_toml_value(raw).with_context(|| format!("{path}: not a TOML array"))?
            } else {
                toml::Value::Array(
                    raw.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| toml::Value::String(s.to_string()))
                        .collect(),
                )
            }
        }
        _ => parse_toml_value(raw).with_context(|| format!("invalid value for {path}: {raw:?}"))?,
    };
    *slot = value;
    Ok(())
}

pub(super) fn parse_toml_value(raw: &str) -> Result<toml::Value> {
    let t: toml::Table = toml::from_str(&format!("v = {raw}"))?;
    t.get("v").cloned().context("no value")
}

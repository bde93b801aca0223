//! `cargo xtask bench`: Sluice side by side with nginx-rtmp.
use std::path::Path;

use anyhow::{bail, Result};

pub fn run(_root: &Path, _full: bool) -> Result<()> {
    bail!("bench: not implemented yet")
}

//! `cargo xtask soak`: reconnecting publishers, viewers and hostile connections together.
use std::path::Path;

use anyhow::{bail, Result};

pub fn run(_root: &Path, _minutes: u64) -> Result<()> {
    bail!("soak: not implemented yet")
}

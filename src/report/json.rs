//! The JSON export: the whole [`Report`], pretty-printed, to a file.

use std::path::Path;

use anyhow::Context;

use super::Report;

/// Writes `report` to `path` (parent directories must exist).
pub fn write(report: &Report, path: &Path) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(report).context("serializing the report")?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

//! The JSON export: the whole [`Report`], pretty-printed, to a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::Report;

/// Checks, before any run, that `path` can be written: its folder exists and takes a file.
/// Nothing is left behind.
pub fn check_writable(path: &Path, flag: &str) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        anyhow::bail!("{flag}: the folder {} does not exist", dir.display());
    }
    if path.is_dir() {
        anyhow::bail!("{flag}: {} is a folder", path.display());
    }
    let probe = temp_path(path);
    std::fs::File::create(&probe)
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| anyhow::anyhow!("{flag}: cannot write in {}: {e}", dir.display()))
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Writes `report` to `path` whole or not at all (a temporary file, then a rename).
pub fn write(report: &Report, path: &Path) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(report).context("serializing the report")?;
    let tmp = temp_path(path);
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.write_all(b"\n")))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.with_context(|| format!("writing {}", path.display()))
}

//! `a2a-bench report RESULTS.json --html OUT`: renders any saved report (benchmark or compare)
//! again, so results kept from earlier runs can be looked at and shared.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

/// `a2a-bench report`.
#[derive(Args, Debug)]
pub struct ReportCmd {
    /// A report written by `a2a-bench` or `a2a-bench compare` (`--output`).
    #[arg(value_name = "RESULTS.json")]
    input: PathBuf,
    /// Write the self-contained HTML page here.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Write one CSV row per run here.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
}

pub(super) fn run(cmd: ReportCmd) -> anyhow::Result<()> {
    if cmd.html.is_none() && cmd.csv.is_none() {
        anyhow::bail!("report: say what to write: --html FILE and/or --csv FILE");
    }
    let text = std::fs::read_to_string(&cmd.input)
        .with_context(|| format!("cannot read {}", cmd.input.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{} is not JSON: {e}", cmd.input.display()))?;
    let is_compare = value["reports"].is_object();
    if !is_compare && !value["results"].is_array() {
        anyhow::bail!("{} is not an a2a-bench report (no results)", cmd.input.display());
    }
    if let Some(path) = &cmd.html {
        crate::report::html::write(&value, path)?;
        outln!("HTML written to {}", path.display());
    }
    if let Some(path) = &cmd.csv {
        crate::report::csv::write(&value, path)?;
        outln!("CSV written to {}", path.display());
    }
    Ok(())
}

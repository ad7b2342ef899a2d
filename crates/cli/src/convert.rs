//! `tinyq convert`: a float model (.onnx or FP32 .tflite) written out as ONNX through the IR.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;

/// `tinyq convert` flags.
#[derive(Args)]
pub struct ConvertArgs {
    /// The float model (.onnx or FP32 .tflite).
    pub model: PathBuf,
    /// Output .onnx file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// ONNX opset to write (14 to 21).
    #[arg(long, default_value_t = tinyq::ONNX_DEFAULT_OPSET)]
    pub opset: i64,
    #[arg(long)]
    pub json: bool,
}

pub fn convert(a: &ConvertArgs) -> Result<()> {
    if same_file(&a.output, &a.model) {
        bail!("-o {}: refusing to overwrite an input file", a.output.display());
    }
    if a.output.extension().and_then(|e| e.to_str()) != Some("onnx") {
        bail!("-o {}: the output must be an .onnx file", a.output.display());
    }
    let (lo, hi) = tinyq::ONNX_OPSET_RANGE;
    if !(lo..=hi).contains(&a.opset) {
        bail!("--opset {}: tinyq writes opsets {lo} to {hi}", a.opset);
    }
    let out = crate::output::Staged::file(&a.output, "-o")?;
    let model = crate::commands::load(&a.model)?;
    let w = tinyq::save_onnx_opset(&model, out.path(), a.opset).with_context(|| out.describe())?;
    out.commit()?;
    if a.json {
        println!(
            "{}",
            json!({ "model": a.model.display().to_string(), "output": a.output.display().to_string(), "opset": w.opset, "nodes": w.nodes, "bytes": w.bytes })
        );
    } else {
        println!(
            "{} → {} (ONNX opset {}, {} nodes, {} bytes)",
            a.model.display(),
            a.output.display(),
            w.opset,
            w.nodes,
            w.bytes
        );
    }
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

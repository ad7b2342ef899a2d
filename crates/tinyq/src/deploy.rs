//! Getting a quantized model onto a board: the footprint report (flash, the TFLM arena, per-layer
//! figures), the fit against a board or budgets, and the C sources for TFLM.

use std::path::Path;

use serde::Serialize;
use tinyq_arena::{plan_arena_with, ArenaPlan, Kernels, PlanConfig, PointerWidth, TflmBuild};
use tinyq_export_c::Board;

use crate::error::InFile;
use crate::{summary::node_macs, TinyqError};

#[derive(Clone, Debug, Serialize)]
pub struct LayerFootprint {
    pub name: String,
    pub op: &'static str,
    pub output_shape: Vec<usize>,
    pub macs: u64,
    pub weight_bytes: usize,
    pub activation_bytes: usize,
    /// Arena head bytes alive while this layer runs.
    pub live_bytes: usize,
    /// The arena buffer TFLM's reference kernels unpack this layer's int4 weights into (one
    /// byte per weight, requested at Prepare; CMSIS-NN reads them packed): 0 otherwise.
    pub unpack_scratch_bytes: usize,
}

/// What int4 weights change in a file's footprint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Int4Footprint {
    /// Layers with int4 weights.
    pub layers: usize,
    /// Their weights' bytes in the file (two per byte).
    pub weight_bytes: u64,
    /// Flash those weights would take more as int8.
    pub flash_saved_bytes: u64,
    /// With reference kernels, the largest unpack buffer and all of them (each lives only while
    /// its layer is prepared and runs, so the greedy planner may overlap them; `arena_bytes`
    /// includes them); 0 with CMSIS-NN.
    pub unpack_scratch_largest_bytes: usize,
    pub unpack_scratch_total_bytes: usize,
    /// With CMSIS-NN kernels: the int4 layers they compute differently from TFLM's reference
    /// kernels, each as `layer: why` ([`tinyq_ir::Op::int4_caveat`]); `tinyq quantize` keeps such
    /// layers int8 unless told the file is for reference kernels.
    pub caveats: Vec<String>,
}

/// The int4 weights of `g`'s layers (`None` when there are none).
fn int4_footprint(g: &tinyq_ir::Graph, layers: &[LayerFootprint], kernels: Kernels) -> Option<Int4Footprint> {
    use tinyq_ir::DType::I4;
    let int4_nodes: Vec<&tinyq_ir::Node> = g
        .nodes
        .iter()
        .filter(|n| n.op.int4_weights_input().and_then(|k| n.inputs.get(k)).is_some_and(|&t| g.tensor(t).dtype == I4))
        .collect();
    if int4_nodes.is_empty() {
        return None;
    }
    let int4: Vec<&tinyq_ir::Tensor> =
        int4_nodes.iter().filter_map(|n| n.op.int4_weights_input().map(|k| g.tensor(n.inputs[k]))).collect();
    let caveats = int4_nodes
        .iter()
        .filter(|_| kernels == Kernels::CmsisNn)
        .filter_map(|n| crate::quantize::int4_caveat(g, n).map(|why| format!("{}: {why}", n.name)))
        .collect();
    let packed: usize = int4.iter().map(|t| t.size_bytes()).sum();
    let unpacked: usize = int4.iter().map(|t| t.numel()).sum();
    Some(Int4Footprint {
        layers: int4.len(),
        weight_bytes: packed as u64,
        flash_saved_bytes: (unpacked - packed) as u64,
        unpack_scratch_largest_bytes: layers.iter().map(|l| l.unpack_scratch_bytes).max().unwrap_or(0),
        unpack_scratch_total_bytes: layers.iter().map(|l| l.unpack_scratch_bytes).sum(),
        caveats,
    })
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub model: String,
    pub pointer_width: usize,
    /// The TFLM kernels the arena is predicted for (`reference` or `cmsis-nn`).
    pub kernels: &'static str,
    /// The TFLM build the arena is predicted for: `python` (the tflite-micro package) or
    /// `firmware`.
    pub tflm_build: &'static str,
    /// The `.tflite` file: what goes to flash.
    pub flash_bytes: u64,
    /// What those bytes hold: weights, biases, quantization parameters, names, structure.
    pub flash: tinyq_tflite::FlashBreakdown,
    /// The smallest arena TFLM runs the model with.
    pub arena_bytes: usize,
    pub arena_head_bytes: usize,
    pub arena_tail_bytes: usize,
    pub parameters: usize,
    pub macs: u64,
    pub layers: Vec<LayerFootprint>,
    /// Int4 weights: flash saved, and the unpack buffers reference kernels need in the arena.
    pub int4: Option<Int4Footprint>,
    /// Figures measured by an earlier `tinyq verify` of this very file with these kernels.
    pub measured: Option<crate::verify::VerifyReport>,
}

/// Footprint of a `.tflite` model as TFLM would load it on a target with `pointer_width` bits
/// running `kernels`.
pub fn report(path: &Path, pointer_width: usize, kernels: Kernels) -> Result<Report, TinyqError> {
    report_for(path, pointer_width, kernels, None)
}

/// [`report`] for a given build of TFLM (see [`report_bytes_for`]).
pub fn report_for(
    path: &Path,
    pointer_width: usize,
    kernels: Kernels,
    build: Option<TflmBuild>,
) -> Result<Report, TinyqError> {
    report_bytes_for(&read_tflite_bytes(path)?, path, pointer_width, kernels, build)
}

/// The bytes of the `.tflite` file `path` (another extension is refused).
fn read_tflite_bytes(path: &Path) -> Result<Vec<u8>, TinyqError> {
    if path.extension().and_then(|e| e.to_str()) != Some("tflite") {
        return Err(TinyqError::Model(format!(
            "{}: the report is about a .tflite file (run `tinyq quantize` first)",
            path.display()
        )));
    }
    std::fs::read(path).in_file(path)
}

/// [`report`] of a `.tflite` model's bytes; `path` names it in messages and in the report.
pub fn report_bytes(bytes: &[u8], path: &Path, pointer_width: usize, kernels: Kernels) -> Result<Report, TinyqError> {
    report_bytes_for(bytes, path, pointer_width, kernels, None)
}

/// [`report_bytes`] for a given build of TFLM (`None`: the default for the pointer width,
/// [`TflmBuild::default_for`]).
pub fn report_bytes_for(
    bytes: &[u8],
    path: &Path,
    pointer_width: usize,
    kernels: Kernels,
    build: Option<TflmBuild>,
) -> Result<Report, TinyqError> {
    let width = match pointer_width {
        32 => PointerWidth::Bits32,
        64 => PointerWidth::Bits64,
        other => return Err(TinyqError::Input(format!("--pointer-width {other}: expected 32 or 64"))),
    };
    let build = build.unwrap_or(TflmBuild::default_for(width));
    if width == PointerWidth::Bits32 && build == TflmBuild::Python {
        return Err(TinyqError::Input(
            "--tflm-build python is the 64-bit tflite-micro package (--pointer-width 64)".into(),
        ));
    }
    if width == PointerWidth::Bits64 && kernels == Kernels::CmsisNn {
        return Err(TinyqError::Input("--kernels cmsis-nn is for 32-bit Cortex-M targets (--pointer-width 32)".into()));
    }
    // The reader's checks come first: the arena planner and the breakdown see only files every
    // other command would accept too.
    let g = tinyq_tflite::read_tflite(bytes).in_file(path)?;
    crate::model::check_runnable(&g, path)?;
    let config = PlanConfig::for_build(width, build).with_kernels(kernels);
    let plan: ArenaPlan = plan_arena_with(bytes, &config).in_file(path)?;
    let measured = (width == PointerWidth::Bits32).then(|| crate::verify::load_measured(bytes, kernels)).flatten();
    let flash = tinyq_tflite::flash_breakdown(bytes).in_file(path)?;
    let layers = g
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| LayerFootprint {
            name: n.name.clone(),
            op: n.op.name(),
            output_shape: g.tensor(n.outputs[0]).shape.clone(),
            macs: node_macs(&g, n),
            weight_bytes: n
                .inputs
                .iter()
                .map(|&t| g.tensor(t))
                .filter(|t| t.is_constant())
                .map(|t| t.size_bytes())
                .sum(),
            activation_bytes: g.tensor(n.outputs[0]).size_bytes(),
            live_bytes: plan.per_step_live_bytes.get(i + 1).copied().unwrap_or(0),
            unpack_scratch_bytes: match kernels {
                Kernels::Reference => {
                    n.op.int4_weights_input()
                        .and_then(|k| n.inputs.get(k))
                        .map(|&t| g.tensor(t))
                        .filter(|t| t.dtype == tinyq_ir::DType::I4)
                        .map_or(0, |t| t.numel())
                }
                Kernels::CmsisNn => 0,
            },
        })
        .collect::<Vec<_>>();
    let int4 = int4_footprint(&g, &layers, kernels);
    let (parameters, _) = g.parameter_count();
    Ok(Report {
        model: path.display().to_string(),
        pointer_width,
        kernels: kernels.name(),
        tflm_build: build.name(),
        flash_bytes: bytes.len() as u64,
        flash,
        arena_bytes: plan.total_bytes,
        arena_head_bytes: plan.head_bytes,
        arena_tail_bytes: plan.tail_bytes,
        parameters,
        macs: g.nodes.iter().map(|n| node_macs(&g, n)).sum(),
        layers,
        int4,
        measured,
    })
}

/// Limits a model must fit: a board's memories and/or explicit budgets.
#[derive(Clone, Debug, Default)]
pub struct Limits {
    pub board: Option<&'static Board>,
    pub ram_bytes: Option<u64>,
    pub flash_bytes: Option<u64>,
}

/// One way the model does not fit, by how much.
#[derive(Clone, Debug, Serialize)]
pub struct Overrun {
    pub what: String,
    pub needed: u64,
    pub available: u64,
}

/// Every limit the report exceeds (empty when it fits). The arena must fit the SRAM and the model
/// the flash; the runtime's own code and stack come on top and are not counted.
pub fn check_fit(r: &Report, limits: &Limits) -> Vec<Overrun> {
    let mut over = Vec::new();
    let mut check = |what: String, needed: u64, available: u64| {
        if needed > available {
            over.push(Overrun { what, needed, available });
        }
    };
    if let Some(b) = limits.board {
        check(format!("{} SRAM", b.name), r.arena_bytes as u64, b.sram_bytes);
        check(format!("{} flash", b.name), r.flash_bytes, b.flash_bytes);
    }
    if let Some(ram) = limits.ram_bytes {
        check("RAM budget".into(), r.arena_bytes as u64, ram);
    }
    if let Some(flash) = limits.flash_bytes {
        check("flash budget".into(), r.flash_bytes, flash);
    }
    over
}

/// Parses a size such as `64KiB`, `1.5MiB`, `256kB`, `2MB` or `4096`.
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num.parse().ok()?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "kb" => 1000.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "mb" => 1e6,
        _ => return None,
    };
    (v >= 0.0).then(|| (v * mult).round() as u64)
}

/// Writes the C sources for TFLM (model data, op resolver, settings with the arena size, examples)
/// into `dir`; returns the files written.
pub fn export_c(
    model: &Path,
    dir: &Path,
    name: Option<&str>,
    pointer_width: usize,
    kernels: Kernels,
) -> Result<Vec<std::path::PathBuf>, TinyqError> {
    export_c_bytes(&read_tflite_bytes(model)?, model, dir, name, pointer_width, kernels)
}

/// [`export_c`] of a `.tflite` model's bytes; `model` names it in messages and, without `name`,
/// gives the C name.
pub fn export_c_bytes(
    bytes: &[u8],
    model: &Path,
    dir: &Path,
    name: Option<&str>,
    pointer_width: usize,
    kernels: Kernels,
) -> Result<Vec<std::path::PathBuf>, TinyqError> {
    let ctx = |e: String| TinyqError::Model(format!("{}: {e}", model.display()));
    // The exported program links TFLM in: a firmware build at either pointer width.
    let r = report_bytes_for(bytes, model, pointer_width, kernels, Some(TflmBuild::Firmware))?;
    let name = match name {
        Some(n) => n.to_string(),
        None => tinyq_export_c::default_name(model)
            .ok_or_else(|| ctx("cannot derive a C name from the file name; pass --name".into()))?,
    };
    let files = tinyq_export_c::generate(bytes, &name, r.arena_bytes).in_file(model)?;
    std::fs::create_dir_all(dir).in_file(dir)?;
    let written = tinyq_export_c::write_dir(dir, &files).in_file(dir)?;
    Ok(written.written)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_size("64KiB"), Some(65536));
        assert_eq!(parse_size("1.5MiB"), Some(1572864));
        assert_eq!(parse_size("256kB"), Some(256000));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("12 parsecs"), None);
        assert_eq!(parse_size("KiB"), None);
    }
}

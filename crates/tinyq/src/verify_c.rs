//! `tinyq verify --no-interpreter`: the interpreter-free C of a model built for the Cortex-M4
//! (`tinyq-verify`'s C runner, no TFLM) and run on QEMU; outputs compared with the integer engine.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::inputs::BoundInputs;
use crate::verify::{compare, sample_bytes, target_outputs, OutputComparison};
use crate::{Model, TinyqError};

/// What the interpreter-free build measured on the Cortex-M4.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CVerifyReport {
    pub model: String,
    pub target: String,
    pub kernels: String,
    pub outputs: Option<OutputComparison>,
    /// Flash of the whole program (code, constants, harness) in bytes.
    pub flash_bytes: u64,
    /// .data + .bss without the harness's sample buffer: the arena, the runner's input and output
    /// arrays, the C library's statics.
    pub static_ram_bytes: u64,
    /// The planned arena (inside `static_ram_bytes`).
    pub arena_bytes: usize,
    /// Peak stack of the whole program (painted stack), as the TFLM runner measures it.
    pub stack_bytes: u64,
    /// Peak stack during an inference.
    pub invoke_stack_bytes: u64,
    /// static RAM + peak stack.
    pub ram_bytes: u64,
    /// The exported `main.c`, unchanged, ran to completion on the target and printed its line.
    pub main_c_ran: bool,
    pub instructions_per_inference: Option<f64>,
    pub instructions_per_inference_min: Option<u64>,
    pub instructions_per_inference_max: Option<u64>,
    pub build_seconds: f64,
    pub run_seconds: f64,
}

/// Where `verify --no-interpreter` keeps its figures for `report --no-interpreter`, keyed by the
/// model's contents and the generator's version.
pub fn measured_c_path(model_bytes: &[u8], kernels: &str) -> PathBuf {
    let h = tinyq_verify::fnv1a(model_bytes, tinyq_verify::FNV_START);
    let h = tinyq_verify::fnv1a(kernels.as_bytes(), h);
    let v = tinyq_verify::fnv1a(env!("CARGO_PKG_VERSION").as_bytes(), h);
    tinyq_verify::default_cache_root().join("measured").join(format!("{v:016x}-no-interpreter.json"))
}

/// Saves `r` for [`load_measured_c`].
pub fn save_measured_c(model_bytes: &[u8], r: &CVerifyReport) -> Result<PathBuf, TinyqError> {
    crate::verify::save_json(measured_c_path(model_bytes, &r.kernels), r)
}

/// The figures an earlier `verify --no-interpreter` saved for this model, if any.
pub fn load_measured_c(model_bytes: &[u8], kernels: &str) -> Option<CVerifyReport> {
    serde_json::from_str(&std::fs::read_to_string(measured_c_path(model_bytes, kernels)).ok()?).ok()
}

fn target_err(e: tinyq_verify::VerifyError) -> TinyqError {
    TinyqError::Input(e.to_string())
}

/// Builds the interpreter-free C of `model` for the Cortex-M4, runs `inputs` (or one zero
/// sample) on QEMU and compares every output with tinyq's integer engine.
///
/// `cmsis_nn` is the CMSIS-NN library folder (with `Include/` and `Source/`) for
/// [`tinyq_cgen::KernelSet::CmsisNn`].
pub fn verify_no_interpreter(
    model: &Model,
    inputs: Option<&BoundInputs>,
    cmsis_nn: Option<&Path>,
    timeout_s: u64,
) -> Result<CVerifyReport, TinyqError> {
    let path: &Path = &model.path;
    let name = "model";
    let kernels = if cmsis_nn.is_some() { tinyq_cgen::KernelSet::CmsisNn } else { tinyq_cgen::KernelSet::Portable };
    let generated = crate::compile_c(path, Some(name), kernels)?;
    let tools = tinyq_verify::Toolchain::find().map_err(target_err)?;
    let cache = tinyq_verify::default_cache_root();
    let input_len = model.graph.tensor(model.graph.inputs[0]).numel();
    let data: Vec<u8> = match inputs {
        Some(b) => (0..b.samples).flat_map(|i| sample_bytes(&b.sample(i))).collect(),
        None => vec![0; input_len],
    };
    let image =
        tinyq_verify::c_runner(&tools, &cache, &generated.files, name, data.len(), cmsis_nn).map_err(target_err)?;
    let plugin = tinyq_verify::plugin(&tools, &cache).map_err(target_err)?;
    let main_c = generated.examples.iter().find(|(n, _)| n == "main.c").map_or("", |(_, c)| c.as_str());
    let main = tinyq_verify::c_main(&tools, &cache, &generated.files, name, main_c, cmsis_nn).map_err(target_err)?;
    let main_log = tinyq_verify::run(&tools, &main, &[], None, Duration::from_secs(timeout_s)).map_err(target_err)?;
    let main_c_ran = main_log.status == 0 && main_log.lines.iter().any(|l| l.starts_with("largest output element"));
    let data_path = image.elf.with_file_name(format!("inputs-{}.bin", std::process::id()));
    std::fs::write(&data_path, &data).map_err(|e| TinyqError::Input(format!("{}: {e}", data_path.display())))?;
    let args = ["run".to_string(), "0".into(), data_path.display().to_string()];
    let log = tinyq_verify::run(&tools, &image, &args, Some(&plugin), Duration::from_secs(timeout_s));
    let _ = std::fs::remove_file(&data_path);
    let log = log.map_err(target_err)?;
    if log.status != 0 {
        return Err(TinyqError::Engine(format!("on the Cortex-M4: {}", log.error().unwrap_or("the run failed"))));
    }
    let outputs = match inputs {
        Some(b) => {
            let ours = crate::run_samples(model, b, &|_| {})?;
            Some(compare(model, &ours, &target_outputs(&log)))
        }
        None => None,
    };
    // Marks come in pairs around each inference.
    let invokes: Vec<u64> = log.marks.chunks_exact(2).map(|m| m[1] - m[0]).collect();
    let mean = (!invokes.is_empty()).then(|| invokes.iter().sum::<u64>() as f64 / invokes.len() as f64);
    let stack = log.value("stack_bytes").unwrap_or(0) as u64;
    Ok(CVerifyReport {
        model: path.display().to_string(),
        target: "cortex-m4 (QEMU mps2-an386)".into(),
        kernels: if cmsis_nn.is_some() { "cmsis-nn" } else { "portable" }.into(),
        outputs,
        flash_bytes: image.flash_bytes,
        static_ram_bytes: image.static_ram_bytes,
        arena_bytes: generated.footprint.arena_bytes,
        stack_bytes: stack,
        invoke_stack_bytes: log.value("invoke_stack_bytes").unwrap_or(0) as u64,
        ram_bytes: image.static_ram_bytes + stack,
        main_c_ran,
        instructions_per_inference: mean,
        instructions_per_inference_min: invokes.iter().min().copied(),
        instructions_per_inference_max: invokes.iter().max().copied(),
        build_seconds: image.build.seconds + main.build.seconds,
        run_seconds: log.seconds + main_log.seconds,
    })
}

//! `tinyq verify`: the exported project built against a real TFLM tree for Cortex-M4, run on
//! QEMU, its outputs compared with tinyq's integer engine, its arena with tinyq's prediction.
//!
//! The build and the emulator live in `tinyq-verify`; this module owns the rules: which arena
//! the runner gets, how samples become input bytes, how outputs are compared, what a cycle
//! estimate is, and where the measured figures are kept for `tinyq report --device`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tinyq_arena::{plan_arena_with, Kernels, PlanConfig, PointerWidth};
use tinyq_verify::{RunLog, Session};

use crate::inputs::{BoundInputs, SampleRef};
use crate::{Model, TinyqError};

/// Cycles per instruction assumed for a Cortex-M4 running TFLM kernels from zero-wait-state
/// memory: most data-processing and MAC instructions take 1 cycle, loads 1-2, taken branches
/// 2-4. QEMU counts instructions, not cycles: this turns counts into an estimate, no more.
pub const CORTEX_M4_CPI_ESTIMATE: f64 = 1.3;

/// What to verify and with which TFLM.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// A TFLM tree made by `create_tflm_tree.py` for Cortex-M (reference or CMSIS-NN kernels).
    pub tflm: PathBuf,
    pub kernels: Kernels,
    /// Clock for the milliseconds estimate (MHz).
    pub clock_mhz: Option<u32>,
    /// Seconds QEMU may run at most.
    pub timeout_s: u64,
}

/// Outputs of QEMU against tinyq's engine.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OutputComparison {
    pub samples: usize,
    /// Output elements compared (all samples, all outputs).
    pub elements: usize,
    /// Elements that differ.
    pub mismatches: usize,
    /// Samples with at least one differing element.
    pub mismatched_samples: usize,
    /// Largest difference in units of the output's last place (integer outputs) or absolute
    /// difference (float outputs).
    pub max_lsb: f64,
}

/// Everything `tinyq verify` measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VerifyReport {
    pub model: String,
    pub target: String,
    pub kernels: String,
    pub tflm: String,
    /// tinyq's prediction (the `kArenaSize` `tinyq export` writes for these kernels).
    pub arena_predicted: usize,
    /// The smallest arena `AllocateTensors` accepts on the target (bisection on the target).
    pub arena_minimum: usize,
    /// `arena_used_bytes()` after `AllocateTensors` with the predicted arena.
    pub arena_used_bytes: Option<usize>,
    /// `AllocateTensors` and `Invoke` succeed with exactly the predicted arena.
    pub predicted_arena_works: bool,
    /// The exported `main.cpp`, unchanged, ran to completion with `kArenaSize`.
    pub main_cpp_ran: bool,
    pub outputs: Option<OutputComparison>,
    /// Flash of the whole runner program (code, constants, the model) in bytes.
    pub flash_bytes: u64,
    pub model_bytes: u64,
    /// Static RAM of the program without its arena buffer (.data + .bss).
    pub static_ram_bytes: u64,
    /// Peak stack measured on the target (painted stack).
    pub stack_bytes: u64,
    /// static RAM + predicted arena + peak stack.
    pub ram_bytes: u64,
    pub instructions_allocate_tensors: Option<u64>,
    /// Mean executed instructions per `Invoke` (exact counts from QEMU).
    pub instructions_per_inference: Option<f64>,
    pub instructions_per_inference_min: Option<u64>,
    pub instructions_per_inference_max: Option<u64>,
    pub cycles_per_inference_estimate: Option<f64>,
    pub clock_mhz: Option<u32>,
    pub ms_per_inference_estimate: Option<f64>,
    /// Wall time of the build (compile and link, cached objects reused) and of the runs.
    pub build_seconds: f64,
    pub objects_compiled: usize,
    pub objects_total: usize,
    pub run_seconds: f64,
}

fn target_err(e: tinyq_verify::VerifyError) -> TinyqError {
    TinyqError::Input(e.to_string())
}

/// The arena tinyq predicts for a 32-bit Cortex-M build with `kernels`.
pub fn predicted_arena(bytes: &[u8], kernels: Kernels) -> Result<usize, String> {
    let config = PlanConfig::firmware(PointerWidth::Bits32).with_kernels(kernels);
    plan_arena_with(bytes, &config).map(|p| p.total_bytes).map_err(|e| e.to_string())
}

pub(crate) fn sample_bytes(sample: &[SampleRef<'_>]) -> Vec<u8> {
    let mut v = Vec::new();
    for s in sample {
        match s {
            SampleRef::I8(x) => v.extend(x.iter().map(|&b| b as u8)),
            SampleRef::I16(x) => x.iter().for_each(|b| v.extend(b.to_le_bytes())),
            SampleRef::F32(x) => x.iter().for_each(|b| v.extend(b.to_le_bytes())),
        }
    }
    v
}

fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    (0..s.len() / 2).map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()).collect()
}

/// `(sample, output) -> bytes` from the runner's `y` lines.
pub(crate) fn target_outputs(log: &RunLog) -> Vec<(usize, usize, Vec<u8>)> {
    log.lines
        .iter()
        .filter_map(|l| {
            let mut w = l.strip_prefix("y ")?.split(' ');
            let s = w.next()?.parse().ok()?;
            let o = w.next()?.parse().ok()?;
            Some((s, o, hex_bytes(w.next().unwrap_or(""))?))
        })
        .collect()
}

pub(crate) fn compare(model: &Model, ours: &crate::RunOutputs, theirs: &[(usize, usize, Vec<u8>)]) -> OutputComparison {
    use tinyq_data::ArrayData as A;
    let samples = ours.samples;
    let mut c = OutputComparison { samples, ..Default::default() };
    let mut bad_samples = std::collections::BTreeSet::new();
    for (k, values) in ours.values.iter().enumerate() {
        let per = model.graph.tensor(model.graph.outputs[k]).shape.iter().product::<usize>().max(1);
        for s in 0..samples {
            let got = theirs.iter().find(|(ts, to, _)| *ts == s && *to == k).map(|t| t.2.as_slice()).unwrap_or(&[]);
            let diffs: Vec<f64> = match values {
                A::I8(v) => v[s * per..(s + 1) * per]
                    .iter()
                    .enumerate()
                    .map(|(i, &x)| got.get(i).map_or(f64::INFINITY, |&g| (g as i8 as f64 - x as f64).abs()))
                    .collect(),
                A::I16(v) => v[s * per..(s + 1) * per]
                    .iter()
                    .enumerate()
                    .map(|(i, &x)| {
                        got.get(2 * i..2 * i + 2)
                            .map_or(f64::INFINITY, |b| (i16::from_le_bytes([b[0], b[1]]) as f64 - x as f64).abs())
                    })
                    .collect(),
                A::I32(v) => v[s * per..(s + 1) * per]
                    .iter()
                    .enumerate()
                    .map(|(i, &x)| {
                        got.get(4 * i..4 * i + 4).map_or(f64::INFINITY, |b| {
                            (i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64 - x as f64).abs()
                        })
                    })
                    .collect(),
                A::F32(v) => v[s * per..(s + 1) * per]
                    .iter()
                    .enumerate()
                    .map(|(i, &x)| {
                        got.get(4 * i..4 * i + 4).map_or(f64::INFINITY, |b| {
                            (f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64 - x as f64).abs()
                        })
                    })
                    .collect(),
                _ => vec![f64::INFINITY; per],
            };
            c.elements += diffs.len();
            for d in diffs {
                if d != 0.0 {
                    c.mismatches += 1;
                    bad_samples.insert(s);
                    c.max_lsb = c.max_lsb.max(d);
                }
            }
        }
    }
    c.mismatched_samples = bad_samples.len();
    c
}

/// Builds the model for a Cortex-M4 with the TFLM tree in `opts`, runs it on QEMU and compares
/// it with tinyq. `inputs` (already limited to the samples wanted) may be absent: then only the
/// arena, sizes and one inference on zero inputs are measured.
pub fn verify(model: &Model, inputs: Option<&BoundInputs>, opts: &VerifyOptions) -> Result<VerifyReport, TinyqError> {
    let path = &model.path;
    let ctx = |e: String| TinyqError::Model(format!("{}: {e}", path.display()));
    if path.extension().and_then(|e| e.to_str()) != Some("tflite") {
        return Err(ctx("verify builds a .tflite file (run `tinyq quantize` first)".into()));
    }
    let bytes = std::fs::read(path).map_err(|e| ctx(e.to_string()))?;
    let predicted = predicted_arena(&bytes, opts.kernels).map_err(ctx)?;
    let session = Session::new(&opts.tflm, opts.kernels).map_err(target_err)?;
    let name = tinyq_export_c::default_name(path).unwrap_or_else(|| "model".to_string());
    let data: Vec<u8> = match inputs {
        Some(b) => (0..b.samples).flat_map(|i| sample_bytes(&b.sample(i))).collect(),
        None => Vec::new(),
    };
    // Room for bisection above the prediction and, at the top, the input samples.
    let capacity = (predicted * 2).max(predicted + data.len() + 64 * 1024);
    let image = session.model_runner(&bytes, &name, predicted, capacity).map_err(target_err)?;
    let main = session.exported_main(&bytes, &name, predicted).map_err(target_err)?;
    let plugin = session.plugin().map_err(target_err)?;
    let timeout = Duration::from_secs(opts.timeout_s);
    let tools = &session.tools;
    let run = |args: &[String], plugin: Option<&Path>| {
        tinyq_verify::run(tools, &image, args, plugin, timeout).map_err(target_err)
    };

    let probes_start = std::time::Instant::now();
    let probe_timeout = Duration::from_secs(opts.timeout_s.min(10));
    let arena_minimum =
        tinyq_verify::minimum_arena(tools, &image, predicted, None, probe_timeout).map_err(target_err)?;
    let predicted_arena_works =
        tinyq_verify::arena_fits(tools, &image, predicted, true, None, timeout).map_err(target_err)?;
    let probe_seconds = probes_start.elapsed().as_secs_f64();
    let main_log = tinyq_verify::run(tools, &main, &[], None, timeout).map_err(target_err)?;

    // The samples (or one zero sample) with the instruction counter.
    let data_path = image.elf.with_file_name(format!("inputs-{}.bin", std::process::id()));
    let zero_len = {
        let info = tinyq_export_c::inspect(&bytes).map_err(|e| ctx(e.to_string()))?;
        info.inputs.iter().map(|t| t.elements() as usize * tflite_type_bytes(t.tensor_type)).sum::<usize>()
    };
    let payload = if data.is_empty() { vec![0u8; zero_len] } else { data };
    std::fs::write(&data_path, &payload).map_err(|e| TinyqError::Input(format!("{}: {e}", data_path.display())))?;
    let log = run(&["run".into(), predicted.to_string(), data_path.display().to_string()], Some(&plugin));
    let _ = std::fs::remove_file(&data_path);
    let log = log?;
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
    let regions = log.regions();
    let invokes: Vec<u64> = regions.iter().skip(1).copied().collect();
    let mean = (!invokes.is_empty()).then(|| invokes.iter().sum::<u64>() as f64 / invokes.len() as f64);
    let cycles = mean.map(|m| m * CORTEX_M4_CPI_ESTIMATE);
    let stack = log.value("stack_bytes").unwrap_or(0) as u64;
    let static_ram = image.static_ram_bytes.saturating_sub(image.arena_capacity as u64);
    Ok(VerifyReport {
        model: path.display().to_string(),
        target: "cortex-m4 (QEMU mps2-an386)".into(),
        kernels: opts.kernels.name().into(),
        tflm: session.tree.root.display().to_string(),
        arena_predicted: predicted,
        arena_minimum,
        arena_used_bytes: log.value("arena_used").map(|v| v as usize),
        predicted_arena_works,
        main_cpp_ran: main_log.status == 0,
        outputs,
        flash_bytes: image.flash_bytes,
        model_bytes: bytes.len() as u64,
        static_ram_bytes: static_ram,
        stack_bytes: stack,
        ram_bytes: static_ram + predicted as u64 + stack,
        instructions_allocate_tensors: regions.first().copied(),
        instructions_per_inference: mean,
        instructions_per_inference_min: invokes.iter().min().copied(),
        instructions_per_inference_max: invokes.iter().max().copied(),
        cycles_per_inference_estimate: cycles,
        clock_mhz: opts.clock_mhz,
        ms_per_inference_estimate: cycles.zip(opts.clock_mhz).map(|(c, mhz)| c / (mhz as f64 * 1000.0)),
        build_seconds: image.build.seconds + main.build.seconds,
        objects_compiled: image.build.compiled + main.build.compiled,
        objects_total: image.build.sources,
        run_seconds: probe_seconds + main_log.seconds + log.seconds,
    })
}

fn tflite_type_bytes(t: i8) -> usize {
    match t {
        0 | 2 => 4,
        7 => 2,
        4 => 8,
        _ => 1,
    }
}

/// Where `verify` keeps its figures for `tinyq report --device`: in tinyq's cache, keyed by
/// the model's contents and the kernels (never beside the model: its folder may be read-only).
pub fn measured_path(model_bytes: &[u8], kernels: Kernels) -> PathBuf {
    let h = tinyq_verify::fnv1a(model_bytes, tinyq_verify::FNV_START);
    tinyq_verify::default_cache_root().join("measured").join(format!("{h:016x}-{}.json", kernels.name()))
}

/// Writes `r` to [`measured_path`] (temporary file, then rename).
pub fn save_measured(model_bytes: &[u8], kernels: Kernels, r: &VerifyReport) -> Result<PathBuf, TinyqError> {
    save_json(measured_path(model_bytes, kernels), r)
}

/// Writes `r` as JSON to `path` (temporary file, then rename).
pub(crate) fn save_json<T: Serialize>(path: PathBuf, r: &T) -> Result<PathBuf, TinyqError> {
    let io = |p: &Path, e: std::io::Error| TinyqError::Input(format!("{}: {e}", p.display()));
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| io(d, e))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let body = serde_json::to_string_pretty(r).map_err(|e| TinyqError::Input(e.to_string()))?;
    std::fs::write(&tmp, body).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
    Ok(path)
}

/// The figures an earlier `verify` saved for this model (by contents) and kernels, if any.
pub fn load_measured(model_bytes: &[u8], kernels: Kernels) -> Option<VerifyReport> {
    let text = std::fs::read_to_string(measured_path(model_bytes, kernels)).ok()?;
    serde_json::from_str(&text).ok()
}

/// One model's arena on the target against tinyq's prediction and, given samples, its outputs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ArenaCheck {
    pub model: String,
    pub kernels: String,
    pub predicted: usize,
    /// The smallest arena `AllocateTensors` accepts on the Cortex-M4 (`Invoke` checked there).
    pub minimum: Option<usize>,
    /// `AllocateTensors` + `Invoke` with exactly the prediction.
    pub predicted_works: bool,
    /// With samples: the target's outputs (run with the predicted arena) against tinyq's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outputs: Option<OutputComparison>,
    pub error: Option<String>,
}

impl ArenaCheck {
    /// The arena is large enough, works as predicted, and every output compared is equal.
    pub fn passed(&self) -> bool {
        self.error.is_none()
            && self.minimum.is_some_and(|m| m <= self.predicted)
            && self.predicted_works
            && self.outputs.as_ref().is_none_or(|o| o.mismatches == 0)
    }
}

/// Many models on the Cortex-M4 with one runner image (registering every operator the models
/// use, each model read from a host file): each model's arena against the prediction and, for
/// a model given samples, its outputs against tinyq's engine.
pub fn verify_many(
    models: &[(Model, Option<BoundInputs>)],
    tflm: &Path,
    kernels: Kernels,
    timeout_s: u64,
) -> Result<Vec<ArenaCheck>, TinyqError> {
    let session = Session::new(tflm, kernels).map_err(target_err)?;
    let mut files = Vec::new();
    let mut methods: Vec<&'static str> = Vec::new();
    for (m, inputs) in models {
        let ctx = |e: String| TinyqError::Model(format!("{}: {e}", m.path.display()));
        let bytes = std::fs::read(&m.path).map_err(|e| TinyqError::Input(format!("{}: {e}", m.path.display())))?;
        for method in tinyq_verify::resolver_methods(&bytes).map_err(|e| ctx(e.to_string()))? {
            if !methods.contains(&method) {
                methods.push(method);
            }
        }
        let predicted = predicted_arena(&bytes, kernels).map_err(ctx)?;
        let data: Vec<u8> =
            inputs.iter().flat_map(|b| (0..b.samples).flat_map(|i| sample_bytes(&b.sample(i)))).collect();
        files.push((bytes.len(), predicted, data));
    }
    methods.sort_unstable();
    let largest_model = files.iter().map(|f| f.0).max().unwrap_or(0);
    // Room for bisection above each prediction and, at the top, each model's samples.
    let capacity = files.iter().map(|f| (f.1 * 2).max(f.1 + f.2.len() + 64 * 1024)).max().unwrap_or(0);
    let image = session
        .file_runner(&methods, capacity.max(256 * 1024), largest_model.next_power_of_two().max(64 * 1024))
        .map_err(target_err)?;
    let timeout = Duration::from_secs(timeout_s);
    let probe_timeout = timeout.min(Duration::from_secs(10));
    let data_path = image.elf.with_file_name(format!("inputs-{}.bin", std::process::id()));
    let mut out = Vec::new();
    for ((model, inputs), (_, predicted, data)) in models.iter().zip(&files) {
        let path = &model.path;
        let model_arg = path.canonicalize().unwrap_or_else(|_| path.to_path_buf()).display().to_string();
        let tools = &session.tools;
        let min = tinyq_verify::minimum_arena(tools, &image, *predicted, Some(&model_arg), probe_timeout);
        let works = tinyq_verify::arena_fits(tools, &image, *predicted, true, Some(&model_arg), timeout);
        let outputs = match inputs {
            Some(b) => {
                let io = |e: std::io::Error| TinyqError::Input(format!("{}: {e}", data_path.display()));
                std::fs::write(&data_path, data).map_err(io)?;
                let args = ["run".to_string(), predicted.to_string(), data_path.display().to_string(), model_arg];
                let log = tinyq_verify::run(tools, &image, &args, None, timeout);
                let _ = std::fs::remove_file(&data_path);
                match log.map_err(target_err)? {
                    log if log.status == 0 => {
                        let ours = crate::run_samples(model, b, &|_| {})?;
                        Ok(Some(compare(model, &ours, &target_outputs(&log))))
                    }
                    log => Err(format!("on the Cortex-M4: {}", log.error().unwrap_or("the run failed"))),
                }
            }
            None => Ok(None),
        };
        let error = min.as_ref().err().or(works.as_ref().err()).map(|e| e.to_string()).or(outputs.clone().err());
        out.push(ArenaCheck {
            model: path.display().to_string(),
            kernels: kernels.name().into(),
            predicted: *predicted,
            minimum: min.ok(),
            predicted_works: works.unwrap_or(false),
            outputs: outputs.ok().flatten(),
            error,
        });
    }
    Ok(out)
}

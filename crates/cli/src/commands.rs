use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tinyq::data::{Dataset, ImageOptions, Layout, LoadOptions, NdArray, RawOptions};
use tinyq::jobs::{DataSource, DataSpec};
use tinyq::{Metric, Model};

use crate::args::{Cli, Command, DataArgs, LoadArgs};
use crate::output::Staged;
use crate::render;

/// `--input-shape` of this invocation, parsed once by [`dispatch`] and applied by [`load`].
static INPUT_SHAPES: std::sync::OnceLock<Vec<(String, Vec<usize>)>> = std::sync::OnceLock::new();

pub fn dispatch(cli: Cli) -> Result<ExitCode> {
    let shapes = cli.input_shape.iter().map(|s| parse_input_shape(s)).collect::<Result<Vec<_>>>()?;
    if !shapes.is_empty()
        && matches!(cli.command, Command::Report { .. } | Command::Export { .. } | Command::Ops { .. })
    {
        bail!("--input-shape applies to commands that load a float or INT8 model to run it (report and export take the .tflite's shapes as TFLM allocates them)");
    }
    INPUT_SHAPES.get_or_init(|| shapes);
    match cli.command {
        Command::Inspect { model, json } => inspect(&model, json),
        Command::Run { model, data, output, json } => run(&model, &data, &output, json),
        Command::Eval { model, data, y, metric, json } => eval(&model, &data, &y, metric.as_deref(), json),
        Command::Quantize(q) => crate::quantize::quantize(&q),
        Command::Train(t) => crate::train::train(&t),
        Command::Report { model: Some(model), no_interpreter: true, json, kernels, .. } => {
            return crate::verify::report_no_interpreter(&model, &kernels, json)
        }
        Command::Report {
            model,
            pointer_width,
            device,
            ram_budget,
            flash_budget,
            list_devices,
            kernels,
            tflm_build,
            json,
            ..
        } => {
            let opts = ReportOpts {
                device: device.as_deref(),
                ram_budget: ram_budget.as_deref(),
                flash_budget: flash_budget.as_deref(),
                kernels: &kernels,
                tflm_build: tflm_build.as_deref(),
            };
            return report(model.as_deref(), pointer_width, &opts, list_devices, json);
        }
        Command::Export { model, c, name, pointer_width, kernels, no_interpreter } => {
            export(&model, &c, name.as_deref(), pointer_width, &kernels, no_interpreter)
        }
        Command::Verify(v) => return crate::verify::verify(&v),
        Command::Debug { fp32, int8, data, json, html } => debug(&fp32, &int8, &data, json, html.as_deref()),
        Command::Convert(a) => crate::convert::convert(&a),
        Command::Ops { json } => ops(json),
    }
    .map(|()| ExitCode::SUCCESS)
}

pub(crate) fn load(model: &Path) -> Result<Model> {
    Ok(tinyq::load_model_with(model, INPUT_SHAPES.get().map_or(&[], |v| v.as_slice()))?)
}

/// `NAME=D0,D1,…` → (name, dims).
fn parse_input_shape(s: &str) -> Result<(String, Vec<usize>)> {
    let bad = || anyhow::anyhow!("--input-shape {s}: expected NAME=D0,D1,… with positive sizes");
    let (name, dims) = s.rsplit_once('=').ok_or_else(bad)?;
    let dims = dims.split(',').map(|d| d.trim().parse::<usize>().ok().filter(|&d| d > 0)).collect::<Option<Vec<_>>>();
    match dims {
        Some(d) if !name.is_empty() && !d.is_empty() => Ok((name.to_string(), d)),
        _ => Err(bad()),
    }
}

pub(crate) fn progress(total: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} samples [{elapsed_precise} < {eta}]")
            .expect("static template"),
    );
    bar.set_message(what.to_string());
    bar
}

/// Progress bars for the stages of a facade job, on stderr.
#[derive(Default)]
pub(crate) struct Bars(std::sync::Mutex<Option<ProgressBar>>);

impl Bars {
    fn bar(&self) -> std::sync::MutexGuard<'_, Option<ProgressBar>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Clears the bar of a stage an error cut short.
    pub(crate) fn end_all(&self) {
        tinyq::jobs::Progress::end(self);
    }
}

impl tinyq::jobs::Progress for Bars {
    fn begin(&self, what: &str, total: usize) {
        *self.bar() = Some(progress(total, what));
    }
    fn advance(&self, done: usize) {
        if let Some(b) = self.bar().as_ref() {
            b.set_position(done as u64);
        }
    }
    fn end(&self) {
        if let Some(b) = self.bar().take() {
            b.finish_and_clear();
        }
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        self.end_all();
    }
}

/// `--metric top1|rmse|auc`, when given.
pub(crate) fn parse_metric(m: Option<&str>) -> Result<Option<Metric>> {
    m.map(|m| m.parse::<Metric>().map_err(|e| anyhow::anyhow!("--metric `{m}`: {e}"))).transpose()
}

/// `--data`, `--x` and `--limit` with the loading flags.
fn data_spec(d: &DataArgs) -> Result<DataSpec> {
    Ok(DataSpec { source: DataSource::file(&d.data, load_options(&d.load)?), keys: d.x.clone(), limit: d.limit })
}

pub(crate) fn load_options(d: &LoadArgs) -> Result<LoadOptions> {
    let mut opts = LoadOptions::default();
    let img: &mut ImageOptions = &mut opts.image;
    if let Some(r) = &d.resize {
        let (h, w) = r
            .split_once(['x', 'X'])
            .and_then(|(h, w)| Some((h.parse().ok()?, w.parse().ok()?)))
            .with_context(|| format!("--resize `{r}`: expected HxW, e.g. 32x32"))?;
        img.resize = Some((h, w));
    }
    if let Some(s) = d.scale {
        img.scale = s;
    }
    img.mean = d.mean.clone();
    img.std = d.std.clone();
    if img.std.contains(&0.0) {
        bail!("--std: a standard deviation of 0 divides by zero");
    }
    img.layout = match d.layout.as_str() {
        "nhwc" => Layout::Nhwc,
        "nchw" => Layout::Nchw,
        other => bail!("--layout `{other}`: expected nhwc or nchw"),
    };
    img.grayscale = d.grayscale;
    match (d.shape.is_empty(), &d.dtype) {
        (true, None) => {}
        (false, Some(dtype)) => opts.raw = Some(RawOptions { shape: d.shape.clone(), dtype: dtype.clone() }),
        _ => bail!("--shape and --dtype go together (raw .bin data)"),
    }
    Ok(opts)
}

/// Opens `path` and binds arrays `keys` (or the defaults) to the model's inputs.
pub(crate) fn bind_file(
    model: &Model,
    path: &Path,
    keys: &[String],
    load: &LoadArgs,
    limit: Option<usize>,
) -> Result<(Dataset, tinyq::BoundInputs)> {
    let ds = Dataset::open(path, &load_options(load)?)?;
    let keys = if keys.is_empty() { tinyq::default_input_keys(&model.graph) } else { keys.to_vec() };
    let mut inputs = tinyq::bind_inputs(&model.graph, &ds, &keys)?;
    if let Some(n) = limit {
        if n == 0 {
            bail!("a sample limit of 0 leaves no samples");
        }
        inputs.truncate(n);
    }
    Ok((ds, inputs))
}

pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

fn inspect(path: &Path, json: bool) -> Result<()> {
    let model = load(path)?;
    let s = tinyq::inspect(&model);
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    let io: Vec<Vec<String>> = s
        .inputs
        .iter()
        .map(|t| ("input", t))
        .chain(s.outputs.iter().map(|t| ("output", t)))
        .map(|(k, t)| vec![k.into(), t.name.clone(), render::shape(&t.shape), t.dtype.into()])
        .collect();
    println!("{}\n{}", s.model, render::table(&["", "name", "shape", "dtype"], io));
    let layers: Vec<Vec<String>> = s
        .layers
        .iter()
        .map(|l| {
            let op = if l.activation.is_empty() { l.op.to_string() } else { format!("{} + {}", l.op, l.activation) };
            vec![
                l.name.clone(),
                op,
                render::shape(&l.output_shape),
                render::count(l.macs),
                render::count(l.parameters as u64),
            ]
        })
        .collect();
    println!("{}", render::table(&["layer", "op", "output", "MACs", "params"], layers));
    let ops: Vec<String> = s.ops.iter().map(|(k, v)| format!("{k} ×{v}")).collect();
    println!("ops: {}", ops.join(", "));
    println!(
        "parameters: {} ({} as FP32) · MACs: {} · file: {}",
        render::count(s.parameters as u64),
        render::bytes(s.fp32_bytes as u64),
        render::count(s.macs),
        render::bytes(s.file_bytes)
    );
    Ok(())
}

fn run(path: &Path, d: &DataArgs, output: &Path, json: bool) -> Result<()> {
    if same_file(output, path) || same_file(output, &d.data) {
        bail!("-o {}: refusing to overwrite an input file", output.display());
    }
    if output.extension().and_then(|e| e.to_str()) != Some("npz") {
        bail!("-o {}: the output must be an .npz file", output.display());
    }
    let staged = Staged::file(output, "-o")?;
    let model = load(path)?;
    let spec = data_spec(d)?;
    let out = tinyq::jobs::run_job(&model, &spec, &Bars::default())?;
    let (arrays, seconds) = (out.arrays, out.seconds);
    let refs: Vec<(&str, &NdArray)> = arrays.iter().map(|(k, a)| (k.as_str(), a)).collect();
    tinyq::data::write_npz(staged.path(), &refs).with_context(|| staged.describe())?;
    staged.commit()?;
    if json {
        let shapes: serde_json::Map<String, serde_json::Value> =
            arrays.iter().map(|(k, a)| (k.clone(), json!(a.shape))).collect();
        println!(
            "{}",
            json!({ "output": output.display().to_string(), "samples": out.samples, "arrays": shapes, "seconds": seconds })
        );
    } else {
        println!("{} samples → {} ({:.2} s)", out.samples, output.display(), seconds);
    }
    Ok(())
}

fn eval(path: &Path, d: &DataArgs, y: &str, metric: Option<&str>, json: bool) -> Result<()> {
    let metric = parse_metric(metric)?;
    let model = load(path)?;
    let spec = data_spec(d)?;
    let out = tinyq::jobs::eval_job(&model, &spec, y, metric, &Bars::default())?;
    let (v, seconds) = (out.value, out.seconds);
    if json {
        println!(
            "{}",
            json!({
                "model": path.display().to_string(),
                "metric": v.metric.name(),
                "value": v.value,
                "samples": v.samples,
                "seconds": seconds,
                "samples_per_second": v.samples as f64 / seconds.max(1e-9),
            })
        );
    } else {
        println!(
            "{}: {} = {:.4} over {} samples ({:.2} s)",
            path.display(),
            v.metric.name(),
            v.value,
            v.samples,
            seconds
        );
    }
    Ok(())
}

fn ops(json: bool) -> Result<()> {
    let ops = tinyq::supported_onnx_ops();
    if json {
        let list: Vec<_> = ops.iter().map(|o| json!({ "op": o.op, "since": o.since, "until": o.until })).collect();
        println!("{}", json!({ "onnx": list }));
    } else {
        let rows = ops.iter().map(|o| vec![o.op.to_string(), format!("{}–{}", o.since, o.until)]).collect();
        println!("{}", render::table(&["ONNX op", "opsets"], rows));
    }
    Ok(())
}

fn list_devices(json: bool) -> Result<ExitCode> {
    let boards = tinyq::boards();
    if json {
        let list: Vec<_> = boards
            .iter()
            .map(|b| json!({ "name": b.name, "mcu": b.mcu, "core": b.core, "clock_mhz": b.clock_mhz, "sram_bytes": b.sram_bytes, "flash_bytes": b.flash_bytes, "datasheet": b.datasheet }))
            .collect();
        println!("{}", json!({ "devices": list }));
    } else {
        let rows = boards
            .iter()
            .map(|b| {
                vec![
                    b.name.to_string(),
                    b.mcu.to_string(),
                    format!("{} @ {} MHz", b.core, b.clock_mhz),
                    render::bytes(b.sram_bytes),
                    render::bytes(b.flash_bytes),
                    b.datasheet.split(" (").next().unwrap_or(b.datasheet).to_string(),
                ]
            })
            .collect();
        println!("{}", render::table(&["device", "MCU", "core", "SRAM", "flash", "source"], rows));
    }
    Ok(ExitCode::SUCCESS)
}

struct ReportOpts<'a> {
    device: Option<&'a str>,
    ram_budget: Option<&'a str>,
    flash_budget: Option<&'a str>,
    kernels: &'a str,
    tflm_build: Option<&'a str>,
}

pub(crate) fn parse_kernels(s: &str) -> Result<tinyq::Kernels> {
    tinyq::Kernels::parse(s).with_context(|| format!("--kernels `{s}`: expected reference or cmsis-nn"))
}

fn report(model: Option<&Path>, pointer_width: usize, o: &ReportOpts, list: bool, json: bool) -> Result<ExitCode> {
    if list {
        return list_devices(json);
    }
    let (device, ram_budget, flash_budget) = (o.device, o.ram_budget, o.flash_budget);
    let kernels = parse_kernels(o.kernels)?;
    let model = model.context("report needs a model (or --list-devices)")?;
    let limits = tinyq::Limits::parse(device, ram_budget, flash_budget)?;
    let build = o
        .tflm_build
        .map(|b| tinyq::TflmBuild::parse(b).with_context(|| format!("--tflm-build `{b}`: expected python or firmware")))
        .transpose()?;
    let fit = tinyq::jobs::Fit::new(tinyq::report_for(model, pointer_width, kernels, build)?, &limits);
    let (r, over) = (&fit.report, &fit.overruns);
    if json {
        println!("{}", fit.to_json());
    } else {
        let rows = r
            .layers
            .iter()
            .map(|l| {
                vec![
                    l.name.clone(),
                    l.op.to_string(),
                    render::shape(&l.output_shape),
                    render::count(l.macs),
                    render::bytes(l.weight_bytes as u64),
                    render::bytes(l.activation_bytes as u64),
                    render::bytes(l.live_bytes as u64),
                ]
            })
            .collect();
        println!("{}", render::table(&["layer", "op", "output", "MACs", "weights", "activation", "live arena"], rows));
        println!(
            "{}: flash {} · RAM (TFLM arena, {}-bit {} build) {} = head {} + tail {} · {} parameters · {} MACs",
            r.model,
            render::bytes(r.flash_bytes),
            r.pointer_width,
            r.tflm_build,
            render::bytes(r.arena_bytes as u64),
            render::bytes(r.arena_head_bytes as u64),
            render::bytes(r.arena_tail_bytes as u64),
            render::count(r.parameters as u64),
            render::count(r.macs)
        );
        let f = &r.flash;
        let parts = [
            ("weights", f.weights),
            ("biases", f.biases),
            ("float constants", f.float_constants),
            ("quantization parameters", f.quantization),
            ("names", f.names),
            ("structure", f.structure),
        ];
        let parts: Vec<String> =
            parts.iter().filter(|p| p.1 > 0).map(|(what, n)| format!("{what} {}", render::bytes(*n))).collect();
        println!("flash = {}", parts.join(" + "));
        if let Some(i) = &r.int4 {
            let scratch = if i.unpack_scratch_total_bytes > 0 {
                format!(
                    "; {} kernels unpack them into arena buffers of up to {} ({} over all layers, planned into the arena above)",
                    r.kernels,
                    render::bytes(i.unpack_scratch_largest_bytes as u64),
                    render::bytes(i.unpack_scratch_total_bytes as u64)
                )
            } else {
                format!("; {} kernels read them packed", r.kernels)
            };
            println!(
                "int4 weights: {} layers, {} in flash, {} less than as int8{scratch}",
                i.layers,
                render::bytes(i.weight_bytes),
                render::bytes(i.flash_saved_bytes)
            );
            for c in &i.caveats {
                println!("warning: int4 layer {c}");
            }
        }
        if let Some(b) = limits.board {
            println!("{}: {} SRAM, {} flash", b.name, render::bytes(b.sram_bytes), render::bytes(b.flash_bytes));
            crate::verify::print_measured(r, b);
        }
    }
    if over.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for o in over {
        eprintln!(
            "error: {} does not fit the {}: needs {}, has {} (over by {})",
            r.model,
            o.what,
            render::bytes(o.needed),
            render::bytes(o.available),
            render::bytes(o.needed - o.available)
        );
    }
    Ok(ExitCode::from(1))
}

/// A new folder is generated under a temporary name and renamed once complete; into an existing
/// folder, the export checks every file it would replace before writing any, and writes each one
/// atomically.
fn export(
    model: &Path,
    dir: &Path,
    name: Option<&str>,
    pointer_width: usize,
    kernels: &str,
    no_interpreter: bool,
) -> Result<()> {
    let write = |dir: &Path| -> Result<Vec<std::path::PathBuf>> {
        if no_interpreter {
            Ok(tinyq::export_c_no_interpreter(model, dir, name, crate::verify::c_kernels(kernels)?)?.0)
        } else {
            Ok(tinyq::export_c(model, dir, name, pointer_width, parse_kernels(kernels)?)?)
        }
    };
    let written = if dir.exists() {
        write(dir)?
    } else {
        let staged = Staged::dir(dir, "--c")?;
        let files = write(staged.path())?;
        let files = files.iter().map(|f| dir.join(f.strip_prefix(staged.path()).unwrap_or(f))).collect();
        staged.commit()?;
        files
    };
    for f in &written {
        println!("{}", f.display());
    }
    Ok(())
}

fn debug(fp32: &Path, int8: &Path, d: &DataArgs, json: bool, html: Option<&Path>) -> Result<()> {
    if let Some(out) = html {
        if same_file(out, fp32) || same_file(out, int8) || same_file(out, &d.data) {
            bail!("--html {}: refusing to overwrite an input file", out.display());
        }
        if !matches!(out.extension().and_then(|e| e.to_str()), Some("html" | "htm")) {
            bail!("--html {}: the report must be an .html file", out.display());
        }
    }
    let staged = html.map(|out| Staged::file(out, "--html")).transpose()?;
    let (fm, qm) = (load(fp32)?, load(int8)?);
    let r = tinyq::jobs::debug_job(&fm, &qm, &data_spec(d)?, None)?;
    if let Some(out) = staged {
        tinyq_html::write_debug_page(out.path(), &r).with_context(|| out.describe())?;
        let shown = out.target().display().to_string();
        out.commit()?;
        if !json {
            println!("HTML report: {shown}");
        }
    }
    if json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    for f in &r.findings {
        println!("finding: {f}");
    }
    let db = |v: f64| if v.is_finite() { format!("{v:.1}") } else { "∞".into() };
    let rows = r
        .layers
        .iter()
        .map(|l| {
            vec![
                l.tensor.clone(),
                if l.dtype == "int8" { l.op.to_string() } else { format!("{} ({})", l.op, l.dtype) },
                db(l.sqnr_db),
                format!("{:.4}", l.cosine),
                format!("{:.1} / {:.2}", l.max_abs_error_lsb, l.mean_abs_error_lsb),
                format!("{:.2}%", l.clipped_fraction * 100.0),
                l.weight_spread.map_or("–".into(), |s| format!("{s:.0}×")),
                l.own_sqnr_db.map_or("–".into(), db),
                l.own_error_share.map_or("–".into(), |s| format!("{:.0}%", s * 100.0)),
            ]
        })
        .collect();
    println!(
        "{}",
        render::table(
            &[
                "tensor",
                "op",
                "SQNR dB",
                "cosine",
                "max/mean err LSB",
                "clipped",
                "w spread",
                "own SQNR dB",
                "own share"
            ],
            rows
        )
    );
    println!("{} samples · output SQNR {} dB · worst layers first:", r.samples, db(r.output_sqnr_db));
    for name in r.ranking.iter().take(5) {
        let l = r.layers.iter().find(|l| &l.tensor == name).expect("ranked layers exist");
        println!(
            "  {name}: own SQNR {} dB{}",
            l.own_sqnr_db.map_or("–".into(), db),
            l.suggestion.as_ref().map_or(String::new(), |s| format!(" — {s}"))
        );
    }
    Ok(())
}

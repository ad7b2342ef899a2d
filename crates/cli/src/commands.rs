use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tinyq::data::{Dataset, ImageOptions, Layout, LoadOptions, NdArray, RawOptions};
use tinyq::{Metric, Model};

use crate::args::{Cli, Command, DataArgs, LoadArgs, QuantizeArgs};
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
        Command::Quantize(q) => quantize(&q),
        Command::Train(t) => crate::train::train(&t),
        Command::Report { model: Some(model), no_interpreter: true, json, kernels, .. } => {
            return crate::verify::report_no_interpreter(&model, &kernels, json)
        }
        Command::Report {
            model, pointer_width, device, ram_budget, flash_budget, list_devices, kernels, json, ..
        } => {
            let opts = ReportOpts {
                device: device.as_deref(),
                ram_budget: ram_budget.as_deref(),
                flash_budget: flash_budget.as_deref(),
                kernels: &kernels,
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

/// Opens the dataset and binds its arrays to the model's inputs.
fn bind(model: &Model, d: &DataArgs) -> Result<(Dataset, tinyq::BoundInputs)> {
    bind_file(model, &d.data, &d.x, &d.load, d.limit)
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
    let (_, inputs) = bind(&model, d)?;
    let bar = progress(inputs.samples, "run");
    let start = Instant::now();
    let out = tinyq::run_samples(&model, &inputs, &|n| bar.set_position(n as u64))?;
    let seconds = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let arrays: Vec<(String, NdArray)> = out
        .values
        .into_iter()
        .zip(&out.shapes)
        .enumerate()
        .map(|(k, (v, s))| {
            let key = if k == 0 { "y".to_string() } else { format!("y_{k}") };
            (key, NdArray { shape: s.clone(), data: v })
        })
        .collect();
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
    let model = load(path)?;
    let (ds, inputs) = bind(&model, d)?;
    let mut labels = ds.array(y)?;
    if labels.shape.first().is_some_and(|&n| n > inputs.samples) && d.limit.is_some() {
        labels = truncate_rows(labels, inputs.samples);
    }
    let metric = metric
        .map(|m| Metric::parse(m).with_context(|| format!("--metric `{m}`: expected top1, rmse or auc")))
        .transpose()?;
    let start = Instant::now();
    let v = score(&model, &inputs, (&labels, &format!("{}: labels `{y}`", d.data.display())), metric, "eval")?;
    let seconds = start.elapsed().as_secs_f64();
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

pub(crate) fn truncate_rows(a: NdArray, n: usize) -> NdArray {
    use tinyq::data::ArrayData as A;
    // A limit beyond the sample count keeps every sample, as `BoundInputs::truncate` does.
    let Some(&rows) = a.shape.first() else { return a };
    let n = n.min(rows);
    let per: usize = a.shape[1..].iter().product();
    let k = n * per;
    let data = match a.data {
        A::F32(v) => A::F32(v[..k].to_vec()),
        A::F64(v) => A::F64(v[..k].to_vec()),
        A::U8(v) => A::U8(v[..k].to_vec()),
        A::I8(v) => A::I8(v[..k].to_vec()),
        A::I16(v) => A::I16(v[..k].to_vec()),
        A::I32(v) => A::I32(v[..k].to_vec()),
        A::I64(v) => A::I64(v[..k].to_vec()),
        A::Bool(v) => A::Bool(v[..k].to_vec()),
    };
    let mut shape = a.shape;
    shape[0] = n;
    NdArray { shape, data }
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

/// Runs `model` on `inputs` and scores it against `labels` (described by the `&str` in errors),
/// with `metric` or the one the labels suggest.
fn score(
    model: &Model,
    inputs: &tinyq::BoundInputs,
    labels: (&NdArray, &str),
    metric: Option<Metric>,
    what: &str,
) -> Result<tinyq::MetricValue> {
    let per_sample = model.graph.tensor(model.graph.outputs[0]).numel();
    let metric = metric.unwrap_or_else(|| tinyq::default_metric(labels.0, per_sample));
    let bar = progress(inputs.samples, what);
    let out = tinyq::run_samples(model, inputs, &|n| bar.set_position(n as u64))?;
    bar.finish_and_clear();
    tinyq::compute_metric(metric, &out.real(model, 0), per_sample, labels.0, out.samples)
        .with_context(|| labels.1.to_string())
}

/// The corrections the default kept, with the output error of each configuration tried.
fn corrections_summary(c: &tinyq::choose::CorrectionChoice) -> String {
    let kept = if c.chosen.is_empty() { "none".to_string() } else { c.chosen.join(", ") };
    let tried: Vec<String> = c.scored.iter().map(|(n, e)| format!("{n} {e:.4}")).collect();
    format!("corrections: {kept} (output error on {} calibration samples: {})", c.samples, tried.join(", "))
}

/// The calibration as the summary line says it: the method, or for `auto` what was chosen.
fn calibration_summary(flag: &str, auto: Option<&tinyq::autocal::AutoCalibration>, rows: &[tinyq::RangeRow]) -> String {
    let Some(a) = auto else { return flag.to_string() };
    if a.chosen != "per tensor" {
        return format!("auto: {} for every tensor (closest outputs on {} samples)", a.chosen, a.samples);
    }
    let mut counts: Vec<(String, usize)> = Vec::new();
    for r in rows {
        match counts.iter_mut().find(|(m, _)| *m == r.method) {
            Some(c) => c.1 += 1,
            None => counts.push((r.method.clone(), 1)),
        }
    }
    let list: Vec<String> = counts.iter().map(|(m, n)| format!("{m} ×{n}")).collect();
    format!("auto: per tensor ({}; closest outputs on {} samples)", list.join(", "), a.samples)
}

/// `--per-tensor[=all|dense]` as (every layer per tensor, dense layers per tensor).
pub(crate) fn per_tensor_flag(v: Option<&str>) -> Result<(bool, bool)> {
    match v {
        None => Ok((false, false)),
        Some("all") => Ok((true, false)),
        Some("dense") => Ok((false, true)),
        Some(other) => bail!("--per-tensor={other}: expected all (every layer) or dense (fully-connected layers only)"),
    }
}

fn quantize(a: &QuantizeArgs) -> Result<()> {
    if same_file(&a.output, &a.model)
        || same_file(&a.output, &a.calib)
        || a.data.as_deref().is_some_and(|d| same_file(&a.output, d))
    {
        bail!("-o {}: refusing to overwrite an input file", a.output.display());
    }
    if a.output.extension().and_then(|e| e.to_str()) != Some("tflite") {
        bail!("-o {}: the output must be a .tflite file", a.output.display());
    }
    let calibration: tinyq::Calibration = a.calibration.parse().map_err(|e| anyhow::anyhow!("--calibration {e}"))?;
    let float_io = match a.io.as_str() {
        "int8" => false,
        "float" => true,
        other => bail!("--io `{other}`: expected int8 or float"),
    };
    let metric = a
        .metric
        .as_deref()
        .map(|m| Metric::parse(m).with_context(|| format!("--metric `{m}`: expected top1, rmse or auc")))
        .transpose()?;
    match (a.max_drop, &a.data) {
        (Some(_), None) => bail!("--max-drop needs --data: the labelled evaluation set the drop is measured on"),
        (Some(d), _) if !d.is_finite() || d < 0.0 => {
            bail!("--max-drop {d}: expected a drop of 0 or more (points for top1/auc, % of FP32 for rmse)")
        }
        (None, _) if a.allow_float => {
            bail!("--allow-float goes with --max-drop (to keep chosen layers in float, name them with --keep-float)")
        }
        (None, _) if a.no_int16 => bail!("--no-int16 goes with --max-drop"),
        (None, _) if a.tune_data.is_some() => bail!("--tune-data goes with --max-drop"),
        _ => {}
    }
    let out = Staged::file(&a.output, "-o")?;
    let model = load(&a.model)?;
    let ds = Dataset::open(&a.calib, &load_options(&a.load)?)?;
    let keys = if !a.x.is_empty() {
        a.x.clone()
    } else if model.graph.inputs.len() == 1 && ds.has("x_calib") {
        vec!["x_calib".to_string()]
    } else {
        tinyq::default_input_keys(&model.graph)
    };
    drop(ds);
    let (_, calib) = bind_file(&model, &a.calib, &keys, &a.load, a.calib_samples)?;
    let warnings = match &a.data {
        Some(data) => tinyq::calibration_warnings(
            &model.graph,
            &calib,
            Some(&bind_file(&model, data, std::slice::from_ref(&a.eval_x), &a.load, None)?.1),
        ),
        None => tinyq::calibration_warnings(&model.graph, &calib, None),
    };
    let (per_tensor, per_tensor_dense) = per_tensor_flag(a.per_tensor.as_deref())?;
    let opts = tinyq::QuantizeOptions {
        calibration,
        per_tensor,
        per_tensor_dense,
        bias_correction: a.bias_correction,
        equalize: a.equalize,
        choose_corrections: !a.no_corrections,
        adaround: a.adaround,
        float_io,
        keep_float: a.keep_float.clone(),
        int16: a.int16.clone(),
    };
    let bar = progress(calib.samples, "calibrate");
    let start = Instant::now();
    let mut budget = None;
    let (mut corrections, mut passes) = (None, Vec::new());
    let (graph, ranges, auto) = match (a.max_drop, &a.data) {
        (Some(max_drop), Some(data)) => {
            let data = a.tune_data.as_ref().unwrap_or(data);
            let (ds, eval_inputs) = bind_file(&model, data, std::slice::from_ref(&a.eval_x), &a.load, None)?;
            let labels = ds.array(&a.y)?;
            let options = tinyq::budget::BudgetOptions {
                max_drop,
                allow_float: a.allow_float,
                allow_int16: !a.no_int16,
                max_candidates: a.max_candidates,
            };
            let (g, r, report) = tinyq::budget::quantize_within_budget(
                &model,
                &calib,
                &eval_inputs,
                &labels,
                metric,
                &opts,
                &options,
                &|n| bar.set_position(n as u64),
            )
            .map_err(|e| match e {
                tinyq::TinyqError::Metric(m) => anyhow::anyhow!("{}: labels `{}`: {m}", data.display(), a.y),
                other => other.into(),
            })?;
            bar.finish_and_clear();
            if !report.met {
                if a.json {
                    println!("{}", json!({ "model": a.model.display().to_string(), "budget": report }));
                } else {
                    print_budget(&report);
                }
                bail!("{}", budget_refusal(&report, a.allow_float));
            }
            budget = Some(report);
            (g, r, None)
        }
        _ => {
            let q = tinyq::quantize_passes(&model, &calib, &opts, &|n| bar.set_position(n as u64))?;
            (corrections, passes) = (q.corrections, q.passes);
            (q.graph, q.ranges, q.auto)
        }
    };
    bar.finish_and_clear();
    let written = tinyq::tflite::write_tflite(&graph).with_context(|| out.describe())?;
    out.write(&written)?;
    let seconds = start.elapsed().as_secs_f64();
    let flash = tinyq::tflite::flash_breakdown(&written).with_context(|| a.output.display().to_string())?;
    let int8_bytes = flash.total;
    let fp32_bytes = model.graph.parameter_count().0 as u64 * 4;

    let mut metrics = None;
    if let Some(data) = &a.data {
        // Score the file as written, so the INT8 figure is the exported model's.
        let quantized = load(out.path())?;
        let (ds, inputs) = bind_file(&model, data, std::slice::from_ref(&a.eval_x), &a.load, None)?;
        let labels = ds.array(&a.y)?;
        let described = format!("{}: labels `{}`", data.display(), a.y);
        let fp32 = score(&model, &inputs, (&labels, &described), metric, "FP32 eval")?;
        let (_, q_inputs) = bind_file(&quantized, data, std::slice::from_ref(&a.eval_x), &a.load, None)?;
        let int8 = score(&quantized, &q_inputs, (&labels, &described), Some(fp32.metric), "INT8 eval")?;
        metrics = Some((fp32, int8));
    }

    // Every step succeeded: only now does the file appear.
    out.commit()?;
    // With --tune-data the budget was chosen on another set: the drop on --data is held out.
    let held_out = match (&budget, &metrics, &a.tune_data) {
        (Some(b), Some((f, q)), Some(tune)) => Some((tinyq::budget::metric_drop(f.metric, f.value, q.value), b, tune)),
        _ => None,
    };
    if a.json {
        let mut m = metrics
            .as_ref()
            .map(|(f, q)| json!({ "metric": f.metric.name(), "fp32": f.value, "int8": q.value, "samples": f.samples }));
        if let (Some(m), Some((drop, b, tune))) = (m.as_mut(), &held_out) {
            m["held_out_drop"] = json!(drop);
            m["within_budget"] = json!(*drop <= b.max_drop);
            m["tuned_on"] = json!(tune.display().to_string());
        }
        println!(
            "{}",
            json!({
                "model": a.model.display().to_string(),
                "output": a.output.display().to_string(),
                "calibration": a.calibration,
                "auto_calibration": auto,
                "corrections": corrections,
                "passes": passes,
                "calibration_samples": calib.samples,
                "fp32_weight_bytes": fp32_bytes,
                "int8_file_bytes": int8_bytes,
                "int8_file": flash,
                "seconds": seconds,
                "metrics": m,
                "budget": budget,
                "ranges": ranges,
                "warnings": warnings,
            })
        );
        return Ok(());
    }
    if let Some(report) = &budget {
        print_budget(report);
    }
    let rows = ranges
        .iter()
        .map(|r| {
            vec![
                r.tensor.clone(),
                format!("{:.4} … {:.4}", r.observed.0, r.observed.1),
                format!("{:.4} … {:.4}", r.chosen.0, r.chosen.1),
                r.method.clone(),
                format!("{:.6}", r.scale),
                r.zero_point.to_string(),
            ]
        })
        .collect();
    println!("{}", render::table(&["tensor", "observed", "chosen", "method", "scale", "zero point"], rows));
    println!(
        "{} → {} · FP32 weights {} → INT8 file {} ({:.2}×, {} of it quantization parameters) · {} calibration samples, {} · {:.2} s",
        a.model.display(),
        a.output.display(),
        render::bytes(fp32_bytes),
        render::bytes(int8_bytes),
        int8_bytes as f64 / fp32_bytes.max(1) as f64,
        render::bytes(flash.quantization),
        calib.samples,
        calibration_summary(&a.calibration, auto.as_ref(), &ranges),
        seconds
    );
    if let Some(c) = &corrections {
        println!("{}", corrections_summary(c));
    }
    for w in &warnings {
        println!("warning: {w}");
    }
    if let Some((f, q)) = metrics {
        println!(
            "{}",
            render::table(
                &["metric", "FP32", "INT8", "change"],
                vec![vec![
                    f.metric.name().into(),
                    format!("{:.4}", f.value),
                    format!("{:.4}", q.value),
                    format!("{:+.4}", q.value - f.value)
                ]]
            )
        );
    }
    if let Some((drop, b, tune)) = held_out {
        println!(
            "held out: drop {drop:.2} {} on {} against the budget of {} {} met on {} ({})",
            b.drop_unit,
            a.data.as_ref().map_or(String::new(), |d| d.display().to_string()),
            b.max_drop,
            b.drop_unit,
            tune.display(),
            if drop <= b.max_drop { "within it" } else { "over it" }
        );
    }
    Ok(())
}

/// The budget search as a table: plain PTQ, then every step kept with the metric after it.
fn print_budget(r: &tinyq::budget::BudgetReport) {
    let m = r.metric.name();
    let mut rows = vec![vec![
        "0".into(),
        "plain PTQ".into(),
        "–".into(),
        "–".into(),
        format!("{:.4}", r.plain),
        format!("{:.2}", r.plain_drop),
    ]];
    rows.extend(r.steps.iter().enumerate().map(|(k, s)| {
        vec![
            (k + 1).to_string(),
            s.kind.to_string(),
            s.target.clone(),
            s.change.clone(),
            format!("{:.4}", s.metric),
            format!("{:.2}", s.drop),
        ]
    }));
    println!(
        "{}",
        render::table(&["step", "kind", "layer / tensor", "change", m, &format!("drop ({})", r.drop_unit)], rows)
    );
    println!(
        "budget: {m} drop ≤ {} {} on {} samples · FP32 {:.4} · final {:.4} (drop {:.2}) · {} · candidates scored: {} calibration, {} int16, {} float (at most {} per step)",
        r.max_drop,
        r.drop_unit,
        r.eval_samples,
        r.fp32,
        r.final_metric,
        r.final_drop,
        if r.met { "met" } else { "NOT met" },
        r.calibration_candidates,
        r.int16_candidates,
        r.float_candidates,
        r.max_candidates
    );
}

/// Why the budget could not be met, and what might help.
fn budget_refusal(r: &tinyq::budget::BudgetReport, allow_float: bool) -> String {
    let hint = if !allow_float {
        "try --allow-float to let the most sensitive layers stay in float, or a larger --max-drop"
    } else if r.calibration_candidates >= r.max_candidates
        || r.int16_candidates >= r.max_candidates
        || r.float_candidates >= r.max_candidates
    {
        "try a larger --max-candidates or --max-drop"
    } else {
        "try a larger --max-drop or calibration data closer to the evaluation data"
    };
    format!(
"--max-drop {}: the budget cannot be met; the best {} reached is {:.4} against FP32 {:.4}, a drop of {:.2} {} (plain PTQ: {:.2}) after {} step(s) ({} calibration, {} int16-activation, {} float candidate(s) scored); {} — no file written",
        r.max_drop,
        r.metric.name(),
        r.final_metric,
        r.fp32,
        r.final_drop,
        r.drop_unit,
        r.plain_drop,
        r.steps.len(),
        r.calibration_candidates,
        r.int16_candidates,
        r.float_candidates,
        hint
    )
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
    let size = |flag: &str, v: Option<&str>| -> Result<Option<u64>> {
        v.map(|s| {
            tinyq::parse_size(s).with_context(|| format!("{flag} `{s}`: expected a size such as 64KiB, 1MiB or 4096"))
        })
        .transpose()
    };
    let limits = tinyq::Limits {
        board: device
            .map(|d| {
                tinyq::find_board(d).with_context(|| {
                    format!("--device `{d}`: unknown board (`tinyq report --list-devices` lists them)")
                })
            })
            .transpose()?,
        ram_bytes: size("--ram-budget", ram_budget)?,
        flash_bytes: size("--flash-budget", flash_budget)?,
    };
    let r = tinyq::report(model, pointer_width, kernels)?;
    let over = tinyq::check_fit(&r, &limits);
    if json {
        let mut body = serde_json::to_value(&r)?;
        body["fits"] = json!(over.is_empty());
        body["overruns"] = json!(over);
        if let Some(b) = limits.board {
            body["measured_at_device_clock"] = crate::verify::measured_json(&r, b);
        }
        println!("{body}");
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
            "{}: flash {} · RAM (TFLM arena, {}-bit) {} = head {} + tail {} · {} parameters · {} MACs",
            r.model,
            render::bytes(r.flash_bytes),
            r.pointer_width,
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
        if let Some(b) = limits.board {
            println!("{}: {} SRAM, {} flash", b.name, render::bytes(b.sram_bytes), render::bytes(b.flash_bytes));
            crate::verify::print_measured(&r, b);
        }
    }
    if over.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for o in &over {
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
    let (_, f_inputs) = bind(&fm, d)?;
    let (_, q_inputs) = bind(&qm, d)?;
    let r = tinyq::debug(&fm, &qm, &f_inputs, &q_inputs)?;
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

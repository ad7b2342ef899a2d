//! `tinyq train`: quantization-aware fine-tuning, flags → `tinyq::train`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use tinyq::data::Dataset;
use tinyq::{Metric, OptimizerKind, RangeMode, Schedule, Supervision, TrainOptions, TrainProgress, Validation};

use crate::args::LoadArgs;
use crate::commands::{bind_file, load, load_options, progress, same_file};
use crate::output::Staged;
use crate::render;

/// `tinyq train` flags.
#[derive(Args)]
pub struct TrainArgs {
    /// The FP32 model (.onnx or .tflite).
    pub model: PathBuf,
    /// Training data (any format `--data` takes elsewhere).
    #[arg(long)]
    pub data: PathBuf,
    /// Input array(s) of --data (default `x`).
    #[arg(long = "x", value_delimiter = ',')]
    pub x: Vec<String>,
    /// Labels array of --data (default `y`); see --distill for training without labels.
    #[arg(long, conflicts_with = "distill")]
    pub labels: Option<String>,
    /// No labels: learn to reproduce the FP32 model's own outputs (distillation).
    #[arg(long)]
    pub distill: bool,
    /// The loss: kl or mse with --distill (default: kl when the outputs are class scores — a
    /// softmax output or top-1 scoring — mse otherwise), cross-entropy or mse with labels.
    #[arg(long)]
    pub loss: Option<String>,
    /// Softmax temperature of distillation.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// Use only the first N training samples.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Passes over the training data.
    #[arg(long)]
    pub epochs: usize,
    /// Samples per optimizer step.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Learning rate (default 1e-4 for adam, 1e-3 for sgd).
    #[arg(long)]
    pub lr: Option<f32>,
    /// adam or sgd.
    #[arg(long, default_value = "adam")]
    pub optimizer: String,
    /// Momentum of sgd.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f32,
    /// Learning-rate schedule: cosine, constant or step:EVERY:GAMMA (e.g. step:2:0.1).
    #[arg(long, default_value = "cosine")]
    pub schedule: String,
    /// Activation ranges: learned (trained step sizes) or ema (moving average of min/max).
    #[arg(long, default_value = "learned")]
    pub ranges: String,
    /// Seed of the sample order: the same seed and flags give the same file.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Labelled validation set: metric of the INT8 model after each epoch; the best epoch is kept.
    #[arg(long)]
    pub val: Option<PathBuf>,
    /// Input array of --val.
    #[arg(long = "val-x", default_value = "x")]
    pub val_x: String,
    /// Labels array of --val.
    #[arg(long = "val-y", default_value = "y")]
    pub val_y: String,
    /// Validation metric: top1, rmse or auc.
    #[arg(long)]
    pub metric: Option<String>,
    /// Calibration data for the starting ranges (default: --calib-samples samples spread evenly
    /// over the training data).
    #[arg(long)]
    pub calib: Option<PathBuf>,
    /// Calibration samples (the first ones of --calib; spread over the training data without it).
    #[arg(long, default_value_t = 500)]
    pub calib_samples: usize,
    /// auto (as `tinyq quantize`), minmax, percentile[=P], entropy or mse: the starting ranges.
    #[arg(long, default_value = "auto")]
    pub calibration: String,
    /// One weight scale per tensor instead of per output channel: `--per-tensor` (or
    /// `--per-tensor=all`) for every layer, `--per-tensor=dense` for fully-connected layers only
    /// (convolutions stay per channel).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "all", value_name = "all|dense")]
    pub per_tensor: Option<String>,
    /// int8 or float model inputs and outputs.
    #[arg(long, default_value = "int8")]
    pub io: String,
    /// Output .tflite file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Also write the fine-tuned float model as ONNX.
    #[arg(long)]
    pub save_fp32: Option<PathBuf>,
    /// Print one JSON object (per-epoch rows, FP32/PTQ/best validation figures).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub load: LoadArgs,
}

fn options(a: &TrainArgs) -> Result<TrainOptions> {
    let calibration: tinyq::Calibration = a.calibration.parse().map_err(|e| anyhow::anyhow!("--calibration {e}"))?;
    let float_io = match a.io.as_str() {
        "int8" => false,
        "float" => true,
        other => bail!("--io `{other}`: expected int8 or float"),
    };
    let (optimizer, default_lr) = match a.optimizer.as_str() {
        "adam" => (OptimizerKind::adam(), 1e-4),
        "sgd" if (0.0..1.0).contains(&a.momentum) => (OptimizerKind::Sgd { momentum: a.momentum }, 1e-3),
        "sgd" => bail!("--momentum {}: expected a value in [0, 1)", a.momentum),
        other => bail!("--optimizer `{other}`: expected adam or sgd"),
    };
    let per_tensor = crate::quantize::per_tensor_flag(a.per_tensor.as_deref())?.flags();
    let loss = match a.loss.as_deref() {
        None => None,
        Some("kl") => Some(tinyq::Loss::Kl { temperature: a.temperature }),
        Some("mse") => Some(tinyq::Loss::Mse),
        Some("cross-entropy") => Some(tinyq::Loss::CrossEntropy),
        Some(other) => bail!("--loss `{other}`: expected kl, mse or cross-entropy"),
    };
    let learning_rate = a.lr.unwrap_or(default_lr);
    if !(learning_rate.is_finite() && learning_rate > 0.0) {
        bail!("--lr {learning_rate}: expected a positive number");
    }
    let ranges = match a.ranges.as_str() {
        "learned" => RangeMode::Learned,
        "ema" => RangeMode::Ema,
        other => bail!("--ranges `{other}`: expected learned or ema"),
    };
    let schedule = Schedule::parse(&a.schedule)
        .with_context(|| format!("--schedule `{}`: expected cosine, constant or step:EVERY:GAMMA", a.schedule))?;
    if a.epochs == 0 {
        bail!("--epochs 0: train for at least one epoch");
    }
    if a.batch_size == 0 {
        bail!("--batch-size 0: a batch needs at least one sample");
    }
    if !(a.temperature.is_finite() && a.temperature > 0.0) {
        bail!("--temperature {}: expected a positive number", a.temperature);
    }
    let metric = a
        .metric
        .as_deref()
        .map(|m| Metric::parse(m).with_context(|| format!("--metric `{m}`: expected top1, rmse or auc")))
        .transpose()?;
    Ok(TrainOptions {
        calibration,
        per_tensor: per_tensor.0,
        per_tensor_dense: per_tensor.1,
        loss,
        float_io,
        ranges,
        epochs: a.epochs,
        batch_size: a.batch_size,
        learning_rate,
        optimizer,
        schedule,
        seed: a.seed,
        temperature: a.temperature,
        metric,
    })
}

pub fn train(a: &TrainArgs) -> Result<()> {
    let inputs = [Some(&a.model), Some(&a.data), a.val.as_ref(), a.calib.as_ref()];
    for out in [Some(&a.output), a.save_fp32.as_ref()].into_iter().flatten() {
        if inputs.iter().flatten().any(|i| same_file(out, i)) {
            bail!("{}: refusing to overwrite an input file", out.display());
        }
    }
    if a.output.extension().and_then(|e| e.to_str()) != Some("tflite") {
        bail!("-o {}: the output must be a .tflite file", a.output.display());
    }
    if let Some(p) = &a.save_fp32 {
        if p.extension().and_then(|e| e.to_str()) != Some("onnx") {
            bail!("--save-fp32 {}: the float model is written as ONNX (.onnx)", p.display());
        }
    }
    let opts = options(a)?;
    let out = Staged::file(&a.output, "-o")?;
    let fp32_out = a.save_fp32.as_deref().map(|p| Staged::file(p, "--save-fp32")).transpose()?;
    let model = load(&a.model)?;
    let (ds, data) = bind_file(&model, &a.data, &a.x, &a.load, a.limit)?;
    let label_key = a.labels.clone().unwrap_or_else(|| "y".into());
    let labels = if a.distill {
        None
    } else if ds.has(&label_key) {
        let mut y = ds.array(&label_key)?;
        if let Some(n) = a.limit {
            y = tinyq::jobs::truncate_rows(y, n);
        }
        Some(y)
    } else {
        bail!(
            "{}: no labels array `{label_key}` (name it with --labels KEY, or train without labels with --distill)",
            a.data.display()
        );
    };
    drop(ds);
    let calib = match &a.calib {
        Some(path) => {
            let keys = if a.x.is_empty() && Dataset::open(path, &load_options(&a.load)?)?.has("x_calib") {
                vec!["x_calib".into()]
            } else {
                a.x.clone()
            };
            bind_file(&model, path, &keys, &a.load, Some(a.calib_samples))?.1
        }
        None => data.spread(a.calib_samples),
    };
    let val = match &a.val {
        Some(path) => {
            let (ds, inputs) = bind_file(&model, path, std::slice::from_ref(&a.val_x), &a.load, None)?;
            let y = ds.array(&a.val_y).with_context(|| format!("--val {}", path.display()))?;
            Some((inputs, y))
        }
        None => None,
    };

    if a.distill && !a.json {
        let per_sample = model.graph.outputs.first().map_or(1, |&o| model.graph.tensor(o).numel());
        let from_labels = val.as_ref().map(|(_, y)| tinyq::default_metric(y, per_sample));
        let (loss, why) = tinyq::distill_loss(&model.graph, opts.loss, opts.metric, from_labels, opts.temperature)?;
        println!("distillation loss: {} ({why})", loss.name());
    }
    let bar = progress(data.samples, "epoch 1");
    let quiet = a.json;
    let on_batch = |epoch: usize, done: usize| {
        bar.set_message(format!("epoch {epoch}/{}", a.epochs));
        bar.set_position(done as u64);
    };
    let on_epoch = |r: &tinyq::EpochRow| {
        if !quiet {
            let val = match (r.val_metric, r.val_simulated) {
                (Some(v), Some(s)) => format!(" · val INT8 {v:.4} (simulated {s:.4})"),
                _ => String::new(),
            };
            bar.suspend(|| {
                println!(
                    "epoch {}/{} · loss {:.4} · train {:.4}{val} · lr {:.2e} · {:.0} samples/s",
                    r.epoch, a.epochs, r.loss, r.train_metric, r.learning_rate, r.samples_per_second
                )
            });
        }
        bar.reset();
    };
    let supervision = match &labels {
        Some(y) => Supervision::Labels(y),
        None => Supervision::Distill,
    };
    let validation = val.as_ref().map(|(inputs, labels)| Validation { inputs, labels });
    let (int8, float, report) = tinyq::train(
        &model,
        &data,
        &calib,
        supervision,
        validation,
        &opts,
        &TrainProgress { batch: &on_batch, epoch: &on_epoch },
    )?;
    bar.finish_and_clear();
    out.write(&tinyq::tflite::write_tflite(&int8).with_context(|| out.describe())?)?;
    let mut outputs = vec![out];
    if let Some(p) = fp32_out {
        let tuned =
            tinyq::Model { graph: float, path: a.model.clone(), format: tinyq::ModelFormat::Onnx, file_bytes: 0 };
        tinyq::save_onnx(&tuned, p.path()).with_context(|| p.describe())?;
        outputs.push(p);
    }
    crate::output::commit_all(outputs)?;

    if a.json {
        println!(
            "{}",
            json!({
                "model": a.model.display().to_string(),
                "output": a.output.display().to_string(),
                "fp32_output": a.save_fp32.as_ref().map(|p| p.display().to_string()),
                "mode": if a.distill { "distill" } else { "labels" },
                "seed": a.seed,
                "report": report,
            })
        );
        return Ok(());
    }
    if let (Some(m), Some(f), Some(p), Some(b)) = (report.metric, report.fp32_val, report.ptq_val, report.best_val) {
        let row = |what: &str, v: f64| vec![what.to_string(), format!("{v:.4}"), format!("{:+.4}", v - f)];
        println!(
            "{}",
            render::table(
                &[m.name(), "validation", "vs FP32"],
                vec![row("FP32", f), row("INT8, PTQ", p), row(&format!("INT8, QAT (epoch {})", report.best_epoch), b)]
            )
        );
    }
    println!(
        "{} → {} ({} samples, {} loss: {}, {} epochs)",
        a.model.display(),
        a.output.display(),
        report.samples,
        report.loss,
        report.loss_reason,
        a.epochs
    );
    Ok(())
}

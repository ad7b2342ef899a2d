//! `tinyq train`: quantization-aware fine-tuning, flags → `tinyq::train`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use tinyq::jobs::{DataSource, DataSpec, LabelledData, TrainRequest, TrainSettings};
use tinyq::{TrainOptions, TrainProgress};

use crate::args::LoadArgs;
use crate::commands::{load, load_options, progress, same_file};
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
    /// int8 or int4 conv, depthwise conv and fully connected weights (int4 as `quantize
    /// --weights int4` writes them), simulated in training exactly as the file stores them.
    #[arg(long, default_value = "int8", value_name = "int8|int4")]
    pub weights: String,
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
    let settings = TrainSettings {
        calibration: &a.calibration,
        per_tensor: a.per_tensor.as_deref(),
        weights: Some(&a.weights),
        io: &a.io,
        optimizer: &a.optimizer,
        momentum: a.momentum,
        lr: a.lr,
        loss: a.loss.as_deref(),
        temperature: a.temperature,
        ranges: &a.ranges,
        schedule: &a.schedule,
        metric: a.metric.as_deref(),
        epochs: a.epochs,
        batch_size: a.batch_size,
        seed: a.seed,
    };
    Ok(settings.parse()?)
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
    let load_opts = load_options(&a.load)?;
    let req = TrainRequest {
        data: DataSpec { source: DataSource::file(&a.data, load_opts.clone()), keys: a.x.clone(), limit: a.limit },
        labels: (!a.distill).then(|| a.labels.clone().unwrap_or_else(|| "y".into())),
        calib: a.calib.as_ref().map(|c| DataSpec {
            source: DataSource::file(c, load_opts.clone()),
            keys: a.x.clone(),
            limit: None,
        }),
        calib_samples: a.calib_samples,
        val: a.val.as_ref().map(|v| LabelledData {
            source: DataSource::file(v, load_opts.clone()),
            x: a.val_x.clone(),
            y: a.val_y.clone(),
        }),
        options: options(a)?,
        output: a.output.clone(),
    };
    req.check()?;
    let out = Staged::file(&a.output, "-o")?;
    let fp32_out = a.save_fp32.as_deref().map(|p| Staged::file(p, "--save-fp32")).transpose()?;
    let model = load(&a.model)?;
    let prepared = req.prepare(&model)?;
    if !a.json {
        if let Some((loss, why)) = prepared.distill_loss()? {
            println!("distillation loss: {} ({why})", loss.name());
        }
    }
    let bar = progress(prepared.samples(), "epoch 1");
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
    let outcome = prepared.run(&TrainProgress { batch: &on_batch, epoch: &on_epoch })?;
    bar.finish_and_clear();
    let (float, report) = (outcome.float, outcome.report);
    out.write(&outcome.bytes)?;
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

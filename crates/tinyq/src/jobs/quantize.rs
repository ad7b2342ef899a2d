//! The quantize job: calibration data and options in; the `.tflite` bytes, the ranges, the flash
//! split, the metrics of the file as written and the budget search's steps out.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use tinyq_data::Dataset;

use super::{bind_limited, score, DataSource, DataSpec, Progress};
use crate::autocal::AutoCalibration;
use crate::budget::{BudgetOptions, BudgetReport};
use crate::error::InFile;
use crate::{BoundInputs, Metric, MetricValue, Model, QuantizeOptions, RangeRow, TinyqError};

/// A labelled dataset: the input array `x` and the labels `y`.
#[derive(Clone, Debug)]
pub struct LabelledData {
    pub source: DataSource,
    pub x: String,
    pub y: String,
}

/// The accuracy budget: the search's options and, optionally, the labelled set it chooses on
/// (with the same arrays as the evaluation set; default: the evaluation set itself).
#[derive(Clone, Debug)]
pub struct BudgetRequest {
    pub options: BudgetOptions,
    pub tune: Option<DataSource>,
}

/// Everything `quantize` needs besides the float model.
#[derive(Clone, Debug)]
pub struct QuantizeRequest {
    /// Calibration samples; with no keys, `x_calib` when the model has one input and the data
    /// holds it, else the default keys.
    pub calib: DataSpec,
    pub options: QuantizeOptions,
    /// Labelled evaluation set: FP32 and INT8 metrics side by side.
    pub eval: Option<LabelledData>,
    pub metric: Option<Metric>,
    /// With an evaluation set: search for a quantization within this budget.
    pub budget: Option<BudgetRequest>,
    /// The file the result will be written to, for messages.
    pub output: PathBuf,
}

/// The FP32 and INT8 metric on the evaluation set.
#[derive(Clone, Debug, Serialize)]
pub struct MetricPair {
    pub fp32: MetricValue,
    pub int8: MetricValue,
}

/// With a separate tuning set: the drop on the evaluation set, which the search never saw.
#[derive(Clone, Debug, Serialize)]
pub struct HeldOut {
    pub drop: f64,
    pub within_budget: bool,
}

/// What `quantize` produced.
#[derive(Clone, Debug)]
pub struct QuantizeOutcome {
    /// The `.tflite` file's bytes.
    pub bytes: Vec<u8>,
    pub ranges: Vec<RangeRow>,
    /// With `auto` calibration and no budget: what the automatic choice did.
    pub auto: Option<AutoCalibration>,
    /// With `auto` calibration (unless corrections are off) and no budget: the corrections kept
    /// and the output error of each configuration tried.
    pub corrections: Option<crate::choose::CorrectionChoice>,
    /// The PTQ passes that ran, each with its time.
    pub passes: Vec<crate::pipeline::PassRecord>,
    pub calibration_samples: usize,
    pub fp32_weight_bytes: u64,
    pub flash: tinyq_tflite::FlashBreakdown,
    pub warnings: Vec<String>,
    pub metrics: Option<MetricPair>,
    pub budget: Option<BudgetReport>,
    pub held_out: Option<HeldOut>,
    /// Calibration, quantization and serialization.
    pub seconds: f64,
}

impl QuantizeRequest {
    /// The checks that need no file: a budget needs an evaluation set and a drop of 0 or more.
    pub fn check(&self) -> Result<(), TinyqError> {
        let Some(b) = &self.budget else {
            if self.options.weights == crate::WeightBits::Mixed {
                return Err(TinyqError::Input(
                    "--weights mixed chooses per layer under an accuracy budget: it needs --data and --max-drop".into(),
                ));
            }
            return Ok(());
        };
        if self.options.weights == crate::WeightBits::Mixed && b.options.allow_float {
            return Err(TinyqError::Input(
                "--allow-float does not go with --weights mixed, which chooses between int4 and int8 weights only: use --weights int8 to let layers stay in float".into(),
            ));
        }
        if self.options.weights == crate::WeightBits::Int4 {
            return Err(TinyqError::Input(
                "--weights int4 does not go with --max-drop: use --weights mixed to choose int4 layers under the budget"
                    .into(),
            ));
        }
        let d = b.options.max_drop;
        if self.eval.is_none() {
            return Err(TinyqError::Input(
                "--max-drop needs --data: the labelled evaluation set the drop is measured on".into(),
            ));
        }
        if !d.is_finite() || d < 0.0 {
            return Err(TinyqError::Input(format!(
                "--max-drop {d}: expected a drop of 0 or more (points for top1/auc, % of FP32 for rmse)"
            )));
        }
        Ok(())
    }
}

impl QuantizeOutcome {
    /// The outcome as `tinyq quantize --json` prints it, less the command's own arguments.
    pub fn to_json(&self, req: &QuantizeRequest) -> serde_json::Value {
        let mut m = self.metrics.as_ref().map(|p| {
            serde_json::json!({ "metric": p.fp32.metric.name(), "fp32": p.fp32.value, "int8": p.int8.value, "samples": p.fp32.samples })
        });
        let tune = req.budget.as_ref().and_then(|b| b.tune.as_ref());
        if let (Some(m), Some(h), Some(tune)) = (m.as_mut(), &self.held_out, tune) {
            m["held_out_drop"] = serde_json::json!(h.drop);
            m["within_budget"] = serde_json::json!(h.within_budget);
            m["tuned_on"] = serde_json::json!(tune.path().display().to_string());
        }
        serde_json::json!({
            "auto_calibration": self.auto,
            "corrections": self.corrections,
            "passes": self.passes,
            "calibration_samples": self.calibration_samples,
            "fp32_weight_bytes": self.fp32_weight_bytes,
            "int8_file_bytes": self.flash.total,
            "int8_file": self.flash,
            "seconds": self.seconds,
            "metrics": m,
            "budget": self.budget,
            "ranges": self.ranges,
            "warnings": self.warnings,
        })
    }

    /// The quantized model as read back from [`QuantizeOutcome::bytes`] (with every check of a
    /// loaded file), named `path`.
    pub fn model(&self, path: PathBuf) -> Result<Model, TinyqError> {
        crate::load_model_bytes(&self.bytes, &path)
    }
}

/// Post-training quantization of `model` as `req` asks; the budget not met is
/// [`TinyqError::BudgetNotMet`], carrying the search's report.
pub fn quantize_job(
    model: &Model,
    req: &QuantizeRequest,
    progress: &dyn Progress,
) -> Result<QuantizeOutcome, TinyqError> {
    req.check()?;
    let calib = bind_calibration(model, &req.calib)?;
    let eval = match &req.eval {
        Some(e) => {
            let ds = e.source.open()?;
            let inputs = bind_limited(model, &ds, std::slice::from_ref(&e.x), None)?;
            Some((e, ds, inputs))
        }
        None => None,
    };
    let mut warnings = crate::calibration_warnings(&model.graph, &calib, eval.as_ref().map(|e| &e.2));
    warnings.extend(crate::quantize::int4_caveats(&model.graph, &req.options));
    progress.begin("calibrate", calib.samples);
    let start = Instant::now();
    let advance = |n: usize| progress.advance(n);
    let (q, budget) = match (&req.budget, &eval) {
        (Some(b), Some((e, ds, inputs))) => {
            let (graph, ranges, report) = within_budget(model, &calib, (e, ds, inputs), req, b, &advance)?;
            let q = crate::Quantized { graph, ranges, auto: None, corrections: None, passes: Vec::new() };
            (q, Some(report))
        }
        _ => (crate::quantize_passes(model, &calib, &req.options, &advance)?, None),
    };
    let crate::Quantized { graph, ranges, auto, corrections, passes } = q;
    progress.end();
    let bytes = tinyq_tflite::write_tflite(&graph).in_file(&req.output)?;
    let seconds = start.elapsed().as_secs_f64();
    let flash = tinyq_tflite::flash_breakdown(&bytes).in_file(&req.output)?;
    let mut outcome = QuantizeOutcome {
        bytes,
        ranges,
        auto,
        corrections,
        passes,
        calibration_samples: calib.samples,
        fp32_weight_bytes: model.graph.parameter_count().0 as u64 * 4,
        flash,
        warnings,
        metrics: None,
        budget,
        held_out: None,
        seconds,
    };
    if let Some((e, ds, inputs)) = &eval {
        // Score the file as written, so the INT8 figure is the exported model's.
        let quantized = outcome.model(req.output.clone())?;
        let labels = ds.array(&e.y)?;
        let described = format!("{}: labels `{}`", e.source.path().display(), e.y);
        let fp32 = score(model, inputs, (&labels, &described), req.metric, ("FP32 eval", progress))?;
        let q_inputs = bind_limited(&quantized, ds, std::slice::from_ref(&e.x), None)?;
        let int8 = score(&quantized, &q_inputs, (&labels, &described), Some(fp32.metric), ("INT8 eval", progress))?;
        outcome.metrics = Some(MetricPair { fp32, int8 });
    }
    // With a separate tuning set the budget was chosen on it: the drop on the evaluation set is
    // held out.
    if let (Some(b), Some(m), Some(BudgetRequest { tune: Some(_), .. })) =
        (&outcome.budget, &outcome.metrics, &req.budget)
    {
        let drop = crate::budget::metric_drop(m.fp32.metric, m.fp32.value, m.int8.value);
        outcome.held_out = Some(HeldOut { drop, within_budget: drop <= b.max_drop });
    }
    Ok(outcome)
}

/// The calibration samples: the keys asked for, else `x_calib` for a one-input model whose data
/// holds it, else the default keys.
fn bind_calibration(model: &Model, spec: &DataSpec) -> Result<BoundInputs, TinyqError> {
    let ds = spec.source.open()?;
    let keys = if !spec.keys.is_empty() {
        spec.keys.clone()
    } else if model.graph.inputs.len() == 1 && ds.has("x_calib") {
        vec!["x_calib".to_string()]
    } else {
        crate::default_input_keys(&model.graph)
    };
    bind_limited(model, &ds, &keys, spec.limit)
}

/// The budget search on the tuning set (default: the evaluation set); a budget not met is an
/// error carrying the report.
fn within_budget(
    model: &Model,
    calib: &BoundInputs,
    eval: (&LabelledData, &Dataset, &BoundInputs),
    req: &QuantizeRequest,
    b: &BudgetRequest,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<(tinyq_ir::Graph, Vec<RangeRow>, BudgetReport), TinyqError> {
    let (e, eval_ds, eval_inputs) = eval;
    let tuned;
    let (source, ds, inputs) = match &b.tune {
        Some(t) => {
            let ds = t.open()?;
            let inputs = bind_limited(model, &ds, std::slice::from_ref(&e.x), None)?;
            tuned = (ds, inputs);
            (t, &tuned.0, &tuned.1)
        }
        None => (&e.source, eval_ds, eval_inputs),
    };
    let labels = ds.array(&e.y)?;
    let mixed = req.options.weights == crate::WeightBits::Mixed;
    let search = if mixed { crate::mixed::quantize_mixed } else { crate::budget::quantize_within_budget };
    let (g, r, report) = search(model, calib, inputs, &labels, req.metric, &req.options, &b.options, progress)
        .map_err(|err| match err {
            TinyqError::Metric(m) => TinyqError::Metric(format!("{}: labels `{}`: {m}", source.path().display(), e.y)),
            other => other,
        })?;
    if !report.met {
        return Err(TinyqError::BudgetNotMet { report: Box::new(report), allow_float: b.options.allow_float, mixed });
    }
    Ok((g, r, report))
}

/// Why the budget could not be met, and what might help.
pub(crate) fn budget_refusal(r: &BudgetReport, allow_float: bool, mixed: bool) -> String {
    if mixed {
        return mixed_refusal(r);
    }
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
        "--max-drop {}: the budget cannot be met; {} (plain PTQ: {:.2}) after {} step(s) ({} calibration, {} int16-activation, {} float candidate(s) scored); {} — no file written",
        r.max_drop,
        best_reached(r),
        r.plain_drop,
        r.steps.len(),
        r.calibration_candidates,
        r.int16_candidates,
        r.float_candidates,
        hint
    )
}

/// The best metric the search reached and its drop from FP32.
fn best_reached(r: &BudgetReport) -> String {
    format!(
        "the best {} reached is {:.4} against FP32 {:.4}, a drop of {:.2} {}",
        r.metric.name(),
        r.final_metric,
        r.fp32,
        r.final_drop,
        r.drop_unit
    )
}

/// `--weights mixed` missed the budget: its search ends with int8 weights in every layer, so
/// neither more int4 nor float layers (which it does not try) would help.
fn mixed_refusal(r: &BudgetReport) -> String {
    format!(
        "--max-drop {}: the budget cannot be met with --weights mixed; with int8 weights in every layer ({} moved back from int4) {} (int4 in every layer but the first and last: {:.2}); try a larger --max-drop, or --weights int8 with --max-drop, whose search also tries other calibrations, int16 activations and, with --allow-float, float layers — no file written",
        r.max_drop,
        r.steps.len(),
        best_reached(r),
        r.plain_drop,
    )
}

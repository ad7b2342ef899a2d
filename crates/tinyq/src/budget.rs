//! Accuracy-budget quantization: quantize, measure the metric drop on a labelled evaluation set
//! with the integer engine, and while the drop is over the budget, change the quantization of the
//! layers that hurt most, one measured step at a time.
//!
//! The search, in order (see `docs/budget.md`):
//! 1. Sensitivity: the quantization debugger ([`crate::debug`]) ranks layers by the error each
//!    adds on its own, on the calibration set.
//! 2. Per-tensor calibration: for the most sensitive tensors first, every other range method
//!    (min/max, percentile 99.99 and 99.9, MSE, entropy) on statistics gathered once; a change is
//!    kept only if it lowers the drop (or, at an equal drop, raises the output SQNR against FP32).
//! 3. Int16 activations (unless `allow_int16` is off): for the most sensitive tensors, run
//!    their writer and readers with int16 activations (conv / depthwise / fully-connected as
//!    TFLM's 16x8 layers with int8 weights; ADD, CONCATENATION, pools, MEAN, RESHAPE in int16), extended
//!    through pools and reshapes to the layers beyond them, so the tensor stays int16 between
//!    them; QUANTIZE converts at the int8 boundaries (other readers get an int8 copy). Same
//!    acceptance rule; kept int16 layers accumulate.
//! 4. With `allow_float`, leave the most sensitive conv / depthwise / fully-connected layers in
//!    float between DEQUANTIZE and QUANTIZE (with the layers reading their output, when that
//!    keeps the sensitive tensor itself in float), under the same acceptance rule.
//!
//! Every candidate is written as a `.tflite` and read back before it is scored, so the metric
//! is the one the file gives; scoring is parallel over samples, and each step tries at most
//! [`BudgetOptions::max_candidates`] candidates.
//!
//! What this is not: a lone int16 layer between int8 tensors gains nothing (its int8 input
//! widens exactly and its output is rounded back to int8), so a tensor whose writer or readers
//! have no int16 kernel (SUB, MUL, TRANSPOSE, activations) is not an int16 candidate.

use rayon::prelude::*;
use serde::Serialize;
use tinyq_data::NdArray;
use tinyq_int8::{Int8Plan, TensorValue};
use tinyq_ir::{DType, Graph, TensorId};
use tinyq_quant::{
    can_keep_in_float, can_run_16x8, choose_range, output_rule, quantize_graph_mixed, Calibration, OutputRule,
    PtqConfig, TensorStats,
};

use crate::pipeline::Pass;
use crate::quantize::{float_node_indices, int16_node_indices, range_rows};
use crate::{compute_metric, default_metric, BoundInputs, Metric, Model, QuantizeOptions, RangeRow, TinyqError};

/// The budget and how hard to search.
#[derive(Clone, Debug)]
pub struct BudgetOptions {
    /// Largest allowed drop: metric points for top-1 and AUC (0.5 = half a percentage point),
    /// percent of the FP32 value for RMSE (0.5 = RMSE at most 1.005 × FP32's).
    pub max_drop: f64,
    /// Allow leaving layers in float.
    pub allow_float: bool,
    /// Try int16 activations (16x8 layers) before float layers.
    pub allow_int16: bool,
    /// Candidates scored per step at most.
    pub max_candidates: usize,
}

/// The calibration methods tried per tensor.
const METHODS: [Calibration; 5] = [
    Calibration::MinMax,
    Calibration::Percentile(99.99),
    Calibration::Percentile(99.9),
    Calibration::Mse,
    Calibration::Entropy,
];

/// One change the search kept.
#[derive(Clone, Debug, Serialize)]
pub struct BudgetStep {
    /// `calibration`, `int16` or `float`.
    pub kind: &'static str,
    /// The tensor (calibration) or the layers (int16, float) changed.
    pub target: String,
    pub change: String,
    /// Metric and drop after the change.
    pub metric: f64,
    pub drop: f64,
}

/// What the search did and where it ended.
#[derive(Clone, Debug, Serialize)]
pub struct BudgetReport {
    pub metric: Metric,
    pub max_drop: f64,
    /// `points` (top-1, AUC) or `% of FP32` (RMSE).
    pub drop_unit: &'static str,
    pub eval_samples: usize,
    pub fp32: f64,
    /// Plain PTQ with the requested calibration.
    pub plain: f64,
    pub plain_drop: f64,
    pub final_metric: f64,
    pub final_drop: f64,
    pub met: bool,
    pub steps: Vec<BudgetStep>,
    /// Candidates scored in the calibration, the int16 and the float step.
    pub calibration_candidates: usize,
    pub int16_candidates: usize,
    pub float_candidates: usize,
    pub max_candidates: usize,
    /// Layers left in float in the result.
    pub float_layers: Vec<String>,
    /// Layers running with int16 activations (16x8) in the result.
    pub int16_layers: Vec<String>,
    /// The sensitivity order used (tensor names, worst first).
    pub ranking: Vec<String>,
}

/// The drop of `value` from `fp32` in the budget's unit (positive = worse than FP32).
pub fn metric_drop(metric: Metric, fp32: f64, value: f64) -> f64 {
    match metric {
        Metric::Top1 | Metric::Auc => (fp32 - value) * 100.0,
        Metric::Rmse if fp32 > 0.0 => (value - fp32) / fp32 * 100.0,
        Metric::Rmse if value == fp32 => 0.0,
        Metric::Rmse => f64::INFINITY,
    }
}

pub(crate) fn drop_unit(metric: Metric) -> &'static str {
    match metric {
        Metric::Top1 | Metric::Auc => "points",
        Metric::Rmse => "% of FP32",
    }
}

/// How a candidate scored: the drop, then the output SQNR against FP32 as the tie-breaker.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Score {
    pub metric: f64,
    pub drop: f64,
    sqnr_db: f64,
}

impl Score {
    fn better_than(&self, other: &Score) -> bool {
        const EPS: f64 = 1e-9;
        self.drop < other.drop - EPS || (self.drop <= other.drop + EPS && self.sqnr_db > other.sqnr_db + 0.01)
    }
}

/// What the search evaluates against.
pub(crate) struct Scorer<'a> {
    eval: &'a BoundInputs,
    labels: &'a NdArray,
    pub metric: Metric,
    pub fp32: f64,
    fp32_out: Vec<f32>,
    per_sample: usize,
}

impl<'a> Scorer<'a> {
    /// Scores against the FP32 model's outputs on `eval` (metric: `metric`, or the default for
    /// the labels).
    pub(crate) fn new(
        model: &Model,
        eval: &'a BoundInputs,
        labels: &'a NdArray,
        metric: Option<Metric>,
    ) -> Result<Scorer<'a>, TinyqError> {
        let g = &model.graph;
        let per_sample = g.tensor(g.outputs[0]).numel();
        let metric = metric.unwrap_or_else(|| default_metric(labels, per_sample));
        let fp32_run = crate::run_samples(model, eval, &|_| {})?;
        let fp32_out = fp32_run.real(model, 0);
        let fp32 = compute_metric(metric, &fp32_out, per_sample, labels, eval.samples)?.value;
        Ok(Scorer { eval, labels, metric, fp32, fp32_out, per_sample })
    }

    /// Scores an int8 graph as its `.tflite` file gives it.
    pub(crate) fn score(&self, q: &Graph) -> Result<Score, TinyqError> {
        let bytes = tinyq_tflite::write_tflite(q)?;
        let file = tinyq_tflite::read_tflite(&bytes)?;
        let plan = Int8Plan::new(&file)?;
        let out_id = file.outputs[0];
        let (samples, batch) = (self.eval.samples, crate::batch_size());
        let outs: Vec<Vec<f32>> = (0..samples.div_ceil(batch))
            .into_par_iter()
            .map(|c| {
                let range = c * batch..((c + 1) * batch).min(samples);
                let n = range.len();
                let args = sample_values(&file, self.eval, range)?;
                let out = plan.run_batch(&args, n)?;
                Ok(real_values(&file, out_id, &out[0]))
            })
            .collect::<Result<_, TinyqError>>()?;
        let outs: Vec<f32> = outs.concat();
        let m = compute_metric(self.metric, &outs, self.per_sample, self.labels, self.eval.samples)?;
        let (signal, noise) = self
            .fp32_out
            .iter()
            .zip(&outs)
            .fold((0f64, 0f64), |(s, n), (&f, &q)| (s + (f as f64).powi(2), n + (f as f64 - q as f64).powi(2)));
        let sqnr_db = if noise == 0.0 { f64::INFINITY } else { 10.0 * (signal / noise).log10() };
        Ok(Score { metric: m.value, drop: metric_drop(self.metric, self.fp32, m.value), sqnr_db })
    }
}

/// Samples `range` of float data for the inputs of `g`, back to back (int8 inputs quantized as
/// TFLite's QUANTIZE).
fn sample_values(g: &Graph, data: &BoundInputs, range: std::ops::Range<usize>) -> Result<Vec<TensorValue>, TinyqError> {
    let floats = data
        .samples(range)
        .into_iter()
        .map(|s| if let crate::inputs::SampleRef::F32(v) = s { Some(v) } else { None })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| TinyqError::Input("the evaluation set must hold float data".into()))?;
    g.inputs
        .iter()
        .zip(floats)
        .map(|(&t, v)| {
            let t = g.tensor(t);
            match (t.dtype, &t.qparams) {
                (DType::I8, Some(q)) => Ok(TensorValue::I8(crate::quantize_s8(v, q.scale[0], q.zero_point[0]))),
                (DType::F32, _) => Ok(TensorValue::F32(v.to_vec())),
                _ => Err(TinyqError::Model(format!("input `{}` is neither float nor quantized int8", t.name))),
            }
        })
        .collect()
}

fn real_values(g: &Graph, t: TensorId, v: &TensorValue) -> Vec<f32> {
    match (v, &g.tensor(t).qparams) {
        (TensorValue::I8(x), Some(q)) => {
            x.iter().map(|&x| ((x as i32 - q.zero_point[0]) as f64 * q.scale[0] as f64) as f32).collect()
        }
        (TensorValue::I8(x), None) => x.iter().map(|&x| x as f32).collect(),
        (TensorValue::F32(x), _) => x.clone(),
        (TensorValue::I32(x), _) => x.iter().map(|&x| x as f32).collect(),
        (TensorValue::I16(x), Some(q)) => {
            x.iter().map(|&x| ((x as i32 - q.zero_point[0]) as f64 * q.scale[0] as f64) as f32).collect()
        }
        (TensorValue::I16(x), None) => x.iter().map(|&x| x as f32).collect(),
    }
}

/// The tensor whose range decides `t`'s parameters: `t` itself, or for ops that keep their
/// input's parameters, that input's source. `None` for fixed parameters (softmax, logistic, tanh).
fn range_source(g: &Graph, mut t: TensorId) -> Option<TensorId> {
    while let Some(p) = g.producer(t) {
        match output_rule(&g.nodes[p].op).ok()? {
            OutputRule::Own => return Some(t),
            OutputRule::SameAsInput => t = g.nodes[p].inputs[0],
            OutputRule::Fixed(..) => return None,
        }
    }
    Some(t)
}

/// The nodes that carry tensor `t` in int16: its writer and readers, extended through pools and
/// reshapes (which pass their input's int16 scale on) back to the layer that sets the scale and
/// on to the layers that read the result. `None` when the writer or every reader is ineligible.
fn int16_region(g: &Graph, t: TensorId, eligible: &dyn Fn(&usize) -> bool) -> Option<Vec<usize>> {
    let passes_scale_on = |k: usize| matches!(output_rule(&g.nodes[k].op), Ok(OutputRule::SameAsInput));
    let mut writer = g.producer(t).filter(eligible)?;
    let mut region = vec![writer];
    while passes_scale_on(writer) {
        match g.producer(g.nodes[writer].inputs[0]).filter(eligible) {
            Some(w) => {
                region.push(w);
                writer = w;
            }
            None => break,
        }
    }
    let mut frontier: Vec<usize> = g.consumers(t).into_iter().filter(eligible).collect();
    if frontier.is_empty() {
        return None;
    }
    while let Some(k) = frontier.pop() {
        if region.contains(&k) {
            continue;
        }
        region.push(k);
        if passes_scale_on(k) {
            frontier.extend(g.consumers(g.nodes[k].outputs[0]).into_iter().filter(eligible));
        }
    }
    Some(region)
}

use crate::autocal::method_name;

/// Whether the search starts from the equalized model: `--equalize`, or with `auto` calibration
/// the default's choice of corrections keeping equalization.
fn equalize_first(
    model: &Model,
    calib: &BoundInputs,
    opts: &QuantizeOptions,
    float_nodes: &[usize],
) -> Result<bool, TinyqError> {
    if opts.equalize {
        return Ok(true);
    }
    if !opts.choose_corrections || opts.calibration != Calibration::Auto {
        return Ok(false);
    }
    let spec = crate::pipeline::QuantizeSpec {
        per_tensor: opts.per_tensor,
        per_tensor_dense: opts.per_tensor_dense,
        float_io: opts.float_io,
        float_nodes: float_nodes.to_vec(),
        int16_nodes: int16_node_indices(&model.graph, &opts.int16, float_nodes)?,
        int4_nodes: Vec::new(),
    };
    let (_, choice) =
        crate::choose::choose_corrections(model, calib, opts.calibration, &spec, &[], &[Pass::Equalize], &|_| {})?;
    Ok(choice.chosen.contains(&"equalize"))
}

/// Quantizes `model` so that the metric on `eval` drops by at most `budget.max_drop` from FP32,
/// as described in the module docs. Returns the best graph found (with its range rows) and the
/// report; `report.met` says whether the budget holds. `progress` reports calibration samples.
#[allow(clippy::too_many_arguments)]
pub fn quantize_within_budget(
    model: &Model,
    calib: &BoundInputs,
    eval: &BoundInputs,
    labels: &NdArray,
    metric: Option<Metric>,
    opts: &QuantizeOptions,
    budget: &BudgetOptions,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<(Graph, Vec<RangeRow>, BudgetReport), TinyqError> {
    if !budget.max_drop.is_finite() {
        return Err(TinyqError::Input(format!("--max-drop {}: expected a finite number", budget.max_drop)));
    }
    if calib.samples < 2 {
        return Err(TinyqError::Input(format!(
            "calibration needs at least 2 samples, got {} (a few hundred representative samples is typical)",
            calib.samples
        )));
    }
    let user_float = float_node_indices(&model.graph, &opts.keep_float)?;
    // The search starts from the equalized model where it is asked for, or kept by the default's
    // choice of corrections (the float function is the same).
    let equalized;
    let model = if equalize_first(model, calib, opts, &user_float)? {
        equalized = Model { graph: crate::corrections::equalize(&model.graph).0, ..model.clone() };
        &equalized
    } else {
        model
    };
    let g = &model.graph;
    let model_err =
        |e: tinyq_quant::QuantError| TinyqError::In { path: model.path.clone(), source: Box::new(e.into()) };

    // FP32 reference on the evaluation set.
    let scorer = Scorer::new(model, eval, labels, metric)?;
    let (metric, fp32) = (scorer.metric, scorer.fp32);

    // Statistics once, with histograms, for every method.
    // The pipeline's calibrate (with histograms, for every method) and choose-ranges passes.
    let mut st = crate::pipeline::PtqState::new(model, calib);
    st.run(&[Pass::Calibrate(Calibration::Mse), Pass::ChooseRanges(opts.calibration)], progress)?;
    st.drop_kept();
    let stats = std::mem::take(&mut st.stats);
    let range = |m: Calibration, t: TensorId, s: &TensorStats| {
        (!g.tensor(t).is_constant() && s.count > 0).then(|| choose_range(m, s))
    };
    let mut float_nodes = user_float.clone();
    let cfg = PtqConfig {
        per_tensor: opts.per_tensor,
        per_tensor_dense: opts.per_tensor_dense,
        float_io: opts.float_io,
        ..PtqConfig::default()
    };
    let build = |ranges: &[Option<(f32, f32)>], float_nodes: &[usize], int16_nodes: &[usize]| {
        quantize_graph_mixed(g, ranges, &cfg, float_nodes, int16_nodes).map_err(model_err)
    };
    let mut int16_nodes: Vec<usize> = int16_node_indices(g, &opts.int16, &user_float)?;
    let (mut ranges, mut method) = (st.ranges, st.methods);

    let mut best_q = build(&ranges, &float_nodes, &int16_nodes)?;
    let mut best = scorer.score(&best_q)?;
    let plain = best;
    let mut steps = Vec::new();
    let (mut calibration_candidates, mut int16_candidates, mut float_candidates) = (0, 0, 0);
    let met = |s: &Score| s.drop <= budget.max_drop;
    let mut ranking = Vec::new();

    if !met(&best) {
        // Sensitivity, on the calibration set, of the plain model with float I/O (so the float
        // data serves both models).
        let debug_cfg = PtqConfig { float_io: true, ..cfg.clone() };
        let debug_q = quantize_graph_mixed(g, &ranges, &debug_cfg, &float_nodes, &[]).map_err(model_err)?;
        let debug_file = tinyq_tflite::read_tflite(&tinyq_tflite::write_tflite(&debug_q)?)?;
        let int8 = Model { graph: debug_file, ..model.clone() };
        let report = crate::debug(model, &int8, calib, calib)?;
        ranking = report.ranking.clone();
        let by_name = |name: &str| g.tensors.iter().position(|t| t.name == name);
        let ranked: Vec<TensorId> = report.ranking.iter().filter_map(|n| by_name(n)).collect();

        // Step 1: per-tensor calibration.
        let mut targets: Vec<TensorId> = Vec::new();
        for &t in ranked.iter().chain(&g.inputs) {
            if let Some(s) = range_source(g, t) {
                if ranges[s].is_some() && !targets.contains(&s) {
                    targets.push(s);
                }
            }
        }
        'calibration: for &t in &targets {
            let mut tried: Vec<(f32, f32)> = ranges[t].into_iter().collect();
            let mut best_here: Option<(Score, Calibration, (f32, f32), Graph)> = None;
            for m in METHODS {
                let Some(r) = range(m, t, &stats[t]) else { continue };
                if tried.contains(&r) {
                    continue;
                }
                if calibration_candidates >= budget.max_candidates {
                    break 'calibration;
                }
                tried.push(r);
                let mut candidate = ranges.clone();
                candidate[t] = Some(r);
                let q = build(&candidate, &float_nodes, &int16_nodes)?;
                let s = scorer.score(&q)?;
                calibration_candidates += 1;
                if s.better_than(best_here.as_ref().map_or(&best, |b| &b.0)) {
                    best_here = Some((s, m, r, q));
                }
            }
            if let Some((s, m, r, q)) = best_here {
                steps.push(BudgetStep {
                    kind: "calibration",
                    target: g.tensor(t).name.clone(),
                    change: format!("{} → {} [{:.4}, {:.4}]", method_name(method[t]), method_name(m), r.0, r.1),
                    metric: s.metric,
                    drop: s.drop,
                });
                ranges[t] = Some(r);
                method[t] = m;
                best = s;
                best_q = q;
                if met(&best) {
                    break;
                }
            }
        }

        // Step 2: int16 activations. The ranked tensor reaches its readers in int16 when its
        // writer and those readers run with int16 activations (other readers keep an int8 copy).
        if !met(&best) && budget.allow_int16 {
            let mut tried: Vec<Vec<usize>> = Vec::new();
            for &t in &ranked {
                let eligible = |k: &usize| can_run_16x8(&g.nodes[*k].op) && !float_nodes.contains(k);
                let Some(region) = int16_region(g, t, &eligible) else { continue };
                let mut candidate: Vec<usize> = int16_nodes.iter().copied().chain(region).collect();
                candidate.sort_unstable();
                candidate.dedup();
                if candidate == int16_nodes || tried.contains(&candidate) {
                    continue;
                }
                tried.push(candidate.clone());
                // The tensor's current range, and its full min/max range: int16 has the
                // resolution to keep the outliers a narrower int8 range clipped.
                let mut range_choices = vec![(ranges[t], method[t])];
                let full = range(Calibration::MinMax, t, &stats[t]);
                if full.is_some() && full != ranges[t] {
                    range_choices.push((full, Calibration::MinMax));
                }
                type Candidate = (Score, Option<(f32, f32)>, Calibration, Graph);
                let mut best_here: Option<Candidate> = None;
                for (r, m) in range_choices {
                    if int16_candidates >= budget.max_candidates {
                        break;
                    }
                    let mut candidate_ranges = ranges.clone();
                    candidate_ranges[t] = r;
                    // A layer the 16x8 rules refuse (an output range far narrower than its
                    // input's) is not a candidate.
                    let Ok(q) = build(&candidate_ranges, &float_nodes, &candidate) else { continue };
                    let s = scorer.score(&q)?;
                    int16_candidates += 1;
                    if s.better_than(best_here.as_ref().map_or(&best, |b| &b.0)) {
                        best_here = Some((s, r, m, q));
                    }
                }
                if let Some((s, r, m, q)) = best_here {
                    let added: Vec<String> = candidate
                        .iter()
                        .filter(|k| !int16_nodes.contains(k))
                        .map(|&k| g.nodes[k].name.clone())
                        .collect();
                    let range_note = match r {
                        Some((lo, hi)) if m != method[t] => {
                            format!(", range {} → {} [{lo:.4}, {hi:.4}]", method_name(method[t]), method_name(m))
                        }
                        _ => String::new(),
                    };
                    steps.push(BudgetStep {
                        kind: "int16",
                        target: added.join(", "),
                        change: format!("int16 activations (16x8), tensor `{}` in int16{range_note}", g.tensor(t).name),
                        metric: s.metric,
                        drop: s.drop,
                    });
                    int16_nodes = candidate;
                    ranges[t] = r;
                    method[t] = m;
                    best = s;
                    best_q = q;
                    if met(&best) {
                        break;
                    }
                }
                if int16_candidates >= budget.max_candidates {
                    break;
                }
            }
        }

        // Step 3: layers in float.
        if !met(&best) && budget.allow_float {
            let mut tried: Vec<Vec<usize>> = Vec::new();
            'float: for &t in &ranked {
                let Some(p) = g.producer(t) else { continue };
                // Layers with weights lead; reshapes and transposes only follow them.
                let has_weights = g.nodes[p].inputs.get(1).is_some_and(|&w| g.tensor(w).is_constant());
                if !can_keep_in_float(&g.nodes[p].op) || !has_weights || float_nodes.contains(&p) {
                    continue;
                }
                let readers = g.consumers(t);
                let mut sets = vec![vec![p]];
                if !readers.is_empty() && readers.iter().all(|&c| can_keep_in_float(&g.nodes[c].op)) {
                    sets.push(std::iter::once(p).chain(readers).collect());
                }
                // A layer kept in float leaves the int16 layers (float is the wider of the two).
                let without = |set: &[usize]| -> Vec<usize> {
                    int16_nodes.iter().copied().filter(|k| !set.contains(k)).collect()
                };
                let mut best_here: Option<(Score, Vec<usize>, Graph)> = None;
                for set in sets {
                    let mut candidate: Vec<usize> = float_nodes.iter().copied().chain(set.iter().copied()).collect();
                    candidate.sort_unstable();
                    candidate.dedup();
                    if candidate == float_nodes || tried.contains(&candidate) {
                        continue;
                    }
                    if float_candidates >= budget.max_candidates {
                        break 'float;
                    }
                    tried.push(candidate.clone());
                    // A combination the int16 rules refuse once a layer leaves them is skipped.
                    let Ok(q) = build(&ranges, &candidate, &without(&candidate)) else { continue };
                    let s = scorer.score(&q)?;
                    float_candidates += 1;
                    if s.better_than(best_here.as_ref().map_or(&best, |b| &b.0)) {
                        best_here = Some((s, candidate, q));
                    }
                }
                if let Some((s, candidate, q)) = best_here {
                    let added: Vec<String> = candidate
                        .iter()
                        .filter(|k| !float_nodes.contains(k))
                        .map(|&k| g.nodes[k].name.clone())
                        .collect();
                    steps.push(BudgetStep {
                        kind: "float",
                        target: added.join(", "),
                        change: format!(
                            "kept in float32 ({} layer{})",
                            added.len(),
                            if added.len() == 1 { "" } else { "s" }
                        ),
                        metric: s.metric,
                        drop: s.drop,
                    });
                    int16_nodes = without(&candidate);
                    float_nodes = candidate;
                    best = s;
                    best_q = q;
                    if met(&best) {
                        break;
                    }
                }
            }
        }
    }

    let rows = range_rows(g, &best_q, &stats, &ranges, &method);
    let report = BudgetReport {
        metric,
        max_drop: budget.max_drop,
        drop_unit: drop_unit(metric),
        eval_samples: eval.samples,
        fp32,
        plain: plain.metric,
        plain_drop: plain.drop,
        final_metric: best.metric,
        final_drop: best.drop,
        met: met(&best),
        steps,
        calibration_candidates,
        int16_candidates,
        float_candidates,
        max_candidates: budget.max_candidates,
        float_layers: float_nodes.iter().map(|&k| g.nodes[k].name.clone()).collect(),
        int16_layers: int16_nodes.iter().map(|&k| g.nodes[k].name.clone()).collect(),
        ranking,
    };
    Ok((best_q, rows, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_points_for_accuracy_and_percent_for_rmse() {
        assert!((metric_drop(Metric::Top1, 0.99, 0.985) - 0.5).abs() < 1e-9);
        assert!((metric_drop(Metric::Auc, 0.90, 0.91) + 1.0).abs() < 1e-9);
        assert!((metric_drop(Metric::Rmse, 0.02, 0.0201) - 0.5).abs() < 1e-9);
        assert_eq!(metric_drop(Metric::Rmse, 0.0, 0.0), 0.0);
        assert_eq!(metric_drop(Metric::Rmse, 0.0, 0.1), f64::INFINITY);
    }

    #[test]
    fn int16_regions_run_through_pools_and_reshapes_to_the_next_layers() {
        use tinyq_ir::op::{Binary, Conv2D, FullyConnected, Pool2D};
        use tinyq_ir::{FusedActivation, Node, Op, Padding, Tensor};
        let mut g = Graph::default();
        let t: Vec<TensorId> = ["x", "c", "p", "r", "y", "d"]
            .iter()
            .map(|n| g.add_tensor(Tensor::activation(*n, vec![1, 2], DType::F32)))
            .collect();
        let conv =
            Conv2D { stride: [1, 1], dilation: [1, 1], padding: Padding::Valid, activation: FusedActivation::None };
        let pool =
            Pool2D { filter: [1, 1], stride: [1, 1], padding: Padding::Valid, activation: FusedActivation::None };
        let fc = FullyConnected { activation: FusedActivation::None, keep_num_dims: false };
        for (name, op, i, o) in [
            ("conv", Op::Conv2D(conv), t[0], t[1]),
            ("pool", Op::MaxPool2D(pool), t[1], t[2]),
            ("reshape", Op::Reshape, t[2], t[3]),
            ("fc", Op::FullyConnected(fc), t[3], t[4]),
            ("sub", Op::Sub(Binary::default()), t[1], t[5]),
        ] {
            g.nodes.push(Node { name: name.into(), op, inputs: vec![i], outputs: vec![o] });
        }
        let eligible = |k: &usize| can_run_16x8(&g.nodes[*k].op);
        let sorted = |r: Option<Vec<usize>>| {
            r.map(|mut r| {
                r.sort_unstable();
                r
            })
        };
        // The conv's output: the conv, then through the pool and the reshape to the dense layer;
        // SUB has no int16 kernel and keeps an int8 copy.
        assert_eq!(sorted(int16_region(&g, t[1], &eligible)), Some(vec![0, 1, 2, 3]));
        // The pool's output takes its scale from the conv's: back to the conv, on to the dense.
        assert_eq!(sorted(int16_region(&g, t[2], &eligible)), Some(vec![0, 1, 2, 3]));
        // A graph output has no readers; SUB's output has no eligible writer.
        assert_eq!(int16_region(&g, t[4], &eligible), None);
        assert_eq!(int16_region(&g, t[5], &eligible), None);
        // Without the reshape eligible, the region stops at the pool.
        let no_reshape = |k: &usize| eligible(k) && *k != 2;
        assert_eq!(sorted(int16_region(&g, t[1], &no_reshape)), Some(vec![0, 1]));
    }

    #[test]
    fn ties_on_the_metric_go_to_the_better_output_sqnr() {
        let a = Score { metric: 0.9, drop: 1.0, sqnr_db: 20.0 };
        let b = Score { metric: 0.9, drop: 1.0, sqnr_db: 25.0 };
        let c = Score { metric: 0.91, drop: 0.0, sqnr_db: 10.0 };
        assert!(b.better_than(&a) && !a.better_than(&b));
        assert!(c.better_than(&b));
        assert!(!a.better_than(&a));
    }
}

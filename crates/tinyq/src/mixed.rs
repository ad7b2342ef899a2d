//! `--weights mixed`: int4 weights where an accuracy budget allows them, int8 elsewhere.
//!
//! Every conv, depthwise conv and fully connected layer with int8 activations but the first and
//! the last starts with int4 weights (the pipeline of [`crate::quantize_passes`], AdaRound on).
//! The debugger ranks those layers by their own error in that file (the lowest own SQNR
//! first); then the most sensitive layer goes back to int8 weights, one at a time, until the
//! drop from FP32 on the evaluation set is within `--max-drop`. Each change is a step of the
//! report; when even int8 weights everywhere miss the budget, the report says so (not met).

use tinyq_data::NdArray;
use tinyq_ir::Graph;

use crate::budget::{metric_drop, BudgetOptions, BudgetReport, BudgetStep, Scorer};
use crate::quantize::{float_node_indices, int16_node_indices, int4_node_indices, quantize_passes_int4};
use crate::{BoundInputs, Metric, Model, QuantizeOptions, RangeRow, TinyqError, WeightBits};

/// The layers that may take int4 weights in `--weights mixed`: the eligible ones but the first
/// and last layers with weights.
fn candidates(g: &Graph, eligible: Vec<usize>) -> Vec<usize> {
    let layers: Vec<usize> = (0..g.nodes.len()).filter(|&k| g.nodes[k].op.int4_weights_input().is_some()).collect();
    let ends = [layers.first().copied(), layers.last().copied()];
    eligible.into_iter().filter(|&k| !ends.contains(&Some(k))).collect()
}

/// `layers` ordered by the debugger's own-error ranking of the int4 file `q` on `calib` (the
/// most sensitive first; layers it does not rank last, in graph order).
fn by_sensitivity(
    model: &Model,
    calib: &BoundInputs,
    q: &Graph,
    layers: &[usize],
) -> Result<(Vec<usize>, Vec<String>), TinyqError> {
    let file = tinyq_tflite::read_tflite(&tinyq_tflite::write_tflite(q)?)?;
    let int4 = Model { graph: file, ..model.clone() };
    let report = crate::debug(model, &int4, calib, calib)?;
    let g = &model.graph;
    let rank = |k: usize| {
        let name = &g.tensor(g.nodes[k].outputs[0]).name;
        report.ranking.iter().position(|r| r == name).unwrap_or(usize::MAX)
    };
    let mut ordered = layers.to_vec();
    ordered.sort_by_key(|&k| (rank(k), k));
    Ok((ordered, report.ranking))
}

/// Quantizes `model` with int4 weights in as many layers as `budget.max_drop` allows, measured
/// on `eval` against `labels` (see the module's documentation).
#[allow(clippy::too_many_arguments)]
pub fn quantize_mixed(
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
    let g = &model.graph;
    let float_nodes = float_node_indices(g, &opts.keep_float)?;
    let int16_nodes = int16_node_indices(g, &opts.int16, &float_nodes)?;
    let int4 = candidates(g, int4_node_indices(opts, g, &float_nodes, &int16_nodes));
    let scorer = Scorer::new(model, eval, labels, metric)?;
    let opts = QuantizeOptions { weights: WeightBits::Int8, ..opts.clone() };
    let build = |layers: &[usize], float_io: bool| {
        let o = QuantizeOptions { float_io, ..opts.clone() };
        quantize_passes_int4(model, calib, &o, Some(layers), progress)
    };
    let mut q = build(&int4, opts.float_io)?;
    let mut score = scorer.score(&q.graph)?;
    let plain = score;
    let mut ranking = Vec::new();
    let mut steps = Vec::new();
    if score.drop > budget.max_drop && !int4.is_empty() {
        // The debugger compares float data with the file's: rank on the float-I/O twin.
        let ordered;
        (ordered, ranking) = by_sensitivity(model, calib, &build(&int4, true)?.graph, &int4)?;
        for k in 1..=ordered.len() {
            q = build(&ordered[k..], opts.float_io)?;
            score = scorer.score(&q.graph)?;
            let layer = &g.nodes[ordered[k - 1]];
            steps.push(BudgetStep {
                kind: "int8-weights",
                target: layer.name.clone(),
                change: "int4 → int8 weights".into(),
                metric: score.metric,
                drop: score.drop,
            });
            if score.drop <= budget.max_drop {
                break;
            }
        }
    }
    let names = |nodes: &[usize]| nodes.iter().map(|&k| g.nodes[k].name.clone()).collect::<Vec<_>>();
    let report = BudgetReport {
        metric: scorer.metric,
        max_drop: budget.max_drop,
        drop_unit: crate::budget::drop_unit(scorer.metric),
        eval_samples: eval.samples,
        fp32: scorer.fp32,
        plain: plain.metric,
        plain_drop: metric_drop(scorer.metric, scorer.fp32, plain.metric),
        final_metric: score.metric,
        final_drop: score.drop,
        met: score.drop <= budget.max_drop,
        steps,
        calibration_candidates: 0,
        int16_candidates: 0,
        float_candidates: 0,
        max_candidates: budget.max_candidates,
        float_layers: names(&float_nodes),
        int16_layers: names(&int16_nodes),
        ranking,
    };
    Ok((q.graph, q.ranges, report))
}

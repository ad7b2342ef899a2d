//! The default calibration (`auto`): each activation range chosen, among the ranges the other
//! methods give, by the error it causes downstream on the calibration set.
//!
//! Two cheap steps on a few calibration samples:
//! 1. per tensor, the candidate whose fake quantization changes the outputs of the layers that
//!    read the tensor least (relative squared error, float weights, every other input exact);
//! 2. that per-tensor choice and each method applied to every tensor are simulated on the whole
//!    model (float kernels, every activation rounded to its int8 grid as the TFLite rules set
//!    it); the configuration whose model outputs are closest to the float model's is kept.
//!    Configurations with the same ranges are scored once.

use rayon::prelude::*;
use tinyq_float::{Activations, Plan};
use tinyq_ir::{Graph, TensorId};
use tinyq_quant::{asymmetric_qparams, choose_range, output_rule, Calibration, OutputRule, TensorStats};

use crate::{BoundInputs, Model, TinyqError};

/// A calibrated `[min, max]` per tensor (`None`: constants and tensors never seen).
pub type Ranges = Vec<Option<(f32, f32)>>;
/// Ranges, the method each came from, and what the automatic choice did (for `auto`).
pub type ChosenRanges<R> = (Ranges, Vec<Calibration>, R);

/// The methods whose ranges are candidates.
pub const CANDIDATES: [Calibration; 4] =
    [Calibration::MinMax, Calibration::Percentile(99.999), Calibration::Percentile(99.99), Calibration::Mse];
/// Calibration samples the whole-model comparison is made on (spread evenly over the set).
pub const SAMPLES: usize = 128;
/// Of those, the samples the per-tensor (layer by layer) choice is made on.
pub const LOCAL_SAMPLES: usize = 8;

pub fn method_name(m: Calibration) -> String {
    match m {
        Calibration::MinMax => "minmax".into(),
        Calibration::Percentile(p) => format!("percentile={p}"),
        Calibration::Entropy => "entropy".into(),
        Calibration::Mse => "mse".into(),
        Calibration::Auto => "auto".into(),
    }
}

/// The range `m` gives every calibrated activation of `g` (constants and unseen tensors: none).
pub fn ranges_for(g: &Graph, stats: &[TensorStats], m: Calibration) -> Vec<Option<(f32, f32)>> {
    stats
        .par_iter()
        .enumerate()
        .map(|(t, s)| (!g.tensor(t).is_constant() && s.count > 0).then(|| choose_range(m, s)))
        .collect()
}

/// The int8 grid (scale, zero point) of every activation under `ranges`, by the TFLite output
/// rules (own range, the input's, or fixed); `None` where a tensor has none.
fn grids(g: &Graph, ranges: &[Option<(f32, f32)>]) -> Vec<Option<(f32, i32)>> {
    let own = |t: TensorId| ranges[t].and_then(|r| asymmetric_qparams(r.0, r.1).ok()).map(|p| (p.scale, p.zero_point));
    let mut grid = vec![None; g.tensors.len()];
    for &i in &g.inputs {
        grid[i] = own(i);
    }
    for n in &g.nodes {
        let o = n.outputs[0];
        grid[o] = match output_rule(&n.op) {
            Ok(OutputRule::Own) => own(o),
            Ok(OutputRule::SameAsInput) => grid[n.inputs[0]],
            Ok(OutputRule::Fixed(s, z)) => Some((s, z)),
            Err(_) => None,
        };
    }
    grid
}

/// `g` with the weights of its convolutions and dense layers rounded to their per-channel int8
/// grids (what the file will hold), so the simulation sees the weights' error too.
fn with_rounded_weights(g: &Graph) -> Graph {
    let mut q = g.clone();
    for n in &g.nodes {
        let Some(weights) = n.op.weights() else { continue };
        let (axis, slot) = (weights.channel_axis, weights.input);
        let w = g.tensor(n.inputs[slot]);
        let (Some(data), true) = (w.f32_data(), axis < w.shape.len()) else { continue };
        let (wq, scales) = tinyq_quant::symmetric_per_channel(&data, &w.shape, axis);
        let inner: usize = w.shape[axis + 1..].iter().product();
        let real = wq.iter().enumerate().map(|(i, &v)| v as f32 * scales[(i / inner) % scales.len()]).collect();
        q.tensors[n.inputs[slot]].data = Some(tinyq_ir::TensorData::F32(real));
    }
    q
}

/// `x` rounded to the int8 grid `(scale, zp)` and back to real values.
fn round_to(x: &mut [f32], grid: (f32, i32)) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { round_to_avx2(x, grid) };
    }
    round_to_any(x, grid)
}

/// [`round_to`] compiled for AVX2 (eight values per instruction; the same IEEE operations, so the
/// same results).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn round_to_avx2(x: &mut [f32], grid: (f32, i32)) {
    round_to_any(x, grid)
}

#[inline(always)]
fn round_to_any(x: &mut [f32], (scale, zp): (f32, i32)) {
    x.iter_mut().for_each(|v| *v = on_grid(*v, scale, zp));
}

/// `v` rounded to the int8 grid `(scale, zp)` (half away from zero, as TFLite), as a real value:
/// `(clamp(round(v / scale) + zp, -128, 127) - zp) · scale`, with the integer conversion of
/// `f32::round() as i32` (NaN → 0; saturated beyond ±2^31, where adding `zp` wraps).
///
/// The quotient is clamped to the grid's steps `[-128 - zp, 127 - zp]` before it is rounded
/// (rounding is monotonic and keeps integers), so the conversion never saturates and the loop
/// vectorizes; the two cases where the plain formula wraps are kept as they were.
#[inline(always)]
fn on_grid(v: f32, scale: f32, zp: i32) -> f32 {
    let (lo, hi) = ((-128 - zp) as f32, (127 - zp) as f32);
    let q = v / scale;
    let q = if q.is_nan() {
        0.0
    } else if q >= 2_147_483_648.0 && zp > 0 {
        lo
    } else if q <= -2_147_483_648.0 && zp < 0 {
        hi
    } else {
        q.max(lo).min(hi)
    };
    // SAFETY: `q` is finite and within [-255, 255].
    let t = unsafe { q.to_int_unchecked::<i32>() };
    let f = q - t as f32;
    (t + (f >= 0.5) as i32 - (f <= -0.5) as i32) as f32 * scale
}

/// The model's outputs on one sample with every activation rounded to its grid.
fn simulate(plan: &Plan, x: &[&[f32]], grid: &[Option<(f32, i32)>]) -> Vec<Vec<f32>> {
    let g = plan.graph();
    let mut values: Vec<Option<Vec<f32>>> = vec![None; g.tensors.len()];
    for (&i, v) in g.inputs.iter().zip(x) {
        let mut v = v.to_vec();
        if let Some(p) = grid[i] {
            round_to(&mut v, p);
        }
        values[i] = Some(v);
    }
    let empty = Activations { values: vec![None; g.tensors.len()] };
    for n in &g.nodes {
        let args: Vec<&[f32]> =
            n.inputs.iter().map(|&i| values[i].as_deref().unwrap_or_else(|| plan.value(&empty, i))).collect();
        let mut out = plan.eval_node(n, &args);
        if let Some(p) = grid[n.outputs[0]] {
            round_to(&mut out, p);
        }
        values[n.outputs[0]] = Some(out);
    }
    g.outputs.iter().map(|&o| values[o].take().unwrap_or_default()).collect()
}

/// The tensors whose own range sets their parameters: graph inputs and outputs of ops whose
/// output rule is [`OutputRule::Own`].
fn own_range_tensors(g: &Graph) -> Vec<TensorId> {
    let mut ts: Vec<TensorId> = g.inputs.clone();
    ts.extend(g.nodes.iter().filter(|n| output_rule(&n.op) == Ok(OutputRule::Own)).map(|n| n.outputs[0]));
    ts
}

fn fake_quant(x: &[f32], r: (f32, f32)) -> Option<Vec<f32>> {
    let p = asymmetric_qparams(r.0, r.1).ok()?;
    Some(x.iter().map(|&v| on_grid(v, p.scale, p.zero_point)).collect())
}

fn relative_error(a: &[f32], reference: &[f32]) -> f64 {
    let (mut e, mut s) = (0f64, 0f64);
    for (&x, &r) in a.iter().zip(reference) {
        e += (x as f64 - r as f64).powi(2);
        s += (r as f64).powi(2);
    }
    e / s.max(1e-30)
}

/// KL divergence from the class distribution of `reference` to that of `a` (softmax of logits,
/// or the values themselves when they are probabilities already).
fn class_divergence(a: &[f32], reference: &[f32], probabilities: bool) -> f64 {
    let dist = |x: &[f32]| -> Vec<f64> {
        if probabilities {
            let s: f64 = x.iter().map(|&v| v.max(0.0) as f64).sum::<f64>().max(1e-30);
            return x.iter().map(|&v| v.max(0.0) as f64 / s).collect();
        }
        let m = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
        let e: Vec<f64> = x.iter().map(|&v| (v as f64 - m).exp()).collect();
        let s: f64 = e.iter().sum();
        e.iter().map(|v| v / s).collect()
    };
    let (p, q) = (dist(reference), dist(a));
    p.iter().zip(&q).filter(|(&p, _)| p > 0.0).map(|(&p, &q)| p * (p / q.max(1e-12)).ln()).sum()
}

/// How each output of `g` is compared with the float model's: class scores (more than one value,
/// not a reconstruction of an input) as class distributions, the way top-1 sees them
/// (`Some(true)` when they are probabilities already, after a softmax); other outputs (`None`)
/// by relative squared error.
pub(crate) fn output_kinds(g: &Graph) -> Vec<Option<bool>> {
    g.outputs
        .iter()
        .map(|&o| {
            let softmax = g.producer(o).is_some_and(|n| matches!(g.nodes[n].op, tinyq_ir::Op::Softmax(_)));
            let reconstructs = g.inputs.iter().any(|&i| g.tensor(i).numel() == g.tensor(o).numel());
            (g.tensor(o).numel() > 1 && !reconstructs).then_some(softmax)
        })
        .collect()
}

/// The error of one output `a` of one sample against the float model's `reference`, compared as
/// [`output_kinds`] says.
pub(crate) fn output_error(kind: Option<bool>, a: &[f32], reference: &[f32]) -> f64 {
    match kind {
        Some(probabilities) => class_divergence(a, reference, probabilities),
        None => relative_error(a, reference),
    }
}

/// Error the range `r` of tensor `t` causes in the outputs of the nodes reading it (or in `t`
/// itself when nothing reads it), summed over `acts`.
fn local_error(plan: &Plan, acts: &[&Activations], t: TensorId, r: (f32, f32)) -> Option<f64> {
    let g = plan.graph();
    let readers: Vec<usize> = (0..g.nodes.len()).filter(|&k| g.nodes[k].inputs.contains(&t)).collect();
    let mut total = 0.0;
    for a in acts {
        let x = plan.value(a, t);
        let xq = fake_quant(x, r)?;
        if readers.is_empty() {
            total += relative_error(&xq, x);
        }
        for &k in &readers {
            let n = &g.nodes[k];
            let args: Vec<&[f32]> =
                n.inputs.iter().map(|&i| if i == t { xq.as_slice() } else { plan.value(a, i) }).collect();
            total += relative_error(&plan.eval_node(n, &args), plan.value(a, n.outputs[0]));
        }
    }
    Some(total)
}

/// What the automatic choice did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AutoCalibration {
    /// `per tensor`, or the one method that won for every tensor.
    pub chosen: String,
    /// Each distinct configuration scored: its name and the error of the simulated int8
    /// model's outputs against the float model's, summed over the samples.
    pub scored: Vec<(String, f64)>,
    pub samples: usize,
}

/// Ranges chosen automatically. Returns the ranges, the method of each tensor and the report.
pub fn auto_ranges(
    model: &Model,
    calib: &BoundInputs,
    stats: &[TensorStats],
    kept: Option<&crate::quantize::KeptActivations>,
) -> Result<ChosenRanges<AutoCalibration>, TinyqError> {
    let g = &model.graph;
    let engine = |e: String| TinyqError::Engine(format!("{}: calibration: {e}", model.path.display()));
    let plan = Plan::new(g).map_err(|e| engine(e.to_string()))?;
    let sub = calib.spread(SAMPLES);
    // The activations of `sub`: those calibration kept (of every sample) when present.
    let computed: Vec<Activations>;
    let acts: Vec<&Activations> = match kept.filter(|k| k.len() == calib.samples) {
        Some(k) => calib.spread_picks(SAMPLES).into_iter().map(|i| &k[i]).collect(),
        None => {
            computed = (0..sub.samples)
                .into_par_iter()
                .map(|i| {
                    let s =
                        sub.sample_f32(i).ok_or_else(|| TinyqError::Input("calibration needs float data".into()))?;
                    plan.run_observed(&s, &mut |_, _| {}).map_err(|e| engine(e.to_string()))
                })
                .collect::<Result<_, _>>()?;
            computed.iter().collect()
        }
    };
    let per_method: Vec<Vec<Option<(f32, f32)>>> = CANDIDATES.iter().map(|&m| ranges_for(g, stats, m)).collect();

    // Step 1: per tensor, by the error in the layers that read it.
    let mut ranges = per_method[CANDIDATES.len() - 1].clone();
    let mut methods = vec![Calibration::Mse; g.tensors.len()];
    let picks: Vec<(TensorId, usize)> = own_range_tensors(g)
        .into_par_iter()
        .filter(|&t| ranges[t].is_some())
        .filter_map(|t| {
            let mut best: Option<(f64, usize)> = None;
            for (k, rs) in per_method.iter().enumerate() {
                let r = rs[t]?;
                if per_method[..k].iter().any(|p| p[t] == Some(r)) {
                    continue;
                }
                let e = local_error(&plan, &acts[..LOCAL_SAMPLES.min(acts.len())], t, r)?;
                if best.is_none_or(|(b, _)| e < b) {
                    best = Some((e, k));
                }
            }
            best.map(|(_, k)| (t, k))
        })
        .collect();
    for (t, k) in picks {
        ranges[t] = per_method[k][t];
        methods[t] = CANDIDATES[k];
    }

    // Step 2: the per-tensor choice against each method everywhere, simulated on the model.
    let qplan = Plan::new(&with_rounded_weights(g)).map_err(|e| engine(e.to_string()))?;
    let kinds = output_kinds(g);
    // The error of ranges `r` on the samples `picks` of `sub`.
    let score = |r: &[Option<(f32, f32)>], picks: &[usize]| -> Option<f64> {
        let grid = grids(g, r);
        let errors: Vec<f64> = picks
            .par_iter()
            .filter_map(|&i| {
                let out = simulate(&qplan, &sub.sample_f32(i)?, &grid);
                let error =
                    |(k, (&o, q)): (usize, (&TensorId, &Vec<f32>))| output_error(kinds[k], q, plan.value(acts[i], o));
                Some(g.outputs.iter().zip(&out).enumerate().map(error).sum())
            })
            .collect();
        (errors.len() == picks.len()).then(|| errors.iter().sum())
    };
    type Config<'a> = (String, &'a [Option<(f32, f32)>]);
    let configs: Vec<Config> = std::iter::once(("per tensor".to_string(), ranges.as_slice()))
        .chain(CANDIDATES.iter().zip(&per_method).map(|(&m, r)| (method_name(m), r.as_slice())))
        .collect();
    // Configurations with the same ranges as an earlier one are not scored again.
    let all: Vec<usize> = (0..sub.samples).collect();
    let mut scored = Vec::new();
    let mut best: Option<(f64, usize)> = None;
    for (k, (name, r)) in configs.iter().enumerate() {
        if configs[..k].iter().any(|(_, earlier)| earlier == r) {
            continue;
        }
        if let Some(e) = score(r, &all) {
            scored.push((name.clone(), e));
            if best.is_none_or(|(b, _)| e < b) {
                best = Some((e, k));
            }
        }
    }
    let chosen = best.map_or(0, |(_, k)| k);
    let report = AutoCalibration { chosen: configs[chosen].0.clone(), scored, samples: sub.samples };
    if chosen > 0 {
        let m = CANDIDATES[chosen - 1];
        return Ok((per_method[chosen - 1].clone(), vec![m; g.tensors.len()], report));
    }
    Ok((ranges, methods, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The grid rounding as it was first written, with libm's rounding and a wrapping `+ zp`.
    fn on_grid_plain(v: f32, scale: f32, zp: i32) -> f32 {
        (((v / scale).round() as i32).wrapping_add(zp).clamp(-128, 127) - zp) as f32 * scale
    }

    #[test]
    fn grid_rounding_matches_the_plain_formula_bit_for_bit() {
        let mut x = 0x9e37_79b9u32;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let specials =
            [0.0, -0.0, 0.5, -0.5, 1.5, 127.5, -128.5, 2.1e9, 2.2e9, -2.2e9, 3e38, f32::INFINITY, f32::NAN, 1e-40];
        for zp in [-128, -1, 0, 1, 5, 127] {
            for scale in [1.0, 0.5, 0.0039215, 1e-3, 7.3, 1e-30] {
                let mut values: Vec<f32> = specials.iter().flat_map(|&s| [s * scale, -s * scale, s, -s]).collect();
                // Values within and around the grid, and random bit patterns.
                values.extend((0..20_000).map(|k| (k as f32 - 10_000.0) / 37.0 * scale));
                values.extend((0..20_000).map(|_| f32::from_bits(next())));
                let mut got = values.clone();
                round_to(&mut got, (scale, zp));
                for (v, g) in values.iter().zip(&got) {
                    let want = on_grid_plain(*v, scale, zp);
                    assert_eq!(g.to_bits(), want.to_bits(), "v {v:e} scale {scale} zp {zp}: {g} vs {want}");
                }
            }
        }
    }
}

//! AdaRound (Nagel et al. 2020, "Up or Down? Adaptive Rounding for Post-Training
//! Quantization"): each weight of a conv, depthwise or dense layer is rounded up or down, not
//! to nearest, as learned on the calibration set to keep the layer's output close to the float
//! layer's.
//!
//! Per output channel `c` with weights `w` (scale `s`), the rounding is
//! `clamp(floor(w / s) + h(V), -qmax, qmax)` with the rectified sigmoid
//! `h(V) = clip(σ(V)·(ζ − γ) + γ, 0, 1)` (ζ = 1.1, γ = −0.1), `V` initialised so that `h(V)` is
//! the fractional part. `V` minimises the reconstruction error of the channel's output,
//! `E[((w̃ − w)·x)²] = Δᵀ H Δ` with `H = E[x xᵀ]` the second moment of the layer's input
//! patches on calibration samples (the float model's activations), plus the regulariser
//! `λ Σ (1 − |2h(V) − 1|^β)`, β annealed from 20 to 2 after a warm-up, which drives each
//! `h` to 0 or 1. Adam steps on `V`; at the end `h` is rounded (`V ≥ 0` up), and a channel keeps
//! round-to-nearest if the learned rounding does not reconstruct better.
//!
//! Only the integer weights change (same scales, same bias), so the file runs in TFLM as any
//! other. The grid is `bits` wide (`qmax = 2^(bits−1) − 1`), for int8 weights and narrower ones.

use rayon::prelude::*;
use tinyq_float::Plan;
use tinyq_ir::{DType, Graph, Node, Op, TensorData};

use crate::{BoundInputs, Model, TinyqError};

/// Knobs of [`adaround`].
#[derive(Clone, Debug, PartialEq)]
pub struct AdaRoundOptions {
    /// Width of the weights' integer grid (8 for int8 weights).
    pub bits: u32,
    /// Adam steps per channel.
    pub iterations: usize,
    /// Calibration samples the input statistics come from (spread over the set).
    pub samples: usize,
    /// Weight of the rounding regulariser against the (normalised) reconstruction error.
    pub lambda: f32,
}

impl Default for AdaRoundOptions {
    fn default() -> Self {
        AdaRoundOptions { bits: 8, iterations: 200, samples: 64, lambda: 0.01 }
    }
}

/// Input positions per sample and layer that enter the statistics (spread over the image).
const POSITIONS: usize = 64;
const ZETA: f32 = 1.1;
const GAMMA: f32 = -0.1;

/// One layer to round: where it is, its patch geometry and its input's second moments.
struct Layer {
    /// The node in the int8 graph and its float twin.
    qnode: usize,
    fnode: usize,
    /// Patch length, and per output channel the group (of `h`) its patches come from.
    k: usize,
    group_of: Vec<usize>,
    /// Per output channel, the indices of its weights in the weight tensor (patch order).
    index: Vec<Vec<usize>>,
}

/// The second-moment matrices `Σ x xᵀ` (one per group, `k × k`, row-major) and the patch count.
#[derive(Clone)]
struct Moments {
    h: Vec<Vec<f64>>,
    count: f64,
}

/// Rounds the weights of every int8 conv, depthwise and dense layer of `q` (quantized from
/// `model`) by AdaRound on `calib`. Returns the number of layers whose weights changed.
pub fn adaround(model: &Model, q: &mut Graph, calib: &BoundInputs, o: &AdaRoundOptions) -> Result<usize, TinyqError> {
    let engine = |e: String| TinyqError::Engine(format!("{}: adaround: {e}", model.path.display()));
    if !(2..=8).contains(&o.bits) {
        return Err(TinyqError::Input(format!("adaround: {} bits: the grid must be 2 to 8 bits wide", o.bits)));
    }
    let g = &model.graph;
    let layers = layers(g, q);
    if layers.is_empty() {
        return Ok(0);
    }
    let plan = Plan::new(g).map_err(|e| engine(e.to_string()))?;
    let sub = calib.spread(o.samples);
    let zero: Vec<Moments> = layers
        .iter()
        .map(|l| Moments { h: vec![vec![0.0; l.k * l.k]; l.group_of.iter().max().map_or(0, |m| m + 1)], count: 0.0 })
        .collect();
    let moments = (0..sub.samples)
        .into_par_iter()
        .try_fold(
            || zero.clone(),
            |mut acc, i| -> Result<_, TinyqError> {
                let s = sub.sample_f32(i).ok_or_else(|| TinyqError::Input("adaround needs float data".into()))?;
                let acts = plan.run_observed(&s, &mut |_, _| {}).map_err(|e| engine(e.to_string()))?;
                for (m, l) in acc.iter_mut().zip(&layers) {
                    let n = &g.nodes[l.fnode];
                    accumulate(m, g, n, plan.value(&acts, n.inputs[0]), l.k);
                }
                Ok(acc)
            },
        )
        .try_reduce(
            || zero.clone(),
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(&b) {
                    x.h.iter_mut().zip(&y.h).for_each(|(p, r)| p.iter_mut().zip(r).for_each(|(u, v)| *u += v));
                    x.count += y.count;
                }
                Ok(a)
            },
        )?;
    let mut changed = 0;
    for (l, m) in layers.iter().zip(&moments) {
        changed += round_layer(g, q, l, m, o) as usize;
    }
    Ok(changed)
}

/// Multiply-adds [`adaround`] spends on the layers of float graph `g` with options `o`: the
/// input statistics (`K²` per patch and group) and the Adam steps (`K²` per step and channel).
pub fn work(g: &Graph, o: &AdaRoundOptions) -> f64 {
    g.nodes
        .iter()
        .enumerate()
        .filter_map(|(k, n)| geometry(g, n, k, k))
        .map(|l| {
            let groups = l.group_of.iter().max().map_or(0, |m| m + 1) as f64;
            let k2 = (l.k * l.k) as f64;
            let patches = (o.samples * POSITIONS) as f64;
            patches * groups * k2 + (l.index.len() * o.iterations) as f64 * k2
        })
        .sum()
}

/// The layers AdaRound can round: int8 or int4 weights (read by that layer only) with a float twin
/// (by output name) in `g`.
fn layers(g: &Graph, q: &Graph) -> Vec<Layer> {
    q.nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| matches!(n.op, Op::Conv2D(_) | Op::DepthwiseConv2D(_) | Op::FullyConnected(_)))
        .filter(|(_, n)| matches!(q.tensor(n.inputs[1]).dtype, DType::I8 | DType::I4))
        .filter(|(_, n)| q.consumers(n.inputs[1]).len() == 1)
        .filter_map(|(k, n)| {
            let f = g.tensors.iter().position(|t| t.name == q.tensor(n.outputs[0]).name)?;
            let fnode = g.producer(f)?;
            let fnode_ok =
                g.nodes[fnode].op == n.op && g.tensor(g.nodes[fnode].inputs[1]).shape == q.tensor(n.inputs[1]).shape;
            fnode_ok.then(|| geometry(g, &g.nodes[fnode], k, fnode)).flatten()
        })
        .collect()
}

/// Patch length, groups and weight indices of layer `n` (`None` for shapes it cannot read).
fn geometry(g: &Graph, n: &Node, qnode: usize, fnode: usize) -> Option<Layer> {
    let ws = &g.tensor(*n.inputs.get(1)?).shape;
    let xs = &g.tensor(n.inputs[0]).shape;
    let rank = if matches!(n.op, Op::FullyConnected(_)) { 2 } else { 4 };
    if ws.len() != rank || (rank == 4 && xs.len() != 4) || !g.tensor(n.inputs[1]).is_constant() || ws.contains(&0) {
        return None;
    }
    let (k, group_of, index): (usize, Vec<usize>, Vec<Vec<usize>>) = match &n.op {
        Op::Conv2D(_) => {
            let (oc, k) = (ws[0], ws[1] * ws[2] * ws[3]);
            let groups = xs.get(3)? / ws[3];
            let per = oc / groups.max(1);
            (k, (0..oc).map(|c| c / per.max(1)).collect(), (0..oc).map(|c| (c * k..(c + 1) * k).collect()).collect())
        }
        Op::DepthwiseConv2D(_) => {
            let (taps, cm) = (ws[1] * ws[2], ws[3]);
            let m = cm / xs.get(3)?;
            (
                taps,
                (0..cm).map(|c| c / m.max(1)).collect(),
                (0..cm).map(|c| (0..taps).map(|t| t * cm + c).collect()).collect(),
            )
        }
        Op::FullyConnected(_) => {
            let (oc, k) = (ws[0], ws[1]);
            (k, vec![0; oc], (0..oc).map(|c| (c * k..(c + 1) * k).collect()).collect())
        }
        _ => return None,
    };
    Some(Layer { qnode, fnode, k, group_of, index })
}

/// Adds the patches of one sample's input `x` of layer `n` to `m` (at most [`POSITIONS`]
/// output positions, spread evenly).
fn accumulate(m: &mut Moments, g: &Graph, n: &Node, x: &[f32], k: usize) {
    let groups = m.h.len();
    let mut patch = vec![0f32; k];
    let add = |m: &mut Moments, grp: usize, p: &[f32]| {
        let h = &mut m.h[grp];
        for (i, &a) in p.iter().enumerate().filter(|(_, a)| **a != 0.0) {
            let row = &mut h[i * k..(i + 1) * k];
            row.iter_mut().zip(p).for_each(|(r, &b)| *r += a as f64 * b as f64);
        }
    };
    let conv = match &n.op {
        Op::Conv2D(p) => p,
        Op::DepthwiseConv2D(d) => &d.conv,
        _ => {
            // Dense: every row of the input is one patch.
            for row in x.chunks_exact(k) {
                add(m, 0, row);
                m.count += 1.0;
            }
            return;
        }
    };
    let (xs, ws) = (&g.tensor(n.inputs[0]).shape, &g.tensor(n.inputs[1]).shape);
    let os = &g.tensor(n.outputs[0]).shape;
    let (ih, iw, ic, kh, kw) = (xs[1], xs[2], xs[3], ws[1], ws[2]);
    let (Ok(ay), Ok(ax)) = (
        conv.padding.resolve(0, ih, kh, conv.stride[0], conv.dilation[0]),
        conv.padding.resolve(1, iw, kw, conv.stride[1], conv.dilation[1]),
    ) else {
        return;
    };
    let positions = os[1] * os[2];
    let step = positions.div_ceil(POSITIONS).max(1);
    let cg = ic / groups.max(1);
    let depthwise = matches!(n.op, Op::DepthwiseConv2D(_));
    for pos in (0..positions).step_by(step) {
        let (oy, ox) = (pos / os[2], pos % os[2]);
        for grp in 0..groups {
            patch.iter_mut().for_each(|v| *v = 0.0);
            for ky in 0..kh {
                let Some(iy) = (oy * conv.stride[0] + ky * conv.dilation[0]).checked_sub(ay.pad_before) else {
                    continue;
                };
                for kx in 0..kw {
                    let Some(ix) = (ox * conv.stride[1] + kx * conv.dilation[1]).checked_sub(ax.pad_before) else {
                        continue;
                    };
                    if iy >= ih || ix >= iw {
                        continue;
                    }
                    let base = (iy * iw + ix) * ic;
                    if depthwise {
                        patch[ky * kw + kx] = x[base + grp];
                    } else {
                        let at = (ky * kw + kx) * cg;
                        patch[at..at + cg].copy_from_slice(&x[base + grp * cg..base + (grp + 1) * cg]);
                    }
                }
            }
            add(m, grp, &patch);
        }
        m.count += 1.0;
    }
}

/// Rounds layer `l` of `q`; whether any weight changed.
fn round_layer(g: &Graph, q: &mut Graph, l: &Layer, m: &Moments, o: &AdaRoundOptions) -> bool {
    if m.count == 0.0 {
        return false;
    }
    let fw = g.const_f32(g.nodes[l.fnode].inputs[1]).unwrap_or_default();
    let wt = q.nodes[l.qnode].inputs[1];
    let Some(scales) = q.tensor(wt).qparams.as_ref().map(|p| p.scale.clone()) else { return false };
    let h: Vec<Vec<f32>> = m.h.iter().map(|h| h.iter().map(|&v| (v / m.count) as f32).collect()).collect();
    // int4 weights round within [−7, 7], as the quantize pass placed them.
    let bits = if q.tensor(wt).dtype == DType::I4 { 4 } else { o.bits };
    let o = &AdaRoundOptions { bits, ..o.clone() };
    let rounded: Vec<Option<Vec<i8>>> = (0..l.index.len())
        .into_par_iter()
        .map(|c| {
            let w: Vec<f32> = l.index[c].iter().map(|&i| fw[i]).collect();
            let s = scales[if scales.len() == 1 { 0 } else { c }];
            round_channel(&w, s, &h[l.group_of[c]], o)
        })
        .collect();
    let Some(TensorData::I8(data)) = &mut q.tensors[wt].data else { return false };
    let mut any = false;
    for (c, r) in rounded.iter().enumerate() {
        let Some(r) = r else { continue };
        for (&i, &v) in l.index[c].iter().zip(r) {
            any |= data[i] != v;
            data[i] = v;
        }
    }
    any
}

/// `Δᵀ H Δ` for `Δ = s·wq − w`.
fn reconstruction(w: &[f32], s: f32, wq: &[f32], h: &[f32]) -> f64 {
    let k = w.len();
    let d: Vec<f32> = w.iter().zip(wq).map(|(&w, &q)| s * q - w).collect();
    (0..k).map(|i| d[i] as f64 * dot(&h[i * k..(i + 1) * k], &d) as f64).sum()
}

/// `a · b` over eight partial sums (which the compiler turns into vector lanes).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// The learned integer weights of one channel (`None`: keep round-to-nearest, which
/// reconstructs at least as well).
pub(crate) fn round_channel(w: &[f32], s: f32, h: &[f32], o: &AdaRoundOptions) -> Option<Vec<i8>> {
    let k = w.len();
    if s.is_nan() || s <= 0.0 || k == 0 {
        return None;
    }
    let qmax = ((1i32 << (o.bits - 1)) - 1) as f32;
    let nearest: Vec<f32> = w.iter().map(|&v| (v / s).round().clamp(-qmax, qmax)).collect();
    let base = reconstruction(w, s, &nearest, h);
    if base <= 0.0 {
        return None;
    }
    let floor: Vec<f32> = w.iter().map(|&v| (v / s).floor()).collect();
    let sig = |v: f32| 1.0 / (1.0 + (-v).exp());
    let mut v: Vec<f32> = w
        .iter()
        .zip(&floor)
        .map(|(&x, &f)| {
            let p = (((x / s - f) - GAMMA) / (ZETA - GAMMA)).clamp(1e-4, 1.0 - 1e-4);
            (p / (1.0 - p)).ln()
        })
        .collect();
    let (mut m1, mut m2) = (vec![0f32; k], vec![0f32; k]);
    let (lr, b1, b2) = (0.05f32, 0.9f32, 0.999f32);
    let warm = o.iterations / 5;
    let mut d = vec![0f32; k];
    let mut dh = vec![0f32; k];
    for t in 0..o.iterations {
        for i in 0..k {
            let sg = sig(v[i]);
            let hv = (sg * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0);
            let q = floor[i] + hv;
            let inside = hv > 0.0 && hv < 1.0 && q > -qmax && q < qmax;
            d[i] = s * q.clamp(-qmax, qmax) - w[i];
            dh[i] = if inside { sg * (1.0 - sg) * (ZETA - GAMMA) } else { 0.0 };
        }
        // Regulariser after the warm-up, β from 20 down to 2.
        let beta = (t >= warm).then(|| {
            let f = (t - warm) as f32 / (o.iterations - warm).max(1) as f32;
            2.0 + 18.0 * (1.0 + (std::f32::consts::PI * f).cos()) / 2.0
        });
        for i in 0..k {
            // d/dV of Δᵀ H Δ / base, and of λ (1 − |2h − 1|^β).
            let hd = dot(&h[i * k..(i + 1) * k], &d);
            let mut grad = 2.0 * hd * s / base as f32 * dh[i];
            if let Some(beta) = beta {
                let hv = (sig(v[i]) * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0);
                let u = 2.0 * hv - 1.0;
                grad -= o.lambda * beta * u.abs().powf(beta - 1.0) * u.signum() * 2.0 * dh[i];
            }
            m1[i] = b1 * m1[i] + (1.0 - b1) * grad;
            m2[i] = b2 * m2[i] + (1.0 - b2) * grad * grad;
            let (c1, c2) = (1.0 - b1.powi(t as i32 + 1), 1.0 - b2.powi(t as i32 + 1));
            v[i] -= lr * (m1[i] / c1) / ((m2[i] / c2).sqrt() + 1e-8);
        }
    }
    let learned: Vec<f32> =
        floor.iter().zip(&v).map(|(&f, &v)| (f + if v >= 0.0 { 1.0 } else { 0.0 }).clamp(-qmax, qmax)).collect();
    (reconstruction(w, s, &learned, h) < base).then(|| learned.iter().map(|&x| x as i8).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Second moments of inputs with two strong shared factors and weaker own parts.
    pub(super) fn moments(k: usize) -> Vec<f32> {
        let xs: Vec<Vec<f32>> = (0..400)
            .map(|n| {
                let z = ((n * 7919 % 101) as f32 / 50.0 - 1.0, (n * 104729 % 97) as f32 / 48.0 - 1.0);
                (0..k)
                    .map(|i| {
                        z.0 * (1.0 + i as f32 * 0.1)
                            + z.1 * ((i % 3) as f32 - 1.0)
                            + 0.3 * (n as f32 * (i + 1) as f32 * 0.7).sin()
                    })
                    .collect()
            })
            .collect();
        let mut h = vec![0f32; k * k];
        for x in &xs {
            for i in 0..k {
                for j in 0..k {
                    h[i * k + j] += x[i] * x[j] / xs.len() as f32;
                }
            }
        }
        h
    }

    /// The best reconstruction over every up/down choice (2^k of them).
    fn exhaustive(w: &[f32], s: f32, qmax: f32, h: &[f32]) -> f64 {
        (0..1u32 << w.len())
            .map(|m| {
                let q: Vec<f32> = w
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| ((v / s).floor() + ((m >> i) & 1) as f32).clamp(-qmax, qmax))
                    .collect();
                reconstruction(w, s, &q, h)
            })
            .fold(f64::INFINITY, f64::min)
    }

    #[test]
    fn learned_rounding_reconstructs_better_than_nearest() {
        let k = 12;
        let h = moments(k);
        let w: Vec<f32> = (0..k).map(|i| ((i * 37 % 23) as f32 / 11.0 - 1.0) * 0.5).collect();
        for bits in [8u32, 4] {
            let qmax = ((1 << (bits - 1)) - 1) as f32;
            let s = 0.5 / qmax;
            let o = AdaRoundOptions { bits, ..AdaRoundOptions::default() };
            let nearest: Vec<f32> = w.iter().map(|&v| (v / s).round()).collect();
            let b = reconstruction(&w, s, &nearest, &h);
            let best = exhaustive(&w, s, qmax, &h);
            match round_channel(&w, s, &h, &o) {
                Some(r) => {
                    let learned: Vec<f32> = r.iter().map(|&x| x as f32).collect();
                    let a = reconstruction(&w, s, &learned, &h);
                    assert!(a < b && a <= 1.05 * best, "{bits} bits: learned {a}, nearest {b}, best {best}");
                    // Each weight is rounded up or down, never further, and stays on the grid.
                    for (q, &v) in learned.iter().zip(&w) {
                        assert!((*q == (v / s).floor() || *q == (v / s).floor() + 1.0) && q.abs() <= qmax, "{q}");
                    }
                }
                // Round-to-nearest is kept only when nothing learned beats it.
                None => assert!(bits < 8, "8 bits: nearest {b}, best {best}"),
            }
        }
        // On 8 bits the learned rounding finds the best of the 4096 choices here, 8× below nearest.
        let s = 0.5 / 127.0;
        let r = round_channel(&w, s, &h, &AdaRoundOptions::default()).unwrap();
        let a = reconstruction(&w, s, &r.iter().map(|&x| x as f32).collect::<Vec<_>>(), &h);
        assert!(a < b8(&w, &h) / 8.0, "{a}");
    }

    fn b8(w: &[f32], h: &[f32]) -> f64 {
        let s = 0.5 / 127.0;
        reconstruction(w, s, &w.iter().map(|&v| (v / s).round()).collect::<Vec<_>>(), h)
    }
}

//! The quantization debugger: runs the float model and its INT8 counterpart on the same samples,
//! aligns their tensors by name, and measures per layer how much error the INT8 model carries
//! and how much each layer adds on its own (the layer alone, fed with the float model's input).
//!
//! The report also carries what its plots need: per layer a histogram of the float values with
//! the INT8 range, per-channel weight ranges, FP32-vs-INT8 agreement on the outputs and the INT8
//! model's footprint. Everything is accumulated in one streamed pass whose memory does not grow
//! with the number of samples; histograms coarsen on a power-of-two grid instead of needing the
//! value range in advance (see [`GridHistogram`]).

use crate::error::InFile;
use rayon::prelude::*;
use serde::Serialize;
use tinyq_float::Plan;
use tinyq_int8::{Int8Plan, TensorValue};
use tinyq_ir::{DType, Graph, TensorId};

use crate::deploy::Report;
use crate::{BoundInputs, Model, TinyqError};

/// Most bins a report histogram has; once the values spread wider it has at least half as many.
pub const HISTOGRAM_BINS: usize = 128;
/// Finest histogram bin of an activation, in LSB of its INT8 tensor.
const ACTIVATION_FINEST_LSB: f64 = 1.0 / 8.0;
/// Finest bin of the output error histograms, in LSB.
const ERROR_FINEST_LSB: f64 = 1.0 / 16.0;
/// Outputs with up to this many elements per sample get a confusion matrix of their argmax.
pub const MAX_CLASSES: usize = 64;
/// Pointer width the footprint summary assumes (microcontrollers).
pub(crate) const FOOTPRINT_POINTER_WIDTH: usize = 32;

/// Error statistics of one tensor, accumulated over samples.
#[derive(Clone, Copy, Debug, Default)]
struct ErrorStats {
    signal: f64,
    noise: f64,
    dot: f64,
    quantized: f64,
    max_abs: f64,
    sum_abs: f64,
    sum_abs_signal: f64,
    count: u64,
    clipped: u64,
}

impl ErrorStats {
    fn add(&mut self, f: &[f32], q: &[f32], range: (f32, f32)) {
        for (&a, &b) in f.iter().zip(q) {
            let (a, b) = (a as f64, b as f64);
            let e = a - b;
            self.signal += a * a;
            self.noise += e * e;
            self.dot += a * b;
            self.quantized += b * b;
            self.max_abs = self.max_abs.max(e.abs());
            self.sum_abs += e.abs();
            self.sum_abs_signal += a.abs();
            self.clipped += u64::from(a < range.0 as f64 || a > range.1 as f64);
        }
        self.count += f.len() as u64;
    }

    fn merge(&mut self, o: &ErrorStats) {
        self.signal += o.signal;
        self.noise += o.noise;
        self.dot += o.dot;
        self.quantized += o.quantized;
        self.max_abs = self.max_abs.max(o.max_abs);
        self.sum_abs += o.sum_abs;
        self.sum_abs_signal += o.sum_abs_signal;
        self.count += o.count;
        self.clipped += o.clipped;
    }

    fn sqnr_db(&self) -> f64 {
        if self.noise == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (self.signal / self.noise).log10()
        }
    }
}

/// Per-channel error of a layer run alone (channels = the last axis).
#[derive(Clone, Debug, Default)]
struct ChannelStats {
    signal: Vec<f64>,
    noise: Vec<f64>,
    /// Values seen per channel.
    count: u64,
}

impl ChannelStats {
    fn add(&mut self, reference: &[f32], q: &[f32], channels: usize) {
        if self.signal.is_empty() {
            self.signal = vec![0.0; channels];
            self.noise = vec![0.0; channels];
        }
        for (i, (&a, &b)) in reference.iter().zip(q).enumerate() {
            let c = i % channels;
            self.signal[c] += (a as f64).powi(2);
            self.noise[c] += (a as f64 - b as f64).powi(2);
        }
        self.count += (reference.len() / channels) as u64;
    }

    /// How many channels have an RMS value under `lsb` steps of `scale`, of how many.
    fn quiet_channels(&self, scale: f64, lsb: f64) -> (usize, usize) {
        let n = self.count.max(1) as f64;
        let quiet = self.signal.iter().filter(|&&s| (s / n).sqrt() / scale < lsb).count();
        (quiet, self.signal.len())
    }

    fn merge(&mut self, o: &ChannelStats) {
        if self.signal.is_empty() {
            *self = o.clone();
        } else if !o.signal.is_empty() {
            self.signal.iter_mut().zip(&o.signal).for_each(|(a, b)| *a += b);
            self.noise.iter_mut().zip(&o.noise).for_each(|(a, b)| *a += b);
            self.count += o.count;
        }
    }

    /// Mean over channels of each channel's SQNR (capped at 100 dB), so that a channel with a
    /// large signal cannot hide the others.
    fn mean_sqnr_db(&self) -> Option<f64> {
        let per: Vec<f64> = self
            .signal
            .iter()
            .zip(&self.noise)
            .filter(|(s, _)| **s > 0.0)
            .map(|(s, n)| if *n == 0.0 { 100.0 } else { (10.0 * (s / n).log10()).min(100.0) })
            .collect();
        (!per.is_empty()).then(|| per.iter().sum::<f64>() / per.len() as f64)
    }

    fn noise(&self) -> f64 {
        self.noise.iter().sum()
    }
}

/// A histogram filled in one pass without knowing the range: bins are `base·2^level` wide and
/// start at multiples of their width, and when the values would need more than
/// [`HISTOGRAM_BINS`] bins the level goes up (neighbouring bins merge). The level is always the
/// smallest that holds every value seen, so the result depends only on the values, not on the
/// order they came in or how they were split between merged halves. With `base` a fraction of a
/// tensor's scale, the bin edges fall on its INT8 grid.
#[derive(Clone, Debug)]
struct GridHistogram {
    base: f64,
    level: i32,
    /// Grid index of `counts[0]`; bin `i` covers `[i·w, (i+1)·w)`.
    first: i64,
    counts: Vec<u64>,
    min: f64,
    max: f64,
    nonfinite: u64,
}

/// Grid indices stay below this, so they are exact in an f64 and an i64.
const GRID_INDEX_LIMIT: f64 = (1u64 << 52) as f64;

/// `x.floor()` as an integer (saturating far out of range) without a libm call on the hot path.
fn floor_i64(x: f64) -> i64 {
    let t = x as i64;
    if (t as f64) > x {
        t - 1
    } else {
        t
    }
}

impl GridHistogram {
    fn new(base: f64) -> GridHistogram {
        let base = if base.is_finite() && base > 0.0 { base } else { 1.0 };
        GridHistogram {
            base,
            level: 0,
            first: 0,
            counts: Vec::new(),
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            nonfinite: 0,
        }
    }

    fn width(&self) -> f64 {
        self.base * 2f64.powi(self.level)
    }

    /// `1 / width`, as `(1 / base)·2^-level` so that indices at every level come from the same
    /// rounded `v / base` (scaling by a power of two is exact).
    fn inverse_width(&self) -> f64 {
        (1.0 / self.base) * 2f64.powi(-self.level)
    }

    fn last(&self) -> i64 {
        self.first + self.counts.len() as i64 - 1
    }

    /// Doubles the bin width, merging bins pairwise.
    fn coarsen(&mut self) {
        self.level += 1;
        if self.counts.is_empty() {
            return;
        }
        let first = self.first.div_euclid(2);
        let mut counts = vec![0u64; (self.last().div_euclid(2) - first + 1) as usize];
        for (j, &c) in self.counts.iter().enumerate() {
            counts[((self.first + j as i64).div_euclid(2) - first) as usize] += c;
        }
        self.first = first;
        self.counts = counts;
    }

    /// The grid index of `v` at the current level, coarsening until it is representable.
    fn index(&mut self, v: f64) -> i64 {
        loop {
            let x = v * self.inverse_width();
            if x.abs() < GRID_INDEX_LIMIT {
                return floor_i64(x);
            }
            self.coarsen();
        }
    }

    /// Makes bins `lo..=hi` (grid indices at the current level) part of `counts`.
    fn cover(&mut self, lo: i64, hi: i64) {
        if self.counts.is_empty() {
            self.first = lo;
            self.counts = vec![0; (hi - lo + 1) as usize];
            return;
        }
        if lo < self.first {
            let mut counts = vec![0u64; (self.first - lo) as usize];
            counts.extend_from_slice(&self.counts);
            self.counts = counts;
            self.first = lo;
        }
        if hi > self.last() {
            let len = (hi - self.first + 1) as usize;
            self.counts.resize(len, 0);
        }
    }

    fn add(&mut self, values: &[f32]) {
        let mut inverse = self.inverse_width();
        for &v in values {
            let v = v as f64;
            if !v.is_finite() {
                self.nonfinite += 1;
                continue;
            }
            if v < self.min {
                self.min = v;
            }
            if v > self.max {
                self.max = v;
            }
            // The common case: a bin that exists.
            let i = floor_i64(v * inverse).wrapping_sub(self.first);
            if (0..self.counts.len() as i64).contains(&i) {
                self.counts[i as usize] += 1;
                continue;
            }
            self.insert(v);
            inverse = self.inverse_width();
        }
    }

    /// Counts `v`, growing the bins (and coarsening them when they would be too many).
    fn insert(&mut self, v: f64) {
        let mut i = self.index(v);
        while !self.counts.is_empty() && self.last().max(i) - self.first.min(i) + 1 > HISTOGRAM_BINS as i64 {
            self.coarsen();
            i = self.index(v);
        }
        self.cover(i, i);
        self.counts[(i - self.first) as usize] += 1;
    }

    /// Adds the values another histogram (same `base`) saw.
    fn merge(&mut self, o: &GridHistogram) {
        self.nonfinite += o.nonfinite;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        let mut o = o.clone();
        while self.level < o.level {
            self.coarsen();
        }
        while o.level < self.level {
            o.coarsen();
        }
        if o.counts.is_empty() {
            return;
        }
        if !self.counts.is_empty() {
            while self.last().max(o.last()) - self.first.min(o.first) + 1 > HISTOGRAM_BINS as i64 {
                self.coarsen();
                o.coarsen();
            }
        }
        self.cover(o.first, o.last());
        for (j, &c) in o.counts.iter().enumerate() {
            self.counts[(o.first - self.first) as usize + j] += c;
        }
    }

    fn finish(&self) -> ValueHistogram {
        let count: u64 = self.counts.iter().sum();
        let seen = count > 0;
        ValueHistogram {
            lo: if seen { self.first as f64 * self.width() } else { 0.0 },
            bin_width: self.width(),
            counts: self.counts.clone(),
            min: if seen { self.min } else { 0.0 },
            max: if seen { self.max } else { 0.0 },
            count,
            nonfinite: self.nonfinite,
        }
    }
}

/// A histogram in the report: bin `i` counts the values in `[lo + i·bin_width, lo + (i+1)·bin_width)`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ValueHistogram {
    pub lo: f64,
    pub bin_width: f64,
    pub counts: Vec<u64>,
    /// Smallest and largest finite value seen (0 when none).
    pub min: f64,
    pub max: f64,
    /// Finite values counted.
    pub count: u64,
    /// NaN and ±Inf values seen (not in the bins).
    pub nonfinite: u64,
}

/// Per-output-channel range of a layer's float weights.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WeightRanges {
    /// The weight tensor's axis holding the output channels (0 for conv and dense, 3 for
    /// depthwise).
    pub axis: usize,
    pub min: Vec<f32>,
    pub max: Vec<f32>,
}

/// One model output: how the INT8 model's values compare with the float model's.
#[derive(Clone, Debug, Serialize)]
pub struct OutputDebug {
    pub tensor: String,
    /// Values per sample.
    pub elements: usize,
    /// The INT8 output's scale: one LSB in real units (`None` when it has no INT8 twin, in which
    /// case `error_histogram` is in real units).
    pub lsb: Option<f64>,
    /// FP32 − INT8 values, in LSB.
    pub error_histogram: ValueHistogram,
    /// For class vectors (2 to [`MAX_CLASSES`] elements): `confusion[i][j]` counts the samples
    /// whose FP32 argmax is `i` and INT8 argmax is `j`.
    pub confusion: Option<Vec<Vec<u64>>>,
    /// Share of samples where the two argmaxes agree (class vectors only).
    pub agreement: Option<f64>,
}

/// Everything accumulated about one output over the samples.
#[derive(Clone, Debug)]
struct OutputStats {
    errors: GridHistogram,
    /// Row-major `classes × classes`, empty when the output is not a class vector.
    confusion: Vec<u64>,
}

impl OutputStats {
    fn merge(&mut self, o: &OutputStats) {
        self.errors.merge(&o.errors);
        self.confusion.iter_mut().zip(&o.confusion).for_each(|(a, b)| *a += b);
    }
}

/// Index of the largest value (the first on ties, as `numpy.argmax`); NaN never wins.
fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] || v[best].is_nan() && !x.is_nan() {
            best = i;
        }
    }
    best
}

/// One layer of the INT8 model next to its float counterpart.
#[derive(Clone, Debug, Serialize)]
pub struct LayerDebug {
    pub tensor: String,
    pub op: &'static str,
    /// The quantized tensor's type: `int8`, or `int16` for layers run with int16 activations.
    pub dtype: &'static str,
    /// Signal-to-quantization-noise ratio of the INT8 tensor against the float one, in dB.
    pub sqnr_db: f64,
    pub cosine: f64,
    /// Largest and mean absolute error, in units of the tensor's scale (LSB).
    pub max_abs_error_lsb: f64,
    pub mean_abs_error_lsb: f64,
    /// Fraction of float values outside the quantized tensor's representable range.
    pub clipped_fraction: f64,
    /// Mean |value| of the float tensor in LSB: small means the range is wide for the values.
    pub mean_abs_value_lsb: f64,
    /// Largest over smallest per-output-channel weight range (conv, depthwise, dense).
    pub weight_spread: Option<f64>,
    /// The error the layer adds on its own: the INT8 layer fed with the float model's input
    /// (quantized) against the float layer fed with the same values; mean of per-channel SQNRs.
    pub own_sqnr_db: Option<f64>,
    /// Share of this tensor's error power the layer adds itself (the rest it inherits).
    pub own_error_share: Option<f64>,
    pub suggestion: Option<String>,
    /// The INT8 tensor's quantization parameters.
    pub scale: f32,
    pub zero_point: i32,
    /// The real values the quantized tensor represents: `[(−128−zp)·s, (127−zp)·s]` for int8,
    /// `[−32768·s, 32767·s]` for int16.
    pub int8_range: [f64; 2],
    /// The float tensor's values over all samples.
    pub histogram: ValueHistogram,
    /// Per-output-channel range of the float layer's weights (conv, depthwise, dense).
    pub weight_ranges: Option<WeightRanges>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DebugReport {
    pub samples: usize,
    /// Layers in execution order.
    pub layers: Vec<LayerDebug>,
    /// Tensor names, the layers that hurt most first (lowest own SQNR).
    pub ranking: Vec<String>,
    /// SQNR of the model's first output.
    pub output_sqnr_db: f64,
    /// The two models' files.
    pub fp32_model: String,
    pub int8_model: String,
    /// The model outputs, in order (those both models have with the same size).
    pub outputs: Vec<OutputDebug>,
    /// Footprint of the INT8 model on a 32-bit microcontroller (flash, TFLM arena, MACs).
    pub footprint: Option<Report>,
    /// Why there is no footprint, when there is none.
    pub footprint_error: Option<String>,
    /// Problems found before any layer (an input range calibrated on other data), most
    /// important first.
    pub findings: Vec<String>,
}

fn dequantize(v: &TensorValue, g: &Graph, t: TensorId) -> Option<Vec<f32>> {
    match v {
        TensorValue::F32(x) => Some(x.clone()),
        TensorValue::I8(x) => {
            let q = g.tensor(t).qparams.as_ref()?;
            Some(x.iter().map(|&v| ((v as i32 - q.zero_point[0]) as f64 * q.scale[0] as f64) as f32).collect())
        }
        TensorValue::I16(x) => {
            let q = g.tensor(t).qparams.as_ref()?;
            Some(x.iter().map(|&v| ((v as i32 - q.zero_point[0]) as f64 * q.scale[0] as f64) as f32).collect())
        }
        TensorValue::I32(_) => None,
    }
}

/// The integer limits of a quantized activation type.
fn type_limits(dtype: DType) -> Option<(i32, i32)> {
    match dtype {
        DType::I8 => Some((-128, 127)),
        DType::I16 => Some((-32768, 32767)),
        _ => None,
    }
}

/// The real values that round into the tensor's integer range (half an LSB beyond each end), and
/// its scale.
fn representable(g: &Graph, t: TensorId) -> (f32, f32, f32) {
    match (&g.tensor(t).qparams, type_limits(g.tensor(t).dtype)) {
        (Some(q), Some((lo, hi))) => {
            let (s, z) = (q.scale[0], q.zero_point[0]);
            (((lo - z) as f32 - 0.5) * s, ((hi - z) as f32 + 0.5) * s, s)
        }
        _ => (f32::NEG_INFINITY, f32::INFINITY, 1.0),
    }
}

fn zero_point(g: &Graph, t: TensorId) -> i32 {
    g.tensor(t).qparams.as_ref().map_or(0, |q| q.zero_point[0])
}

/// The real values a quantized tensor represents, `[(lo−zp)·s, (hi−zp)·s]`.
fn int8_range(g: &Graph, t: TensorId) -> [f64; 2] {
    let (_, _, s) = representable(g, t);
    let (lo, hi) = type_limits(g.tensor(t).dtype).unwrap_or((-128, 127));
    let z = zero_point(g, t) as f64;
    [(lo as f64 - z) * s as f64, (hi as f64 - z) * s as f64]
}

/// The float tensor a quantized one stands for: its name without the `_int8` / `_int16` that
/// the quantizer gives the copies it adds at type boundaries.
fn float_name(name: &str) -> &str {
    name.strip_suffix("_int8").or_else(|| name.strip_suffix("_int16")).unwrap_or(name)
}

/// What the pass over the samples accumulates; merged across threads.
struct Accumulated {
    total: Vec<ErrorStats>,
    own: Vec<ChannelStats>,
    /// Float values of each aligned tensor.
    values: Vec<GridHistogram>,
    outputs: Vec<OutputStats>,
}

impl Accumulated {
    fn merge(&mut self, o: &Accumulated) {
        self.total.iter_mut().zip(&o.total).for_each(|(x, y)| x.merge(y));
        self.own.iter_mut().zip(&o.own).for_each(|(x, y)| x.merge(y));
        self.values.iter_mut().zip(&o.values).for_each(|(x, y)| x.merge(y));
        self.outputs.iter_mut().zip(&o.outputs).for_each(|(x, y)| x.merge(y));
    }
}

/// The layer alone, fed at tensors that have a float twin: its node plus any glue before it that
/// the float model does not have (the PAD an explicit padding became). Returns the plan and its
/// input tensors (ids of `g`).
fn layer_alone(g: &Graph, n: usize, has_twin: &dyn Fn(TensorId) -> bool) -> Option<(Int8Plan, Vec<TensorId>)> {
    let mut nodes = vec![n];
    let mut inputs = Vec::new();
    let mut pending: Vec<TensorId> = g.nodes[n].inputs.clone();
    while let Some(t) = pending.pop() {
        if g.tensor(t).is_constant() || inputs.contains(&t) {
            continue;
        }
        if has_twin(t) {
            inputs.push(t);
            continue;
        }
        let p = g.producer(t)?;
        if nodes.len() > 4 || nodes.contains(&p) {
            return None;
        }
        nodes.push(p);
        pending.extend(g.nodes[p].inputs.iter().copied());
    }
    if inputs.is_empty() || inputs.iter().any(|&t| type_limits(g.tensor(t).dtype).is_none()) {
        return None;
    }
    nodes.sort_unstable();
    let mut sub = g.clone();
    sub.nodes = nodes.iter().map(|&k| g.nodes[k].clone()).collect();
    sub.inputs = inputs.clone();
    sub.outputs = vec![g.nodes[n].outputs[0]];
    sub.compact();
    Int8Plan::new(&sub).ok().map(|p| (p, inputs))
}

/// The float layer producing `ft`, fed at `inputs` (float tensor ids, in this order).
fn float_alone(g: &Graph, ft: TensorId, inputs: &[TensorId]) -> Option<Plan> {
    let n = g.producer(ft)?;
    let node = &g.nodes[n];
    let mut needed: Vec<TensorId> = node.inputs.iter().copied().filter(|&t| !g.tensor(t).is_constant()).collect();
    let mut given = inputs.to_vec();
    needed.sort_unstable();
    given.sort_unstable();
    if needed != given {
        return None;
    }
    let mut sub = g.clone();
    sub.nodes = vec![node.clone()];
    sub.inputs = inputs.to_vec();
    sub.outputs = vec![ft];
    sub.compact();
    Plan::new(&sub).ok()
}

/// Per-output-channel min and max of the weights of a conv, depthwise or dense node.
fn weight_ranges(g: &Graph, n: &tinyq_ir::Node) -> Option<WeightRanges> {
    let weights = n.op.weights()?;
    let axis = weights.channel_axis;
    let w = g.tensor(*n.inputs.get(weights.input)?);
    let data = w.f32_data()?;
    let channels = *w.shape.get(axis)?;
    let inner: usize = w.shape[axis + 1..].iter().product();
    if channels == 0 || inner == 0 {
        return None;
    }
    let mut min = vec![f32::INFINITY; channels];
    let mut max = vec![f32::NEG_INFINITY; channels];
    for (i, &v) in data.iter().enumerate() {
        let c = (i / inner) % channels;
        min[c] = min[c].min(v);
        max[c] = max[c].max(v);
    }
    Some(WeightRanges { axis, min, max })
}

/// Largest over smallest per-channel max |weight| (channels of all-zero weights left out).
fn weight_spread(r: &WeightRanges) -> Option<f64> {
    let max: Vec<f64> = r.min.iter().zip(&r.max).map(|(&lo, &hi)| (lo.abs().max(hi.abs())) as f64).collect();
    let lo = max.iter().copied().filter(|&m| m > 0.0).fold(f64::INFINITY, f64::min);
    let hi = max.iter().copied().fold(0.0, f64::max);
    (lo.is_finite() && lo > 0.0).then(|| hi / lo)
}

/// Compares `int8` (a quantized model, tensors named as in `fp32`) with `fp32` on the samples.
pub fn debug(
    fp32: &Model,
    int8: &Model,
    f_inputs: &BoundInputs,
    q_inputs: &BoundInputs,
) -> Result<DebugReport, TinyqError> {
    let err = |e: String| TinyqError::Engine(e);
    let fplan = Plan::new(&fp32.graph).in_file(&fp32.path)?;
    let qplan = Int8Plan::new(&int8.graph).in_file(&int8.path)?;
    let (fg, qg) = (&fp32.graph, &int8.graph);
    let by_name: std::collections::HashMap<&str, TensorId> =
        fg.tensors.iter().enumerate().map(|(i, t)| (t.name.as_str(), i)).collect();
    // Every INT8 node output with a float twin of the same size.
    let aligned: Vec<(usize, TensorId, TensorId)> = qg
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(n, node)| {
            let t = node.outputs[0];
            let f = *by_name.get(float_name(&qg.tensor(t).name))?;
            let quantized = type_limits(qg.tensor(t).dtype).is_some();
            (fg.tensor(f).numel() == qg.tensor(t).numel() && quantized).then_some((n, t, f))
        })
        .collect();
    if aligned.is_empty() {
        return Err(TinyqError::Model(format!(
            "{} and {}: no INT8 tensor has a float counterpart of the same name",
            fp32.path.display(),
            int8.path.display()
        )));
    }
    let twin = |t: TensorId| by_name.get(float_name(&qg.tensor(t).name)).copied();
    let has_twin = |t: TensorId| twin(t).is_some();
    let singles: Vec<Option<(Int8Plan, Vec<TensorId>)>> =
        aligned.iter().map(|&(n, _, _)| layer_alone(qg, n, &has_twin)).collect();
    let input_twins = |inputs: &[TensorId]| -> Option<Vec<TensorId>> { inputs.iter().map(|&t| twin(t)).collect() };
    let twins: Vec<Option<Vec<TensorId>>> =
        singles.iter().map(|s| s.as_ref().and_then(|(_, ins)| input_twins(ins))).collect();
    let floats: Vec<Option<Plan>> = aligned
        .iter()
        .zip(&twins)
        .map(|(&(_, _, ft), fins)| fins.as_ref().and_then(|fins| float_alone(fg, ft, fins)))
        .collect();
    // Model outputs paired in order; class vectors also get a confusion matrix.
    let outputs: Vec<(TensorId, TensorId, Option<f64>, usize)> = fg
        .outputs
        .iter()
        .zip(&qg.outputs)
        .filter(|(&fo, &qo)| fg.tensor(fo).numel() == qg.tensor(qo).numel() && fg.tensor(fo).numel() > 0)
        .map(|(&fo, &qo)| {
            let name = qg.tensor(qo).name.trim_end_matches("_int8");
            let int8_twin = qg.tensors.iter().find(|t| t.name == format!("{name}_int8"));
            let qp = match qg.tensor(qo).dtype {
                DType::I8 => qg.tensor(qo).qparams.as_ref(),
                _ => int8_twin.and_then(|t| t.qparams.as_ref()),
            };
            let lsb = qp.map(|q| q.scale[0] as f64).filter(|s| s.is_finite() && *s > 0.0);
            let n = fg.tensor(fo).numel();
            (fo, qo, lsb, if (2..=MAX_CLASSES).contains(&n) { n } else { 0 })
        })
        .collect();
    let bases: Vec<f64> =
        aligned.iter().map(|&(_, qt, _)| representable(qg, qt).2 as f64 * ACTIVATION_FINEST_LSB).collect();
    let zero = || Accumulated {
        total: vec![ErrorStats::default(); aligned.len()],
        own: vec![ChannelStats::default(); aligned.len()],
        values: bases.iter().map(|&b| GridHistogram::new(b)).collect(),
        outputs: outputs
            .iter()
            .map(|&(_, _, _, classes)| OutputStats {
                errors: GridHistogram::new(ERROR_FINEST_LSB),
                confusion: vec![0; classes * classes],
            })
            .collect(),
    };
    let acc = (0..f_inputs.samples)
        .into_par_iter()
        .try_fold(zero, |mut acc, i| -> Result<_, TinyqError> {
            let fs = f_inputs.sample_f32(i).ok_or_else(|| err("the float model needs float data".into()))?;
            let facts = fplan.run_observed(&fs, &mut |_, _| {})?;
            let qs: Vec<TensorValue> = q_inputs.sample(i).into_iter().map(|s| s.to_value()).collect();
            let qacts = qplan.run_observed(&qs, &mut |_, _| {})?;
            for (o, &(fo, qo, lsb, classes)) in outputs.iter().enumerate() {
                let f = fplan.value(&facts, fo);
                let Some(q) = dequantize(qplan.value(&qacts, qo), qg, qo) else { continue };
                let unit = lsb.unwrap_or(1.0);
                let errors: Vec<f32> = f.iter().zip(&q).map(|(&a, &b)| ((a as f64 - b as f64) / unit) as f32).collect();
                acc.outputs[o].errors.add(&errors);
                if classes > 0 {
                    acc.outputs[o].confusion[argmax(f) * classes + argmax(&q)] += 1;
                }
            }
            for (k, &(_, qt, ft)) in aligned.iter().enumerate() {
                let f = fplan.value(&facts, ft);
                acc.values[k].add(f);
                let (lo, hi, _) = representable(qg, qt);
                if let Some(q) = dequantize(qplan.value(&qacts, qt), qg, qt) {
                    acc.total[k].add(f, &q, (lo, hi));
                }
                let (Some((plan, ins)), Some(fins), Some(fl)) = (&singles[k], &twins[k], &floats[k]) else { continue };
                let args: Vec<TensorValue> = ins
                    .iter()
                    .zip(fins)
                    .map(|(&qi, &fi)| {
                        let p = qg.tensor(qi).qparams.as_ref().expect("quantized tensors carry qparams");
                        let x = fplan.value(&facts, fi);
                        match qg.tensor(qi).dtype {
                            DType::I16 => TensorValue::I16(crate::quantize_s16(x, p.scale[0], p.zero_point[0])),
                            _ => TensorValue::I8(crate::quantize_s8(x, p.scale[0], p.zero_point[0])),
                        }
                    })
                    .collect();
                let real: Vec<Vec<f32>> = args.iter().zip(ins).filter_map(|(a, &qi)| dequantize(a, qg, qi)).collect();
                let reference = fl.run(&real.iter().map(Vec::as_slice).collect::<Vec<_>>())?;
                let out = plan.run(&args)?;
                if let Some(q) = dequantize(&out[0], plan.graph(), plan.graph().outputs[0]) {
                    let channels = *qg.tensor(qt).shape.last().unwrap_or(&1);
                    acc.own[k].add(&reference[0], &q, channels.max(1));
                }
            }
            Ok(acc)
        })
        .try_reduce(zero, |mut a, b| {
            a.merge(&b);
            Ok(a)
        })?;
    let (total, own) = (&acc.total, &acc.own);

    let layers: Vec<LayerDebug> = aligned
        .iter()
        .enumerate()
        .map(|(k, &(n, qt, ft))| {
            let (t, o) = (&total[k], &own[k]);
            let (_, _, scale) = representable(qg, qt);
            let count = t.count.max(1) as f64;
            let producer = fg.producer(ft).map(|p| &fg.nodes[p]);
            let ranges = producer.and_then(|p| weight_ranges(fg, p));
            let spread = ranges.as_ref().and_then(weight_spread);
            let own_sqnr = o.mean_sqnr_db();
            let clipped = t.clipped as f64 / count;
            let mean_abs_value_lsb = t.sum_abs_signal / count / scale as f64;
            // The TFLite int8 spec fixes these outputs' scale and zero point: calibration cannot
            // change their range, so no calibration advice.
            let fixed_range = matches!(tinyq_quant::output_rule(&qg.nodes[n].op), Ok(tinyq_quant::OutputRule::Fixed(..)));
            let suggestion = if fixed_range {
                None
            } else if clipped > 0.01 {
                Some(format!("{:.1}% of values clipped: try --calibration percentile or mse", clipped * 100.0))
            } else if spread.is_some_and(|s| s > 100.0) {
                let int16 = if qg.tensor(qt).dtype == DType::I16 { "" } else { " or int16 activations" };
                Some(format!("per-channel weight spread {:.0}×: try equalization{int16}", spread.unwrap_or(0.0)))
            } else if let Some((quiet, all)) = Some(o.quiet_channels(scale as f64, 2.0)).filter(|&(q, a)| a > 1 && 2 * q > a) {
                Some(format!(
                    "{quiet} of {all} channels stay under 2 LSB: the range is set by a few outliers; try --calibration percentile or mse, or equalization"
                ))
            } else if mean_abs_value_lsb < 2.0 {
                Some(format!(
                    "values average {mean_abs_value_lsb:.1} LSB: the range is wide for them (outliers?); try --calibration percentile or mse"
                ))
            } else {
                None
            };
            LayerDebug {
                tensor: qg.tensor(qt).name.trim_end_matches("_int8").to_string(),
                op: qg.nodes[n].op.name(),
                dtype: if qg.tensor(qt).dtype == DType::I16 { "int16" } else { "int8" },
                sqnr_db: t.sqnr_db(),
                cosine: t.dot / (t.signal.sqrt() * t.quantized.sqrt()).max(f64::MIN_POSITIVE),
                max_abs_error_lsb: t.max_abs / scale as f64,
                mean_abs_error_lsb: t.sum_abs / count / scale as f64,
                clipped_fraction: clipped,
                mean_abs_value_lsb,
                weight_spread: spread,
                own_sqnr_db: own_sqnr,
                own_error_share: (own_sqnr.is_some() && t.noise > 0.0).then(|| (o.noise() / t.noise).min(1.0)),
                suggestion,
                scale,
                zero_point: zero_point(qg, qt),
                int8_range: int8_range(qg, qt),
                histogram: acc.values[k].finish(),
                weight_ranges: ranges,
            }
        })
        .collect();
    let mut order: Vec<usize> = (0..layers.len()).collect();
    let key = |l: &LayerDebug| l.own_sqnr_db.unwrap_or(l.sqnr_db);
    order.sort_by(|&a, &b| key(&layers[a]).total_cmp(&key(&layers[b])));
    let out_name = qg.tensor(qg.outputs[0]).name.trim_end_matches("_int8").to_string();
    let output_sqnr_db = layers.iter().find(|l| l.tensor == out_name).map_or(f64::NAN, |l| l.sqnr_db);
    let outputs = outputs
        .iter()
        .zip(&acc.outputs)
        .map(|(&(fo, qo, lsb, classes), stats)| {
            let confusion: Option<Vec<Vec<u64>>> =
                (classes > 0).then(|| stats.confusion.chunks(classes).map(<[u64]>::to_vec).collect());
            let agreement = confusion.as_ref().and_then(|m| {
                let all: u64 = m.iter().flatten().sum();
                (all > 0).then(|| (0..classes).map(|c| m[c][c]).sum::<u64>() as f64 / all as f64)
            });
            OutputDebug {
                tensor: qg.tensor(qo).name.trim_end_matches("_int8").to_string(),
                elements: fg.tensor(fo).numel(),
                lsb,
                error_histogram: stats.errors.finish(),
                confusion,
                agreement,
            }
        })
        .collect();
    let (footprint, footprint_error) =
        match crate::deploy::report(&int8.path, FOOTPRINT_POINTER_WIDTH, tinyq_arena::Kernels::Reference) {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(e.to_string())),
        };
    Ok(DebugReport {
        findings: crate::guards::input_findings(qg, f_inputs),
        samples: f_inputs.samples,
        ranking: order.iter().map(|&i| layers[i].tensor.clone()).collect(),
        layers,
        output_sqnr_db,
        fp32_model: fp32.path.display().to_string(),
        int8_model: int8.path.display().to_string(),
        outputs,
        footprint,
        footprint_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values: mostly small, a few outliers, some repeats of 0 (as after a ReLU).
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut x = seed;
        (0..n)
            .map(|i| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let u = (x >> 11) as f64 / (1u64 << 53) as f64;
                match i % 50 {
                    0 => (u * 900.0 - 300.0) as f32,
                    1..=9 => 0.0,
                    _ => (u * 6.0 - 2.0) as f32,
                }
            })
            .collect()
    }

    #[test]
    fn histograms_do_not_depend_on_order_or_split() {
        let v = values(5000, 1);
        let mut whole = GridHistogram::new(0.01);
        whole.add(&v);
        for chunk in [1, 7, 333, 2500] {
            let mut merged = GridHistogram::new(0.01);
            for part in v.chunks(chunk).rev() {
                let mut h = GridHistogram::new(0.01);
                h.add(part);
                merged.merge(&h);
            }
            assert_eq!(merged.finish(), whole.finish(), "chunks of {chunk}");
        }
        let mut reversed = GridHistogram::new(0.01);
        reversed.add(&v.iter().rev().copied().collect::<Vec<_>>());
        assert_eq!(reversed.finish(), whole.finish());
    }

    #[test]
    fn histograms_cover_every_value_in_a_bounded_number_of_bins() {
        let mut v = values(3000, 2);
        v.extend([f32::NAN, f32::INFINITY]);
        let mut h = GridHistogram::new(0.01);
        h.add(&v);
        let r = h.finish();
        assert_eq!(r.count, 3000);
        assert_eq!(r.nonfinite, 2);
        assert!(r.counts.len() > HISTOGRAM_BINS / 2 && r.counts.len() <= HISTOGRAM_BINS, "{} bins", r.counts.len());
        assert!(r.lo <= r.min && r.min < r.lo + r.bin_width, "{r:?}");
        let end = r.lo + r.counts.len() as f64 * r.bin_width;
        assert!(r.max < end && r.max >= end - r.bin_width, "{r:?}");
        assert!(r.counts[0] > 0 && *r.counts.last().unwrap() > 0);
        // Every value in its bin.
        for &x in v.iter().filter(|x| x.is_finite()).take(200) {
            let b = ((x as f64 - r.lo) / r.bin_width).floor() as usize;
            assert!(b < r.counts.len() && r.counts[b] > 0, "{x}");
        }
    }

    #[test]
    fn bin_edges_fall_on_the_int8_grid() {
        // An INT8 tensor with scale 0.05 and zero point -20: values over its whole range.
        let (s, zp) = (0.05f64, -20.0);
        let v: Vec<f32> = (-128..=127).map(|q| ((q as f64 - zp) * s) as f32).collect();
        let mut h = GridHistogram::new(s * ACTIVATION_FINEST_LSB);
        h.add(&v);
        let r = h.finish();
        let lsb_per_bin = r.bin_width / s;
        assert!((lsb_per_bin - lsb_per_bin.round()).abs() < 1e-9 && lsb_per_bin >= 1.0, "{lsb_per_bin}");
        assert!(((r.lo / s) - (r.lo / s).round()).abs() < 1e-6, "{}", r.lo / s);
        assert_eq!(r.counts.iter().sum::<u64>(), 256);
    }

    #[test]
    fn narrow_values_keep_the_finest_bins_and_huge_ones_do_not_overflow() {
        let mut h = GridHistogram::new(0.25);
        h.add(&[0.0, 0.3, 0.6, 1.0]);
        let r = h.finish();
        assert_eq!((r.bin_width, r.lo, r.counts.clone()), (0.25, 0.0, vec![1, 1, 1, 0, 1]));
        let mut h = GridHistogram::new(1e-6);
        h.add(&[f32::MAX, -f32::MAX, 0.0]);
        let r = h.finish();
        assert_eq!(r.count, 3);
        assert!(r.counts.len() <= HISTOGRAM_BINS);
        let empty = GridHistogram::new(1.0).finish();
        assert_eq!((empty.count, empty.counts.len()), (0, 0));
    }

    #[test]
    fn floor_i64_is_floor() {
        for x in [0.0, -0.0, 0.5, -0.5, -1.0, -1e-20, 2.999999, -2.000001, 1e15 + 0.5, -1e15 - 0.5] {
            assert_eq!(floor_i64(x), x.floor() as i64, "{x}");
        }
    }

    #[test]
    fn argmax_takes_the_first_of_ties_and_skips_nan() {
        assert_eq!(argmax(&[0.1, 0.7, 0.7, 0.2]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.5, 0.2]), 1);
        assert_eq!(argmax(&[3.0]), 0);
    }

    #[test]
    fn weight_spread_uses_each_channels_largest_magnitude() {
        // Channel maxima |w|: 4, 0 (left out), 0.25.
        let r = WeightRanges { axis: 0, min: vec![-4.0, 0.0, -0.25], max: vec![2.0, 0.0, 0.125] };
        assert_eq!(weight_spread(&r), Some(16.0));
        let dead = WeightRanges { axis: 0, min: vec![0.0], max: vec![0.0] };
        assert_eq!(weight_spread(&dead), None);
    }
}

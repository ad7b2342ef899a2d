//! Post-training quantization of an IR graph: float graph + calibrated ranges → int8 graph,
//! following the TFLite int8 spec op by op (see `docs/numerics.md`).
//!
//! [`quantize_graph_mixed`] runs named steps in order: mark the layers kept in float or run
//! with int16 activations (`mark_nodes`), put the operands of CONCATENATION, MAXIMUM and MINIMUM
//! on one range (`concat_ranges`), set every activation's parameters by its op's rule
//! (`activation_params`), quantize weights, biases and constant operands
//! (`weights::quantize_constants`), rewrite the 16x8 layers (`wide::to_16x8`), the float layers
//! and float edges (`float`), requantize the inputs of those ops, and check every scale.

use tinyq_ir::{DType, Graph, Node, Op, QParams, TensorData, TensorId};

use crate::{asymmetric_qparams, ActivationQParams, QuantError};

/// Knobs of the quantization rules.
#[derive(Clone, Debug, Default)]
pub struct PtqConfig {
    /// One weight scale per tensor instead of per output channel, for every layer (for targets
    /// that need it).
    pub per_tensor: bool,
    /// One weight scale per tensor for FULLY_CONNECTED layers only (convolutions stay per
    /// channel): the files tinyq wrote before per-channel dense layers.
    pub per_tensor_dense: bool,
    /// Keep float model inputs and outputs, with QUANTIZE / DEQUANTIZE at the edges.
    pub float_io: bool,
    /// Layers (node indices of the float graph; conv, depthwise conv, fully connected with int8
    /// activations) whose weights are int4: symmetric in [−7, 7], per channel for convolutions
    /// (unless `per_tensor`) and per tensor for fully connected layers, as TFLM's kernels take them.
    pub int4_nodes: Vec<usize>,
}

/// How an op's output quantization is decided.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OutputRule {
    /// From the output's own calibrated range.
    Own,
    /// Equal to input 0's (ops that only move or select values).
    SameAsInput,
    /// Fixed by the spec.
    Fixed(f32, i32),
}

/// The output rule of `op` under the TFLite int8 spec; an error for ops without an int8 kernel.
pub fn output_rule(op: &Op) -> Result<OutputRule, String> {
    Ok(match op {
        Op::Conv2D(_)
        | Op::DepthwiseConv2D(_)
        | Op::FullyConnected(_)
        | Op::Add(_)
        | Op::Sub(_)
        | Op::Mul(_)
        | Op::Mean(_)
        | Op::ReduceSum(_)
        | Op::Relu
        | Op::Relu6
        | Op::LeakyRelu(_)
        | Op::PRelu
        | Op::Elu
        | Op::Abs
        | Op::HardSwish
        | Op::Maximum
        | Op::Minimum
        | Op::Concat(_) => OutputRule::Own,
        Op::Reshape
        | Op::Transpose(_)
        | Op::StridedSlice(_)
        | Op::MirrorPad(_)
        | Op::Pad(_)
        | Op::ResizeNearest(_)
        | Op::ResizeBilinear(_)
        | Op::ReduceMax(_)
        | Op::MaxPool2D(_)
        | Op::AvgPool2D(_) => OutputRule::SameAsInput,
        Op::Softmax(_) | Op::Sigmoid => OutputRule::Fixed(1.0 / 256.0, -128),
        // LOG_SOFTMAX's outputs lie in (−16, 0]: TFLM requires (16/256, 127).
        Op::LogSoftmax => OutputRule::Fixed(16.0 / 256.0, 127),
        Op::Tanh => OutputRule::Fixed(1.0 / 128.0, 0),
        Op::Clip(c) => return Err(format!("Clip({}, {}) has no int8 TFLite kernel", c.min, c.max)),
        Op::Quantize | Op::Dequantize => return Err("the graph is already quantized".into()),
    })
}

pub(crate) fn per_tensor_q(p: ActivationQParams) -> QParams {
    QParams { scale: vec![p.scale], zero_point: vec![p.zero_point], axis: None }
}

/// Whether a node with `op` can be left in float inside an int8 graph: the ops whose float
/// kernels the integer engine reproduces bit for bit (TFLM's float reference kernels) — the
/// layers with weights, and the reshapes and transposes that move their values.
pub fn can_keep_in_float(op: &Op) -> bool {
    match op {
        Op::Conv2D(_) | Op::DepthwiseConv2D(_) | Op::FullyConnected(_) | Op::Reshape | Op::Transpose(_) => true,
        Op::Add(_)
        | Op::Sub(_)
        | Op::Mul(_)
        | Op::Mean(_)
        | Op::Relu
        | Op::Relu6
        | Op::LeakyRelu(_)
        | Op::PRelu
        | Op::Elu
        | Op::Abs
        | Op::HardSwish
        | Op::Maximum
        | Op::Minimum
        | Op::Concat(_)
        | Op::StridedSlice(_)
        | Op::MirrorPad(_)
        | Op::Pad(_)
        | Op::ResizeNearest(_)
        | Op::ResizeBilinear(_)
        | Op::ReduceMax(_)
        | Op::ReduceSum(_)
        | Op::MaxPool2D(_)
        | Op::AvgPool2D(_)
        | Op::Softmax(_)
        | Op::LogSoftmax
        | Op::Sigmoid
        | Op::Tanh
        | Op::Clip(_)
        | Op::Quantize
        | Op::Dequantize => false,
    }
}

/// Whether a node with `op` can run with int16 activations: the layers TFLM has 16x8 kernels
/// for (int16 activations, int8 weights), and the int16 ADD, CONCATENATION, pools, MEAN and
/// RESHAPE that carry int16 tensors between them, as tinyq's integer engine reproduces them.
pub fn can_run_16x8(op: &Op) -> bool {
    match op {
        Op::Conv2D(_)
        | Op::DepthwiseConv2D(_)
        | Op::FullyConnected(_)
        | Op::Add(_)
        | Op::MaxPool2D(_)
        | Op::AvgPool2D(_)
        | Op::Mean(_)
        | Op::Reshape
        | Op::Concat(_) => true,
        Op::Transpose(_)
        | Op::StridedSlice(_)
        | Op::MirrorPad(_)
        | Op::Sub(_)
        | Op::Mul(_)
        | Op::Relu
        | Op::Relu6
        | Op::LeakyRelu(_)
        | Op::PRelu
        | Op::Elu
        | Op::Abs
        | Op::HardSwish
        | Op::Maximum
        | Op::Minimum
        | Op::Pad(_)
        | Op::ResizeNearest(_)
        | Op::ResizeBilinear(_)
        | Op::ReduceMax(_)
        | Op::ReduceSum(_)
        | Op::Softmax(_)
        | Op::LogSoftmax
        | Op::Sigmoid
        | Op::Tanh
        | Op::Clip(_)
        | Op::Quantize
        | Op::Dequantize => false,
    }
}

/// Quantizes `g` given the calibrated `[min, max]` of every non-constant tensor (by tensor id).
pub fn quantize_graph(g: &Graph, ranges: &[Option<(f32, f32)>], cfg: &PtqConfig) -> Result<Graph, QuantError> {
    quantize_graph_with_float(g, ranges, cfg, &[])
}

/// [`quantize_graph`], leaving the nodes `float_nodes` (indices into `g.nodes`) in float: they
/// keep their float32 weights and compute in float between a DEQUANTIZE of each int8 input and a
/// QUANTIZE of their output, which keeps the parameters its range gives. A tensor between two
/// float nodes stays float; with `float_io`, a float node's graph output stays float too.
/// Only ops for which [`can_keep_in_float`] holds are accepted.
pub fn quantize_graph_with_float(
    g: &Graph,
    ranges: &[Option<(f32, f32)>],
    cfg: &PtqConfig,
    float_nodes: &[usize],
) -> Result<Graph, QuantError> {
    quantize_graph_mixed(g, ranges, cfg, float_nodes, &[])
}

/// [`quantize_graph_with_float`], running the nodes `int16_nodes` as 16x8 layers: their input
/// and output activations are int16, symmetric (`max(|min|, |max|) / 32767`, zero point 0),
/// their weights int8 as usual and their bias int64 with scale `input_scale · weight_scale`.
/// An int16 tensor whose readers are all 16x8 layers (and which is not a graph output) is shared
/// as it is; elsewhere a QUANTIZE converts int8 → int16 before a 16x8 layer (one per tensor,
/// shared by its 16x8 readers) and int16 → int8 after it, to the int8 parameters the tensor's
/// range gives. Graph inputs and outputs keep their int8 (or float) types. Only ops for which
/// [`can_run_16x8`] holds are accepted, and a node cannot be both float and 16x8.
pub fn quantize_graph_mixed(
    g: &Graph,
    ranges: &[Option<(f32, f32)>],
    cfg: &PtqConfig,
    float_nodes: &[usize],
    int16_nodes: &[usize],
) -> Result<Graph, QuantError> {
    // The steps, in order; each is a function of its own.
    let is_wide = mark_nodes(g, int16_nodes, can_run_16x8, "cannot run with int16 activations (only CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, ADD, CONCATENATION, MAX_POOL_2D, AVERAGE_POOL_2D, MEAN and RESHAPE have int16 kernels)")?;
    let is_float = mark_nodes(g, float_nodes, can_keep_in_float, "cannot be kept in float (only CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, RESHAPE and TRANSPOSE have float kernels checked against TFLM)")?;
    if let Some(k) = (0..g.nodes.len()).find(|&k| is_wide[k] && is_float[k]) {
        return Err(node_err(&g.nodes[k], "cannot be both kept in float and run with int16 activations".into()));
    }
    let ranges = concat_ranges(g, ranges);
    let act = activation_params(g, &ranges)?;
    let mut q = g.clone();
    for (t, p) in act.iter().enumerate() {
        if let Some(p) = p {
            q.tensors[t].dtype = DType::I8;
            q.tensors[t].qparams = Some(per_tensor_q(*p));
        }
    }
    weights::quantize_constants(&mut q, g, &act, cfg, &is_float, &is_wide)?;
    let origin: Vec<Option<usize>> = if int16_nodes.is_empty() {
        (0..g.nodes.len()).map(Some).collect()
    } else {
        wide::to_16x8(&mut q, g, &ranges, &is_wide)?
    };
    if !float_nodes.is_empty() {
        float::keep_in_float(&mut q, g, &is_float, &origin, cfg.float_io);
    }
    if cfg.float_io {
        float::add_float_edges(&mut q);
    }
    crate::concat::requantize_concat_inputs(&mut q);
    check_scales(&q)?;
    q.validate().map_err(|e| QuantError::Graph(e.to_string()))?;
    Ok(q)
}

fn node_err(n: &Node, msg: String) -> QuantError {
    QuantError::Node { node: n.name.clone(), op: n.op.name(), msg }
}

/// A flag per node of `g`, set for the nodes `picked` (indices); an error names an index beyond
/// the graph or a node whose op fails `allowed` (with `refusal`).
fn mark_nodes(g: &Graph, picked: &[usize], allowed: fn(&Op) -> bool, refusal: &str) -> Result<Vec<bool>, QuantError> {
    let mut marked = vec![false; g.nodes.len()];
    for &k in picked {
        let n = g
            .nodes
            .get(k)
            .ok_or_else(|| QuantError::Graph(format!("node index {k} is beyond the {} nodes", g.nodes.len())))?;
        if !allowed(&n.op) {
            return Err(node_err(n, refusal.into()));
        }
        marked[k] = true;
    }
    Ok(marked)
}

/// `ranges` for every tensor, with the activation inputs and the output of each op that shares
/// its parameters ([`Op::shares_qparams`]: CONCATENATION, MAXIMUM, MINIMUM) on one scale: the
/// union of their ranges.
fn concat_ranges(g: &Graph, ranges: &[Option<(f32, f32)>]) -> Vec<Option<(f32, f32)>> {
    let mut ranges: Vec<Option<(f32, f32)>> = ranges.to_vec();
    ranges.resize(g.tensors.len(), None);
    for n in &g.nodes {
        if n.op.shares_qparams() {
            let ids: Vec<TensorId> =
                n.inputs.iter().chain(&n.outputs).copied().filter(|&t| !g.tensor(t).is_constant()).collect();
            let union =
                ids.iter().filter_map(|&t| ranges[t]).fold((0f32, 0f32), |(a, b), (lo, hi)| (a.min(lo), b.max(hi)));
            ids.iter().for_each(|&t| ranges[t] = Some(union));
        }
    }
    ranges
}

/// The int8 parameters of every activation: graph inputs from their ranges, each node's output
/// by its op's [`output_rule`].
fn activation_params(g: &Graph, ranges: &[Option<(f32, f32)>]) -> Result<Vec<Option<ActivationQParams>>, QuantError> {
    let mut act: Vec<Option<ActivationQParams>> = vec![None; g.tensors.len()];
    let range_of = |t: TensorId| -> Result<(f32, f32), QuantError> {
        ranges[t].ok_or_else(|| QuantError::Tensor {
            tensor: g.tensor(t).name.clone(),
            msg: "has no calibrated range".into(),
        })
    };
    for &i in &g.inputs {
        act[i] = Some(tensor_qparams(g, i, range_of(i)?)?);
    }
    for n in &g.nodes {
        let out = n.outputs[0];
        act[out] = Some(match output_rule(&n.op).map_err(|m| node_err(n, m))? {
            OutputRule::Own if n.op == Op::HardSwish => {
                // TFLM needs input_scale / 128 / output_scale < 1: widen a narrow output range.
                let floor = act[n.inputs[0]].map_or(0.0, |p| p.scale / 128.0) * (1.0 + 1e-5);
                let (lo, hi) = range_of(out)?;
                let (lo, hi) = (lo.min(0.0), hi.max(0.0));
                tensor_qparams(g, out, (lo, hi.max(lo + 255.0 * floor)))?
            }
            OutputRule::Own => tensor_qparams(g, out, range_of(out)?)?,
            OutputRule::SameAsInput => {
                act[n.inputs[0]].ok_or_else(|| node_err(n, "input has no quantization".into()))?
            }
            OutputRule::Fixed(scale, zero_point) => ActivationQParams { scale, zero_point },
        });
    }
    Ok(act)
}

/// The asymmetric int8 parameters of range `r` for tensor `t`; an error names the tensor.
fn tensor_qparams(g: &Graph, t: TensorId, r: (f32, f32)) -> Result<ActivationQParams, QuantError> {
    asymmetric_qparams(r.0, r.1)
        .map_err(|e| QuantError::Tensor { tensor: g.tensor(t).name.clone(), msg: e.to_string() })
}

/// Every quantized tensor of `q` must have finite, positive scales (TFLM divides by them and
/// derives multipliers from them), and float constants finite values: an error names the first
/// tensor that does not.
fn check_scales(q: &Graph) -> Result<(), QuantError> {
    for t in &q.tensors {
        if let Some(s) = t.qparams.as_ref().and_then(|p| p.scale.iter().find(|s| !(s.is_finite() && **s > 0.0))) {
            return Err(QuantError::Tensor {
                tensor: t.name.clone(),
                msg: format!("would get scale {s}: every scale must be finite and above 0"),
            });
        }
        if let Some(TensorData::F32(d)) = &t.data {
            let Some(v) = d.iter().find(|v| !v.is_finite()) else { continue };
            return Err(QuantError::Tensor {
                tensor: t.name.clone(),
                msg: format!("holds {v}: float constants must be finite"),
            });
        }
    }
    Ok(())
}

mod float;
#[cfg(test)]
mod tests;
mod weights;
mod wide;

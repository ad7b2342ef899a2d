//! What `tinyq inspect` shows: interface, op counts, parameters, MACs, tensor shapes.

use std::collections::BTreeMap;

use serde::Serialize;
use tinyq_ir::{numel, Graph, Tensor};

use crate::Model;

#[derive(Clone, Debug, Serialize)]
pub struct TensorSummary {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: &'static str,
}

impl TensorSummary {
    fn of(t: &Tensor) -> TensorSummary {
        TensorSummary { name: t.name.clone(), shape: t.shape.clone(), dtype: t.dtype.name() }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct LayerSummary {
    pub name: String,
    pub op: &'static str,
    /// Fused activation (RELU, RELU6, …), empty when none.
    pub activation: &'static str,
    pub output_shape: Vec<usize>,
    pub macs: u64,
    pub parameters: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct ModelSummary {
    pub model: String,
    pub inputs: Vec<TensorSummary>,
    pub outputs: Vec<TensorSummary>,
    pub ops: BTreeMap<&'static str, usize>,
    pub nodes: usize,
    pub parameters: usize,
    pub parameter_bytes: usize,
    /// Bytes of all parameters stored as float32.
    pub fp32_bytes: usize,
    pub macs: u64,
    pub file_bytes: u64,
    pub layers: Vec<LayerSummary>,
}

/// Multiply-accumulates of one node (convolutions and dense layers; 0 for the rest).
pub fn node_macs(g: &Graph, n: &tinyq_ir::Node) -> u64 {
    let out = numel(&g.tensor(n.outputs[0]).shape) as u64;
    let Some(weights) = n.op.weights() else { return 0 };
    // Each output value reads every weight of its channel.
    let w = &g.tensor(n.inputs[weights.input]).shape;
    let per_channel = numel(w) / w.get(weights.channel_axis).copied().unwrap_or(1).max(1);
    out * per_channel as u64
}

pub fn inspect(model: &Model) -> ModelSummary {
    let g = &model.graph;
    let mut ops = BTreeMap::new();
    let layers: Vec<LayerSummary> = g
        .nodes
        .iter()
        .map(|n| {
            *ops.entry(n.op.name()).or_insert(0) += 1;
            LayerSummary {
                name: n.name.clone(),
                op: n.op.name(),
                activation: n.op.activation().map_or("", |a| a.name()),
                output_shape: g.tensor(n.outputs[0]).shape.clone(),
                macs: node_macs(g, n),
                parameters: n.inputs.iter().map(|&i| g.tensor(i)).filter(|t| t.is_constant()).map(Tensor::numel).sum(),
            }
        })
        .collect();
    let (parameters, parameter_bytes) = g.parameter_count();
    ModelSummary {
        model: model.path.display().to_string(),
        inputs: g.inputs.iter().map(|&i| TensorSummary::of(g.tensor(i))).collect(),
        outputs: g.outputs.iter().map(|&i| TensorSummary::of(g.tensor(i))).collect(),
        ops,
        nodes: g.nodes.len(),
        parameters,
        parameter_bytes,
        fp32_bytes: parameters * 4,
        macs: layers.iter().map(|l| l.macs).sum(),
        file_bytes: model.file_bytes,
        layers,
    }
}

//! The float steps: layers kept in float32 between DEQUANTIZE and QUANTIZE, and float model
//! inputs and outputs.

use tinyq_ir::{DType, Graph, Node, Op, Tensor, TensorId};

/// Rewrites the float nodes of `q` (`origin[i]` is the `g` node that node `i` of `q` comes
/// from): float32 weights and bias from `g`, a DEQUANTIZE per int8 tensor they read (shared
/// between readers), a QUANTIZE of the output unless every reader is a float node too.
pub(super) fn keep_in_float(q: &mut Graph, g: &Graph, is_float: &[bool], origin: &[Option<usize>], float_io: bool) {
    let old = std::mem::take(&mut q.nodes);
    let mut float_twin: std::collections::HashMap<TensorId, TensorId> = Default::default();
    let mut nodes = Vec::with_capacity(old.len() + 2);
    for (pos, mut n) in old.into_iter().enumerate() {
        if !origin[pos].is_some_and(|k| is_float[k]) {
            nodes.push(n);
            continue;
        }
        for slot in 0..n.inputs.len() {
            let t = n.inputs[slot];
            if g.tensor(t).is_constant() {
                let shared = g.consumers(t).iter().any(|&c| !is_float[c]);
                if shared {
                    let mut copy = g.tensor(t).clone();
                    copy.name = format!("{}_float", copy.name);
                    n.inputs[slot] = q.add_tensor(copy);
                } else {
                    q.tensors[t] = g.tensor(t).clone();
                }
                continue;
            }
            if let Some(&f) = float_twin.get(&t) {
                n.inputs[slot] = f;
                continue;
            }
            let name = q.tensors[t].name.clone();
            let f = q.add_tensor(Tensor::activation(format!("{name}_float"), q.tensors[t].shape.clone(), DType::F32));
            nodes.push(Node {
                name: format!("{name}/dequantize"),
                op: Op::Dequantize,
                inputs: vec![t],
                outputs: vec![f],
            });
            float_twin.insert(t, f);
            n.inputs[slot] = f;
        }
        let o = n.outputs[0];
        let is_output = g.outputs.contains(&o);
        let all_float = g.consumers(o).iter().all(|&c| is_float[c]);
        if all_float && (!is_output || float_io) {
            q.tensors[o].dtype = DType::F32;
            q.tensors[o].qparams = None;
            float_twin.insert(o, o);
            nodes.push(n);
        } else {
            let name = q.tensors[o].name.clone();
            let f = q.add_tensor(Tensor::activation(format!("{name}_float"), q.tensors[o].shape.clone(), DType::F32));
            n.outputs[0] = f;
            float_twin.insert(o, f);
            nodes.push(n);
            nodes.push(Node { name: format!("{name}/quantize"), op: Op::Quantize, inputs: vec![f], outputs: vec![o] });
        }
    }
    q.nodes = nodes;
}

/// Float inputs and outputs around the int8 graph: QUANTIZE after each int8 input, DEQUANTIZE
/// before each int8 output (an output a float node computes is float already). The float
/// tensors keep the model's names.
pub(super) fn add_float_edges(q: &mut Graph) {
    let mut front = Vec::new();
    for k in 0..q.inputs.len() {
        let i = q.inputs[k];
        let name = q.tensors[i].name.clone();
        q.tensors[i].name = format!("{name}_int8");
        let f = q.add_tensor(Tensor::activation(name.clone(), q.tensors[i].shape.clone(), DType::F32));
        front.push(Node { name: format!("{name}/quantize"), op: Op::Quantize, inputs: vec![f], outputs: vec![i] });
        q.inputs[k] = f;
    }
    q.nodes.splice(0..0, front);
    for k in 0..q.outputs.len() {
        let o = q.outputs[k];
        if q.tensors[o].dtype == DType::F32 {
            continue;
        }
        let name = q.tensors[o].name.clone();
        q.tensors[o].name = format!("{name}_int8");
        let f = q.add_tensor(Tensor::activation(name.clone(), q.tensors[o].shape.clone(), DType::F32));
        q.nodes.push(Node {
            name: format!("{name}/dequantize"),
            op: Op::Dequantize,
            inputs: vec![o],
            outputs: vec![f],
        });
        q.outputs[k] = f;
    }
}

//! TFLM's int8 CONCATENATION copies bytes, so its Prepare refuses inputs whose scale or zero
//! point differ from the output's (`concatenation.cc`); MAXIMUM and MINIMUM compare bytes with
//! no check (`maximum_minimum.cc`). The PTQ pass gives such an op's inputs
//! ([`tinyq_ir::Op::shares_qparams`]) the union of their ranges, but an input whose parameters
//! are set elsewhere — a LOGISTIC, TANH or SOFTMAX output (fixed parameters), a pool or reshape
//! that keeps its own input's parameters, a tensor read by two such ops — keeps its own. Here
//! such an input gets an int8 → int8 QUANTIZE (TFLM's `Requantize`) onto the output's
//! parameters, as the TFLite converter does.

use tinyq_ir::{DType, Graph, Node, Op, Tensor};

/// Inserts, before each int8 CONCATENATION, MAXIMUM and MINIMUM, a requantizing QUANTIZE for every activation input
/// whose parameters differ from the output's. Tensor ids are kept; new tensors are appended.
pub(crate) fn requantize_concat_inputs(q: &mut Graph) {
    let old = std::mem::take(&mut q.nodes);
    let mut nodes = Vec::with_capacity(old.len());
    for mut n in old {
        if n.op.shares_qparams() {
            let out = q.tensor(n.outputs[0]);
            if out.dtype == DType::I8 {
                let want = out.qparams.clone();
                for k in 0..n.inputs.len() {
                    let t = q.tensor(n.inputs[k]);
                    if t.is_constant() || t.dtype != DType::I8 || t.qparams == want {
                        continue;
                    }
                    let name = format!("{}/requantized_for_{}", t.name, n.name);
                    let mut r = Tensor::activation(name.clone(), t.shape.clone(), DType::I8);
                    r.qparams = want.clone();
                    let r = q.add_tensor(r);
                    nodes.push(Node { name, op: Op::Quantize, inputs: vec![n.inputs[k]], outputs: vec![r] });
                    n.inputs[k] = r;
                }
            }
        }
        nodes.push(n);
    }
    q.nodes = nodes;
}

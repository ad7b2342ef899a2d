//! Rewrite rules and padding geometry.

use tinyq_ir::op::{Binary, FullyConnected, Transpose};
use tinyq_ir::rules::{run_to_fixpoint, CLEANUP};
use tinyq_ir::{DType, FusedActivation, Graph, Node, Op, Padding, Tensor, TensorData, TensorId};

fn act(g: &mut Graph, name: &str, shape: &[usize]) -> TensorId {
    g.add_tensor(Tensor::activation(name, shape.to_vec(), DType::F32))
}

fn konst(g: &mut Graph, name: &str, shape: &[usize], v: Vec<f32>) -> TensorId {
    g.add_tensor(Tensor::constant(name, shape.to_vec(), TensorData::F32(v)))
}

fn node(g: &mut Graph, name: &str, op: Op, inputs: Vec<TensorId>, out: TensorId) {
    g.nodes.push(Node { name: name.into(), op, inputs, outputs: vec![out] });
}

#[test]
fn inverse_transposes_cancel_and_unit_axis_moves_become_reshapes() {
    let mut g = Graph::default();
    let x = act(&mut g, "x", &[1, 4, 5, 3]);
    let t1 = act(&mut g, "t1", &[1, 3, 4, 5]);
    let t2 = act(&mut g, "t2", &[1, 4, 5, 3]);
    node(&mut g, "a", Op::Transpose(Transpose { perm: vec![0, 3, 1, 2] }), vec![x], t1);
    node(&mut g, "b", Op::Transpose(Transpose { perm: vec![0, 2, 3, 1] }), vec![t1], t2);
    let y = act(&mut g, "y", &[1, 4, 5, 3]);
    node(&mut g, "relu", Op::Relu, vec![t2], y);
    g.inputs = vec![x];
    g.outputs = vec![y];
    run_to_fixpoint(&mut g, CLEANUP);
    assert_eq!(g.nodes.len(), 1);
    assert_eq!(g.nodes[0].op, Op::Relu);
    assert_eq!(g.tensor(g.nodes[0].inputs[0]).name, "x");

    let mut g = Graph::default();
    let x = act(&mut g, "x", &[1, 1, 28, 28]);
    let t = act(&mut g, "t", &[1, 28, 28, 1]);
    node(&mut g, "t", Op::Transpose(Transpose { perm: vec![0, 2, 3, 1] }), vec![x], t);
    g.inputs = vec![x];
    g.outputs = vec![t];
    run_to_fixpoint(&mut g, CLEANUP);
    assert_eq!(g.nodes[0].op, Op::Reshape);
}

#[test]
fn per_channel_mul_and_add_fold_into_the_dense_layer_then_relu_fuses() {
    let mut g = Graph::default();
    let x = act(&mut g, "x", &[1, 2]);
    let w = konst(&mut g, "w", &[3, 2], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let b = konst(&mut g, "b", &[3], vec![0.5, 0.5, 0.5]);
    let s = konst(&mut g, "s", &[3], vec![2.0, -1.0, 0.0]);
    let t = konst(&mut g, "t", &[1, 3], vec![1.0, 2.0, 3.0]);
    let (f, m, a, y) =
        (act(&mut g, "f", &[1, 3]), act(&mut g, "m", &[1, 3]), act(&mut g, "a", &[1, 3]), act(&mut g, "y", &[1, 3]));
    node(&mut g, "fc", Op::FullyConnected(FullyConnected::default()), vec![x, w, b], f);
    node(&mut g, "mul", Op::Mul(Binary::default()), vec![f, s], m);
    node(&mut g, "add", Op::Add(Binary::default()), vec![t, m], a);
    node(&mut g, "relu", Op::Relu, vec![a], y);
    g.inputs = vec![x];
    g.outputs = vec![y];
    let fired = run_to_fixpoint(&mut g, CLEANUP);
    assert!(fired.contains(&("fold_batch_norm", 2)) && fired.contains(&("fuse_activation", 1)), "{fired:?}");
    assert_eq!(g.nodes.len(), 1);
    let fc = &g.nodes[0];
    assert_eq!(fc.op.activation(), Some(FusedActivation::Relu));
    assert_eq!(g.tensor(fc.inputs[1]).f32_data().unwrap(), [2.0, 4.0, -3.0, -4.0, 0.0, 0.0]);
    assert_eq!(g.tensor(fc.inputs[2]).f32_data().unwrap(), [2.0, 1.5, 3.0]);
    assert_eq!(g.tensor(fc.outputs[0]).name, "y");
    g.validate().unwrap();
}

#[test]
fn fusion_leaves_shared_outputs_alone() {
    let mut g = Graph::default();
    let x = act(&mut g, "x", &[1, 3]);
    let (a, r) = (act(&mut g, "a", &[1, 3]), act(&mut g, "r", &[1, 3]));
    node(&mut g, "add", Op::Add(Binary::default()), vec![x, x], a);
    node(&mut g, "relu", Op::Relu, vec![a], r);
    g.inputs = vec![x];
    g.outputs = vec![r, a];
    run_to_fixpoint(&mut g, CLEANUP);
    assert_eq!(g.nodes.len(), 2);
}

#[test]
fn same_padding_matches_tflite_and_explicit_padding_canonicalizes() {
    // 28 → 14 with stride 2 and a 3×3 window: TFLite pads 0 before, 1 after.
    let a = Padding::Same.resolve(0, 28, 3, 2, 1).unwrap();
    assert_eq!((a.out, a.pad_before), (14, 0));
    let torch_style = Padding::Explicit { top: 1, bottom: 1, left: 1, right: 1 };
    assert_eq!(torch_style.canonical([28, 28], [3, 3], [1, 1], [1, 1]), Padding::Same);
    assert_eq!(torch_style.canonical([28, 28], [3, 3], [2, 2], [1, 1]), torch_style);
    assert_eq!(
        Padding::Explicit { top: 0, bottom: 0, left: 0, right: 0 }.canonical([5, 5], [3, 3], [1, 1], [1, 1]),
        Padding::Valid
    );
    assert!(Padding::Valid.resolve(0, 2, 3, 1, 1).is_err());
}

#[test]
fn validate_reports_the_node_and_the_mismatch() {
    let mut g = Graph::default();
    let x = act(&mut g, "x", &[1, 4]);
    let y = act(&mut g, "y", &[1, 5]);
    node(&mut g, "bad_relu", Op::Relu, vec![x], y);
    g.inputs = vec![x];
    g.outputs = vec![y];
    let msg = g.validate().unwrap_err().to_string();
    assert!(msg.contains("bad_relu") && msg.contains("[1, 5]"), "{msg}");
}

/// PyTorch's Conv1d + ReLU: conv → reshape → relu. The ReLU fuses into the conv (so its output
/// range starts at 0) and the reshape then produces the old ReLU output.
#[test]
fn relu_fuses_through_reshapes() {
    let mut g = Graph::default();
    let x = act(&mut g, "x", &[1, 2]);
    let w = konst(&mut g, "w", &[6, 2], vec![1.0; 12]);
    let (f, r1, r2, y) = (
        act(&mut g, "f", &[1, 6]),
        act(&mut g, "r1", &[1, 2, 3]),
        act(&mut g, "r2", &[1, 3, 2]),
        act(&mut g, "y", &[1, 3, 2]),
    );
    node(&mut g, "fc", Op::FullyConnected(FullyConnected::default()), vec![x, w], f);
    node(&mut g, "reshape1", Op::Reshape, vec![f], r1);
    node(&mut g, "reshape2", Op::Reshape, vec![r1], r2);
    node(&mut g, "relu", Op::Relu, vec![r2], y);
    g.inputs = vec![x];
    g.outputs = vec![y];
    let fired = run_to_fixpoint(&mut g, CLEANUP);
    assert!(fired.contains(&("fuse_activation", 1)), "{fired:?}");
    g.validate().unwrap();
    let ops: Vec<&Op> = g.nodes.iter().map(|n| &n.op).collect();
    assert_eq!(ops.len(), 2, "{ops:?}");
    assert_eq!(g.nodes[0].op.activation(), Some(FusedActivation::Relu));
    assert_eq!(g.nodes[1].op, Op::Reshape);
    assert_eq!(g.nodes[1].inputs, g.nodes[0].outputs);
    assert_eq!(g.tensor(g.nodes[1].outputs[0]).name, "y");

    // a reshape read elsewhere too keeps the ReLU where it is
    let mut g = Graph::default();
    let x = act(&mut g, "x", &[1, 2]);
    let w = konst(&mut g, "w", &[6, 2], vec![1.0; 12]);
    let (f, r1, y) = (act(&mut g, "f", &[1, 6]), act(&mut g, "r1", &[1, 2, 3]), act(&mut g, "y", &[1, 2, 3]));
    node(&mut g, "fc", Op::FullyConnected(FullyConnected::default()), vec![x, w], f);
    node(&mut g, "reshape1", Op::Reshape, vec![f], r1);
    node(&mut g, "relu", Op::Relu, vec![r1], y);
    g.inputs = vec![x];
    g.outputs = vec![y, r1];
    run_to_fixpoint(&mut g, CLEANUP);
    assert_eq!(g.nodes.len(), 3);
    assert_eq!(g.nodes[0].op.activation(), Some(FusedActivation::None));
}

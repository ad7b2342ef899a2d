//! Tests of the PTQ steps on small graphs.

use super::*;
use tinyq_ir::op::FullyConnected;
use tinyq_ir::FusedActivation;
use tinyq_ir::Tensor;

/// x [1, 4] → dense `fc1` → h [1, 3] → dense `fc2` → y [1, 2], with ReLU after fc1.
fn two_dense() -> (Graph, Vec<Option<(f32, f32)>>) {
    let mut g = Graph::default();
    let x = g.add_tensor(Tensor::activation("x", vec![1, 4], DType::F32));
    let w1 = g.add_tensor(Tensor::constant(
        "w1",
        vec![3, 4],
        TensorData::F32((0..12).map(|i| i as f32 / 10.0 - 0.5).collect()),
    ));
    let b1 = g.add_tensor(Tensor::constant("b1", vec![3], TensorData::F32(vec![0.1, -0.2, 0.3])));
    let h = g.add_tensor(Tensor::activation("h", vec![1, 3], DType::F32));
    let w2 = g.add_tensor(Tensor::constant("w2", vec![2, 3], TensorData::F32(vec![0.5, -1.0, 0.25, 2.0, 0.0, -0.75])));
    let y = g.add_tensor(Tensor::activation("y", vec![1, 2], DType::F32));
    let dense = |activation| Op::FullyConnected(FullyConnected { activation, keep_num_dims: false });
    g.nodes.push(Node {
        name: "fc1".into(),
        op: dense(FusedActivation::Relu),
        inputs: vec![x, w1, b1],
        outputs: vec![h],
    });
    g.nodes.push(Node { name: "fc2".into(), op: dense(FusedActivation::None), inputs: vec![h, w2], outputs: vec![y] });
    g.inputs = vec![x];
    g.outputs = vec![y];
    let ranges = vec![Some((-1.0, 1.0)), None, None, Some((0.0, 2.0)), None, Some((-3.0, 3.0))];
    (g, ranges)
}

/// x [1, 4, 4, 2] → conv → c, then `add` (c + x) → s → avgpool → p → reshape → r [1, 2] →
/// dense `fc` → y [1, 3], and a second `add_k` of s with a constant.
fn residual() -> (Graph, Vec<Option<(f32, f32)>>) {
    use tinyq_ir::op::{Binary, Conv2D, Pool2D};
    use tinyq_ir::Padding;
    let mut g = Graph::default();
    let x = g.add_tensor(Tensor::activation("x", vec![1, 4, 4, 2], DType::F32));
    let w = g.add_tensor(Tensor::constant("w", vec![2, 1, 1, 2], TensorData::F32(vec![0.5, -0.25, 0.75, 1.0])));
    let b = g.add_tensor(Tensor::constant("b", vec![2], TensorData::F32(vec![0.1, -0.1])));
    let c = g.add_tensor(Tensor::activation("c", vec![1, 4, 4, 2], DType::F32));
    let sum = g.add_tensor(Tensor::activation("s", vec![1, 4, 4, 2], DType::F32));
    let p = g.add_tensor(Tensor::activation("p", vec![1, 1, 1, 2], DType::F32));
    let r = g.add_tensor(Tensor::activation("r", vec![1, 2], DType::F32));
    let fw = g.add_tensor(Tensor::constant("fw", vec![3, 2], TensorData::F32(vec![1.0, -1.0, 0.5, 0.25, -0.5, 2.0])));
    let y = g.add_tensor(Tensor::activation("y", vec![1, 3], DType::F32));
    let k = g.add_tensor(Tensor::constant("k", vec![2], TensorData::F32(vec![0.5, -2.0])));
    let z = g.add_tensor(Tensor::activation("z", vec![1, 4, 4, 2], DType::F32));
    let conv = Conv2D { stride: [1, 1], dilation: [1, 1], padding: Padding::Valid, activation: FusedActivation::None };
    let pool = Pool2D { filter: [4, 4], stride: [4, 4], padding: Padding::Valid, activation: FusedActivation::None };
    let fc = Op::FullyConnected(FullyConnected { activation: FusedActivation::None, keep_num_dims: false });
    for (name, op, inputs, out) in [
        ("conv", Op::Conv2D(conv), vec![x, w, b], c),
        ("add", Op::Add(Binary::default()), vec![c, x], sum),
        ("pool", Op::AvgPool2D(pool), vec![sum], p),
        ("reshape", Op::Reshape, vec![p], r),
        ("fc", fc, vec![r, fw], y),
        ("add_k", Op::Add(Binary::default()), vec![sum, k], z),
    ] {
        g.nodes.push(Node { name: name.into(), op, inputs, outputs: vec![out] });
    }
    g.inputs = vec![x];
    g.outputs = vec![y, z];
    let mut ranges = vec![None; g.tensors.len()];
    for (t, r) in [
        (x, (-1.0, 1.0)),
        (c, (-2.0, 2.0)),
        (sum, (-3.0, 3.0)),
        (p, (-3.0, 3.0)),
        (r, (-3.0, 3.0)),
        (y, (-4.0, 4.0)),
        (z, (-5.0, 5.0)),
    ] {
        ranges[t] = Some(r);
    }
    (g, ranges)
}

#[test]
fn int16_runs_through_add_pool_and_reshape() {
    let (g, ranges) = residual();
    let all: Vec<usize> = (0..g.nodes.len()).collect();
    let q = quantize_graph_mixed(&g, &ranges, &PtqConfig::default(), &[], &all).unwrap();
    let names: Vec<&str> = q.nodes.iter().map(|n| n.name.as_str()).collect();
    // x is read twice in int16 through one QUANTIZE; the outputs go back to int8.
    assert_eq!(names, ["x/to_int16", "conv", "add", "pool", "reshape", "fc", "y/to_int8", "add_k", "z/to_int8"]);
    let scale = |t: TensorId| {
        (
            q.tensor(t).dtype,
            q.tensor(t).qparams.as_ref().unwrap().scale[0],
            q.tensor(t).qparams.as_ref().unwrap().zero_point[0],
        )
    };
    let node = |name: &str| q.nodes.iter().find(|n| n.name == name).unwrap();
    let (add, pool, reshape, add_k) = (node("add"), node("pool"), node("reshape"), node("add_k"));
    // Both ADD inputs are int16: the conv's output and the input's int16 twin.
    assert_eq!(add.inputs[1], node("conv").inputs[0]);
    assert_eq!(scale(add.inputs[0]), (DType::I16, 2.0 / 32767.0, 0));
    assert_eq!(scale(add.outputs[0]), (DType::I16, 3.0 / 32767.0, 0));
    // The pool and the reshape keep their input's int16 scale.
    assert_eq!(scale(pool.outputs[0]), scale(pool.inputs[0]));
    assert_eq!(scale(reshape.outputs[0]), scale(pool.inputs[0]));
    // The constant of add_k is int16 in place, symmetric over its values [-2, 0.5].
    let kt = q.tensor(add_k.inputs[1]);
    assert_eq!((kt.name.as_str(), kt.dtype), ("k", DType::I16));
    let ks = kt.qparams.as_ref().unwrap().scale[0];
    assert_eq!(ks, 2.0 / 32767.0);
    assert_eq!(kt.data, Some(TensorData::I16(vec![(0.5 / ks).round() as i16, -32767])));
    // Only the fc needs no bias; the conv's is int64.
    assert_eq!(q.tensor(node("conv").inputs[2]).dtype, DType::I64);
    // An ADD output range far narrower than its inputs' needs a rescale TFLM cannot do.
    let mut narrow = ranges.clone();
    narrow[g.nodes[1].outputs[0]] = Some((-1e-5, 1e-5));
    let e = quantize_graph_mixed(&g, &narrow, &PtqConfig::default(), &[], &all).unwrap_err().to_string();
    assert!(e.contains("add") && e.contains("16384"), "{e}");
    // A constant input of an int16 CONCATENATION would need the output's scale: refused.
    let mut cat = g.clone();
    cat.nodes[5].op = Op::Concat(tinyq_ir::op::Concat { axis: 3, activation: FusedActivation::None });
    cat.tensors[cat.nodes[5].outputs[0]].shape = vec![1, 4, 4, 4];
    let k = cat.add_tensor(Tensor::constant("k4", vec![1, 4, 4, 2], TensorData::F32(vec![0.5; 32])));
    cat.nodes[5].inputs[1] = k;
    let e = quantize_graph_mixed(&cat, &ranges, &PtqConfig::default(), &[], &[5]).unwrap_err().to_string();
    assert!(e.contains("add_k") && e.contains("constant input of CONCATENATION"), "{e}");
    // SUB has no int16 kernel here: refused by name.
    let mut sub = g.clone();
    sub.nodes[1].op = Op::Sub(tinyq_ir::op::Binary::default());
    let e = quantize_graph_mixed(&sub, &ranges, &PtqConfig::default(), &[], &[1]).unwrap_err().to_string();
    assert!(e.contains("add") && e.contains("int16"), "{e}");
}

#[test]
fn non_finite_weights_or_ranges_are_refused_by_tensor() {
    let (mut g, ranges) = two_dense();
    let mut inf = ranges.clone();
    inf[3] = Some((0.0, f32::INFINITY));
    let e = quantize_graph(&g, &inf, &PtqConfig::default()).unwrap_err().to_string();
    assert!(e.contains("`h`") && e.contains("not finite"), "{e}");
    // A range so wide that its scale overflows to infinity.
    let mut huge = ranges.clone();
    huge[3] = Some((-f32::MAX, f32::MAX));
    let e = quantize_graph(&g, &huge, &PtqConfig::default()).unwrap_err().to_string();
    assert!(e.contains("`h`") && e.contains("scale inf"), "{e}");
    g.tensors[4].data = Some(TensorData::F32(vec![0.5, f32::INFINITY, 0.25, 2.0, 0.0, -0.75]));
    let e = quantize_graph(&g, &ranges, &PtqConfig::default()).unwrap_err().to_string();
    assert!(e.contains("`w2`") && e.contains("inf"), "{e}");
    // Kept in float, the weights are still checked.
    let e = quantize_graph_with_float(&g, &ranges, &PtqConfig::default(), &[1]).unwrap_err().to_string();
    assert!(e.contains("`w2`") && e.contains("finite"), "{e}");
}

#[test]
fn dense_weights_are_per_unit_unless_asked_otherwise() {
    let (g, ranges) = two_dense();
    let axis_and_scales = |cfg: &PtqConfig| {
        let q = quantize_graph(&g, &ranges, cfg).unwrap();
        let w = q.tensor(q.nodes[0].inputs[1]).qparams.clone().unwrap();
        let b = q.tensor(q.nodes[0].inputs[2]).qparams.clone().unwrap();
        (w.axis, w.scale.len(), b.axis, b.scale.len())
    };
    // fc1 has 3 units: one scale each, bias scales per unit along axis 0.
    assert_eq!(axis_and_scales(&PtqConfig::default()), (Some(0), 3, Some(0), 3));
    let dense = PtqConfig { per_tensor_dense: true, ..PtqConfig::default() };
    assert_eq!(axis_and_scales(&dense), (None, 1, None, 1));
    let all = PtqConfig { per_tensor: true, ..PtqConfig::default() };
    assert_eq!(axis_and_scales(&all), (None, 1, None, 1));
    // Units' scales are max|w| / 127 of each row of fc1's [3, 4] weights.
    let q = quantize_graph(&g, &ranges, &PtqConfig::default()).unwrap();
    let s = &q.tensor(q.nodes[0].inputs[1]).qparams.as_ref().unwrap().scale;
    for (got, want) in s.iter().zip([0.5f32, 0.2, 0.6]) {
        assert!((got - want / 127.0).abs() < 1e-8, "{s:?}");
    }
    // A 16x8 dense layer stays per tensor (tinyq's int16 dense kernel has one scale).
    let q = quantize_graph_mixed(&g, &ranges, &PtqConfig::default(), &[], &[0]).unwrap();
    let fc1 = q.nodes.iter().find(|n| n.name == "fc1").unwrap();
    assert_eq!(q.tensor(fc1.inputs[1]).qparams.as_ref().unwrap().scale.len(), 1);
}

fn ops(q: &Graph) -> Vec<(&str, &'static str)> {
    q.nodes.iter().map(|n| (n.name.as_str(), n.op.name())).collect()
}

#[test]
fn a_float_layer_sits_between_dequantize_and_quantize_with_float_weights() {
    let (g, ranges) = two_dense();
    let plain = quantize_graph(&g, &ranges, &PtqConfig::default()).unwrap();
    let q = quantize_graph_with_float(&g, &ranges, &PtqConfig::default(), &[1]).unwrap();
    let dq = plain.nodes[0].op.name();
    assert_eq!(
        ops(&q).iter().map(|o| o.0).collect::<Vec<_>>(),
        ["fc1", "h/dequantize", "fc2", "y/quantize"],
        "{:?}",
        ops(&q)
    );
    assert_eq!(q.nodes[1].op, Op::Dequantize);
    assert_eq!(q.nodes[3].op, Op::Quantize);
    assert_eq!(dq, q.nodes[0].op.name());
    // fc1 is quantized exactly as without float layers; fc2 keeps the float weights.
    assert_eq!(q.nodes[0], plain.nodes[0]);
    assert_eq!(q.tensors[1], plain.tensors[1]);
    assert_eq!(q.tensors[4], g.tensors[4]);
    let fc2 = &q.nodes[2];
    assert!(fc2.inputs.iter().chain(&fc2.outputs).all(|&t| q.tensor(t).dtype == DType::F32));
    // The int8 output keeps its name and its parameters from the range.
    assert_eq!(q.tensor(q.outputs[0]).name, "y");
    assert_eq!(q.tensor(q.outputs[0]).qparams, plain.tensor(plain.outputs[0]).qparams);
}

#[test]
fn a_tensor_between_float_layers_stays_float() {
    let (g, ranges) = two_dense();
    let q = quantize_graph_with_float(&g, &ranges, &PtqConfig::default(), &[0, 1]).unwrap();
    let kinds: Vec<&str> = q.nodes.iter().map(|n| n.op.name()).collect();
    assert_eq!(kinds.iter().filter(|&&k| k == Op::Dequantize.name()).count(), 1, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|&&k| k == Op::Quantize.name()).count(), 1, "{kinds:?}");
    assert_eq!(q.tensors[3].dtype, DType::F32);
    assert!(q.tensors[3].qparams.is_none());
    assert_eq!(q.tensors[0].dtype, DType::I8, "the int8 graph input is dequantized for fc1");
}

#[test]
fn with_float_io_a_float_layer_writes_the_float_output_itself() {
    let (g, ranges) = two_dense();
    let cfg = PtqConfig { float_io: true, ..PtqConfig::default() };
    let q = quantize_graph_with_float(&g, &ranges, &cfg, &[1]).unwrap();
    let last = q.nodes.last().unwrap();
    assert_eq!(last.name, "fc2");
    assert_eq!(q.tensor(q.outputs[0]).name, "y");
    assert_eq!(q.tensor(q.outputs[0]).dtype, DType::F32);
    assert_eq!(q.nodes[0].op, Op::Quantize, "the float input is still quantized at the edge");
}

#[test]
fn int16_layers_share_int16_tensors_and_meet_int8_through_quantize() {
    let (g, ranges) = two_dense();
    let plain = quantize_graph(&g, &ranges, &PtqConfig::default()).unwrap();
    let q = quantize_graph_mixed(&g, &ranges, &PtqConfig::default(), &[], &[0, 1]).unwrap();
    let names: Vec<&str> = q.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["x/to_int16", "fc1", "fc2", "y/to_int8"], "{names:?}");
    // h is read only by a 16x8 layer: it is int16 itself, symmetric over [0, 2].
    let h = &q.tensors[3];
    assert_eq!(
        (h.dtype, h.qparams.as_ref().unwrap().scale[0], h.qparams.as_ref().unwrap().zero_point[0]),
        (DType::I16, 2.0 / 32767.0, 0)
    );
    // Graph input and output keep their int8 types and parameters.
    for t in [q.inputs[0], q.outputs[0]] {
        assert_eq!(q.tensor(t).dtype, DType::I8);
        assert_eq!(q.tensor(t).qparams, plain.tensor(t).qparams);
    }
    // fc1's bias is int64 at input_scale16 · weight_scale: 0.1 / (1/32767 · w_s).
    let x16 = q.nodes[1].inputs[0];
    assert_eq!(q.tensor(x16).qparams.as_ref().unwrap().scale[0], 1.0 / 32767.0);
    let w_s = q.tensor(q.nodes[1].inputs[1]).qparams.as_ref().unwrap().scale[0];
    let Some(TensorData::I64(b)) = &q.tensor(q.nodes[1].inputs[2]).data else { panic!("int64 bias") };
    assert_eq!(b[0], (0.1f32 as f64 / ((1.0f32 / 32767.0) as f64 * w_s as f64)).round() as i64);
    // One 16x8 layer next to an int8 one: its output goes back to int8 for fc2.
    let q = quantize_graph_mixed(&g, &ranges, &PtqConfig::default(), &[], &[0]).unwrap();
    let names: Vec<&str> = q.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["x/to_int16", "fc1", "h/to_int8", "fc2"], "{names:?}");
    assert_eq!(q.tensors[3].dtype, DType::I8);
    // With a float layer after it.
    let q = quantize_graph_mixed(&g, &ranges, &PtqConfig::default(), &[1], &[0]).unwrap();
    let kinds: Vec<&str> = q.nodes.iter().map(|n| n.op.name()).collect();
    assert_eq!(kinds.len(), 6, "{kinds:?}");
    assert!(quantize_graph_mixed(&g, &ranges, &PtqConfig::default(), &[0], &[0]).is_err());
    // An output range far narrower than input × weights needs a rescale TFLM cannot do.
    let mut narrow = ranges.clone();
    narrow[3] = Some((0.0, 1e-6));
    let e = quantize_graph_mixed(&g, &narrow, &PtqConfig::default(), &[], &[0]).unwrap_err().to_string();
    assert!(e.contains("fc1") && e.contains("128"), "{e}");
    assert!(quantize_graph_mixed(&g, &narrow, &PtqConfig::default(), &[], &[]).is_ok());
}

#[test]
fn only_layers_with_float_kernels_can_stay_float() {
    let (mut g, mut ranges) = two_dense();
    let y = g.outputs[0];
    let r = g.add_tensor(Tensor::activation("r", vec![1, 2], DType::F32));
    g.nodes.push(Node { name: "relu".into(), op: Op::Relu, inputs: vec![y], outputs: vec![r] });
    g.outputs = vec![r];
    ranges.push(Some((0.0, 3.0)));
    let e = quantize_graph_with_float(&g, &ranges, &PtqConfig::default(), &[2]).unwrap_err().to_string();
    assert!(e.contains("relu") && e.contains("cannot be kept in float"), "{e}");
    let e = quantize_graph_mixed(&g, &ranges, &PtqConfig::default(), &[], &[2]).unwrap_err().to_string();
    assert!(e.contains("relu") && e.contains("int16"), "{e}");
    assert!(quantize_graph_with_float(&g, &ranges, &PtqConfig::default(), &[7]).is_err());
}

#[test]
fn int4_weights_are_symmetric_in_seven_steps_per_channel_and_per_tensor_when_dense() {
    let (g, ranges) = residual();
    let cfg = PtqConfig { int4_nodes: vec![0, 4], ..PtqConfig::default() };
    let q = quantize_graph(&g, &ranges, &cfg).unwrap();
    let node = |name: &str| q.nodes.iter().find(|n| n.name == name).unwrap();
    let (w, fw) = (q.tensor(node("conv").inputs[1]), q.tensor(node("fc").inputs[1]));
    assert_eq!((w.dtype, fw.dtype), (DType::I4, DType::I4));
    // conv: one scale per output channel, max|w| / 7; w = [[0.5, -0.25], [0.75, 1.0]].
    let p = w.qparams.as_ref().unwrap();
    assert_eq!((p.axis, p.zero_point.clone()), (Some(0), vec![0, 0]));
    assert_eq!(p.scale, vec![0.5 / 7.0, 1.0 / 7.0]);
    // (-0.25 / (0.5 / 7) is -3.4999998 in f32)
    assert_eq!(w.data, Some(TensorData::I8(vec![7, -3, 5, 7])));
    // fc: one scale (TFLM's int4 FULLY_CONNECTED is per tensor), max|fw| = 2.
    let p = fw.qparams.as_ref().unwrap();
    assert_eq!((p.axis, p.scale.clone()), (None, vec![2.0 / 7.0]));
    assert_eq!(fw.data, Some(TensorData::I8(vec![3, -3, 2, 1, -2, 7])));
    // The bias follows the int4 scales.
    let b = q.tensor(node("conv").inputs[2]).qparams.as_ref().unwrap();
    let s_in = q.tensor(node("conv").inputs[0]).qparams.as_ref().unwrap().scale[0];
    assert_eq!(
        b.scale,
        vec![(s_in as f64 * (0.5f32 / 7.0) as f64) as f32, (s_in as f64 * (1.0f32 / 7.0) as f64) as f32]
    );
}

#[test]
fn int4_is_refused_where_tflm_has_no_int4_kernel() {
    let (g, ranges) = residual();
    let on = |int4: Vec<usize>, int16: &[usize]| {
        quantize_graph_mixed(&g, &ranges, &PtqConfig { int4_nodes: int4, ..PtqConfig::default() }, &[], int16)
            .unwrap_err()
            .to_string()
    };
    let e = on(vec![1], &[]);
    assert!(e.contains("`add`") && e.contains("no weights that can be int4"), "{e}");
    let e = on(vec![0], &[0]);
    assert!(e.contains("`conv`") && e.contains("int16 activations"), "{e}");
    let e = quantize_graph_with_float(&g, &ranges, &PtqConfig { int4_nodes: vec![4], ..PtqConfig::default() }, &[4])
        .unwrap_err()
        .to_string();
    assert!(e.contains("`fc`") && e.contains("kept in float"), "{e}");
}

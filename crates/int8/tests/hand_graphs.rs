//! Small int8 graphs built by hand, with expected values worked out on paper. Scales are chosen
//! so that every rescale is a power of two, which keeps the arithmetic checkable by hand.

use tinyq_int8::{Int8Error, Int8Plan, TensorValue};
use tinyq_ir::op::{Binary, Concat, Conv2D, FullyConnected, Pool2D};
use tinyq_ir::{DType, FusedActivation, Graph, Node, Op, Padding, QParams, Tensor, TensorData, TensorId};

#[derive(Default)]
struct Builder {
    g: Graph,
}

fn per_tensor(scale: f32, zero_point: i32) -> Option<QParams> {
    Some(QParams { scale: vec![scale], zero_point: vec![zero_point], axis: None })
}

impl Builder {
    fn act(&mut self, name: &str, shape: &[usize], q: Option<(f32, i32)>) -> TensorId {
        let dtype = if q.is_some() { DType::I8 } else { DType::F32 };
        let mut t = Tensor::activation(name, shape.to_vec(), dtype);
        t.qparams = q.and_then(|(s, z)| per_tensor(s, z));
        self.g.add_tensor(t)
    }

    fn input(&mut self, name: &str, shape: &[usize], q: Option<(f32, i32)>) -> TensorId {
        let t = self.act(name, shape, q);
        self.g.inputs.push(t);
        t
    }

    fn weights(&mut self, name: &str, shape: &[usize], data: Vec<i8>, scales: Vec<f32>, axis: usize) -> TensorId {
        let mut t = Tensor::constant(name, shape.to_vec(), TensorData::I8(data));
        let axis = (scales.len() > 1).then_some(axis);
        t.qparams = Some(QParams { zero_point: vec![0; scales.len()], scale: scales, axis });
        self.g.add_tensor(t)
    }

    fn const_s8(&mut self, name: &str, shape: &[usize], data: Vec<i8>, q: (f32, i32)) -> TensorId {
        let mut t = Tensor::constant(name, shape.to_vec(), TensorData::I8(data));
        t.qparams = per_tensor(q.0, q.1);
        self.g.add_tensor(t)
    }

    fn bias(&mut self, name: &str, data: Vec<i32>, scales: Vec<f32>) -> TensorId {
        let mut t = Tensor::constant(name, vec![data.len()], TensorData::I32(data));
        let axis = (scales.len() > 1).then_some(0);
        t.qparams = Some(QParams { zero_point: vec![0; scales.len()], scale: scales, axis });
        self.g.add_tensor(t)
    }

    fn node(&mut self, name: &str, op: Op, inputs: Vec<TensorId>, output: TensorId) {
        self.g.nodes.push(Node { name: name.into(), op, inputs, outputs: vec![output] });
    }

    fn finish(mut self, outputs: Vec<TensorId>) -> Graph {
        self.g.outputs = outputs;
        self.g
    }
}

fn i8s(v: &TensorValue) -> &[i8] {
    v.as_i8().expect("an int8 tensor")
}

/// QUANTIZE → FULLY_CONNECTED (per-tensor, bias) → DEQUANTIZE. Real values: w = [[0.25, 0.5],
/// [0.75, −1]], b = [1, −1], x = [2, 3] → y = [3, −2.5]; the FC rescale is exactly 1.
fn dense_graph(activation: FusedActivation) -> (Graph, TensorId) {
    let mut b = Builder::default();
    let x = b.input("x", &[1, 2], None);
    let xq = b.act("x_q", &[1, 2], Some((0.5, 0)));
    let w = b.weights("w", &[2, 2], vec![1, 2, 3, -4], vec![0.25], 0);
    let bias = b.bias("b", vec![8, -8], vec![0.125]);
    let yq = b.act("y_q", &[1, 2], Some((0.125, 1)));
    let y = b.act("y", &[1, 2], None);
    b.node("quantize", Op::Quantize, vec![x], xq);
    b.node("dense", Op::FullyConnected(FullyConnected { activation, keep_num_dims: false }), vec![xq, w, bias], yq);
    b.node("dequantize", Op::Dequantize, vec![yq], y);
    (b.finish(vec![y, yq]), yq)
}

#[test]
fn dense_layer_between_quantize_and_dequantize() {
    let (g, _) = dense_graph(FusedActivation::None);
    let plan = Int8Plan::new(&g).unwrap();
    let out = plan.run(&[TensorValue::F32(vec![2.0, 3.0])]).unwrap();
    assert_eq!(out[1], TensorValue::I8(vec![25, -19]));
    assert_eq!(out[0], TensorValue::F32(vec![3.0, -2.5]));

    // A fused RELU clamps at the output zero point (1), i.e. real 0.
    let (g, _) = dense_graph(FusedActivation::Relu);
    let out = Int8Plan::new(&g).unwrap().run(&[TensorValue::F32(vec![2.0, 3.0])]).unwrap();
    assert_eq!(out[1], TensorValue::I8(vec![25, 1]));
    assert_eq!(out[0], TensorValue::F32(vec![3.0, 0.0]));
}

#[test]
fn observer_sees_every_tensor_in_order() {
    let (g, yq) = dense_graph(FusedActivation::None);
    let plan = Int8Plan::new(&g).unwrap();
    let mut seen = Vec::new();
    let acts = plan.run_observed(&[TensorValue::F32(vec![2.0, 3.0])], &mut |t, v| seen.push((t, v.clone()))).unwrap();
    let names: Vec<&str> = seen.iter().map(|(t, _)| g.tensors[*t].name.as_str()).collect();
    assert_eq!(names, ["x", "x_q", "y_q", "y"]);
    assert_eq!(seen[1].1, TensorValue::I8(vec![4, 6]));
    assert_eq!(acts.get(yq), Some(&TensorValue::I8(vec![25, -19])));
    assert_eq!(plan.value(&acts, yq), &seen[2].1);
}

/// 1×1 per-channel conv: x real = [0, 1, 2, 3] (scale 1, zp −1); channel 0 computes x, channel 1
/// computes x + 2 with weight scale 0.25 and a bias, so its rescale is 0.5.
#[test]
fn per_channel_conv_with_bias() {
    let mut b = Builder::default();
    let x = b.input("x", &[1, 2, 2, 1], Some((1.0, -1)));
    let w = b.weights("w", &[2, 1, 1, 1], vec![2, 4], vec![0.5, 0.25], 0);
    let bias = b.bias("b", vec![0, 8], vec![0.5, 0.25]);
    let y = b.act("y", &[1, 2, 2, 2], Some((0.5, 0)));
    let conv = Conv2D { stride: [1, 1], dilation: [1, 1], padding: Padding::Valid, activation: FusedActivation::None };
    b.node("conv", Op::Conv2D(conv), vec![x, w, bias], y);
    let g = b.finish(vec![y]);
    let out = Int8Plan::new(&g).unwrap().run(&[TensorValue::I8(vec![-1, 0, 1, 2])]).unwrap();
    assert_eq!(i8s(&out[0]), [0, 4, 2, 6, 4, 8, 6, 10]);
}

/// ADD of a [2, 2] tensor and a constant [2] row (all scale 0.5, zp 0): real [[1, 2], [3, 4]] +
/// [1, −1] = [[2, 1], [4, 3]].
#[test]
fn broadcast_add_with_a_constant() {
    let mut b = Builder::default();
    let x = b.input("x", &[2, 2], Some((0.5, 0)));
    let c = b.const_s8("c", &[2], vec![2, -2], (0.5, 0));
    let y = b.act("y", &[2, 2], Some((0.5, 0)));
    b.node("add", Op::Add(Binary { activation: FusedActivation::None }), vec![x, c], y);
    let g = b.finish(vec![y]);
    let out = Int8Plan::new(&g).unwrap().run(&[TensorValue::I8(vec![2, 4, 6, 8])]).unwrap();
    assert_eq!(i8s(&out[0]), [4, 2, 8, 6]);
}

/// Max and average pools over one 2×2 window, concatenated on channels and flattened.
/// Average of [1, 2, 3, 5] = 2.75, rounded half away from zero to 3.
#[test]
fn pools_concat_and_reshape() {
    let q = Some((0.1, 0));
    let mut b = Builder::default();
    let x = b.input("x", &[1, 2, 2, 1], q);
    let max = b.act("max", &[1, 1, 1, 1], q);
    let avg = b.act("avg", &[1, 1, 1, 1], q);
    let cat = b.act("cat", &[1, 1, 1, 2], q);
    let flat = b.act("flat", &[2], q);
    let pool = Pool2D { filter: [2, 2], stride: [2, 2], padding: Padding::Valid, activation: FusedActivation::None };
    b.node("max", Op::MaxPool2D(pool.clone()), vec![x], max);
    b.node("avg", Op::AvgPool2D(pool), vec![x], avg);
    b.node("cat", Op::Concat(Concat { axis: 3, activation: FusedActivation::None }), vec![max, avg], cat);
    b.node("flat", Op::Reshape, vec![cat], flat);
    let g = b.finish(vec![flat]);
    let out = Int8Plan::new(&g).unwrap().run(&[TensorValue::I8(vec![1, 2, 3, 5])]).unwrap();
    assert_eq!(i8s(&out[0]), [5, 3]);
}

/// A standalone RELU that also rescales: input scale 1, output (0.5, −128), so q = 2·max(x, 0) − 128.
#[test]
fn standalone_relu_rescales_then_clamps() {
    let mut b = Builder::default();
    let x = b.input("x", &[4], Some((1.0, 0)));
    let y = b.act("y", &[4], Some((0.5, -128)));
    b.node("relu", Op::Relu, vec![x], y);
    let g = b.finish(vec![y]);
    let out = Int8Plan::new(&g).unwrap().run(&[TensorValue::I8(vec![-3, 0, 3, 100])]).unwrap();
    assert_eq!(i8s(&out[0]), [-128, -128, -122, 72]);
}

fn one_by_one_conv(scales: Vec<f32>, padding: Padding) -> Graph {
    let channels = scales.len();
    let mut b = Builder::default();
    let x = b.input("x", &[1, 1, 1, 1], Some((1.0, 0)));
    let w = b.weights("w", &[channels, 1, 1, 1], vec![1; channels], scales, 0);
    let y = b.act("y", &[1, 1, 1, channels], Some((1.0, 0)));
    let conv = Conv2D { stride: [1, 1], dilation: [1, 1], padding, activation: FusedActivation::None };
    b.node("conv_3", Op::Conv2D(conv), vec![x, w], y);
    b.finish(vec![y])
}

#[test]
fn prepare_errors_name_the_node_and_the_problem() {
    let err = Int8Plan::new(&one_by_one_conv(vec![1.0, 1.0, 1.0, 1.0, 1.0, 0.0], Padding::Valid)).err().unwrap();
    let msg = err.to_string();
    // The graph's own checks refuse the zero scale, naming the tensor and the channel.
    assert!(msg.contains("tensor `w`"), "{msg}");
    assert!(msg.contains("channel 5"), "{msg}");

    let explicit = Padding::Explicit { top: 0, bottom: 0, left: 0, right: 0 };
    let msg = Int8Plan::new(&one_by_one_conv(vec![1.0], explicit)).err().unwrap().to_string();
    assert!(msg.contains("conv_3") && msg.contains("explicit padding"), "{msg}");

    // RELU6 in TFLM ignores the output parameters, so different ones are refused.
    let mut b = Builder::default();
    let x = b.input("x", &[4], Some((1.0, 0)));
    let y = b.act("y", &[4], Some((0.5, 0)));
    b.node("act", Op::Relu6, vec![x], y);
    let msg = Int8Plan::new(&b.finish(vec![y])).err().unwrap().to_string();
    assert!(msg.starts_with("node `act` (Relu6): "), "{msg}");

    // A float tensor where int8 is needed.
    let mut b = Builder::default();
    let x = b.input("x", &[4], None);
    let y = b.act("y", &[4], Some((1.0, 0)));
    b.node("sig", Op::Sigmoid, vec![x], y);
    let msg = Int8Plan::new(&b.finish(vec![y])).err().unwrap().to_string();
    assert!(msg.contains("node `sig` (Sigmoid)") && msg.contains("expected int8"), "{msg}");

    // SOFTMAX's output must be (1/256, −128).
    let mut b = Builder::default();
    let x = b.input("x", &[1, 4], Some((1.0, 0)));
    let y = b.act("y", &[1, 4], Some((1.0 / 128.0, 0)));
    b.node("softmax", Op::Softmax(tinyq_ir::op::Softmax { beta: 1.0 }), vec![x], y);
    let msg = Int8Plan::new(&b.finish(vec![y])).err().unwrap().to_string();
    assert!(msg.starts_with("node `softmax` (Softmax): softmax output"), "{msg}");
}

#[test]
fn run_checks_inputs_up_front() {
    let plan = Int8Plan::new(&one_by_one_conv(vec![1.0], Padding::Valid)).unwrap();
    assert!(matches!(plan.run(&[]), Err(Int8Error::InputCount { expected: 1, got: 0 })));
    assert!(matches!(plan.run(&[TensorValue::F32(vec![1.0])]), Err(Int8Error::InputDType { .. })));
    assert!(matches!(plan.run(&[TensorValue::I8(vec![1, 2])]), Err(Int8Error::InputSize { expected: 1, got: 2, .. })));
    assert_eq!(plan.run(&[TensorValue::I8(vec![7])]).unwrap(), [TensorValue::I8(vec![7])]);
}

/// One op on one input; every tensor int8 with the given (scale, zero point).
fn single_op(op: Op, x_shape: &[usize], xq: (f32, i32), y_shape: &[usize], yq: (f32, i32), x: Vec<i8>) -> Vec<i8> {
    let mut b = Builder::default();
    let xt = b.input("x", x_shape, Some(xq));
    let yt = b.act("y", y_shape, Some(yq));
    b.node("op", op, vec![xt], yt);
    let g = b.finish(vec![yt]);
    let plan = Int8Plan::new(&g).unwrap_or_else(|e| panic!("{e}"));
    let out = plan.run(&[TensorValue::I8(x)]).unwrap();
    i8s(&out[0]).to_vec()
}

fn binary_op(op: Op, a: Vec<i8>, b_values: Vec<i8>, q: (f32, i32), out_q: (f32, i32)) -> Vec<i8> {
    let mut b = Builder::default();
    let n = a.len();
    let at = b.input("a", &[n], Some(q));
    let bt = b.input("b", &[n], Some(q));
    let yt = b.act("y", &[n], Some(out_q));
    b.node("op", op, vec![at, bt], yt);
    let g = b.finish(vec![yt]);
    let out = Int8Plan::new(&g).unwrap().run(&[TensorValue::I8(a), TensorValue::I8(b_values)]).unwrap();
    i8s(&out[0]).to_vec()
}

#[test]
fn sub_and_mul() {
    let none = Binary { activation: FusedActivation::None };
    assert_eq!(binary_op(Op::Sub(none.clone()), vec![4, 2], vec![2, 4], (0.5, 0), (0.5, 0)), [2, -2]);
    // (0.5 · 0.5) / 0.25 = 1: the output is the product of the raw values.
    assert_eq!(binary_op(Op::Mul(none), vec![2, 4], vec![6, -2], (0.5, 0), (0.25, 0)), [12, -8]);
}

/// Depth multiplier 2: output channel `c·2 + m` is input channel `c` times filter column `c·2 + m`.
#[test]
fn depthwise_conv_with_depth_multiplier() {
    let mut b = Builder::default();
    let x = b.input("x", &[1, 1, 1, 2], Some((1.0, 0)));
    let w = b.weights("w", &[1, 1, 1, 4], vec![1, 2, -1, 3], vec![1.0; 4], 3);
    let y = b.act("y", &[1, 1, 1, 4], Some((1.0, 0)));
    let conv = Conv2D { stride: [1, 1], dilation: [1, 1], padding: Padding::Same, activation: FusedActivation::None };
    let op = Op::DepthwiseConv2D(tinyq_ir::op::DepthwiseConv2D { conv, depth_multiplier: 2 });
    b.node("dw", op, vec![x, w], y);
    let out = Int8Plan::new(&b.finish(vec![y])).unwrap().run(&[TensorValue::I8(vec![3, -2])]).unwrap();
    assert_eq!(i8s(&out[0]), [3, 6, 2, -6]);
}

#[test]
fn data_movement_and_mean() {
    let q = (0.1, -5);
    let transpose = Op::Transpose(tinyq_ir::op::Transpose { perm: vec![1, 0] });
    assert_eq!(single_op(transpose, &[2, 3], q, &[3, 2], q, vec![1, 2, 3, 4, 5, 6]), [1, 4, 2, 5, 3, 6]);
    // PAD fills with the zero point (real 0).
    let pad = Op::Pad(tinyq_ir::op::Pad { pads: vec![[0, 0], [1, 1]], value: 0.0 });
    assert_eq!(single_op(pad, &[1, 2], q, &[1, 4], q, vec![7, 8]), [-5, 7, 8, -5]);
    // MEAN of raw [1, 2, 3, 5] − zp: (11 + 20) / 4 = 7.75 → 8, + zp = 3.
    let mean = Op::Mean(tinyq_ir::op::Mean { axes: vec![1], keep_dims: false });
    assert_eq!(single_op(mean, &[1, 4], q, &[1], q, vec![1, 2, 3, 5]), [3]);
}

#[test]
fn activations() {
    let unit = (1.0, 0);
    // Requantize int8 → int8 from scale 1 to 0.5 doubles the raw values and saturates.
    assert_eq!(single_op(Op::Quantize, &[2], unit, &[2], (0.5, 0), vec![3, -70]), [6, -128]);
    let leaky = Op::LeakyRelu(tinyq_ir::op::LeakyRelu { alpha: 0.5 });
    assert_eq!(single_op(leaky, &[2], unit, &[2], unit, vec![-4, 4]), [-2, 4]);
    let clip = Op::Clip(tinyq_ir::op::Clip { min: -1.0, max: 1.0 });
    assert_eq!(single_op(clip, &[4], (0.5, 0), &[4], (0.5, 0), vec![-4, -1, 1, 4]), [-2, -1, 1, 2]);
    assert_eq!(single_op(Op::Relu6, &[3], (0.5, 0), &[3], (0.5, 0), vec![-4, 5, 100]), [0, 5, 12]);
    // LOGISTIC(0) = 0.5 → 0 at (1/256, −128); TANH(0) = 0; both saturate far from 0.
    let logistic_q = (1.0 / 256.0, -128);
    assert_eq!(single_op(Op::Sigmoid, &[3], unit, &[3], logistic_q, vec![-128, 0, 127]), [-128, 0, 127]);
    assert_eq!(single_op(Op::Tanh, &[3], unit, &[3], (1.0 / 128.0, 0), vec![-128, 0, 127]), [-128, 0, 127]);
    // Two equal logits: 0.5 each.
    let softmax = Op::Softmax(tinyq_ir::op::Softmax { beta: 1.0 });
    assert_eq!(single_op(softmax, &[1, 2], unit, &[1, 2], logistic_q, vec![9, 9]), [0, 0]);
    // HARD_SWISH(−10) = 0, (0) = 0, (10) = 10, at scale 0.1.
    let q = (0.1, 0);
    assert_eq!(single_op(Op::HardSwish, &[3], q, &[3], q, vec![-100, 0, 100]), [0, 0, 100]);
}

#[test]
fn concat_with_fused_activation_is_refused() {
    let mut b = Builder::default();
    let x = b.input("x", &[1, 2], Some((1.0, 0)));
    let y = b.act("y", &[2, 2], Some((1.0, 0)));
    b.node("cat", Op::Concat(Concat { axis: 0, activation: FusedActivation::Relu }), vec![x, x], y);
    let msg = Int8Plan::new(&b.finish(vec![y])).err().unwrap().to_string();
    assert!(msg.starts_with("node `cat` (Concat): "), "{msg}");
}

/// int8 x → QUANTIZE → int16 → FULLY_CONNECTED 16x8 → int16 → QUANTIZE → int8 y, by hand:
/// x (0.5, zp −1), int16 scales 2^-8 (in) and 2^-6 (out), weights scale 0.25, bias int64.
fn sixteen_by_eight(bias: TensorData, out_zero_point: i32) -> Graph {
    let mut b = Builder::default();
    let x = b.input("x", &[1, 2], Some((0.5, -1)));
    let wide = |b: &mut Builder, name: &str, scale: f32, zp: i32| {
        let mut t = Tensor::activation(name, vec![1, 2], DType::I16);
        t.qparams = per_tensor(scale, zp);
        b.g.add_tensor(t)
    };
    let x16 = wide(&mut b, "x16", 1.0 / 256.0, 0);
    let y16 = wide(&mut b, "y16", 1.0 / 64.0, out_zero_point);
    let w = b.weights("w", &[2, 2], vec![4, 0, -4, 8], vec![0.25], 0);
    let mut bt = Tensor::constant("b", vec![2], bias);
    bt.qparams = per_tensor(0.25 / 256.0, 0);
    let bias = b.g.add_tensor(bt);
    let y = b.act("y", &[1, 2], Some((0.5, 0)));
    b.node("to16", Op::Quantize, vec![x], x16);
    let fc = Op::FullyConnected(FullyConnected { activation: FusedActivation::None, keep_num_dims: false });
    b.node("fc", fc, vec![x16, w, bias], y16);
    b.node("to8", Op::Quantize, vec![y16], y);
    b.finish(vec![y16, y])
}

#[test]
fn a_16x8_layer_between_int8_tensors_by_hand() {
    // x = [3, −1] → real [2, 0] → x16 = [512, 0]. fc: y = [1·2 + 0, −1·2 + 0] + bias [0.5, 0] =
    // [2.5, −2] → y16 = [160, −128] at 2^-6 → y (0.5) = [5, −4].
    let plan = Int8Plan::new(&sixteen_by_eight(TensorData::I64(vec![512, 0]), 0)).unwrap();
    let out = plan.run(&[TensorValue::I8(vec![3, -1])]).unwrap();
    assert_eq!(out[0], TensorValue::I16(vec![160, -128]));
    assert_eq!(out[1], TensorValue::I8(vec![5, -4]));
}

#[test]
fn bad_16x8_layers_are_refused_naming_the_node() {
    let err = |g: Graph| Int8Plan::new(&g).err().map(|e| e.to_string()).unwrap_or_default();
    let e = err(sixteen_by_eight(TensorData::I32(vec![512, 0]), 0));
    assert!(e.contains("fc") && e.contains("int64"), "{e}");
    let e = err(sixteen_by_eight(TensorData::I64(vec![512, 0]), 3));
    assert!(e.contains("zero point 3"), "{e}");
}

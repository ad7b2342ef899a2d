//! IR → ONNX export: every op round-trips (export, re-import, same float outputs), the interface
//! is kept, layouts chain without transpose pairs, and bad graphs are refused cleanly.

mod support;

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use prost::Message;
use support::values;
use tinyq_ir::op::{
    Binary, Clip, Concat, Conv2D, DepthwiseConv2D, FullyConnected, LeakyRelu, Mean, Pad, Pool2D, Softmax, Transpose,
};
use tinyq_ir::{DType, FusedActivation, Graph, Node, Op, Padding, QParams, Tensor, TensorData, TensorId};
use tinyq_onnx::proto::ModelProto;
use tinyq_onnx::{import_model, to_onnx_bytes, write_onnx, ExportOptions, ImportOptions, OnnxError};

/// Builds IR graphs the way the importers leave them (NHWC, TFLite weight layouts).
struct Ir {
    g: Graph,
    seed: u64,
}

impl Ir {
    fn new() -> Ir {
        Ir { g: Graph::default(), seed: 1 }
    }

    fn input(&mut self, name: &str, shape: &[usize]) -> TensorId {
        let id = self.g.add_tensor(Tensor::activation(name, shape.to_vec(), DType::F32));
        self.g.inputs.push(id);
        id
    }

    fn constant(&mut self, name: &str, shape: &[usize]) -> TensorId {
        self.seed += 1;
        let n = shape.iter().product();
        self.g.add_tensor(Tensor::constant(name, shape.to_vec(), TensorData::F32(values(n, self.seed))))
    }

    fn op(&mut self, name: &str, op: Op, inputs: &[TensorId]) -> TensorId {
        let shapes: Vec<&[usize]> = inputs.iter().map(|&i| &self.g.tensors[i].shape[..]).collect();
        let shape = op.infer_shapes(&shapes).unwrap_or_else(|e| panic!("{name}: {e}")).remove(0);
        self.push(name, op, inputs, shape)
    }

    fn push(&mut self, name: &str, op: Op, inputs: &[TensorId], shape: Vec<usize>) -> TensorId {
        let out = self.g.add_tensor(Tensor::activation(name, shape, DType::F32));
        self.g.nodes.push(Node { name: name.into(), op, inputs: inputs.to_vec(), outputs: vec![out] });
        out
    }

    fn reshape(&mut self, name: &str, x: TensorId, shape: &[usize]) -> TensorId {
        self.push(name, Op::Reshape, &[x], shape.to_vec())
    }

    fn conv(&mut self, name: &str, x: TensorId, cout: usize, k: [usize; 2], c: Conv2D) -> TensorId {
        let cin = self.g.tensors[x].shape[3];
        let w = self.constant(&format!("{name}/w"), &[cout, k[0], k[1], cin]);
        let b = self.constant(&format!("{name}/b"), &[cout]);
        self.op(name, Op::Conv2D(c), &[x, w, b])
    }

    fn fc(&mut self, name: &str, x: TensorId, units: usize, f: FullyConnected) -> TensorId {
        let inner = *self.g.tensors[x].shape.last().unwrap();
        let w = self.constant(&format!("{name}/w"), &[units, inner]);
        let b = self.constant(&format!("{name}/b"), &[units]);
        self.op(name, Op::FullyConnected(f), &[x, w, b])
    }

    fn output(mut self, outs: &[TensorId]) -> Graph {
        self.g.outputs = outs.to_vec();
        self.g.validate().expect("test graph is consistent");
        self.g
    }
}

fn conv2d(stride: usize, padding: Padding, activation: FusedActivation) -> Conv2D {
    Conv2D { stride: [stride, stride], dilation: [1, 1], padding, activation }
}

fn same() -> Conv2D {
    conv2d(1, Padding::Same, FusedActivation::None)
}

fn tempdir() -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let d = std::env::temp_dir().join(format!(
        "tinyq-onnx-export-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures").join(rel)
}

fn run(g: &Graph, seed: u64) -> Vec<Vec<f32>> {
    let inputs: Vec<Vec<f32>> =
        g.inputs.iter().enumerate().map(|(k, &i)| values(g.tensors[i].numel(), seed * 31 + k as u64)).collect();
    let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
    tinyq_float::Plan::new(g).unwrap().run(&refs).unwrap()
}

/// max|a - b| / max|a| over every output.
fn rel_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    let mut worst = 0f32;
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.len(), y.len());
        let diff = x.iter().zip(y).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
        let scale = x.iter().map(|p| p.abs()).fold(0f32, f32::max).max(1e-30);
        worst = worst.max(diff / scale);
    }
    worst
}

fn exported(g: &Graph, opset: i64) -> ModelProto {
    ModelProto::decode(&to_onnx_bytes(g, &ExportOptions { opset }).unwrap()[..]).unwrap()
}

fn op_count(m: &ModelProto, op_type: &str) -> usize {
    m.graph.as_ref().unwrap().node.iter().filter(|n| n.op_type == op_type).count()
}

/// Exports at `opset`, re-imports, and checks interface and outputs (1e-5 relative on random
/// inputs). Returns the re-imported graph and the ONNX model.
fn round_trip_at(g: &Graph, opset: i64) -> (Graph, ModelProto) {
    let dir = tempdir();
    let path = dir.join("exported.onnx");
    write_onnx(g, &path, &ExportOptions { opset }).unwrap_or_else(|e| panic!("export failed: {e}"));
    let back = import_model(&path, &ImportOptions::default()).unwrap_or_else(|e| panic!("re-import failed: {e}"));
    let io = |g: &Graph, ids: &[TensorId]| -> Vec<(String, Vec<usize>)> {
        ids.iter().map(|&t| (g.tensors[t].name.clone(), g.tensors[t].shape.clone())).collect()
    };
    assert_eq!(io(g, &g.inputs), io(&back, &back.inputs), "inputs");
    assert_eq!(io(g, &g.outputs), io(&back, &back.outputs), "outputs");
    for seed in 1..=3 {
        let d = rel_diff(&run(g, seed), &run(&back, seed));
        assert!(d <= 1e-5, "outputs differ by {d:e} (relative) after the round trip");
    }
    let model = ModelProto::decode(&std::fs::read(&path).unwrap()[..]).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    (back, model)
}

fn round_trip(g: &Graph) -> (Graph, ModelProto) {
    round_trip_at(g, 17)
}

fn op_names(g: &Graph) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = g.nodes.iter().map(|n| n.op.name()).collect();
    v.sort_unstable();
    v
}

#[test]
fn fixture_models_round_trip_to_the_same_ops() {
    for rel in ["mnist_dscnn/model.onnx", "hello_world/model.onnx"] {
        let g = import_model(&fixture(rel), &ImportOptions::default()).unwrap();
        let (back, model) = round_trip(&g);
        assert_eq!(op_names(&g), op_names(&back), "{rel}: the re-imported graph has other ops");
        assert_eq!(op_count(&model, "Transpose"), 0, "{rel}: an NCHW model needs no transposes");
        let m = model.graph.as_ref().unwrap();
        assert!(m.initializer.iter().all(|t| !t.raw_data.is_empty()), "{rel}: initializers are raw data");
    }
    let (g, _) = round_trip(&import_model(&fixture("mnist_dscnn/model.onnx"), &ImportOptions::default()).unwrap());
    let model = exported(&g, 17);
    assert_eq!(model.producer_name, "tinyq");
    assert_eq!(model.ir_version, 8);
    assert_eq!(model.opset_import[0].version, 17);
    let convs: Vec<_> = model.graph.unwrap().node.into_iter().filter(|n| n.op_type == "Conv").collect();
    let groups: Vec<i64> = convs.iter().map(|n| n.attribute.iter().find(|a| a.name == "group").unwrap().i).collect();
    assert_eq!(groups, [1, 32, 1, 64, 1], "depthwise convs are grouped convs");
}

#[test]
fn conv_chain_in_nhwc_needs_one_transpose_at_each_end() {
    let mut b = Ir::new();
    let x = b.input("image", &[1, 8, 8, 3]);
    let c1 = b.conv("c1", x, 4, [3, 3], conv2d(1, Padding::Same, FusedActivation::Relu));
    let c2 = b.conv("c2", c1, 4, [3, 3], same());
    let r = b.op("relu", Op::Relu, &[c2]);
    let sum = b.op("residual", Op::Add(Binary { activation: FusedActivation::Relu6 }), &[r, c1]);
    let c3 = b.conv("c3", sum, 5, [1, 1], conv2d(2, Padding::Valid, FusedActivation::None));
    let g = b.output(&[c3]);
    let (back, model) = round_trip(&g);
    assert_eq!(op_count(&model, "Transpose"), 2);
    // The Relu fuses into its conv on re-import; nothing else changes.
    assert_eq!(op_names(&back), ["Add", "Conv2D", "Conv2D", "Conv2D"]);
}

#[test]
fn nchw_interface_is_kept_without_transposes() {
    // An ONNX-style graph: NCHW input reshaped/transposed into NHWC, result transposed back.
    let mut b = Ir::new();
    let x = b.input("x", &[1, 3, 6, 5]);
    let t = b.op("to_nhwc", Op::Transpose(Transpose { perm: vec![0, 2, 3, 1] }), &[x]);
    let c = b.conv(
        "conv",
        t,
        4,
        [3, 2],
        conv2d(1, Padding::Explicit { top: 1, bottom: 0, left: 0, right: 1 }, FusedActivation::None),
    );
    let y = b.op("to_nchw", Op::Transpose(Transpose { perm: vec![0, 3, 1, 2] }), &[c]);
    let g = b.output(&[y]);
    let (_, model) = round_trip(&g);
    assert_eq!(op_count(&model, "Transpose"), 0);
    assert_eq!(model.graph.unwrap().output[0].name, "to_nchw");
}

#[test]
fn conv_padding_stride_dilation_groups() {
    let cases = [
        (Padding::Explicit { top: 2, bottom: 0, left: 1, right: 3 }, [2, 1], [1, 2], 1),
        (Padding::Same, [2, 2], [1, 1], 2),
        (Padding::Same, [1, 2], [2, 2], 1),
        (Padding::Valid, [3, 1], [1, 1], 4),
        (Padding::Explicit { top: 0, bottom: 1, left: 0, right: 0 }, [1, 1], [2, 1], 2),
    ];
    for (padding, stride, dilation, groups) in cases {
        let mut b = Ir::new();
        let x = b.input("x", &[1, 9, 10, 4]);
        let w = b.constant("w", &[8, 3, 2, 4 / groups]);
        let bias = b.constant("bias", &[8]);
        let c = Conv2D { stride, dilation, padding, activation: FusedActivation::ReluN1To1 };
        let y = b.op("conv", Op::Conv2D(c), &[x, w, bias]);
        let g = b.output(&[y]);
        round_trip(&g);
    }
}

#[test]
fn depthwise_with_multiplier_and_without_bias() {
    for (m, bias) in [(1, true), (2, false), (3, true)] {
        let mut b = Ir::new();
        let x = b.input("x", &[1, 7, 6, 3]);
        let w = b.constant("dw", &[1, 3, 3, 3 * m]);
        let mut inputs = vec![x, w];
        if bias {
            inputs.push(b.constant("bias", &[3 * m]));
        }
        let conv = conv2d(2, Padding::Same, FusedActivation::Relu6);
        let y = b.op("dw", Op::DepthwiseConv2D(DepthwiseConv2D { conv, depth_multiplier: m }), &inputs);
        let g = b.output(&[y]);
        let (back, _) = round_trip(&g);
        assert_eq!(op_names(&back), ["DepthwiseConv2D"]);
    }
}

#[test]
fn pools_with_every_padding() {
    for max in [true, false] {
        for padding in [Padding::Same, Padding::Valid, Padding::Explicit { top: 1, bottom: 0, left: 0, right: 1 }] {
            let mut b = Ir::new();
            let x = b.input("x", &[1, 7, 8, 3]);
            let c = b.conv("conv", x, 4, [1, 1], same());
            let p = Pool2D { filter: [3, 2], stride: [2, 2], padding, activation: FusedActivation::Relu };
            let y = b.op("pool", if max { Op::MaxPool2D(p) } else { Op::AvgPool2D(p) }, &[c]);
            let g = b.output(&[y]);
            round_trip(&g);
        }
    }
}

#[test]
fn mean_over_axes_with_and_without_keep_dims() {
    for (axes, keep) in
        [(vec![1, 2], true), (vec![1, 2], false), (vec![3], false), (vec![1], true), (vec![2, 3], false)]
    {
        let mut b = Ir::new();
        let x = b.input("x", &[1, 5, 4, 3]);
        let c = b.conv("conv", x, 6, [3, 3], same());
        let m = b.op("mean", Op::Mean(Mean { axes: axes.clone(), keep_dims: keep }), &[c]);
        let y = b.op("tanh", Op::Tanh, &[m]);
        let g = b.output(&[y]);
        round_trip(&g);
        round_trip_at(&g, 18);
    }
}

#[test]
fn reduce_sum_round_trips_with_axes_as_an_input() {
    for (axes, keep) in [(vec![1, 2], true), (vec![3], false), (vec![1, 2, 3], false)] {
        let mut b = Ir::new();
        let x = b.input("x", &[1, 5, 4, 3]);
        let c = b.conv("conv", x, 6, [3, 3], same());
        let s = b.op("sum", Op::ReduceSum(Mean { axes: axes.clone(), keep_dims: keep }), &[c]);
        let y = b.op("tanh", Op::Tanh, &[s]);
        let g = b.output(&[y]);
        round_trip(&g);
        round_trip_at(&g, 14);
    }
    let mut b = Ir::new();
    let x = b.input("x", &[1, 5, 4, 3]);
    let s = b.op("sum", Op::ReduceSum(Mean { axes: vec![1, 2], keep_dims: true }), &[x]);
    let g = b.output(&[s]);
    let node = |m: ModelProto| m.graph.unwrap().node.into_iter().find(|n| n.op_type == "ReduceSum").unwrap();
    // ReduceSum takes its axes as an input from opset 13 on, every opset the exporter writes.
    let n14 = node(exported(&g, 14));
    assert!(!n14.attribute.iter().any(|a| a.name == "axes") && n14.input.len() == 2);
}

#[test]
fn reduce_mean_axes_follow_the_opset() {
    let mut b = Ir::new();
    let x = b.input("x", &[1, 5, 4, 3]);
    let m = b.op("mean", Op::Mean(Mean { axes: vec![1, 2], keep_dims: true }), &[x]);
    let g = b.output(&[m]);
    let node = |m: ModelProto| m.graph.unwrap().node.into_iter().find(|n| n.op_type == "ReduceMean").unwrap();
    let (n17, n18) = (node(exported(&g, 17)), node(exported(&g, 18)));
    assert!(n17.attribute.iter().any(|a| a.name == "axes") && n17.input.len() == 1);
    assert!(!n18.attribute.iter().any(|a| a.name == "axes") && n18.input.len() == 2);
    assert_eq!(exported(&g, 18).ir_version, 8);
    assert_eq!(exported(&g, 21).ir_version, 10);
}

#[test]
fn concat_in_every_axis_with_a_constant() {
    for axis in 0..4 {
        let mut b = Ir::new();
        let x = b.input("x", &[1, 4, 5, 3]);
        let c1 = b.conv("c1", x, 3, [3, 3], same());
        let c2 = b.conv("c2", x, 3, [1, 1], same());
        let k = b.constant("k", &[1, 4, 5, 3]);
        let cat = b.op("cat", Op::Concat(Concat { axis, activation: FusedActivation::Relu }), &[c1, k, c2]);
        let y = if axis == 0 { cat } else { b.conv("after", cat, 2, [1, 1], same()) };
        let g = b.output(&[y]);
        round_trip(&g);
    }
}

#[test]
fn pad_in_nchw_and_as_stored() {
    let mut b = Ir::new();
    let x = b.input("x", &[1, 4, 5, 2]);
    let c = b.conv("conv", x, 3, [1, 1], same());
    let p = b.op("pad", Op::Pad(Pad { pads: vec![[0, 0], [1, 2], [0, 3], [1, 0]], value: 0.25 }), &[c]);
    let q = b.op("pad2", Op::Pad(Pad { pads: vec![[0, 0], [2, 0], [1, 1], [0, 0]], value: 0.0 }), &[x]);
    let g = b.output(&[p, q]);
    round_trip(&g);
}

#[test]
fn reshape_transpose_and_flatten_into_dense() {
    let mut b = Ir::new();
    let x = b.input("x", &[1, 6, 4, 3]);
    let c = b.conv("conv", x, 5, [3, 3], conv2d(1, Padding::Same, FusedActivation::Relu));
    let flat = b.reshape("flat", c, &[1, 6 * 4 * 5]);
    let y = b.fc("dense", flat, 7, FullyConnected { activation: FusedActivation::None, keep_num_dims: false });
    let t = b.op("swap_hw", Op::Transpose(Transpose { perm: vec![0, 2, 1, 3] }), &[c]);
    let z = b.conv("conv2", t, 2, [2, 2], conv2d(1, Padding::Valid, FusedActivation::None));
    let r = b.reshape("rows", z, &[1, 15, 2]);
    let s = b.op("softmax", Op::Softmax(Softmax { beta: 1.0 }), &[r]);
    let g = b.output(&[y, s]);
    let (back, model) = round_trip(&g);
    // NHWC input → NCHW, swap_hw's NCHW → conv2's NCHW, conv2 → the NHWC rows of the softmax.
    assert_eq!(op_count(&model, "Transpose"), 3);
    let nodes = &model.graph.as_ref().unwrap().node;
    let gemm = nodes.iter().find(|n| n.op_type == "Gemm").unwrap();
    let feed = nodes.iter().find(|n| n.output[0] == gemm.input[0]).unwrap();
    assert_eq!(
        (feed.op_type.as_str(), feed.input[0].as_str()),
        ("Reshape", "conv"),
        "the dense layer reads the NCHW map, its columns permuted"
    );
    assert_eq!(op_names(&back).iter().filter(|&&o| o == "Transpose").count(), 1, "{:?}", op_names(&back));
}

#[test]
fn dense_layer_shapes() {
    let kinds = [
        (vec![1, 6], false),
        (vec![4, 6], false),
        (vec![2, 3, 6], true),
        (vec![2, 3, 6], false),
        (vec![6], true),
        (vec![6], false),
    ];
    for (shape, keep) in kinds {
        for act in [FusedActivation::None, FusedActivation::ReluN1To1] {
            let mut b = Ir::new();
            let x = b.input("x", &shape);
            let y = b.fc("dense", x, 5, FullyConnected { activation: act, keep_num_dims: keep });
            let g = b.output(&[y]);
            round_trip(&g);
        }
    }
    // Without a bias.
    let mut b = Ir::new();
    let x = b.input("x", &[2, 3, 6]);
    let w = b.constant("w", &[4, 6]);
    let y = b.op(
        "dense",
        Op::FullyConnected(FullyConnected { activation: FusedActivation::Relu, keep_num_dims: true }),
        &[x, w],
    );
    let g = b.output(&[y]);
    round_trip(&g);
}

#[test]
fn activations() {
    let ops = [
        Op::Relu,
        Op::Relu6,
        Op::Clip(Clip { min: -0.5, max: 0.7 }),
        Op::Clip(Clip { min: f32::NEG_INFINITY, max: 0.3 }),
        Op::Clip(Clip { min: -0.2, max: f32::INFINITY }),
        Op::LeakyRelu(LeakyRelu { alpha: 0.2 }),
        Op::Sigmoid,
        Op::Tanh,
        Op::HardSwish,
        Op::Abs,
        Op::LogSoftmax,
        Op::Softmax(Softmax { beta: 1.0 }),
        Op::Softmax(Softmax { beta: 0.5 }),
    ];
    for op in ops {
        let mut b = Ir::new();
        let x = b.input("x", &[1, 4, 3, 5]);
        let c = b.conv("conv", x, 6, [3, 3], same());
        let a = b.op("act", op.clone(), &[c]);
        let y = b.conv("after", a, 2, [1, 1], same());
        let g = b.output(&[y, a]);
        round_trip(&g);
        round_trip_at(&g, 14);
    }
}

#[test]
fn binary_ops_with_broadcast_constants_and_tensors() {
    for (k, op) in [
        Op::Add(Binary::default()),
        Op::Sub(Binary { activation: FusedActivation::Relu }),
        Op::Mul(Binary { activation: FusedActivation::Relu6 }),
        Op::Maximum,
        Op::Minimum,
    ]
    .into_iter()
    .enumerate()
    {
        for const_shape in [vec![3], vec![1], vec![1, 1, 1, 3], vec![4, 5, 3], vec![1, 4, 1, 1]] {
            let mut b = Ir::new();
            let x = b.input("x", &[1, 4, 5, 3]);
            let c = b.conv("conv", x, 3, [3, 3], same());
            let k_t = b.constant("k", &const_shape);
            let inputs = if k % 2 == 0 { [c, k_t] } else { [k_t, c] };
            let y = b.op("binary", op.clone(), &inputs);
            let z = b.conv("after", y, 2, [1, 1], same());
            let g = b.output(&[z]);
            round_trip(&g);
        }
        // Two computed tensors, one of lower rank (squeeze-and-excite style).
        let mut b = Ir::new();
        let x = b.input("x", &[1, 4, 5, 3]);
        let c = b.conv("conv", x, 3, [3, 3], same());
        let m = b.op("squeeze", Op::Mean(Mean { axes: vec![1, 2], keep_dims: false }), &[c]);
        let e = b.fc("excite", m, 3, FullyConnected::default());
        let s = b.op("gate", Op::Sigmoid, &[e]);
        let y = b.op("scale", op.clone(), &[c, s]);
        let z = b.op("combine", op.clone(), &[y, c]);
        let g = b.output(&[z]);
        round_trip(&g);
    }
}

/// PRelu with slopes shaped as PyTorch (per channel), MediaPipe (`[1, 1, C]`) and one shared.
#[test]
fn prelu_slopes_round_trip() {
    for slope in [vec![3], vec![1, 1, 3], vec![1], vec![5, 3]] {
        let mut b = Ir::new();
        let x = b.input("x", &[1, 4, 5, 3]);
        let c = b.conv("conv", x, 3, [3, 3], same());
        let s = b.constant("slope", &slope);
        let y = b.op("prelu", Op::PRelu, &[c, s]);
        let z = b.conv("after", y, 2, [1, 1], same());
        let g = b.output(&[z]);
        round_trip(&g);
    }
}

/// Strided slices (forwards, backwards down to index 0, a shrunk axis) written as ONNX Slice
/// (and Squeeze) in the layout the input is stored in, and read back.
#[test]
fn strided_slices_round_trip() {
    for (begin, end, strides, shrink) in [
        ([0, 1, 0, 0], [1, 4, 5, 3], [1, 2, 1, 1], 0),
        ([0, 3, 4, 2], [1, -5, -6, -4], [1, -1, -2, -1], 0),
        ([0, 0, 2, 0], [1, 4, 3, 3], [1, 1, 1, 1], 4),
    ] {
        let t = tinyq_ir::op::StridedSliceTflite {
            begin: begin.to_vec(),
            end: end.to_vec(),
            strides: strides.to_vec(),
            begin_mask: 0,
            end_mask: 0,
            shrink_axis_mask: shrink,
        };
        let p = tinyq_ir::op::StridedSlice::from_tflite(&[1, 4, 5, 3], &t).unwrap();
        let mut b = Ir::new();
        let x = b.input("x", &[1, 4, 5, 3]);
        let c = b.conv("conv", x, 3, [3, 3], same());
        let y = b.op("slice", Op::StridedSlice(p), &[c]);
        let g = b.output(&[y]);
        round_trip(&g);
    }
}

/// Bilinear resize in each TFLite coordinate mode, written as ONNX Resize linear and read back.
#[test]
fn bilinear_resize_round_trips() {
    for (align_corners, half_pixel_centers, size) in
        [(false, false, [8, 10]), (false, true, [8, 10]), (true, false, [7, 9])]
    {
        let mut b = Ir::new();
        let x = b.input("x", &[1, 4, 5, 3]);
        let c = b.conv("conv", x, 3, [3, 3], same());
        let p = tinyq_ir::op::ResizeNearest { size, align_corners, half_pixel_centers };
        let y = b.op("up", Op::ResizeBilinear(p), &[c]);
        let g = b.output(&[y]);
        round_trip(&g);
    }
}

/// A reflected pad (MIRROR_PAD REFLECT) written as ONNX Pad mode reflect and read back.
#[test]
fn reflect_pad_round_trips() {
    let mut b = Ir::new();
    let x = b.input("x", &[1, 4, 5, 3]);
    let c = b.conv("conv", x, 3, [3, 3], same());
    let p = tinyq_ir::op::MirrorPad { pads: vec![[0, 0], [1, 2], [3, 0], [0, 0]], reflect: true };
    let y = b.op("reflect", Op::MirrorPad(p), &[c]);
    let z = b.conv("after", y, 2, [1, 1], same());
    let g = b.output(&[z]);
    round_trip(&g);
}

/// Nearest resize in each TFLite coordinate mode, written as ONNX Resize and read back.
#[test]
fn nearest_resize_round_trips() {
    for (align_corners, half_pixel_centers, size) in
        [(false, false, [8, 10]), (false, true, [8, 10]), (true, false, [2, 5])]
    {
        let mut b = Ir::new();
        let x = b.input("x", &[1, 4, 5, 3]);
        let c = b.conv("conv", x, 3, [3, 3], same());
        let p = tinyq_ir::op::ResizeNearest { size, align_corners, half_pixel_centers };
        let y = b.op("up", Op::ResizeNearest(p), &[c]);
        let z = b.conv("after", y, 2, [1, 1], same());
        let g = b.output(&[z]);
        round_trip(&g);
    }
}

#[test]
fn several_inputs_and_outputs_keep_names_and_order() {
    let mut b = Ir::new();
    let x = b.input("serving_default_a:0", &[1, 4, 4, 2]);
    let w = b.input("b", &[1, 4, 4, 2]);
    let s = b.op("sum", Op::Add(Binary::default()), &[x, w]);
    let c = b.conv("feature_map", s, 3, [3, 3], same());
    let flat = b.reshape("flat", c, &[1, 48]);
    let y = b.fc("logits", flat, 4, FullyConnected::default());
    let g = b.output(&[y, c, s]);
    let (_, model) = round_trip(&g);
    let gp = model.graph.unwrap();
    let names = |v: &[tinyq_onnx::proto::ValueInfoProto]| v.iter().map(|i| i.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&gp.input), ["serving_default_a:0", "b"]);
    assert_eq!(names(&gp.output), ["logits", "feature_map", "sum"]);
}

#[test]
fn output_reading_an_input_and_a_reshaped_input() {
    let mut b = Ir::new();
    let x = b.input("x", &[2, 6]);
    let r = b.reshape("r", x, &[3, 4]);
    let g = b.output(&[r]);
    round_trip(&g);
}

#[test]
fn outputs_that_are_inputs_or_constants() {
    let mut b = Ir::new();
    let x = b.input("x", &[1, 3]);
    let y = b.op("relu", Op::Relu, &[x]);
    let k = b.constant("folded", &[2, 2]);
    let g = b.output(&[y, x, k]);
    let (back, model) = round_trip(&g);
    assert!(back.tensors[back.outputs[2]].is_constant());
    let gp = model.graph.unwrap();
    assert!(
        gp.node.iter().any(|n| n.op_type == "Identity" && n.output == ["folded"]),
        "a constant output is computed by a node"
    );
}

#[test]
fn export_is_deterministic() {
    let g = import_model(&fixture("mnist_dscnn/model.onnx"), &ImportOptions::default()).unwrap();
    let opts = ExportOptions::default();
    assert_eq!(to_onnx_bytes(&g, &opts).unwrap(), to_onnx_bytes(&g, &opts).unwrap());
}

fn quantized_graph() -> Graph {
    let mut b = Ir::new();
    let x = b.input("x", &[1, 4]);
    let q = b.g.add_tensor(Tensor {
        qparams: Some(QParams { scale: vec![0.1], zero_point: vec![0], axis: None }),
        ..Tensor::activation("x_int8", vec![1, 4], DType::I8)
    });
    b.g.nodes.push(Node { name: "quantize_input".into(), op: Op::Quantize, inputs: vec![x], outputs: vec![q] });
    b.output(&[q])
}

#[test]
fn quantized_graphs_are_refused_naming_the_node() {
    let err = to_onnx_bytes(&quantized_graph(), &ExportOptions::default()).unwrap_err().to_string();
    assert!(err.contains("quantize_input") && err.contains("Quantize") && err.contains("float"), "{err}");
    let dir = tempdir();
    let path = dir.join("q.onnx");
    assert!(write_onnx(&quantized_graph(), &path, &ExportOptions::default()).is_err());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "nothing is left behind");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn dequantize_node_is_refused() {
    let mut b = Ir::new();
    let x = b.g.add_tensor(Tensor {
        qparams: Some(QParams { scale: vec![0.1], zero_point: vec![0], axis: None }),
        ..Tensor::activation("x", vec![1, 4], DType::I8)
    });
    b.g.inputs.push(x);
    let y = b.push("dequantize_output", Op::Dequantize, &[x], vec![1, 4]);
    let g = b.output(&[y]);
    let err = to_onnx_bytes(&g, &ExportOptions::default()).unwrap_err().to_string();
    assert!(err.contains("dequantize_output"), "{err}");
}

#[test]
fn bad_options_and_paths_fail_without_leftovers() {
    let mut b = Ir::new();
    let x = b.input("x", &[1, 3]);
    let y = b.op("relu", Op::Relu, &[x]);
    let g = b.output(&[y]);
    for opset in [13, 22] {
        let err = to_onnx_bytes(&g, &ExportOptions { opset }).unwrap_err().to_string();
        assert!(err.contains(&format!("opset {opset}")), "{err}");
    }
    let dir = tempdir();
    let missing = dir.join("no_such_folder").join("m.onnx");
    assert!(matches!(write_onnx(&g, &missing, &ExportOptions::default()), Err(OnnxError::Io { .. })));
    // A directory in the way: the rename fails and the temporary file is removed.
    let blocked = dir.join("taken.onnx");
    std::fs::create_dir(&blocked).unwrap();
    std::fs::write(blocked.join("keep"), b"x").unwrap();
    assert!(write_onnx(&g, &blocked, &ExportOptions::default()).is_err());
    let mut left: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    assert_eq!(left, ["taken.onnx"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn inconsistent_graphs_are_refused() {
    let mut b = Ir::new();
    let x = b.input("x", &[1, 3]);
    let y = b.op("relu", Op::Relu, &[x]);
    let mut g = b.output(&[y]);
    g.nodes[0].inputs = vec![17];
    assert!(to_onnx_bytes(&g, &ExportOptions::default()).unwrap_err().to_string().contains("#17"));
    g.nodes[0].inputs = vec![x];
    g.tensors[y].shape = vec![1, 4];
    assert!(to_onnx_bytes(&g, &ExportOptions::default()).is_err());
}

fn padding_strategy() -> impl Strategy<Value = Padding> {
    prop_oneof![
        Just(Padding::Same),
        Just(Padding::Valid),
        (0usize..3, 0usize..3, 0usize..3, 0usize..3).prop_map(|(top, bottom, left, right)| Padding::Explicit {
            top,
            bottom,
            left,
            right
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random conv/depthwise geometry (kernel, stride, dilation, padding, groups) round-trips.
    #[test]
    fn random_conv_geometry_round_trips(
        h in 3usize..9, w in 3usize..9, k in (1usize..4, 1usize..4), stride in (1usize..3, 1usize..3),
        dilation in (1usize..3, 1usize..3), padding in padding_strategy(), groups in 1usize..3,
        cin_per_group in 1usize..3, depthwise in any::<bool>(), mult in 1usize..3,
    ) {
        let cin = groups * cin_per_group;
        for d in 0..2 {
            let (size, kk) = if d == 0 { (h, k.0) } else { (w, k.1) };
            let s = [stride.0, stride.1][d];
            let dl = [dilation.0, dilation.1][d];
            prop_assume!(padding.resolve(d, size, kk, s, dl).is_ok());
        }
        let mut b = Ir::new();
        let x = b.input("x", &[1, h, w, cin]);
        let conv = Conv2D { stride: [stride.0, stride.1], dilation: [dilation.0, dilation.1], padding, activation: FusedActivation::None };
        let y = if depthwise {
            let wt = b.constant("w", &[1, k.0, k.1, cin * mult]);
            b.op("conv", Op::DepthwiseConv2D(DepthwiseConv2D { conv, depth_multiplier: mult }), &[x, wt])
        } else {
            let wt = b.constant("w", &[2 * groups, k.0, k.1, cin_per_group]);
            let bias = b.constant("b", &[2 * groups]);
            b.op("conv", Op::Conv2D(conv), &[x, wt, bias])
        };
        let g = b.output(&[y]);
        round_trip(&g);
    }
}

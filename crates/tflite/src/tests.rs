//! Round trips over graphs built with a small builder, file-layout checks on written bytes, and
//! malformed input (truncated, bit-flipped, hand-broken models) that must error, never panic.

use crate::generated as tfl;
use crate::{codes, read_tflite, write_tflite, TfliteError};
use planus::ReadAsRoot;
use tinyq_ir::op::*;
use tinyq_ir::{DType, FusedActivation, Graph, Node, Op, Padding, QParams, Tensor, TensorData, TensorId};

/// Builds graphs op by op; nodes are named after their output, as the reader names them.
struct B {
    g: Graph,
    seed: u32,
}

impl B {
    fn new() -> B {
        B { g: Graph::default(), seed: 1 }
    }

    fn input(&mut self, name: &str, shape: &[usize], dtype: DType, q: Option<QParams>) -> TensorId {
        let t = self.g.add_tensor(Tensor { qparams: q, ..Tensor::activation(name, shape.to_vec(), dtype) });
        self.g.inputs.push(t);
        t
    }

    fn values(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.seed = self.seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                ((self.seed >> 8) % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    fn f32_const(&mut self, name: &str, shape: &[usize]) -> TensorId {
        let v = self.values(shape.iter().product());
        self.g.add_tensor(Tensor::constant(name, shape.to_vec(), TensorData::F32(v)))
    }

    fn i8_const(&mut self, name: &str, shape: &[usize], axis: usize) -> TensorId {
        let v = self.values(shape.iter().product()).iter().map(|x| (x * 127.0) as i8).collect();
        let scale = (0..shape[axis]).map(|c| 0.01 + c as f32 * 0.001).collect::<Vec<_>>();
        let q = QParams { zero_point: vec![0; scale.len()], scale, axis: Some(axis) };
        let t = Tensor { qparams: Some(q), ..Tensor::constant(name, shape.to_vec(), TensorData::I8(v)) };
        self.g.add_tensor(t)
    }

    fn i32_bias(&mut self, name: &str, n: usize) -> TensorId {
        let q =
            QParams { scale: (0..n).map(|c| 1e-4 + c as f32 * 1e-5).collect(), zero_point: vec![0; n], axis: Some(0) };
        let v = (0..n as i32).map(|i| i * 37 - 100).collect();
        self.g.add_tensor(Tensor { qparams: Some(q), ..Tensor::constant(name, vec![n], TensorData::I32(v)) })
    }

    /// Adds `op(inputs)` with one output whose shape comes from the op (Reshape: `shape`).
    fn op(
        &mut self,
        name: &str,
        op: Op,
        inputs: &[TensorId],
        dtype: DType,
        q: Option<QParams>,
        shape: Option<&[usize]>,
    ) -> TensorId {
        let shapes: Vec<&[usize]> = inputs.iter().map(|&i| &self.g.tensors[i].shape[..]).collect();
        let out_shape = match shape {
            Some(s) => s.to_vec(),
            None => op.infer_shapes(&shapes).unwrap_or_else(|e| panic!("{name}: {e}"))[0].clone(),
        };
        let out = self.g.add_tensor(Tensor { qparams: q, ..Tensor::activation(name, out_shape, dtype) });
        self.g.nodes.push(Node { name: name.into(), op, inputs: inputs.to_vec(), outputs: vec![out] });
        out
    }

    fn f(&mut self, name: &str, op: Op, inputs: &[TensorId]) -> TensorId {
        self.op(name, op, inputs, DType::F32, None, None)
    }

    fn finish(mut self, outputs: &[TensorId]) -> Graph {
        self.g.outputs = outputs.to_vec();
        self.g.validate().expect("test graph is valid");
        self.g
    }
}

fn conv(stride: usize, padding: Padding, activation: FusedActivation) -> Conv2D {
    Conv2D { stride: [stride, stride], dilation: [1, 1], padding, activation }
}

fn pool(k: usize, padding: Padding) -> Pool2D {
    Pool2D { filter: [k, k], stride: [2, 2], padding, activation: FusedActivation::None }
}

fn per_tensor(scale: f32, zp: i32) -> Option<QParams> {
    Some(QParams { scale: vec![scale], zero_point: vec![zp], axis: None })
}

/// A STRIDED_SLICE of `x` from TFLite operands without masks.
fn slice_of(x: &[usize], begin: [i32; 4], end: [i32; 4], strides: [i32; 4]) -> tinyq_ir::op::StridedSlice {
    let t = tinyq_ir::op::StridedSliceTflite {
        begin: begin.to_vec(),
        end: end.to_vec(),
        strides: strides.to_vec(),
        begin_mask: 0,
        end_mask: 0,
        shrink_axis_mask: 0,
    };
    tinyq_ir::op::StridedSlice::from_tflite(x, &t).unwrap()
}

fn fp32_graph() -> Graph {
    let mut b = B::new();
    let x = b.input("x", &[1, 8, 8, 3], DType::F32, None);
    let w = b.f32_const("w", &[4, 3, 3, 3]);
    let bias = b.f32_const("b", &[4]);
    let c = b.f("conv", Op::Conv2D(conv(1, Padding::Same, FusedActivation::Relu6)), &[x, w, bias]);
    let dw = b.f32_const("dw_w", &[1, 3, 3, 8]);
    let dwb = b.f32_const("dw_b", &[8]);
    let d = b.f(
        "dw",
        Op::DepthwiseConv2D(DepthwiseConv2D {
            conv: conv(1, Padding::Same, FusedActivation::Relu),
            depth_multiplier: 2,
        }),
        &[c, dw, dwb],
    );
    let bilinear = ResizeNearest { size: [8, 8], align_corners: false, half_pixel_centers: true };
    let d = b.f("bilinear", Op::ResizeBilinear(bilinear), &[d]);
    let m = b.f("maxpool", Op::MaxPool2D(pool(2, Padding::Valid)), &[d]);
    let a = b.f("avgpool", Op::AvgPool2D(pool(3, Padding::Same)), &[d]);
    let sum = b.f("add", Op::Add(Binary { activation: FusedActivation::ReluN1To1 }), &[m, a]);
    let k = b.f32_const("k", &[8]);
    let prod = b.f("mul", Op::Mul(Binary::default()), &[sum, k]);
    let diff = b.f("sub", Op::Sub(Binary::default()), &[prod, m]);
    let diff = b.f("maximum", Op::Maximum, &[diff, m]);
    let diff = b.f("minimum", Op::Minimum, &[k, diff]);
    let cat = b.f("concat", Op::Concat(Concat { axis: 3, activation: FusedActivation::None }), &[diff, m]);
    let cat = b.f(
        "strided_slice",
        Op::StridedSlice(slice_of(&[1, 4, 4, 16], [0, 0, 0, 15], [1, 4, 4, -17], [1, 1, 1, -1])),
        &[cat],
    );
    let tr = b.f("transpose", Op::Transpose(Transpose { perm: vec![0, 3, 1, 2] }), &[cat]);
    let pd = b.f("pad", Op::Pad(Pad { pads: vec![[0, 0], [0, 0], [1, 2], [0, 1]], value: 0.0 }), &[tr]);
    let pd2 = b.f("padv2", Op::Pad(Pad { pads: vec![[0, 0], [1, 0], [0, 0], [0, 0]], value: -2.5 }), &[pd]);
    let mean = b.f("mean", Op::Mean(Mean { axes: vec![2, 3], keep_dims: true }), &[pd2]);
    let mean = b.f("sum", Op::ReduceSum(Mean { axes: vec![2], keep_dims: true }), &[mean]);
    let flat = b.op("reshape", Op::Reshape, &[mean], DType::F32, None, Some(&[1, 17]));
    let fw = b.f32_const("fc_w", &[6, 17]);
    let fb = b.f32_const("fc_b", &[6]);
    let fc = b.f(
        "fc",
        Op::FullyConnected(FullyConnected { activation: FusedActivation::Relu, keep_num_dims: false }),
        &[flat, fw, fb],
    );
    let fw2 = b.f32_const("fc2_w", &[6, 6]);
    let fc2 = b.f(
        "fc2",
        Op::FullyConnected(FullyConnected { activation: FusedActivation::None, keep_num_dims: true }),
        &[fc, fw2],
    );
    let mut t = fc2;
    for (name, op) in [
        ("relu", Op::Relu),
        ("relu6", Op::Relu6),
        ("clip", Op::Clip(Clip { min: -1.0, max: 1.0 })),
        ("leaky", Op::LeakyRelu(LeakyRelu { alpha: 0.25 })),
        ("sigmoid", Op::Sigmoid),
        ("tanh", Op::Tanh),
        ("hswish", Op::HardSwish),
        ("abs", Op::Abs),
        ("softmax", Op::Softmax(Softmax { beta: 0.5 })),
        ("log_softmax", Op::LogSoftmax),
        ("reflect", Op::MirrorPad(MirrorPad { pads: vec![[0, 0], [2, 3]], reflect: true })),
        ("symmetric", Op::MirrorPad(MirrorPad { pads: vec![[0, 0], [1, 0]], reflect: false })),
    ] {
        t = b.f(name, op, &[t]);
    }
    b.finish(&[t])
}

fn int8_graph() -> Graph {
    let mut b = B::new();
    let x = b.input("x", &[1, 6, 6, 2], DType::F32, None);
    let q = b.op("q", Op::Quantize, &[x], DType::I8, per_tensor(0.05, -3), None);
    let w = b.i8_const("w", &[4, 3, 3, 2], 0);
    let bias = b.i32_bias("b", 4);
    let c = b.op(
        "conv",
        Op::Conv2D(conv(2, Padding::Same, FusedActivation::Relu)),
        &[q, w, bias],
        DType::I8,
        per_tensor(0.04, -128),
        None,
    );
    let dw = b.i8_const("dw_w", &[1, 3, 3, 4], 3);
    let dwb = b.i32_bias("dw_b", 4);
    let d = b.op(
        "dw",
        Op::DepthwiseConv2D(DepthwiseConv2D {
            conv: conv(1, Padding::Valid, FusedActivation::None),
            depth_multiplier: 1,
        }),
        &[c, dw, dwb],
        DType::I8,
        per_tensor(0.03, 5),
        None,
    );
    let m = b.op("maxpool", Op::MaxPool2D(pool(1, Padding::Valid)), &[d], DType::I8, per_tensor(0.03, 5), None);
    let mul = b.op("mul", Op::Mul(Binary::default()), &[m, m], DType::I8, per_tensor(0.0005, 0), None);
    let r = b.op("reshape", Op::Reshape, &[mul], DType::I8, per_tensor(0.0005, 0), Some(&[1, 4]));
    let fw = b.i8_const("fc_w", &[3, 4], 0);
    let fb = b.i32_bias("fc_b", 3);
    let fc =
        b.op("fc", Op::FullyConnected(FullyConnected::default()), &[r, fw, fb], DType::I8, per_tensor(0.1, 2), None);
    let pv = b.op(
        "padv2",
        Op::Pad(Pad { pads: vec![[0, 0], [1, 1]], value: 0.5 }),
        &[fc],
        DType::I8,
        per_tensor(0.1, 2),
        None,
    );
    let s = b.op("softmax", Op::Softmax(Softmax { beta: 1.0 }), &[pv], DType::I8, per_tensor(1.0 / 256.0, -128), None);
    let out = b.op("dq", Op::Dequantize, &[s], DType::F32, None, None);
    b.finish(&[out])
}

/// With `TINYQ_TFLITE_DUMP=dir`, keeps written test models for `scripts/oracle_check.py`.
fn dump(name: &str, bytes: &[u8]) {
    if let Some(dir) = std::env::var_os("TINYQ_TFLITE_DUMP") {
        std::fs::write(std::path::Path::new(&dir).join(name), bytes).unwrap();
    }
}

fn model(bytes: &[u8]) -> tfl::ModelRef<'_> {
    tfl::ModelRef::read_as_root(bytes).expect("written model parses")
}

#[test]
fn fp32_graph_round_trips() {
    let g = fp32_graph();
    let bytes = write_tflite(&g).unwrap();
    dump("builder_fp32.tflite", &bytes);
    assert_eq!(read_tflite(&bytes).unwrap(), g);
    assert_eq!(write_tflite(&g).unwrap(), bytes, "same graph, same bytes");
}

#[test]
fn int8_graph_round_trips() {
    let g = int8_graph();
    let bytes = write_tflite(&g).unwrap();
    dump("builder_int8.tflite", &bytes);
    assert_eq!(read_tflite(&bytes).unwrap(), g);
}

#[test]
fn written_file_has_the_layout_runtimes_need() {
    let g = int8_graph();
    let bytes = write_tflite(&g).unwrap();
    assert_eq!(&bytes[4..8], b"TFL3");
    let m = model(&bytes);
    assert_eq!(m.version().unwrap(), 3);
    let buffers: Vec<_> = m.buffers().unwrap().unwrap().iter().map(|b| b.unwrap()).collect();
    assert!(buffers[0].data().unwrap().is_none_or(|d| d.is_empty()), "buffer 0 must be empty");
    for (i, b) in buffers.iter().enumerate().skip(1) {
        let d = b.data().unwrap().unwrap();
        let at = d.as_ptr() as usize - bytes.as_ptr() as usize;
        assert_eq!(at % 16, 0, "buffer {i} data at offset {at}");
    }
    let meta = m.metadata().unwrap().unwrap().get(0).unwrap().unwrap();
    assert_eq!(meta.name().unwrap(), Some("min_runtime_version"));
    let rt = buffers[meta.buffer().unwrap() as usize].data().unwrap().unwrap();
    assert_eq!(rt, b"1.15.0\0\0\0\0\0\0\0\0\0\0", "MUL v3 needs 1.15.0");

    let versions: Vec<(i32, i8, i32)> = m
        .operator_codes()
        .unwrap()
        .unwrap()
        .iter()
        .map(|c| c.unwrap())
        .map(|c| (c.builtin_code().unwrap(), c.deprecated_builtin_code().unwrap(), c.version().unwrap()))
        .collect();
    for (code, version) in [
        (codes::CONV_2D, 3),
        (codes::DEPTHWISE_CONV_2D, 3),
        (codes::FULLY_CONNECTED, 4),
        (codes::SOFTMAX, 2),
        (codes::PADV2, 2),
        (codes::QUANTIZE, 1),
        (codes::DEQUANTIZE, 2),
        (codes::MAX_POOL_2D, 2),
        (codes::MUL, 3),
    ] {
        assert!(
            versions.contains(&(code, code as i8, version)),
            "{} v{version} missing from {versions:?}",
            codes::op_name(code)
        );
    }

    let sg = m.subgraphs().unwrap().unwrap().get(0).unwrap().unwrap();
    let tensors: Vec<_> = sg.tensors().unwrap().unwrap().iter().map(|t| t.unwrap()).collect();
    let by_name = |n: &str| tensors.iter().find(|t| t.name().unwrap() == Some(n)).unwrap();
    for (name, dim, n) in [("w", 0, 4), ("b", 0, 4), ("dw_w", 3, 4), ("dw_b", 0, 4), ("fc_w", 0, 3), ("conv", 0, 1)] {
        let q = by_name(name).quantization().unwrap().unwrap();
        assert_eq!(q.quantized_dimension().unwrap(), dim, "{name}");
        assert_eq!(q.scale().unwrap().unwrap().len(), n, "{name}");
        assert_eq!(q.zero_point().unwrap().unwrap().len(), n, "{name}");
    }
    let pad_value = by_name("padv2/constant_values");
    assert_eq!(pad_value.type_().unwrap(), tfl::TensorType::Int8);
    let v = buffers[pad_value.buffer().unwrap() as usize].data().unwrap().unwrap();
    assert_eq!(v, [7u8], "0.5 / 0.1 + 2");
}

#[test]
fn large_op_codes_use_both_fields() {
    let mut b = B::new();
    let x = b.input("x", &[1, 4], DType::F32, None);
    let y = b.f("hswish", Op::HardSwish, &[x]);
    let bytes = write_tflite(&b.finish(&[y])).unwrap();
    let c = model(&bytes).operator_codes().unwrap().unwrap().get(0).unwrap().unwrap();
    assert_eq!((c.builtin_code().unwrap(), c.deprecated_builtin_code().unwrap()), (117, 117));
    assert_eq!(codes::builtin_code(200, 127), 200);
}

#[test]
fn explicit_padding_becomes_pad_then_valid() {
    let mut b = B::new();
    let x = b.input("x", &[1, 5, 5, 1], DType::F32, None);
    let w = b.f32_const("w", &[2, 3, 3, 1]);
    let explicit = Padding::Explicit { top: 2, bottom: 0, left: 1, right: 1 };
    let c = b.f("conv", Op::Conv2D(conv(1, explicit, FusedActivation::None)), &[x, w]);
    let same = Padding::Explicit { top: 1, bottom: 1, left: 1, right: 1 };
    let c2 = b.f("conv2", Op::Conv2D(conv(1, same, FusedActivation::None)), &[c, w]);
    let m = b.f(
        "maxpool",
        Op::MaxPool2D(Pool2D { filter: [2, 2], stride: [1, 1], padding: explicit, activation: FusedActivation::None }),
        &[c2],
    );
    let g = b.finish(&[m]);
    let back = read_tflite(&write_tflite(&g).unwrap()).unwrap();
    let ops: Vec<&Op> = back.nodes.iter().map(|n| &n.op).collect();
    assert!(matches!(ops[0], Op::Pad(p) if p.value == 0.0 && p.pads == vec![[0, 0], [2, 0], [1, 1], [0, 0]]));
    assert!(matches!(ops[1], Op::Conv2D(c) if c.padding == Padding::Valid));
    assert!(matches!(ops[2], Op::Conv2D(c) if c.padding == Padding::Same), "1/1/1/1 with a 3x3 kernel is SAME");
    assert!(matches!(ops[3], Op::Pad(p) if p.value == f32::NEG_INFINITY));
    assert!(matches!(ops[4], Op::MaxPool2D(p) if p.padding == Padding::Valid));
    assert_eq!(back.tensors[back.outputs[0]].shape, g.tensors[g.outputs[0]].shape);

    let mut b = B::new();
    let x = b.input("x", &[1, 5, 5, 1], DType::F32, None);
    let a = b.f(
        "avg",
        Op::AvgPool2D(Pool2D { filter: [2, 2], stride: [1, 1], padding: explicit, activation: FusedActivation::None }),
        &[x],
    );
    let err = write_tflite(&b.finish(&[a])).unwrap_err().to_string();
    assert!(err.contains("avg") && err.contains("average pool"), "{err}");
}

#[test]
fn conv_without_bias_gets_a_zero_bias() {
    let mut g = int8_graph();
    let conv = g.nodes.iter().position(|n| n.name == "conv").unwrap();
    g.nodes[conv].inputs.pop();
    let back = read_tflite(&write_tflite(&g).unwrap()).unwrap();
    let bias = &back.tensors[back.nodes[conv].inputs[2]];
    assert_eq!(bias.data, Some(TensorData::I32(vec![0; 4])));
    let q = bias.qparams.as_ref().unwrap();
    assert_eq!((q.scale[1], q.axis), (0.05 * 0.011, Some(0)));
}

#[test]
fn fp16_constants_behind_dequantize_become_f32() {
    let mut b = B::new();
    let x = b.input("x", &[1, 3], DType::F32, None);
    let h = b.g.add_tensor(Tensor::constant(
        "w16",
        vec![2, 3],
        TensorData::F16([0.5f32, -1.0, 2.0, 0.25, 3.0, -0.125].map(half::f16::from_f32).to_vec()),
    ));
    let w = b.f("w", Op::Dequantize, &[h]);
    let y = b.f("fc", Op::FullyConnected(FullyConnected::default()), &[x, w]);
    let bytes = write_tflite(&b.finish(&[y])).unwrap();
    let g = read_tflite(&bytes).unwrap();
    assert_eq!(g.nodes.len(), 1);
    let w = &g.tensors[g.nodes[0].inputs[1]];
    assert_eq!(w.data, Some(TensorData::F32(vec![0.5, -1.0, 2.0, 0.25, 3.0, -0.125])));
}

#[test]
fn clip_without_builtin_is_refused_by_name() {
    let mut b = B::new();
    let x = b.input("x", &[1, 3], DType::F32, None);
    let y = b.f("clip", Op::Clip(Clip { min: 0.0, max: 2.0 }), &[x]);
    let err = write_tflite(&b.finish(&[y])).unwrap_err().to_string();
    assert!(err.contains("`clip`") && err.contains("Clip(0, 2)"), "{err}");
}

#[test]
fn garbage_and_truncated_input_error_without_panic() {
    assert!(matches!(read_tflite(b""), Err(TfliteError::NotTflite(_))));
    assert!(matches!(read_tflite(b"\x10\0\0\0ONNX and more bytes"), Err(TfliteError::NotTflite(_))));
    let bytes = write_tflite(&int8_graph()).unwrap();
    for len in 0..bytes.len() {
        assert!(read_tflite(&bytes[..len]).is_err(), "a model cut to {len} bytes was accepted");
    }
    let mut seed = 7u64;
    for _ in 0..3000 {
        let mut b = bytes.clone();
        for _ in 0..4 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let at = 8 + (seed >> 33) as usize % (b.len() - 8);
            b[at] ^= 1 << ((seed >> 20) % 8);
        }
        let _ = read_tflite(&b);
    }
    let mut seed = 3u64;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            (seed >> 56) as u8
        })
        .collect();
    for len in [8, 64, 1000, 4096] {
        let mut b = noise[..len].to_vec();
        b[4..8].copy_from_slice(b"TFL3");
        assert!(read_tflite(&b).is_err());
    }
}

/// Writes `g`, lets `edit` break the model, and returns the reader's error message.
fn broken(g: &Graph, edit: impl FnOnce(&mut tfl::Model)) -> String {
    let bytes = write_tflite(g).unwrap();
    let mut m = tfl::Model::try_from(model(&bytes)).unwrap();
    edit(&mut m);
    let mut builder = planus::Builder::new();
    let mut out = builder.finish(&m, Some(*b"TFL3")).to_vec();
    crate::write::fix_header(&mut out);
    read_tflite(&out).unwrap_err().to_string()
}

fn subgraph(m: &mut tfl::Model) -> &mut tfl::SubGraph {
    &mut m.subgraphs.as_mut().unwrap()[0]
}

#[test]
fn broken_models_give_errors_that_name_the_place() {
    let g = fp32_graph();
    let w = g.tensors.iter().position(|t| t.name == "fc_w").unwrap();

    let e = broken(&g, |m| subgraph(m).tensors.as_mut().unwrap()[w].buffer = 999);
    assert!(e.contains("`fc_w`") && e.contains("buffer index 999"), "{e}");

    let e = broken(&g, |m| subgraph(m).tensors.as_mut().unwrap()[w].shape = Some(vec![6, 16]));
    assert!(e.contains("`fc_w`") && e.contains("bytes"), "{e}");

    let e = broken(&g, |m| subgraph(m).tensors.as_mut().unwrap()[w].shape = Some(vec![-1, 17]));
    assert!(e.contains("`fc_w`") && e.contains("-1"), "{e}");

    let e = broken(&g, |m| {
        let c = &mut m.operator_codes.as_mut().unwrap()[0];
        c.builtin_code = 42;
        c.deprecated_builtin_code = 42;
    });
    assert!(e.starts_with("operator 0: unsupported operator DIV (builtin code 42)"), "{e}");

    let e = broken(&g, |m| {
        let c = &mut m.operator_codes.as_mut().unwrap()[0];
        (c.builtin_code, c.deprecated_builtin_code, c.custom_code) =
            (codes::CUSTOM, codes::CUSTOM as i8, Some("MyOp".into()));
    });
    assert!(e.contains("CUSTOM `MyOp`"), "{e}");

    let e = broken(&g, |m| subgraph(m).operators.as_mut().unwrap()[1].inputs = Some(vec![0, 9999]));
    assert!(e.starts_with("operator 1 (DEPTHWISE_CONV_2D)") && e.contains("9999"), "{e}");

    let e = broken(&g, |m| subgraph(m).operators.as_mut().unwrap()[0].builtin_options = None);
    assert!(e.contains("operator 0 (CONV_2D)") && e.contains("Conv2DOptions"), "{e}");

    let e = broken(&g, |m| m.version = 2);
    assert!(e.contains("schema version 2"), "{e}");

    // No interpreter registers CONV_2D past version 8 (nor any version 0).
    for v in [0, 9, 469762051] {
        let e = broken(&g, |m| m.operator_codes.as_mut().unwrap()[0].version = v);
        assert!(e.contains(&format!("CONV_2D version {v} does not exist")), "{e}");
    }

    let e = broken(&g, |m| subgraph(m).tensors.as_mut().unwrap()[0].type_ = tfl::TensorType::String);
    assert!(e.contains("tensor 0 `x`") && e.contains("String"), "{e}");
}

#[test]
fn file_errors_carry_the_path() {
    let dir = std::env::temp_dir().join(format!("tinyq-tflite-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("junk.tflite");
    std::fs::write(&path, b"not a model at all").unwrap();
    let e = crate::read_tflite_file(&path).unwrap_err().to_string();
    assert!(e.contains("junk.tflite") && e.contains("not a TFLite model"), "{e}");
    let good = dir.join("good.tflite");
    crate::write_tflite_file(&fp32_graph(), &good).unwrap();
    assert_eq!(crate::read_tflite_file(&good).unwrap(), fp32_graph());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// int8 x → QUANTIZE → int16 → CONV_2D (no bias) → DEPTHWISE_CONV_2D → FULLY_CONNECTED (16x8,
/// int64 bias) → QUANTIZE → int8.
fn int16_graph() -> Graph {
    let mut b = B::new();
    let x = b.input("x", &[1, 4, 4, 2], DType::I8, per_tensor(0.05, 3));
    let x16 = b.op("x16", Op::Quantize, &[x], DType::I16, per_tensor(0.001, 0), None);
    let w = b.i8_const("w", &[3, 1, 1, 2], 0);
    let c = b.op(
        "conv",
        Op::Conv2D(conv(1, Padding::Same, FusedActivation::Relu)),
        &[x16, w],
        DType::I16,
        per_tensor(0.002, 0),
        None,
    );
    let dw = b.i8_const("dw", &[1, 3, 3, 3], 3);
    let dwc = DepthwiseConv2D { conv: conv(2, Padding::Valid, FusedActivation::None), depth_multiplier: 1 };
    let d = b.op("dwconv", Op::DepthwiseConv2D(dwc), &[c, dw], DType::I16, per_tensor(0.003, 0), None);
    let r = b.op("flat", Op::Reshape, &[d], DType::I16, per_tensor(0.003, 0), Some(&[1, 3]));
    let fw = b.i8_const("fw", &[2, 3], 0);
    let fw_q = &mut b.g.tensors[fw].qparams.as_mut().unwrap();
    (fw_q.scale, fw_q.zero_point, fw_q.axis) = (vec![0.01], vec![0], None);
    let mut bias = Tensor::constant("fb", vec![2], TensorData::I64(vec![5_000_000_000, -7]));
    bias.qparams = per_tensor(0.003 * 0.01, 0);
    let fb = b.g.add_tensor(bias);
    let fc = Op::FullyConnected(FullyConnected { activation: FusedActivation::None, keep_num_dims: false });
    let y16 = b.op("fc", fc, &[r, fw, fb], DType::I16, per_tensor(0.004, 0), None);
    let y = b.op("y", Op::Quantize, &[y16], DType::I8, per_tensor(0.5, -2), None);
    b.finish(&[y])
}

#[test]
fn int16_layers_get_the_16x8_versions_and_int64_biases() {
    let g = int16_graph();
    let bytes = write_tflite(&g).unwrap();
    dump("builder_int16.tflite", &bytes);
    let m = model(&bytes);
    let versions: Vec<(i32, i32)> = m
        .operator_codes()
        .unwrap()
        .unwrap()
        .iter()
        .map(|c| c.unwrap())
        .map(|c| (c.builtin_code().unwrap(), c.version().unwrap()))
        .collect();
    for want in [(codes::CONV_2D, 4), (codes::DEPTHWISE_CONV_2D, 5), (codes::FULLY_CONNECTED, 7), (codes::QUANTIZE, 2)]
    {
        assert!(versions.contains(&want), "{want:?} missing from {versions:?}");
    }
    let back = read_tflite(&bytes).unwrap();
    // The conv without bias got int64 zeros at input_scale · weight_scale[c]; the others keep theirs.
    let conv = back.nodes.iter().find(|n| n.name == "conv").unwrap();
    let bias = &back.tensors[conv.inputs[2]];
    assert_eq!(bias.data, Some(TensorData::I64(vec![0; 3])));
    assert_eq!(bias.qparams.as_ref().unwrap().scale[2], 0.001 * 0.012);
    let fc = back.nodes.iter().find(|n| n.name == "fc").unwrap();
    assert_eq!(back.tensors[fc.inputs[2]].data, Some(TensorData::I64(vec![5_000_000_000, -7])));
    assert_eq!(back.tensors[fc.inputs[0]].dtype, DType::I16);
    let rt = m.metadata().unwrap().unwrap().get(0).unwrap().unwrap().buffer().unwrap();
    let rt = m.buffers().unwrap().unwrap().get(rt as usize).unwrap().unwrap().data().unwrap().unwrap();
    assert!(rt.starts_with(b"2.3.0"), "{:?}", String::from_utf8_lossy(rt));
}

#[test]
fn flash_breakdown_counts_each_part_of_the_file() {
    let mut b = B::new();
    let x = b.input("x", &[1, 6, 6, 2], DType::F32, None);
    let q = b.op("q", Op::Quantize, &[x], DType::I8, per_tensor(0.05, -3), None);
    let w = b.i8_const("w", &[4, 3, 3, 2], 0);
    let bias = b.i32_bias("b", 4);
    let conv = Op::Conv2D(conv(1, Padding::Valid, FusedActivation::None));
    let c = b.op("conv", conv, &[q, w, bias], DType::I8, per_tensor(0.04, -128), None);
    let out = b.op("dq", Op::Dequantize, &[c], DType::F32, None, None);
    let bytes = write_tflite(&b.finish(&[out])).unwrap();
    let f = crate::flash_breakdown(&bytes).unwrap();
    assert_eq!(f.total, bytes.len() as u64);
    assert_eq!(f.weights, 4 * 3 * 3 * 2);
    assert_eq!(f.biases, 4 * 4);
    assert_eq!(f.float_constants, 0);
    // Per tensor: a scale and a zero point, each with a length field; per channel: four of each.
    let per_tensor_q = (4 + 4) + (4 + 8);
    let per_channel_q = (4 + 4 * 4) + (4 + 4 * 8);
    assert_eq!(f.quantization, 2 * per_tensor_q + 2 * per_channel_q);
    // Six tensor names, the subgraph's "main" and the "min_runtime_version" metadata, each with
    // a length field and a terminating zero.
    let names: u64 =
        ["x", "q", "w", "b", "conv", "dq", "main", "min_runtime_version"].iter().map(|n| 5 + n.len() as u64).sum();
    assert_eq!(f.names, names);
    assert_eq!(f.weights + f.biases + f.quantization + f.names + f.structure, f.total);
    assert!(f.structure > 0);

    for len in 0..bytes.len() {
        assert!(crate::flash_breakdown(&bytes[..len]).is_err(), "a model cut to {len} bytes was accepted");
    }
}

#[test]
fn flash_breakdown_counts_float_constants() {
    let bytes = write_tflite(&fp32_graph()).unwrap();
    let f = crate::flash_breakdown(&bytes).unwrap();
    let g = read_tflite(&bytes).unwrap();
    let float_bytes: u64 =
        g.tensors.iter().filter(|t| t.is_constant() && t.dtype == DType::F32).map(|t| t.size_bytes() as u64).sum();
    // The reader folds PADV2's scalar pad value (-2.5) into the op; the file stores it as a
    // float constant.
    assert_eq!(f.float_constants, float_bytes + 4);
    assert_eq!((f.weights, f.quantization), (0, 0));
    // RESHAPE's shape, PAD's paddings, TRANSPOSE's permutation and MEAN's axes are int32 operands.
    assert!(f.biases > 0);
}

#[test]
fn dynamic_range_layers_read_as_float_layers_with_dequantized_weights() {
    let mut b = B::new();
    let x = b.input("x", &[1, 5, 5, 2], DType::F32, None);
    let w = b.i8_const("w", &[3, 3, 3, 2], 0);
    let bias = b.f32_const("b", &[3]);
    let c = b.f("conv", Op::Conv2D(conv(1, Padding::Valid, FusedActivation::None)), &[x, w, bias]);
    let g = b.finish(&[c]);
    let (Some(TensorData::I8(q)), Some(p)) = (&g.tensors[w].data, &g.tensors[w].qparams) else {
        panic!("int8 weights")
    };
    let want: Vec<f32> = q.iter().enumerate().map(|(i, &v)| v as f32 * p.scale[i / 18]).collect();
    let back = read_tflite(&write_tflite(&g).unwrap()).unwrap();
    let wt = back.tensor(back.nodes[0].inputs[1]);
    assert_eq!((wt.dtype, wt.qparams.is_none()), (DType::F32, true));
    assert_eq!(wt.data, Some(TensorData::F32(want)));
}

#[test]
fn int32_biases_with_a_zero_point_are_refused() {
    // TFLite's quantization spec: int32 biases are symmetric; LiteRT refuses other zero points.
    let g = int8_graph();
    let b = g.tensors.iter().position(|t| t.dtype == DType::I32 && t.qparams.is_some()).unwrap();
    let name = g.tensors[b].name.clone();
    let e = broken(&g, |m| {
        let q = subgraph(m).tensors.as_mut().unwrap()[b].quantization.as_mut().unwrap();
        let n = q.scale.as_ref().unwrap().len();
        q.zero_point = Some(vec![5; n]);
    });
    assert!(e.contains(&format!("`{name}`")) && e.contains("int32 tensors are symmetric"), "{e}");
}

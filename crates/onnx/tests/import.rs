//! ONNX import: layout conversion, folding and fusion rules, error messages.

mod support;

use support::*;
use tinyq_ir::Op;
use tinyq_onnx::{import_model, ImportOptions, OnnxError};

fn import(b: ModelBuilder) -> Result<tinyq_ir::Graph, OnnxError> {
    let dir = tempdir();
    let path = dir.join("m.onnx");
    b.write(&path);
    import_model(&path, &ImportOptions::default())
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("tinyq-onnx-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn run(g: &tinyq_ir::Graph, x: &[f32]) -> Vec<f32> {
    tinyq_float::Plan::new(g).unwrap().run(&[x]).unwrap().remove(0)
}

fn op_names(g: &tinyq_ir::Graph) -> Vec<&'static str> {
    g.nodes.iter().map(|n| n.op.name()).collect()
}

/// NCHW reference: conv (stride 1, pad 1, 3x3) → batchnorm → relu → flatten → gemm(transB=1).
#[allow(clippy::too_many_arguments)]
fn reference(
    x: &[f32],
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    wt: &[f32],
    b: &[f32],
    bn: [&[f32]; 4],
    fc: &[f32],
    fcb: &[f32],
) -> Vec<f32> {
    let mut y = vec![0f32; k * h * w];
    for o in 0..k {
        for i in 0..h {
            for j in 0..w {
                let mut acc = b[o];
                for ci in 0..c {
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (ii, jj) = (i as isize + ky as isize - 1, j as isize + kx as isize - 1);
                            if ii >= 0 && jj >= 0 && (ii as usize) < h && (jj as usize) < w {
                                acc += x[ci * h * w + ii as usize * w + jj as usize]
                                    * wt[((o * c + ci) * 3 + ky) * 3 + kx];
                            }
                        }
                    }
                }
                let [g, beta, mean, var] = bn;
                let v = (acc - mean[o]) / (var[o] + 1e-5).sqrt() * g[o] + beta[o];
                y[(o * h + i) * w + j] = v.max(0.0);
            }
        }
    }
    let units = fcb.len();
    (0..units).map(|u| fcb[u] + y.iter().enumerate().map(|(i, v)| v * fc[u * y.len() + i]).sum::<f32>()).collect()
}

#[test]
fn conv_bn_relu_flatten_gemm_matches_an_nchw_reference() {
    let (c, h, w, k, units) = (3usize, 5usize, 6usize, 4usize, 7usize);
    let wt = values(k * c * 9, 1);
    let b = values(k, 2);
    let (g, beta, mean) = (values(k, 3), values(k, 4), values(k, 5));
    let var: Vec<f32> = values(k, 6).iter().map(|v| v.abs() + 0.5).collect();
    let fc = values(units * k * h * w, 7);
    let fcb = values(units, 8);
    let model = ModelBuilder::new(13)
        .input("x", &[-1, c as i64, h as i64, w as i64])
        .init(tensor_f32("w", &[k as i64, c as i64, 3, 3], &wt))
        .init(tensor_f32("b", &[k as i64], &b))
        .init(tensor_f32("g", &[k as i64], &g))
        .init(tensor_f32("beta", &[k as i64], &beta))
        .init(tensor_f32("mean", &[k as i64], &mean))
        .init(tensor_f32("var", &[k as i64], &var))
        .init(tensor_f32("fc", &[units as i64, (k * h * w) as i64], &fc))
        .init(tensor_f32("fcb", &[units as i64], &fcb))
        .node(
            "Conv",
            "conv",
            &["x", "w", "b"],
            &["c"],
            vec![ints("pads", &[1, 1, 1, 1]), ints("kernel_shape", &[3, 3])],
        )
        .node("BatchNormalization", "bn", &["c", "g", "beta", "mean", "var"], &["n"], vec![])
        .node("Relu", "relu", &["n"], &["r"], vec![])
        .node("Flatten", "flat", &["r"], &["f"], vec![int("axis", 1)])
        .node("Gemm", "fc", &["f", "fc", "fcb"], &["y"], vec![int("transB", 1)])
        .output("y");
    let graph = import(model).unwrap();
    assert_eq!(op_names(&graph), ["Transpose", "Conv2D", "Reshape", "FullyConnected"]);
    let conv = graph.nodes.iter().find(|n| n.name == "conv").unwrap();
    assert_eq!(conv.op.activation(), Some(tinyq_ir::FusedActivation::Relu));
    let x = values(c * h * w, 9);
    let got = run(&graph, &x);
    let want = reference(&x, c, h, w, k, &wt, &b, [&g, &beta, &mean, &var], &fc, &fcb);
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{got:?} vs {want:?}");
    }
}

#[test]
fn tf2onnx_transpose_pairs_disappear() {
    let model = ModelBuilder::new(13)
        .input("x", &[1, 4, 5, 3])
        .node("Transpose", "to_nchw", &["x"], &["t"], vec![ints("perm", &[0, 3, 1, 2])])
        .node("MaxPool", "pool", &["t"], &["p"], vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])])
        .node("Relu", "relu", &["p"], &["r"], vec![])
        .node("Transpose", "to_nhwc", &["r"], &["y"], vec![ints("perm", &[0, 2, 3, 1])])
        .output("y");
    let graph = import(model).unwrap();
    assert_eq!(op_names(&graph), ["MaxPool2D"]);
    assert_eq!(graph.nodes[0].op.activation(), Some(tinyq_ir::FusedActivation::Relu));
    assert_eq!(graph.tensor(graph.outputs[0]).shape, [1, 2, 2, 3]);
    assert_eq!(graph.tensor(graph.outputs[0]).name, "y");
}

#[test]
fn shape_subgraph_is_folded_into_a_reshape() {
    let model = ModelBuilder::new(13)
        .input("x", &[-1, 2, 3, 4])
        .init(tensor_i64("zero", &[0]))
        .init(tensor_i64("minus_one", &[-1]))
        .node("Shape", "shape", &["x"], &["s"], vec![])
        .node("Gather", "gather", &["s", "zero"], &["n"], vec![int("axis", 0)])
        .node("Concat", "cat", &["n", "minus_one"], &["target"], vec![int("axis", 0)])
        .node("Reshape", "reshape", &["x", "target"], &["y"], vec![])
        .output("y");
    let graph = import(model).unwrap();
    assert_eq!(op_names(&graph), ["Reshape"]);
    assert_eq!(graph.tensor(graph.outputs[0]).shape, [1, 24]);
    let x = values(24, 3);
    assert_eq!(run(&graph, &x), x);
}

#[test]
fn unsupported_op_names_node_op_and_opset() {
    let model = ModelBuilder::new(17).input("x", &[1, 3]).node("Det", "weird_node", &["x"], &["y"], vec![]).output("y");
    let msg = import(model).unwrap_err().to_string();
    for part in ["weird_node", "Det", "opset 17"] {
        assert!(msg.contains(part), "`{part}` missing from: {msg}");
    }
}

#[test]
fn external_data_is_read_from_the_side_file() {
    let dir = tempdir();
    let wt = values(6, 11);
    let inline = ModelBuilder::new(18)
        .input("x", &[1, 3])
        .init(tensor_f32("w", &[3, 2], &wt))
        .node("MatMul", "mm", &["x", "w"], &["y"], vec![])
        .output("y");
    let mut proto = inline.build();
    let t = &mut proto.graph.as_mut().unwrap().initializer[0];
    let raw = std::mem::take(&mut t.raw_data);
    std::fs::write(dir.join("m.onnx.data"), [vec![0u8; 8], raw].concat()).unwrap();
    t.data_location = 1;
    let entry = |k: &str, v: &str| tinyq_onnx::proto::StringStringEntryProto { key: k.into(), value: v.into() };
    t.external_data = vec![entry("location", "m.onnx.data"), entry("offset", "8"), entry("length", "24")];
    use prost::Message;
    std::fs::write(dir.join("m.onnx"), proto.encode_to_vec()).unwrap();
    let graph = import_model(&dir.join("m.onnx"), &ImportOptions::default()).unwrap();
    let x = [1.0, 2.0, 3.0];
    let want: Vec<f32> = (0..2).map(|j| (0..3).map(|i| x[i] * wt[i * 2 + j]).sum()).collect();
    let got = run(&graph, &x);
    assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5), "{got:?} vs {want:?}");

    std::fs::write(dir.join("m.onnx.data"), [0u8; 10]).unwrap();
    let msg = import_model(&dir.join("m.onnx"), &ImportOptions::default()).unwrap_err().to_string();
    assert!(msg.contains("`w`") && msg.contains("shorter"), "{msg}");
}

#[test]
fn truncated_and_oversized_files_are_refused() {
    let dir = tempdir();
    let model = ModelBuilder::new(13)
        .input("x", &[1, 16])
        .init(tensor_f32("w", &[16, 16], &values(256, 1)))
        .node("MatMul", "mm", &["x", "w"], &["y"], vec![])
        .output("y");
    use prost::Message;
    let bytes = model.build().encode_to_vec();
    let cut = dir.join("cut.onnx");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = import_model(&cut, &ImportOptions::default()).unwrap_err();
    assert!(matches!(err, OnnxError::Decode { .. }), "{err}");
    assert!(err.to_string().contains("cut.onnx"));

    let big = dir.join("big.onnx");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len((1 << 31) + 10).unwrap();
    let err = import_model(&big, &ImportOptions::default()).unwrap_err();
    assert!(matches!(err, OnnxError::TooLarge { .. }), "{err}");
    std::fs::remove_file(&big).unwrap();
}

#[test]
fn depthwise_and_explicit_padding_import_as_tflite_ops() {
    let wt = values(4 * 9, 5);
    let model = ModelBuilder::new(13)
        .input("x", &[1, 2, 8, 8])
        .init(tensor_f32("w", &[4, 1, 3, 3], &wt))
        .node(
            "Conv",
            "dw",
            &["x", "w"],
            &["c"],
            vec![int("group", 2), ints("pads", &[1, 1, 1, 1]), ints("strides", &[2, 2])],
        )
        .init(tensor_f32("lo", &[], &[0.0]))
        .init(tensor_f32("hi", &[], &[6.0]))
        .node("Clip", "relu6", &["c", "lo", "hi"], &["y"], vec![])
        .output("y");
    let graph = import(model).unwrap();
    let dw = graph.nodes.iter().find(|n| n.name == "dw").unwrap();
    let Op::DepthwiseConv2D(p) = &dw.op else { panic!("{:?}", dw.op) };
    assert_eq!(p.depth_multiplier, 2);
    assert_eq!(p.conv.padding, tinyq_ir::Padding::Explicit { top: 1, bottom: 1, left: 1, right: 1 });
    assert_eq!(p.conv.activation, tinyq_ir::FusedActivation::Relu6);
    assert_eq!(graph.tensor(dw.inputs[1]).shape, [1, 3, 3, 4]);
    // SAME in TFLite's sense: 7 → 4 with stride 2 puts one pixel on each side.
    let same = ModelBuilder::new(13)
        .input("x", &[1, 2, 7, 7])
        .init(tensor_f32("w", &[2, 1, 3, 3], &wt[..18]))
        .node(
            "Conv",
            "dw",
            &["x", "w"],
            &["y"],
            vec![int("group", 2), ints("pads", &[1, 1, 1, 1]), ints("strides", &[2, 2])],
        )
        .output("y");
    let graph = import(same).unwrap();
    let Op::DepthwiseConv2D(p) = &graph.nodes.iter().find(|n| n.name == "dw").unwrap().op else { panic!() };
    assert_eq!(p.conv.padding, tinyq_ir::Padding::Same);
}

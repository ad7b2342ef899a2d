//! Float kernels against direct loop implementations on random shapes.

use proptest::prelude::*;
use tinyq_float::{with_isa, Isa, Plan};
use tinyq_ir::op::{Conv2D, DepthwiseConv2D, Pool2D};
use tinyq_ir::{DType, FusedActivation, Graph, Node, Op, Padding, Tensor, TensorData};

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 2000) as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// A one-node graph `y = op(x, consts...)` with the output shape from the op's shape rule.
fn single(op: Op, x_shape: Vec<usize>, consts: Vec<(Vec<usize>, Vec<f32>)>) -> Option<Graph> {
    let mut g = Graph::default();
    let x = g.add_tensor(Tensor::activation("x", x_shape, DType::F32));
    let mut inputs = vec![x];
    for (i, (s, d)) in consts.into_iter().enumerate() {
        inputs.push(g.add_tensor(Tensor::constant(format!("c{i}"), s, TensorData::F32(d))));
    }
    let shapes: Vec<&[usize]> = inputs.iter().map(|&i| &g.tensors[i].shape[..]).collect();
    let out = op.infer_shapes(&shapes).ok()?.remove(0);
    if out.contains(&0) {
        return None;
    }
    let y = g.add_tensor(Tensor::activation("y", out, DType::F32));
    g.nodes.push(Node { name: "n".into(), op, inputs, outputs: vec![y] });
    g.inputs.push(x);
    g.outputs.push(y);
    Some(g)
}

/// Direct NHWC convolution: groups, stride, dilation, explicit padding.
#[allow(clippy::too_many_arguments)]
fn conv_direct(
    x: &[f32],
    [h, w, c]: [usize; 3],
    wt: &[f32],
    [oc, kh, kw, cg]: [usize; 4],
    bias: &[f32],
    stride: usize,
    dil: usize,
    [pt, pl]: [usize; 2],
    [oh, ow]: [usize; 2],
    depthwise: bool,
) -> Vec<f32> {
    let mut out = vec![0f32; oh * ow * oc];
    let groups = if depthwise { c } else { c / cg };
    let per_group = oc / groups;
    for oy in 0..oh {
        for ox in 0..ow {
            for o in 0..oc {
                let g = o / per_group;
                let mut acc = bias[o];
                for ky in 0..kh {
                    for kx in 0..kw {
                        let iy = (oy * stride + ky * dil) as isize - pt as isize;
                        let ix = (ox * stride + kx * dil) as isize - pl as isize;
                        if iy < 0 || ix < 0 || iy as usize >= h || ix as usize >= w {
                            continue;
                        }
                        let base = (iy as usize * w + ix as usize) * c;
                        if depthwise {
                            acc += x[base + g] * wt[(ky * kw + kx) * oc + o];
                        } else {
                            for ci in 0..cg {
                                acc += x[base + g * cg + ci] * wt[((o * kh + ky) * kw + kx) * cg + ci];
                            }
                        }
                    }
                }
                out[(oy * ow + ox) * oc + o] = acc;
            }
        }
    }
    out
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-4 * (1.0 + y.abs()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn conv2d_matches_direct_loops(
        h in 1usize..9, w in 1usize..9, cg in 1usize..4, groups in 1usize..3, per_group in 1usize..4,
        kh in 1usize..4, kw in 1usize..4, stride in 1usize..3, dil in 1usize..3,
        pads in proptest::array::uniform4(0usize..3), seed in any::<u64>(),
    ) {
        let (c, oc) = (cg * groups, per_group * groups);
        let padding = Padding::Explicit { top: pads[0], bottom: pads[1], left: pads[2], right: pads[3] };
        let op = Op::Conv2D(Conv2D { stride: [stride; 2], dilation: [dil; 2], padding, activation: FusedActivation::None });
        let (x, wt, b) = (values(h * w * c, seed), values(oc * kh * kw * cg, seed ^ 1), values(oc, seed ^ 2));
        let Some(g) = single(op, vec![1, h, w, c], vec![(vec![oc, kh, kw, cg], wt.clone()), (vec![oc], b.clone())]) else { return Ok(()) };
        let os = g.tensors[g.outputs[0]].shape.clone();
        let got = Plan::new(&g).unwrap().run(&[&x]).unwrap().remove(0);
        let want = conv_direct(&x, [h, w, c], &wt, [oc, kh, kw, cg], &b, stride, dil, [pads[0], pads[2]], [os[1], os[2]], false);
        prop_assert!(close(&got, &want), "{got:?}\n{want:?}");
    }

    #[test]
    fn depthwise_matches_direct_loops(
        h in 1usize..9, w in 1usize..9, c in 1usize..5, m in 1usize..3, k in 1usize..4, stride in 1usize..3,
        same in any::<bool>(), seed in any::<u64>(),
    ) {
        let padding = if same { Padding::Same } else { Padding::Valid };
        let conv = Conv2D { stride: [stride; 2], dilation: [1, 1], padding, activation: FusedActivation::Relu6 };
        let op = Op::DepthwiseConv2D(DepthwiseConv2D { conv, depth_multiplier: m });
        let oc = c * m;
        let (x, wt, b) = (values(h * w * c, seed), values(k * k * oc, seed ^ 1), values(oc, seed ^ 2));
        let Some(g) = single(op, vec![1, h, w, c], vec![(vec![1, k, k, oc], wt.clone()), (vec![oc], b.clone())]) else { return Ok(()) };
        let os = g.tensors[g.outputs[0]].shape.clone();
        let pt = padding.resolve(0, h, k, stride, 1).unwrap().pad_before;
        let pl = padding.resolve(1, w, k, stride, 1).unwrap().pad_before;
        let got = Plan::new(&g).unwrap().run(&[&x]).unwrap().remove(0);
        let want: Vec<f32> = conv_direct(&x, [h, w, c], &wt, [oc, k, k, 1], &b, stride, 1, [pt, pl], [os[1], os[2]], true)
            .into_iter().map(|v| v.clamp(0.0, 6.0)).collect();
        prop_assert!(close(&got, &want), "{got:?}\n{want:?}");
    }

    #[test]
    fn average_pool_excludes_padding(h in 1usize..8, w in 1usize..8, c in 1usize..4, k in 1usize..4, seed in any::<u64>()) {
        let p = Pool2D { filter: [k, k], stride: [1, 1], padding: Padding::Same, activation: FusedActivation::None };
        let x = values(h * w * c, seed);
        let Some(g) = single(Op::AvgPool2D(p), vec![1, h, w, c], vec![]) else { return Ok(()) };
        let got = Plan::new(&g).unwrap().run(&[&x]).unwrap().remove(0);
        let top = Padding::Same.resolve(0, h, k, 1, 1).unwrap().pad_before as isize;
        let left = Padding::Same.resolve(1, w, k, 1, 1).unwrap().pad_before as isize;
        for oy in 0..h {
            for ox in 0..w {
                for ch in 0..c {
                    let (mut sum, mut n) = (0f32, 0);
                    for ky in 0..k as isize {
                        for kx in 0..k as isize {
                            let (iy, ix) = (oy as isize + ky - top, ox as isize + kx - left);
                            if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                sum += x[(iy as usize * w + ix as usize) * c + ch];
                                n += 1;
                            }
                        }
                    }
                    let want = sum / n as f32;
                    prop_assert!((got[(oy * w + ox) * c + ch] - want).abs() < 1e-5);
                }
            }
        }
    }
}

#[test]
fn softmax_rows_sum_to_one_and_keep_order() {
    let g = single(Op::Softmax(tinyq_ir::op::Softmax { beta: 1.0 }), vec![2, 3], vec![]).unwrap();
    let y = Plan::new(&g).unwrap().run(&[&[1.0, 2.0, 3.0, 1000.0, 0.0, -1000.0]]).unwrap().remove(0);
    assert!((y[0] + y[1] + y[2] - 1.0).abs() < 1e-6 && y[0] < y[1] && y[1] < y[2]);
    assert_eq!(&y[3..], &[1.0, 0.0, 0.0]);
}

#[test]
fn wrong_input_size_is_an_error_not_a_panic() {
    let g = single(Op::Relu, vec![1, 4], vec![]).unwrap();
    let err = Plan::new(&g).unwrap().run(&[&[1.0, 2.0]]).unwrap_err();
    assert!(err.to_string().contains("expected 4 values"), "{err}");
}

#[test]
fn plan_new_validates_the_graph_itself() {
    // A second node writing the first one's output: refused by the float engine as by the integer
    // engine, before anything runs.
    let mut g = single(Op::Relu, vec![1, 4], vec![]).unwrap();
    assert!(Plan::new(&g).is_ok());
    let again = g.nodes[0].clone();
    g.nodes.push(Node { name: "again".into(), ..again });
    let err = Plan::new(&g).err().expect("two writers of one tensor must be refused");
    assert!(matches!(err, tinyq_float::FloatError::Graph(_)), "{err}");
    // NaN weights are named, not computed with.
    let mut g = single(Op::Add(Default::default()), vec![1, 2], vec![(vec![1, 2], vec![1.0, f32::NAN])]).unwrap();
    assert!(Plan::new(&g).is_err());
    g.tensors[1].data = Some(TensorData::F32(vec![1.0, 2.0]));
    assert!(Plan::new(&g).is_ok());
}

/// The instruction sets the tiled kernels can be held to on this CPU (the detected one and every
/// lower one).
fn isas() -> Vec<Isa> {
    [Isa::Portable, Isa::Avx2, Isa::Avx512].into_iter().filter(|&i| i <= Isa::detected()).collect()
}

/// Runs the one-input graph `g` on `x` under every instruction set and checks the output is
/// [`close`] to `want`.
fn close_under_every_isa(g: &Graph, x: &[f32], want: &[f32]) -> Result<(), TestCaseError> {
    let plan = Plan::new(g).unwrap();
    for isa in isas() {
        let got = with_isa(isa, || plan.run(&[x]).unwrap().remove(0));
        prop_assert!(close(&got, want), "{isa:?}\n{got:?}\n{want:?}");
    }
    Ok(())
}

fn activation(k: u8) -> FusedActivation {
    [FusedActivation::None, FusedActivation::Relu, FusedActivation::Relu6][k as usize % 3]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// One group with enough channels for whole and partial tiles of output channels, both the
    /// im2col-first path (few input channels) and the direct one, under every instruction set.
    #[test]
    fn tiled_conv2d_matches_direct_loops(
        h in 1usize..12, w in 1usize..12, c in 1usize..40, oc in 1usize..40,
        kh in 1usize..4, kw in 1usize..4, stride in 1usize..3, dil in 1usize..3,
        pads in proptest::array::uniform4(0usize..3), act in any::<u8>(), seed in any::<u64>(),
    ) {
        let padding = Padding::Explicit { top: pads[0], bottom: pads[1], left: pads[2], right: pads[3] };
        let op = Op::Conv2D(Conv2D { stride: [stride; 2], dilation: [dil; 2], padding, activation: activation(act) });
        let (x, wt, b) = (values(h * w * c, seed), values(oc * kh * kw * c, seed ^ 1), values(oc, seed ^ 2));
        let Some(g) = single(op, vec![1, h, w, c], vec![(vec![oc, kh, kw, c], wt.clone()), (vec![oc], b.clone())]) else { return Ok(()) };
        let os = g.tensors[g.outputs[0]].shape.clone();
        let (lo, hi) = activation(act).range();
        let want: Vec<f32> = conv_direct(&x, [h, w, c], &wt, [oc, kh, kw, c], &b, stride, dil, [pads[0], pads[2]], [os[1], os[2]], false)
            .into_iter().map(|v| v.max(lo).min(hi)).collect();
        close_under_every_isa(&g, &x, &want)?;
    }

    /// Depthwise over whole tiles of channels (the tiled path), under every instruction set.
    #[test]
    fn tiled_depthwise_matches_direct_loops(
        h in 1usize..12, w in 1usize..12, tiles in 1usize..4, k in 1usize..4, stride in 1usize..3,
        same in any::<bool>(), act in any::<u8>(), seed in any::<u64>(),
    ) {
        let c = 16 * tiles;
        let padding = if same { Padding::Same } else { Padding::Valid };
        let conv = Conv2D { stride: [stride; 2], dilation: [1, 1], padding, activation: activation(act) };
        let op = Op::DepthwiseConv2D(DepthwiseConv2D { conv, depth_multiplier: 1 });
        let (x, wt, b) = (values(h * w * c, seed), values(k * k * c, seed ^ 1), values(c, seed ^ 2));
        let Some(g) = single(op, vec![1, h, w, c], vec![(vec![1, k, k, c], wt.clone()), (vec![c], b.clone())]) else { return Ok(()) };
        let os = g.tensors[g.outputs[0]].shape.clone();
        let pt = padding.resolve(0, h, k, stride, 1).unwrap().pad_before;
        let pl = padding.resolve(1, w, k, stride, 1).unwrap().pad_before;
        let (lo, hi) = activation(act).range();
        let want: Vec<f32> = conv_direct(&x, [h, w, c], &wt, [c, k, k, 1], &b, stride, 1, [pt, pl], [os[1], os[2]], true)
            .into_iter().map(|v| v.max(lo).min(hi)).collect();
        close_under_every_isa(&g, &x, &want)?;
    }

    /// Dense layers: inputs shorter and longer than a tile, units in and across blocks, several
    /// rows, with and without bias.
    #[test]
    fn tiled_dense_matches_direct_loops(
        rows in 1usize..4, inner in 1usize..70, units in 1usize..40, bias in any::<bool>(),
        act in any::<u8>(), seed in any::<u64>(),
    ) {
        let op = Op::FullyConnected(tinyq_ir::op::FullyConnected { activation: activation(act), keep_num_dims: false });
        let (x, wt, b) = (values(rows * inner, seed), values(units * inner, seed ^ 1), values(units, seed ^ 2));
        let mut consts = vec![(vec![units, inner], wt.clone())];
        if bias {
            consts.push((vec![units], b.clone()));
        }
        let Some(g) = single(op, vec![rows, inner], consts) else { return Ok(()) };
        let (lo, hi) = activation(act).range();
        let want: Vec<f32> = (0..rows * units)
            .map(|i| {
                let (r, u) = (i / units, i % units);
                let dot: f32 = (0..inner).map(|j| x[r * inner + j] * wt[u * inner + j]).sum();
                (dot + if bias { b[u] } else { 0.0 }).max(lo).min(hi)
            })
            .collect();
        close_under_every_isa(&g, &x, &want)?;
    }
}

/// A NaN input stays NaN without a fused activation and is clamped like `f32::max/min` with
/// one, on every instruction set, as the loops outside the tiled kernels do.
#[test]
fn tiled_kernels_keep_nan_semantics() {
    for act in [FusedActivation::None, FusedActivation::Relu6] {
        let op = Op::Conv2D(Conv2D { stride: [1, 1], dilation: [1, 1], padding: Padding::Valid, activation: act });
        let g = single(op, vec![1, 1, 1, 16], vec![(vec![20, 1, 1, 16], vec![0.5; 320])]).unwrap();
        let mut x = vec![1.0f32; 16];
        x[3] = f32::NAN;
        let plan = Plan::new(&g).unwrap();
        for isa in isas() {
            let y = with_isa(isa, || plan.run(&[&x]).unwrap().remove(0));
            let want = if act == FusedActivation::None { f32::NAN } else { 0.0 };
            assert!(
                y.iter().all(|v| v.to_bits() == want.to_bits() || (want.is_nan() && v.is_nan())),
                "{isa:?} {act:?}: {y:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Max and average pooling over whole tiles of channels (the tiled path), with padding that
    /// is never counted, under every instruction set.
    #[test]
    fn tiled_pool_matches_direct_loops(
        h in 1usize..9, w in 1usize..9, tiles in 1usize..3, k in 1usize..4, stride in 1usize..3,
        same in any::<bool>(), max in any::<bool>(), act in any::<u8>(), seed in any::<u64>(),
    ) {
        let c = 16 * tiles;
        let padding = if same { Padding::Same } else { Padding::Valid };
        let p = Pool2D { filter: [k, k], stride: [stride; 2], padding, activation: activation(act) };
        let x = values(h * w * c, seed);
        let op = if max { Op::MaxPool2D(p) } else { Op::AvgPool2D(p) };
        let Some(g) = single(op, vec![1, h, w, c], vec![]) else { return Ok(()) };
        let os = g.tensors[g.outputs[0]].shape.clone();
        let top = padding.resolve(0, h, k, stride, 1).unwrap().pad_before as isize;
        let left = padding.resolve(1, w, k, stride, 1).unwrap().pad_before as isize;
        let (lo, hi) = activation(act).range();
        let mut want = vec![0f32; os[1] * os[2] * c];
        for oy in 0..os[1] {
            for ox in 0..os[2] {
                for ch in 0..c {
                    let (mut acc, mut n) = (if max { f32::NEG_INFINITY } else { 0.0 }, 0);
                    for ky in 0..k as isize {
                        for kx in 0..k as isize {
                            let (iy, ix) = ((oy * stride) as isize + ky - top, (ox * stride) as isize + kx - left);
                            if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                let v = x[(iy as usize * w + ix as usize) * c + ch];
                                acc = if max { acc.max(v) } else { acc + v };
                                n += 1;
                            }
                        }
                    }
                    if !max && n > 0 {
                        acc /= n as f32;
                    }
                    want[(oy * os[2] + ox) * c + ch] = acc.max(lo).min(hi);
                }
            }
        }
        let plan = Plan::new(&g).unwrap();
        for isa in isas() {
            let got = with_isa(isa, || plan.run(&[&x]).unwrap().remove(0));
            prop_assert_eq!(&got, &want, "{:?}", isa);
        }
    }
}

proptest! {
    /// Mean, sum and max over any set of axes (one contiguous run or not) against loops over the
    /// input in order, f64 sums: equal to the bit.
    #[test]
    fn reductions_match_direct_loops(
        shape in proptest::collection::vec(1usize..5, 1..5), mask in any::<u8>(), which in 0u8..3,
        keep in any::<bool>(), seed in any::<u64>(),
    ) {
        let axes: Vec<usize> = (0..shape.len()).filter(|a| mask >> a & 1 == 1).collect();
        if axes.is_empty() {
            return Ok(());
        }
        let p = tinyq_ir::op::Mean { axes: axes.clone(), keep_dims: keep };
        let op = match which { 0 => Op::Mean(p), 1 => Op::ReduceSum(p), _ => Op::ReduceMax(p) };
        let x = values(shape.iter().product(), seed);
        let Some(g) = single(op, shape.clone(), vec![]) else { return Ok(()) };
        let got = Plan::new(&g).unwrap().run(&[&x]).unwrap().remove(0);
        // The output index of each input element: its coordinates with the reduced ones dropped.
        let kept: Vec<usize> = (0..shape.len()).filter(|a| !axes.contains(a)).collect();
        let n_out: usize = kept.iter().map(|&a| shape[a]).product();
        let (mut sum, mut max, mut count) = (vec![0f64; n_out], vec![f32::NEG_INFINITY; n_out], vec![0usize; n_out]);
        for (i, &v) in x.iter().enumerate() {
            let mut rest = i;
            let mut coord = vec![0usize; shape.len()];
            for a in (0..shape.len()).rev() {
                coord[a] = rest % shape[a];
                rest /= shape[a];
            }
            let o = kept.iter().fold(0, |o, &a| o * shape[a] + coord[a]);
            sum[o] += v as f64;
            if v > max[o] {
                max[o] = v;
            }
            count[o] += 1;
        }
        let want: Vec<f32> = (0..n_out)
            .map(|o| match which { 0 => (sum[o] / count[o] as f64) as f32, 1 => sum[o] as f32, _ => max[o] })
            .collect();
        prop_assert_eq!(got, want);
    }
}

//! Analytic gradients of `tinyq_float::backward` against central finite differences of
//! `L = Σ output · g` (forward run in f32 by the crate's own `Plan` on a one-node graph, L summed
//! in f64). Coordinates where the loss has a kink within ±eps (ReLU/clip boundaries, max-pool
//! ties, fused-activation clamps) are detected by disagreeing one-sided differences and skipped.

use proptest::prelude::*;
use tinyq_float::{backward::backward, Plan};
use tinyq_ir::op::Binary;
use tinyq_ir::op::{
    Clip, Concat, Conv2D, DepthwiseConv2D, FullyConnected, LeakyRelu, Mean, Pad, Pool2D, Softmax, Transpose,
};
use tinyq_ir::{DType, FusedActivation, Graph, Node, Op, Padding, Tensor};

const EPS: f32 = 1e-2;
const REL: f64 = 2e-2;
const ABS: f64 = 3e-3;

/// Uniform values in [-scale, scale] from a xorshift stream.
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32 * scale
        })
        .collect()
}

/// A one-node graph whose every input is a graph input (so each can be perturbed).
fn single(op: &Op, shapes: &[Vec<usize>], out: Option<Vec<usize>>) -> Option<Graph> {
    let mut g = Graph::default();
    let inputs: Vec<usize> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| g.add_tensor(Tensor::activation(format!("x{i}"), s.clone(), DType::F32)))
        .collect();
    let out = match out {
        Some(o) => o,
        None => {
            let refs: Vec<&[usize]> = shapes.iter().map(|s| &s[..]).collect();
            op.infer_shapes(&refs).ok()?.remove(0)
        }
    };
    if out.contains(&0) {
        return None;
    }
    let y = g.add_tensor(Tensor::activation("y", out, DType::F32));
    g.nodes.push(Node { name: "n".into(), op: op.clone(), inputs: inputs.clone(), outputs: vec![y] });
    g.inputs = inputs;
    g.outputs.push(y);
    Some(g)
}

/// Checks every input's gradient; returns Err on a mismatch. `scales[i]` sets input i's range.
fn check(
    op: Op,
    shapes: Vec<Vec<usize>>,
    out: Option<Vec<usize>>,
    seed: u64,
    scales: &[f32],
) -> Result<(), TestCaseError> {
    let Some(graph) = single(&op, &shapes, out) else { return Ok(()) };
    let plan = Plan::new(&graph).expect("plan");
    let mut data: Vec<Vec<f32>> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| values(s.iter().product(), seed + 17 * i as u64 + 1, scales[i.min(scales.len() - 1)]))
        .collect();
    let out_shape = graph.tensors[graph.outputs[0]].shape.clone();
    let run = |d: &[Vec<f32>]| -> Vec<f32> {
        let refs: Vec<&[f32]> = d.iter().map(|v| &v[..]).collect();
        plan.run(&refs).expect("run").remove(0)
    };
    let y = run(&data);
    let g = values(y.len(), seed ^ 0xABCD, 1.0);
    // Max-pool windows lying wholly in padding output -inf whatever the input: constant, left out.
    let loss = |y: &[f32]| -> f64 {
        y.iter().zip(&g).filter(|(a, _)| a.is_finite()).map(|(&a, &b)| a as f64 * b as f64).sum()
    };
    let l0 = loss(&y);
    let refs: Vec<&[f32]> = data.iter().map(|v| &v[..]).collect();
    let srefs: Vec<&[usize]> = shapes.iter().map(|s| &s[..]).collect();
    let grads = backward(&op, &refs, &srefs, &y, &out_shape, &g);
    prop_assert_eq!(grads.len(), data.len());
    let (mut total, mut skipped) = (0usize, 0usize);
    for k in 0..data.len() {
        prop_assert_eq!(grads[k].len(), data[k].len(), "input {} gradient length", k);
        for j in 0..data[k].len() {
            let orig = data[k][j];
            // One-sided and central differences of the loss for a step of `eps`.
            let mut slopes = |eps: f32| {
                data[k][j] = orig + eps;
                let lp = loss(&run(&data));
                data[k][j] = orig - eps;
                let lm = loss(&run(&data));
                data[k][j] = orig;
                let (e_hi, e_lo) = ((orig + eps) as f64 - orig as f64, orig as f64 - (orig - eps) as f64);
                ((lp - l0) / e_hi, (l0 - lm) / e_lo, (lp - lm) / (e_hi + e_lo))
            };
            let analytic = grads[k][j] as f64;
            let tol_for = |numeric: f64| ABS + REL * analytic.abs().max(numeric.abs());
            let (mut dp, mut dm, mut numeric) = slopes(EPS);
            // Kinks of two outputs on opposite sides of the point can cancel in `dp - dm` while
            // they add up in the central difference: a mismatch is looked at again with a step
            // eight times shorter, within which such kinks are far rarer; a wrong gradient
            // differs at every step.
            if (dp - dm).abs() <= tol_for(numeric) && (analytic - numeric).abs() > tol_for(numeric) {
                (dp, dm, numeric) = slopes(EPS / 8.0);
            }
            let tol = tol_for(numeric);
            total += 1;
            if (dp - dm).abs() > tol {
                skipped += 1;
                continue; // a kink within ±eps
            }
            prop_assert!(analytic.is_finite(), "{} input {} [{}]: gradient {}", op.name(), k, j, analytic);
            prop_assert!(
                (analytic - numeric).abs() <= tol,
                "{} input {} [{}]: analytic {} numeric {} (shapes {:?})",
                op.name(),
                k,
                j,
                analytic,
                numeric,
                shapes
            );
        }
    }
    // Kinks are rare: most coordinates must actually be compared.
    prop_assert!(skipped * 2 <= total + 2, "{}: skipped {} of {} coordinates", op.name(), skipped, total);
    Ok(())
}

fn act(i: u8) -> FusedActivation {
    [FusedActivation::None, FusedActivation::Relu, FusedActivation::Relu6, FusedActivation::ReluN1To1][i as usize % 4]
}

fn padding(kind: u8, pads: [usize; 4]) -> Padding {
    match kind % 3 {
        0 => Padding::Same,
        1 => Padding::Valid,
        _ => Padding::Explicit { top: pads[0], bottom: pads[1], left: pads[2], right: pads[3] },
    }
}

fn config() -> ProptestConfig {
    ProptestConfig { cases: 40, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn conv2d(n in 1usize..3, h in 1usize..6, w in 1usize..6, groups in 1usize..3, cg in 1usize..3, og in 1usize..3,
              kh in 1usize..4, kw in 1usize..4, stride in 1usize..3, dil in 1usize..3, pk in 0u8..3, pads in prop::array::uniform4(0usize..3),
              a in 0u8..4, bias: bool, seed: u64) {
        let op = Op::Conv2D(Conv2D { stride: [stride, stride], dilation: [dil, dil], padding: padding(pk, pads), activation: act(a) });
        let mut shapes = vec![vec![n, h, w, groups * cg], vec![groups * og, kh, kw, cg]];
        if bias { shapes.push(vec![groups * og]); }
        check(op, shapes, None, seed, &[1.0])?;
    }

    #[test]
    fn depthwise_conv2d(n in 1usize..3, h in 1usize..6, w in 1usize..6, c in 1usize..4, m in 1usize..3,
              kh in 1usize..4, kw in 1usize..4, stride in 1usize..3, dil in 1usize..3, pk in 0u8..3, pads in prop::array::uniform4(0usize..3),
              a in 0u8..4, bias: bool, seed: u64) {
        let conv = Conv2D { stride: [stride, stride], dilation: [dil, dil], padding: padding(pk, pads), activation: act(a) };
        let op = Op::DepthwiseConv2D(DepthwiseConv2D { conv, depth_multiplier: m });
        let mut shapes = vec![vec![n, h, w, c], vec![1, kh, kw, c * m]];
        if bias { shapes.push(vec![c * m]); }
        check(op, shapes, None, seed, &[1.0])?;
    }

    #[test]
    fn fully_connected(lead in prop::collection::vec(1usize..4, 1..3), inner in 1usize..6, units in 1usize..5,
                       keep: bool, a in 0u8..4, bias: bool, seed: u64) {
        let op = Op::FullyConnected(FullyConnected { activation: act(a), keep_num_dims: keep });
        let mut xs = lead.clone();
        xs.push(inner);
        let mut shapes = vec![xs, vec![units, inner]];
        if bias { shapes.push(vec![units]); }
        check(op, shapes, None, seed, &[1.0])?;
    }

    #[test]
    fn binary(dims in prop::collection::vec(1usize..4, 1..4), ma in prop::collection::vec(any::<bool>(), 4),
              mb in prop::collection::vec(any::<bool>(), 4), drop_a in 0usize..3, drop_b in 0usize..3,
              which in 0u8..3, a in 0u8..4, seed: u64) {
        let bcast = |mask: &[bool], drop: usize| -> Vec<usize> {
            let s: Vec<usize> = dims.iter().zip(mask).map(|(&d, &m)| if m { 1 } else { d }).collect();
            s[drop.min(s.len() - 1)..].to_vec()
        };
        let p = Binary { activation: act(a) };
        let op = match which { 0 => Op::Add(p), 1 => Op::Sub(p), _ => Op::Mul(p) };
        check(op, vec![bcast(&ma, drop_a), bcast(&mb, drop_b)], None, seed, &[1.0])?;
    }

    /// Max and Min of two inputs broadcast against each other (the gradient to the one taken).
    #[test]
    fn maximum_minimum(dims in prop::collection::vec(1usize..4, 1..4), ma in prop::collection::vec(any::<bool>(), 4),
                       mb in prop::collection::vec(any::<bool>(), 4), drop_a in 0usize..3, drop_b in 0usize..3,
                       max: bool, seed: u64) {
        let bcast = |mask: &[bool], drop: usize| -> Vec<usize> {
            let s: Vec<usize> = dims.iter().zip(mask).map(|(&d, &m)| if m { 1 } else { d }).collect();
            s[drop.min(s.len() - 1)..].to_vec()
        };
        let op = if max { Op::Maximum } else { Op::Minimum };
        check(op, vec![bcast(&ma, drop_a), bcast(&mb, drop_b)], None, seed, &[1.0])?;
    }

    /// Strided slices in either direction, with TFLite's masks (shrunk axes leave the output).
    #[test]
    fn strided_slice(dims in prop::collection::vec(1usize..5, 1..5), begin in prop::collection::vec(-5i32..5, 4),
                     end in prop::collection::vec(-5i32..6, 4), strides in prop::collection::vec(prop::sample::select(vec![-2, -1, 1, 1, 2, 3]), 4),
                     masks in prop::array::uniform3(0u32..16), seed: u64) {
        let r = dims.len();
        let t = tinyq_ir::op::StridedSliceTflite {
            begin: begin[..r].to_vec(),
            end: end[..r].to_vec(),
            strides: strides[..r].to_vec(),
            begin_mask: masks[0],
            end_mask: masks[1],
            shrink_axis_mask: masks[2] & ((1 << r) - 1),
        };
        let Ok(p) = tinyq_ir::op::StridedSlice::from_tflite(&dims, &t) else { return Ok(()) };
        check(Op::StridedSlice(p), vec![dims], None, seed, &[1.0])?;
    }

    /// Mirror padding (reflect: up to dim − 1 per side; symmetric: up to dim).
    #[test]
    fn mirror_pad(dims in prop::collection::vec(1usize..5, 1..4), raw in prop::collection::vec((0usize..5, 0usize..5), 3),
                  reflect: bool, seed: u64) {
        let cap = |d: usize| if reflect { d - 1 } else { d };
        let pads = dims.iter().zip(&raw).map(|(&d, &(a, b))| [a % (cap(d) + 1), b % (cap(d) + 1)]).collect();
        check(Op::MirrorPad(tinyq_ir::op::MirrorPad { pads, reflect }), vec![dims], None, seed, &[1.0])?;
    }

    /// PRelu: the data at full shape, the slope broadcasting to it (per channel, per row, one).
    #[test]
    fn prelu(dims in prop::collection::vec(1usize..4, 1..4), ms in prop::collection::vec(any::<bool>(), 4),
             drop in 0usize..3, seed: u64) {
        let slope: Vec<usize> = dims.iter().zip(&ms).map(|(&d, &m)| if m { 1 } else { d }).collect();
        let slope = slope[drop.min(slope.len() - 1)..].to_vec();
        check(Op::PRelu, vec![dims.clone(), slope], None, seed, &[1.0])?;
    }

    /// Nearest resize, up or down by any size, in the three TFLite coordinate modes.
    #[test]
    fn resize_nearest(n in 1usize..3, h in 1usize..5, w in 1usize..5, c in 1usize..3, oh in 1usize..8, ow in 1usize..8,
                      mode in 0u8..3, seed: u64) {
        let p = tinyq_ir::op::ResizeNearest { size: [oh, ow], align_corners: mode == 1, half_pixel_centers: mode == 2 };
        check(Op::ResizeNearest(p), vec![vec![n, h, w, c]], None, seed, &[1.0])?;
    }

    /// Bilinear resize, up or down by any size, in the three TFLite coordinate modes (linear in
    /// the input: the weights are the gradient).
    #[test]
    fn resize_bilinear(n in 1usize..3, h in 1usize..5, w in 1usize..5, c in 1usize..3, oh in 1usize..8, ow in 1usize..8,
                       mode in 0u8..3, seed: u64) {
        let p = tinyq_ir::op::ResizeNearest { size: [oh, ow], align_corners: mode == 1, half_pixel_centers: mode == 2 };
        check(Op::ResizeBilinear(p), vec![vec![n, h, w, c]], None, seed, &[1.0])?;
    }

    #[test]
    fn reduce_max(dims in prop::collection::vec(1usize..4, 1..5), axes_mask in prop::collection::vec(any::<bool>(), 5), keep: bool, seed: u64) {
        let axes: Vec<usize> = (0..dims.len()).filter(|&i| axes_mask[i]).collect();
        check(Op::ReduceMax(Mean { axes, keep_dims: keep }), vec![dims], None, seed, &[1.0])?;
    }

    #[test]
    fn concat(dims in prop::collection::vec(1usize..4, 1..4), axis in 0usize..4, sizes in prop::collection::vec(1usize..4, 1..4),
              a in 0u8..4, seed: u64) {
        let axis = axis % dims.len();
        let shapes: Vec<Vec<usize>> = sizes.iter().map(|&k| { let mut s = dims.clone(); s[axis] = k; s }).collect();
        check(Op::Concat(Concat { axis, activation: act(a) }), shapes, None, seed, &[1.0])?;
    }

    #[test]
    fn reshape(dims in prop::collection::vec(1usize..4, 1..4), seed: u64) {
        let n: usize = dims.iter().product();
        check(Op::Reshape, vec![dims], Some(vec![n]), seed, &[1.0])?;
    }

    #[test]
    fn transpose(dims in prop::collection::vec(1usize..4, 1..5), perm_seed in any::<prop::sample::Index>(), seed: u64) {
        let mut perm: Vec<usize> = (0..dims.len()).collect();
        let mut r = perm_seed.index(usize::MAX);
        for i in (1..perm.len()).rev() { perm.swap(i, r % (i + 1)); r /= i + 1; }
        check(Op::Transpose(Transpose { perm }), vec![dims], None, seed, &[1.0])?;
    }

    #[test]
    fn pad(dims in prop::collection::vec(1usize..4, 1..4), pads in prop::collection::vec((0usize..3, 0usize..3), 4), value in -1f32..1.0, seed: u64) {
        let pads: Vec<[usize; 2]> = pads[..dims.len()].iter().map(|&(a, b)| [a, b]).collect();
        check(Op::Pad(Pad { pads, value }), vec![dims], None, seed, &[1.0])?;
    }

    #[test]
    fn pool(n in 1usize..3, h in 1usize..6, w in 1usize..6, c in 1usize..3, fh in 1usize..4, fw in 1usize..4,
            stride in 1usize..3, pk in 0u8..3, pads in prop::array::uniform4(0usize..2), max: bool, a in 0u8..4, seed: u64) {
        let p = Pool2D { filter: [fh, fw], stride: [stride, stride], padding: padding(pk, pads), activation: act(a) };
        let op = if max { Op::MaxPool2D(p) } else { Op::AvgPool2D(p) };
        check(op, vec![vec![n, h, w, c]], None, seed, &[1.0])?;
    }

    #[test]
    fn mean(dims in prop::collection::vec(1usize..4, 1..5), axes_mask in prop::collection::vec(any::<bool>(), 5), keep: bool, seed: u64) {
        let axes: Vec<usize> = (0..dims.len()).filter(|&i| axes_mask[i]).collect();
        check(Op::Mean(Mean { axes, keep_dims: keep }), vec![dims], None, seed, &[1.0])?;
    }

    #[test]
    fn reduce_sum(dims in prop::collection::vec(1usize..4, 1..5), axes_mask in prop::collection::vec(any::<bool>(), 5), keep: bool, seed: u64) {
        let axes: Vec<usize> = (0..dims.len()).filter(|&i| axes_mask[i]).collect();
        check(Op::ReduceSum(Mean { axes, keep_dims: keep }), vec![dims], None, seed, &[1.0])?;
    }

}

proptest! {
    // Eleven ops share this test (Softmax drawn twice as often): 12 × 40 cases.
    #![proptest_config(ProptestConfig { cases: 480, ..config() })]

    #[test]
    fn elementwise(dims in prop::collection::vec(1usize..5, 1..4), which in 0u8..12, lo in -2f32..0.0, hi in 0f32..2.0,
                   alpha in -0.5f32..1.5, seed: u64) {
        let (op, scale) = match which {
            0 => (Op::Relu, 1.0),
            1 => (Op::Relu6, 8.0),
            2 => (Op::Clip(Clip { min: lo, max: hi }), 3.0),
            3 => (Op::LeakyRelu(LeakyRelu { alpha }), 1.0),
            4 => (Op::Sigmoid, 3.0),
            5 => (Op::Tanh, 2.0),
            6 => (Op::HardSwish, 5.0),
            7 => (Op::Elu, 3.0),
            8 => (Op::Abs, 2.0),
            9 => (Op::LogSoftmax, 2.0),
            _ => (Op::Softmax(Softmax { beta: alpha + 0.6 }), 2.0),
        };
        check(op, vec![dims], None, seed, &[scale])?;
    }
}

/// Ties (which finite differences cannot see) go to the first maximum in scan order.
#[test]
fn max_pool_ties_go_to_first_max() {
    let p = Pool2D { filter: [2, 2], stride: [1, 1], padding: Padding::Valid, activation: FusedActivation::None };
    let x = [0.5f32, 0.5, 0.5, 0.5, 0.2, 0.5];
    let (xs, os) = ([1usize, 2, 3, 1], [1usize, 1, 2, 1]);
    let grads = backward(&Op::MaxPool2D(p), &[&x], &[&xs], &[0.5, 0.5], &os, &[1.0, 2.0]);
    assert_eq!(grads, vec![vec![1.0, 2.0, 0.0, 0.0, 0.0, 0.0]]);
}

/// Two cases where kinks of several outputs cancel in the one-sided differences at the default
/// step (found by the property tests above): the shorter step resolves them.
#[test]
fn cancelling_kinks_are_looked_at_with_a_shorter_step() {
    let conv = Conv2D { stride: [1, 1], dilation: [1, 1], padding: padding(2, [0, 0, 1, 2]), activation: act(1) };
    check(Op::Conv2D(conv), vec![vec![1, 4, 4, 2], vec![2, 3, 1, 2], vec![2]], None, 7595769052624590265, &[1.0])
        .unwrap();
    let conv = Conv2D { stride: [1, 1], dilation: [2, 2], padding: padding(2, [1, 0, 1, 1]), activation: act(1) };
    let op = Op::DepthwiseConv2D(DepthwiseConv2D { conv, depth_multiplier: 2 });
    check(op, vec![vec![2, 5, 5, 3], vec![1, 2, 2, 6]], None, 14402214552336456934, &[1.0]).unwrap();
}

proptest! {
    /// One row of a dense layer: the weight gradient is exactly the outer product `go ⊗ x`, the
    /// bias gradient `go`, and the input gradient the sum over units in order, as the sums over
    /// rows give with one term.
    #[test]
    fn dense_one_row_is_exact(inner in 1usize..40, units in 1usize..20, zeros in any::<u32>(), seed: u64) {
        let (x, w) = (values(inner, seed, 1.0), values(units * inner, seed ^ 1, 1.0));
        let go: Vec<f32> = values(units, seed ^ 2, 1.0)
            .into_iter()
            .enumerate()
            .map(|(o, g)| if zeros >> (o % 32) & 1 == 1 { 0.0 } else { g })
            .collect();
        let op = Op::FullyConnected(FullyConnected { activation: FusedActivation::None, keep_num_dims: false });
        let out = vec![0f32; units];
        let grads = backward(&op, &[&x, &w, &vec![0f32; units]], &[&[1, inner], &[units, inner], &[units]], &out, &[1, units], &go);
        let mut dx = vec![0f32; inner];
        for o in 0..units {
            if go[o] != 0.0 {
                (0..inner).for_each(|i| dx[i] += go[o] * w[o * inner + i]);
            }
        }
        let dw: Vec<f32> = (0..units * inner).map(|j| if go[j / inner] == 0.0 { 0.0 } else { go[j / inner] * x[j % inner] }).collect();
        prop_assert_eq!(&grads[0], &dx);
        prop_assert_eq!(&grads[1], &dw);
        prop_assert_eq!(&grads[2], &go);
    }
}

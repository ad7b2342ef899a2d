//! The training tape against finite differences, fake quantization against the integer engine,
//! determinism across thread counts, and that training and range learning do what they claim.

use tinyq_float::Plan;
use tinyq_int8::{Int8Plan, TensorValue};
use tinyq_ir::op::{Binary, Conv2D, DepthwiseConv2D, FullyConnected, Mean, Softmax};
use tinyq_ir::{DType, FusedActivation, Graph, Node, Op, Padding, Tensor, TensorData};
use tinyq_quant::PtqConfig;
use tinyq_train::{loss_and_grad, Example, Loss, OptimizerKind, QatConfig, RangeMode, Target, Trainer};

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

const PARAM_SHAPES: [&[usize]; 6] = [&[4, 3, 3, 2], &[4], &[1, 3, 3, 4], &[4], &[3, 4], &[3]];

/// conv (SAME) → tanh → depthwise (VALID) → add residual-free bias path → mean → dense [→ softmax].
/// `act` is the fused activation of the convolutions.
fn net(params: &[Vec<f32>], act: FusedActivation, softmax: bool) -> Graph {
    let mut g = Graph::default();
    let x = g.add_tensor(Tensor::activation("x", vec![1, 6, 6, 2], DType::F32));
    let p: Vec<usize> = params
        .iter()
        .zip(PARAM_SHAPES)
        .enumerate()
        .map(|(k, (v, s))| g.add_tensor(Tensor::constant(format!("p{k}"), s.to_vec(), TensorData::F32(v.clone()))))
        .collect();
    let node = |g: &mut Graph, name: &str, op: Op, inputs: Vec<usize>, shape: Vec<usize>| {
        let y = g.add_tensor(Tensor::activation(name, shape, DType::F32));
        g.nodes.push(Node { name: name.into(), op, inputs, outputs: vec![y] });
        y
    };
    let conv = Conv2D { stride: [1, 1], dilation: [1, 1], padding: Padding::Same, activation: act };
    let c1 = node(&mut g, "conv", Op::Conv2D(conv.clone()), vec![x, p[0], p[1]], vec![1, 6, 6, 4]);
    let t1 = node(&mut g, "tanh", Op::Tanh, vec![c1], vec![1, 6, 6, 4]);
    let dw = DepthwiseConv2D { conv: Conv2D { padding: Padding::Valid, ..conv }, depth_multiplier: 1 };
    let d1 = node(&mut g, "dw", Op::DepthwiseConv2D(dw), vec![t1, p[2], p[3]], vec![1, 4, 4, 4]);
    let a1 = node(&mut g, "add", Op::Add(Binary { activation: FusedActivation::None }), vec![d1, d1], vec![1, 4, 4, 4]);
    let m1 = node(&mut g, "mean", Op::Mean(Mean { axes: vec![1, 2], keep_dims: false }), vec![a1], vec![1, 4]);
    let fc = Op::FullyConnected(FullyConnected { activation: FusedActivation::None, keep_num_dims: false });
    let mut out = node(&mut g, "logits", fc, vec![m1, p[4], p[5]], vec![1, 3]);
    if softmax {
        out = node(&mut g, "probs", Op::Softmax(Softmax { beta: 1.0 }), vec![out], vec![1, 3]);
    }
    g.inputs = vec![x];
    g.outputs = vec![out];
    g
}

fn initial_params(seed: u64) -> Vec<Vec<f32>> {
    PARAM_SHAPES.iter().enumerate().map(|(k, s)| values(s.iter().product(), seed + k as u64, 0.6)).collect()
}

fn cfg(fake_quant: bool, loss: Loss, optimizer: OptimizerKind) -> QatConfig {
    QatConfig { ptq: PtqConfig::default(), fake_quant, ranges: RangeMode::Learned, ema_momentum: 0.9, optimizer, loss }
}

/// Min/max of every activation over `samples` (what PTQ's min/max calibration would choose).
fn calibrate(g: &Graph, samples: &[Vec<f32>]) -> Vec<Option<(f32, f32)>> {
    let plan = Plan::new(g).unwrap();
    let mut r: Vec<Option<(f32, f32)>> = vec![None; g.tensors.len()];
    for s in samples {
        plan.run_observed(&[s], &mut |t, v| {
            let (lo, hi) =
                v.iter().fold(r[t].unwrap_or((f32::INFINITY, f32::NEG_INFINITY)), |(a, b), &x| (a.min(x), b.max(x)));
            r[t] = Some((lo, hi));
        })
        .unwrap();
    }
    r
}

fn inputs(n: usize, seed: u64) -> Vec<Vec<f32>> {
    (0..n).map(|i| values(72, seed * 1000 + i as u64, 1.0)).collect()
}

#[test]
fn tape_gradients_match_finite_differences() {
    let params = initial_params(3);
    let xs = inputs(3, 1);
    let labels = [0usize, 2, 1];
    let batch: Vec<Example> =
        xs.iter().zip(labels).map(|(x, c)| Example { inputs: vec![x], target: Target::Class(c) }).collect();
    let mean_loss = |params: &[Vec<f32>]| -> f64 {
        let t = Trainer::new(
            &net(params, FusedActivation::None, true),
            vec![],
            cfg(false, Loss::CrossEntropy, OptimizerKind::adam()),
        )
        .unwrap();
        xs.iter()
            .zip(labels)
            .map(|(x, c)| loss_and_grad(Loss::CrossEntropy, &t.predict(&[x]).unwrap(), Target::Class(c)).unwrap().0)
            .sum::<f64>()
            / 3.0
    };
    let trainer = Trainer::new(
        &net(&params, FusedActivation::None, true),
        vec![],
        cfg(false, Loss::CrossEntropy, OptimizerKind::adam()),
    )
    .unwrap();
    let grads = trainer.gradients(&batch).unwrap();
    assert_eq!(grads.len(), 6, "every weight and bias is trainable");
    let mut checked = 0;
    for (k, g) in grads.iter().enumerate() {
        for i in (0..g.len()).step_by(3) {
            let eps = 1e-2f32;
            let mut p = params.clone();
            p[k][i] += eps;
            let lp = mean_loss(&p);
            p[k][i] -= 2.0 * eps;
            let lm = mean_loss(&p);
            let fd = (lp - lm) / (2.0 * eps as f64);
            assert!(
                (fd - g[i] as f64).abs() <= 2e-3 + 2e-2 * fd.abs(),
                "param {k}[{i}]: tape {} vs finite difference {fd}",
                g[i]
            );
            checked += 1;
        }
    }
    assert!(checked > 30);
}

/// The fake-quantized forward pass computes what the exported int8 graph computes, to within
/// the rounding differences of integer requantization.
#[test]
fn fake_quant_forward_matches_the_integer_engine() {
    let params = initial_params(5);
    let g = net(&params, FusedActivation::Relu6, false);
    let xs = inputs(20, 2);
    let ranges = calibrate(&g, &xs);
    let trainer = Trainer::new(&g, ranges, cfg(true, Loss::Mse, OptimizerKind::adam())).unwrap();
    let q = trainer.quantized(&PtqConfig::default()).unwrap();
    let engine = Int8Plan::new(&q).unwrap();
    let inq = q.tensors[q.inputs[0]].qparams.clone().unwrap();
    let outq = q.tensors[q.outputs[0]].qparams.clone().unwrap();
    let float = Plan::new(&g).unwrap();
    let (mut worst_fq, mut worst_float) = (0f32, 0f32);
    for x in &xs {
        let xi: Vec<i8> =
            x.iter().map(|&v| ((v / inq.scale[0]).round() as i32 + inq.zero_point[0]).clamp(-128, 127) as i8).collect();
        let TensorValue::I8(out) = &engine.run(&[TensorValue::I8(xi)]).unwrap()[0] else { panic!("int8 output") };
        let real: Vec<f32> = out.iter().map(|&v| (v as i32 - outq.zero_point[0]) as f32 * outq.scale[0]).collect();
        let fq = trainer.predict(&[x]).unwrap();
        let fl = float.run(&[x]).unwrap().remove(0);
        for k in 0..3 {
            worst_fq = worst_fq.max((fq[k] - real[k]).abs() / outq.scale[0]);
            worst_float = worst_float.max((fl[k] - real[k]).abs() / outq.scale[0]);
        }
    }
    assert!(worst_fq <= 1.0 + 1e-3, "fake quantization is {worst_fq} LSB from the int8 engine");
    // The comparison has teeth: the plain float model is further from the int8 result.
    assert!(worst_float > worst_fq, "float {worst_float} LSB vs fake-quant {worst_fq} LSB");
}

fn train(threads: usize, steps: usize, mode: RangeMode, optimizer: OptimizerKind) -> (Trainer, Vec<f64>) {
    let teacher = net(&initial_params(11), FusedActivation::Relu, false);
    let xs = inputs(64, 4);
    let plan = Plan::new(&teacher).unwrap();
    let targets: Vec<Vec<f32>> = xs.iter().map(|x| plan.run(&[x]).unwrap().remove(0)).collect();
    let student = net(&initial_params(12), FusedActivation::Relu, false);
    let ranges = calibrate(&student, &xs);
    let mut c = cfg(true, Loss::Mse, optimizer);
    c.ranges = mode;
    let mut t = Trainer::new(&student, ranges, c).unwrap();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let mut losses = Vec::new();
    pool.install(|| {
        for step in 0..steps {
            let order = tinyq_train::shuffled(xs.len(), 9, step);
            let batch: Vec<Example> = order[..16]
                .iter()
                .map(|&i| Example { inputs: vec![&xs[i]], target: Target::Values(&targets[i]) })
                .collect();
            losses.push(t.step(&batch, 0.01).unwrap().loss / 16.0);
        }
    });
    (t, losses)
}

#[test]
fn training_is_deterministic_across_thread_counts() {
    let (a, _) = train(1, 6, RangeMode::Learned, OptimizerKind::adam());
    let (b, _) = train(3, 6, RangeMode::Learned, OptimizerKind::adam());
    let bits = |t: &Trainer| {
        t.parameters().flat_map(|(_, v)| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()).collect::<Vec<_>>()
    };
    assert_eq!(bits(&a), bits(&b));
    assert_eq!(a.ranges(), b.ranges());
    assert_ne!(
        bits(&a),
        bits(&train(1, 5, RangeMode::Learned, OptimizerKind::adam()).0),
        "the steps changed the weights"
    );
}

#[test]
fn quantization_aware_training_reduces_the_loss() {
    for (mode, opt) in
        [(RangeMode::Learned, OptimizerKind::adam()), (RangeMode::Ema, OptimizerKind::Sgd { momentum: 0.9 })]
    {
        let (_, losses) = train(2, 120, mode, opt);
        let first: f64 = losses[..10].iter().sum();
        let last: f64 = losses[losses.len() - 10..].iter().sum();
        assert!(last < 0.5 * first, "{mode:?}: loss went from {first} to {last}");
    }
}

/// A range calibrated far too wide shrinks when learned, and follows the data under EMA.
#[test]
fn ranges_learn_and_track() {
    let g = net(&initial_params(21), FusedActivation::None, false);
    let xs = inputs(32, 6);
    let plan = Plan::new(&g).unwrap();
    let targets: Vec<Vec<f32>> = xs.iter().map(|x| plan.run(&[x]).unwrap().remove(0)).collect();
    let calibrated = calibrate(&g, &xs);
    let conv = g.nodes[0].outputs[0];
    let (lo, hi) = calibrated[conv].unwrap();
    for mode in [RangeMode::Learned, RangeMode::Ema] {
        let mut wide = calibrated.clone();
        wide[conv] = Some((lo * 20.0, hi * 20.0));
        let mut c = cfg(true, Loss::Mse, OptimizerKind::adam());
        c.ranges = mode;
        let mut t = Trainer::new(&g, wide, c).unwrap();
        let batch: Vec<Example> =
            xs.iter().zip(&targets).map(|(x, y)| Example { inputs: vec![x], target: Target::Values(y) }).collect();
        for _ in 0..60 {
            t.step(&batch, 0.05).unwrap();
        }
        let (nlo, nhi) = t.ranges()[conv].unwrap();
        assert!(nhi - nlo < 0.5 * 20.0 * (hi - lo), "{mode:?}: [{nlo}, {nhi}] from [{}, {}]", lo * 20.0, hi * 20.0);
        if mode == RangeMode::Ema {
            // The weights moved too: compare with the range the trained layer produces now.
            let (dlo, dhi) = calibrate(&t.float_graph(), &xs)[conv].unwrap();
            let tol = 0.1 * (dhi - dlo);
            assert!((nhi - dhi).abs() < tol && (nlo - dlo).abs() < tol, "EMA [{nlo}, {nhi}] vs data [{dlo}, {dhi}]");
        }
    }
}

#[test]
fn bad_targets_and_graphs_are_errors() {
    let g = net(&initial_params(1), FusedActivation::None, true);
    let t = Trainer::new(&g, vec![], cfg(false, Loss::CrossEntropy, OptimizerKind::adam())).unwrap();
    let x = values(72, 1, 1.0);
    let err = t.gradients(&[Example { inputs: vec![&x], target: Target::Class(7) }]).unwrap_err();
    assert!(err.to_string().contains("cross-entropy"), "{err}");
    let short = vec![0f32; 5];
    let err = t.gradients(&[Example { inputs: vec![&short], target: Target::Class(0) }]).unwrap_err();
    assert!(err.to_string().contains("input `x`"), "{err}");
    let mut two = g.clone();
    two.outputs.push(two.nodes[0].outputs[0]);
    assert!(Trainer::new(&two, vec![], cfg(false, Loss::CrossEntropy, OptimizerKind::adam())).is_err());
}

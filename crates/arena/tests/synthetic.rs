//! Plans a small INT8 model written by tinyq's own TFLite writer and checks the
//! numbers against a hand walk through TFLM's allocator (see docs/arena.md).

use tinyq_arena::{plan_arena, plan_arena_with, PeakPhase, PersistentKind, PlanConfig, PointerWidth};
use tinyq_ir::op::FullyConnected;
use tinyq_ir::{DType, Graph, Node, Op, QParams, Tensor, TensorData};

fn q(scale: f32, zp: i32) -> Option<QParams> {
    Some(QParams { scale: vec![scale], zero_point: vec![zp], axis: None })
}

/// in [1,4] -> FC(8) -> h [1,8] -> FC(2) -> out [1,2], all int8, per-tensor weights.
fn two_dense() -> Vec<u8> {
    let mut g = Graph::default();
    let x = g.add_tensor(Tensor { qparams: q(0.05, -3), ..Tensor::activation("x", vec![1, 4], DType::I8) });
    g.inputs.push(x);
    let mut prev = x;
    for (k, (n_in, n_out)) in [(4usize, 8usize), (8, 2)].into_iter().enumerate() {
        let w = g.add_tensor(Tensor {
            qparams: q(0.01, 0),
            ..Tensor::constant(format!("w{k}"), vec![n_out, n_in], TensorData::I8(vec![1; n_in * n_out]))
        });
        let b = g.add_tensor(Tensor {
            qparams: q(0.0005, 0),
            ..Tensor::constant(format!("b{k}"), vec![n_out], TensorData::I32(vec![0; n_out]))
        });
        let y = g.add_tensor(Tensor {
            qparams: q(0.1, 5),
            ..Tensor::activation(format!("y{k}"), vec![1, n_out], DType::I8)
        });
        g.nodes.push(Node {
            name: format!("y{k}"),
            op: Op::FullyConnected(FullyConnected::default()),
            inputs: vec![prev, w, b],
            outputs: vec![y],
        });
        prev = y;
    }
    g.outputs.push(prev);
    tinyq_tflite::write_tflite(&g).expect("writing the test model")
}

#[test]
fn two_dense_layers_64_bit_host() {
    let plan = plan_arena(&two_dense(), PointerWidth::Bits64).unwrap();
    println!("{}", plan.summary());
    // Three 16-byte activations; x and y1 never live together, so two slots.
    assert_eq!(plan.head_bytes, 32);
    assert_eq!(plan.per_step_live_bytes, vec![16, 32, 32]);
    assert_eq!(plan.per_tensor.len(), 3);
    let x = &plan.per_tensor[0];
    assert_eq!((x.first_use, x.last_use, x.offset), (0, 1, 0));
    // Tail, by hand: allocator objects 104 + 72 + 272 + 16, SubgraphAllocations 24,
    // 7 eval tensors * 24, 2 nodes * 64, 2 * 32 FC options, 2 * 72 op data (16-aligned),
    // then the input/output TfLiteTensor arrays, tensors and quantization.
    assert_eq!(plan.persistent[&PersistentKind::AllocatorObjects].bytes, 464);
    assert_eq!(plan.persistent[&PersistentKind::EvalTensors].bytes, 7 * 24);
    assert_eq!(plan.persistent[&PersistentKind::NodeAndRegistrations].bytes, 2 * 64);
    assert_eq!(plan.persistent[&PersistentKind::BuiltinData].bytes, 64);
    assert_eq!(plan.persistent[&PersistentKind::OpData].bytes, 160);
    assert_eq!(plan.persistent[&PersistentKind::IoTensors].bytes, 128);
    assert_eq!(plan.tail_bytes, 1232);
    // The first FC's Prepare holds 4 temporary quantized TfLiteTensors next to the
    // scratch-request area: that, not the steady state, sets the arena.  With a
    // 16-aligned arena end that needs 1584 bytes, but an arena of 1576 (end at 8
    // mod 16) pads the tail less and works too; TFLM's Python interpreter agrees.
    assert_eq!(plan.peak_phase, PeakPhase::Prepare { node: 0 });
    assert_eq!(plan.total_bytes, 1576);
    assert!(plan.unknown_ops.is_empty());
}

#[test]
fn pointer_width_changes_the_tail_only() {
    let bytes = two_dense();
    let p64 = plan_arena_with(&bytes, &PlanConfig::firmware(PointerWidth::Bits64)).unwrap();
    let p32 = plan_arena_with(&bytes, &PlanConfig::firmware(PointerWidth::Bits32)).unwrap();
    assert_eq!(p64.head_bytes, p32.head_bytes);
    assert_eq!(p64.per_tensor, p32.per_tensor);
    assert!(p32.tail_bytes < p64.tail_bytes, "{} vs {}", p32.tail_bytes, p64.tail_bytes);
    // 32-bit: eval tensors are 12 bytes, nodes 32.
    assert_eq!(p32.persistent[&PersistentKind::EvalTensors].bytes, 7 * 12);
    assert_eq!(p32.persistent[&PersistentKind::NodeAndRegistrations].bytes, 2 * 32);
    assert!(p32.total_bytes < p64.total_bytes);
    // The Python host's recording allocator and compression build only add.
    let host = plan_arena(&bytes, PointerWidth::Bits64).unwrap();
    assert!(host.tail_bytes > p64.tail_bytes);
}

//! Reverse-mode gradients of single ops, mirroring the forward kernels in `ops` (NHWC, same
//! index conventions). Each function takes the op's inputs, the forward output and the gradient
//! of the loss w.r.t. that output, and returns the gradient w.r.t. every input (constants such
//! as weights and bias included), in input order.
//!
//! Fused activations (and the plain ReLU/Relu6/Clip ops) mask the gradient by the forward
//! output: it passes only where the output lies strictly inside the clamp interval. Max pooling
//! sends the gradient to the first maximum of the window in the forward's scan order.
//!
//! Quantize and Dequantize have no float gradient here (the float engine refuses them too);
//! [`backward`] panics on them.

pub mod activation;
pub mod binary;
pub mod conv;
pub mod data_movement;
pub mod fully_connected;
pub mod pool;
pub mod reduce;

use tinyq_ir::{FusedActivation, Op};

/// Gradient of a fused activation, applied in place to `grad` given the forward output.
pub fn mask_activation(grad: &mut [f32], output: &[f32], act: FusedActivation) {
    if act == FusedActivation::None {
        return;
    }
    let (lo, hi) = act.range();
    grad.iter_mut().zip(output).for_each(|(g, &o)| {
        if !(o > lo && o < hi) {
            *g = 0.0;
        }
    });
}

/// Gradients w.r.t. every input of `op` (same order and length as `inputs`).
///
/// Panics on `Quantize`/`Dequantize`, which have no float gradient.
pub fn backward(
    op: &Op,
    inputs: &[&[f32]],
    input_shapes: &[&[usize]],
    output: &[f32],
    output_shape: &[usize],
    grad_output: &[f32],
) -> Vec<Vec<f32>> {
    let x = inputs;
    let s = input_shapes;
    let go = grad_output;
    let masked = |act: FusedActivation| {
        let mut g = go.to_vec();
        mask_activation(&mut g, output, act);
        g
    };
    match op {
        Op::Conv2D(p) => conv::conv2d(x[0], s[0], x[1], s[1], x.len() > 2, p, output_shape, &masked(p.activation)),
        Op::DepthwiseConv2D(p) => {
            conv::depthwise_conv2d(x[0], s[0], x[1], s[1], x.len() > 2, p, output_shape, &masked(p.conv.activation))
        }
        Op::FullyConnected(p) => fully_connected::fully_connected(x[0], x[1], s[1], x.len() > 2, &masked(p.activation)),
        Op::Add(p) => binary::add(s[0], s[1], output_shape, &masked(p.activation)),
        Op::Sub(p) => binary::sub(s[0], s[1], output_shape, &masked(p.activation)),
        Op::Mul(p) => binary::mul(x[0], s[0], x[1], s[1], output_shape, &masked(p.activation)),
        Op::Maximum => binary::extremum(x[0], s[0], x[1], s[1], output_shape, go, |a, b| a > b),
        Op::Minimum => binary::extremum(x[0], s[0], x[1], s[1], output_shape, go, |a, b| a < b),
        Op::Concat(p) => data_movement::concat(s, p.axis, &masked(p.activation)),
        Op::Reshape => vec![go.to_vec()],
        Op::Transpose(p) => vec![data_movement::transpose(s[0], &p.perm, go)],
        Op::StridedSlice(p) => vec![data_movement::gather_back(s[0], &p.source_indices(s[0]), go)],
        Op::MirrorPad(p) => vec![data_movement::gather_back(s[0], &p.source_indices(s[0]), go)],
        Op::Pad(p) => vec![data_movement::pad(s[0], &p.pads, output_shape, go)],
        Op::ResizeNearest(p) => vec![data_movement::resize_nearest(s[0], p, go)],
        Op::ResizeBilinear(p) => vec![data_movement::resize_bilinear(s[0], p, go)],
        Op::MaxPool2D(p) => vec![pool::max_pool(x[0], s[0], p, output_shape, &masked(p.activation))],
        Op::AvgPool2D(p) => vec![pool::average_pool(s[0], p, output_shape, &masked(p.activation))],
        Op::Mean(p) => vec![reduce::mean(s[0], &p.axes, go)],
        Op::ReduceSum(p) => vec![reduce::sum(s[0], &p.axes, go)],
        Op::ReduceMax(p) => vec![reduce::reduce_max(x[0], s[0], &p.axes, output, go)],
        Op::Relu => vec![activation::clamp(output, go, 0.0, f32::INFINITY)],
        Op::Relu6 => vec![activation::clamp(output, go, 0.0, 6.0)],
        Op::Clip(c) => vec![activation::clip(x[0], go, c.min, c.max)],
        Op::LeakyRelu(p) => vec![activation::leaky_relu(x[0], go, p.alpha)],
        Op::PRelu => binary::prelu(x[0], s[0], x[1], s[1], output_shape, go),
        Op::Elu => vec![activation::elu(x[0], go)],
        Op::Abs => vec![activation::abs(x[0], go)],
        Op::Sigmoid => vec![activation::sigmoid(output, go)],
        Op::Tanh => vec![activation::tanh(output, go)],
        Op::HardSwish => vec![activation::hard_swish(x[0], go)],
        Op::Softmax(p) => vec![activation::softmax(output, *s[0].last().unwrap_or(&1), p.beta, go)],
        Op::LogSoftmax => vec![activation::log_softmax(output, *s[0].last().unwrap_or(&1), go)],
        Op::Quantize | Op::Dequantize => panic!("{} has no float gradient", op.name()),
    }
}

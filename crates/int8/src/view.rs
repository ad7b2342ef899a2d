//! A read-only view of a prepared plan for code generators: every step in execution order with the
//! parameters its prepare computed (fixed-point multipliers and shifts, offsets, activation
//! ranges, weights), so a generator emits the same arithmetic without repeating any float →
//! fixed-point work.
//!
//! Elementwise int8 → int8 maps (RELU, RELU6, clip, LEAKY_RELU, ELU, LOGISTIC, TANH, HARD_SWISH and
//! the int8 requantizing QUANTIZE) are described by their table: the step evaluated on all 256
//! input values by the engine's own kernel, so a table lookup is that kernel bit for bit.

use tinyq_ir::TensorId;
use tinyq_kernels::add::AddParams;
use tinyq_kernels::concatenation::ConcatenationParams;
use tinyq_kernels::conv::ConvPerChannelParams;
use tinyq_kernels::depthwise_conv::DepthwiseConvPerChannelParams;
use tinyq_kernels::fully_connected::{FullyConnectedParams, FullyConnectedPerChannelParams};
use tinyq_kernels::mean::MeanParams;
use tinyq_kernels::mul::MulParams;
use tinyq_kernels::pad::PadParams;
use tinyq_kernels::pooling::PoolParams;
use tinyq_kernels::softmax::SoftmaxParams;
use tinyq_kernels::transpose::TransposeParams;

use crate::ops::{self, Kernel};
use crate::{Int8Plan, TensorValue};

/// The weights and per-channel output stage of a conv-like layer.
#[derive(Clone, Copy)]
pub struct PerChannel<'a> {
    pub multiplier: &'a [i32],
    pub shift: &'a [i32],
    pub filter: &'a [i8],
    pub bias: Option<&'a [i32]>,
}

/// One prepared int8 step, as a generator sees it.
#[derive(Clone)]
pub enum StepKind<'a> {
    Conv2D(&'a ConvPerChannelParams, PerChannel<'a>),
    DepthwiseConv2D(&'a DepthwiseConvPerChannelParams, PerChannel<'a>),
    FullyConnected(&'a FullyConnectedParams, &'a [i8], Option<&'a [i32]>),
    FullyConnectedPerChannel(&'a FullyConnectedPerChannelParams, PerChannel<'a>),
    /// `broadcast`: the inputs do not both have the output's shape.
    Add {
        params: &'a AddParams,
        broadcast: bool,
    },
    Sub {
        params: &'a AddParams,
        broadcast: bool,
    },
    Mul {
        params: &'a MulParams,
        broadcast: bool,
    },
    MaxPool(&'a PoolParams),
    AveragePool(&'a PoolParams),
    Mean(&'a MeanParams),
    Concat(&'a ConcatenationParams),
    Reshape,
    Transpose(&'a TransposeParams),
    Pad {
        params: &'a PadParams,
        value: i8,
    },
    Softmax(&'a SoftmaxParams),
    /// An elementwise int8 → int8 map: `output[i] = table[input[i] + 128]`.
    Table(Box<[i8; 256]>),
    /// A step no generator view exists for (int16 and float layers, PRELU, …), by kind.
    Other(&'static str),
}

/// A step with the tensors it reads (weights excluded) and writes.
pub struct StepView<'a> {
    pub kind: StepKind<'a>,
    pub inputs: &'a [TensorId],
    pub output: TensorId,
}

impl Int8Plan {
    /// The prepared steps in execution order.
    pub fn steps(&self) -> Vec<StepView<'_>> {
        self.steps.iter().map(|s| StepView { kind: kind(s), inputs: &s.inputs, output: s.output }).collect()
    }
}

fn per_channel<'a, P>(k: &'a crate::ops::conv::PerChannelKernel<P, i32>) -> PerChannel<'a> {
    PerChannel { multiplier: &k.multiplier, shift: &k.shift, filter: &k.filter, bias: k.bias.as_deref() }
}

/// The step evaluated on every int8 value.
fn table(step: &ops::Step) -> Box<[i8; 256]> {
    let all = TensorValue::I8((i8::MIN..=i8::MAX).collect());
    let mut out = TensorValue::I8(vec![0; 256]);
    ops::eval(step, &[&all], &mut out);
    let mut t = Box::new([0i8; 256]);
    t.copy_from_slice(out.as_i8().expect("int8 output"));
    t
}

fn kind(step: &ops::Step) -> StepKind<'_> {
    use crate::ops::activation::Activation;
    use crate::ops::quantize::Quantize;
    match &step.kernel {
        Kernel::Conv2D(k) => StepKind::Conv2D(&k.reference.params, per_channel(&k.reference)),
        Kernel::DepthwiseConv2D(k) => StepKind::DepthwiseConv2D(&k.reference.params, per_channel(&k.reference)),
        Kernel::FullyConnected(k) => k.view(),
        Kernel::Binary(k) => k.view(),
        Kernel::Pool(p) => p.view(),
        Kernel::Mean(m) => StepKind::Mean(m.params()),
        Kernel::Concat(c) => StepKind::Concat(c.params()),
        Kernel::Reshape => StepKind::Reshape,
        Kernel::Transpose(t) => StepKind::Transpose(t.params()),
        Kernel::Pad(p) => StepKind::Pad { params: p.params(), value: p.value() },
        Kernel::Activation(Activation::Softmax(p)) => StepKind::Softmax(p),
        Kernel::Activation(Activation::LogSoftmax(_)) => StepKind::Other("LOG_SOFTMAX"),
        Kernel::Activation(_) | Kernel::Quantize(Quantize::Requantize(_)) => StepKind::Table(table(step)),
        Kernel::Quantize(_) => StepKind::Other("QUANTIZE (to or from a float or int16 tensor)"),
        Kernel::Conv2D16(_) | Kernel::DepthwiseConv2D16(_) | Kernel::FullyConnected16(_) => {
            StepKind::Other("16x8 layer")
        }
        Kernel::Add16(_) | Kernel::Concat16(_) | Kernel::Reshape16 | Kernel::Pad16(_) => {
            StepKind::Other("int16 tensor")
        }
        Kernel::Pool16(_) | Kernel::Mean16(_) => StepKind::Other("int16 tensor"),
        Kernel::PRelu(_) => StepKind::Other("PRELU"),
        Kernel::ResizeNearest(_) => StepKind::Other("RESIZE_NEAREST_NEIGHBOR"),
        Kernel::ReduceMax(_) => StepKind::Other("REDUCE_MAX"),
        Kernel::StridedSlice(_) => StepKind::Other("STRIDED_SLICE"),
        Kernel::MirrorPad(_) => StepKind::Other("MIRROR_PAD"),
        Kernel::ResizeBilinear(_) => StepKind::Other("RESIZE_BILINEAR"),
        Kernel::Dequantize(_) => StepKind::Other("DEQUANTIZE"),
        Kernel::FloatConv(_)
        | Kernel::FloatFullyConnected(_)
        | Kernel::FloatPad(_)
        | Kernel::FloatReshape
        | Kernel::FloatTranspose(_) => StepKind::Other("float32 layer"),
    }
}

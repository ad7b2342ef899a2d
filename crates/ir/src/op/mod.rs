//! The closed operator set, in TFLite's dialect: NHWC activations, weights OHWI (conv),
//! `[1, H, W, C·M]` (depthwise) and `[out, in]` (fully connected).
//!
//! Each family lives in its own module with its parameters, its shape rule and links to the specs
//! it follows. Matches on [`Op`] are written without a catch-all arm so that a new variant makes
//! the compiler list every place that must learn about it.

mod activation;
mod binary;
mod conv;
mod data_movement;
mod fully_connected;
mod pool;
mod reduce;
mod s4;

pub use activation::{Clip, LeakyRelu, Softmax};
pub use binary::{broadcast_shapes, Binary};
pub use conv::{Conv2D, DepthwiseConv2D};
pub use data_movement::{Concat, MirrorPad, Pad, ResizeNearest, StridedSlice, StridedSliceTflite, Transpose};
pub use fully_connected::FullyConnected;
pub use pool::Pool2D;
pub use reduce::Mean;

/// An activation applied to an op's output before it is stored (TFLite `fused_activation_function`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FusedActivation {
    #[default]
    None,
    Relu,
    Relu6,
    ReluN1To1,
}

impl FusedActivation {
    /// The output interval the activation clamps to.
    pub fn range(self) -> (f32, f32) {
        match self {
            FusedActivation::None => (f32::NEG_INFINITY, f32::INFINITY),
            FusedActivation::Relu => (0.0, f32::INFINITY),
            FusedActivation::Relu6 => (0.0, 6.0),
            FusedActivation::ReluN1To1 => (-1.0, 1.0),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FusedActivation::None => "",
            FusedActivation::Relu => "RELU",
            FusedActivation::Relu6 => "RELU6",
            FusedActivation::ReluN1To1 => "RELU_N1_TO_1",
        }
    }
}

/// Spatial padding of convolutions and pools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// TFLite SAME: output `ceil(in / stride)`, the odd pixel of padding goes bottom/right.
    Same,
    Valid,
    /// Explicit pixels; TFLite cannot express it directly (export adds a PAD).
    Explicit {
        top: usize,
        bottom: usize,
        left: usize,
        right: usize,
    },
}

/// Resolved geometry of one spatial axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Axis {
    pub out: usize,
    /// Padding before the first input element.
    pub pad_before: usize,
}

impl Padding {
    /// Output size and leading padding along height (`dim = 0`) or width (`dim = 1`).
    pub fn resolve(
        self,
        dim: usize,
        input: usize,
        kernel: usize,
        stride: usize,
        dilation: usize,
    ) -> Result<Axis, String> {
        if kernel == 0 || stride == 0 || dilation == 0 {
            return Err(format!("kernel {kernel}, stride {stride} and dilation {dilation} must all be at least 1"));
        }
        let eff = (kernel - 1)
            .checked_mul(dilation)
            .and_then(|e| e.checked_add(1))
            .ok_or_else(|| format!("kernel {kernel} with dilation {dilation} is too large"))?;
        let (before, after) = match self {
            Padding::Same => {
                let out = input.div_ceil(stride);
                let total = (out.saturating_sub(1).saturating_mul(stride).saturating_add(eff)).saturating_sub(input);
                (total / 2, total - total / 2)
            }
            Padding::Valid => (0, 0),
            Padding::Explicit { top, bottom, left, right } => {
                if dim == 0 {
                    (top, bottom)
                } else {
                    (left, right)
                }
            }
        };
        let padded = input.saturating_add(before).saturating_add(after);
        if padded < eff {
            return Err(format!(
                "window {eff} is larger than the padded input {padded} (input {input}, stride {stride})"
            ));
        }
        Ok(Axis { out: (padded - eff) / stride + 1, pad_before: before })
    }

    /// Rewrites explicit padding as SAME or VALID when it is numerically the same thing.
    pub fn canonical(self, input: [usize; 2], kernel: [usize; 2], stride: [usize; 2], dilation: [usize; 2]) -> Padding {
        let Padding::Explicit { top, bottom, left, right } = self else { return self };
        if top + bottom + left + right == 0 {
            return Padding::Valid;
        }
        let same = |d: usize| Padding::Same.resolve(d, input[d], kernel[d], stride[d], dilation[d]);
        let (Ok(h), Ok(w)) = (same(0), same(1)) else { return self };
        let total =
            |d: usize, a: Axis| ((a.out - 1) * stride[d] + (kernel[d] - 1) * dilation[d] + 1).saturating_sub(input[d]);
        if h.pad_before == top && total(0, h) == top + bottom && w.pad_before == left && total(1, w) == left + right {
            Padding::Same
        } else {
            self
        }
    }
}

/// Every operation tinyq represents. Inputs are listed on each variant's parameter struct.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Conv2D(Conv2D),
    DepthwiseConv2D(DepthwiseConv2D),
    FullyConnected(FullyConnected),
    Add(Binary),
    Sub(Binary),
    Mul(Binary),
    Concat(Concat),
    /// Inputs: data. The output tensor's shape is the new shape (Squeeze, Unsqueeze and Flatten
    /// import as Reshape: with static shapes they are the same op).
    Reshape,
    Transpose(Transpose),
    StridedSlice(StridedSlice),
    Pad(Pad),
    MirrorPad(MirrorPad),
    ResizeNearest(ResizeNearest),
    /// Bilinear resize of `x [N, H, W, C]` with the same parameters as [`ResizeNearest`] (see
    /// [`ResizeNearest::bilinear_taps`]): ONNX `Resize`/`Upsample` mode linear, TFLite
    /// `RESIZE_BILINEAR`.
    ResizeBilinear(ResizeNearest),
    MaxPool2D(Pool2D),
    AvgPool2D(Pool2D),
    Mean(Mean),
    /// The largest value over `axes` (the same parameters as [`Mean`]): ONNX `ReduceMax`, TFLite
    /// `REDUCE_MAX`.
    ReduceMax(Mean),
    /// The sum over `axes` (the same parameters as [`Mean`]): ONNX `ReduceSum`, TFLite `SUM`.
    ReduceSum(Mean),
    /// Inputs: `a`, `b` (broadcast against each other). The larger of the two: ONNX `Max` (two
    /// inputs), TFLite `MAXIMUM`.
    Maximum,
    /// Inputs: `a`, `b` (broadcast against each other). The smaller of the two: ONNX `Min` (two
    /// inputs), TFLite `MINIMUM`.
    Minimum,
    Relu,
    Relu6,
    Clip(Clip),
    LeakyRelu(LeakyRelu),
    /// Inputs: `x`, `slope` (broadcasts to `x`). `x` for `x >= 0`, `slope · x` otherwise: ONNX
    /// `PRelu`, TFLite `PRELU`.
    PRelu,
    /// `x` for `x >= 0`, `exp(x) − 1` otherwise: ONNX `Elu` with `alpha = 1`, TFLite `ELU`.
    Elu,
    /// `|x|`: ONNX `Abs`, TFLite `ABS`.
    Abs,
    Sigmoid,
    Tanh,
    HardSwish,
    Softmax(Softmax),
    /// `x − log Σ exp(x)` along the last axis: ONNX `LogSoftmax`, TFLite `LOG_SOFTMAX`.
    LogSoftmax,
    /// Float (or int) → quantized; the output tensor's qparams say how.
    Quantize,
    /// Quantized → float with the input tensor's qparams.
    Dequantize,
}

/// Where a layer keeps its trained weights: which input, and the axis of its output channels
/// (the axis per-channel quantization scales run along).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Weights {
    /// Input slot of the weight tensor; the optional bias is the next slot.
    pub input: usize,
    /// Output-channel axis: 0 for OHWI convolutions and `[out, in]` dense weights, 3 for the
    /// `[1, H, W, C·M]` depthwise filter.
    pub channel_axis: usize,
    /// Rank the weight tensor has.
    pub rank: usize,
}

/// The window of an op that slides over height and width (convolutions and pools).
#[derive(Debug)]
pub struct Window<'a> {
    pub padding: &'a mut Padding,
    /// The window's size; `None` when the weights give it (`[KH, KW]` of the filter).
    pub filter: Option<[usize; 2]>,
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// What a padding pixel reads as: 0 for convolutions, −∞ for max pooling, `None` when
    /// padding pixels are left out of the result (average pooling's divisor).
    pub pad_value: Option<f32>,
}

/// The plain facts of one op, stated in one row per op by [`Op::facts`].
#[derive(Clone, Copy, Debug)]
struct Facts {
    name: &'static str,
    /// `(channel axis, rank)` of the weights, for layers with trained weights.
    weights: Option<(usize, usize)>,
    /// Whether TFLM takes the weights as int4 (with int8 activations).
    int4: bool,
    converts_dtype: bool,
    /// Whether TFLM's int8 kernel reads its inputs as if they had the output's scale and zero
    /// point (it copies or compares stored values).
    shares_qparams: bool,
}

impl Facts {
    const fn op(name: &'static str) -> Facts {
        Facts { name, weights: None, int4: false, converts_dtype: false, shares_qparams: false }
    }
    const fn weights(self, channel_axis: usize, rank: usize) -> Facts {
        Facts { weights: Some((channel_axis, rank)), ..self }
    }
    const fn int4(self) -> Facts {
        Facts { int4: true, ..self }
    }
    const fn converts_dtype(self) -> Facts {
        Facts { converts_dtype: true, ..self }
    }
    const fn shares_qparams(self) -> Facts {
        Facts { shares_qparams: true, ..self }
    }
}

/// The fused activation field of the ops that have one, borrowed as `&` or `&mut`.
macro_rules! fused_activation {
    ($op:expr, $($borrow:tt)+) => {
        match $op {
            Op::Conv2D(p) => Some($($borrow)+ p.activation),
            Op::DepthwiseConv2D(p) => Some($($borrow)+ p.conv.activation),
            Op::FullyConnected(p) => Some($($borrow)+ p.activation),
            Op::Add(p) | Op::Sub(p) | Op::Mul(p) => Some($($borrow)+ p.activation),
            Op::Concat(p) => Some($($borrow)+ p.activation),
            Op::MaxPool2D(p) | Op::AvgPool2D(p) => Some($($borrow)+ p.activation),
            Op::Reshape
            | Op::Transpose(_)
            | Op::StridedSlice(_)
            | Op::Pad(_)
            | Op::MirrorPad(_)
            | Op::ResizeNearest(_)
            | Op::ResizeBilinear(_)
            | Op::Mean(_)
            | Op::ReduceMax(_)
            | Op::ReduceSum(_)
            | Op::Maximum
            | Op::Minimum
            | Op::Relu
            | Op::Relu6
            | Op::Clip(_)
            | Op::LeakyRelu(_)
            | Op::PRelu
            | Op::Elu
            | Op::Abs
            | Op::Sigmoid
            | Op::Tanh
            | Op::HardSwish
            | Op::Softmax(_)
            | Op::LogSoftmax
            | Op::Quantize
            | Op::Dequantize => None,
        }
    };
}

impl Op {
    /// One row per op: its name, its weights' channel axis and rank, whether they may be int4,
    /// whether it changes a tensor's type, whether its int8 inputs share the output's parameters.
    fn facts(&self) -> Facts {
        let f = Facts::op;
        match self {
            Op::Conv2D(_) => f("Conv2D").weights(0, 4).int4(),
            Op::DepthwiseConv2D(_) => f("DepthwiseConv2D").weights(3, 4).int4(),
            Op::FullyConnected(_) => f("FullyConnected").weights(0, 2).int4(),
            Op::Add(_) => f("Add"),
            Op::Sub(_) => f("Sub"),
            Op::Mul(_) => f("Mul"),
            Op::Concat(_) => f("Concat").shares_qparams(),
            Op::Reshape => f("Reshape"),
            Op::Transpose(_) => f("Transpose"),
            Op::StridedSlice(_) => f("StridedSlice"),
            Op::Pad(_) => f("Pad"),
            Op::MirrorPad(_) => f("MirrorPad"),
            Op::ResizeNearest(_) => f("ResizeNearest"),
            Op::ResizeBilinear(_) => f("ResizeBilinear"),
            Op::MaxPool2D(_) => f("MaxPool2D"),
            Op::AvgPool2D(_) => f("AvgPool2D"),
            Op::Mean(_) => f("Mean"),
            Op::ReduceMax(_) => f("ReduceMax"),
            Op::ReduceSum(_) => f("ReduceSum"),
            Op::Maximum => f("Maximum").shares_qparams(),
            Op::Minimum => f("Minimum").shares_qparams(),
            Op::Relu => f("Relu"),
            Op::Relu6 => f("Relu6"),
            Op::Clip(_) => f("Clip"),
            Op::LeakyRelu(_) => f("LeakyRelu"),
            Op::PRelu => f("PRelu"),
            Op::Elu => f("Elu"),
            Op::Abs => f("Abs"),
            Op::Sigmoid => f("Sigmoid"),
            Op::Tanh => f("Tanh"),
            Op::HardSwish => f("HardSwish"),
            Op::Softmax(_) => f("Softmax"),
            Op::LogSoftmax => f("LogSoftmax"),
            Op::Quantize => f("Quantize").converts_dtype(),
            Op::Dequantize => f("Dequantize").converts_dtype(),
        }
    }

    pub fn name(&self) -> &'static str {
        self.facts().name
    }

    /// The layer's weights, for ops that have trained weights (conv, depthwise, dense).
    pub fn weights(&self) -> Option<Weights> {
        let (channel_axis, rank) = self.facts().weights?;
        Some(Weights { input: 1, channel_axis, rank })
    }

    /// Whether the op has trained weights (see [`Op::weights`]).
    pub fn has_weights(&self) -> bool {
        self.weights().is_some()
    }

    /// Whether the op changes its tensor's type (QUANTIZE, DEQUANTIZE): it exists only in
    /// quantized graphs.
    pub fn converts_dtype(&self) -> bool {
        self.facts().converts_dtype
    }

    /// Whether the int8 op needs its inputs quantized with its output's scale and zero point:
    /// TFLM's CONCATENATION copies stored values (its Prepare refuses other parameters), MAXIMUM
    /// and MINIMUM compare them (with no check).
    pub fn shares_qparams(&self) -> bool {
        self.facts().shares_qparams
    }

    /// The sliding window, for ops that have one.
    pub fn window_mut(&mut self) -> Option<Window<'_>> {
        fn conv(p: &mut Conv2D) -> Window<'_> {
            Window {
                padding: &mut p.padding,
                filter: None,
                stride: p.stride,
                dilation: p.dilation,
                pad_value: Some(0.0),
            }
        }
        fn pool(p: &mut Pool2D, pad_value: Option<f32>) -> Window<'_> {
            let (filter, stride) = (Some(p.filter), p.stride);
            Window { padding: &mut p.padding, filter, stride, dilation: [1, 1], pad_value }
        }
        Some(match self {
            Op::Conv2D(p) => conv(p),
            Op::DepthwiseConv2D(p) => conv(&mut p.conv),
            Op::MaxPool2D(p) => pool(p, Some(f32::NEG_INFINITY)),
            Op::AvgPool2D(p) => pool(p, None),
            Op::FullyConnected(_)
            | Op::Add(_)
            | Op::Sub(_)
            | Op::Mul(_)
            | Op::Concat(_)
            | Op::Reshape
            | Op::Transpose(_)
            | Op::StridedSlice(_)
            | Op::Pad(_)
            | Op::MirrorPad(_)
            | Op::ResizeNearest(_)
            | Op::ResizeBilinear(_)
            | Op::Mean(_)
            | Op::ReduceMax(_)
            | Op::ReduceSum(_)
            | Op::Maximum
            | Op::Minimum
            | Op::Relu
            | Op::Relu6
            | Op::Clip(_)
            | Op::LeakyRelu(_)
            | Op::PRelu
            | Op::Elu
            | Op::Abs
            | Op::Sigmoid
            | Op::Tanh
            | Op::HardSwish
            | Op::Softmax(_)
            | Op::LogSoftmax
            | Op::Quantize
            | Op::Dequantize => return None,
        })
    }

    /// The fused activation, for ops that have one.
    pub fn activation(&self) -> Option<FusedActivation> {
        fused_activation!(self, &).copied()
    }

    /// Mutable access to the fused activation, for ops that have one.
    pub fn activation_mut(&mut self) -> Option<&mut FusedActivation> {
        fused_activation!(self, &mut)
    }

    /// The input holding a layer's weights, for the ops whose weights may be int4 (TFLM's
    /// CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED with int8 activations).
    pub fn int4_weights_input(&self) -> Option<usize> {
        self.weights().filter(|_| self.facts().int4).map(|w| w.input)
    }

    /// Why this layer's weights, though TFLM takes them as int4, are better kept int8 so that
    /// every kernel set computes the layer alike (`inputs`: its input shapes); `None` when int4
    /// runs the same everywhere.
    pub fn int4_caveat(&self, inputs: &[&[usize]]) -> Option<&'static str> {
        match (self, inputs) {
            (Op::DepthwiseConv2D(p), [x, w, ..]) if !p.int4_alike_on_cmsis_nn(x, w) => Some(
                "CMSIS-NN's int4 depthwise kernel reads wrong weights for an odd channel count with a depth \
                 multiplier or dilation above 1 when SAME padding cuts the window, so it would differ from \
                 TFLM's reference kernel",
            ),
            _ => None,
        }
    }

    /// Output shapes from input shapes; the error says what does not fit.
    ///
    /// `Reshape` cannot know its target from shapes alone and returns its input element count
    /// as a flat shape; [`crate::Graph::validate`] compares element counts for it instead.
    pub fn infer_shapes(&self, inputs: &[&[usize]]) -> Result<Vec<Vec<usize>>, String> {
        let need = |n: usize| -> Result<(), String> {
            if inputs.len() < n {
                Err(format!("expects {n} inputs, has {}", inputs.len()))
            } else {
                Ok(())
            }
        };
        let out = match self {
            Op::Conv2D(p) => {
                need(2)?;
                p.output_shape(inputs[0], inputs[1], inputs.get(2).copied())?
            }
            Op::DepthwiseConv2D(p) => {
                need(2)?;
                p.output_shape(inputs[0], inputs[1], inputs.get(2).copied())?
            }
            Op::FullyConnected(p) => {
                need(2)?;
                p.output_shape(inputs[0], inputs[1], inputs.get(2).copied())?
            }
            Op::Add(_) | Op::Sub(_) | Op::Mul(_) | Op::Maximum | Op::Minimum => {
                need(2)?;
                broadcast_shapes(inputs[0], inputs[1])?
            }
            Op::Concat(p) => {
                need(1)?;
                p.output_shape(inputs)?
            }
            Op::Reshape => {
                need(1)?;
                vec![crate::numel(inputs[0])]
            }
            Op::Transpose(p) => {
                need(1)?;
                p.output_shape(inputs[0])?
            }
            Op::Pad(p) => {
                need(1)?;
                p.output_shape(inputs[0])?
            }
            Op::StridedSlice(p) => {
                need(1)?;
                p.output_shape(inputs[0])?
            }
            Op::MirrorPad(p) => {
                need(1)?;
                p.output_shape(inputs[0])?
            }
            Op::ResizeNearest(p) | Op::ResizeBilinear(p) => {
                need(1)?;
                p.output_shape(inputs[0])?
            }
            Op::MaxPool2D(p) | Op::AvgPool2D(p) => {
                need(1)?;
                p.output_shape(inputs[0])?
            }
            Op::Mean(p) | Op::ReduceMax(p) | Op::ReduceSum(p) => {
                need(1)?;
                p.output_shape(inputs[0])?
            }
            Op::PRelu => {
                need(2)?;
                if broadcast_shapes(inputs[0], inputs[1])? != inputs[0] {
                    return Err(format!("slope {:?} does not broadcast to the input {:?}", inputs[1], inputs[0]));
                }
                inputs[0].to_vec()
            }
            Op::Softmax(_) | Op::LogSoftmax => {
                need(1)?;
                if inputs[0].is_empty() {
                    return Err("softmax needs at least one axis".into());
                }
                inputs[0].to_vec()
            }
            Op::Relu
            | Op::Relu6
            | Op::Clip(_)
            | Op::LeakyRelu(_)
            | Op::Elu
            | Op::Abs
            | Op::Sigmoid
            | Op::Tanh
            | Op::HardSwish
            | Op::Quantize
            | Op::Dequantize => {
                need(1)?;
                inputs[0].to_vec()
            }
        };
        Ok(vec![out])
    }
}

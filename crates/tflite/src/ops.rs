//! The operator table: for every IR [`Op`], how it is written to TFLite ([`export_op`]) and how
//! each TFLite builtin is read back ([`import_op`]). Keep the two functions in the same order, so
//! an op's two directions can be read side by side; `export_op` matches `Op` exhaustively.
//!
//! Spec: the TFLite schema (options tables) and `tensorflow/lite/tools/versioning/op_version.cc`
//! (versions LiteRT checks; TFLM ignores them).

use crate::codes::*;
use crate::generated as tfl;
use tfl::BuiltinOptions as Opt;
use tfl::BuiltinOptionsRef as OptRef;
use tinyq_ir::op::{
    Binary, Clip, Concat, Conv2D, DepthwiseConv2D, FullyConnected, LeakyRelu, Mean, MirrorPad, Pad, Pool2D,
    ResizeNearest, Softmax, StridedSlice, StridedSliceTflite, Transpose,
};
use tinyq_ir::{DType, FusedActivation, Graph, Node, Op, Padding, Tensor, TensorData, TensorId};

/// Versions of one builtin: for float inputs and for integer (int8) inputs.
#[derive(Clone, Copy)]
pub(crate) struct Versions {
    pub float: i32,
    pub int: i32,
}

const fn v(float: i32, int: i32) -> Versions {
    Versions { float, int }
}

pub(crate) const CONV_2D_V: Versions = v(1, 3);
pub(crate) const DEPTHWISE_CONV_2D_V: Versions = v(1, 3);
pub(crate) const FULLY_CONNECTED_V: Versions = v(1, 4);
/// The 16x8 versions (int16 activations, int8 weights): CONV_2D 4, DEPTHWISE_CONV_2D 5,
/// FULLY_CONNECTED 7.
pub(crate) const CONV_2D_16X8_V: i32 = 4;
pub(crate) const DEPTHWISE_CONV_2D_16X8_V: i32 = 5;
pub(crate) const FULLY_CONNECTED_16X8_V: i32 = 7;
/// FULLY_CONNECTED with `keep_num_dims`.
pub(crate) const FULLY_CONNECTED_KEEP_DIMS_V: i32 = 5;
/// FULLY_CONNECTED without a bias input.
pub(crate) const FULLY_CONNECTED_NO_BIAS_V: i32 = 6;
pub(crate) const ADD_V: Versions = v(1, 2);
/// int16 ADD with general scales (`pot_scale_int16 = false`, the only int16 ADD TFLM runs).
pub(crate) const ADD_16_V: i32 = 3;
pub(crate) const SUB_V: Versions = v(1, 2);
pub(crate) const MUL_V: Versions = v(1, 2);
/// int8 MUL whose rescale `s1·s2/s_out` is ≥ 1.
pub(crate) const MUL_LARGE_SCALE_V: i32 = 3;
pub(crate) const CONCATENATION_V: Versions = v(1, 2);
/// CONCATENATION with int16 inputs.
pub(crate) const CONCATENATION_16_V: i32 = 3;
/// RESHAPE is version 1 for every type, int16 included.
pub(crate) const RESHAPE_V: Versions = v(1, 1);
pub(crate) const TRANSPOSE_V: Versions = v(1, 2);
pub(crate) const PAD_V: Versions = v(1, 2);
pub(crate) const PADV2_V: Versions = v(1, 2);
pub(crate) const MIRROR_PAD_V: Versions = v(1, 2);
/// PAD and PADV2 with int16 input (rank ≤ 4).
pub(crate) const PAD_16_V: i32 = 3;
pub(crate) const MAX_POOL_2D_V: Versions = v(1, 2);
pub(crate) const AVERAGE_POOL_2D_V: Versions = v(1, 2);
/// MAX_POOL_2D and AVERAGE_POOL_2D with int16 input and output.
pub(crate) const POOL_16_V: i32 = 3;
pub(crate) const MEAN_V: Versions = v(1, 2);
/// MEAN with int16 input.
pub(crate) const MEAN_16_V: i32 = 3;
pub(crate) const RELU_V: Versions = v(1, 2);
pub(crate) const RELU6_V: Versions = v(1, 2);
pub(crate) const RELU_N1_TO_1_V: Versions = v(1, 1);
pub(crate) const LEAKY_RELU_V: Versions = v(1, 2);
pub(crate) const PRELU_V: Versions = v(1, 1);
/// ELU is version 1 for float and int8 (LiteRT registers no other).
pub(crate) const ELU_V: Versions = v(1, 1);
pub(crate) const ABS_V: Versions = v(1, 2);
pub(crate) const REDUCE_MAX_V: Versions = v(1, 2);
pub(crate) const SUM_V: Versions = v(1, 2);
pub(crate) const STRIDED_SLICE_V: Versions = v(1, 2);
/// STRIDED_SLICE of an input of rank above 4.
pub(crate) const STRIDED_SLICE_5D_V: i32 = 4;
pub(crate) const MAXIMUM_MINIMUM_V: Versions = v(1, 2);
/// MAXIMUM and MINIMUM whose inputs broadcast at a rank above 4.
pub(crate) const MAXIMUM_MINIMUM_5D_V: i32 = 3;
pub(crate) const RESIZE_NEAREST_NEIGHBOR_V: Versions = v(1, 2);
pub(crate) const RESIZE_BILINEAR_V: Versions = v(1, 2);
/// RESIZE_BILINEAR with `half_pixel_centers`.
pub(crate) const RESIZE_BILINEAR_HALF_PIXEL_V: i32 = 3;
/// RESIZE_NEAREST_NEIGHBOR with `half_pixel_centers`.
pub(crate) const RESIZE_NEAREST_NEIGHBOR_HALF_PIXEL_V: i32 = 3;
pub(crate) const LOGISTIC_V: Versions = v(1, 2);
pub(crate) const TANH_V: Versions = v(1, 2);
pub(crate) const HARD_SWISH_V: Versions = v(1, 1);
pub(crate) const SOFTMAX_V: Versions = v(1, 2);
pub(crate) const LOG_SOFTMAX_V: Versions = v(1, 2);
/// QUANTIZE: float → int8 is version 1, int8 → int8 (requantize) version 2.
pub(crate) const QUANTIZE_V: Versions = v(1, 2);
/// DEQUANTIZE: int8 input is version 2, float16 input version 3.
pub(crate) const DEQUANTIZE_V: Versions = v(1, 2);
pub(crate) const DEQUANTIZE_F16_V: i32 = 3;

/// The oldest TFLite runtime that runs `(code, version)`, from `runtime_version.cc`.
pub(crate) fn min_runtime_version(code: i32, version: i32) -> &'static str {
    match (code, version) {
        (CONV_2D | DEPTHWISE_CONV_2D | ADD | FULLY_CONNECTED | CONCATENATION | MAX_POOL_2D | AVERAGE_POOL_2D, 1)
        | (MUL | PAD | RESHAPE | SOFTMAX | RELU | RELU6 | RELU_N1_TO_1, 1) => "1.5.0",
        (SUB | TRANSPOSE | MEAN | STRIDED_SLICE, 1) => "1.6.0",
        (STRIDED_SLICE, STRIDED_SLICE_5D_V) => "2.2.0",
        (PADV2, 1) => "1.9.0",
        (PRELU, 1) => "1.8.0",
        (REDUCE_MAX, 1) => "1.11.0",
        (SUM, 1) => "1.10.0",
        (SUM, 2) => "1.15.0",
        (ABS, 1) => "1.13.0",
        (MAXIMUM | MINIMUM, MAXIMUM_MINIMUM_5D_V) => "2.3.0",
        (ABS, 2) => "2.4.0",
        (RESIZE_NEAREST_NEIGHBOR, 1) => "1.13.1",
        (RESIZE_BILINEAR, RESIZE_BILINEAR_HALF_PIXEL_V) => "2.2.0",
        (RESIZE_NEAREST_NEIGHBOR, RESIZE_NEAREST_NEIGHBOR_HALF_PIXEL_V) => "2.3.0",
        (LEAKY_RELU | DEQUANTIZE, 1) => "1.13.1",
        (FULLY_CONNECTED, FULLY_CONNECTED_KEEP_DIMS_V) => "2.0.0",
        (FULLY_CONNECTED, FULLY_CONNECTED_NO_BIAS_V) | (RELU, 2) => "2.1.0",
        (CONV_2D, CONV_2D_16X8_V)
        | (DEPTHWISE_CONV_2D, DEPTHWISE_CONV_2D_16X8_V)
        | (FULLY_CONNECTED, FULLY_CONNECTED_16X8_V) => "2.3.0",
        (LEAKY_RELU, 2) | (MAX_POOL_2D | AVERAGE_POOL_2D, POOL_16_V) | (CONCATENATION, CONCATENATION_16_V) => "2.3.0",
        (ADD, ADD_16_V) | (MEAN, MEAN_16_V) | (PAD | PADV2, PAD_16_V) => "2.4.0",
        (MUL, MUL_LARGE_SCALE_V) | (HARD_SWISH, 1) | (QUANTIZE, 2) | (DEQUANTIZE, DEQUANTIZE_F16_V) => "1.15.0",
        _ => "1.14.0",
    }
}

/// One input of an exported operator.
pub(crate) enum Input {
    Tensor(TensorId),
    /// A constant the TFLite op needs but the IR keeps as a parameter (a shape, perm, axes…).
    Const(Tensor),
}

/// A node as TFLite sees it; its outputs are the node's outputs.
pub(crate) struct Exported {
    pub code: i32,
    pub version: i32,
    pub options: Option<Opt>,
    pub inputs: Vec<Input>,
}

fn is_int(t: &Tensor) -> bool {
    match t.dtype {
        DType::I4 | DType::I8 | DType::U8 | DType::I16 | DType::I32 | DType::I64 => true,
        DType::F32 | DType::F16 => false,
    }
}

/// Translates one node. Explicit padding must already be lowered to PAD + VALID.
pub(crate) fn export_op(g: &Graph, n: &Node) -> Result<Exported, String> {
    let input = |k: usize| n.inputs.get(k).map(|&t| &g.tensors[t]).ok_or(format!("input {k} is missing"));
    let x = input(0)?;
    let out = n.outputs.first().map(|&t| &g.tensors[t]).ok_or("the node has no output")?;
    let int = is_int(x);
    let wide = x.dtype == DType::I16;
    let ver = |vs: Versions| if int { vs.int } else { vs.float };
    let tensors = || n.inputs.iter().map(|&t| Input::Tensor(t)).collect::<Vec<_>>();
    let data_then = |extra: Vec<Tensor>| {
        std::iter::once(Input::Tensor(n.inputs[0])).chain(extra.into_iter().map(Input::Const)).collect::<Vec<_>>()
    };
    // LiteRT's XNNPACK delegate reads a conv's third input unchecked, and LiteRT's kernels refuse
    // a -1 there: a missing bias is written as zeros, as the TFLite converter does.
    let with_bias = |channels: usize| -> Result<Vec<Input>, String> {
        let mut v = tensors();
        if v.len() == 2 {
            v.push(Input::Const(zero_bias(&n.name, x, input(1)?, channels)?));
        }
        Ok(v)
    };
    let ex = |code, version, options: Option<Opt>, inputs| Ok(Exported { code, version, options, inputs });
    let i32_const = |what: &str, shape: Vec<usize>, v: Vec<i32>| {
        Tensor::constant(format!("{}/{what}", n.name), shape, TensorData::I32(v))
    };
    match &n.op {
        Op::Conv2D(p) => {
            check_weight_axis(input(1)?, 0)?;
            let bias = with_bias(input(1)?.shape[0])?;
            let version = if wide { CONV_2D_16X8_V } else { ver(CONV_2D_V) };
            ex(CONV_2D, version, Some(Opt::Conv2DOptions(Box::new(conv_options(p)?))), bias)
        }
        Op::DepthwiseConv2D(p) => {
            check_weight_axis(input(1)?, 3)?;
            let o = tfl::DepthwiseConv2DOptions {
                padding: padding_out(p.conv.padding)?,
                stride_w: dim(p.conv.stride[1])?,
                stride_h: dim(p.conv.stride[0])?,
                depth_multiplier: dim(p.depth_multiplier)?,
                fused_activation_function: act_out(p.conv.activation),
                dilation_w_factor: dim(p.conv.dilation[1])?,
                dilation_h_factor: dim(p.conv.dilation[0])?,
            };
            let bias = with_bias(input(1)?.shape[3])?;
            let version = if wide { DEPTHWISE_CONV_2D_16X8_V } else { ver(DEPTHWISE_CONV_2D_V) };
            ex(DEPTHWISE_CONV_2D, version, Some(Opt::DepthwiseConv2DOptions(Box::new(o))), bias)
        }
        Op::FullyConnected(p) => {
            check_weight_axis(input(1)?, 0)?;
            let version = match (n.inputs.len() < 3, p.keep_num_dims) {
                _ if wide => FULLY_CONNECTED_16X8_V,
                (true, _) => FULLY_CONNECTED_NO_BIAS_V,
                (false, true) => FULLY_CONNECTED_KEEP_DIMS_V,
                (false, false) => ver(FULLY_CONNECTED_V),
            };
            let o = tfl::FullyConnectedOptions {
                fused_activation_function: act_out(p.activation),
                keep_num_dims: p.keep_num_dims,
                ..Default::default()
            };
            ex(FULLY_CONNECTED, version, Some(Opt::FullyConnectedOptions(Box::new(o))), tensors())
        }
        Op::Add(p) => {
            // An int16 ADD is written with general scales: LiteRT reads `pot_scale_int16 = true` as
            // "scales are powers of two" and runs another kernel; TFLM ignores the flag.
            let o = tfl::AddOptions { fused_activation_function: act_out(p.activation), pot_scale_int16: !wide };
            let version = if wide { ADD_16_V } else { ver(ADD_V) };
            ex(ADD, version, Some(Opt::AddOptions(Box::new(o))), tensors())
        }
        Op::Sub(p) => {
            let o = tfl::SubOptions { fused_activation_function: act_out(p.activation), pot_scale_int16: true };
            ex(SUB, ver(SUB_V), Some(Opt::SubOptions(Box::new(o))), tensors())
        }
        Op::Mul(p) => {
            let scale = |t: &Tensor| t.qparams.as_ref().and_then(|q| q.scale.first()).map(|&s| s as f64);
            let large = match (scale(x), scale(input(1)?), scale(out)) {
                (Some(a), Some(b), Some(o)) => a * b / o >= 1.0,
                _ => false,
            };
            let version = if int && large { MUL_LARGE_SCALE_V } else { ver(MUL_V) };
            let o = tfl::MulOptions { fused_activation_function: act_out(p.activation) };
            ex(MUL, version, Some(Opt::MulOptions(Box::new(o))), tensors())
        }
        Op::Concat(p) => {
            let o = tfl::ConcatenationOptions { axis: dim(p.axis)?, fused_activation_function: act_out(p.activation) };
            let version = if wide { CONCATENATION_16_V } else { ver(CONCATENATION_V) };
            ex(CONCATENATION, version, Some(Opt::ConcatenationOptions(Box::new(o))), tensors())
        }
        Op::Reshape => {
            let shape = out.shape.iter().map(|&d| dim(d)).collect::<Result<Vec<_>, _>>()?;
            let o = tfl::ReshapeOptions { new_shape: Some(shape.clone()) };
            let shape_t = i32_const("shape", vec![shape.len()], shape);
            ex(RESHAPE, ver(RESHAPE_V), Some(Opt::ReshapeOptions(Box::new(o))), data_then(vec![shape_t]))
        }
        Op::Transpose(p) => {
            let perm = p.perm.iter().map(|&d| dim(d)).collect::<Result<Vec<_>, _>>()?;
            let perm_t = i32_const("perm", vec![perm.len()], perm);
            ex(
                TRANSPOSE,
                ver(TRANSPOSE_V),
                Some(Opt::TransposeOptions(Box::new(tfl::TransposeOptions {}))),
                data_then(vec![perm_t]),
            )
        }
        Op::StridedSlice(p) => {
            let t = p.tflite()?;
            let r = t.begin.len();
            let o = tfl::StridedSliceOptions {
                end_mask: t.end_mask as i32,
                shrink_axis_mask: t.shrink_axis_mask as i32,
                ..Default::default()
            };
            let operands = vec![
                i32_const("begin", vec![r], t.begin),
                i32_const("end", vec![r], t.end),
                i32_const("strides", vec![r], t.strides),
            ];
            let version = if r > 4 { STRIDED_SLICE_5D_V } else { ver(STRIDED_SLICE_V) };
            ex(STRIDED_SLICE, version, Some(Opt::StridedSliceOptions(Box::new(o))), data_then(operands))
        }
        Op::Pad(p) => {
            let flat = p.pads.iter().flatten().map(|&d| dim(d)).collect::<Result<Vec<_>, _>>()?;
            let pads_t = i32_const("paddings", vec![p.pads.len(), 2], flat);
            if p.value == 0.0 {
                let version = if wide { PAD_16_V } else { ver(PAD_V) };
                ex(PAD, version, Some(Opt::PadOptions(Box::new(tfl::PadOptions {}))), data_then(vec![pads_t]))
            } else {
                let value_t = pad_value_tensor(&n.name, p.value, out)?;
                ex(
                    PADV2,
                    if wide { PAD_16_V } else { ver(PADV2_V) },
                    Some(Opt::PadV2Options(Box::new(tfl::PadV2Options {}))),
                    data_then(vec![pads_t, value_t]),
                )
            }
        }
        Op::MirrorPad(p) => {
            let flat = p.pads.iter().flatten().map(|&d| dim(d)).collect::<Result<Vec<_>, _>>()?;
            let pads_t = i32_const("paddings", vec![p.pads.len(), 2], flat);
            let mode = if p.reflect { tfl::MirrorPadMode::Reflect } else { tfl::MirrorPadMode::Symmetric };
            let o = Opt::MirrorPadOptions(Box::new(tfl::MirrorPadOptions { mode }));
            ex(MIRROR_PAD, ver(MIRROR_PAD_V), Some(o), data_then(vec![pads_t]))
        }
        Op::ResizeNearest(p) => {
            let size = p.size.iter().map(|&d| dim(d)).collect::<Result<Vec<_>, _>>()?;
            let size_t = i32_const("size", vec![2], size);
            let o = tfl::ResizeNearestNeighborOptions {
                align_corners: p.align_corners,
                half_pixel_centers: p.half_pixel_centers,
            };
            let version = if p.half_pixel_centers {
                RESIZE_NEAREST_NEIGHBOR_HALF_PIXEL_V
            } else {
                ver(RESIZE_NEAREST_NEIGHBOR_V)
            };
            ex(
                RESIZE_NEAREST_NEIGHBOR,
                version,
                Some(Opt::ResizeNearestNeighborOptions(Box::new(o))),
                data_then(vec![size_t]),
            )
        }
        Op::ResizeBilinear(p) => {
            let size = p.size.iter().map(|&d| dim(d)).collect::<Result<Vec<_>, _>>()?;
            let o =
                tfl::ResizeBilinearOptions { align_corners: p.align_corners, half_pixel_centers: p.half_pixel_centers };
            let version = if p.half_pixel_centers { RESIZE_BILINEAR_HALF_PIXEL_V } else { ver(RESIZE_BILINEAR_V) };
            let size_t = i32_const("size", vec![2], size);
            ex(RESIZE_BILINEAR, version, Some(Opt::ResizeBilinearOptions(Box::new(o))), data_then(vec![size_t]))
        }
        Op::MaxPool2D(p) => {
            let version = if wide { POOL_16_V } else { ver(MAX_POOL_2D_V) };
            ex(MAX_POOL_2D, version, Some(Opt::Pool2DOptions(Box::new(pool_options(p)?))), tensors())
        }
        Op::AvgPool2D(p) => {
            let version = if wide { POOL_16_V } else { ver(AVERAGE_POOL_2D_V) };
            ex(AVERAGE_POOL_2D, version, Some(Opt::Pool2DOptions(Box::new(pool_options(p)?))), tensors())
        }
        Op::Mean(p) => {
            let axes = p.axes.iter().map(|&d| dim(d)).collect::<Result<Vec<_>, _>>()?;
            let axes_t = i32_const("axes", vec![axes.len()], axes);
            let o = tfl::ReducerOptions { keep_dims: p.keep_dims };
            let version = if wide { MEAN_16_V } else { ver(MEAN_V) };
            ex(MEAN, version, Some(Opt::ReducerOptions(Box::new(o))), data_then(vec![axes_t]))
        }
        Op::ReduceMax(p) => {
            let axes = p.axes.iter().map(|&d| dim(d)).collect::<Result<Vec<_>, _>>()?;
            let axes_t = i32_const("axes", vec![axes.len()], axes);
            let o = tfl::ReducerOptions { keep_dims: p.keep_dims };
            ex(REDUCE_MAX, ver(REDUCE_MAX_V), Some(Opt::ReducerOptions(Box::new(o))), data_then(vec![axes_t]))
        }
        Op::ReduceSum(p) => {
            let axes = p.axes.iter().map(|&d| dim(d)).collect::<Result<Vec<_>, _>>()?;
            let axes_t = i32_const("axes", vec![axes.len()], axes);
            let o = tfl::ReducerOptions { keep_dims: p.keep_dims };
            ex(SUM, ver(SUM_V), Some(Opt::ReducerOptions(Box::new(o))), data_then(vec![axes_t]))
        }
        Op::Maximum | Op::Minimum => {
            let code = if n.op == Op::Maximum { MAXIMUM } else { MINIMUM };
            let b = input(1)?;
            let version = if x.shape != b.shape && x.shape.len().max(b.shape.len()) > 4 {
                MAXIMUM_MINIMUM_5D_V
            } else {
                ver(MAXIMUM_MINIMUM_V)
            };
            let o = Opt::MaximumMinimumOptions(Box::new(tfl::Unused {}));
            ex(code, version, Some(o), tensors())
        }
        Op::Relu => ex(RELU, ver(RELU_V), None, tensors()),
        Op::Relu6 => ex(RELU6, ver(RELU6_V), None, tensors()),
        Op::Clip(Clip { min, max }) => match (*min, *max) {
            (-1.0, 1.0) => ex(RELU_N1_TO_1, ver(RELU_N1_TO_1_V), None, tensors()),
            (0.0, 6.0) => ex(RELU6, ver(RELU6_V), None, tensors()),
            (0.0, f32::INFINITY) => ex(RELU, ver(RELU_V), None, tensors()),
            (lo, hi) => Err(format!("Clip({lo}, {hi}) has no TFLite builtin (only [0, inf), [0, 6] and [-1, 1] do)")),
        },
        Op::LeakyRelu(p) => {
            let o = tfl::LeakyReluOptions { alpha: p.alpha };
            ex(LEAKY_RELU, ver(LEAKY_RELU_V), Some(Opt::LeakyReluOptions(Box::new(o))), tensors())
        }
        Op::PRelu => ex(PRELU, ver(PRELU_V), None, tensors()),
        Op::Elu => ex(ELU, ver(ELU_V), None, tensors()),
        Op::Abs => ex(ABS, ver(ABS_V), None, tensors()),
        Op::Sigmoid => ex(LOGISTIC, ver(LOGISTIC_V), None, tensors()),
        Op::Tanh => ex(TANH, ver(TANH_V), None, tensors()),
        Op::HardSwish => ex(
            HARD_SWISH,
            ver(HARD_SWISH_V),
            Some(Opt::HardSwishOptions(Box::new(tfl::HardSwishOptions {}))),
            tensors(),
        ),
        Op::Softmax(p) => ex(
            SOFTMAX,
            ver(SOFTMAX_V),
            Some(Opt::SoftmaxOptions(Box::new(tfl::SoftmaxOptions { beta: p.beta }))),
            tensors(),
        ),
        Op::LogSoftmax => {
            ex(LOG_SOFTMAX, ver(LOG_SOFTMAX_V), Some(Opt::LogSoftmaxOptions(Box::new(tfl::Unused {}))), tensors())
        }
        Op::Quantize => {
            ex(QUANTIZE, ver(QUANTIZE_V), Some(Opt::QuantizeOptions(Box::new(tfl::QuantizeOptions {}))), tensors())
        }
        Op::Dequantize => {
            let version = if x.dtype == DType::F16 { DEQUANTIZE_F16_V } else { ver(DEQUANTIZE_V) };
            ex(DEQUANTIZE, version, Some(Opt::DequantizeOptions(Box::new(tfl::DequantizeOptions {}))), tensors())
        }
    }
}

/// Translates one TFLite operator. `ins` holds the operator's inputs (`None` for an absent
/// optional input, index -1). Returns the op and how many leading inputs the IR node keeps, or
/// `Ok(None)` when the builtin has no IR counterpart.
pub(crate) fn import_op(
    code: i32,
    opts: Option<OptRef<'_>>,
    ins: &[Option<&Tensor>],
    outs: &[&Tensor],
) -> Result<Option<(Op, usize)>, String> {
    let input = |k: usize| ins.get(k).copied().flatten().ok_or(format!("input {k} is missing"));
    let with_bias = || if ins.get(2).copied().flatten().is_some() { 3 } else { 2 };
    let rank = || input(0).map(|t| t.shape.len());
    let op = match code {
        CONV_2D => {
            let Some(OptRef::Conv2DOptions(o)) = opts else { return Err(no_options("Conv2DOptions")) };
            (Op::Conv2D(conv_in(o)?), with_bias())
        }
        DEPTHWISE_CONV_2D => {
            let Some(OptRef::DepthwiseConv2DOptions(o)) = opts else {
                return Err(no_options("DepthwiseConv2DOptions"));
            };
            let (x, w) = (&input(0)?.shape, &input(1)?.shape);
            if x.len() != 4 || w.len() != 4 || x[3] == 0 || w[3] % x[3] != 0 {
                return Err(format!("input {x:?} and weights {w:?} are not NHWC and [1, H, W, C*M]"));
            }
            let conv = Conv2D {
                stride: [pos(o.stride_h())?, pos(o.stride_w())?],
                dilation: [pos(o.dilation_h_factor())?, pos(o.dilation_w_factor())?],
                padding: padding_in(o.padding())?,
                activation: act_in(o.fused_activation_function())?,
            };
            (Op::DepthwiseConv2D(DepthwiseConv2D { conv, depth_multiplier: w[3] / x[3] }), with_bias())
        }
        FULLY_CONNECTED => {
            let (activation, keep_num_dims) = match opts {
                Some(OptRef::FullyConnectedOptions(o)) => {
                    if s(o.weights_format())? != tfl::FullyConnectedOptionsWeightsFormat::Default {
                        return Err("shuffled weights are not supported".into());
                    }
                    (act_in(o.fused_activation_function())?, s(o.keep_num_dims())?)
                }
                _ => (FusedActivation::None, false),
            };
            (Op::FullyConnected(FullyConnected { activation, keep_num_dims }), with_bias())
        }
        ADD => {
            // `pot_scale_int16` is not read: TFLM runs the general-scale int16 ADD whatever it says.
            let act = match opts {
                Some(OptRef::AddOptions(o)) => act_in(o.fused_activation_function())?,
                _ => FusedActivation::None,
            };
            (Op::Add(Binary { activation: act }), 2)
        }
        SUB => {
            let act = match opts {
                Some(OptRef::SubOptions(o)) => act_in(o.fused_activation_function())?,
                _ => FusedActivation::None,
            };
            (Op::Sub(Binary { activation: act }), 2)
        }
        MUL => {
            let act = match opts {
                Some(OptRef::MulOptions(o)) => act_in(o.fused_activation_function())?,
                _ => FusedActivation::None,
            };
            (Op::Mul(Binary { activation: act }), 2)
        }
        CONCATENATION => {
            let Some(OptRef::ConcatenationOptions(o)) = opts else { return Err(no_options("ConcatenationOptions")) };
            let r = outs.first().map(|t| t.shape.len()).unwrap_or(0);
            let axis = axis_in(s(o.axis())? as i64, r)?;
            (Op::Concat(Concat { axis, activation: act_in(o.fused_activation_function())? }), ins.len())
        }
        RESHAPE | SQUEEZE | EXPAND_DIMS => {
            // The IR takes the output tensor's shape; a constant shape operand that disagrees
            // with it is a file TFLM and LiteRT refuse.
            // TFLite's parser copies `new_shape` into `TfLiteReshapeParams::shape[8]`.
            if let Some(OptRef::ReshapeOptions(o)) = opts {
                let n = o.new_shape().map_err(|e| e.to_string())?.map_or(0, |v| v.len());
                if n > 8 {
                    return Err(format!("ReshapeOptions.new_shape has {n} dimensions; TFLite allows at most 8"));
                }
            }
            if let (RESHAPE, Some(Some(shape)), Some(out)) = (code, ins.get(1), outs.first()) {
                if let Ok(dims) = const_ints(shape, "shape") {
                    check_reshape_target(&dims, &out.shape)?;
                }
            }
            (Op::Reshape, 1)
        }
        TRANSPOSE => {
            let perm = const_ints(input(1)?, "perm")?
                .iter()
                .map(|&p| usize::try_from(p).map_err(|_| format!("perm entry {p}")))
                .collect::<Result<_, _>>()?;
            (Op::Transpose(Transpose { perm }), 1)
        }
        STRIDED_SLICE => {
            let Some(OptRef::StridedSliceOptions(o)) = opts else { return Err(no_options("StridedSliceOptions")) };
            if s(o.ellipsis_mask())? != 0 || s(o.new_axis_mask())? != 0 || s(o.offset())? {
                return Err("STRIDED_SLICE with an ellipsis, new axes or offset is not supported".into());
            }
            let ints = |k: usize, what: &str| -> Result<Vec<i32>, String> {
                const_ints(input(k)?, what)?
                    .iter()
                    .map(|&v| i32::try_from(v).map_err(|_| format!("{what} {v}")))
                    .collect()
            };
            let p = StridedSliceTflite {
                begin: ints(1, "begin")?,
                end: ints(2, "end")?,
                strides: ints(3, "strides")?,
                begin_mask: s(o.begin_mask())? as u32,
                end_mask: s(o.end_mask())? as u32,
                shrink_axis_mask: s(o.shrink_axis_mask())? as u32,
            };
            (Op::StridedSlice(StridedSlice::from_tflite(&input(0)?.shape, &p)?), 1)
        }
        PAD | PADV2 => {
            let flat = const_ints(input(1)?, "paddings")?;
            if flat.len() != 2 * rank()? || flat.iter().any(|&p| p < 0) {
                return Err(format!("paddings {flat:?} are not [rank, 2] non-negative values"));
            }
            let pads = flat.chunks(2).map(|c| [c[0] as usize, c[1] as usize]).collect();
            let value = if code == PADV2 { pad_value_in(input(2)?, outs.first().copied())? } else { 0.0 };
            (Op::Pad(Pad { pads, value }), 1)
        }
        MIRROR_PAD => {
            let flat = const_ints(input(1)?, "paddings")?;
            if flat.len() != 2 * rank()? || flat.iter().any(|&p| p < 0) {
                return Err(format!("paddings {flat:?} are not [rank, 2] non-negative values"));
            }
            let reflect = match opts {
                Some(OptRef::MirrorPadOptions(o)) => s(o.mode())? == tfl::MirrorPadMode::Reflect,
                _ => true,
            };
            let pads = flat.chunks(2).map(|c| [c[0] as usize, c[1] as usize]).collect();
            (Op::MirrorPad(MirrorPad { pads, reflect }), 1)
        }
        RESIZE_NEAREST_NEIGHBOR | RESIZE_BILINEAR => {
            let (align_corners, half_pixel_centers) = match opts {
                Some(OptRef::ResizeNearestNeighborOptions(o)) => (s(o.align_corners())?, s(o.half_pixel_centers())?),
                Some(OptRef::ResizeBilinearOptions(o)) => (s(o.align_corners())?, s(o.half_pixel_centers())?),
                _ => (false, false),
            };
            let size = const_ints(input(1)?, "size")?;
            let &[h, w] = size.as_slice() else { return Err(format!("size {size:?} is not [height, width]")) };
            let dim =
                |d: i64| usize::try_from(d).ok().filter(|&d| d > 0).ok_or(format!("size {size:?} is not positive"));
            let p = ResizeNearest { size: [dim(h)?, dim(w)?], align_corners, half_pixel_centers };
            (if code == RESIZE_BILINEAR { Op::ResizeBilinear(p) } else { Op::ResizeNearest(p) }, 1)
        }
        MAX_POOL_2D | AVERAGE_POOL_2D => {
            let Some(OptRef::Pool2DOptions(o)) = opts else { return Err(no_options("Pool2DOptions")) };
            let p = Pool2D {
                filter: [pos(o.filter_height())?, pos(o.filter_width())?],
                stride: [pos(o.stride_h())?, pos(o.stride_w())?],
                padding: padding_in(o.padding())?,
                activation: act_in(o.fused_activation_function())?,
            };
            (if code == MAX_POOL_2D { Op::MaxPool2D(p) } else { Op::AvgPool2D(p) }, 1)
        }
        MEAN | REDUCE_MAX | SUM => {
            let keep_dims = match opts {
                Some(OptRef::ReducerOptions(o)) => s(o.keep_dims())?,
                _ => false,
            };
            let r = rank()?;
            let mut axes =
                const_ints(input(1)?, "axes")?.into_iter().map(|a| axis_in(a, r)).collect::<Result<Vec<_>, _>>()?;
            axes.sort_unstable();
            axes.dedup();
            let p = Mean { axes, keep_dims };
            let op = match code {
                MEAN => Op::Mean(p),
                REDUCE_MAX => Op::ReduceMax(p),
                _ => Op::ReduceSum(p),
            };
            (op, 1)
        }
        MAXIMUM => (Op::Maximum, 2),
        MINIMUM => (Op::Minimum, 2),
        RELU => (Op::Relu, 1),
        RELU6 => (Op::Relu6, 1),
        RELU_N1_TO_1 => (Op::Clip(Clip { min: -1.0, max: 1.0 }), 1),
        LEAKY_RELU => {
            let alpha = match opts {
                Some(OptRef::LeakyReluOptions(o)) => s(o.alpha())?,
                _ => 0.0,
            };
            (Op::LeakyRelu(LeakyRelu { alpha }), 1)
        }
        PRELU => (Op::PRelu, 2),
        ELU => (Op::Elu, 1),
        ABS => (Op::Abs, 1),
        LOGISTIC => (Op::Sigmoid, 1),
        TANH => (Op::Tanh, 1),
        HARD_SWISH => (Op::HardSwish, 1),
        SOFTMAX => {
            let beta = match opts {
                Some(OptRef::SoftmaxOptions(o)) => s(o.beta())?,
                _ => 1.0,
            };
            (Op::Softmax(Softmax { beta }), 1)
        }
        LOG_SOFTMAX => (Op::LogSoftmax, 1),
        QUANTIZE => (Op::Quantize, 1),
        DEQUANTIZE => (Op::Dequantize, 1),
        _ => return Ok(None),
    };
    Ok(Some(op))
}

fn s<T>(r: planus::Result<T>) -> Result<T, String> {
    r.map_err(|e| format!("malformed options: {e}"))
}

fn no_options(table: &str) -> String {
    format!("the operator has no {table} (or options of another kind)")
}

fn pos(r: planus::Result<i32>) -> Result<usize, String> {
    let v = s(r)?;
    usize::try_from(v).ok().filter(|&v| v > 0).ok_or(format!("stride, dilation or window {v} is not positive"))
}

fn dim(d: usize) -> Result<i32, String> {
    i32::try_from(d).map_err(|_| format!("{d} does not fit TFLite's int32"))
}

fn axis_in(a: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    if (-r..r).contains(&a) {
        Ok(((a + r) % r.max(1)) as usize)
    } else {
        Err(format!("axis {a} is out of range for rank {rank}"))
    }
}

fn padding_in(p: planus::Result<tfl::Padding>) -> Result<Padding, String> {
    Ok(match s(p)? {
        tfl::Padding::Same => Padding::Same,
        tfl::Padding::Valid => Padding::Valid,
    })
}

fn padding_out(p: Padding) -> Result<tfl::Padding, String> {
    match p {
        Padding::Same => Ok(tfl::Padding::Same),
        Padding::Valid => Ok(tfl::Padding::Valid),
        Padding::Explicit { .. } => Err("explicit padding reached the exporter unlowered".into()),
    }
}

fn act_in(a: planus::Result<tfl::ActivationFunctionType>) -> Result<FusedActivation, String> {
    use tfl::ActivationFunctionType as A;
    match s(a)? {
        A::None => Ok(FusedActivation::None),
        A::Relu => Ok(FusedActivation::Relu),
        A::Relu6 => Ok(FusedActivation::Relu6),
        A::ReluN1To1 => Ok(FusedActivation::ReluN1To1),
        other @ (A::Tanh | A::SignBit) => Err(format!("fused activation {other:?} is not supported")),
    }
}

fn act_out(a: FusedActivation) -> tfl::ActivationFunctionType {
    use tfl::ActivationFunctionType as A;
    match a {
        FusedActivation::None => A::None,
        FusedActivation::Relu => A::Relu,
        FusedActivation::Relu6 => A::Relu6,
        FusedActivation::ReluN1To1 => A::ReluN1To1,
    }
}

fn conv_in(o: tfl::Conv2DOptionsRef<'_>) -> Result<Conv2D, String> {
    Ok(Conv2D {
        stride: [pos(o.stride_h())?, pos(o.stride_w())?],
        dilation: [pos(o.dilation_h_factor())?, pos(o.dilation_w_factor())?],
        padding: padding_in(o.padding())?,
        activation: act_in(o.fused_activation_function())?,
    })
}

fn conv_options(p: &Conv2D) -> Result<tfl::Conv2DOptions, String> {
    Ok(tfl::Conv2DOptions {
        padding: padding_out(p.padding)?,
        stride_w: dim(p.stride[1])?,
        stride_h: dim(p.stride[0])?,
        fused_activation_function: act_out(p.activation),
        dilation_w_factor: dim(p.dilation[1])?,
        dilation_h_factor: dim(p.dilation[0])?,
        quantized_bias_type: tfl::TensorType::Float32,
    })
}

fn pool_options(p: &Pool2D) -> Result<tfl::Pool2DOptions, String> {
    Ok(tfl::Pool2DOptions {
        padding: padding_out(p.padding)?,
        stride_w: dim(p.stride[1])?,
        stride_h: dim(p.stride[0])?,
        filter_width: dim(p.filter[1])?,
        filter_height: dim(p.filter[0])?,
        fused_activation_function: act_out(p.activation),
    })
}

/// Per-axis weights must be quantized along the axis the kernel reads (TFLM and LiteRT check).
fn check_weight_axis(w: &Tensor, axis: usize) -> Result<(), String> {
    match w.qparams.as_ref().and_then(|q| q.axis) {
        Some(a) if a != axis => Err(format!("weights `{}` are quantized along axis {a}, the op needs {axis}", w.name)),
        _ => Ok(()),
    }
}

/// Zeros for a conv without bias: f32, or int32 (int64 under int16 activations) with scale
/// `input_scale · weight_scale[c]`.
fn zero_bias(node: &str, x: &Tensor, w: &Tensor, channels: usize) -> Result<Tensor, String> {
    let name = format!("{node}/bias");
    if !is_int(x) {
        return Ok(Tensor::constant(name, vec![channels], TensorData::F32(vec![0.0; channels])));
    }
    let (Some(xq), Some(wq)) = (&x.qparams, &w.qparams) else {
        return Err(format!("integer conv without bias needs quantized `{}` and `{}`", x.name, w.name));
    };
    let zeros =
        if x.dtype == DType::I16 { TensorData::I64(vec![0; channels]) } else { TensorData::I32(vec![0; channels]) };
    let mut t = Tensor::constant(name, vec![channels], zeros);
    let xs = xq.scale.first().ok_or(format!("`{}` has no scale", x.name))?;
    let scale: Vec<f32> = wq.scale.iter().map(|&s| xs * s).collect();
    let axis = (scale.len() > 1).then_some(0);
    t.qparams = Some(tinyq_ir::QParams { zero_point: vec![0; scale.len()], scale, axis });
    Ok(t)
}

/// Integer values of a constant index tensor (a perm, axes, paddings).
/// A RESHAPE's constant shape operand (at most one -1) must describe the output tensor's size.
fn check_reshape_target(dims: &[i64], out: &[usize]) -> Result<(), String> {
    let numel = out.iter().try_fold(1u128, |a, &d| a.checked_mul(d as u128));
    let free = dims.iter().filter(|&&d| d == -1).count();
    let known = dims
        .iter()
        .filter(|&&d| d != -1)
        .try_fold(1u128, |a, &d| u128::try_from(d).ok().and_then(|d| a.checked_mul(d)));
    let fits = match (numel, known, free) {
        (Some(n), Some(k), 0) => n == k,
        (Some(n), Some(k), 1) => (k == 0 && n == 0) || (k > 0 && n % k == 0),
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        Err(format!("the shape operand {dims:?} does not describe the output shape {out:?}"))
    }
}

fn const_ints(t: &Tensor, what: &str) -> Result<Vec<i64>, String> {
    match &t.data {
        Some(d @ (TensorData::I32(_) | TensorData::I64(_))) => Ok(d.to_i64()),
        _ => Err(format!("{what} tensor `{}` must be a constant int32 or int64 tensor", t.name)),
    }
}

/// PADV2's constant value as a real number. TFLM pads an int16 tensor with the constant's raw
/// value whatever its quantization, so an int16 constant must carry the output's, which makes the
/// real value map back to that raw value.
fn pad_value_in(t: &Tensor, out: Option<&Tensor>) -> Result<f32, String> {
    if let Some(out) = out.filter(|o| o.dtype == DType::I16) {
        if t.dtype != DType::I16 || t.qparams.is_none() || t.qparams != out.qparams {
            return Err(format!(
                "the constant value `{}` of an int16 PADV2 must be int16 with the output's quantization",
                t.name
            ));
        }
    }
    let v = match (&t.data, &t.qparams) {
        (Some(d), Some(q)) if d.len() == 1 && !q.scale.is_empty() => {
            let zp = q.zero_point.first().copied().unwrap_or(0) as f32;
            (d.to_f32()[0] - zp) * q.scale[0]
        }
        (Some(d), _) if d.len() == 1 => d.to_f32()[0],
        _ => return Err(format!("constant value `{}` must be a constant with one element", t.name)),
    };
    Ok(v)
}

/// PADV2's constant value tensor: the output's dtype and quantization (TFLM checks they match).
fn pad_value_tensor(node: &str, value: f32, out: &Tensor) -> Result<Tensor, String> {
    let q = |lo: f32, hi: f32| {
        let p = out.qparams.as_ref().filter(|q| q.scale.len() == 1).ok_or(format!(
            "PADV2 on integer tensor `{}` needs per-tensor quantization to encode the value {value}",
            out.name
        ))?;
        let zp = p.zero_point.first().copied().unwrap_or(0) as f32;
        Ok::<f32, String>(((value / p.scale[0]).round() + zp).clamp(lo, hi))
    };
    let data = match out.dtype {
        DType::F32 => TensorData::F32(vec![value]),
        DType::F16 => TensorData::F16(vec![half::f16::from_f32(value)]),
        DType::I8 => TensorData::I8(vec![q(-128.0, 127.0)? as i8]),
        DType::U8 => TensorData::U8(vec![q(0.0, 255.0)? as u8]),
        DType::I16 => TensorData::I16(vec![q(-32768.0, 32767.0)? as i16]),
        DType::I4 | DType::I32 | DType::I64 => {
            return Err(format!("PADV2 with value {value} on {} is not supported", out.dtype.name()))
        }
    };
    let mut t = Tensor::constant(format!("{node}/constant_values"), vec![], data);
    t.qparams = out.qparams.clone();
    Ok(t)
}

#[cfg(test)]
mod int16_tests {
    use super::*;
    use tinyq_ir::QParams;

    fn int16(name: &str, shape: &[usize], scale: f32) -> Tensor {
        let q = QParams { scale: vec![scale], zero_point: vec![0], axis: None };
        Tensor { qparams: Some(q), ..Tensor::activation(name, shape.to_vec(), DType::I16) }
    }

    /// int16 x → ADD(x, x) → MAX_POOL_2D → AVERAGE_POOL_2D → MEAN → RESHAPE → PAD, written and read
    /// back.
    fn graph() -> Graph {
        let mut g = Graph::default();
        let x = g.add_tensor(int16("x", &[1, 4, 4, 2], 0.001));
        g.inputs.push(x);
        let pool =
            Pool2D { filter: [2, 2], stride: [1, 1], padding: Padding::Valid, activation: FusedActivation::None };
        let steps: [(&str, Op, &[usize], f32); 6] = [
            ("add", Op::Add(Binary { activation: FusedActivation::Relu }), &[1, 4, 4, 2], 0.002),
            ("max", Op::MaxPool2D(pool.clone()), &[1, 3, 3, 2], 0.002),
            ("avg", Op::AvgPool2D(pool), &[1, 2, 2, 2], 0.002),
            ("mean", Op::Mean(Mean { axes: vec![1, 2], keep_dims: false }), &[1, 2], 0.0015),
            ("flat", Op::Reshape, &[2], 0.0015),
            ("pad", Op::Pad(Pad { pads: vec![[1, 0]], value: 0.0 }), &[3], 0.0015),
        ];
        let mut prev = x;
        for (name, op, shape, scale) in steps {
            let inputs = if name == "add" { vec![x, x] } else { vec![prev] };
            let out = g.add_tensor(int16(name, shape, scale));
            g.nodes.push(Node { name: name.into(), op, inputs, outputs: vec![out] });
            prev = out;
        }
        g.outputs.push(prev);
        g.validate().expect("valid test graph");
        g
    }

    #[test]
    fn int16_ops_get_their_versions_and_round_trip() {
        let g = graph();
        let exported: Vec<(i32, i32)> =
            g.nodes.iter().map(|n| export_op(&g, n).map(|e| (e.code, e.version))).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            exported,
            [(ADD, 3), (MAX_POOL_2D, 3), (AVERAGE_POOL_2D, 3), (MEAN, 3), (RESHAPE, 1), (PAD, 3)],
            "LiteRT op_version.cc for int16"
        );
        let Some(Opt::AddOptions(o)) = export_op(&g, &g.nodes[0]).unwrap().options else { panic!("no AddOptions") };
        assert!(!o.pot_scale_int16, "int16 ADD must say general scales");
        let runtimes: Vec<&str> = exported.iter().map(|&(c, v)| min_runtime_version(c, v)).collect();
        assert_eq!(runtimes, ["2.4.0", "2.3.0", "2.3.0", "2.4.0", "1.5.0", "2.4.0"]);
        let bytes = crate::write_tflite(&g).unwrap();
        let back = crate::read_tflite(&bytes).unwrap();
        let ops: Vec<&Op> = back.nodes.iter().map(|n| &n.op).collect();
        assert_eq!(ops, g.nodes.iter().map(|n| &n.op).collect::<Vec<_>>());
        assert!(back.tensors.iter().filter(|t| t.data.is_none()).all(|t| t.dtype == DType::I16));
    }
}

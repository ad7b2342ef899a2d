//! Standalone activations on int8: RELU, RELU6, clip (RELU_N1_TO_1), LEAKY_RELU, ELU, ABS, LOGISTIC,
//! TANH, HARD_SWISH and SOFTMAX. Kernels: `tinyq_kernels::{requantize, leaky_relu, elu, abs,
//! logistic, tanh, hard_swish, softmax}`.
//!
//! RELU and clip follow TFLite's `ReluX`: rescale with `QuantizeMultiplier(in_s / out_s)`, then
//! clamp to the range quantized with the output parameters — that is `Requantize` followed by a
//! clamp. TFLM's RELU6 does not rescale at all (it clamps raw values to `[in_zp, q(6)]` with the
//! input parameters), so RELU6 is accepted only when input and output share quantization, where
//! both readings agree.

use tinyq_ir::op;
use tinyq_kernels::abs::{abs_s8, prepare_abs_s8, AbsParams};
use tinyq_kernels::elu::{elu_s8, prepare_elu_s8, EluParams};
use tinyq_kernels::hard_swish::{hard_swish_s8, prepare_hard_swish_s8, HardSwishParams};
use tinyq_kernels::leaky_relu::{leaky_relu_s8, prepare_leaky_relu_s8, LeakyReluParams};
use tinyq_kernels::log_softmax::{log_softmax_s8, prepare_log_softmax_s8, LogSoftmaxParams};
use tinyq_kernels::logistic::{logistic_s8, prepare_logistic_s8, LogisticParams};
use tinyq_kernels::requantize::{prepare_requantize_s8, requantize_s8, RequantizeParams};
use tinyq_kernels::softmax::{prepare_softmax_s8, softmax_s8, SoftmaxParams};
use tinyq_kernels::tanh::{prepare_tanh_s8, tanh_s8, TanhParams};
use tinyq_kernels::{calculate_activation_range_quantized, FusedActivation, QParamsS8, Rounding};

use super::{Ctx, Kernel, Prepared};
use crate::Int8Error;

pub(crate) enum Activation {
    ReluX { rescale: RequantizeParams, act_min: i8, act_max: i8 },
    LeakyRelu(LeakyReluParams),
    Logistic(LogisticParams),
    Tanh(TanhParams),
    HardSwish(HardSwishParams),
    Elu(Box<EluParams>),
    Abs(AbsParams),
    Softmax(SoftmaxParams),
    LogSoftmax(LogSoftmaxParams),
}

fn unary(ctx: &Ctx<'_>) -> Result<(QParamsS8, QParamsS8), Int8Error> {
    ctx.expect_inputs(1..=1)?;
    Ok((ctx.s8(ctx.input(0)?)?, ctx.s8(ctx.output())?))
}

fn done(ctx: &Ctx<'_>, activation: Activation) -> Result<Prepared, Int8Error> {
    Ok((Kernel::Activation(activation), vec![ctx.input_id(0)]))
}

fn relu_x(ctx: &Ctx<'_>, input: QParamsS8, output: QParamsS8, range: (i32, i32)) -> Result<Prepared, Int8Error> {
    let rescale = prepare_requantize_s8(input, output, Rounding::Double).map_err(ctx.kernel_err())?;
    let (lo, hi) = (range.0.max(i8::MIN as i32), range.1.min(i8::MAX as i32));
    if lo > hi {
        return Err(ctx.err(format!("the clamp range [{lo}, {hi}] is empty in the output's int8 range")));
    }
    done(ctx, Activation::ReluX { rescale, act_min: lo as i8, act_max: hi as i8 })
}

pub(crate) fn prepare_relu(ctx: &Ctx<'_>) -> Result<Prepared, Int8Error> {
    let (input, output) = unary(ctx)?;
    let range = calculate_activation_range_quantized(FusedActivation::Relu, output);
    relu_x(ctx, input, output, range)
}

pub(crate) fn prepare_relu6(ctx: &Ctx<'_>) -> Result<Prepared, Int8Error> {
    let (input, output) = unary(ctx)?;
    if input.scale.to_bits() != output.scale.to_bits() || input.zero_point != output.zero_point {
        return Err(ctx.err(format!(
            "TFLM's RELU6 ignores the output quantization: input (scale {:e}, zero point {}) and output \
             (scale {:e}, zero point {}) must be equal",
            input.scale, input.zero_point, output.scale, output.zero_point
        )));
    }
    let range = calculate_activation_range_quantized(FusedActivation::Relu6, output);
    relu_x(ctx, input, output, range)
}

pub(crate) fn prepare_clip(ctx: &Ctx<'_>, p: &op::Clip) -> Result<Prepared, Int8Error> {
    let (input, output) = unary(ctx)?;
    let quantize = |v: f32| -> Result<i32, Int8Error> {
        if v.is_infinite() {
            return Ok(if v > 0.0 { i8::MAX as i32 } else { i8::MIN as i32 });
        }
        let q = (v / output.scale).round();
        if q.is_nan() {
            return Err(ctx.err(format!("clip bound {v} cannot be quantized")));
        }
        Ok(output.zero_point.saturating_add(q as i32))
    };
    let range = (quantize(p.min)?, quantize(p.max)?);
    relu_x(ctx, input, output, range)
}

pub(crate) fn prepare_leaky_relu(ctx: &Ctx<'_>, p: &op::LeakyRelu) -> Result<Prepared, Int8Error> {
    let (input, output) = unary(ctx)?;
    let params = prepare_leaky_relu_s8(p.alpha, input, output, Rounding::Double).map_err(ctx.kernel_err())?;
    done(ctx, Activation::LeakyRelu(params))
}

pub(crate) fn prepare_logistic(ctx: &Ctx<'_>) -> Result<Prepared, Int8Error> {
    let (input, output) = unary(ctx)?;
    let params = prepare_logistic_s8(input, output, Rounding::Double).map_err(ctx.kernel_err())?;
    done(ctx, Activation::Logistic(params))
}

pub(crate) fn prepare_tanh(ctx: &Ctx<'_>) -> Result<Prepared, Int8Error> {
    let (input, output) = unary(ctx)?;
    let params = prepare_tanh_s8(input, output, Rounding::Double).map_err(ctx.kernel_err())?;
    done(ctx, Activation::Tanh(params))
}

pub(crate) fn prepare_elu(ctx: &Ctx<'_>) -> Result<Prepared, Int8Error> {
    let (input, output) = unary(ctx)?;
    let params = prepare_elu_s8(input, output).map_err(ctx.kernel_err())?;
    done(ctx, Activation::Elu(Box::new(params)))
}

pub(crate) fn prepare_abs(ctx: &Ctx<'_>) -> Result<Prepared, Int8Error> {
    let (input, output) = unary(ctx)?;
    let params = prepare_abs_s8(input, output, Rounding::Double).map_err(ctx.kernel_err())?;
    done(ctx, Activation::Abs(params))
}

pub(crate) fn prepare_hard_swish(ctx: &Ctx<'_>) -> Result<Prepared, Int8Error> {
    let (input, output) = unary(ctx)?;
    let params = prepare_hard_swish_s8(input, output).map_err(ctx.kernel_err())?;
    done(ctx, Activation::HardSwish(params))
}

pub(crate) fn prepare_softmax(ctx: &Ctx<'_>, p: &op::Softmax) -> Result<Prepared, Int8Error> {
    let (input, output) = unary(ctx)?;
    let depth = ctx.input(0)?.shape.last().copied().unwrap_or(1);
    let params = prepare_softmax_s8(p.beta, input, output, depth, Rounding::Double).map_err(ctx.kernel_err())?;
    done(ctx, Activation::Softmax(params))
}

pub(crate) fn prepare_log_softmax(ctx: &Ctx<'_>) -> Result<Prepared, Int8Error> {
    let (input, output) = unary(ctx)?;
    let depth = ctx.input(0)?.shape.last().copied().unwrap_or(1);
    let params = prepare_log_softmax_s8(input, output, depth).map_err(ctx.kernel_err())?;
    done(ctx, Activation::LogSoftmax(params))
}

impl Activation {
    pub fn eval(&self, input: &[i8], output: &mut [i8]) {
        match self {
            Activation::ReluX { rescale, act_min, act_max } => {
                requantize_s8(rescale, input, output);
                output.iter_mut().for_each(|v| *v = (*v).clamp(*act_min, *act_max));
            }
            Activation::LeakyRelu(p) => leaky_relu_s8(p, input, output),
            Activation::Logistic(p) => logistic_s8(p, input, output),
            Activation::Tanh(p) => tanh_s8(p, input, output),
            Activation::HardSwish(p) => hard_swish_s8(p, input, output),
            Activation::Elu(p) => elu_s8(p, input, output),
            Activation::Abs(p) => abs_s8(p, input, output),
            Activation::Softmax(p) => softmax_s8(p, input, output),
            Activation::LogSoftmax(p) => log_softmax_s8(p, input, output),
        }
    }
}

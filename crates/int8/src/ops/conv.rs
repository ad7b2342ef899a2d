//! CONV_2D and DEPTHWISE_CONV_2D: int8 activations, int8 weights quantized per channel (axis 0
//! for conv, 3 for depthwise) or per tensor, optional int32 bias. Kernels:
//! `tinyq_kernels::conv::conv_per_channel_im2col` and `tinyq_kernels::depthwise_conv::depthwise_conv_per_channel`
//! (TFLM `reference_integer_ops::ConvPerChannel` / `DepthwiseConvPerChannel`).

use tinyq_ir::op;
use tinyq_kernels::conv::{
    conv_per_channel_im2col, im2col_scratch_len, prepare_conv_per_channel, ConvOptions, ConvPerChannelParams,
    ConvQParams,
};
use tinyq_kernels::depthwise_conv::{
    depthwise_conv_per_channel, prepare_depthwise_conv_per_channel, DepthwiseConvOptions, DepthwiseConvPerChannelParams,
};
use tinyq_kernels::Rounding;

use super::{activation, Ctx, Kernel, Prepared};
use crate::Int8Error;

/// A prepared conv-like layer with per-channel multipliers: `P` is the kernel's params, `B` the
/// bias type (int32 for int8 layers, int64 for 16x8 ones).
pub(crate) struct PerChannelKernel<P, B> {
    pub params: P,
    pub multiplier: Vec<i32>,
    pub shift: Vec<i32>,
    pub filter: Vec<i8>,
    pub bias: Option<Vec<B>>,
}

pub(crate) type Conv2D = PerChannelKernel<ConvPerChannelParams, i32>;
pub(crate) type DepthwiseConv2D = PerChannelKernel<DepthwiseConvPerChannelParams, i32>;

/// CONV_2D's builtin options.
pub(super) fn conv_options(ctx: &Ctx<'_>, p: &op::Conv2D) -> Result<ConvOptions, Int8Error> {
    Ok(ConvOptions {
        padding: ctx.padding(p.padding)?,
        stride_height: p.stride[0],
        stride_width: p.stride[1],
        dilation_height: p.dilation[0],
        dilation_width: p.dilation[1],
        activation: activation(p.activation),
    })
}

/// Fails unless the op's depth multiplier is what the input and filter depths imply.
pub(super) fn check_depth_multiplier(
    ctx: &Ctx<'_>,
    p: &op::DepthwiseConv2D,
    input_shape: [usize; 4],
    channels: usize,
) -> Result<(), Int8Error> {
    if input_shape[3] * p.depth_multiplier != channels {
        return Err(ctx.err(format!(
            "depth multiplier {} does not match input depth {} and filter depth {channels}",
            p.depth_multiplier, input_shape[3]
        )));
    }
    Ok(())
}

/// DEPTHWISE_CONV_2D's builtin options.
pub(super) fn depthwise_options(ctx: &Ctx<'_>, p: &op::DepthwiseConv2D) -> Result<DepthwiseConvOptions, Int8Error> {
    let c = &p.conv;
    Ok(DepthwiseConvOptions {
        padding: ctx.padding(c.padding)?,
        stride_height: c.stride[0],
        stride_width: c.stride[1],
        dilation_height: c.dilation[0],
        dilation_width: c.dilation[1],
        activation: activation(c.activation),
    })
}

pub(crate) fn prepare_conv2d(ctx: &Ctx<'_>, p: &op::Conv2D) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(2..=3)?;
    let (x, w) = (ctx.input(0)?, ctx.input(1)?);
    let (input, output) = (ctx.s8(x)?, ctx.s8(ctx.output())?);
    let filter_shape = ctx.nhwc(w)?;
    let channels = filter_shape[0];
    let wq = ctx.weight_qparams(w, 0, channels)?;
    let qparams = ConvQParams { input, filter_scales: &wq.scale, filter_zero_points: &wq.zero_point, output };
    let options = conv_options(ctx, p)?;
    let (mut multiplier, mut shift) = (vec![0; channels], vec![0; channels]);
    let params = prepare_conv_per_channel(
        ctx.nhwc(x)?,
        filter_shape,
        &options,
        &qparams,
        Rounding::Double,
        &mut multiplier,
        &mut shift,
    )
    .map_err(ctx.kernel_err())?;
    ctx.check_output_shape(&params.output_shape)?;
    let kernel = Conv2D { params, multiplier, shift, filter: ctx.const_i8(w)?.to_vec(), bias: ctx.bias(2, channels)? };
    Ok((Kernel::Conv2D(kernel), vec![ctx.input_id(0)]))
}

pub(crate) fn prepare_depthwise_conv2d(ctx: &Ctx<'_>, p: &op::DepthwiseConv2D) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(2..=3)?;
    let (x, w) = (ctx.input(0)?, ctx.input(1)?);
    let (input, output) = (ctx.s8(x)?, ctx.s8(ctx.output())?);
    let (input_shape, filter_shape) = (ctx.nhwc(x)?, ctx.nhwc(w)?);
    let channels = filter_shape[3];
    check_depth_multiplier(ctx, p, input_shape, channels)?;
    let wq = ctx.weight_qparams(w, 3, channels)?;
    let qparams = ConvQParams { input, filter_scales: &wq.scale, filter_zero_points: &wq.zero_point, output };
    let options = depthwise_options(ctx, p)?;
    let (mut multiplier, mut shift) = (vec![0; channels], vec![0; channels]);
    let params = prepare_depthwise_conv_per_channel(
        input_shape,
        filter_shape,
        &options,
        &qparams,
        Rounding::Double,
        &mut multiplier,
        &mut shift,
    )
    .map_err(ctx.kernel_err())?;
    ctx.check_output_shape(&params.output_shape)?;
    let kernel =
        DepthwiseConv2D { params, multiplier, shift, filter: ctx.const_i8(w)?.to_vec(), bias: ctx.bias(2, channels)? };
    Ok((Kernel::DepthwiseConv2D(kernel), vec![ctx.input_id(0)]))
}

impl Conv2D {
    /// The im2col variant of the reference kernel (bit-identical, several times faster).
    pub fn eval(&self, input: &[i8], output: &mut [i8]) {
        let mut scratch = vec![0i32; im2col_scratch_len(&self.params)];
        conv_per_channel_im2col(
            &self.params,
            &self.multiplier,
            &self.shift,
            input,
            &self.filter,
            self.bias.as_deref(),
            &mut scratch,
            output,
        );
    }
}

impl DepthwiseConv2D {
    pub fn eval(&self, input: &[i8], output: &mut [i8]) {
        depthwise_conv_per_channel(
            &self.params,
            &self.multiplier,
            &self.shift,
            input,
            &self.filter,
            self.bias.as_deref(),
            output,
        );
    }
}

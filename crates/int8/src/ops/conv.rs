//! CONV_2D and DEPTHWISE_CONV_2D: int8 activations, int8 or int4 weights quantized per channel
//! (axis 0 for conv, 3 for depthwise) or per tensor, optional int32 bias. Int4 weights (held
//! unpacked by the IR) become the int8 filter at prepare, as TFLM's reference kernels unpack them
//! into an arena buffer, so the same kernels run both. Kernels:
//! `tinyq_kernels::fast::{conv::ConvFast, depthwise_conv::DepthwiseConvFast}` by default, bit-identical
//! to `tinyq_kernels::conv::conv_per_channel` and `tinyq_kernels::depthwise_conv::depthwise_conv_per_channel`
//! (TFLM `reference_integer_ops::ConvPerChannel` / `DepthwiseConvPerChannel`), which run instead
//! under [`crate::Kernels::Reference`]. Both take any number of samples back to back.

use tinyq_ir::op;
use tinyq_kernels::conv::{conv_per_channel, prepare_conv_per_channel, ConvOptions, ConvPerChannelParams, ConvQParams};
use tinyq_kernels::depthwise_conv::{
    depthwise_conv_per_channel, prepare_depthwise_conv_per_channel, DepthwiseConvOptions, DepthwiseConvPerChannelParams,
};
use tinyq_kernels::fast::conv::ConvFast;
use tinyq_kernels::fast::depthwise_conv::DepthwiseConvFast;
use tinyq_kernels::Rounding;

use super::fast::{isa, with_scratch};
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

/// An int8 conv-like layer: the reference kernel's inputs, and the fast kernel unless the plan
/// runs the reference kernels (or the fast one does not cover the params).
pub(crate) struct WithFast<P, F> {
    pub reference: PerChannelKernel<P, i32>,
    pub fast: Option<F>,
}

pub(crate) type Conv2D = WithFast<ConvPerChannelParams, ConvFast>;
pub(crate) type DepthwiseConv2D = WithFast<DepthwiseConvPerChannelParams, DepthwiseConvFast>;

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
    let reference =
        PerChannelKernel { params, multiplier, shift, filter: ctx.const_i8(w)?.to_vec(), bias: ctx.bias(2, channels)? };
    let fast = isa(ctx.kernels).and_then(|isa| {
        let r = &reference;
        ConvFast::new(&r.params, &r.multiplier, &r.shift, &r.filter, r.bias.as_deref(), isa)
    });
    Ok((Kernel::Conv2D(Conv2D { reference, fast }), vec![ctx.input_id(0)]))
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
    let reference =
        PerChannelKernel { params, multiplier, shift, filter: ctx.const_i8(w)?.to_vec(), bias: ctx.bias(2, channels)? };
    let fast = isa(ctx.kernels).and_then(|isa| {
        let r = &reference;
        DepthwiseConvFast::new(&r.params, &r.multiplier, &r.shift, &r.filter, r.bias.as_deref(), isa)
    });
    Ok((Kernel::DepthwiseConv2D(DepthwiseConv2D { reference, fast }), vec![ctx.input_id(0)]))
}

impl Conv2D {
    pub fn eval(&self, input: &[i8], output: &mut [i8]) {
        if let Some(fast) = &self.fast {
            return with_scratch(fast.scratch_len(), |scratch| fast.eval(input, scratch, output));
        }
        let r = &self.reference;
        per_sample(&r.params.input_shape, &r.params.output_shape, input, output, |x, y| {
            conv_per_channel(&r.params, &r.multiplier, &r.shift, x, &r.filter, r.bias.as_deref(), y)
        });
    }
}

impl DepthwiseConv2D {
    pub fn eval(&self, input: &[i8], output: &mut [i8]) {
        if let Some(fast) = &self.fast {
            return with_scratch(fast.scratch_len(), |scratch| fast.eval(input, scratch, output));
        }
        let r = &self.reference;
        per_sample(&r.params.input_shape, &r.params.output_shape, input, output, |x, y| {
            depthwise_conv_per_channel(&r.params, &r.multiplier, &r.shift, x, &r.filter, r.bias.as_deref(), y)
        });
    }
}

/// Runs `kernel` on each sample of `input` (samples of `input_shape`, back to back) and the
/// matching part of `output`.
pub(crate) fn per_sample<X, Y>(
    input_shape: &[usize],
    output_shape: &[usize],
    input: &[X],
    output: &mut [Y],
    mut kernel: impl FnMut(&[X], &mut [Y]),
) {
    let (x_len, y_len) = (input_shape.iter().product::<usize>(), output_shape.iter().product::<usize>());
    assert!(input.len().is_multiple_of(x_len) && output.len() / y_len == input.len() / x_len);
    for (x, y) in input.chunks_exact(x_len).zip(output.chunks_exact_mut(y_len)) {
        kernel(x, y);
    }
}

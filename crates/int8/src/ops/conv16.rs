//! The 16x8 layers: CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED with int16 input and output
//! (zero point 0), int8 weights (per channel along axis 0 / 3 or per tensor for the convs, per
//! tensor for fully connected) and optional int64 bias. Kernels: `tinyq_kernels::conv16`
//! (TFLM's int16 `ConvPerChannel`, `DepthwiseConvPerChannel`, `FullyConnected`). The geometry
//! and option checks are the int8 layers' (`conv.rs`, `fully_connected.rs`).

use tinyq_ir::op;
use tinyq_kernels::conv::ConvPerChannelParams;
use tinyq_kernels::conv16::{
    conv_16x8, depthwise_conv_16x8, fully_connected_16x8, prepare_conv_16x8, prepare_depthwise_conv_16x8,
    prepare_fully_connected_16x8 as prepare_fc_kernel, Conv16QParams,
};
use tinyq_kernels::depthwise_conv::DepthwiseConvPerChannelParams;
use tinyq_kernels::fully_connected::FullyConnectedParams;
use tinyq_kernels::QParamsS8;

use super::conv::{check_depth_multiplier, conv_options, depthwise_options, PerChannelKernel};
use super::fully_connected::{bias_scale, fully_connected_shape};
use super::{activation, Ctx, Kernel, Prepared};
use crate::Int8Error;

pub(crate) type Conv2D16 = PerChannelKernel<ConvPerChannelParams, i64>;
pub(crate) type DepthwiseConv2D16 = PerChannelKernel<DepthwiseConvPerChannelParams, i64>;

pub(crate) struct FullyConnected16 {
    params: FullyConnectedParams,
    filter: Vec<i8>,
    bias: Option<Vec<i64>>,
}

pub(crate) fn prepare_conv2d_16x8(ctx: &Ctx<'_>, p: &op::Conv2D) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(2..=3)?;
    let (x, w) = (ctx.input(0)?, ctx.input(1)?);
    let (input, output) = (ctx.s16(x)?, ctx.s16(ctx.output())?);
    ctx.not_int4(w, "int16 activations")?;
    let filter_shape = ctx.nhwc(w)?;
    let channels = filter_shape[0];
    let wq = ctx.weight_qparams(w, 0, channels)?;
    let qparams = Conv16QParams { input, filter_scales: &wq.scale, filter_zero_points: &wq.zero_point, output };
    let options = conv_options(ctx, p)?;
    let (mut multiplier, mut shift) = (vec![0; channels], vec![0; channels]);
    let params = prepare_conv_16x8(ctx.nhwc(x)?, filter_shape, &options, &qparams, &mut multiplier, &mut shift)
        .map_err(ctx.kernel_err())?;
    ctx.check_output_shape(&params.output_shape)?;
    let kernel =
        Conv2D16 { params, multiplier, shift, filter: ctx.const_i8(w)?.to_vec(), bias: ctx.bias_i64(2, channels)? };
    Ok((Kernel::Conv2D16(kernel), vec![ctx.input_id(0)]))
}

pub(crate) fn prepare_depthwise_conv2d_16x8(ctx: &Ctx<'_>, p: &op::DepthwiseConv2D) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(2..=3)?;
    let (x, w) = (ctx.input(0)?, ctx.input(1)?);
    let (input, output) = (ctx.s16(x)?, ctx.s16(ctx.output())?);
    ctx.not_int4(w, "int16 activations")?;
    let (input_shape, filter_shape) = (ctx.nhwc(x)?, ctx.nhwc(w)?);
    let channels = filter_shape[3];
    check_depth_multiplier(ctx, p, input_shape, channels)?;
    let wq = ctx.weight_qparams(w, 3, channels)?;
    let qparams = Conv16QParams { input, filter_scales: &wq.scale, filter_zero_points: &wq.zero_point, output };
    let options = depthwise_options(ctx, p)?;
    let (mut multiplier, mut shift) = (vec![0; channels], vec![0; channels]);
    let params =
        prepare_depthwise_conv_16x8(input_shape, filter_shape, &options, &qparams, &mut multiplier, &mut shift)
            .map_err(ctx.kernel_err())?;
    ctx.check_output_shape(&params.output_shape)?;
    let kernel = DepthwiseConv2D16 {
        params,
        multiplier,
        shift,
        filter: ctx.const_i8(w)?.to_vec(),
        bias: ctx.bias_i64(2, channels)?,
    };
    Ok((Kernel::DepthwiseConv2D16(kernel), vec![ctx.input_id(0)]))
}

pub(crate) fn prepare_fully_connected_16x8(ctx: &Ctx<'_>, p: &op::FullyConnected) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(2..=3)?;
    let (x, w) = (ctx.input(0)?, ctx.input(1)?);
    let (input, output) = (ctx.s16(x)?, ctx.s16(ctx.output())?);
    ctx.not_int4(w, "int16 activations")?;
    let shape = fully_connected_shape(ctx, x, w)?;
    let units = shape.output_depth;
    let wq = ctx.weight_qparams(w, 0, units)?;
    if wq.scale.len() != 1 {
        return Err(ctx.err(format!(
            "weights `{}` of a 16x8 fully connected layer are quantized per channel; only per-tensor weights are supported",
            w.name
        )));
    }
    let bias_scale = bias_scale(ctx)?;
    let filter = QParamsS8::new(wq.scale[0], wq.zero_point[0]);
    let params = prepare_fc_kernel(shape, input, filter, bias_scale, output, activation(p.activation))
        .map_err(ctx.kernel_err())?;
    let kernel = FullyConnected16 { params, filter: ctx.const_i8(w)?.to_vec(), bias: ctx.bias_i64(2, units)? };
    Ok((Kernel::FullyConnected16(kernel), vec![ctx.input_id(0)]))
}

impl Conv2D16 {
    pub fn eval(&self, input: &[i16], output: &mut [i16]) {
        conv_16x8(&self.params, &self.multiplier, &self.shift, input, &self.filter, self.bias.as_deref(), output);
    }
}

impl DepthwiseConv2D16 {
    pub fn eval(&self, input: &[i16], output: &mut [i16]) {
        depthwise_conv_16x8(
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

impl FullyConnected16 {
    pub fn eval(&self, input: &[i16], output: &mut [i16]) {
        fully_connected_16x8(&self.params, input, &self.filter, self.bias.as_deref(), output);
    }
}

//! Float32 kernels for the nodes a quantized model itself keeps in float (between a DEQUANTIZE
//! and a QUANTIZE): CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, the data movement around them
//! (RESHAPE, TRANSPOSE) and the PAD that explicit padding of such a conv becomes in the file.
//!
//! Each mirrors TFLM's float reference kernel in summation order, since float addition is not
//! associative: `reference_ops::Conv` (`kernels/internal/reference/conv.h`: per output element a
//! float32 `total` over filter_y, filter_x, in_channel, skipping taps outside the image, then
//! `total + bias`, then the activation clamp), `reference_ops::DepthwiseConv`
//! (`depthwiseconv_float.h`: over filter_y, filter_x), `reference_ops::FullyConnected`
//! (`fully_connected.h`: over the depth), and `reference_ops::Pad` (fills with 0.0). Products
//! and sums are separate float32 operations (no fused multiply-add), as TFLM's x86-64 build
//! computes them. The activation clamp is `min(max(x, lo), hi)` with TFLM's float activation
//! ranges (`CalculateActivationRange`).
//!
//! What this is not: a fast float engine (that is `tinyq-float`, whose GEMM sums in another
//! order). These are the documented exception to "the integer engine does no float math while
//! evaluating": the model asks for float here, and TFLM computes it with these loops.

use tinyq_ir::{op, DType, FusedActivation, TensorData};
use tinyq_kernels::pad::{pad, prepare_pad, PadParams};
use tinyq_kernels::padding::{compute_padding_height_width, PaddingValues};
use tinyq_kernels::reshape::{prepare_reshape, reshape};
use tinyq_kernels::transpose::{prepare_transpose, transpose, TransposeParams};

use crate::ops::{Ctx, Kernel, Prepared};
use crate::Int8Error;

/// TFLM `CalculateActivationRange<float>`.
fn activation_range_f32(a: FusedActivation) -> (f32, f32) {
    match a {
        FusedActivation::None => (f32::MIN, f32::MAX),
        FusedActivation::Relu => (0.0, f32::MAX),
        FusedActivation::Relu6 => (0.0, 6.0),
        FusedActivation::ReluN1To1 => (-1.0, 1.0),
    }
}

/// `std::min(std::max(x, lo), hi)`.
fn clamp_f32(x: f32, lo: f32, hi: f32) -> f32 {
    let x = if x < lo { lo } else { x };
    if hi < x {
        hi
    } else {
        x
    }
}

pub(crate) struct ConvF32 {
    input_shape: [usize; 4],
    filter_shape: [usize; 4],
    output_shape: [usize; 4],
    stride: [usize; 2],
    dilation: [usize; 2],
    padding: PaddingValues,
    activation: (f32, f32),
    filter: Vec<f32>,
    bias: Option<Vec<f32>>,
    /// DEPTHWISE_CONV_2D's depth multiplier; `None` for CONV_2D.
    depth_multiplier: Option<usize>,
}

pub(crate) struct FullyConnectedF32 {
    batches: usize,
    accum_depth: usize,
    output_depth: usize,
    activation: (f32, f32),
    filter: Vec<f32>,
    bias: Option<Vec<f32>>,
}

pub(crate) struct PadF32 {
    params: PadParams,
}

pub(crate) struct TransposeF32 {
    params: TransposeParams,
}

fn check_f32(ctx: &Ctx<'_>, t: &tinyq_ir::Tensor) -> Result<(), Int8Error> {
    if t.dtype != DType::F32 {
        return Err(ctx.err(format!("tensor `{}` is {}, a float node needs float32", t.name, t.dtype.name())));
    }
    Ok(())
}

fn const_f32(ctx: &Ctx<'_>, k: usize, len: usize) -> Result<Option<Vec<f32>>, Int8Error> {
    let Some(&id) = ctx.node.inputs.get(k) else { return Ok(None) };
    let t = ctx.graph.tensor(id);
    match &t.data {
        Some(TensorData::F32(v)) if v.len() == len => Ok(Some(v.clone())),
        _ => Err(ctx.err(format!(
            "`{}` must be a constant float32 tensor of {len} values in a float node, is {} {:?}",
            t.name,
            t.dtype.name(),
            t.shape
        ))),
    }
}

fn prepare_conv_common(ctx: &Ctx<'_>, c: &op::Conv2D, depth_multiplier: Option<usize>) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(2..=3)?;
    let (x, w) = (ctx.input(0)?, ctx.input(1)?);
    check_f32(ctx, x)?;
    check_f32(ctx, ctx.output())?;
    let (input_shape, filter_shape) = (ctx.nhwc(x)?, ctx.nhwc(w)?);
    let channels = if depth_multiplier.is_some() { filter_shape[3] } else { filter_shape[0] };
    match depth_multiplier {
        Some(m) if input_shape[3] * m != channels || filter_shape[0] != 1 => {
            return Err(ctx.err(format!(
                "depth multiplier {m} does not match input depth {} and filter shape {filter_shape:?}",
                input_shape[3]
            )))
        }
        None if filter_shape[3] == 0
            || !input_shape[3].is_multiple_of(filter_shape[3])
            || !channels.is_multiple_of(input_shape[3] / filter_shape[3]) =>
        {
            return Err(ctx.err(format!("input depth {} does not fit filter shape {filter_shape:?}", input_shape[3])))
        }
        _ => {}
    }
    if c.stride.contains(&0) || c.dilation.contains(&0) {
        return Err(ctx.err("strides and dilations must be positive"));
    }
    let padding = ctx.padding(c.padding)?;
    let (padding, out_h, out_w) = compute_padding_height_width(
        c.stride[0],
        c.stride[1],
        c.dilation[0],
        c.dilation[1],
        input_shape[1],
        input_shape[2],
        filter_shape[1],
        filter_shape[2],
        padding,
    );
    let output_shape = [input_shape[0], out_h, out_w, channels];
    ctx.check_output_shape(&output_shape)?;
    let filter = const_f32(ctx, 1, filter_shape.iter().product())?.unwrap_or_default();
    let kernel = ConvF32 {
        input_shape,
        filter_shape,
        output_shape,
        stride: c.stride,
        dilation: c.dilation,
        padding,
        activation: activation_range_f32(c.activation),
        filter,
        bias: const_f32(ctx, 2, channels)?,
        depth_multiplier,
    };
    Ok((Kernel::FloatConv(kernel), vec![ctx.input_id(0)]))
}

pub(crate) fn prepare_conv2d_f32(ctx: &Ctx<'_>, p: &op::Conv2D) -> Result<Prepared, Int8Error> {
    prepare_conv_common(ctx, p, None)
}

pub(crate) fn prepare_depthwise_conv2d_f32(ctx: &Ctx<'_>, p: &op::DepthwiseConv2D) -> Result<Prepared, Int8Error> {
    prepare_conv_common(ctx, &p.conv, Some(p.depth_multiplier))
}

pub(crate) fn prepare_fully_connected_f32(ctx: &Ctx<'_>, p: &op::FullyConnected) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(2..=3)?;
    let (x, w) = (ctx.input(0)?, ctx.input(1)?);
    check_f32(ctx, x)?;
    check_f32(ctx, ctx.output())?;
    let [units, depth] = w.shape[..] else {
        return Err(ctx.err(format!("weights `{}` have shape {:?}, expected [units, depth]", w.name, w.shape)));
    };
    let out = ctx.output();
    if units == 0 || !out.numel().is_multiple_of(units) || x.numel() != out.numel() / units * depth {
        return Err(
            ctx.err(format!("input {:?} and output {:?} do not fit weights [{units}, {depth}]", x.shape, out.shape))
        );
    }
    let kernel = FullyConnectedF32 {
        batches: out.numel() / units,
        accum_depth: depth,
        output_depth: units,
        activation: activation_range_f32(p.activation),
        filter: const_f32(ctx, 1, units * depth)?.unwrap_or_default(),
        bias: const_f32(ctx, 2, units)?,
    };
    Ok((Kernel::FloatFullyConnected(kernel), vec![ctx.input_id(0)]))
}

pub(crate) fn prepare_pad_f32(ctx: &Ctx<'_>, p: &op::Pad) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(1..=1)?;
    check_f32(ctx, ctx.input(0)?)?;
    check_f32(ctx, ctx.output())?;
    if p.value != 0.0 {
        return Err(ctx.err(format!("float PAD with value {} is not supported (only 0)", p.value)));
    }
    let params = prepare_pad(&ctx.input(0)?.shape, &p.pads).map_err(ctx.kernel_err())?;
    ctx.check_output_shape(params.output_shape.as_slice())?;
    Ok((Kernel::FloatPad(PadF32 { params }), vec![ctx.input_id(0)]))
}

pub(crate) fn prepare_reshape_f32(ctx: &Ctx<'_>) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(1..=1)?;
    check_f32(ctx, ctx.input(0)?)?;
    check_f32(ctx, ctx.output())?;
    prepare_reshape(&ctx.input(0)?.shape, &ctx.output().shape).map_err(ctx.kernel_err())?;
    Ok((Kernel::FloatReshape, vec![ctx.input_id(0)]))
}

pub(crate) fn prepare_transpose_f32(ctx: &Ctx<'_>, p: &op::Transpose) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(1..=1)?;
    check_f32(ctx, ctx.input(0)?)?;
    check_f32(ctx, ctx.output())?;
    let params = prepare_transpose(&ctx.input(0)?.shape, &p.perm).map_err(ctx.kernel_err())?;
    ctx.check_output_shape(params.output_shape.as_slice())?;
    Ok((Kernel::FloatTranspose(TransposeF32 { params }), vec![ctx.input_id(0)]))
}

/// RESHAPE of float32 values: a copy.
pub(crate) fn reshape_f32(input: &[f32], output: &mut [f32]) {
    reshape(input, output);
}

impl TransposeF32 {
    pub fn eval(&self, input: &[f32], output: &mut [f32]) {
        transpose(&self.params, input, output);
    }
}

impl ConvF32 {
    /// TFLM `reference_ops::Conv` / `reference_ops::DepthwiseConv` (float).
    pub fn eval(&self, input: &[f32], output: &mut [f32]) {
        let [batches, in_h, in_w, in_d] = self.input_shape;
        let [_, f_h, f_w, f_d] = self.filter_shape;
        let [_, out_h, out_w, out_d] = self.output_shape;
        let (lo, hi) = self.activation;
        let at = |b: usize, y: usize, x: usize, c: usize| ((b * in_h + y) * in_w + x) * in_d + c;
        for b in 0..batches {
            for out_y in 0..out_h {
                let in_y_origin = (out_y * self.stride[0]) as isize - self.padding.height as isize;
                for out_x in 0..out_w {
                    let in_x_origin = (out_x * self.stride[1]) as isize - self.padding.width as isize;
                    for oc in 0..out_d {
                        let mut total = 0f32;
                        for fy in 0..f_h {
                            let in_y = in_y_origin + (self.dilation[0] * fy) as isize;
                            for fx in 0..f_w {
                                let in_x = in_x_origin + (self.dilation[1] * fx) as isize;
                                if in_x < 0 || in_x >= in_w as isize || in_y < 0 || in_y >= in_h as isize {
                                    continue;
                                }
                                let (y, x) = (in_y as usize, in_x as usize);
                                match self.depth_multiplier {
                                    Some(m) => {
                                        let ic = oc / m;
                                        total += input[at(b, y, x, ic)] * self.filter[(fy * f_w + fx) * f_d + oc];
                                    }
                                    None => {
                                        let group = oc / (out_d / (in_d / f_d));
                                        for ic in 0..f_d {
                                            let v = input[at(b, y, x, ic + group * f_d)];
                                            let w = self.filter[((oc * f_h + fy) * f_w + fx) * f_d + ic];
                                            total += v * w;
                                        }
                                    }
                                }
                            }
                        }
                        let bias = self.bias.as_ref().map_or(0.0, |v| v[oc]);
                        output[((b * out_h + out_y) * out_w + out_x) * out_d + oc] = clamp_f32(total + bias, lo, hi);
                    }
                }
            }
        }
    }
}

impl FullyConnectedF32 {
    /// TFLM `reference_ops::FullyConnected` (float).
    pub fn eval(&self, input: &[f32], output: &mut [f32]) {
        let (lo, hi) = self.activation;
        let depth = self.accum_depth;
        for b in 0..self.batches {
            for oc in 0..self.output_depth {
                let mut total = 0f32;
                for d in 0..depth {
                    total += input[b * depth + d] * self.filter[oc * depth + d];
                }
                let bias = self.bias.as_ref().map_or(0.0, |v| v[oc]);
                output[oc + self.output_depth * b] = clamp_f32(total + bias, lo, hi);
            }
        }
    }
}

impl PadF32 {
    pub fn eval(&self, input: &[f32], output: &mut [f32]) {
        pad(&self.params, 0.0f32, input, output);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamp_follows_std_min_max() {
        assert_eq!(clamp_f32(7.0, 0.0, 6.0), 6.0);
        assert_eq!(clamp_f32(-1.0, 0.0, 6.0), 0.0);
        assert_eq!(clamp_f32(-0.0, 0.0, 6.0), -0.0);
        assert_eq!(clamp_f32(f32::MAX, f32::MIN, f32::MAX), f32::MAX);
    }

    #[test]
    fn conv_sums_in_tflm_order() {
        // One output, 2x1 taps of 2 channels: TFLM sums ((0 + a0 w0) + a1 w1) + a2 w2 + a3 w3,
        // which in float32 differs from a pairwise sum for these values.
        let input = [1e8f32, 1.0, -1e8, 1.0];
        let filter = [1.0f32, 1.0, 1.0, 1.0];
        let k = ConvF32 {
            input_shape: [1, 2, 1, 2],
            filter_shape: [1, 2, 1, 2],
            output_shape: [1, 1, 1, 1],
            stride: [1, 1],
            dilation: [1, 1],
            padding: PaddingValues { height: 0, width: 0 },
            activation: activation_range_f32(FusedActivation::None),
            filter: filter.to_vec(),
            bias: Some(vec![0.5]),
            depth_multiplier: None,
        };
        let mut out = [0f32];
        k.eval(&input, &mut out);
        let sequential = ((((0f32 + 1e8) + 1.0) + -1e8) + 1.0) + 0.5;
        assert_eq!(out[0], sequential);
        assert_ne!(out[0], (1e8f32 + -1e8) + (1.0 + 1.0) + 0.5);
    }
}

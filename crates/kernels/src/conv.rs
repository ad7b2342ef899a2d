//! CONV_2D with int8 activations, per-channel int8 weights and int32 bias.
//!
//! Mirrors `reference/integer_ops/conv.h::ConvPerChannel`, prepared as in
//! `micro/kernels/conv_common.cc` and `kernels/kernel_util.cc::PopulateConvolutionQuantizationParams`.
//! Grouped convolution (input depth a multiple of the filter depth, op version 6) is supported.

use crate::fixedpoint::{
    calculate_activation_range_quantized, multiply_by_quantized_multiplier_with, quantize_multiplier_with,
    FusedActivation, Rounding,
};
use crate::padding::{compute_padding_height_width, Padding, PaddingValues};
use crate::{KernelError, QParamsS8};

/// Builtin options of CONV_2D.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvOptions {
    pub padding: Padding,
    pub stride_height: usize,
    pub stride_width: usize,
    pub dilation_height: usize,
    pub dilation_width: usize,
    pub activation: FusedActivation,
}

/// Quantization of a conv-like op: per-tensor input and output, per-channel (or one broadcast)
/// filter scales. Filter zero points must all be 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvQParams<'a> {
    pub input: QParamsS8,
    pub filter_scales: &'a [f32],
    pub filter_zero_points: &'a [i32],
    pub output: QParamsS8,
}

/// Everything [`conv_per_channel`] needs besides the per-channel multipliers (TFLM `ConvParams`
/// plus the shapes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvPerChannelParams {
    pub input_offset: i32,
    pub output_offset: i32,
    pub stride_height: usize,
    pub stride_width: usize,
    pub dilation_height: usize,
    pub dilation_width: usize,
    pub padding_values: PaddingValues,
    pub quantized_activation_min: i32,
    pub quantized_activation_max: i32,
    /// NHWC.
    pub input_shape: [usize; 4],
    /// OHWI.
    pub filter_shape: [usize; 4],
    /// NHWC.
    pub output_shape: [usize; 4],
    pub rounding: Rounding,
}

/// TFLM `PopulateConvolutionQuantizationParams`: writes `multiplier[c]`, `shift[c]` for the real
/// multiplier `double(in_s) · double(w_s[c]) / double(out_s)`. A single filter scale is broadcast
/// to every channel, still computed in double.
pub fn populate_convolution_quantization_params(
    input_scale: f32,
    filter_scales: &[f32],
    output_scale: f32,
    rounding: Rounding,
    output_multiplier: &mut [i32],
    output_shift: &mut [i32],
) -> Result<(), KernelError> {
    let channels = output_multiplier.len();
    check_len("output_shift length", channels, output_shift.len())?;
    if filter_scales.len() != 1 && filter_scales.len() != channels {
        return Err(KernelError::ShapeMismatch {
            what: "filter scale count (1 or one per output channel)",
            expected: channels,
            actual: filter_scales.len(),
        });
    }
    for (channel, &scale) in filter_scales.iter().enumerate() {
        if !(scale.is_finite() && scale > 0.0) {
            return Err(KernelError::InvalidChannelScale { tensor: "filter", channel, scale });
        }
    }
    for channel in 0..channels {
        let filter_scale = filter_scales[if filter_scales.len() == 1 { 0 } else { channel }];
        let effective_output_scale = input_scale as f64 * filter_scale as f64 / output_scale as f64;
        let q = quantize_multiplier_with(effective_output_scale, rounding)?;
        output_multiplier[channel] = q.multiplier;
        output_shift[channel] = q.shift;
    }
    Ok(())
}

pub(crate) fn check_len(what: &'static str, expected: usize, actual: usize) -> Result<(), KernelError> {
    if expected != actual {
        return Err(KernelError::ShapeMismatch { what, expected, actual });
    }
    Ok(())
}

pub(crate) fn check_conv_qparams(q: &ConvQParams<'_>) -> Result<(), KernelError> {
    q.input.validate("input")?;
    q.output.validate("output")?;
    if let Some(&zero_point) = q.filter_zero_points.iter().find(|&&zp| zp != 0) {
        return Err(KernelError::InvalidZeroPoint { tensor: "filter", zero_point });
    }
    Ok(())
}

pub(crate) fn check_positive(what: &'static str, values: &[usize]) -> Result<(), KernelError> {
    if values.contains(&0) {
        return Err(KernelError::InvalidShape { what });
    }
    Ok(())
}

/// What CONV_2D's and DEPTHWISE_CONV_2D's prepare share after their shape checks.
pub(crate) struct Spatial {
    pub padding_values: PaddingValues,
    pub out_height: usize,
    pub out_width: usize,
    pub act_min: i32,
    pub act_max: i32,
}

/// One multiplier and shift per output channel (`output_multiplier.len()` channels), the padding
/// and output size (`empty` names the error when the output has no pixels), and the activation
/// range, in TFLM's order.
#[allow(clippy::too_many_arguments)]
pub(crate) fn prepare_spatial(
    empty: &'static str,
    options: &ConvOptions,
    qparams: &ConvQParams<'_>,
    rounding: Rounding,
    [in_height, in_width]: [usize; 2],
    [filter_height, filter_width]: [usize; 2],
    output_multiplier: &mut [i32],
    output_shift: &mut [i32],
) -> Result<Spatial, KernelError> {
    populate_convolution_quantization_params(
        qparams.input.scale,
        qparams.filter_scales,
        qparams.output.scale,
        rounding,
        output_multiplier,
        output_shift,
    )?;
    let (padding_values, out_height, out_width) = compute_padding_height_width(
        options.stride_height,
        options.stride_width,
        options.dilation_height,
        options.dilation_width,
        in_height,
        in_width,
        filter_height,
        filter_width,
        options.padding,
    );
    check_positive(empty, &[out_height, out_width])?;
    let (act_min, act_max) = calculate_activation_range_quantized(options.activation, qparams.output);
    Ok(Spatial { padding_values, out_height, out_width, act_min, act_max })
}

/// Validates a CONV_2D and computes its parameters; writes one multiplier and shift per output
/// channel into `output_multiplier` and `output_shift` (each of length `filter_shape[0]`).
pub fn prepare_conv_per_channel(
    input_shape: [usize; 4],
    filter_shape: [usize; 4],
    options: &ConvOptions,
    qparams: &ConvQParams<'_>,
    rounding: Rounding,
    output_multiplier: &mut [i32],
    output_shift: &mut [i32],
) -> Result<ConvPerChannelParams, KernelError> {
    check_conv_qparams(qparams)?;
    check_positive("conv input dimension is 0", &input_shape)?;
    check_positive("conv filter dimension is 0", &filter_shape)?;
    check_positive(
        "conv stride and dilation must be >= 1",
        &[options.stride_height, options.stride_width, options.dilation_height, options.dilation_width],
    )?;
    let [batches, in_height, in_width, in_depth] = input_shape;
    let [out_depth, filter_height, filter_width, filter_in_depth] = filter_shape;
    if in_depth % filter_in_depth != 0 {
        return Err(KernelError::InvalidShape { what: "conv input depth is not a multiple of the filter depth" });
    }
    let groups = in_depth / filter_in_depth;
    if out_depth % groups != 0 {
        return Err(KernelError::InvalidShape { what: "conv output depth is not a multiple of the group count" });
    }
    check_len("output_multiplier length", out_depth, output_multiplier.len())?;
    let spatial = prepare_spatial(
        "conv output would be empty",
        options,
        qparams,
        rounding,
        [in_height, in_width],
        [filter_height, filter_width],
        output_multiplier,
        output_shift,
    )?;
    let Spatial { padding_values, out_height, out_width, act_min, act_max } = spatial;
    Ok(ConvPerChannelParams {
        input_offset: -qparams.input.zero_point,
        output_offset: qparams.output.zero_point,
        stride_height: options.stride_height,
        stride_width: options.stride_width,
        dilation_height: options.dilation_height,
        dilation_width: options.dilation_width,
        padding_values,
        quantized_activation_min: act_min,
        quantized_activation_max: act_max,
        input_shape,
        filter_shape,
        output_shape: [batches, out_height, out_width, out_depth],
        rounding,
    })
}

/// TFLM's int8 output stage, shared by the int8 conv-like kernels: bias added (wrapping), the
/// int32 fixed-point rescale, the output offset, the activation clamp.
#[derive(Clone, Copy)]
pub(crate) struct OutputStageS8 {
    pub offset: i32,
    pub min: i32,
    pub max: i32,
    pub rounding: Rounding,
}

impl OutputStageS8 {
    #[inline]
    pub fn apply(self, mut acc: i32, bias: Option<i32>, multiplier: i32, shift: i32) -> i8 {
        if let Some(bias) = bias {
            acc = acc.wrapping_add(bias);
        }
        acc = multiply_by_quantized_multiplier_with(acc, multiplier, shift, self.rounding);
        acc = acc.wrapping_add(self.offset);
        acc.clamp(self.min, self.max) as i8
    }
}

/// TFLM's int8 product: `weight · (input + input_offset)`, accumulated modulo 2^32.
#[inline]
pub(crate) fn mac_s8(input_offset: i32) -> impl Fn(i32, i8, i8) -> i32 {
    move |acc, x, w| acc.wrapping_add(w as i32 * (x as i32 + input_offset))
}

/// Checks the per-output-channel slices of a conv-like kernel against its channel count.
pub(crate) fn assert_channel_slices<B>(channels: usize, multiplier: &[i32], shift: &[i32], bias: Option<&[B]>) {
    assert!(multiplier.len() == channels && shift.len() == channels);
    if let Some(bias) = bias {
        assert_eq!(bias.len(), channels);
    }
}

/// The loop nest of TFLM's `ConvPerChannel`, shared by the int8 and the 16x8 kernel (TFLM's
/// templates over the element and accumulator types). For each output position and channel it
/// folds `mac` over the in-image taps of the channel's group, starting from `A::default()` (0),
/// in TFLM's order, and writes `finish(sum, bias, multiplier, shift)` of that channel.
#[allow(clippy::too_many_arguments)]
#[inline]
pub(crate) fn conv_loops<X: Copy, B: Copy, A: Copy + Default, Y>(
    params: &ConvPerChannelParams,
    output_multiplier: &[i32],
    output_shift: &[i32],
    input: &[X],
    filter: &[i8],
    bias: Option<&[B]>,
    output: &mut [Y],
    mac: impl Fn(A, X, i8) -> A,
    finish: impl Fn(A, Option<B>, i32, i32) -> Y,
) {
    let [batches, in_height, in_width, in_depth] = params.input_shape;
    let [out_depth, filter_height, filter_width, filter_in_depth] = params.filter_shape;
    let [_, out_height, out_width, _] = params.output_shape;
    assert_eq!(input.len(), params.input_shape.iter().product::<usize>());
    assert_eq!(filter.len(), params.filter_shape.iter().product::<usize>());
    assert_eq!(output.len(), params.output_shape.iter().product::<usize>());
    assert_channel_slices(out_depth, output_multiplier, output_shift, bias);
    let groups = in_depth / filter_in_depth;
    let filters_per_group = out_depth / groups;
    let mut out_index = 0;
    for batch in 0..batches {
        for out_y in 0..out_height {
            let in_y_origin = (out_y * params.stride_height) as isize - params.padding_values.height as isize;
            for out_x in 0..out_width {
                let in_x_origin = (out_x * params.stride_width) as isize - params.padding_values.width as isize;
                for out_channel in 0..out_depth {
                    let group = out_channel / filters_per_group;
                    let mut acc = A::default();
                    for filter_y in 0..filter_height {
                        let in_y = in_y_origin + (params.dilation_height * filter_y) as isize;
                        if in_y < 0 || in_y >= in_height as isize {
                            continue;
                        }
                        for filter_x in 0..filter_width {
                            let in_x = in_x_origin + (params.dilation_width * filter_x) as isize;
                            if in_x < 0 || in_x >= in_width as isize {
                                continue;
                            }
                            let input_base = ((batch * in_height + in_y as usize) * in_width + in_x as usize)
                                * in_depth
                                + group * filter_in_depth;
                            let filter_base =
                                ((out_channel * filter_height + filter_y) * filter_width + filter_x) * filter_in_depth;
                            let input_row = &input[input_base..input_base + filter_in_depth];
                            let filter_row = &filter[filter_base..filter_base + filter_in_depth];
                            for (&input_val, &filter_val) in input_row.iter().zip(filter_row) {
                                acc = mac(acc, input_val, filter_val);
                            }
                        }
                    }
                    output[out_index] = finish(
                        acc,
                        bias.map(|b| b[out_channel]),
                        output_multiplier[out_channel],
                        output_shift[out_channel],
                    );
                    out_index += 1;
                }
            }
        }
    }
}

/// TFLM `reference_integer_ops::ConvPerChannel`. Out-of-image taps are skipped; `bias`, when
/// present, has one entry per output channel. Accumulation wraps modulo 2^32 as TFLM's does.
///
/// # Panics
/// If a slice length disagrees with `params`.
pub fn conv_per_channel(
    params: &ConvPerChannelParams,
    output_multiplier: &[i32],
    output_shift: &[i32],
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) {
    let (min, max) = (params.quantized_activation_min, params.quantized_activation_max);
    let stage = OutputStageS8 { offset: params.output_offset, min, max, rounding: params.rounding };
    conv_loops(
        params,
        output_multiplier,
        output_shift,
        input,
        filter,
        bias,
        output,
        mac_s8(params.input_offset),
        |acc, bias, multiplier, shift| stage.apply(acc, bias, multiplier, shift),
    );
}

/// Scratch `conv_per_channel_im2col` needs: one patch of `KH · KW · Cin/groups` values.
pub fn im2col_scratch_len(params: &ConvPerChannelParams) -> usize {
    let [_, filter_height, filter_width, filter_in_depth] = params.filter_shape;
    filter_height * filter_width * filter_in_depth
}

/// The same result as [`conv_per_channel`], faster: each output pixel's input patch (offset
/// applied, padding as 0) is gathered once into `scratch` and every output channel is one
/// contiguous dot product with its filter row. Integer sums do not depend on their order, so the
/// result is bit-identical (checked against the reference by the tests below and by the engine's
/// TFLM comparisons).
#[allow(clippy::too_many_arguments)]
pub fn conv_per_channel_im2col(
    params: &ConvPerChannelParams,
    output_multiplier: &[i32],
    output_shift: &[i32],
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    scratch: &mut [i32],
    output: &mut [i8],
) {
    let [batches, in_height, in_width, in_depth] = params.input_shape;
    let [out_depth, filter_height, filter_width, filter_in_depth] = params.filter_shape;
    let [_, out_height, out_width, _] = params.output_shape;
    let patch_len = im2col_scratch_len(params);
    assert!(scratch.len() >= patch_len);
    assert_eq!(input.len(), params.input_shape.iter().product::<usize>());
    assert_eq!(filter.len(), params.filter_shape.iter().product::<usize>());
    assert_eq!(output.len(), params.output_shape.iter().product::<usize>());
    let patch = &mut scratch[..patch_len];
    let (min, max) = (params.quantized_activation_min, params.quantized_activation_max);
    let stage = OutputStageS8 { offset: params.output_offset, min, max, rounding: params.rounding };
    let groups = in_depth / filter_in_depth;
    let filters_per_group = out_depth / groups;
    let mut out_index = 0;
    for batch in 0..batches {
        for out_y in 0..out_height {
            let in_y_origin = (out_y * params.stride_height) as isize - params.padding_values.height as isize;
            for out_x in 0..out_width {
                let in_x_origin = (out_x * params.stride_width) as isize - params.padding_values.width as isize;
                for group in 0..groups {
                    for filter_y in 0..filter_height {
                        let in_y = in_y_origin + (params.dilation_height * filter_y) as isize;
                        for filter_x in 0..filter_width {
                            let in_x = in_x_origin + (params.dilation_width * filter_x) as isize;
                            let tap =
                                &mut patch[(filter_y * filter_width + filter_x) * filter_in_depth..][..filter_in_depth];
                            if in_y < 0 || in_y >= in_height as isize || in_x < 0 || in_x >= in_width as isize {
                                tap.fill(0);
                                continue;
                            }
                            let base = ((batch * in_height + in_y as usize) * in_width + in_x as usize) * in_depth
                                + group * filter_in_depth;
                            for (p, &x) in tap.iter_mut().zip(&input[base..base + filter_in_depth]) {
                                *p = x as i32 + params.input_offset;
                            }
                        }
                    }
                    for out_channel in group * filters_per_group..(group + 1) * filters_per_group {
                        let row = &filter[out_channel * patch_len..(out_channel + 1) * patch_len];
                        let acc = patch.iter().zip(row).fold(0i32, |a, (&p, &w)| a.wrapping_add(p * w as i32));
                        output[out_index + out_channel] = stage.apply(
                            acc,
                            bias.map(|b| b[out_channel]),
                            output_multiplier[out_channel],
                            output_shift[out_channel],
                        );
                    }
                }
                out_index += out_depth;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(padding: Padding, activation: FusedActivation) -> ConvOptions {
        ConvOptions { padding, stride_height: 1, stride_width: 1, dilation_height: 1, dilation_width: 1, activation }
    }

    #[test]
    fn one_pixel_conv_by_hand() {
        // Input 1x1x1x2 = [10, −4] with zp 2, scale 0.5; two filters of 1x1x2 with scales
        // 0.25 and 0.1; output scale 1.0, zp −3.
        // Channel 0: w = [1, 2]:  acc = 1·8 + 2·(−6) = −4, + bias 10 = 6; · 0.125 = 0.75 → 1; −3 → −2.
        // Channel 1: w = [−3, 5]: acc = −24 − 30 = −54, + bias −2 = −56; · 0.05 = −2.8 → −3; → −6.
        let qparams = ConvQParams {
            input: QParamsS8::new(0.5, 2),
            filter_scales: &[0.25, 0.1],
            filter_zero_points: &[0, 0],
            output: QParamsS8::new(1.0, -3),
        };
        let (mut m, mut s) = ([0; 2], [0; 2]);
        let params = prepare_conv_per_channel(
            [1, 1, 1, 2],
            [2, 1, 1, 2],
            &options(Padding::Valid, FusedActivation::None),
            &qparams,
            Rounding::Double,
            &mut m,
            &mut s,
        )
        .unwrap();
        assert_eq!(params.output_shape, [1, 1, 1, 2]);
        let mut out = [0i8; 2];
        conv_per_channel(&params, &m, &s, &[10, -4], &[1, 2, -3, 5], Some(&[10, -2]), &mut out);
        assert_eq!(out, [-2, -6]);
    }

    #[test]
    fn same_padding_skips_out_of_image_taps_and_relu_clamps() {
        // 3x3 all-ones filter over a 3x3 image of (x − zp) = 1, SAME: corner sees 4 taps, edge
        // 6, centre 9. Unit scales, output zp 0.
        let qparams = ConvQParams {
            input: QParamsS8::new(1.0, -1),
            filter_scales: &[1.0],
            filter_zero_points: &[0],
            output: QParamsS8::new(1.0, 0),
        };
        let (mut m, mut s) = ([0; 1], [0; 1]);
        let params = prepare_conv_per_channel(
            [1, 3, 3, 1],
            [1, 3, 3, 1],
            &options(Padding::Same, FusedActivation::Relu),
            &qparams,
            Rounding::Double,
            &mut m,
            &mut s,
        )
        .unwrap();
        let mut out = [0i8; 9];
        conv_per_channel(&params, &m, &s, &[0; 9], &[1; 9], None, &mut out);
        assert_eq!(out, [4, 6, 4, 6, 9, 6, 4, 6, 4]);
        conv_per_channel(&params, &m, &s, &[0; 9], &[-1; 9], None, &mut out);
        assert_eq!(out, [0; 9]);
    }

    #[test]
    fn grouped_conv_uses_its_group_slice() {
        // Input depth 4, filter depth 2 → 2 groups, 2 output channels (one per group).
        let qparams = ConvQParams {
            input: QParamsS8::new(1.0, 0),
            filter_scales: &[1.0, 1.0],
            filter_zero_points: &[0, 0],
            output: QParamsS8::new(1.0, 0),
        };
        let (mut m, mut s) = ([0; 2], [0; 2]);
        let params = prepare_conv_per_channel(
            [1, 1, 1, 4],
            [2, 1, 1, 2],
            &options(Padding::Valid, FusedActivation::None),
            &qparams,
            Rounding::Double,
            &mut m,
            &mut s,
        )
        .unwrap();
        let mut out = [0i8; 2];
        conv_per_channel(&params, &m, &s, &[1, 2, 3, 4], &[1, 1, 1, -1], None, &mut out);
        assert_eq!(out, [3, -1]);
    }

    #[test]
    fn dilation_and_stride() {
        // 1x5 image [1..5], 1x2 filter [1, 1] with dilation 2 and stride 2, VALID:
        // out size (5 + 2 − 3) / 2 = 2; taps (0,2) → 4, (2,4) → 8.
        let qparams = ConvQParams {
            input: QParamsS8::new(1.0, 0),
            filter_scales: &[1.0],
            filter_zero_points: &[0],
            output: QParamsS8::new(1.0, 0),
        };
        let (mut m, mut s) = ([0; 1], [0; 1]);
        let mut o = options(Padding::Valid, FusedActivation::None);
        o.stride_width = 2;
        o.dilation_width = 2;
        let params =
            prepare_conv_per_channel([1, 1, 5, 1], [1, 1, 2, 1], &o, &qparams, Rounding::Double, &mut m, &mut s)
                .unwrap();
        let mut out = [0i8; 2];
        conv_per_channel(&params, &m, &s, &[1, 2, 3, 4, 5], &[1, 1], None, &mut out);
        assert_eq!(out, [4, 8]);
    }

    #[test]
    fn prepare_rejects_bad_params() {
        let mut qparams = ConvQParams {
            input: QParamsS8::new(0.0, 0),
            filter_scales: &[1.0],
            filter_zero_points: &[0],
            output: QParamsS8::new(1.0, 0),
        };
        let (mut m, mut s) = ([0; 1], [0; 1]);
        let o = options(Padding::Valid, FusedActivation::None);
        let prepare = |q: &ConvQParams<'_>, m: &mut [i32], s: &mut [i32]| {
            prepare_conv_per_channel([1, 2, 2, 1], [1, 1, 1, 1], &o, q, Rounding::Double, m, s)
        };
        assert!(matches!(prepare(&qparams, &mut m, &mut s), Err(KernelError::InvalidScale { .. })));
        qparams.input.scale = 1.0;
        qparams.filter_zero_points = &[3];
        assert!(matches!(prepare(&qparams, &mut m, &mut s), Err(KernelError::InvalidZeroPoint { .. })));
        qparams.filter_zero_points = &[0];
        qparams.filter_scales = &[1.0, 2.0];
        assert!(matches!(prepare(&qparams, &mut m, &mut s), Err(KernelError::ShapeMismatch { .. })));
        qparams.filter_scales = &[-1.0];
        assert!(matches!(prepare(&qparams, &mut m, &mut s), Err(KernelError::InvalidChannelScale { .. })));
        qparams.filter_scales = &[1.0];
        assert!(prepare(&qparams, &mut m, &mut s).is_ok());
        assert!(prepare_conv_per_channel([1, 2, 2, 3], [1, 1, 1, 2], &o, &qparams, Rounding::Double, &mut m, &mut s)
            .is_err());
    }
    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 300, ..Default::default() })]
        #[test]
        fn im2col_variant_equals_the_reference(
            h in 1usize..8, w in 1usize..8, cin_g in 1usize..5, groups in 1usize..3, per_group in 1usize..4,
            k in 1usize..4, stride in 1usize..3, dil in 1usize..3, same in proptest::bool::ANY,
            in_zp in -128i32..128, out_zp in -128i32..128, seed in proptest::prelude::any::<u64>(),
        ) {
            let (cin, cout) = (cin_g * groups, per_group * groups);
            let mut s = seed | 1;
            let mut next = move || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s };
            let input: Vec<i8> = (0..h * w * cin).map(|_| next() as i8).collect();
            let filter: Vec<i8> = (0..cout * k * k * cin_g).map(|_| (next() % 255) as i8).collect();
            let bias: Vec<i32> = (0..cout).map(|_| (next() % 20001) as i32 - 10000).collect();
            let padding = if same { Padding::Same } else { Padding::Valid };
            let opts = ConvOptions { padding, stride_width: stride, stride_height: stride, dilation_width: dil, dilation_height: dil, activation: FusedActivation::Relu };
            let q = ConvQParams {
                input: QParamsS8::new(0.02, in_zp),
                filter_scales: &vec![0.003; cout],
                filter_zero_points: &vec![0; cout],
                output: QParamsS8::new(0.05, out_zp),
            };
            let (mut mult, mut shift) = (vec![0; cout], vec![0; cout]);
            let Ok(p) = prepare_conv_per_channel([1, h, w, cin], [cout, k, k, cin_g], &opts, &q, Rounding::Double, &mut mult, &mut shift) else { return Ok(()) };
            let n: usize = p.output_shape.iter().product();
            let (mut a, mut b) = (vec![0i8; n], vec![0i8; n]);
            conv_per_channel(&p, &mult, &shift, &input, &filter, Some(&bias), &mut a);
            let mut scratch = vec![0i32; im2col_scratch_len(&p)];
            conv_per_channel_im2col(&p, &mult, &shift, &input, &filter, Some(&bias), &mut scratch, &mut b);
            proptest::prop_assert_eq!(a, b);
        }
    }
}

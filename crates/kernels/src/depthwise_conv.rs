//! DEPTHWISE_CONV_2D with int8 activations, per-channel int8 weights and int32 bias.
//!
//! Mirrors `reference/integer_ops/depthwise_conv.h::DepthwiseConvPerChannel`, prepared as in
//! `micro/kernels/depthwise_conv_common.cc`. Output channel `oc = ic · depth_multiplier + m` reads
//! filter `[0, ky, kx, oc]`; the quantized dimension is 3.

use crate::conv::{
    assert_channel_slices, check_conv_qparams, check_len, check_positive, mac_s8, prepare_spatial, ConvOptions,
    ConvQParams, OutputStageS8, Spatial,
};
use crate::fixedpoint::Rounding;
use crate::padding::PaddingValues;
use crate::KernelError;

/// Builtin options of DEPTHWISE_CONV_2D. The depth multiplier is derived from the shapes
/// (`filter_shape[3] / input_shape[3]`); callers holding the option should check it matches.
pub type DepthwiseConvOptions = ConvOptions;

/// TFLM `DepthwiseParams` plus shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DepthwiseConvPerChannelParams {
    pub input_offset: i32,
    pub output_offset: i32,
    pub stride_height: usize,
    pub stride_width: usize,
    pub dilation_height: usize,
    pub dilation_width: usize,
    pub padding_values: PaddingValues,
    pub depth_multiplier: usize,
    pub quantized_activation_min: i32,
    pub quantized_activation_max: i32,
    /// NHWC.
    pub input_shape: [usize; 4],
    /// `[1, H, W, C·M]`.
    pub filter_shape: [usize; 4],
    /// NHWC.
    pub output_shape: [usize; 4],
    pub rounding: Rounding,
}

/// Validates a DEPTHWISE_CONV_2D and writes one multiplier and shift per output channel
/// (`filter_shape[3]` of each). As in TFLM, the filter must carry as many zero points as scales.
pub fn prepare_depthwise_conv_per_channel(
    input_shape: [usize; 4],
    filter_shape: [usize; 4],
    options: &DepthwiseConvOptions,
    qparams: &ConvQParams<'_>,
    rounding: Rounding,
    output_multiplier: &mut [i32],
    output_shift: &mut [i32],
) -> Result<DepthwiseConvPerChannelParams, KernelError> {
    check_conv_qparams(qparams)?;
    check_len(
        "filter zero point count (must equal the scale count)",
        qparams.filter_scales.len(),
        qparams.filter_zero_points.len(),
    )?;
    check_positive("depthwise input dimension is 0", &input_shape)?;
    check_positive("depthwise filter dimension is 0", &filter_shape)?;
    check_positive(
        "depthwise stride and dilation must be >= 1",
        &[options.stride_height, options.stride_width, options.dilation_height, options.dilation_width],
    )?;
    let [batches, in_height, in_width, in_depth] = input_shape;
    let [one, filter_height, filter_width, out_depth] = filter_shape;
    if one != 1 {
        return Err(KernelError::InvalidShape { what: "depthwise filter must be [1, H, W, C*M]" });
    }
    if out_depth % in_depth != 0 {
        return Err(KernelError::InvalidShape { what: "depthwise output depth is not a multiple of the input depth" });
    }
    check_len("output_multiplier length", out_depth, output_multiplier.len())?;
    let spatial = prepare_spatial(
        "depthwise output would be empty",
        options,
        qparams,
        rounding,
        [in_height, in_width],
        [filter_height, filter_width],
        output_multiplier,
        output_shift,
    )?;
    let Spatial { padding_values, out_height, out_width, act_min, act_max } = spatial;
    Ok(DepthwiseConvPerChannelParams {
        input_offset: -qparams.input.zero_point,
        output_offset: qparams.output.zero_point,
        stride_height: options.stride_height,
        stride_width: options.stride_width,
        dilation_height: options.dilation_height,
        dilation_width: options.dilation_width,
        padding_values,
        depth_multiplier: out_depth / in_depth,
        quantized_activation_min: act_min,
        quantized_activation_max: act_max,
        input_shape,
        filter_shape,
        output_shape: [batches, out_height, out_width, out_depth],
        rounding,
    })
}

/// The loop nest of TFLM's `DepthwiseConvPerChannel`, shared by the int8 and the 16x8 kernel:
/// for each output position and channel `ic · depth_multiplier + m` it folds `mac` over the
/// in-image taps starting from `A::default()` (0), in TFLM's order, and writes
/// `finish(sum, bias, multiplier, shift)` of that channel.
#[allow(clippy::too_many_arguments)]
#[inline]
pub(crate) fn depthwise_conv_loops<X: Copy, B: Copy, A: Copy + Default, Y>(
    params: &DepthwiseConvPerChannelParams,
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
    let [_, filter_height, filter_width, out_depth] = params.filter_shape;
    let [_, out_height, out_width, _] = params.output_shape;
    assert_eq!(input.len(), params.input_shape.iter().product::<usize>());
    assert_eq!(filter.len(), params.filter_shape.iter().product::<usize>());
    assert_eq!(output.len(), params.output_shape.iter().product::<usize>());
    assert_channel_slices(out_depth, output_multiplier, output_shift, bias);
    for batch in 0..batches {
        for out_y in 0..out_height {
            let in_y_origin = (out_y * params.stride_height) as isize - params.padding_values.height as isize;
            for out_x in 0..out_width {
                let in_x_origin = (out_x * params.stride_width) as isize - params.padding_values.width as isize;
                for in_channel in 0..in_depth {
                    for m in 0..params.depth_multiplier {
                        let out_channel = in_channel * params.depth_multiplier + m;
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
                                let input_val = input[((batch * in_height + in_y as usize) * in_width + in_x as usize)
                                    * in_depth
                                    + in_channel];
                                let filter_val = filter[(filter_y * filter_width + filter_x) * out_depth + out_channel];
                                acc = mac(acc, input_val, filter_val);
                            }
                        }
                        output[((batch * out_height + out_y) * out_width + out_x) * out_depth + out_channel] = finish(
                            acc,
                            bias.map(|b| b[out_channel]),
                            output_multiplier[out_channel],
                            output_shift[out_channel],
                        );
                    }
                }
            }
        }
    }
}

/// TFLM `reference_integer_ops::DepthwiseConvPerChannel`.
///
/// # Panics
/// If a slice length disagrees with `params`.
pub fn depthwise_conv_per_channel(
    params: &DepthwiseConvPerChannelParams,
    output_multiplier: &[i32],
    output_shift: &[i32],
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) {
    let (min, max) = (params.quantized_activation_min, params.quantized_activation_max);
    let stage = OutputStageS8 { offset: params.output_offset, min, max, rounding: params.rounding };
    depthwise_conv_loops(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FusedActivation, Padding, QParamsS8};

    #[test]
    fn depth_multiplier_two_by_hand() {
        // 1x2x1x2 input, 2x1 filter, depth multiplier 2 → 4 output channels, VALID → 1x1.
        // Input (x − zp): pixel0 = [1, 2], pixel1 = [3, 4]  (zp 1, raw +1).
        // Filter [1,2,1,4]: ky=0: [1, 2, 3, 4], ky=1: [−1, 0, 1, 2].
        // oc0 (ic0,m0): 1·1 + 3·(−1) = −2; oc1 (ic0,m1): 1·2 + 3·0 = 2;
        // oc2 (ic1,m0): 2·3 + 4·1 = 10; oc3 (ic1,m1): 2·4 + 4·2 = 16.
        // Scales: in 0.5, w [1, 1, 0.5, 0.25], out 0.5 → multipliers [1, 1, 0.5, 0.25].
        let qparams = ConvQParams {
            input: QParamsS8::new(0.5, 1),
            filter_scales: &[1.0, 1.0, 0.5, 0.25],
            filter_zero_points: &[0; 4],
            output: QParamsS8::new(0.5, 0),
        };
        let options = DepthwiseConvOptions {
            padding: Padding::Valid,
            stride_height: 1,
            stride_width: 1,
            dilation_height: 1,
            dilation_width: 1,
            activation: FusedActivation::None,
        };
        let (mut m, mut s) = ([0; 4], [0; 4]);
        let params = prepare_depthwise_conv_per_channel(
            [1, 2, 1, 2],
            [1, 2, 1, 4],
            &options,
            &qparams,
            Rounding::Double,
            &mut m,
            &mut s,
        )
        .unwrap();
        assert_eq!(params.depth_multiplier, 2);
        let mut out = [0i8; 4];
        depthwise_conv_per_channel(
            &params,
            &m,
            &s,
            &[2, 3, 4, 5],
            &[1, 2, 3, 4, -1, 0, 1, 2],
            Some(&[0, 1, 0, 0]),
            &mut out,
        );
        assert_eq!(out, [-2, 3, 5, 4]);
        let bad = ConvQParams { filter_zero_points: &[0], ..qparams };
        assert!(prepare_depthwise_conv_per_channel(
            [1, 2, 1, 2],
            [1, 2, 1, 4],
            &options,
            &bad,
            Rounding::Double,
            &mut m,
            &mut s
        )
        .is_err());
    }
}

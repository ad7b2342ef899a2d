//! FULLY_CONNECTED with int8 activations, int8 weights (per-tensor or per-channel along dim 0)
//! and int32 bias.
//!
//! Mirrors `reference/integer_ops/fully_connected.h::{FullyConnected, FullyConnectedPerChannel}`,
//! prepared as in `micro/kernels/fully_connected_common.cc` and
//! `kernels/kernel_util.cc::GetQuantizedConvolutionMultipler`. The input is viewed as
//! `[batches, accum_depth]`, the filter as `[output_depth, accum_depth]`.

use crate::conv::{
    assert_channel_slices, check_conv_qparams, check_len, check_positive, mac_s8,
    populate_convolution_quantization_params, ConvQParams, OutputStageS8,
};
use crate::fixedpoint::{calculate_activation_range_quantized, quantize_multiplier_with, FusedActivation, Rounding};
use crate::{KernelError, QParamsS8};

/// Geometry of a FULLY_CONNECTED: `batches = flat_size(output) / output_depth`,
/// `accum_depth = filter.dims[-1]`, `output_depth = filter.dims[0]` (units).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FullyConnectedShape {
    pub batches: usize,
    pub accum_depth: usize,
    pub output_depth: usize,
}

/// Quantization of a per-tensor FULLY_CONNECTED. `bias_scale`, when the op has a bias, is checked
/// the way TFLM checks it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FullyConnectedQParams {
    pub input: QParamsS8,
    pub filter: QParamsS8,
    pub bias_scale: Option<f32>,
    pub output: QParamsS8,
}

/// TFLM `FullyConnectedParams` for the per-tensor kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FullyConnectedParams {
    pub input_offset: i32,
    pub weights_offset: i32,
    pub output_offset: i32,
    pub output_multiplier: i32,
    pub output_shift: i32,
    pub quantized_activation_min: i32,
    pub quantized_activation_max: i32,
    pub shape: FullyConnectedShape,
    pub rounding: Rounding,
}

/// TFLM `FullyConnectedParams` for the per-channel kernel (multipliers live beside it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FullyConnectedPerChannelParams {
    pub input_offset: i32,
    pub output_offset: i32,
    pub quantized_activation_min: i32,
    pub quantized_activation_max: i32,
    pub shape: FullyConnectedShape,
    pub rounding: Rounding,
}

fn check_shape(shape: &FullyConnectedShape) -> Result<(), KernelError> {
    check_positive("fully connected dimension is 0", &[shape.batches, shape.accum_depth, shape.output_depth])
}

/// Per-tensor FULLY_CONNECTED. The real multiplier is `double(in_s) · double(w_s) / double(out_s)`,
/// as for the per-channel ops: the `tflite-micro` interpreter pinned in `requirements-oracles.txt`
/// disagreed by 1 LSB with a float32 product on real models (see `docs/numerics.md`). With a bias,
/// TFLM requires `|in_s · w_s − bias_s| / out_s ≤ 0.02`.
pub fn prepare_fully_connected(
    shape: FullyConnectedShape,
    qparams: &FullyConnectedQParams,
    activation: FusedActivation,
    rounding: Rounding,
) -> Result<FullyConnectedParams, KernelError> {
    check_shape(&shape)?;
    qparams.input.validate("input")?;
    qparams.filter.validate("filter")?;
    qparams.output.validate("output")?;
    let input_product_scale = qparams.input.scale as f64 * qparams.filter.scale as f64;
    let output_scale = qparams.output.scale as f64;
    if let Some(bias_scale) = qparams.bias_scale {
        let scale_diff = (input_product_scale - bias_scale as f64).abs();
        let ratio = scale_diff / output_scale;
        if ratio.is_nan() || ratio > 0.02 {
            return Err(KernelError::MultiplierOutOfRange {
                what: "fully connected bias scale",
                multiplier: bias_scale as f64,
                requirement: "|input_scale * filter_scale - bias_scale| / output_scale <= 0.02",
            });
        }
    }
    let q = quantize_multiplier_with(input_product_scale / output_scale, rounding)?;
    let (act_min, act_max) = calculate_activation_range_quantized(activation, qparams.output);
    Ok(FullyConnectedParams {
        input_offset: -qparams.input.zero_point,
        weights_offset: -qparams.filter.zero_point,
        output_offset: qparams.output.zero_point,
        output_multiplier: q.multiplier,
        output_shift: q.shift,
        quantized_activation_min: act_min,
        quantized_activation_max: act_max,
        shape,
        rounding,
    })
}

/// Per-channel FULLY_CONNECTED: multipliers from `double(in_s) · double(w_s[u]) / double(out_s)`,
/// written to `output_multiplier` / `output_shift` (one per unit). Filter zero points must be 0.
pub fn prepare_fully_connected_per_channel(
    shape: FullyConnectedShape,
    qparams: &ConvQParams<'_>,
    activation: FusedActivation,
    rounding: Rounding,
    output_multiplier: &mut [i32],
    output_shift: &mut [i32],
) -> Result<FullyConnectedPerChannelParams, KernelError> {
    check_shape(&shape)?;
    check_conv_qparams(qparams)?;
    check_len("output_multiplier length", shape.output_depth, output_multiplier.len())?;
    populate_convolution_quantization_params(
        qparams.input.scale,
        qparams.filter_scales,
        qparams.output.scale,
        rounding,
        output_multiplier,
        output_shift,
    )?;
    let (act_min, act_max) = calculate_activation_range_quantized(activation, qparams.output);
    Ok(FullyConnectedPerChannelParams {
        input_offset: -qparams.input.zero_point,
        output_offset: qparams.output.zero_point,
        quantized_activation_min: act_min,
        quantized_activation_max: act_max,
        shape,
        rounding,
    })
}

/// The loop nest of TFLM's `FullyConnected`, shared by the int8 (per tensor and per channel) and
/// the 16x8 kernel: for each batch row and unit it folds `mac` over the row and the unit's
/// weights starting from `A::default()` (0), and writes `finish(sum, bias, unit)`.
#[inline]
pub(crate) fn fully_connected_loops<X: Copy, B: Copy, A: Copy + Default, Y>(
    shape: &FullyConnectedShape,
    input: &[X],
    filter: &[i8],
    bias: Option<&[B]>,
    output: &mut [Y],
    mac: impl Fn(A, X, i8) -> A,
    finish: impl Fn(A, Option<B>, usize) -> Y,
) {
    let FullyConnectedShape { batches, accum_depth, output_depth } = *shape;
    assert_eq!(input.len(), batches * accum_depth);
    assert_eq!(filter.len(), output_depth * accum_depth);
    assert_eq!(output.len(), batches * output_depth);
    if let Some(bias) = bias {
        assert_eq!(bias.len(), output_depth);
    }
    for b in 0..batches {
        let input_row = &input[b * accum_depth..(b + 1) * accum_depth];
        for out_c in 0..output_depth {
            let filter_row = &filter[out_c * accum_depth..(out_c + 1) * accum_depth];
            let mut acc = A::default();
            for (&x, &w) in input_row.iter().zip(filter_row) {
                acc = mac(acc, x, w);
            }
            output[b * output_depth + out_c] = finish(acc, bias.map(|bias| bias[out_c]), out_c);
        }
    }
}

/// TFLM `reference_integer_ops::FullyConnected` (per-tensor).
///
/// # Panics
/// If a slice length disagrees with `params.shape`.
pub fn fully_connected(
    params: &FullyConnectedParams,
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) {
    let (min, max) = (params.quantized_activation_min, params.quantized_activation_max);
    let stage = OutputStageS8 { offset: params.output_offset, min, max, rounding: params.rounding };
    fully_connected_loops(
        &params.shape,
        input,
        filter,
        bias,
        output,
        |acc: i32, x: i8, w: i8| {
            acc.wrapping_add((w as i32 + params.weights_offset) * (x as i32 + params.input_offset))
        },
        |acc, bias, _| stage.apply(acc, bias, params.output_multiplier, params.output_shift),
    );
}

/// TFLM `reference_integer_ops::FullyConnectedPerChannel`.
///
/// # Panics
/// If a slice length disagrees with `params.shape`.
pub fn fully_connected_per_channel(
    params: &FullyConnectedPerChannelParams,
    output_multiplier: &[i32],
    output_shift: &[i32],
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) {
    assert_channel_slices(params.shape.output_depth, output_multiplier, output_shift, bias);
    let (min, max) = (params.quantized_activation_min, params.quantized_activation_max);
    let stage = OutputStageS8 { offset: params.output_offset, min, max, rounding: params.rounding };
    fully_connected_loops(
        &params.shape,
        input,
        filter,
        bias,
        output,
        mac_s8(params.input_offset),
        |acc, bias, unit| stage.apply(acc, bias, output_multiplier[unit], output_shift[unit]),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: FullyConnectedShape = FullyConnectedShape { batches: 2, accum_depth: 3, output_depth: 2 };

    #[test]
    fn per_tensor_by_hand() {
        // in zp −1 (x − zp = raw + 1), scale 0.5; w scale 0.5 zp 0; out scale 1, zp 5.
        // batch 0: x' = [1, 2, 3]; unit 0 w [1, 1, 1] → 6 + bias 2 = 8 · 0.25 = 2 → 7
        //                          unit 1 w [−1, 0, 2] → 5 · 0.25 = 1.25, but double rounding
        //                          goes SRDHM(5, 2^30) = 2.5 → 3, then RDBPOT(3, 1) = 1.5 → 2 → 7
        // batch 1: x' = [−4, 0, 0]; unit 0 → −4 + 2 = −2 · 0.25 = −0.5 → −1 → 4; unit 1 → 4 · 0.25 = 1 → 6
        let qparams = FullyConnectedQParams {
            input: QParamsS8::new(0.5, -1),
            filter: QParamsS8::new(0.5, 0),
            bias_scale: Some(0.25),
            output: QParamsS8::new(1.0, 5),
        };
        let params = prepare_fully_connected(SHAPE, &qparams, FusedActivation::None, Rounding::Double).unwrap();
        let mut out = [0i8; 4];
        fully_connected(&params, &[0, 1, 2, -5, -1, -1], &[1, 1, 1, -1, 0, 2], Some(&[2, 0]), &mut out);
        assert_eq!(out, [7, 7, 4, 6]);
        // Same numbers through the per-channel kernel.
        let cq = ConvQParams {
            input: qparams.input,
            filter_scales: &[0.5, 0.5],
            filter_zero_points: &[0, 0],
            output: qparams.output,
        };
        let (mut m, mut s) = ([0; 2], [0; 2]);
        let pc =
            prepare_fully_connected_per_channel(SHAPE, &cq, FusedActivation::None, Rounding::Double, &mut m, &mut s)
                .unwrap();
        let mut out2 = [0i8; 4];
        fully_connected_per_channel(
            &pc,
            &m,
            &s,
            &[0, 1, 2, -5, -1, -1],
            &[1, 1, 1, -1, 0, 2],
            Some(&[2, 0]),
            &mut out2,
        );
        assert_eq!(out2, out);
    }

    #[test]
    fn per_tensor_multiplier_uses_f64_product() {
        // Choose scales whose f32 product differs from the f64 product.
        let (a, b, o) = (0.1f32, 0.3f32, 0.7f32);
        let qparams = FullyConnectedQParams {
            input: QParamsS8::new(a, 0),
            filter: QParamsS8::new(b, 0),
            bias_scale: None,
            output: QParamsS8::new(o, 0),
        };
        let params = prepare_fully_connected(SHAPE, &qparams, FusedActivation::None, Rounding::Double).unwrap();
        let f32_way = crate::fixedpoint::quantize_multiplier((a * b) as f64 / o as f64).unwrap();
        let f64_way = crate::fixedpoint::quantize_multiplier(a as f64 * b as f64 / o as f64).unwrap();
        assert_ne!(f32_way, f64_way);
        assert_eq!((params.output_multiplier, params.output_shift), (f64_way.multiplier, f64_way.shift));
    }

    #[test]
    fn bias_scale_check() {
        let mut qparams = FullyConnectedQParams {
            input: QParamsS8::new(0.5, 0),
            filter: QParamsS8::new(0.5, 0),
            bias_scale: Some(0.3),
            output: QParamsS8::new(1.0, 0),
        };
        assert!(prepare_fully_connected(SHAPE, &qparams, FusedActivation::None, Rounding::Double).is_err());
        qparams.bias_scale = Some(0.26);
        assert!(prepare_fully_connected(SHAPE, &qparams, FusedActivation::None, Rounding::Double).is_ok());
    }
}

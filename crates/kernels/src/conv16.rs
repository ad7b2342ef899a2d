//! The 16x8 kernels: CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED with int16 activations
//! (symmetric, zero point 0), int8 weights (per channel or per tensor, zero point 0) and int64
//! bias.
//!
//! Mirrors the int16 overloads of `reference/integer_ops/conv.h::ConvPerChannel` (with
//! `AccumScalar = int64_t`), `depthwise_conv.h::DepthwiseConvPerChannel` and
//! `fully_connected.h::FullyConnected<int16_t, int8_t, int16_t, int64_t>`, dispatched as in
//! `micro/kernels/{conv,depthwise_conv,fully_connected}.cc` when the bias is int64 (or absent).
//! They differ from the int8 kernels in four ways: the accumulator is int64, products are
//! `weight · input` without an input offset, the accumulator is reduced by the int64
//! `MultiplyByQuantizedMultiplier` (a 16-bit multiplier, see
//! [`multiply_by_quantized_multiplier_i64`]), and the conv and depthwise kernels add no output
//! offset; the clamp is to the int16 activation range.
//!
//! Prepare reuses the int8 `prepare_*` functions (the multipliers and geometry are computed the
//! same way, in double) and replaces the activation range with the int16 one.

use crate::conv::{conv_loops, prepare_conv_per_channel, ConvOptions, ConvPerChannelParams, ConvQParams};
use crate::depthwise_conv::{
    depthwise_conv_loops, prepare_depthwise_conv_per_channel, DepthwiseConvOptions, DepthwiseConvPerChannelParams,
};
use crate::fixedpoint::{
    calculate_activation_range_quantized_s16, multiply_by_quantized_multiplier_i64, FusedActivation, Rounding,
};
use crate::fully_connected::{
    fully_connected_loops, prepare_fully_connected, FullyConnectedParams, FullyConnectedQParams, FullyConnectedShape,
};
use crate::{check_scale, KernelError, QParamsS8};

/// An int16 activation's quantization: symmetric, so only the scale (the zero point must be 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QParamsS16 {
    pub scale: f32,
    pub zero_point: i32,
}

impl QParamsS16 {
    pub fn new(scale: f32) -> Self {
        Self { scale, zero_point: 0 }
    }

    /// Checks the scale, and that the zero point is 0 (TFLM's int16 kernels ignore it).
    pub fn validate(self, tensor: &'static str) -> Result<Self, KernelError> {
        check_scale(tensor, self.scale)?;
        if self.zero_point != 0 {
            return Err(KernelError::InvalidZeroPoint { tensor, zero_point: self.zero_point });
        }
        Ok(self)
    }

    /// The same scale as int8 params with zero point 0, to share the int8 prepare code.
    fn as_s8(self) -> QParamsS8 {
        QParamsS8::new(self.scale, 0)
    }
}

/// Quantization of a 16x8 conv-like op.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv16QParams<'a> {
    pub input: QParamsS16,
    pub filter_scales: &'a [f32],
    pub filter_zero_points: &'a [i32],
    pub output: QParamsS16,
}

impl<'a> Conv16QParams<'a> {
    fn validated(&self) -> Result<ConvQParams<'a>, KernelError> {
        self.input.validate("input")?;
        self.output.validate("output")?;
        Ok(ConvQParams {
            input: self.input.as_s8(),
            filter_scales: self.filter_scales,
            filter_zero_points: self.filter_zero_points,
            output: self.output.as_s8(),
        })
    }
}

/// The int64 reduction takes shifts in `[−31, 7]` only (a real multiplier below 128).
fn check_shifts(shifts: &[i32], multipliers: &[i32]) -> Result<(), KernelError> {
    if let Some(k) = shifts.iter().position(|&s| !(-31..8).contains(&s)) {
        return Err(KernelError::MultiplierOutOfRange {
            what: "16x8 output rescale",
            multiplier: multipliers[k] as f64 * 2f64.powi(shifts[k] - 31),
            requirement: "input_scale * filter_scale / output_scale < 128",
        });
    }
    Ok(())
}

/// The params structs whose activation range the 16x8 prepare replaces with the int16 one.
trait ActivationRange {
    fn set_activation_range(&mut self, range: (i32, i32));
}

impl ActivationRange for ConvPerChannelParams {
    fn set_activation_range(&mut self, (min, max): (i32, i32)) {
        (self.quantized_activation_min, self.quantized_activation_max) = (min, max);
    }
}

impl ActivationRange for DepthwiseConvPerChannelParams {
    fn set_activation_range(&mut self, (min, max): (i32, i32)) {
        (self.quantized_activation_min, self.quantized_activation_max) = (min, max);
    }
}

impl ActivationRange for FullyConnectedParams {
    fn set_activation_range(&mut self, (min, max): (i32, i32)) {
        (self.quantized_activation_min, self.quantized_activation_max) = (min, max);
    }
}

/// A per-channel 16x8 prepare: `prepare_s8` (the int8 prepare, given the int16 scales as int8
/// params with zero point 0) computes the geometry and multipliers; then the shift range is
/// checked and the activation range becomes the int16 one.
fn prepare_per_channel_16x8<P: ActivationRange>(
    qparams: &Conv16QParams<'_>,
    activation: FusedActivation,
    output_multiplier: &mut [i32],
    output_shift: &mut [i32],
    prepare_s8: impl FnOnce(&ConvQParams<'_>, &mut [i32], &mut [i32]) -> Result<P, KernelError>,
) -> Result<P, KernelError> {
    let q = qparams.validated()?;
    let mut p = prepare_s8(&q, output_multiplier, output_shift)?;
    check_shifts(output_shift, output_multiplier)?;
    p.set_activation_range(calculate_activation_range_quantized_s16(activation, qparams.output.scale));
    Ok(p)
}

/// Validates a 16x8 CONV_2D; writes one multiplier and shift per output channel.
pub fn prepare_conv_16x8(
    input_shape: [usize; 4],
    filter_shape: [usize; 4],
    options: &ConvOptions,
    qparams: &Conv16QParams<'_>,
    output_multiplier: &mut [i32],
    output_shift: &mut [i32],
) -> Result<ConvPerChannelParams, KernelError> {
    prepare_per_channel_16x8(qparams, options.activation, output_multiplier, output_shift, |q, m, s| {
        prepare_conv_per_channel(input_shape, filter_shape, options, q, Rounding::Double, m, s)
    })
}

/// Validates a 16x8 DEPTHWISE_CONV_2D; writes one multiplier and shift per output channel.
pub fn prepare_depthwise_conv_16x8(
    input_shape: [usize; 4],
    filter_shape: [usize; 4],
    options: &DepthwiseConvOptions,
    qparams: &Conv16QParams<'_>,
    output_multiplier: &mut [i32],
    output_shift: &mut [i32],
) -> Result<DepthwiseConvPerChannelParams, KernelError> {
    prepare_per_channel_16x8(qparams, options.activation, output_multiplier, output_shift, |q, m, s| {
        prepare_depthwise_conv_per_channel(input_shape, filter_shape, options, q, Rounding::Double, m, s)
    })
}

/// Validates a per-tensor 16x8 FULLY_CONNECTED (multiplier and bias-scale check as for int8).
pub fn prepare_fully_connected_16x8(
    shape: FullyConnectedShape,
    input: QParamsS16,
    filter: QParamsS8,
    bias_scale: Option<f32>,
    output: QParamsS16,
    activation: FusedActivation,
) -> Result<FullyConnectedParams, KernelError> {
    input.validate("input")?;
    output.validate("output")?;
    if filter.zero_point != 0 {
        return Err(KernelError::InvalidZeroPoint { tensor: "filter", zero_point: filter.zero_point });
    }
    let q = FullyConnectedQParams { input: input.as_s8(), filter, bias_scale, output: output.as_s8() };
    let mut p = prepare_fully_connected(shape, &q, activation, Rounding::Double)?;
    check_shifts(&[p.output_shift], &[p.output_multiplier])?;
    p.set_activation_range(calculate_activation_range_quantized_s16(activation, output.scale));
    Ok(p)
}

/// TFLM's 16x8 output stage: bias added (wrapping), the int64 rescale, the output offset (the
/// conv kernels have none: 0), the activation clamp.
#[inline]
fn output_s16(mut acc: i64, bias: Option<i64>, multiplier: i32, shift: i32, offset: i32, min: i32, max: i32) -> i16 {
    if let Some(bias) = bias {
        acc = acc.wrapping_add(bias);
    }
    multiply_by_quantized_multiplier_i64(acc, multiplier, shift).wrapping_add(offset).clamp(min, max) as i16
}

/// A 16x8 product: `weight · input` with no input offset, exact in int32, accumulated in int64.
#[inline]
fn mac_16x8(acc: i64, x: i16, w: i8) -> i64 {
    acc + (w as i32 * x as i32) as i64
}

/// TFLM `reference_integer_ops::ConvPerChannel` for int16 input and output with int64 bias.
///
/// # Panics
/// If a slice length disagrees with `params`.
pub fn conv_16x8(
    params: &ConvPerChannelParams,
    output_multiplier: &[i32],
    output_shift: &[i32],
    input: &[i16],
    filter: &[i8],
    bias: Option<&[i64]>,
    output: &mut [i16],
) {
    let (min, max) = (params.quantized_activation_min, params.quantized_activation_max);
    conv_loops(params, output_multiplier, output_shift, input, filter, bias, output, mac_16x8, |acc, bias, m, s| {
        output_s16(acc, bias, m, s, 0, min, max)
    });
}

/// TFLM `reference_integer_ops::DepthwiseConvPerChannel` for int16 input and output, int64 bias.
///
/// # Panics
/// If a slice length disagrees with `params`.
pub fn depthwise_conv_16x8(
    params: &DepthwiseConvPerChannelParams,
    output_multiplier: &[i32],
    output_shift: &[i32],
    input: &[i16],
    filter: &[i8],
    bias: Option<&[i64]>,
    output: &mut [i16],
) {
    let (min, max) = (params.quantized_activation_min, params.quantized_activation_max);
    depthwise_conv_loops(
        params,
        output_multiplier,
        output_shift,
        input,
        filter,
        bias,
        output,
        mac_16x8,
        |acc, bias, m, s| output_s16(acc, bias, m, s, 0, min, max),
    );
}

/// TFLM `reference_integer_ops::FullyConnected<int16_t, int8_t, int16_t, int64_t>` (per tensor).
/// The offsets are those of the params (all 0 for the 16x8 scheme).
///
/// # Panics
/// If a slice length disagrees with `params.shape`.
pub fn fully_connected_16x8(
    params: &FullyConnectedParams,
    input: &[i16],
    filter: &[i8],
    bias: Option<&[i64]>,
    output: &mut [i16],
) {
    let (min, max) = (params.quantized_activation_min, params.quantized_activation_max);
    fully_connected_loops(
        &params.shape,
        input,
        filter,
        bias,
        output,
        |acc: i64, x: i16, w: i8| {
            acc + ((w as i32 + params.weights_offset).wrapping_mul(x as i32 + params.input_offset)) as i64
        },
        |acc, bias, _| {
            output_s16(acc, bias, params.output_multiplier, params.output_shift, params.output_offset, min, max)
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::padding::Padding;

    #[test]
    fn int64_reduction_uses_a_16_bit_multiplier() {
        // 0.75 = 0x60000000 · 2^(0 − 31) → reduced 0x6000; x = 1001: 1001 · 0.75 = 750.75 → 751.
        assert_eq!(multiply_by_quantized_multiplier_i64(1001, 0x6000_0000, 0), 751);
        assert_eq!(multiply_by_quantized_multiplier_i64(-1001, 0x6000_0000, 0), -751);
        // Halves round up (toward +inf, an arithmetic shift): −2.5 → −2, 2.5 → 3.
        assert_eq!(multiply_by_quantized_multiplier_i64(-5, 0x4000_0000, 0), -2);
        assert_eq!(multiply_by_quantized_multiplier_i64(5, 0x4000_0000, 0), 3);
        // The low 16 bits of the multiplier are rounded away: 0x40007FFF → 0x4000, 0x40008000 → 0x4001.
        let big = 1i64 << 40;
        assert_eq!(
            multiply_by_quantized_multiplier_i64(big, 0x4000_7FFF, -20),
            ((big * 0x4000 + (1 << 34)) >> 35) as i32
        );
        assert_eq!(
            multiply_by_quantized_multiplier_i64(big, 0x4000_8000, -20),
            ((big * 0x4001 + (1 << 34)) >> 35) as i32
        );
        // Multipliers from 0x7FFF0000 up saturate at 0x7FFF; a positive shift scales up.
        assert_eq!(multiply_by_quantized_multiplier_i64(1 << 15, i32::MAX, 0), 0x7FFF);
        assert_eq!(multiply_by_quantized_multiplier_i64(3, 0x4000_0000, 3), 12);
    }

    #[test]
    fn conv_16x8_by_hand_with_clamp() {
        // One pixel, two input channels x = [1000, −300] at scale 0.01; filters [2, 1] (scale
        // 0.5) and [−1, 4] (scale 0.25); output scale 0.02; bias [100, −50] (scale 0.005, 0.0025).
        // ch0: acc = 2000 − 300 + 100 = 1800; · 0.005 / 0.02 = 0.25 → 450.
        // ch1: acc = −1000 − 1200 − 50 = −2250; · 0.0025 / 0.02 = 0.125 → −281.25 → −281.
        let q = Conv16QParams {
            input: QParamsS16::new(0.01),
            filter_scales: &[0.5, 0.25],
            filter_zero_points: &[0, 0],
            output: QParamsS16::new(0.02),
        };
        let o = ConvOptions {
            padding: Padding::Valid,
            stride_height: 1,
            stride_width: 1,
            dilation_height: 1,
            dilation_width: 1,
            activation: FusedActivation::None,
        };
        let (mut m, mut s) = ([0; 2], [0; 2]);
        let p = prepare_conv_16x8([1, 1, 1, 2], [2, 1, 1, 2], &o, &q, &mut m, &mut s).unwrap();
        assert_eq!((p.quantized_activation_min, p.quantized_activation_max), (-32768, 32767));
        let mut out = [0i16; 2];
        conv_16x8(&p, &m, &s, &[1000, -300], &[2, 1, -1, 4], Some(&[100, -50]), &mut out);
        assert_eq!(out, [450, -281]);
        // A large bias saturates at the int16 limit; ReLU clamps at 0.
        conv_16x8(&p, &m, &s, &[1000, -300], &[2, 1, -1, 4], Some(&[1 << 20, -50]), &mut out);
        assert_eq!(out, [32767, -281]);
        let relu = ConvOptions { activation: FusedActivation::Relu, ..o };
        let p = prepare_conv_16x8([1, 1, 1, 2], [2, 1, 1, 2], &relu, &q, &mut m, &mut s).unwrap();
        conv_16x8(&p, &m, &s, &[1000, -300], &[2, 1, -1, 4], Some(&[100, -50]), &mut out);
        assert_eq!(out, [450, 0]);
    }

    #[test]
    fn depthwise_and_fully_connected_16x8_by_hand() {
        // Depthwise, 1x1 filter, multiplier 1: out[c] = x[c] · w[c] · (in_s · w_s / out_s = 1).
        let q = Conv16QParams {
            input: QParamsS16::new(0.5),
            filter_scales: &[0.25, 0.25],
            filter_zero_points: &[0, 0],
            output: QParamsS16::new(0.125),
        };
        let o = DepthwiseConvOptions {
            padding: Padding::Same,
            stride_height: 1,
            stride_width: 1,
            dilation_height: 1,
            dilation_width: 1,
            activation: FusedActivation::Relu6,
        };
        let (mut m, mut s) = ([0; 2], [0; 2]);
        let p = prepare_depthwise_conv_16x8([1, 1, 1, 2], [1, 1, 1, 2], &o, &q, &mut m, &mut s).unwrap();
        assert_eq!((p.quantized_activation_min, p.quantized_activation_max), (0, 48));
        let mut out = [0i16; 2];
        depthwise_conv_16x8(&p, &m, &s, &[30, 7], &[1, 3], Some(&[-2, 0]), &mut out);
        assert_eq!(out, [28, 21]);
        depthwise_conv_16x8(&p, &m, &s, &[30, 70], &[1, 3], None, &mut out);
        assert_eq!(out, [30, 48]);

        // FC: 2 units over 3 inputs, in 0.1, w 0.2, out 0.05 → multiplier 0.4.
        let shape = FullyConnectedShape { batches: 1, accum_depth: 3, output_depth: 2 };
        let p = prepare_fully_connected_16x8(
            shape,
            QParamsS16::new(0.1),
            QParamsS8::new(0.2, 0),
            Some(0.02),
            QParamsS16::new(0.05),
            FusedActivation::None,
        )
        .unwrap();
        let mut out = [0i16; 2];
        // unit0: 10·1 + 20·2 + (−30)·3 = −40, + 5 = −35 · 0.4 = −14; unit1: −10 + 0 + 30 = 20 · 0.4 = 8.
        fully_connected_16x8(&p, &[10, 20, -30], &[1, 2, 3, -1, 0, -1], Some(&[5, 0]), &mut out);
        assert_eq!(out, [-14, 8]);
    }

    #[test]
    fn prepare_refuses_nonzero_zero_points_and_huge_multipliers() {
        let o = ConvOptions {
            padding: Padding::Valid,
            stride_height: 1,
            stride_width: 1,
            dilation_height: 1,
            dilation_width: 1,
            activation: FusedActivation::None,
        };
        let (mut m, mut s) = ([0; 1], [0; 1]);
        let mut q = Conv16QParams {
            input: QParamsS16 { scale: 0.1, zero_point: 3 },
            filter_scales: &[1.0],
            filter_zero_points: &[0],
            output: QParamsS16::new(0.1),
        };
        assert!(matches!(
            prepare_conv_16x8([1, 1, 1, 1], [1, 1, 1, 1], &o, &q, &mut m, &mut s),
            Err(KernelError::InvalidZeroPoint { .. })
        ));
        q.input = QParamsS16::new(1000.0);
        q.output = QParamsS16::new(1.0);
        assert!(matches!(
            prepare_conv_16x8([1, 1, 1, 1], [1, 1, 1, 1], &o, &q, &mut m, &mut s),
            Err(KernelError::MultiplierOutOfRange { .. })
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 200, ..Default::default() })]
        /// A 1x1 conv with one input channel is the fully-connected kernel over pixels, and a
        /// per-channel depthwise conv over one channel: all three must agree.
        #[test]
        fn the_three_kernels_agree_on_a_shared_case(
            xs in proptest::collection::vec(proptest::prelude::any::<i16>(), 1..20),
            w in -127i8..=127, b in -1_000_000i64..1_000_000, out_s in 0.001f32..10.0,
        ) {
            let n = xs.len();
            let in_s = 0.01f32;
            let w_s = 0.02f32;
            let o = ConvOptions { padding: Padding::Valid, stride_height: 1, stride_width: 1, dilation_height: 1, dilation_width: 1, activation: FusedActivation::None };
            let q = Conv16QParams { input: QParamsS16::new(in_s), filter_scales: &[w_s], filter_zero_points: &[0], output: QParamsS16::new(out_s) };
            let (mut m, mut s) = ([0; 1], [0; 1]);
            let p = prepare_conv_16x8([1, 1, n, 1], [1, 1, 1, 1], &o, &q, &mut m, &mut s).unwrap();
            let mut a = vec![0i16; n];
            conv_16x8(&p, &m, &s, &xs, &[w], Some(&[b]), &mut a);
            let d = DepthwiseConvOptions { padding: Padding::Valid, stride_height: 1, stride_width: 1, dilation_height: 1, dilation_width: 1, activation: FusedActivation::None };
            let pd = prepare_depthwise_conv_16x8([1, 1, n, 1], [1, 1, 1, 1], &d, &q, &mut m, &mut s).unwrap();
            let mut c = vec![0i16; n];
            depthwise_conv_16x8(&pd, &m, &s, &xs, &[w], Some(&[b]), &mut c);
            let shape = FullyConnectedShape { batches: n, accum_depth: 1, output_depth: 1 };
            let pf = prepare_fully_connected_16x8(shape, QParamsS16::new(in_s), QParamsS8::new(w_s, 0), None, QParamsS16::new(out_s), FusedActivation::None).unwrap();
            let mut f = vec![0i16; n];
            fully_connected_16x8(&pf, &xs, &[w], Some(&[b]), &mut f);
            proptest::prop_assert_eq!(&a, &c);
            proptest::prop_assert_eq!(&a, &f);
            // And each equals the real value rounded, up to the 16-bit multiplier's error.
            for (k, &x) in xs.iter().enumerate() {
                let real = (w as f64 * x as f64 + b as f64) * (in_s as f64 * w_s as f64) / out_s as f64;
                let want = real.round().clamp(-32768.0, 32767.0);
                proptest::prop_assert!((a[k] as f64 - want).abs() <= 1.0 + real.abs() * 1e-4, "{} vs {}", a[k], want);
            }
        }
    }
}

//! SOFTMAX on int8 input with int8 output of scale 1/256 and zero point −128.
//!
//! Mirrors the quantized template in `reference/softmax.h` (gemmlowp fixed point, no lookup
//! table), prepared as in `micro/kernels/softmax_common.cc` and
//! `kernels/internal/quantization_util.cc::PreprocessSoftmaxScaling`. Rows run along the last axis.

use crate::fixedpoint::{
    calculate_input_radius, exp_on_negative_values, multiply_by_quantized_multiplier_greater_than_one,
    one_over_one_plus_x_for_x_in_0_1, quantize_multiplier_greater_than_one, rescale, rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul, Rounding,
};
use crate::{KernelError, QParamsS8};

/// Integer bits of the scaled input differences.
const SCALED_DIFF_INTEGER_BITS: i32 = 5;
/// Integer bits of the accumulated sum of exponentials.
const ACCUMULATION_INTEGER_BITS: i32 = 12;

/// The only output quantization TFLM accepts for int8 SOFTMAX.
pub const SOFTMAX_OUTPUT_QPARAMS_S8: QParamsS8 = QParamsS8 { scale: 1.0 / 256.0, zero_point: -128 };

/// TFLM `SoftmaxParams` for the int8 path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SoftmaxParams {
    pub input_multiplier: i32,
    pub input_left_shift: i32,
    pub diff_min: i32,
    /// Length of the last axis.
    pub depth: usize,
    pub rounding: Rounding,
}

/// Computes the SOFTMAX parameters. The output must be exactly (1/256, −128), as TFLM checks.
pub fn prepare_softmax_s8(
    beta: f32,
    input: QParamsS8,
    output: QParamsS8,
    depth: usize,
    rounding: Rounding,
) -> Result<SoftmaxParams, KernelError> {
    input.validate("input")?;
    if output.scale.to_bits() != SOFTMAX_OUTPUT_QPARAMS_S8.scale.to_bits()
        || output.zero_point != SOFTMAX_OUTPUT_QPARAMS_S8.zero_point
    {
        return Err(KernelError::QParamsMismatch {
            tensor: "softmax output",
            expected: SOFTMAX_OUTPUT_QPARAMS_S8,
            actual: output,
        });
    }
    if depth == 0 {
        return Err(KernelError::InvalidShape { what: "softmax depth is 0" });
    }
    // PreprocessSoftmaxScaling: caps the real multiplier so that it stays representable.
    let max_real_multiplier = match rounding {
        Rounding::Double => ((1i64 << 31) - 1) as f64,
        Rounding::Single => ((1i64 << 30) - 1) as f64,
    };
    let input_beta_real_multiplier =
        (beta as f64 * input.scale as f64 * (1i64 << (31 - SCALED_DIFF_INTEGER_BITS)) as f64).min(max_real_multiplier);
    let q = quantize_multiplier_greater_than_one(input_beta_real_multiplier, rounding)?;
    let diff_min = -calculate_input_radius(SCALED_DIFF_INTEGER_BITS, q.shift, 31);
    Ok(SoftmaxParams { input_multiplier: q.multiplier, input_left_shift: q.shift, diff_min, depth, rounding })
}

/// TFLM `reference_ops::Softmax` (quantized template) for int8 in and out.
///
/// # Panics
/// If the slices differ in length or their length is not a multiple of `params.depth`.
pub fn softmax_s8(params: &SoftmaxParams, input: &[i8], output: &mut [i8]) {
    assert_eq!(input.len(), output.len());
    assert_eq!(input.len() % params.depth, 0);
    for (row_in, row_out) in input.chunks_exact(params.depth).zip(output.chunks_exact_mut(params.depth)) {
        let max_in_row = row_in.iter().copied().max().unwrap_or(i8::MIN) as i32;
        let exp_of_diff = |x: i8| -> Option<i32> {
            let input_diff = x as i32 - max_in_row;
            (input_diff >= params.diff_min).then(|| {
                let input_diff_rescaled = multiply_by_quantized_multiplier_greater_than_one(
                    input_diff,
                    params.input_multiplier,
                    params.input_left_shift,
                    params.rounding,
                );
                exp_on_negative_values(input_diff_rescaled, SCALED_DIFF_INTEGER_BITS)
            })
        };

        let mut sum_of_exps: i32 = 0;
        for &x in row_in {
            if let Some(exp_in_0) = exp_of_diff(x) {
                sum_of_exps = sum_of_exps.wrapping_add(rescale(exp_in_0, 0, ACCUMULATION_INTEGER_BITS));
            }
        }

        // GetReciprocal: normalise the sum to [1, 2) and take 1/x in fixed point.
        let headroom_plus_one = (sum_of_exps as u32).leading_zeros() as i32;
        let num_bits_over_unit = ACCUMULATION_INTEGER_BITS - headroom_plus_one;
        let shifted_sum_minus_one =
            ((sum_of_exps as u32).wrapping_shl(headroom_plus_one as u32)).wrapping_sub(1 << 31) as i32;
        let shifted_scale = one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one);
        // Only a wrapped sum (rows longer than 4096) could push this past 31.
        let exponent = (num_bits_over_unit + 31 - 8).clamp(0, 31);

        for (out, &x) in row_out.iter_mut().zip(row_in) {
            *out = match exp_of_diff(x) {
                Some(exp_in_0) => {
                    let unsat_output = rounding_divide_by_pot(
                        saturating_rounding_doubling_high_mul(shifted_scale, exp_in_0),
                        exponent,
                    );
                    (unsat_output - 128).clamp(-128, 127) as i8
                }
                None => i8::MIN,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepare(scale: f32) -> SoftmaxParams {
        prepare_softmax_s8(1.0, QParamsS8::new(scale, 0), SOFTMAX_OUTPUT_QPARAMS_S8, 10, Rounding::Double).unwrap()
    }

    #[test]
    fn outputs_sum_to_about_256_levels_and_track_float() {
        let params = prepare(0.1);
        let input: [i8; 10] = [-128, -50, -10, 0, 3, 7, 20, 40, 41, 127];
        let mut out = [0i8; 10];
        softmax_s8(&params, &input, &mut out);
        let levels: i32 = out.iter().map(|&q| q as i32 + 128).sum();
        assert!((levels - 256).abs() <= 10, "levels={levels}");
        let denom: f64 = input.iter().map(|&x| (x as f64 * 0.1f32 as f64).exp()).sum();
        for (&x, &q) in input.iter().zip(&out) {
            let p = (x as f64 * 0.1f32 as f64).exp() / denom;
            let expected = (p * 256.0 - 128.0).round().clamp(-128.0, 127.0);
            assert!((q as f64 - expected).abs() <= 1.0, "x={x} q={q} expected={expected}");
        }
    }

    #[test]
    fn uniform_row_and_monotone() {
        let params = prepare(0.05);
        let mut out = [0i8; 10];
        softmax_s8(&params, &[7; 10], &mut out);
        // 256 / 10 = 25.6 → 26 levels each.
        assert!(out.iter().all(|&q| q == out[0]));
        assert!((out[0] as i32 + 128 - 26).abs() <= 1);
        let input: [i8; 10] = [-100, -80, -60, -40, -20, 0, 20, 40, 60, 80];
        softmax_s8(&params, &input, &mut out);
        assert!(out.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn far_below_max_gives_minus_128() {
        let params = prepare(1.0);
        assert!(params.diff_min > -128);
        let mut out = [0i8; 10];
        let mut input = [-128i8; 10];
        input[3] = 127;
        softmax_s8(&params, &input, &mut out);
        assert_eq!(out[3], 127);
        assert!(out.iter().enumerate().all(|(i, &q)| i == 3 || q == -128));
    }

    #[test]
    fn rejects_wrong_output_params() {
        let input = QParamsS8::new(0.1, 0);
        assert!(prepare_softmax_s8(1.0, input, QParamsS8::new(1.0 / 255.0, -128), 4, Rounding::Double).is_err());
        assert!(prepare_softmax_s8(1.0, input, QParamsS8::new(1.0 / 256.0, 0), 4, Rounding::Double).is_err());
        // beta · scale · 2^26 ≤ 1 cannot use QuantizeMultiplierGreaterThanOne.
        assert!(
            prepare_softmax_s8(1.0, QParamsS8::new(1e-9, 0), SOFTMAX_OUTPUT_QPARAMS_S8, 4, Rounding::Double).is_err()
        );
    }
}

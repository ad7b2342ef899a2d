//! LOG_SOFTMAX on int8 input with int8 output of scale 16/256 and zero point 127, along the last
//! axis.
//!
//! Mirrors `micro/kernels/log_softmax.cc` (Prepare: the output must be exactly (16/256, 127);
//! `PreprocessLogSoftmaxScalingExp` with beta 1 and 5 integer bits of scaled differences) and
//! `reference_ops::LogSoftmaxQuantized` (`reference/log_softmax.h`): the sum of exponentials in
//! Q12, its logarithm by `log_x_for_x_greater_than_or_equal_to_1` (`internal/common.h`) in Q5,
//! each output `(diff − log_sum) / 2^22 + 127`.

use crate::fixedpoint::{
    calculate_input_radius, exp_on_negative_values, multiply_by_quantized_multiplier, one_over_one_plus_x_for_x_in_0_1,
    quantize_multiplier_greater_than_one, quantize_multiplier_smaller_than_one_exp, rescale, rounding_divide_by_pot,
    rounding_half_sum, saturating_rounding_doubling_high_mul as mul, saturating_rounding_multiply_by_pot, Rounding,
};
use crate::{KernelError, QParamsS8};

/// `kInputIntegerBits` (and Prepare's `kScaledDiffIntegerBits`).
const INPUT_INTEGER_BITS: i32 = 5;
const ACCUMULATION_INTEGER_BITS: i32 = 12;
const OUTPUT_INTEGER_BITS: i32 = 4;

/// The only output quantization TFLM accepts for int8 LOG_SOFTMAX.
pub const LOG_SOFTMAX_OUTPUT_QPARAMS_S8: QParamsS8 = QParamsS8 { scale: 16.0 / 256.0, zero_point: 127 };

/// TFLM's `LogSoftmaxOpData` for int8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LogSoftmaxParams {
    pub input_multiplier: i32,
    pub input_left_shift: i32,
    pub reverse_scaling_divisor: i32,
    pub reverse_scaling_right_shift: i32,
    pub diff_min: i32,
    /// Length of the last axis.
    pub depth: usize,
}

/// TFLM's `CalculateOpData` for an int8 LOG_SOFTMAX (default double-rounding build).
pub fn prepare_log_softmax_s8(
    input: QParamsS8,
    output: QParamsS8,
    depth: usize,
) -> Result<LogSoftmaxParams, KernelError> {
    input.validate("input")?;
    let want = LOG_SOFTMAX_OUTPUT_QPARAMS_S8;
    if output.scale.to_bits() != want.scale.to_bits() || output.zero_point != want.zero_point {
        return Err(KernelError::QParamsMismatch { tensor: "log_softmax output", expected: want, actual: output });
    }
    if depth == 0 {
        return Err(KernelError::InvalidShape { what: "log_softmax depth is 0" });
    }
    // PreprocessSoftmaxScaling with beta = 1.
    let max_real_multiplier = ((1i64 << 31) - 1) as f64;
    let real = (input.scale as f64 * (1i64 << (31 - INPUT_INTEGER_BITS)) as f64).min(max_real_multiplier);
    let q = quantize_multiplier_greater_than_one(real, Rounding::Double)?;
    // The inverse scaling: (1 << (31 − left_shift)) as a C int, over the multiplier.
    let reverse = 1i32.wrapping_shl((31 - q.shift) as u32) as f64 / q.multiplier as f64;
    let r = quantize_multiplier_smaller_than_one_exp(reverse, Rounding::Double)?;
    Ok(LogSoftmaxParams {
        input_multiplier: q.multiplier,
        input_left_shift: q.shift,
        reverse_scaling_divisor: r.multiplier,
        reverse_scaling_right_shift: -r.shift,
        diff_min: -calculate_input_radius(INPUT_INTEGER_BITS, q.shift, 31),
        depth,
    })
}

/// `SaturatingRoundingMultiplyByPOTParam` for `exponent ≥ 0` (a saturating left shift).
fn saturating_shift(x: i32, exponent: i32) -> i32 {
    saturating_rounding_multiply_by_pot(x, exponent)
}

/// `log_x_for_x_greater_than_or_equal_to_1<OutputIntegerBits, InputIntegerBits>` on raw values.
pub fn log_x_for_x_greater_than_or_equal_to_1(input: i32, input_integer_bits: i32, output_integer_bits: i32) -> i32 {
    const LOG_2: i32 = 1488522236;
    const SQRT_SQRT_HALF: i32 = 1805811301;
    const SQRT_HALF: i32 = 1518500250;
    const ONE_QUARTER: i32 = 536870912;
    const ALPHA_N: i32 = 117049297;
    const ALPHA_D: i32 = 127690142;
    const ALPHA_I: i32 = 1057819769;
    const ALPHA_F: i32 = 638450708;
    let accum_bits = output_integer_bits + 1;
    let sat_add = |a: i32, b: i32| (a as i64 + b as i64).clamp(i32::MIN as i64, i32::MAX as i64) as i32;
    let sat_sub = |a: i32, b: i32| (a as i64 - b as i64).clamp(i32::MIN as i64, i32::MAX as i64) as i32;

    let shifted_quarter = rescale(ONE_QUARTER, 0, accum_bits);
    let z_a = input;
    let z_a_headroom_plus_1 = (z_a as u32).leading_zeros() as i32;
    let r_a_tmp = saturating_shift(z_a, z_a_headroom_plus_1 - 1);
    let r_a_raw = saturating_shift(mul(r_a_tmp, SQRT_HALF), 1);
    let z_a_pow_2_adj =
        sat_add(saturating_shift(input_integer_bits - z_a_headroom_plus_1, 31 - accum_bits), shifted_quarter);

    let z_b = mul(z_a, SQRT_HALF);
    let z_b_headroom = (z_b as u32).leading_zeros() as i32 - 1;
    let r_b_raw = saturating_shift(z_a, z_b_headroom);
    let z_b_pow_2_adj = sat_sub(saturating_shift(input_integer_bits - z_b_headroom, 31 - accum_bits), shifted_quarter);

    let r = r_a_raw.min(r_b_raw);
    let z_pow_2_adj = z_a_pow_2_adj.max(z_b_pow_2_adj);

    let p = rounding_half_sum(r, SQRT_SQRT_HALF);
    let mut q = r.wrapping_sub(SQRT_SQRT_HALF);
    q = q.wrapping_add(q);

    let common_sq = mul(q, q);
    let num = mul(q, r).wrapping_add(mul(mul(q, common_sq), ALPHA_N));
    let denom_minus_one_0 =
        mul(p, ALPHA_I.wrapping_add(q).wrapping_add(mul(ALPHA_D, common_sq))).wrapping_add(mul(ALPHA_F, q));
    let recip_denom = one_over_one_plus_x_for_x_in_0_1(denom_minus_one_0);

    let num_scaled = rescale(num, 0, accum_bits);
    rescale(mul(z_pow_2_adj, LOG_2).wrapping_add(mul(num_scaled, recip_denom)), accum_bits, output_integer_bits)
}

/// TFLM `reference_ops::LogSoftmaxQuantized<int8_t>` over every row of `depth` values.
///
/// # Panics
/// If the slices differ in length or their length is not a multiple of `params.depth`.
pub fn log_softmax_s8(params: &LogSoftmaxParams, input: &[i8], output: &mut [i8]) {
    assert_eq!(input.len(), output.len());
    assert_eq!(input.len() % params.depth, 0);
    let p = params;
    for (row_in, row_out) in input.chunks_exact(p.depth).zip(output.chunks_exact_mut(p.depth)) {
        let max_in_row = row_in.iter().copied().max().unwrap_or(i8::MIN) as i32;
        let mut sum_of_exps_in_q12: i32 = 0;
        for &x in row_in {
            let input_diff = x as i32 - max_in_row;
            if input_diff >= p.diff_min {
                let input_diff_in_q5 =
                    multiply_by_quantized_multiplier(input_diff, p.input_multiplier, p.input_left_shift);
                let e = exp_on_negative_values(input_diff_in_q5, INPUT_INTEGER_BITS);
                sum_of_exps_in_q12 = sum_of_exps_in_q12.wrapping_add(rescale(e, 0, ACCUMULATION_INTEGER_BITS));
            }
        }
        let log_sum_of_exps_in_q5 =
            log_x_for_x_greater_than_or_equal_to_1(sum_of_exps_in_q12, ACCUMULATION_INTEGER_BITS, INPUT_INTEGER_BITS);
        let shifted_log_sum_of_exps_in_q5 = log_sum_of_exps_in_q5.wrapping_add(i32::MIN);
        let adjusted_diff_min = (p.diff_min - 1).max(multiply_by_quantized_multiplier(
            shifted_log_sum_of_exps_in_q5,
            p.reverse_scaling_divisor,
            -p.reverse_scaling_right_shift,
        ));
        for (o, &x) in row_out.iter_mut().zip(row_in) {
            let input_diff = x as i32 - max_in_row;
            *o = if input_diff > adjusted_diff_min {
                let input_diff_in_q5 =
                    multiply_by_quantized_multiplier(input_diff, p.input_multiplier, p.input_left_shift);
                let out = rounding_divide_by_pot(
                    input_diff_in_q5.wrapping_sub(log_sum_of_exps_in_q5),
                    31 - INPUT_INTEGER_BITS - OUTPUT_INTEGER_BITS,
                ) + 127;
                out.clamp(-128, 127) as i8
            } else {
                i8::MIN
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_of_one_is_zero_and_uniform_rows_give_minus_log_n() {
        // log(1) = 0 and log(e^k) = k in Q5 (the Q12 input 1.0 is 1 << 19).
        assert_eq!(log_x_for_x_greater_than_or_equal_to_1(1 << 19, 12, 5), 0);
        let l = log_x_for_x_greater_than_or_equal_to_1(4 << 19, 12, 5) as f64 / (1 << 26) as f64;
        assert!((l - 4f64.ln()).abs() < 1e-6, "{l}");
        // Four equal inputs: log(1/4) = −1.386 → −1.386 / (16/256) + 127 = 104.8 → 105.
        let p = prepare_log_softmax_s8(QParamsS8::new(0.1, 0), LOG_SOFTMAX_OUTPUT_QPARAMS_S8, 4).unwrap();
        let mut out = [0i8; 4];
        log_softmax_s8(&p, &[3, 3, 3, 3], &mut out);
        assert_eq!(out, [105; 4]);
        assert!(prepare_log_softmax_s8(QParamsS8::new(0.1, 0), QParamsS8::new(1.0 / 16.0, 0), 4).is_err());
    }
}

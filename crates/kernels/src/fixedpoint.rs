//! Fixed-point primitives shared by the kernels: gemmlowp's `fixedpoint.h` (int32 and the int16
//! pieces HARD_SWISH needs), TFLM's `MultiplyByQuantizedMultiplier` family
//! (`kernels/internal/common.{h,cc}`), `QuantizeMultiplier` and friends
//! (`kernels/internal/quantization_util.cc`) and `CalculateActivationRangeQuantized`
//! (`kernels/kernel_util.cc`).
//!
//! Not here: anything that loops over tensors.
//!
//! Key decision: gemmlowp's `FixedPoint<int32, I>` is not modelled as a type; functions take and
//! return raw `i32` values and name the integer bits in their contract, which keeps every rounding
//! step visible. Additions that gemmlowp performs as plain `int32` arithmetic wrap here too.

use crate::{KernelError, QParamsS8};

/// How `MultiplyByQuantizedMultiplier` rounds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Rounding {
    /// TFLM's default build: `RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x·2^left, m), right)`.
    #[default]
    Double,
    /// Builds with `TFLITE_SINGLE_ROUNDING`: `(x·m + 2^(30−shift)) >> (31−shift)` in 64 bits, and
    /// `QuantizeMultiplier` clamps shifts above 30.
    Single,
}

/// An int32 fixed-point multiplier with its power-of-two exponent: `real ≈ multiplier · 2^(shift−31)`.
/// A positive `shift` means a left shift, as in TFLM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct QuantizedMultiplier {
    pub multiplier: i32,
    pub shift: i32,
}

/// C's `frexp`: `x = mantissa · 2^exponent` with `|mantissa|` in `[0.5, 1)`; zero, infinities and
/// NaN come back unchanged with exponent 0.
pub fn frexp(x: f64) -> (f64, i32) {
    if x == 0.0 || !x.is_finite() {
        return (x, 0);
    }
    let bits = x.to_bits();
    let biased_exponent = ((bits >> 52) & 0x7ff) as i32;
    if biased_exponent == 0 {
        let (mantissa, exponent) = frexp(x * 2f64.powi(64));
        return (mantissa, exponent - 64);
    }
    let mantissa = f64::from_bits((bits & !(0x7ff << 52)) | (1022 << 52));
    (mantissa, biased_exponent - 1022)
}

/// gemmlowp `SaturatingRoundingDoublingHighMul` (ARM `VQRDMULH`): `floor(a·b/2^31 + 1/2)`,
/// saturating the single overflowing case `a == b == i32::MIN`.
#[inline]
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    // Truncating division, as in C; an arithmetic shift would round differently.
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// gemmlowp `RoundingDivideByPOT`: `x / 2^exponent` rounded half away from zero, for
/// `0 ≤ exponent ≤ 31`.
#[inline]
pub fn rounding_divide_by_pot(x: i32, exponent: i32) -> i32 {
    debug_assert!((0..=31).contains(&exponent), "exponent {exponent}");
    let mask = ((1i64 << exponent) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + (x < 0) as i32;
    (x >> exponent) + (remainder > threshold) as i32
}

/// gemmlowp `SaturatingRoundingMultiplyByPOT<exponent>`: a saturating left shift for
/// `exponent > 0`, [`rounding_divide_by_pot`] for `exponent < 0`.
#[inline]
pub fn saturating_rounding_multiply_by_pot(x: i32, exponent: i32) -> i32 {
    if exponent > 0 {
        let shifted = (x as i64) << exponent.min(32);
        shifted.clamp(i32::MIN as i64, i32::MAX as i64) as i32
    } else if exponent < 0 {
        rounding_divide_by_pot(x, -exponent)
    } else {
        x
    }
}

/// gemmlowp `Rescale<dst_integer_bits>` of a raw value with `src_integer_bits` integer bits.
#[inline]
pub fn rescale(x: i32, src_integer_bits: i32, dst_integer_bits: i32) -> i32 {
    saturating_rounding_multiply_by_pot(x, src_integer_bits - dst_integer_bits)
}

/// gemmlowp `RoundingHalfSum` for int32: `(a + b + sign) / 2` in 64 bits, truncating.
#[inline]
pub fn rounding_half_sum(a: i32, b: i32) -> i32 {
    let sum = a as i64 + b as i64;
    let sign = if sum >= 0 { 1 } else { -1 };
    ((sum + sign) / 2) as i32
}

/// TFLM `MultiplyByQuantizedMultiplier(int32 x, int32 multiplier, int shift)` in the default
/// (double rounding) build. `x · 2^max(shift, 0)` is a wrapping int32 multiply, as in C.
#[inline]
pub fn multiply_by_quantized_multiplier(x: i32, quantized_multiplier: i32, shift: i32) -> i32 {
    let left_shift = shift.max(0);
    let right_shift = (-shift).clamp(0, 31);
    rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(x.wrapping_shl(left_shift as u32), quantized_multiplier),
        right_shift,
    )
}

/// TFLM `MultiplyByQuantizedMultiplier` under the given [`Rounding`].
#[inline]
pub fn multiply_by_quantized_multiplier_with(x: i32, quantized_multiplier: i32, shift: i32, rounding: Rounding) -> i32 {
    match rounding {
        Rounding::Double => multiply_by_quantized_multiplier(x, quantized_multiplier, shift),
        Rounding::Single => {
            debug_assert!((-31..=30).contains(&shift), "shift {shift}");
            let total_shift = (31 - shift).clamp(1, 62);
            let round = 1i64 << (total_shift - 1);
            ((x as i64 * quantized_multiplier as i64 + round) >> total_shift) as i32
        }
    }
}

/// TFLM `MultiplyByQuantizedMultiplier(int64 x, int32 multiplier, int shift)`, the reduction of
/// the 64-bit accumulators of the 16x8 kernels. Both TFLM builds (single and double rounding)
/// compute it the same way: the multiplier is cut to 16 bits, `(m + 2^15) >> 16` (0x7FFF from
/// 0x7FFF0000 up), then `(x · m16 + 2^(14 − shift)) >> (15 − shift)`, truncated to int32 as C's
/// cast does. TFLM assumes `shift` in `[−31, 7]`; prepare functions refuse other shifts.
#[inline]
pub fn multiply_by_quantized_multiplier_i64(x: i64, quantized_multiplier: i32, shift: i32) -> i32 {
    debug_assert!((-31..8).contains(&shift), "shift {shift}");
    let reduced = if quantized_multiplier < 0x7FFF_0000 { (quantized_multiplier + (1 << 15)) >> 16 } else { 0x7FFF };
    let total_shift = (15 - shift) as u32;
    let round = 1i64 << (total_shift - 1);
    (x.wrapping_mul(reduced as i64).wrapping_add(round) >> total_shift) as i32
}

/// TFLM `MultiplyByQuantizedMultiplierSmallerThanOneExp`: `shift ≤ 0`. Under double rounding this
/// is `RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x, m), −shift)`.
#[inline]
pub fn multiply_by_quantized_multiplier_smaller_than_one_exp(
    x: i32,
    quantized_multiplier: i32,
    shift: i32,
    rounding: Rounding,
) -> i32 {
    debug_assert!(shift <= 0);
    match rounding {
        Rounding::Double => {
            rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, quantized_multiplier), (-shift).min(31))
        }
        Rounding::Single => multiply_by_quantized_multiplier_with(x, quantized_multiplier, shift, rounding),
    }
}

/// TFLM `MultiplyByQuantizedMultiplierGreaterThanOne`: `shift ≥ 0`. Under double rounding this is
/// `SaturatingRoundingDoublingHighMul(x · 2^shift, m)` with a wrapping multiply.
#[inline]
pub fn multiply_by_quantized_multiplier_greater_than_one(
    x: i32,
    quantized_multiplier: i32,
    shift: i32,
    rounding: Rounding,
) -> i32 {
    debug_assert!(shift >= 0);
    match rounding {
        Rounding::Double => saturating_rounding_doubling_high_mul(x.wrapping_shl(shift as u32), quantized_multiplier),
        Rounding::Single => multiply_by_quantized_multiplier_with(x, quantized_multiplier, shift, rounding),
    }
}

/// TFLM `QuantizeMultiplier` (default build): frexp, `round(q·2^31)` half away from zero, halve
/// and bump the shift when that reaches 2^31, and flush to `(0, 0)` when the shift is below −31.
///
/// Fails only for a non-finite input (TFLM would abort on a `TFLITE_CHECK`).
pub fn quantize_multiplier(double_multiplier: f64) -> Result<QuantizedMultiplier, KernelError> {
    quantize_multiplier_with(double_multiplier, Rounding::Double)
}

/// [`quantize_multiplier`] for the given build: [`Rounding::Single`] additionally saturates
/// shifts above 30 to `(2^31 − 1, 30)`.
pub fn quantize_multiplier_with(
    double_multiplier: f64,
    rounding: Rounding,
) -> Result<QuantizedMultiplier, KernelError> {
    if !double_multiplier.is_finite() {
        return Err(KernelError::MultiplierOutOfRange {
            what: "QuantizeMultiplier",
            multiplier: double_multiplier,
            requirement: "a finite value",
        });
    }
    if double_multiplier == 0.0 {
        return Ok(QuantizedMultiplier::default());
    }
    let (q, mut shift) = frexp(double_multiplier);
    let mut q_fixed = (q * (1i64 << 31) as f64).round() as i64;
    if q_fixed == 1i64 << 31 {
        q_fixed /= 2;
        shift += 1;
    }
    if shift < -31 {
        shift = 0;
        q_fixed = 0;
    }
    if rounding == Rounding::Single && shift > 30 {
        shift = 30;
        q_fixed = (1i64 << 31) - 1;
    }
    Ok(QuantizedMultiplier { multiplier: q_fixed as i32, shift })
}

/// TFLM `QuantizeMultiplierSmallerThanOneExp`: requires `0 < m < 1`; the shift is ≤ 0.
pub fn quantize_multiplier_smaller_than_one_exp(
    double_multiplier: f64,
    rounding: Rounding,
) -> Result<QuantizedMultiplier, KernelError> {
    let out_of_range = KernelError::MultiplierOutOfRange {
        what: "QuantizeMultiplierSmallerThanOneExp",
        multiplier: double_multiplier,
        requirement: "0 < multiplier < 1",
    };
    if !(double_multiplier > 0.0 && double_multiplier < 1.0) {
        return Err(out_of_range);
    }
    let quantized = quantize_multiplier_with(double_multiplier, rounding)?;
    if quantized.shift > 0 {
        return Err(out_of_range);
    }
    Ok(quantized)
}

/// TFLM `QuantizeMultiplierGreaterThanOne`: requires `m > 1`; the shift is ≥ 0.
pub fn quantize_multiplier_greater_than_one(
    double_multiplier: f64,
    rounding: Rounding,
) -> Result<QuantizedMultiplier, KernelError> {
    let out_of_range = KernelError::MultiplierOutOfRange {
        what: "QuantizeMultiplierGreaterThanOne",
        multiplier: double_multiplier,
        requirement: "multiplier > 1",
    };
    if double_multiplier.is_nan() || double_multiplier <= 1.0 {
        return Err(out_of_range);
    }
    let quantized = quantize_multiplier_with(double_multiplier, rounding)?;
    if quantized.shift < 0 {
        return Err(out_of_range);
    }
    Ok(quantized)
}

/// TFLM `CalculateInputRadius` (`quantization_util.cc`): the largest input magnitude, on the
/// rescaled input scale, that does not saturate a Q`input_integer_bits` value.
pub fn calculate_input_radius(input_integer_bits: i32, input_left_shift: i32, total_signed_bits: i32) -> i32 {
    let max_input_rescaled = ((1i64 << input_integer_bits) - 1) as f64
        * 2f64.powi(total_signed_bits - input_integer_bits)
        / 2f64.powi(input_left_shift);
    max_input_rescaled.floor() as i32
}

/// gemmlowp `exp_on_interval_between_negative_one_quarter_and_0_excl` on Q0.31 values.
pub fn exp_on_interval_between_negative_one_quarter_and_0_excl(a: i32) -> i32 {
    const EXP_MINUS_ONE_EIGHTH: i32 = 1895147668;
    const ONE_THIRD: i32 = 715827883;
    let mul = saturating_rounding_doubling_high_mul;
    let x = a.wrapping_add(1 << 28);
    let x2 = mul(x, x);
    let x3 = mul(x2, x);
    let x4 = mul(x2, x2);
    let x4_over_4 = rounding_divide_by_pot(x4, 2);
    let poly = rounding_divide_by_pot(mul(x4_over_4.wrapping_add(x3), ONE_THIRD).wrapping_add(x2), 1);
    EXP_MINUS_ONE_EIGHTH.wrapping_add(mul(EXP_MINUS_ONE_EIGHTH, x.wrapping_add(poly)))
}

/// gemmlowp `exp_on_negative_values`: `a` is a non-positive Q`integer_bits` value
/// (`0 ≤ integer_bits ≤ 29`); the result is `exp(a)` in Q0.31.
pub fn exp_on_negative_values(a: i32, integer_bits: i32) -> i32 {
    debug_assert!((0..=29).contains(&integer_bits));
    const BARREL_SHIFTER: [(i32, i32); 7] =
        [(-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535), (3, 720401), (4, 242)];
    let fractional_bits = 31 - integer_bits;
    let one_quarter = 1i32 << (fractional_bits - 2);
    let a_mod_quarter_minus_one_quarter = (a & (one_quarter - 1)).wrapping_sub(one_quarter);
    let mut result = exp_on_interval_between_negative_one_quarter_and_0_excl(rescale(
        a_mod_quarter_minus_one_quarter,
        integer_bits,
        0,
    ));
    let remainder = a_mod_quarter_minus_one_quarter.wrapping_sub(a);
    for (exponent, multiplier) in BARREL_SHIFTER {
        if integer_bits > exponent {
            let bit = 1i32.wrapping_shl((fractional_bits + exponent) as u32);
            if remainder & bit != 0 {
                result = saturating_rounding_doubling_high_mul(result, multiplier);
            }
        }
    }
    if integer_bits > 5 && a < -(1i32 << (36 - integer_bits)) {
        result = 0;
    }
    if a == 0 {
        result = i32::MAX;
    }
    result
}

fn newton_raphson_reciprocal_q2(half_denominator: i32) -> i32 {
    const FORTY_EIGHT_OVER_SEVENTEEN: i32 = 1515870810;
    const MINUS_THIRTY_TWO_OVER_SEVENTEEN: i32 = -1010580540;
    const ONE_Q2: i32 = 1 << 29;
    let mul = saturating_rounding_doubling_high_mul;
    let mut x = FORTY_EIGHT_OVER_SEVENTEEN.wrapping_add(mul(half_denominator, MINUS_THIRTY_TWO_OVER_SEVENTEEN));
    for _ in 0..3 {
        let one_minus_half_denominator_times_x = ONE_Q2.wrapping_sub(mul(half_denominator, x));
        x = x.wrapping_add(rescale(mul(x, one_minus_half_denominator_times_x), 4, 2));
    }
    x
}

/// gemmlowp `one_over_one_plus_x_for_x_in_0_1`: `1/(1+a)` for `a` in Q0.31 `[0, 1)`, in Q0.31.
pub fn one_over_one_plus_x_for_x_in_0_1(a: i32) -> i32 {
    let x = newton_raphson_reciprocal_q2(rounding_half_sum(a, i32::MAX));
    rescale(x, 1, 0)
}

/// gemmlowp `one_minus_x_over_one_plus_x_for_x_in_0_1`: `(1−a)/(1+a)` in Q0.31.
pub fn one_minus_x_over_one_plus_x_for_x_in_0_1(a: i32) -> i32 {
    let x = newton_raphson_reciprocal_q2(rounding_half_sum(a, i32::MAX));
    rescale(x.wrapping_sub(1 << 29), 2, 0)
}

/// gemmlowp `logistic` of a Q`integer_bits` value, in Q0.31.
pub fn logistic(a: i32, integer_bits: i32) -> i32 {
    if a == 0 {
        return 1 << 30;
    }
    let on_positive =
        one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(a.wrapping_abs().wrapping_neg(), integer_bits));
    if a > 0 {
        on_positive
    } else {
        i32::MAX.wrapping_sub(on_positive)
    }
}

/// gemmlowp `tanh` of a Q`integer_bits` value, in Q0.31.
pub fn tanh(a: i32, integer_bits: i32) -> i32 {
    if a == 0 {
        return 0;
    }
    // ExactMulByPot<1> relabels −|a| as Q(integer_bits + 1) without touching the raw value.
    let t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(
        a.wrapping_abs().wrapping_neg(),
        integer_bits + 1,
    ));
    if a < 0 {
        t.wrapping_neg()
    } else {
        t
    }
}

/// gemmlowp `SaturatingRoundingDoublingHighMul` for int16.
#[inline]
pub fn saturating_rounding_doubling_high_mul_s16(a: i16, b: i16) -> i16 {
    if a == i16::MIN && b == i16::MIN {
        return i16::MAX;
    }
    let ab = a as i32 * b as i32;
    let nudge = if ab >= 0 { 1 << 14 } else { 1 - (1 << 14) };
    ((ab + nudge) / (1 << 15)) as i16
}

/// TFLM `SaturatingDoublingHighMul` (`reference/hard_swish.h`): like the rounding version but
/// truncating, `(a·b) / 2^15`.
#[inline]
pub fn saturating_doubling_high_mul_s16(a: i16, b: i16) -> i16 {
    if a == i16::MIN && b == i16::MIN {
        return i16::MAX;
    }
    ((a as i32 * b as i32) / (1 << 15)) as i16
}

/// gemmlowp `RoundingDivideByPOT` for int16 (`0 ≤ exponent ≤ 15`).
#[inline]
pub fn rounding_divide_by_pot_s16(x: i16, exponent: i32) -> i16 {
    rounding_divide_by_pot(x as i32, exponent) as i16
}

/// gemmlowp `ShiftLeft` for int16: a left shift saturating to the int16 range.
#[inline]
pub fn saturating_left_shift_s16(x: i16, offset: i32) -> i16 {
    let shifted = (x as i64) << offset.clamp(0, 32);
    shifted.clamp(i16::MIN as i64, i16::MAX as i64) as i16
}

/// TFLM `DownScaleInt32ToInt16Multiplier` (`quantization_util.cc`): rounds a non-negative int32
/// multiplier to its top 16 bits, saturating at `i16::MAX`.
pub fn down_scale_int32_to_int16_multiplier(multiplier: i32) -> i16 {
    const ROUNDING_OFFSET: i32 = 1 << 15;
    if multiplier >= i32::MAX - ROUNDING_OFFSET {
        return i16::MAX;
    }
    ((multiplier + ROUNDING_OFFSET) >> 16) as i16
}

/// A fused activation as stored in TFLite builtin options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FusedActivation {
    #[default]
    None,
    Relu,
    Relu6,
    ReluN1To1,
}

/// TFLM `CalculateActivationRangeQuantized` for an int8 output: the clamp interval
/// `[act_min, act_max]`, where a real value `v` maps to `zero_point + round(v / scale)` computed in
/// `f32` with rounding half away from zero.
pub fn calculate_activation_range_quantized(activation: FusedActivation, output: QParamsS8) -> (i32, i32) {
    let (qmin, qmax) = (i8::MIN as i32, i8::MAX as i32);
    let quantize = |v: f32| output.zero_point.saturating_add((v / output.scale).round() as i32);
    match activation {
        FusedActivation::None => (qmin, qmax),
        FusedActivation::Relu => (qmin.max(quantize(0.0)), qmax),
        FusedActivation::Relu6 => (qmin.max(quantize(0.0)), qmax.min(quantize(6.0))),
        FusedActivation::ReluN1To1 => (qmin.max(quantize(-1.0)), qmax.min(quantize(1.0))),
    }
}

/// TFLM `CalculateActivationRangeQuantized` for an int16 output with zero point 0 (the 16x8
/// kernels): `[act_min, act_max]` within `[−32768, 32767]`, `v` mapping to `round(v / scale)` in `f32`.
pub fn calculate_activation_range_quantized_s16(activation: FusedActivation, output_scale: f32) -> (i32, i32) {
    let (qmin, qmax) = (i16::MIN as i32, i16::MAX as i32);
    let quantize = |v: f32| (v / output_scale).round() as i32;
    match activation {
        FusedActivation::None => (qmin, qmax),
        FusedActivation::Relu => (qmin.max(quantize(0.0)), qmax),
        FusedActivation::Relu6 => (qmin.max(quantize(0.0)), qmax.min(quantize(6.0))),
        FusedActivation::ReluN1To1 => (qmin.max(quantize(-1.0)), qmax.min(quantize(1.0))),
    }
}

/// TF `GetAsymmetricQuantizationParams` (`tensorflow/lite/tools/optimize/quantization_utils.cc`):
/// per-tensor (scale, zero point) covering `[min, max]` extended to include 0, all in `f32`.
///
/// When `min == max == 0` the scale is 0 and the zero point `quant_min`; such params are refused
/// by every `prepare_*` function.
pub fn get_asymmetric_quantization_params(min: f32, max: f32, quant_min: i32, quant_max: i32) -> QParamsS8 {
    let quant_min_float = quant_min as f32;
    let quant_max_float = quant_max as f32;
    let min = min.min(0.0);
    let max = max.max(0.0);
    let scale = (max - min) / (quant_max_float - quant_min_float);
    let zero_point_from_min = if scale != 0.0 { quant_min_float - min / scale } else { quant_min_float };
    let zero_point = if zero_point_from_min < quant_min_float {
        quant_min
    } else if zero_point_from_min > quant_max_float {
        quant_max
    } else {
        zero_point_from_min.round() as i32
    };
    QParamsS8 { scale, zero_point }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn floor_div(a: i128, b: i128) -> i128 {
        a.div_euclid(b)
    }

    fn round_half_away(num: i128, den: i128) -> i128 {
        let q = (2 * num.abs() + den) / (2 * den);
        if num < 0 {
            -q
        } else {
            q
        }
    }

    fn srdhm_model(a: i32, b: i32) -> i32 {
        let exact = floor_div(2 * a as i128 * b as i128 + (1i128 << 31), 1i128 << 32);
        exact.clamp(i32::MIN as i128, i32::MAX as i128) as i32
    }

    proptest! {
        #[test]
        fn srdhm_is_rounded_high_half_of_doubled_product(a: i32, b: i32) {
            prop_assert_eq!(saturating_rounding_doubling_high_mul(a, b), srdhm_model(a, b));
        }

        #[test]
        fn srdhm_near_extremes(a in prop_oneof![Just(i32::MIN), Just(i32::MIN + 1), Just(i32::MAX), -3i32..3],
                               b in prop_oneof![Just(i32::MIN), Just(i32::MIN + 1), Just(i32::MAX), -3i32..3]) {
            prop_assert_eq!(saturating_rounding_doubling_high_mul(a, b), srdhm_model(a, b));
        }

        #[test]
        fn rdbpot_rounds_half_away_from_zero(x: i32, e in 0i32..=31) {
            let expected = round_half_away(x as i128, 1i128 << e);
            prop_assert_eq!(rounding_divide_by_pot(x, e) as i128, expected);
        }

        #[test]
        fn rdbpot_exact_halves(k in -1000i32..1000, e in 1i32..=20) {
            let x = (2 * k + 1) << (e - 1);
            let expected = round_half_away(x as i128, 1i128 << e);
            prop_assert_eq!(rounding_divide_by_pot(x, e) as i128, expected);
        }

        #[test]
        fn rdbpot_s16_matches_model(x: i16, e in 0i32..=15) {
            prop_assert_eq!(rounding_divide_by_pot_s16(x, e) as i128, round_half_away(x as i128, 1i128 << e));
        }

        #[test]
        fn srdhm_s16_matches_model(a: i16, b: i16) {
            let exact = floor_div(2 * a as i128 * b as i128 + (1i128 << 15), 1i128 << 16);
            prop_assert_eq!(saturating_rounding_doubling_high_mul_s16(a, b) as i128, exact.clamp(-32768, 32767));
        }

        #[test]
        fn quantize_multiplier_round_trips(m in 1e-9f64..1e9) {
            let q = quantize_multiplier(m).unwrap();
            prop_assert!(q.multiplier >= 1 << 30);
            let back = q.multiplier as f64 * 2f64.powi(q.shift - 31);
            prop_assert!(((back - m) / m).abs() <= 2f64.powi(-31), "m={m} back={back}");
        }

        #[test]
        fn quantize_multiplier_round_trips_f32_scales(s1 in 1e-6f32..1.0, s2 in 1e-4f32..1.0, s3 in 1e-4f32..1.0) {
            let m = s1 as f64 * s2 as f64 / s3 as f64;
            let q = quantize_multiplier(m).unwrap();
            let back = q.multiplier as f64 * 2f64.powi(q.shift - 31);
            prop_assert!(((back - m) / m).abs() <= 2f64.powi(-31));
        }

        #[test]
        fn mbqm_matches_real_multiplication(x in -(1i32 << 20)..(1 << 20), m in 1e-6f64..4.0) {
            let q = quantize_multiplier(m).unwrap();
            let exact = x as f64 * q.multiplier as f64 * 2f64.powi(q.shift - 31);
            let got = multiply_by_quantized_multiplier(x, q.multiplier, q.shift);
            // Double rounding can be off by one from a single rounding of the exact product.
            prop_assert!((got as f64 - exact).abs() <= 1.0 + 1e-9, "x={x} m={m} got={got} exact={exact}");
            let single = multiply_by_quantized_multiplier_with(x, q.multiplier, q.shift, Rounding::Single);
            prop_assert!((single as f64 - exact).abs() <= 0.5 + 1e-9);
        }

        #[test]
        fn frexp_reconstructs(x in prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL) {
            let (m, e) = frexp(x);
            prop_assert!((0.5..1.0).contains(&m.abs()));
            // Two steps: 2^e alone underflows for subnormal x.
            prop_assert_eq!(m * 2f64.powi(e / 2) * 2f64.powi(e - e / 2), x);
        }

        #[test]
        fn exp_on_negative_values_is_close_to_exp(raw in i32::MIN / 2..=0) {
            let x = raw as f64 / 2f64.powi(26); // Q5
            let got = exp_on_negative_values(raw, 5) as f64 / 2f64.powi(31);
            prop_assert!((got - x.exp()).abs() < 1e-6, "x={x} got={got}");
        }

        #[test]
        fn one_over_one_plus_x_is_close(raw in 0i32..=i32::MAX) {
            let a = raw as f64 / 2f64.powi(31);
            let got = one_over_one_plus_x_for_x_in_0_1(raw) as f64 / 2f64.powi(31);
            prop_assert!((got - 1.0 / (1.0 + a)).abs() < 1e-8);
        }

        #[test]
        fn logistic_and_tanh_are_close_and_symmetric(raw in -(1i32 << 30)..(1 << 30)) {
            let x = raw as f64 / 2f64.powi(27); // Q4
            let l = logistic(raw, 4);
            prop_assert!((l as f64 / 2f64.powi(31) - 1.0 / (1.0 + (-x).exp())).abs() < 1e-6);
            prop_assert!((l as i64 + logistic(-raw, 4) as i64 - i32::MAX as i64).abs() <= 1);
            let t = tanh(raw, 4);
            prop_assert!((t as f64 / 2f64.powi(31) - x.tanh()).abs() < 1e-6);
            prop_assert_eq!(t, tanh(-raw, 4).wrapping_neg());
        }
    }

    #[test]
    fn srdhm_saturates_only_at_min_min() {
        assert_eq!(saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN), i32::MAX);
        assert_eq!(saturating_rounding_doubling_high_mul(i32::MIN, i32::MAX), -i32::MAX);
        assert_eq!(saturating_rounding_doubling_high_mul(i32::MAX, i32::MAX), i32::MAX - 1);
        assert_eq!(saturating_rounding_doubling_high_mul_s16(i16::MIN, i16::MIN), i16::MAX);
    }

    #[test]
    fn srdhm_rounds_negative_halves_up() {
        // (−3 · 2^30) / 2^31 = −1.5 → −1 (gemmlowp nudges towards +∞ on exact halves).
        assert_eq!(saturating_rounding_doubling_high_mul(-3, 1 << 30), -1);
        assert_eq!(saturating_rounding_doubling_high_mul(3, 1 << 30), 2);
    }

    #[test]
    fn quantize_multiplier_edge_cases() {
        let q = |m| quantize_multiplier(m).unwrap();
        assert_eq!(q(0.0), QuantizedMultiplier { multiplier: 0, shift: 0 });
        assert_eq!(q(1.0), QuantizedMultiplier { multiplier: 1 << 30, shift: 1 });
        assert_eq!(q(0.5), QuantizedMultiplier { multiplier: 1 << 30, shift: 0 });
        assert_eq!(q(0.25), QuantizedMultiplier { multiplier: 1 << 30, shift: -1 });
        assert_eq!(q(2f64.powi(-20)), QuantizedMultiplier { multiplier: 1 << 30, shift: -19 });
        // q·2^31 rounds up to 2^31: halve and bump the shift.
        let just_below_one = 1.0 - 2f64.powi(-40);
        assert_eq!(q(just_below_one), QuantizedMultiplier { multiplier: 1 << 30, shift: 1 });
        let largest_below = 1.0 - 2f64.powi(-31);
        assert_eq!(q(largest_below), QuantizedMultiplier { multiplier: i32::MAX, shift: 0 });
        // Shifts below −31 flush to zero; −31 itself survives.
        assert_eq!(q(2f64.powi(-33)), QuantizedMultiplier { multiplier: 0, shift: 0 });
        assert_eq!(q(2f64.powi(-32)), QuantizedMultiplier { multiplier: 1 << 30, shift: -31 });
        assert_eq!(q(1e-300), QuantizedMultiplier { multiplier: 0, shift: 0 });
        assert!(quantize_multiplier(f64::NAN).is_err());
        assert!(quantize_multiplier(f64::INFINITY).is_err());
        // Single rounding saturates large shifts.
        assert_eq!(
            quantize_multiplier_with(2f64.powi(40), Rounding::Single).unwrap(),
            QuantizedMultiplier { multiplier: i32::MAX, shift: 30 }
        );
        assert_eq!(q(2f64.powi(40)), QuantizedMultiplier { multiplier: 1 << 30, shift: 41 });
    }

    #[test]
    fn quantize_multiplier_variants_check_range() {
        assert!(quantize_multiplier_smaller_than_one_exp(0.3, Rounding::Double).is_ok());
        assert!(quantize_multiplier_smaller_than_one_exp(1.0, Rounding::Double).is_err());
        assert!(quantize_multiplier_smaller_than_one_exp(0.0, Rounding::Double).is_err());
        // Rounds up to exactly 1: shift becomes 1 > 0.
        assert!(quantize_multiplier_smaller_than_one_exp(1.0 - 2f64.powi(-40), Rounding::Double).is_err());
        assert!(quantize_multiplier_greater_than_one(3.0, Rounding::Double).is_ok());
        assert!(quantize_multiplier_greater_than_one(1.0, Rounding::Double).is_err());
    }

    #[test]
    fn mbqm_known_values() {
        // 0.75 · 100 = 75
        let q = quantize_multiplier(0.75).unwrap();
        assert_eq!(multiply_by_quantized_multiplier(100, q.multiplier, q.shift), 75);
        // 0.5 · 3 = 1.5 → 2, 0.5 · −3 = −1.5 → −2 (RDBPOT rounds half away).
        let half = quantize_multiplier(0.5).unwrap();
        assert_eq!(multiply_by_quantized_multiplier(3, half.multiplier, half.shift), 2);
        assert_eq!(multiply_by_quantized_multiplier(-3, half.multiplier, half.shift), -1);
        let quarter = quantize_multiplier(0.25).unwrap();
        assert_eq!(multiply_by_quantized_multiplier(-6, quarter.multiplier, quarter.shift), -2);
        // Left shifts: 3 · 5 = 15
        let three = quantize_multiplier(3.0).unwrap();
        assert_eq!(multiply_by_quantized_multiplier(5, three.multiplier, three.shift), 15);
    }

    #[test]
    fn double_and_single_rounding_differ_on_some_ties() {
        // −6 · 0.25 = −1.5: double rounding goes SRDHM → −3, then RDBPOT(−3, 1) → −2 (away from
        // zero); single rounding rounds the exact −1.5 once, half up, to −1.
        let quarter = quantize_multiplier(0.25).unwrap();
        let d = multiply_by_quantized_multiplier(-6, quarter.multiplier, quarter.shift);
        let s = multiply_by_quantized_multiplier_with(-6, quarter.multiplier, quarter.shift, Rounding::Single);
        assert_eq!((d, s), (-2, -1));
    }

    #[test]
    fn gemmlowp_special_values() {
        assert_eq!(exp_on_negative_values(0, 5), i32::MAX);
        assert_eq!(exp_on_negative_values(i32::MIN, 5), 0);
        assert_eq!(logistic(0, 4), 1 << 30);
        assert_eq!(tanh(0, 4), 0);
        assert_eq!(one_over_one_plus_x_for_x_in_0_1(0), i32::MAX);
        assert_eq!(rounding_half_sum(i32::MAX, i32::MAX), i32::MAX);
        assert_eq!(rounding_half_sum(-3, 0), -2);
        assert_eq!(rescale(1 << 30, 2, 0), i32::MAX);
        assert_eq!(rescale(-(1 << 30), 2, 0), i32::MIN);
        assert_eq!(rescale(5, 0, 2), 1);
    }

    #[test]
    fn calculate_input_radius_known_values() {
        // Softmax with beta·in_s = 1/16: multiplier 2^22 > 1, left shift 23.
        assert_eq!(calculate_input_radius(5, 23, 31), 248);
        assert_eq!(calculate_input_radius(4, 0, 31), 15 << 27);
    }

    #[test]
    fn activation_range() {
        let out = QParamsS8::new(6.0 / 255.0, -128);
        assert_eq!(calculate_activation_range_quantized(FusedActivation::None, out), (-128, 127));
        assert_eq!(calculate_activation_range_quantized(FusedActivation::Relu, out), (-128, 127));
        assert_eq!(calculate_activation_range_quantized(FusedActivation::Relu6, out), (-128, 127));
        let out = QParamsS8::new(0.1, 3);
        assert_eq!(calculate_activation_range_quantized(FusedActivation::Relu, out), (3, 127));
        assert_eq!(calculate_activation_range_quantized(FusedActivation::Relu6, out), (3, 63));
        assert_eq!(calculate_activation_range_quantized(FusedActivation::ReluN1To1, out), (-7, 13));
    }

    #[test]
    fn asymmetric_params() {
        let p = get_asymmetric_quantization_params(-1.0, 1.0, -128, 127);
        assert_eq!(p.scale, 2.0 / 255.0);
        // f32: −128 − (−1 / (2/255)) = −0.5000076, which rounds to −1.
        assert_eq!(p.zero_point, -1);
        let p = get_asymmetric_quantization_params(0.0, 6.0, -128, 127);
        assert_eq!(p, QParamsS8::new(6.0 / 255.0, -128));
        let p = get_asymmetric_quantization_params(2.0, 6.0, -128, 127); // min extended to 0
        assert_eq!(p.zero_point, -128);
        assert_eq!(get_asymmetric_quantization_params(0.0, 0.0, -128, 127).scale, 0.0);
    }

    #[test]
    fn down_scale_multiplier() {
        assert_eq!(down_scale_int32_to_int16_multiplier(1 << 30), 1 << 14);
        assert_eq!(down_scale_int32_to_int16_multiplier(i32::MAX), i16::MAX);
        assert_eq!(down_scale_int32_to_int16_multiplier((1 << 30) + (1 << 15)), (1 << 14) + 1);
        assert_eq!(down_scale_int32_to_int16_multiplier((1 << 30) + (1 << 15) - 1), 1 << 14);
    }
}

//! HARD_SWISH on int8: `x · relu6(x + 3) / 6`, computed in 16-bit fixed point.
//!
//! Mirrors `reference/hard_swish.h` (int8 instantiation), prepared as in
//! `micro/kernels/hard_swish_common.cc`. The input is first put on a "high resolution" scale
//! (`in_s / 128`), then two 16-bit multipliers take it to the output scale and to a "relu-ish"
//! scale where 3.0 maps to 32768. Parameter arithmetic is in `f32`, as in TFLM.

use crate::fixedpoint::{
    down_scale_int32_to_int16_multiplier, quantize_multiplier, rounding_divide_by_pot_s16,
    saturating_doubling_high_mul_s16, saturating_left_shift_s16, saturating_rounding_doubling_high_mul_s16,
};
use crate::{KernelError, QParamsS8};

/// TFLM `HardSwishParams`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HardSwishParams {
    pub input_zero_point: i16,
    pub output_zero_point: i16,
    pub reluish_multiplier_fixedpoint_int16: i16,
    pub reluish_multiplier_exponent: i32,
    pub output_multiplier_fixedpoint_int16: i16,
    pub output_multiplier_exponent: i32,
}

/// Computes the HARD_SWISH parameters. Fails when `in_s / 128 / out_s ≥ 1`, which TFLM refuses
/// (`output_multiplier_exponent ≤ 0`).
pub fn prepare_hard_swish_s8(input: QParamsS8, output: QParamsS8) -> Result<HardSwishParams, KernelError> {
    input.validate("input")?;
    output.validate("output")?;
    let hires_input_scale = (1.0f32 / 128.0) * input.scale;
    let reluish_scale = 3.0f32 / 32768.0;
    let output_multiplier = hires_input_scale / output.scale;
    let output_q = quantize_multiplier(output_multiplier as f64)?;
    if output_q.shift > 0 {
        return Err(KernelError::MultiplierOutOfRange {
            what: "hard swish output multiplier",
            multiplier: output_multiplier as f64,
            requirement: "input_scale / 128 / output_scale < 1",
        });
    }
    let reluish_multiplier = hires_input_scale / reluish_scale;
    let reluish_q = quantize_multiplier(reluish_multiplier as f64)?;
    Ok(HardSwishParams {
        input_zero_point: input.zero_point as i16,
        output_zero_point: output.zero_point as i16,
        reluish_multiplier_fixedpoint_int16: down_scale_int32_to_int16_multiplier(reluish_q.multiplier),
        reluish_multiplier_exponent: reluish_q.shift,
        output_multiplier_fixedpoint_int16: down_scale_int32_to_int16_multiplier(output_q.multiplier),
        output_multiplier_exponent: output_q.shift,
    })
}

/// One element of TFLM `reference_ops::HardSwish<int8_t>`.
#[inline]
pub fn hard_swish_func_s8(params: &HardSwishParams, x: i8) -> i8 {
    let input_value = (x as i16).wrapping_sub(params.input_zero_point);
    let input_value_on_hires_input_scale = input_value.wrapping_mul(1 << 7);
    let input_value_on_preshift_output_scale = saturating_rounding_doubling_high_mul_s16(
        input_value_on_hires_input_scale,
        params.output_multiplier_fixedpoint_int16,
    );
    // Map the input onto [−1, 1] where ±3.0 is ±32768, saturating. The left shift is split so
    // that any saturation happens in the last step, after the multiplier.
    let mut reluish_value = input_value_on_hires_input_scale;
    if params.reluish_multiplier_exponent > 0 {
        reluish_value = saturating_left_shift_s16(reluish_value, params.reluish_multiplier_exponent - 1);
    }
    reluish_value =
        saturating_rounding_doubling_high_mul_s16(reluish_value, params.reluish_multiplier_fixedpoint_int16);
    if params.reluish_multiplier_exponent > 0 {
        reluish_value = saturating_left_shift_s16(reluish_value, 1);
    }
    if params.reluish_multiplier_exponent < 0 {
        reluish_value = rounding_divide_by_pot_s16(reluish_value, -params.reluish_multiplier_exponent);
    }
    // [−1, 1] → [0, 1].
    reluish_value = ((reluish_value as i32 + (1 << 15)) >> 1) as i16;
    // The truncating multiply cancels the bias of the rounding ones above.
    let preshift_output_value = saturating_doubling_high_mul_s16(reluish_value, input_value_on_preshift_output_scale);
    let output_value = rounding_divide_by_pot_s16(preshift_output_value, -params.output_multiplier_exponent)
        .wrapping_add(params.output_zero_point);
    output_value.clamp(i8::MIN as i16, i8::MAX as i16) as i8
}

/// TFLM `reference_ops::HardSwish` for int8.
///
/// # Panics
/// If the slices differ in length.
pub fn hard_swish_s8(params: &HardSwishParams, input: &[i8], output: &mut [i8]) {
    assert_eq!(input.len(), output.len());
    for (out, &x) in output.iter_mut().zip(input) {
        *out = hard_swish_func_s8(params, x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float_hard_swish(v: f64) -> f64 {
        v * (v + 3.0).clamp(0.0, 6.0) / 6.0
    }

    #[test]
    fn within_one_lsb_of_float() {
        let cases = [
            (QParamsS8::new(0.05, 0), QParamsS8::new(0.04, -60)),
            (QParamsS8::new(0.1, 20), QParamsS8::new(0.06, -100)),
            (QParamsS8::new(0.02, -10), QParamsS8::new(0.01, -30)),
            (QParamsS8::new(0.5, 0), QParamsS8::new(0.5, -1)),
        ];
        for (input, output) in cases {
            let params = prepare_hard_swish_s8(input, output).unwrap();
            for x in i8::MIN..=i8::MAX {
                let real = (x as i32 - input.zero_point) as f64 * input.scale as f64;
                let expected = (float_hard_swish(real) / output.scale as f64 + output.zero_point as f64)
                    .round()
                    .clamp(-128.0, 127.0);
                let got = hard_swish_func_s8(&params, x) as f64;
                assert!((got - expected).abs() <= 1.0, "{input:?} {output:?} x={x} got={got} expected={expected}");
            }
        }
    }

    #[test]
    fn rejects_output_multiplier_above_one() {
        assert!(prepare_hard_swish_s8(QParamsS8::new(1.0, 0), QParamsS8::new(0.001, 0)).is_err());
    }
}

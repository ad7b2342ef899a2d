//! LOGISTIC on int8 with output (1/256, −128).
//!
//! Mirrors `reference/integer_ops/logistic.h`, prepared as in `micro/kernels/logistic_common.cc`:
//! the input is rescaled to Q4.27 with a multiplier taken straight from `frexp` (no fix-up at
//! 2^31, unlike `QuantizeMultiplier`), gemmlowp's fixed-point logistic runs, and the Q0.31 result
//! is divided down to 8 bits. Inputs beyond the radius saturate.

use crate::fixedpoint::{
    calculate_input_radius, frexp, logistic, multiply_by_quantized_multiplier_with, rounding_divide_by_pot, Rounding,
};
use crate::{KernelError, QParamsS8};

/// Integer bits of the rescaled input.
pub(crate) const INPUT_INTEGER_BITS: i32 = 4;

/// The output quantization the int8 LOGISTIC kernel produces.
pub const LOGISTIC_OUTPUT_QPARAMS_S8: QParamsS8 = QParamsS8 { scale: 1.0 / 256.0, zero_point: -128 };

/// TFLM `OpDataLogistic` / `OpDataTanh` for int8 (the two ops share the input rescale).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LogisticParams {
    pub input_zero_point: i32,
    pub input_range_radius: i32,
    pub input_multiplier: i32,
    pub input_left_shift: i32,
    pub rounding: Rounding,
}

/// The frexp-based input rescale shared by LOGISTIC and TANH.
pub(crate) fn prepare_input_rescale(input: QParamsS8, rounding: Rounding) -> Result<LogisticParams, KernelError> {
    input.validate("input")?;
    let input_real_multiplier = input.scale as f64 * (1i64 << (31 - INPUT_INTEGER_BITS)) as f64;
    let (q, input_left_shift) = frexp(input_real_multiplier);
    // An f32 scale has 24 significant bits, so q·2^31 cannot round up to 2^31 here.
    let input_multiplier = (q * (1i64 << 31) as f64).round() as i32;
    Ok(LogisticParams {
        input_zero_point: input.zero_point,
        input_range_radius: calculate_input_radius(INPUT_INTEGER_BITS, input_left_shift, 31),
        input_multiplier,
        input_left_shift,
        rounding,
    })
}

/// Computes the LOGISTIC parameters. TFLM checks only the output zero point (−128) and assumes
/// the scale; this refuses any output other than exactly (1/256, −128) so that a wrong scale
/// cannot silently change the meaning of the result.
pub fn prepare_logistic_s8(
    input: QParamsS8,
    output: QParamsS8,
    rounding: Rounding,
) -> Result<LogisticParams, KernelError> {
    if output.scale.to_bits() != LOGISTIC_OUTPUT_QPARAMS_S8.scale.to_bits()
        || output.zero_point != LOGISTIC_OUTPUT_QPARAMS_S8.zero_point
    {
        return Err(KernelError::QParamsMismatch {
            tensor: "logistic output",
            expected: LOGISTIC_OUTPUT_QPARAMS_S8,
            actual: output,
        });
    }
    prepare_input_rescale(input, rounding)
}

/// TFLM `reference_integer_ops::Logistic` for int8.
///
/// # Panics
/// If the slices differ in length.
pub fn logistic_s8(params: &LogisticParams, input: &[i8], output: &mut [i8]) {
    assert_eq!(input.len(), output.len());
    for (out, &x) in output.iter_mut().zip(input) {
        let input = x as i32 - params.input_zero_point;
        *out = if input <= -params.input_range_radius {
            i8::MIN
        } else if input >= params.input_range_radius {
            i8::MAX
        } else {
            let input_in_q4 = multiply_by_quantized_multiplier_with(
                input,
                params.input_multiplier,
                params.input_left_shift,
                params.rounding,
            );
            let output_in_q0 = logistic(input_in_q4, INPUT_INTEGER_BITS);
            let output_in_q23 = rounding_divide_by_pot(output_in_q0, 31 - 8);
            (output_in_q23 - 128).clamp(-128, 127) as i8
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_inputs() -> Vec<i8> {
        (i8::MIN..=i8::MAX).collect()
    }

    #[test]
    fn monotone_symmetric_and_close_to_float() {
        for &(scale, zero_point) in &[(0.1f32, 0), (0.05, 10), (0.5, -3), (0.01, 0)] {
            let params =
                prepare_logistic_s8(QParamsS8::new(scale, zero_point), LOGISTIC_OUTPUT_QPARAMS_S8, Rounding::Double)
                    .unwrap();
            let input = all_inputs();
            let mut out = vec![0i8; 256];
            logistic_s8(&params, &input, &mut out);
            assert!(out.windows(2).all(|w| w[0] <= w[1]));
            for (&x, &q) in input.iter().zip(&out) {
                let real = (x as i32 - zero_point) as f64 * scale as f64;
                let expected = (256.0 / (1.0 + (-real).exp()) - 128.0).round().clamp(-128.0, 127.0);
                assert!((q as f64 - expected).abs() <= 1.0, "scale={scale} x={x} q={q} expected={expected}");
            }
            // σ(−v) = 1 − σ(v): the two outputs sum to 256 levels within one LSB.
            for v in 1..=100 {
                let (Some(a), Some(b)) = (
                    input.iter().position(|&x| x as i32 - zero_point == v),
                    input.iter().position(|&x| x as i32 - zero_point == -v),
                ) else {
                    continue;
                };
                let levels = (out[a] as i32 + 128) + (out[b] as i32 + 128);
                assert!((levels - 256).abs() <= 1, "v={v} levels={levels}");
            }
        }
    }

    #[test]
    fn zero_maps_to_half() {
        let params = prepare_logistic_s8(QParamsS8::new(0.1, 5), LOGISTIC_OUTPUT_QPARAMS_S8, Rounding::Double).unwrap();
        let mut out = [0i8; 1];
        logistic_s8(&params, &[5], &mut out);
        assert_eq!(out, [0]);
    }

    #[test]
    fn rejects_other_output_params() {
        let input = QParamsS8::new(0.1, 0);
        assert!(prepare_logistic_s8(input, QParamsS8::new(1.0 / 256.0, 0), Rounding::Double).is_err());
        assert!(prepare_logistic_s8(input, QParamsS8::new(1.0 / 128.0, -128), Rounding::Double).is_err());
    }
}

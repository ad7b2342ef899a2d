//! TANH on int8 with output (1/128, 0).
//!
//! Mirrors `reference/integer_ops/tanh.h`, prepared as in `micro/kernels/tanh.cc`: the same
//! frexp-based Q4.27 input rescale and radius as LOGISTIC, gemmlowp's fixed-point tanh, and a
//! division by 2^24 to the implicit output scale 1/128 with zero point 0.

use crate::fixedpoint::{multiply_by_quantized_multiplier_with, rounding_divide_by_pot, tanh, Rounding};
use crate::logistic::{prepare_input_rescale, LogisticParams, INPUT_INTEGER_BITS};
use crate::{KernelError, QParamsS8};

/// The output quantization the int8 TANH kernel produces.
pub const TANH_OUTPUT_QPARAMS_S8: QParamsS8 = QParamsS8 { scale: 1.0 / 128.0, zero_point: 0 };

/// TFLM `OpDataTanh` for int8.
pub type TanhParams = LogisticParams;

/// Computes the TANH parameters. TFLM checks nothing about the output and assumes (1/128, 0);
/// this refuses anything else so that a different scale cannot go unnoticed.
pub fn prepare_tanh_s8(input: QParamsS8, output: QParamsS8, rounding: Rounding) -> Result<TanhParams, KernelError> {
    if output.scale.to_bits() != TANH_OUTPUT_QPARAMS_S8.scale.to_bits()
        || output.zero_point != TANH_OUTPUT_QPARAMS_S8.zero_point
    {
        return Err(KernelError::QParamsMismatch {
            tensor: "tanh output",
            expected: TANH_OUTPUT_QPARAMS_S8,
            actual: output,
        });
    }
    prepare_input_rescale(input, rounding)
}

/// TFLM `reference_integer_ops::Tanh` for int8.
///
/// # Panics
/// If the slices differ in length.
pub fn tanh_s8(params: &TanhParams, input: &[i8], output: &mut [i8]) {
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
            let output_in_q0 = tanh(input_in_q4, INPUT_INTEGER_BITS);
            rounding_divide_by_pot(output_in_q0, 31 - 7).clamp(-128, 127) as i8
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotone_odd_and_close_to_float() {
        for &(scale, zero_point) in &[(0.02f32, 0), (0.05, 7), (0.3, -20)] {
            let params =
                prepare_tanh_s8(QParamsS8::new(scale, zero_point), TANH_OUTPUT_QPARAMS_S8, Rounding::Double).unwrap();
            let input: Vec<i8> = (i8::MIN..=i8::MAX).collect();
            let mut out = vec![0i8; 256];
            tanh_s8(&params, &input, &mut out);
            assert!(out.windows(2).all(|w| w[0] <= w[1]));
            for (&x, &q) in input.iter().zip(&out) {
                let real = (x as i32 - zero_point) as f64 * scale as f64;
                let expected = (128.0 * real.tanh()).round().clamp(-128.0, 127.0);
                assert!((q as f64 - expected).abs() <= 1.0, "x={x} q={q} expected={expected}");
            }
            // tanh(−v) = −tanh(v), away from the saturated ends.
            for (&x, &q) in input.iter().zip(&out) {
                let v = x as i32 - zero_point;
                if let Some(i) = input.iter().position(|&y| y as i32 - zero_point == -v) {
                    if q != i8::MAX && q != i8::MIN && out[i] != i8::MIN && out[i] != i8::MAX {
                        assert_eq!(q as i32, -(out[i] as i32), "v={v}");
                    }
                }
            }
        }
    }

    #[test]
    fn rejects_other_output_params() {
        let input = QParamsS8::new(0.1, 0);
        assert!(prepare_tanh_s8(input, QParamsS8::new(1.0 / 256.0, -128), Rounding::Double).is_err());
    }
}

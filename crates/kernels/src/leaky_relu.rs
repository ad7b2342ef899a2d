//! LEAKY_RELU on int8: identity above the input zero point, `alpha · x` below, each side with
//! its own multiplier.
//!
//! Mirrors `reference/leaky_relu.h::QuantizeLeakyRelu`, prepared as in
//! `micro/kernels/leaky_relu_common.cc`: multipliers for `double(in_s) · double(alpha) /
//! double(out_s)` and `double(in_s) / double(out_s)`.

use crate::fixedpoint::{multiply_by_quantized_multiplier_with, quantize_multiplier_with, Rounding};
use crate::{saturate_s8, KernelError, QParamsS8};

/// TFLM `LeakyReluParams` for int8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LeakyReluParams {
    pub input_offset: i32,
    pub output_offset: i32,
    pub output_multiplier_alpha: i32,
    pub output_shift_alpha: i32,
    pub output_multiplier_identity: i32,
    pub output_shift_identity: i32,
    pub rounding: Rounding,
}

/// Computes the LEAKY_RELU parameters. A negative `alpha` is refused: TFLM versions disagree on
/// how a negative multiplier is applied.
pub fn prepare_leaky_relu_s8(
    alpha: f32,
    input: QParamsS8,
    output: QParamsS8,
    rounding: Rounding,
) -> Result<LeakyReluParams, KernelError> {
    input.validate("input")?;
    output.validate("output")?;
    if !(alpha >= 0.0 && alpha.is_finite()) {
        return Err(KernelError::Unsupported { what: "leaky relu alpha must be finite and >= 0" });
    }
    let alpha_q = quantize_multiplier_with(input.scale as f64 * alpha as f64 / output.scale as f64, rounding)?;
    let identity_q = quantize_multiplier_with(input.scale as f64 / output.scale as f64, rounding)?;
    Ok(LeakyReluParams {
        input_offset: input.zero_point,
        output_offset: output.zero_point,
        output_multiplier_alpha: alpha_q.multiplier,
        output_shift_alpha: alpha_q.shift,
        output_multiplier_identity: identity_q.multiplier,
        output_shift_identity: identity_q.shift,
        rounding,
    })
}

/// TFLM `reference_ops::QuantizeLeakyRelu<int8_t>`. Note that `input_offset` holds the input
/// zero point itself and is subtracted.
///
/// # Panics
/// If the slices differ in length.
pub fn leaky_relu_s8(params: &LeakyReluParams, input: &[i8], output: &mut [i8]) {
    assert_eq!(input.len(), output.len());
    for (out, &x) in output.iter_mut().zip(input) {
        let input_value = x as i32 - params.input_offset;
        let (multiplier, shift) = if input_value >= 0 {
            (params.output_multiplier_identity, params.output_shift_identity)
        } else {
            (params.output_multiplier_alpha, params.output_shift_alpha)
        };
        let unclamped = params.output_offset
            + multiply_by_quantized_multiplier_with(input_value, multiplier, shift, params.rounding);
        *out = saturate_s8(unclamped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_and_float_agreement() {
        let (input, output) = (QParamsS8::new(0.1, 4), QParamsS8::new(0.05, -10));
        let params = prepare_leaky_relu_s8(0.2, input, output, Rounding::Double).unwrap();
        let mut out = [0i8; 3];
        // x − zp = 10 → 1.0 → 20 levels → 10; −10 → −0.2 → −4 levels → −14; 0 → −10.
        leaky_relu_s8(&params, &[14, -6, 4], &mut out);
        assert_eq!(out, [10, -14, -10]);
        for x in i8::MIN..=i8::MAX {
            let real = (x as i32 - 4) as f64 * 0.1f32 as f64;
            let y = if real >= 0.0 { real } else { 0.2f32 as f64 * real };
            let expected = (y / 0.05f32 as f64 - 10.0).round().clamp(-128.0, 127.0);
            let mut o = [0i8];
            leaky_relu_s8(&params, &[x], &mut o);
            assert!((o[0] as f64 - expected).abs() <= 1.0);
        }
        assert!(prepare_leaky_relu_s8(-0.5, input, output, Rounding::Double).is_err());
    }
}

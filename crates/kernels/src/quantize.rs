//! QUANTIZE from float32 to int8 (`reference/quantize.h::AffineQuantize`).
//!
//! `q = clamp(round_half_away(x / scale) + zero_point)` with the division in `f32`. This is the
//! one kernel whose input is float; it belongs to the graph's input boundary.

use crate::{KernelError, QParamsS8};

/// TFLM `tflite::QuantizationParams` for the output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AffineQuantizeParams {
    pub scale: f32,
    pub zero_point: i32,
}

pub fn prepare_affine_quantize_s8(output: QParamsS8) -> Result<AffineQuantizeParams, KernelError> {
    output.validate("output")?;
    Ok(AffineQuantizeParams { scale: output.scale, zero_point: output.zero_point })
}

/// One element of TFLM `reference_ops::AffineQuantize<int8_t>`. NaN maps to the zero point and
/// infinities saturate (C leaves both undefined).
#[inline]
pub fn affine_quantize_func_s8(params: &AffineQuantizeParams, x: f32) -> i8 {
    let unclamped = ((x / params.scale).round() as i32).saturating_add(params.zero_point);
    unclamped.clamp(i8::MIN as i32, i8::MAX as i32) as i8
}

/// TFLM `reference_ops::AffineQuantize<int8_t>`.
///
/// # Panics
/// If the slices differ in length.
pub fn affine_quantize_s8(params: &AffineQuantizeParams, input: &[f32], output: &mut [i8]) {
    assert_eq!(input.len(), output.len());
    for (out, &x) in output.iter_mut().zip(input) {
        *out = affine_quantize_func_s8(params, x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_half_away_and_saturates() {
        let params = prepare_affine_quantize_s8(QParamsS8::new(0.5, -3)).unwrap();
        let mut out = [0i8; 6];
        affine_quantize_s8(&params, &[0.25, -0.25, 0.74, 100.0, -100.0, f32::NAN], &mut out);
        assert_eq!(out, [-2, -4, -2, 127, -128, -3]);
        assert!(prepare_affine_quantize_s8(QParamsS8::new(f32::NAN, 0)).is_err());
        assert!(prepare_affine_quantize_s8(QParamsS8::new(0.1, 200)).is_err());
    }

    #[test]
    fn division_is_in_f32() {
        // −12.25 / 0.1 is exactly −122.5 in f32 (→ −123) but −122.4999982 in f64 (→ −122).
        let params = prepare_affine_quantize_s8(QParamsS8::new(0.1, 0)).unwrap();
        assert_eq!(((-12.25f32 as f64) / (0.1f32 as f64)).round(), -122.0);
        assert_eq!(affine_quantize_func_s8(&params, -12.25), -123);
    }
}

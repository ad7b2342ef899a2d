//! ABS on int8: `|x − zp_in|`, rescaled to the output's scale when it differs from the input's.
//!
//! Mirrors `micro/kernels/elementwise.cc`: `PrepareAbsRsqrt` keeps the zero points, sets
//! `needs_rescale = in_s != out_s` (compared as `float`) and then `QuantizeMultiplier(double(in_s
//! / out_s))` (the quotient taken in `float`); `AbsEvalQuantized` adds the output zero point to
//! the (rescaled) magnitude and clamps to int8.

use crate::fixedpoint::{multiply_by_quantized_multiplier_with, quantize_multiplier_with, Rounding};
use crate::{saturate_s8, KernelError, QParamsS8};

/// TFLM's `OpDataAbsRsqrt` for an int8 ABS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AbsParams {
    pub input_offset: i32,
    pub output_offset: i32,
    pub needs_rescale: bool,
    pub multiplier: i32,
    pub shift: i32,
    pub rounding: Rounding,
}

/// Computes the ABS parameters (TFLM `PrepareAbsRsqrt<IsAbsSupportedType, kAbsNameId>`).
pub fn prepare_abs_s8(input: QParamsS8, output: QParamsS8, rounding: Rounding) -> Result<AbsParams, KernelError> {
    input.validate("input")?;
    output.validate("output")?;
    let needs_rescale = input.scale != output.scale;
    let (multiplier, shift) = if needs_rescale {
        let q = quantize_multiplier_with((input.scale / output.scale) as f64, rounding)?;
        (q.multiplier, q.shift)
    } else {
        (0, 0)
    };
    Ok(AbsParams {
        input_offset: input.zero_point,
        output_offset: output.zero_point,
        needs_rescale,
        multiplier,
        shift,
        rounding,
    })
}

/// TFLM `AbsEvalQuantized<int8_t>` over every element.
///
/// # Panics
/// If the slices differ in length.
pub fn abs_s8(p: &AbsParams, input: &[i8], output: &mut [i8]) {
    assert_eq!(input.len(), output.len());
    for (o, &x) in output.iter_mut().zip(input) {
        let value = (x as i32 - p.input_offset).abs();
        let scaled = if p.needs_rescale {
            multiply_by_quantized_multiplier_with(value, p.multiplier, p.shift, p.rounding)
        } else {
            value
        };
        *o = saturate_s8(scaled + p.output_offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magnitude_then_rescale() {
        // Same scale: |x − 5| + (−128), no multiplier.
        let same = prepare_abs_s8(QParamsS8::new(0.1, 5), QParamsS8::new(0.1, -128), Rounding::Double).unwrap();
        assert!(!same.needs_rescale);
        let mut out = [0i8; 4];
        abs_s8(&same, &[5, -5, 127, -128], &mut out);
        assert_eq!(out, [-128, -118, -6, 5]);
        // Output scale twice the input's: |x − 0| / 2, rounded half away from zero.
        let half = prepare_abs_s8(QParamsS8::new(0.1, 0), QParamsS8::new(0.2, -128), Rounding::Double).unwrap();
        assert!(half.needs_rescale);
        abs_s8(&half, &[3, -3, -128, 0], &mut out);
        assert_eq!(out, [-126, -126, -64, -128]);
    }
}

//! PRELU on int8: `x` above the input zero point, `alpha · x` below, with a per-element `alpha`
//! tensor broadcast against the input.
//!
//! Mirrors `reference/prelu.h::BroadcastPrelu4DSlow<int8_t, int8_t>` (TFLM calls the broadcast
//! form for every shape), prepared as in `micro/kernels/prelu_common.cc::CalculatePreluParams`:
//! multipliers for `double(in_s) / double(out_s)` and `double(in_s) · double(alpha_s) /
//! double(out_s)`. The negative side multiplies `(x − zp_in) · (alpha − zp_alpha)` in int32 before
//! requantizing.

use crate::fixedpoint::{multiply_by_quantized_multiplier_with, quantize_multiplier_with, Rounding};
use crate::shape::BroadcastShapes;
use crate::{saturate_s8, KernelError, QParamsS8};

/// TFLM `PreluParams` for int8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PreluParams {
    pub input_offset: i32,
    pub alpha_offset: i32,
    pub output_offset: i32,
    pub output_multiplier_1: i32,
    pub output_shift_1: i32,
    pub output_multiplier_2: i32,
    pub output_shift_2: i32,
    pub rounding: Rounding,
}

/// Computes the PRELU parameters (TFLM `CalculatePreluParams`).
pub fn prepare_prelu_s8(
    input: QParamsS8,
    alpha: QParamsS8,
    output: QParamsS8,
    rounding: Rounding,
) -> Result<PreluParams, KernelError> {
    input.validate("input")?;
    alpha.validate("alpha")?;
    output.validate("output")?;
    let identity = quantize_multiplier_with(input.scale as f64 / output.scale as f64, rounding)?;
    let slope = quantize_multiplier_with(input.scale as f64 * alpha.scale as f64 / output.scale as f64, rounding)?;
    Ok(PreluParams {
        input_offset: -input.zero_point,
        alpha_offset: -alpha.zero_point,
        output_offset: output.zero_point,
        output_multiplier_1: identity.multiplier,
        output_shift_1: identity.shift,
        output_multiplier_2: slope.multiplier,
        output_shift_2: slope.shift,
        rounding,
    })
}

/// One element of TFLM's PRELU lambda.
#[inline]
pub fn prelu_func_s8(p: &PreluParams, x: i8, alpha: i8) -> i8 {
    let input_value = p.input_offset + x as i32;
    let output_value = if input_value >= 0 {
        multiply_by_quantized_multiplier_with(input_value, p.output_multiplier_1, p.output_shift_1, p.rounding)
    } else {
        let alpha_value = p.alpha_offset + alpha as i32;
        multiply_by_quantized_multiplier_with(
            input_value * alpha_value,
            p.output_multiplier_2,
            p.output_shift_2,
            p.rounding,
        )
    };
    saturate_s8(output_value + p.output_offset)
}

/// TFLM `reference_ops::BroadcastPrelu4DSlow<int8_t, int8_t>`: `alpha` broadcast against
/// `input` as `shapes` describe (input first).
///
/// # Panics
/// If the slices disagree with `shapes`.
pub fn prelu_s8(p: &PreluParams, shapes: &BroadcastShapes, input: &[i8], alpha: &[i8], output: &mut [i8]) {
    assert_eq!(input.len(), shapes.input1_size());
    assert_eq!(alpha.len(), shapes.input2_size());
    assert_eq!(output.len(), shapes.output_size());
    shapes.for_each(|i, a, o| output[o] = prelu_func_s8(p, input[i], alpha[a]));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        let (input, alpha, output) = (QParamsS8::new(0.1, 4), QParamsS8::new(0.01, -100), QParamsS8::new(0.05, -10));
        let p = prepare_prelu_s8(input, alpha, output, Rounding::Double).unwrap();
        // x = 1.0 → 20 levels → 10; x = −1.0 with alpha (−80 + 100)·0.01 = 0.2 → −0.2 → −4 → −14.
        assert_eq!(prelu_func_s8(&p, 14, 0), 10);
        assert_eq!(prelu_func_s8(&p, -6, -80), -14);
        // a negative slope flips the sign: alpha −0.28 → 0.28 → 5.6 levels → 6 → −4
        assert_eq!(prelu_func_s8(&p, -6, -128), -4);
    }

    #[test]
    fn close_to_float_with_broadcast() {
        let (input, alpha, output) = (QParamsS8::new(0.03, -7), QParamsS8::new(0.004, 12), QParamsS8::new(0.025, 3));
        let p = prepare_prelu_s8(input, alpha, output, Rounding::Double).unwrap();
        let shapes = BroadcastShapes::new(&[2, 3], &[3]).unwrap();
        let x: Vec<i8> = vec![-128, -50, 0, 20, 90, 127];
        let a: Vec<i8> = vec![-60, 40, 127];
        let mut out = vec![0i8; 6];
        prelu_s8(&p, &shapes, &x, &a, &mut out);
        for (k, &q) in out.iter().enumerate() {
            let xv = (x[k] as f64 + 7.0) * 0.03;
            let av = (a[k % 3] as f64 - 12.0) * 0.004;
            let want = if xv >= 0.0 { xv } else { av * xv } / 0.025 + 3.0;
            assert!((q as f64 - want.clamp(-128.0, 127.0)).abs() <= 1.0, "{k}: {q} vs {want}");
        }
    }
}

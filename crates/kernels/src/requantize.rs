//! QUANTIZE from int8 to int8 with different params (`reference/requantize.h::Requantize`),
//! prepared as in `micro/kernels/quantize_common.cc` with the multiplier `double(in_s) / double(out_s)`.

use crate::fixedpoint::{multiply_by_quantized_multiplier_with, quantize_multiplier_with, Rounding};
use crate::{saturate_s8, KernelError, QParamsS8};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequantizeParams {
    pub input_zero_point: i32,
    pub output_zero_point: i32,
    pub effective_scale_multiplier: i32,
    pub effective_scale_shift: i32,
    pub rounding: Rounding,
}

pub fn prepare_requantize_s8(
    input: QParamsS8,
    output: QParamsS8,
    rounding: Rounding,
) -> Result<RequantizeParams, KernelError> {
    input.validate("input")?;
    output.validate("output")?;
    let q = quantize_multiplier_with(input.scale as f64 / output.scale as f64, rounding)?;
    Ok(RequantizeParams {
        input_zero_point: input.zero_point,
        output_zero_point: output.zero_point,
        effective_scale_multiplier: q.multiplier,
        effective_scale_shift: q.shift,
        rounding,
    })
}

/// TFLM `reference_ops::Requantize<int8_t, int8_t>`. (Its xor-0x80 fast path only applies to
/// mixed int8/uint8 types.)
///
/// # Panics
/// If the slices differ in length.
pub fn requantize_s8(params: &RequantizeParams, input: &[i8], output: &mut [i8]) {
    assert_eq!(input.len(), output.len());
    for (out, &x) in output.iter_mut().zip(input) {
        let value = multiply_by_quantized_multiplier_with(
            x as i32 - params.input_zero_point,
            params.effective_scale_multiplier,
            params.effective_scale_shift,
            params.rounding,
        ) + params.output_zero_point;
        *out = saturate_s8(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // in (0.2, 10) → out (0.1, −5): q' = 2·(q − 10) − 5.
        let params = prepare_requantize_s8(QParamsS8::new(0.2, 10), QParamsS8::new(0.1, -5), Rounding::Double).unwrap();
        let mut out = [0i8; 4];
        requantize_s8(&params, &[10, 20, 0, 127], &mut out);
        assert_eq!(out, [-5, 15, -25, 127]);
        // Identity params are exact.
        let q = QParamsS8::new(0.037, 3);
        let params = prepare_requantize_s8(q, q, Rounding::Double).unwrap();
        let input: Vec<i8> = (i8::MIN..=i8::MAX).collect();
        let mut out = vec![0i8; 256];
        requantize_s8(&params, &input, &mut out);
        assert_eq!(out, input);
    }
}
